package bench

import (
	"context"
	"fmt"
	"math"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mcpgw/mcpgw/jsonrpc"
	"github.com/valyala/fasthttp"
)

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []MixEntry
		wantErr string
	}{
		{in: "tools/call=90,tools/list=10", want: []MixEntry{{"tools/call", 90}, {"tools/list", 10}}},
		{in: " ping = 3 , prompts/list ", want: []MixEntry{{"ping", 3}, {"prompts/list", 1}}},
		{in: "resources/list=1,tools/call=0", want: []MixEntry{{"resources/list", 1}, {"tools/call", 0}}},
		{in: "tools/cal=1", wantErr: `method "tools/cal"`},
		{in: "tools/call=x", wantErr: "not an integer"},
		{in: "tools/call=-1", wantErr: "want 0 or more"},
		{in: "tools/call=0", wantErr: "positive weight"},
		{in: "", wantErr: "want method=weight"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMix(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestMixPickerWeights(t *testing.T) {
	p := newMixPicker([]MixEntry{{"tools/call", 90}, {"tools/list", 10}, {"ping", 0}})
	var counts [methodCount]int
	state := uint64(12345)
	const n = 200000
	for range n {
		counts[p.pick(&state)]++
	}
	if counts[methodPing] != 0 || counts[methodPromptsList] != 0 || counts[methodResourcesList] != 0 {
		t.Errorf("picked methods of weight 0: %v", counts)
	}
	if got := float64(counts[methodToolsList]) / n; math.Abs(got-0.10) > 0.01 {
		t.Errorf("tools/list share %.3f, want 0.10", got)
	}
	one := newMixPicker([]MixEntry{{"prompts/list", 5}})
	if got := one.pick(&state); got != methodPromptsList {
		t.Errorf("single-entry mix picked %d", got)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"2KiB", 2048, true},
		{"512", 512, true},
		{"1MiB", 1 << 20, true},
		{"3 kB", 3000, true},
		{"10B", 10, true},
		{"KiB", 0, false},
		{"2kib", 0, false},
		{"-1", 0, false},
		{"99999999GiB", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestArgumentsSize(t *testing.T) {
	for _, size := range []int{0, 5, 11, 100, 2048} {
		for _, progress := range []int{0, 3} {
			got := argumentsJSON(size, progress)
			if len(got) != size && len(got) > 11+len(`"progress":3,`) {
				t.Errorf("arguments for %d bytes (progress %d) are %d bytes", size, progress, len(got))
			}
		}
	}
}

func TestRunAgainstServe(t *testing.T) {
	type tc struct {
		name     string
		backend  BackendConfig
		version  string
		progress int
		mix      []MixEntry
		rate     float64
	}
	var cases []tc
	for _, sse := range []bool{false, true} {
		for _, version := range []string{"2025-11-25", "2025-03-26", modernVersion} {
			for _, progress := range []int{0, 2} {
				cases = append(cases, tc{
					name:     fmt.Sprintf("sse=%v/%s/progress=%d", sse, version, progress),
					backend:  BackendConfig{Tools: 10, SSE: sse, Sessions: version != modernVersion},
					version:  version,
					progress: progress,
				})
			}
		}
	}
	cases = append(cases,
		tc{name: "mix", backend: BackendConfig{Tools: 50}, mix: []MixEntry{{"tools/call", 5}, {"tools/list", 2}, {"prompts/list", 1}, {"resources/list", 1}, {"ping", 1}}},
		tc{name: "mix/modern", backend: BackendConfig{Tools: 50}, version: modernVersion, mix: []MixEntry{{"tools/call", 1}, {"tools/list", 1}, {"ping", 1}}},
		tc{name: "open-loop", backend: BackendConfig{Tools: 10}, rate: 2000},
		tc{name: "open-loop/sse/modern", backend: BackendConfig{Tools: 10, SSE: true}, version: modernVersion, progress: 1, rate: 2000},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := startBackend(t, c.backend)
			const requests = 300
			res, err := Run(context.Background(), LoadConfig{
				URL:             url,
				Concurrency:     4,
				Requests:        requests,
				Duration:        10 * time.Second,
				Rate:            c.rate,
				Mix:             c.mix,
				Payload:         512,
				ProgressEvents:  c.progress,
				ProtocolVersion: c.version,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != requests || res.Errors != 0 {
				t.Errorf("got %d requests, %d errors %v; want %d, 0", res.Requests, res.Errors, res.ErrorKinds, requests)
			}
			wantProgress := int64(0)
			if c.mix == nil {
				wantProgress = int64(requests * c.progress)
			}
			if res.ProgressEvents != wantProgress {
				t.Errorf("got %d progress events, want %d", res.ProgressEvents, wantProgress)
			}
			var sum int64
			for _, b := range res.Histogram {
				sum += b[1]
			}
			if sum != requests {
				t.Errorf("histogram holds %d, want %d", sum, requests)
			}
			l := res.Latency
			if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
				t.Errorf("latency percentiles out of order: %+v", l)
			}
			if res.Throughput <= 0 || res.Elapsed <= 0 {
				t.Errorf("throughput %v, elapsed %v", res.Throughput, res.Elapsed)
			}
		})
	}
}

// TestRunOpenLoopRate checks that an open loop sends rate×duration
// requests, whatever the concurrency, and reports progress.
func TestRunOpenLoopRate(t *testing.T) {
	url := startBackend(t, BackendConfig{Tools: 10})
	var mu sync.Mutex
	var lines []string
	res, err := Run(context.Background(), LoadConfig{
		URL:         url,
		Concurrency: 8,
		Rate:        400,
		Duration:    1500 * time.Millisecond,
		Warmup:      200 * time.Millisecond,
		Progress: func(line string) {
			mu.Lock()
			lines = append(lines, line)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(600); res.Requests < want*98/100 || res.Requests > want || res.Errors != 0 {
		t.Errorf("got %d requests (%d errors) at 400/s for 1.5 s, want about %d", res.Requests, res.Errors, want)
	}
	if res.Elapsed < 1400*time.Millisecond || res.Elapsed > 2500*time.Millisecond {
		t.Errorf("elapsed %v, want about 1.5 s", res.Elapsed)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) == 0 {
		t.Fatal("no progress line")
	}
	re := regexp.MustCompile(`^[0-9.]+[kM]? req/s, p99 [0-9.]+(µs|ms|s), errors 0$`)
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("progress line %q does not match %s", l, re)
		}
	}
}

// TestRunOpenLoopCountsFromSchedule checks that latency counts from the
// scheduled time: one connection to a backend taking 20 ms per answer,
// asked for 200 requests a second, falls behind, and the requests that
// waited show it.
func TestRunOpenLoopCountsFromSchedule(t *testing.T) {
	url := startBackend(t, BackendConfig{Tools: 1, Delay: 20 * time.Millisecond})
	res, err := Run(context.Background(), LoadConfig{URL: url, Concurrency: 1, Rate: 200, Requests: 40})
	if err != nil {
		t.Fatal(err)
	}
	// Request k (from 0) is scheduled at 5k ms and answered at about
	// 20(k+1) ms: its latency is about 15k+20 ms, so the median is near
	// 320 ms and the largest near 605 ms, where a closed loop would say 20.
	if res.Latency.P50 < 200e3 || res.Latency.Max < 450e3 {
		t.Errorf("latency %+v: the backlog is hidden", res.Latency)
	}
}

// fakeMCP is a tiny MCP endpoint for error tests: it completes the
// handshake, then answers each request as answer says.
func fakeMCP(t *testing.T, answer func(ctx *fasthttp.RequestCtx, id []byte, n int64)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var count atomic.Int64
	var scPool = sync.Pool{New: func() any { return new(jsonrpc.Scanner) }}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		sc := scPool.Get().(*jsonrpc.Scanner)
		defer scPool.Put(sc)
		var m jsonrpc.Message
		if err := sc.Scan(ctx.PostBody(), &m); err != nil {
			ctx.SetStatusCode(400)
			return
		}
		switch {
		case ctx.IsDelete():
		case m.Kind == jsonrpc.KindNotification:
			ctx.SetStatusCode(202)
		case string(m.Method) == "initialize":
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"fake","version":"1"}}}`)
		default:
			answer(ctx, m.ID, count.Add(1))
		}
	}}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String() + "/"
}

func TestRunErrorKinds(t *testing.T) {
	url := fakeMCP(t, func(ctx *fasthttp.RequestCtx, id []byte, n int64) {
		ctx.SetContentType("application/json")
		switch n % 5 {
		case 0:
			ctx.SetStatusCode(502)
			ctx.SetBodyString(`{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"upstream down"}}`)
		case 1:
			ctx.SetBodyString(`{"jsonrpc":"2.0","id":` + string(id) + `,"error":{"code":-32602,"message":"bad"}}`)
		case 2:
			ctx.SetBodyString(`{"jsonrpc":"2.0","id":"other","result":{}}`)
		case 3:
			ctx.SetContentType("text/event-stream")
			ctx.SetBodyString("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":" + string(id) + ",\"error\":{\"code\":-32603,\"message\":\"x\"}}\n\n")
		default:
			ctx.SetBodyString(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{}}`)
		}
	})
	res, err := Run(context.Background(), LoadConfig{URL: url, Concurrency: 1, Requests: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"http_502": 20, "jsonrpc_-32602": 20, "protocol": 20, "jsonrpc_-32603": 20}
	if diff := cmp.Diff(want, res.ErrorKinds); diff != "" {
		t.Errorf("error kinds (-want +got):\n%s", diff)
	}
	if res.Requests != 100 || res.Errors != 80 {
		t.Errorf("got %d requests, %d errors; want 100, 80", res.Requests, res.Errors)
	}
	if math.Abs(res.Throughput*res.Elapsed.Seconds()-20) > 0.5 {
		t.Errorf("throughput %v over %v counts more than the 20 successes", res.Throughput, res.Elapsed)
	}
}

