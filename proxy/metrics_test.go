package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/valyala/fasthttp"

	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/jsonrpc"
	"github.com/mcpgw/mcpgw/policycache"
)

// rawClient speaks Streamable HTTP by hand, so that every request the test
// makes is one the metrics must count, and nothing else is sent.
type rawClient struct {
	t        *testing.T
	endpoint string
	token    string
	sid      string
	version  string
}

type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

func (c *rawClient) do(method string, body string, edit func(*http.Request)) rawResponse {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.sid != "" {
		req.Header.Set("Mcp-Session-Id", c.sid)
		req.Header.Set("Mcp-Protocol-Version", c.version)
	}
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s: reading the body: %v", method, err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

func (c *rawClient) post(body string) rawResponse { return c.do(http.MethodPost, body, nil) }

func (c *rawClient) initialize() {
	c.t.Helper()
	r := c.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"metrics-test","version":"1"}}}`)
	if r.status != http.StatusOK || r.header.Get("Mcp-Session-Id") == "" {
		c.t.Fatalf("initialize: got %d %s", r.status, r.body)
	}
	c.sid, c.version = r.header.Get("Mcp-Session-Id"), "2025-06-18"
	if r := c.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`); r.status != http.StatusAccepted {
		c.t.Fatalf("notifications/initialized: got %d %s", r.status, r.body)
	}
}

func call(id int, tool string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{}}}`, id, tool)
}

// appOf returns the named application's metrics.
func appOf(t *testing.T, m *Metrics, app string) AppMetrics {
	t.Helper()
	for _, a := range m.Apps {
		if a.App == app {
			return a
		}
	}
	t.Fatalf("no metrics for application %q in %+v", app, m.Apps)
	return AppMetrics{}
}

func requestCounts(a AppMetrics) map[string]uint64 {
	out := make(map[string]uint64)
	for _, r := range a.Requests {
		out[r.Method+" "+r.Decision] = r.Count
	}
	return out
}

func labeled(vs []LabeledValue) map[string]float64 {
	out := make(map[string]float64)
	for _, v := range vs {
		out[v.Label] = v.Value
	}
	return out
}

func cacheCounts(m *Metrics, cache string) (hits, misses uint64) {
	for _, c := range m.Caches {
		if c.Cache == cache {
			return c.Hits, c.Misses
		}
	}
	return 0, 0
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMetricsCountRequests drives one session of each kind of request
// through the gateway in front of a Go SDK server and checks every count.
func TestMetricsCountRequests(t *testing.T) {
	up := startUpstream(t, false)
	gw := startGateway(t, appDef{name: "app", path: "/mcp", upstream: up.url})
	c := &rawClient{t: t, endpoint: gw.base + "/mcp", token: aliceToken}

	c.initialize()
	if r := c.post(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`); r.status != http.StatusOK {
		t.Fatalf("tools/list: got %d %s", r.status, r.body)
	}
	if r := c.post(call(3, "list_items")); r.status != http.StatusOK || !bytes.Contains(r.body, []byte("list_items ok")) {
		t.Fatalf("allowed tools/call: got %d %s", r.status, r.body)
	}
	if r := c.post(call(4, "get_secret")); !bytes.Contains(r.body, []byte("Unknown tool")) {
		t.Fatalf("denied tools/call: got %d %s", r.status, r.body)
	}
	if r := c.post(`{"jsonrpc":"2.0","id":5,"method":"no/such/method"}`); !bytes.Contains(r.body, []byte("Method not found")) {
		t.Fatalf("unknown method: got %d %s", r.status, r.body)
	}
	if r := c.post(`{"jsonrpc":"2.0","id":6,`); r.status != http.StatusBadRequest {
		t.Fatalf("unreadable body: got %d %s", r.status, r.body)
	}
	if r := (&rawClient{t: t, endpoint: c.endpoint}).post(call(7, "list_items")); r.status != http.StatusUnauthorized {
		t.Fatalf("no token: got %d %s", r.status, r.body)
	}
	if r := c.do(http.MethodOptions, "", nil); r.status != http.StatusNoContent {
		t.Fatalf("OPTIONS: got %d", r.status)
	}

	// A standalone GET stream is live until the client leaves.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	req.Header.Set("Mcp-Session-Id", c.sid)
	req.Header.Set("Mcp-Protocol-Version", c.version)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET stream: %v %v", resp, err)
	}
	waitFor(t, "the GET stream is counted live", func() bool {
		return labeled(appOf(t, gw.srv.Metrics(), "app").Streams)["listen"] == 1
	})
	cancel()
	resp.Body.Close()
	waitFor(t, "the GET stream is no longer counted live", func() bool {
		return labeled(appOf(t, gw.srv.Metrics(), "app").Streams)["listen"] == 0
	})

	if r := c.do(http.MethodDelete, "", nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: got %d %s", r.status, r.body)
	}

	m := gw.srv.Metrics()
	a := appOf(t, m, "app")
	want := map[string]uint64{
		"initialize allow":                1,
		"notifications/initialized allow": 1,
		"tools/list allow":                1,
		"tools/call allow":                1,
		"tools/call deny":                 1,
		"other refused":                   1,
		"none refused":                    1,
		"none unauthenticated":            1,
		"OPTIONS allow":                   1,
		"GET allow":                       1,
		"DELETE allow":                    1,
	}
	if diff := cmp.Diff(want, requestCounts(a)); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	for _, h := range a.Latency {
		var n uint64
		for _, r := range a.Requests {
			if r.Method == h.Method {
				n += r.Count
			}
		}
		if h.Count != n || h.Cumulative[len(h.Cumulative)-1] > h.Count || h.SumSeconds <= 0 {
			t.Errorf("latency of %s: count %d, last bucket %d, sum %v; want count %d", h.Method, h.Count, h.Cumulative[len(h.Cumulative)-1], h.SumSeconds, n)
		}
	}
	if len(a.Latency) != 9 {
		t.Errorf("latency histograms for %d methods, want 9", len(a.Latency))
	}
	if a.SessionsStarted != 1 || a.SessionsEnded != 1 || a.SessionsActive != 1 {
		t.Errorf("sessions: started %d, ended %d, active %v; want 1, 1, 1", a.SessionsStarted, a.SessionsEnded, a.SessionsActive)
	}
	for kind, n := range labeled(a.UpstreamErrors) {
		if n != 0 {
			t.Errorf("upstream errors %s = %v, want 0", kind, n)
		}
	}
	if other := labeled(m.Other); other["not_found"] != 0 {
		t.Errorf("other requests: %v", other)
	}
	// The session's requests after initialize open its id from memory,
	// but the first (notifications/initialized) goes through the codec.
	if hits, misses := cacheCounts(m, "session"); misses != 1 || hits < 6 {
		t.Errorf("session cache: %d hits, %d misses; want >= 6, 1", hits, misses)
	}
	// testPolicy has five rules: decisions and list filtering are cached.
	if hits, misses := cacheCounts(m, "policy"); hits+misses == 0 {
		t.Error("policy cache: no lookups counted")
	}

	// A path no application serves.
	if r := (&rawClient{t: t, endpoint: gw.base + "/nothing"}).post("{}"); r.status != http.StatusNotFound {
		t.Fatalf("unknown path: got %d", r.status)
	}
	if got := labeled(gw.srv.Metrics().Other)["not_found"]; got != 1 {
		t.Errorf("not_found requests: got %v, want 1", got)
	}
}

