//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMetricsMoveUnderTraffic is the proof of issue 7's observability: the
// real binary in front of go-everything (and of an upstream that is down),
// its /metrics scraped on the admin listener before and after real MCP
// traffic, every series checked to move by exactly what the traffic did.
// Also: pprof on the admin listener answers the admin token and refuses
// everyone else, every answer carries an X-Request-Id, and the JSON log's
// lines about a request name it.
func TestMetricsMoveUnderTraffic(t *testing.T) {
	gw := startMetricsGateway(t)

	before := gw.scrape(t)
	if before.value(`mcpgw_sessions_active{app="everything"}`) != 0 {
		t.Fatalf("a fresh gateway shows active sessions:\n%s", before.text)
	}

	// One legacy session: initialize and notifications/initialized.
	sid, version := initialize(t, gw.URL, aliceToken)
	call := func(id int, method string, params any, edits ...func(*http.Request)) response {
		t.Helper()
		return send(t, http.MethodPost, gw.URL, aliceToken, sid, version, rpcRequest(id, method, params), edits...)
	}
	if r := call(2, "tools/list", map[string]any{}); r.status != http.StatusOK || r.result(2) == nil {
		t.Fatalf("tools/list: got %d %s", r.status, r.short())
	}
	allowed := call(3, "tools/call", map[string]any{"name": "test_simple_text", "arguments": map[string]any{}},
		func(r *http.Request) { r.Header.Set("X-Request-Id", "e2e-allowed-call-1") })
	if allowed.status != http.StatusOK || allowed.result(3) == nil {
		t.Fatalf("allowed tools/call: got %d %s", allowed.status, allowed.short())
	}
	if got := allowed.header.Get("X-Request-Id"); got != "e2e-allowed-call-1" {
		t.Errorf("X-Request-Id of the allowed call: got %q, want the client's", got)
	}
	denied := call(4, "tools/call", map[string]any{"name": "test_error_handling", "arguments": map[string]any{}})
	if denied.result(4) != nil || !strings.Contains(string(denied.body), `"error"`) {
		t.Fatalf("denied tools/call: got %d %s", denied.status, denied.short())
	}
	if id := denied.header.Get("X-Request-Id"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("X-Request-Id of the denied call: got %q, want 32 hex digits", id)
	}

	// The standalone SSE stream is live while it is open.
	stream, closeStream := openStream(t, http.MethodGet, gw.URL, aliceToken, sid, version, nil)
	if stream.StatusCode != http.StatusOK {
		closeStream()
		t.Fatalf("GET stream: got %d", stream.StatusCode)
	}
	during := gw.waitScrape(t, "the GET stream counted live", func(m metrics) bool {
		return m.value(`mcpgw_active_streams{app="everything",kind="listen"}`) == 1
	})
	closeStream()
	gw.waitScrape(t, "the GET stream no longer counted live", func(m metrics) bool {
		return m.value(`mcpgw_active_streams{app="everything",kind="listen"}`) == 0
	})
	if during.value(`mcpgw_sessions_active{app="everything"}`) != 1 {
		t.Errorf("mcpgw_sessions_active with one session in use: got %v, want 1", during.value(`mcpgw_sessions_active{app="everything"}`))
	}

	// No credentials, a path nobody serves, an upstream that is down.
	if r := send(t, http.MethodPost, gw.URL, "", "", "", rpcRequest(5, "tools/list", map[string]any{})); r.status != http.StatusUnauthorized {
		t.Fatalf("no token: got %d, want 401", r.status)
	}
	if r := send(t, http.MethodPost, gw.base+"/nowhere", aliceToken, "", "", rpcRequest(6, "ping", nil)); r.status != http.StatusNotFound {
		t.Fatalf("unknown path: got %d, want 404", r.status)
	}
	if r := send(t, http.MethodPost, gw.DownURL, aliceToken, "", "", rpcRequest(7, "tools/call", map[string]any{"name": "anything"})); r.status != http.StatusBadGateway {
		t.Fatalf("upstream down: got %d %s, want 502", r.status, r.short())
	}

	if r := send(t, http.MethodDelete, gw.URL, aliceToken, sid, version, nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: got %d %s", r.status, r.short())
	}

	// Response records are enqueued: wait until the spool has them all
	// (two scrapes agree) and the shipper has looked at them (its lag
	// age is as of its last look, up to an interval ago) before comparing.
	var last float64 = -1
	after := gw.waitScrape(t, "the audit spool settled", func(m metrics) bool {
		head := m.value("mcpgw_audit_head_seq")
		settled := head == last && head-before.value("mcpgw_audit_head_seq") >= 9 && m.value("mcpgw_audit_ship_lag_seconds") > 0
		last = head
		return settled
	})

	for _, tc := range []struct {
		series string
		want   float64
	}{
		{`mcpgw_requests_total{app="everything",decision="allow",method="initialize"}`, 1},
		{`mcpgw_requests_total{app="everything",decision="allow",method="notifications/initialized"}`, 1},
		{`mcpgw_requests_total{app="everything",decision="allow",method="tools/list"}`, 1},
		{`mcpgw_requests_total{app="everything",decision="allow",method="tools/call"}`, 1},
		{`mcpgw_requests_total{app="everything",decision="deny",method="tools/call"}`, 1},
		{`mcpgw_requests_total{app="everything",decision="allow",method="GET"}`, 1},
		{`mcpgw_requests_total{app="everything",decision="allow",method="DELETE"}`, 1},
		{`mcpgw_requests_total{app="everything",decision="unauthenticated",method="none"}`, 1},
		{`mcpgw_requests_total{app="down",decision="allow",method="tools/call"}`, 1},
		{`mcpgw_request_duration_seconds_count{app="everything",method="tools/call"}`, 2},
		{`mcpgw_request_duration_seconds_count{app="everything",method="initialize"}`, 1},
		{`mcpgw_request_duration_seconds_bucket{app="everything",method="tools/call",le="+Inf"}`, 2},
		{`mcpgw_upstream_errors_total{app="down",kind="connect"}`, 1},
		{`mcpgw_upstream_errors_total{app="everything",kind="connect"}`, 0},
		{`mcpgw_upstream_errors_total{app="everything",kind="status_5xx"}`, 0},
		{`mcpgw_sessions_started_total{app="everything"}`, 1},
		{`mcpgw_sessions_ended_total{app="everything"}`, 1},
		{`mcpgw_active_streams{app="everything",kind="listen"}`, 0},
		{`mcpgw_other_requests_total{kind="not_found"}`, 1},
		// The session's first request after initialize opens its id
		// through the codec; tools/list, two calls, GET and DELETE find it
		// remembered.
		{`mcpgw_cache_misses_total{cache="session"}`, 1},
		{`mcpgw_cache_hits_total{cache="session"}`, 5},
	} {
		if got := after.value(tc.series) - before.value(tc.series); got != tc.want {
			t.Errorf("%s moved by %v, want %v", tc.series, got, tc.want)
		}
	}
	// Every request of the traffic was counted, and nothing else.
	total := 0.0
	for series, v := range after.series {
		if strings.HasPrefix(series, "mcpgw_requests_total{") {
			total += v - before.value(series)
		}
	}
	if total != 9 {
		t.Errorf("mcpgw_requests_total moved by %v in all, want 9", total)
	}
	if sum := after.value(`mcpgw_request_duration_seconds_sum{app="everything",method="tools/call"}`); sum <= 0 {
		t.Errorf("tools/call latency sum %v, want > 0", sum)
	}
	// Audit: the traffic's records are in the spool and, the control
	// plane refusing them, all wait to be shipped.
	if d := after.value("mcpgw_audit_head_seq") - before.value("mcpgw_audit_head_seq"); d < 9 {
		t.Errorf("mcpgw_audit_head_seq moved by %v, want at least one record per request", d)
	}
	if d := after.value("mcpgw_audit_ship_lag_records") - before.value("mcpgw_audit_ship_lag_records"); d != after.value("mcpgw_audit_head_seq")-before.value("mcpgw_audit_head_seq") {
		t.Errorf("mcpgw_audit_ship_lag_records moved by %v, want as much as mcpgw_audit_head_seq", d)
	}
	if after.value("mcpgw_audit_ship_lag_seconds") <= 0 || after.value("mcpgw_audit_spool_bytes") <= 0 {
		t.Errorf("ship lag %v s, spool %v bytes: want both > 0", after.value("mcpgw_audit_ship_lag_seconds"), after.value("mcpgw_audit_spool_bytes"))
	}
	for _, series := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := after.series[series]; !ok {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	// No label carries a user, a tool, a token or a session.
	for _, secret := range []string{"alice", "test_simple_text", "test_error_handling", aliceToken, sid} {
		if strings.Contains(after.text, secret) {
			t.Errorf("/metrics shows %q", secret)
		}
	}

	// The log names the requests: the allowed call by the client's id.
	gw.waitLog(t, func(line map[string]any) bool {
		return line["msg"] == "request" && line["request_id"] == "e2e-allowed-call-1" &&
			line["method"] == "tools/call" && line["decision"] == "allow"
	})
	gw.waitLog(t, func(line map[string]any) bool {
		id, _ := line["request_id"].(string)
		return line["msg"] == "upstream exchange failed" && id != ""
	})

	// pprof: the admin token, nobody else.
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"admin token", "Bearer " + gw.adminToken, http.StatusOK},
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer not-the-admin-token-at-all", http.StatusUnauthorized},
		{"user token", "Bearer " + aliceToken, http.StatusUnauthorized},
	} {
		status, body := gw.admin(t, "/debug/pprof/goroutine?debug=1", tc.auth)
		if status != tc.want {
			t.Errorf("pprof with %s: got %d, want %d", tc.name, status, tc.want)
		}
		if tc.want == http.StatusOK && !strings.HasPrefix(body, "goroutine profile: total ") {
			t.Errorf("pprof goroutine profile: got %.80q", body)
		}
	}
	if status, body := gw.admin(t, "/debug/pprof/heap", "Bearer "+gw.adminToken); status != http.StatusOK || len(body) == 0 {
		t.Errorf("pprof heap: got %d and %d bytes", status, len(body))
	}
}