func TestRunTimeout(t *testing.T) {
	url := fakeMCP(t, func(ctx *fasthttp.RequestCtx, id []byte, n int64) {
		time.Sleep(300 * time.Millisecond)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{}}`)
	})
	res, err := Run(context.Background(), LoadConfig{URL: url, Concurrency: 2, Requests: 2, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.ErrorKinds["timeout"] != 2 {
		t.Errorf("error kinds %v, want 2 timeouts", res.ErrorKinds)
	}
}

func TestRunUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Run(context.Background(), LoadConfig{URL: "http://" + addr + "/mcp", Concurrency: 2, Requests: 10, Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "cannot initialize") {
		t.Errorf("got %v, want an initialize error", err)
	}
}

func TestRunInvalidConfig(t *testing.T) {
	_, err := Run(context.Background(), LoadConfig{URL: "ftp://x", Concurrency: -1, Rate: -1, Mix: []MixEntry{{"nope", 1}}, Payload: -5})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"url", "concurrency", "duration", "rate", `"nope"`, "payload"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// TestConnCallAllocations checks that the generator is allocation-light:
// a steady-state request allocates nothing in JSON and SSE.
func TestConnCallAllocations(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backend BackendConfig
		version string
		method  int
	}{
		{"json", BackendConfig{Tools: 10}, "", methodToolsCall},
		{"sse", BackendConfig{Tools: 10, SSE: true}, "", methodToolsCall},
		{"modern/list", BackendConfig{Tools: 10}, modernVersion, methodToolsList},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := LoadConfig{URL: startBackend(t, tc.backend), Requests: 1, ProtocolVersion: tc.version}
			if err := cfg.normalize(); err != nil {
				t.Fatal(err)
			}
			hc, err := newHostClient(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			c := newConn(hc, newRequestShape(&cfg))
			defer c.release()
			if err := c.initialize(); err != nil {
				t.Fatal(err)
			}
			for range 10 {
				if kind := c.call(tc.method); kind != "" {
					t.Fatalf("call: %s", kind)
				}
			}
			allocs := testing.AllocsPerRun(200, func() {
				if kind := c.call(tc.method); kind != "" {
					t.Fatalf("call: %s", kind)
				}
			})
			limit := 0.0
			if raceEnabled {
				limit = 4 // sync.Pool drops values at random under -race
			}
			if allocs > limit {
				t.Errorf("got %v allocs per request, want at most %v", allocs, limit)
			}
		})
	}
}