// TestMetricsSurviveReload checks that an Update keeps the counts of the
// applications it keeps, and the cache totals of the policy it replaces.
func TestMetricsSurviveReload(t *testing.T) {
	up := startUpstream(t, false)
	var snap *Snapshot
	gw := startGatewayWith(t, func(s *Snapshot) { snap = s }, appDef{name: "app", path: "/mcp", upstream: up.url})
	c := &rawClient{t: t, endpoint: gw.base + "/mcp", token: aliceToken}
	c.initialize()
	for i := range 3 {
		c.post(call(10+i, "list_items"))
	}
	before := gw.srv.Metrics()
	polHits, polMisses := cacheCounts(before, "policy")

	next := *snap
	next.Policy = testPolicy(t, "app")
	if err := gw.srv.Update(&next); err != nil {
		t.Fatal(err)
	}
	after := gw.srv.Metrics()
	if diff := cmp.Diff(requestCounts(appOf(t, before, "app")), requestCounts(appOf(t, after, "app"))); diff != "" {
		t.Errorf("requests changed by a reload (-before +after):\n%s", diff)
	}
	if h, m := cacheCounts(after, "policy"); h != polHits || m != polMisses {
		t.Errorf("policy cache after reload: %d/%d, want %d/%d", h, m, polHits, polMisses)
	}
	c.post(call(20, "list_items"))
	if got := requestCounts(appOf(t, gw.srv.Metrics(), "app"))["tools/call allow"]; got != 4 {
		t.Errorf("tools/call allow after reload: got %d, want 4", got)
	}
}

