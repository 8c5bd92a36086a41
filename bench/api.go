package bench

import "time"

// LoadConfig describes one load run against an MCP Streamable HTTP endpoint
// (mcpgw, a plain reverse proxy, or a server directly).
type LoadConfig struct {
	URL   string // MCP endpoint
	Token string // bearer token, sent on every request when not empty

	// Concurrency is the number of connections (and client sessions); each
	// performs initialize (or nothing, for ProtocolVersion 2026-07-28, which
	// has no handshake) before the measured requests.
	Concurrency int
	// Duration or Requests bounds the measured part of the run (whichever
	// comes first when both are set; at least one must be).
	Duration time.Duration
	Requests int64
	// Warmup runs load before measuring, not recorded.
	Warmup time.Duration
	// Rate, when > 0, is an open loop: requests are scheduled at this fixed
	// arrival rate (per second, over all connections) and latency is
	// measured from the scheduled time, so a stall is not hidden
	// (coordinated omission). 0 is a closed loop: each connection sends its
	// next request when the previous answer is in.
	Rate float64
	// Mix picks each request's method by weight, e.g. tools/call=90,
	// tools/list=10. Empty means tools/call only.
	Mix []MixEntry
	// Tool is the tools/call name (default "echo"); Payload the size in
	// bytes of its "arguments" object (default 2 KiB).
	Tool    string
	Payload int
	// ProgressEvents asks the mock backend for that many progress
	// notifications (an SSE response) per tools/call, through the
	// argument "progress".
	ProgressEvents int
	// ProtocolVersion is what initialize asks for (default 2025-11-25);
	// 2026-07-28 sends stateless requests with per-request _meta and the
	// Mcp-Method/Mcp-Name headers instead.
	ProtocolVersion string
	// Progress, when not nil, receives a one-line status about once a
	// second while the run goes on.
	Progress func(line string)
	// Timeout bounds each request, from the send to the whole answer
	// (default 30 s); an answer later than that counts as "timeout".
	Timeout time.Duration
	// Insecure skips verifying the TLS certificate of an https URL.
	Insecure bool
}

// MixEntry is one method of a request mix and its weight.
type MixEntry struct {
	Method string // tools/call, tools/list, prompts/list, resources/list, ping
	Weight int
}

// Result is what a load run measured.
type Result struct {
	Target     string           `json:"target,omitempty"`
	Requests   int64            `json:"requests"`
	Errors     int64            `json:"errors"`
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"` // e.g. "http_502", "jsonrpc_-32602", "timeout", "connect"
	Elapsed    time.Duration    `json:"elapsed_ns"`
	Throughput float64          `json:"throughput_rps"`
	Latency    Percentiles      `json:"latency_us"`
	// Histogram lists (upper bound in microseconds, count) pairs of the
	// latency distribution, for plots.
	Histogram [][2]int64 `json:"histogram,omitempty"`
	// ProgressEvents counts the notifications/progress events received
	// in answers to measured requests.
	ProgressEvents int64 `json:"progress_events,omitempty"`
}

// Percentiles of request latency, in microseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// BackendConfig describes the mock MCP backend.
type BackendConfig struct {
	Listen string // address, e.g. 127.0.0.1:0
	// Tools is how many canned tools tools/list returns (1 to 10,000),
	// named tool_00000 … plus "echo" (which returns its arguments).
	Tools int
	// SSE answers every request with text/event-stream instead of JSON.
	SSE bool
	// Delay is added before each answer.
	Delay time.Duration
	// Sessions issues an Mcp-Session-Id at initialize and serves standalone
	// GET streams (idle but for keep-alive comments) for those sessions;
	// without it the backend is a stateless legacy and 2026-07-28 server.
	Sessions bool
}