// metricsGateway is mcpgw in front of go-everything (application
// everything, /mcp) and of an address nothing listens on (application
// down, /down), shipping audit records to a receiver that refuses them,
// with debug logging on.
type metricsGateway struct {
	URL, DownURL string
	base         string // http://host:port of the frontend
	adminBase    string // http://host:port of the admin listener
	adminToken   string
	logPath      string
}

func startMetricsGateway(t *testing.T) *metricsGateway {
	t.Helper()
	dir := t.TempDir()
	g := newProcGroup(t, dir)
	upstreamAddr, listen, admin, down := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	g.start("go-everything", upstreamAddr, nil, everythingBin, "-http", upstreamAddr, "-stateless=false")
	rc := startReceiver(t)
	rc.mode.Store(int32(receiver500))
	gw := &metricsGateway{URL: "http://" + listen + "/mcp", DownURL: "http://" + listen + "/down", base: "http://" + listen, adminBase: "http://" + admin}
	cfg := fmt.Sprintf(`server:
  listen: %q
  data_dir: %q
  admin: {listen: %q}
identity:
  dev_users:
    - {token: %s, user: alice@example.com, groups: [engineers]}
applications:
  - name: everything
    frontend_url: %s
    upstream_url: http://%s/mcp
    rules:
      - {name: engineers, subjects: {groups: [engineers]}, tools: [test_simple_text, test_tool_with_progress], prompts: [".*"], resources: [".*"]}
  - name: down
    frontend_url: %s
    upstream_url: http://%s/mcp
    rules:
      - {name: engineers, subjects: {groups: [engineers]}, tools: [".*"]}
audit:
  dir: %q
  ship: {url: %q, auth: none, batch: 100, interval: 100ms}
observability:
  log_level: debug
`, listen, filepath.Join(dir, "data"), admin, aliceToken, gw.URL, upstreamAddr, gw.DownURL, down, filepath.Join(dir, "audit"), rc.URL)
	cfgPath := filepath.Join(dir, "mcpgw.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := g.start("mcpgw", listen, nil, mcpgwBin, "serve", "--config", cfgPath)
	gw.logPath = p.LogPath
	tok, err := os.ReadFile(filepath.Join(dir, "data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	gw.adminToken = strings.TrimSpace(string(tok))
	return gw
}

// admin GETs path on the admin listener with an Authorization header
// (none if empty).
func (gw *metricsGateway) admin(t *testing.T, path, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxFor(t), http.MethodGet, gw.adminBase+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// metrics is one scrape: every sample by its series (name and labels as
// the text format writes them).
type metrics struct {
	text   string
	series map[string]float64
}

func (m metrics) value(series string) float64 { return m.series[series] }

func (gw *metricsGateway) scrape(t *testing.T) metrics {
	t.Helper()
	status, body := gw.admin(t, "/metrics", "Bearer "+gw.adminToken)
	if status != http.StatusOK {
		t.Fatalf("/metrics: got %d %s", status, body)
	}
	m := metrics{text: body, series: make(map[string]float64)}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics: unreadable line %q", line)
		}
		m.series[line[:i]] = v
	}
	return m
}

// waitScrape scrapes until cond holds, for up to 10 s.
func (gw *metricsGateway) waitScrape(t *testing.T, what string, cond func(metrics) bool) metrics {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := gw.scrape(t)
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s, not %s:\n%s", what, m.text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLog waits up to 5 s for a JSON log line that match accepts.
func (gw *metricsGateway) waitLog(t *testing.T, match func(map[string]any) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, err := os.Open(gw.logPath)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && match(line) {
				f.Close()
				return
			}
		}
		f.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no such line in the log within 5 s; last lines:\n%s", tailOf(gw.logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tailOf(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}