// TestMetricsUpstreamErrors makes an upstream fail each way and checks the
// kind each failure is counted as.
func TestMetricsUpstreamErrors(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/status":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/auth":
			w.WriteHeader(http.StatusUnauthorized)
		case "/garbage":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":`))
		case "/slow":
			time.Sleep(time.Second)
		case "/cut":
			c, brw, _ := http.NewResponseController(w).Hijack()
			_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"")
			_ = brw.Flush()
			c.Close()
		}
	}))
	defer bad.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/mcp"
	ln.Close()

	cases := []struct{ app, upstream, kind string }{
		{"down", closed, "connect"},
		{"status", bad.URL + "/status", "status_5xx"},
		{"auth", bad.URL + "/auth", "auth"},
		{"garbage", bad.URL + "/garbage", "bad_response"},
		{"slow", bad.URL + "/slow", "timeout"},
		{"cut", bad.URL + "/cut", "disconnect"},
	}
	var apps []appDef
	for _, c := range cases {
		apps = append(apps, appDef{name: c.app, path: "/" + c.app, upstream: c.upstream, authNone: true})
	}
	gw := startGatewayWith(t, func(s *Snapshot) { s.UpstreamTimeout = 200 * time.Millisecond }, apps...)
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			cl := &rawClient{t: t, endpoint: gw.base + "/" + c.app}
			if r := cl.post(call(1, "anything")); r.status < 400 {
				t.Fatalf("got %d %s, want an error status", r.status, r.body)
			}
			a := appOf(t, gw.srv.Metrics(), c.app)
			want := map[string]float64{"connect": 0, "timeout": 0, "status_5xx": 0, "auth": 0, "bad_response": 0, "disconnect": 0}
			want[c.kind] = 1
			if diff := cmp.Diff(want, labeled(a.UpstreamErrors)); diff != "" {
				t.Errorf("upstream errors (-want +got):\n%s", diff)
			}
			if got := requestCounts(a); got["tools/call allow"] != 1 || len(got) != 1 {
				t.Errorf("requests: got %v, want tools/call allow 1", got)
			}
		})
	}
}

// TestRequestIDs checks the X-Request-Id of every answer, the client's
// kept only when it is sane, and the id in the upstream failure line.
func TestRequestIDs(t *testing.T) {
	var logs syncBuffer
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/mcp"
	ln.Close()
	identityHandler := func(s *Snapshot) {
		s.IdentityHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{}`))
		})
	}
	gw := startGatewayOpts(t, Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, identityHandler,
		appDef{name: "down", path: "/mcp", upstream: closed, authNone: true})
	generated := regexp.MustCompile(`^[0-9a-f]{32}$`)
	c := &rawClient{t: t, endpoint: gw.base + "/mcp"}
	withID := func(ids ...string) func(*http.Request) {
		return func(r *http.Request) {
			for _, id := range ids {
				r.Header.Add("X-Request-Id", id)
			}
		}
	}
	seen := make(map[string]bool)
	for _, tc := range []struct {
		name   string
		ids    []string
		keep   bool
		method string
	}{
		{name: "none", method: http.MethodPost},
		{name: "sane", ids: []string{"req-42_a.b"}, keep: true, method: http.MethodPost},
		{name: "uuid", ids: []string{"0b5a3a4c-6f7e-4d8e-9a1b-2c3d4e5f6a7b"}, keep: true, method: http.MethodPost},
		{name: "too long", ids: []string{strings.Repeat("a", 65)}, method: http.MethodPost},
		{name: "bad characters", ids: []string{`x" forged="1`}, method: http.MethodPost},
		{name: "twice", ids: []string{"a1", "b2"}, method: http.MethodPost},
		{name: "preflight", method: http.MethodOptions},
		{name: "not found", method: http.MethodGet},
		{name: "identity endpoint", method: http.MethodGet},
		{name: "identity endpoint, client id", ids: []string{"oauth-1"}, keep: true, method: http.MethodGet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := *c
			switch {
			case tc.name == "not found":
				cl.endpoint = gw.base + "/elsewhere"
			case strings.HasPrefix(tc.name, "identity"):
				cl.endpoint = gw.base + "/.well-known/oauth-protected-resource/mcp"
			}
			body := ""
			if tc.method == http.MethodPost {
				body = call(1, "x")
			}
			r := cl.do(tc.method, body, withID(tc.ids...))
			got := r.header.Values("X-Request-Id")
			if len(got) != 1 {
				t.Fatalf("X-Request-Id: got %q, want one", got)
			}
			switch {
			case tc.keep && got[0] != tc.ids[0]:
				t.Errorf("got %q, want the client's %q", got[0], tc.ids[0])
			case !tc.keep && !generated.MatchString(got[0]):
				t.Errorf("got %q, want 32 hex digits", got[0])
			case !tc.keep && seen[got[0]]:
				t.Errorf("id %q given twice", got[0])
			}
			seen[got[0]] = true
		})
	}
	// The first request met the dead upstream: its failure line and its
	// debug line name it.
	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(logs.Bytes()), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil {
			lines = append(lines, m)
		}
	}
	failures, requests := 0, 0
	for _, l := range lines {
		id, _ := l["request_id"].(string)
		switch l["msg"] {
		case "upstream exchange failed":
			failures++
			if !generated.MatchString(id) {
				t.Errorf("failure line without the request's id: %v", l)
			}
		case "request":
			requests++
			if id == "" || l["app"] != "down" || l["method"] == nil || l["decision"] == nil {
				t.Errorf("request line incomplete: %v", l)
			}
		}
	}
	if failures != 1 || requests != 7 {
		t.Errorf("got %d failure lines and %d request lines, want 1 and 7:\n%s", failures, requests, logs.Bytes())
	}
}

// syncBuffer is a bytes.Buffer for a logger that other goroutines write.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func TestClassifyMethodIsBounded(t *testing.T) {
	for i, name := range methodNames {
		if name == "" {
			t.Errorf("method class %d has no name", i)
		}
	}
	var scan jsonrpc.Scanner
	for _, tc := range []struct{ msg, want string }{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`, "tools/call"},
		{`{"jsonrpc":"2.0","id":1,"method":"resources/templates/list"}`, "resources/templates/list"},
		{`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`, "notifications/cancelled"},
		{`{"jsonrpc":"2.0","id":1,"result":{}}`, "response"},
		{`{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}`, "response"},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call-with-a-twist"}`, "other"},
		{`{"jsonrpc":"2.0","id":1,"method":"` + strings.Repeat("x", 1000) + `"}`, "other"},
		{`{"jsonrpc":"2.0","method":"notifications/whatever"}`, "other"},
	} {
		var m jsonrpc.Message
		if err := scan.Scan([]byte(tc.msg), &m); err != nil {
			t.Fatalf("Scan(%s): %v", tc.msg, err)
		}
		if got := methodNames[classifyMethod(&m)]; got != tc.want {
			t.Errorf("%.60s: got %q, want %q", tc.msg, got, tc.want)
		}
	}
}

func TestUpstreamErrorKindOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errConnect{&net.OpError{Op: "dial", Err: errors.New("connection refused")}}, "connect"},
		{errConnect{os.ErrDeadlineExceeded}, "connect"}, // a dial timeout is a connection problem
		{errUpstreamConns, "connect"},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), "timeout"},
		{io.ErrUnexpectedEOF, "disconnect"},
		{io.EOF, "disconnect"},
		{errBadChunk, "bad_response"},
		{errBodyTooLarge, "bad_response"},
		{jsonrpc.ErrEventTooLarge, "bad_response"},
	} {
		if got := upstreamErrorNames[upstreamErrorKindOf(tc.err)]; got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestSessionsSeenEstimate(t *testing.T) {
	var s sessionsSeen
	now := time.Date(2026, 11, 1, 12, 0, 30, 0, time.UTC).Unix()
	if got := s.estimate(now); got != 0 {
		t.Fatalf("empty: got %v, want 0", got)
	}
	hash := func(i int) uint64 { return sessionHash(auditSessionID([]byte(fmt.Sprint("session-", i)))) }
	for i := range 10 {
		for range 3 { // repeated requests of a session count once
			s.add(hash(i), now)
		}
	}
	if got := s.estimate(now); got != 10 {
		t.Errorf("10 sessions: got %v", got)
	}
	// Over the next minutes 5,000 more sessions, and the first 10 again.
	for i := range 5000 {
		s.add(hash(1000+i), now+60+int64(i%180))
	}
	for i := range 10 {
		s.add(hash(i), now+240)
	}
	if got := s.estimate(now + 240); got < 4900 || got > 5100 {
		t.Errorf("5,010 sessions in five minutes: estimated %v", got)
	}
	if got := s.estimate(now + 60*60); got != 0 {
		t.Errorf("an hour later: estimated %v, want 0", got)
	}

	// A session is counted for the minute of its last request and the
	// four after it.
	var f sessionsSeen
	for i := range 10 {
		f.add(hash(i), now)
	}
	f.add(hash(0), now+60)
	for _, tc := range []struct {
		at   int64
		want float64
	}{{now, 10}, {now + 4*60, 10}, {now + 5*60, 1}, {now + 6*60, 0}} {
		if got := f.estimate(tc.at); got != tc.want {
			t.Errorf("%d s later: estimated %v, want %v", tc.at-now, got, tc.want)
		}
	}
}

func TestValidRequestID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"0b5a3a4c-6f7e-4d8e-9a1b-2c3d4e5f6a7b", true},
		{"trace.span_1-2", true},
		{strings.Repeat("x", 64), true},
		{strings.Repeat("x", 65), false},
		{"", false},
		{"a b", false},
		{"a\nb", false},
		{`a"b`, false},
		{"a/b", false},
		{"ünïcode", false},
	} {
		if got := validRequestID([]byte(tc.id)); got != tc.want {
			t.Errorf("validRequestID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

// TestMetricsHotPathAllocs asserts that counting adds no allocation: a
// request's outcome, its count and latency, and its request id.
func TestMetricsHotPathAllocs(t *testing.T) {
	s, r, m := metricsFixture(t)
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	v := verdict{}
	allocs := testing.AllocsPerRun(1000, func() {
		var o outcome
		o.note(m, &v)
		o.allow()
		o.upstreamStatus(200)
		s.setRequestID(&ctx, nil, true)
		s.observe(&ctx, r, &o)
		r.metrics.sessionSeen("0123456789abcdef01234567", &ctx)
	})
	if allocs != 0 {
		t.Errorf("got %v allocations per request, want 0", allocs)
	}
}

// TestHandleAllocs asserts that a whole allowed tools/call through Handle,
// metrics and request id included, allocates nothing once warm.
func TestHandleAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes pooled paths allocate")
	}
	backend := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody([]byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`))
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = backend.Serve(ln) }()
	defer backend.Shutdown()
	s, err := New(Options{Sessions: mustCodec(t), Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	front, _ := url.Parse("http://gw.test/mcp")
	up, _ := url.Parse("http://" + ln.Addr().String() + "/mcp")
	pol, err := policycache.Compile([]policycache.AppSpec{{Name: "app", Rules: []policycache.RuleSpec{
		{Name: "readers", Groups: []string{"engineers"}, Tools: []string{"echo"}},
	}}}, policycache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pol.Close()
	err = s.Update(&Snapshot{
		Applications:    []Application{{Name: "app", Frontend: front, Upstream: up}},
		Policy:          pol,
		DevUsers:        identity.NewDevUsers([]identity.DevUser{{Token: aliceToken, User: "alice@example.com", Groups: []string{"engineers"}}}),
		MaxBody:         1 << 20,
		UpstreamTimeout: 5 * time.Second,
		KeepAlive:       time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	var ctx fasthttp.RequestCtx
	run := func() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod(fasthttp.MethodPost)
		ctx.Request.SetRequestURI("/mcp")
		ctx.Request.Header.SetHost("gw.test")
		ctx.Request.Header.SetContentType("application/json")
		ctx.Request.Header.Set("Authorization", "Bearer "+aliceToken)
		ctx.Request.SetBodyString(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}`)
		s.Handle(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("got %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	run()
	if allocs := testing.AllocsPerRun(200, run); allocs != 0 {
		t.Errorf("got %v allocations per call, want 0", allocs)
	}
	if got := requestCounts(appOf(t, s.Metrics(), "app"))["tools/call allow"]; got != 202 {
		t.Errorf("tools/call allow: got %d, want 202", got)
	}
}

// metricsFixture is a Server, a route of it and a scanned tools/call, for
// the per-request metrics test and benchmark.
func metricsFixture(tb testing.TB) (*Server, *route, *jsonrpc.Message) {
	tb.Helper()
	s, err := New(Options{Sessions: mustCodec(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	r := &route{name: "app", metrics: s.metrics.app("app")}
	var scan jsonrpc.Scanner
	m := new(jsonrpc.Message)
	if err := scan.Scan([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`), m); err != nil {
		tb.Fatal(err)
	}
	return s, r, m
}

func mustCodec(t testing.TB) *identity.SessionCodec {
	t.Helper()
	c, err := identity.NewSessionCodec(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// BenchmarkMetricsPerRequest is what the metrics add to one request with a
// session: its outcome, count and latency, its request id, the session's
// bit. Compare with BenchmarkToolsCallGateway (the whole exchange).
func BenchmarkMetricsPerRequest(b *testing.B) {
	s, r, m := metricsFixture(b)
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	v := verdict{}
	start := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		var o outcome
		o.note(m, &v)
		o.allow()
		o.upstreamStatus(200)
		s.setRequestID(&ctx, nil, true)
		s.observe(&ctx, r, &o)
		r.metrics.latency[methodToolsCall].observe(time.Since(start)) // the clock read a served request has
		r.metrics.sessionSeen("0123456789abcdef01234567", &ctx)
	}
}
