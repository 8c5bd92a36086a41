//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/internal/testpki"
)

// The proof of issue 7's reload, TLS and lifecycle work: the real binary
// serving TLS in front of go-everything is reloaded by SIGHUP and by the
// admin API, with a good policy (applied) and a broken one (refused, the
// old one still served), has its certificate replaced on disk (new
// handshakes get it without a reload), all while a client keeps an SSE
// stream and a keep-alive connection open; then SIGTERM drains a slow call.

const (
	// The two policies: each allows one of the tools the other denies.
	policyA = `[test_simple_text, test_tool_with_progress]`
	policyB = `[test_simple_text, test_image_content]`
	// policyBroken does not compile.
	policyBroken = `[test_simple_text, "test_(image"]`

	reloadShutdownTimeout = 10 * time.Second
	slowCallTime          = 2 * time.Second
)

// writePair writes a certificate for 127.0.0.1 and localhost with serial,
// and its key, replacing the files by rename as renewal tools do.
func writePair(t *testing.T, ca *testpki.CA, certPath, keyPath string, serial int64) {
	t.Helper()
	certPEM, keyPEM := ca.Issue(t, serial, time.Now().Add(24*time.Hour), "localhost", "127.0.0.1")
	for _, f := range []struct {
		path string
		data []byte
	}{
		{keyPath, keyPEM},
		{certPath, certPEM},
	} {
		if err := os.WriteFile(f.path+".new", f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.path+".new", f.path); err != nil {
			t.Fatal(err)
		}
	}
}

// startSlowServer is an MCP server of the Go SDK answering calls as event
// streams, whose one tool takes slowCallTime; started is told of each call.
// A drain must wait for a call whose answer streams like for any other.
func startSlowServer(t *testing.T) (url string, started <-chan struct{}) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "slow", Version: "1.0.0"}, nil)
	ch := make(chan struct{}, 4)
	mcp.AddTool(srv, &mcp.Tool{Name: "slow", Description: "answers after a while"},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			ch <- struct{}{}
			time.Sleep(slowCallTime)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "slow done"}}}, nil, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: true})
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs.URL + "/mcp", ch
}

// rpcClient speaks MCP over plain HTTP requests, as alice.
type rpcClient struct {
	t     *testing.T
	http  *http.Client
	url   string
	sid   string
	proto string
}

type rpcMessage struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (c *rpcClient) header(req *http.Request) {
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	if c.sid != "" {
		req.Header.Set("Mcp-Session-Id", c.sid)
	}
	if c.proto != "" {
		req.Header.Set("Mcp-Protocol-Version", c.proto)
	}
}

// post sends one JSON-RPC message; for a request (id > 0) it returns the
// response, from a JSON body or the event stream.
func (c *rpcClient) post(id int, method, params string) (rpcMessage, error) {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","method":%q,"params":%s}`, method, params)
	if id > 0 {
		body = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, id, method, params)
	}
	req, err := http.NewRequest("POST", c.url, strings.NewReader(body))
	if err != nil {
		return rpcMessage{}, err
	}
	c.header(req)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return rpcMessage{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return rpcMessage{}, err
	}
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
		c.sid = sid
	}
	if id == 0 {
		if resp.StatusCode != http.StatusAccepted {
			return rpcMessage{}, fmt.Errorf("%s: HTTP %d %s", method, resp.StatusCode, data)
		}
		return rpcMessage{}, nil
	}
	var msgs [][]byte
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		for _, line := range strings.Split(string(data), "\n") {
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				msgs = append(msgs, []byte(d))
			}
		}
	} else {
		msgs = append(msgs, data)
	}
	for _, m := range msgs {
		var msg rpcMessage
		if json.Unmarshal(m, &msg) == nil && string(msg.ID) == fmt.Sprint(id) {
			return msg, nil
		}
	}
	return rpcMessage{}, fmt.Errorf("%s: HTTP %d without the response: %s", method, resp.StatusCode, data)
}

func (c *rpcClient) initialize() {
	c.t.Helper()
	m, err := c.post(1, "initialize", `{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"reload-e2e","version":"1"}}`)
	if err != nil || m.Result == nil {
		c.t.Fatalf("initialize: %+v %v", m, err)
	}
	var r struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(m.Result, &r)
	c.proto = r.ProtocolVersion
	if _, err := c.post(0, "notifications/initialized", `{}`); err != nil {
		c.t.Fatal(err)
	}
}

// allowed calls tool and reports whether it was allowed (a result) or
// denied (a JSON-RPC error).
func (c *rpcClient) allowed(id int, tool string) (bool, error) {
	m, err := c.post(id, "tools/call", fmt.Sprintf(`{"name":%q,"arguments":{}}`, tool))
	if err != nil {
		return false, err
	}
	return m.Error == nil && m.Result != nil, nil
}

// sseStream is a standalone GET stream; it counts the bytes that arrive.
type sseStream struct {
	bytes atomic.Int64
	done  chan struct{}
	err   error
}

func (c *rpcClient) openStream(ctx context.Context) *sseStream {
	c.t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", c.url, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.header(req)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		c.t.Fatalf("GET stream: HTTP %d", resp.StatusCode)
	}
	s := &sseStream{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadBytes('\n')
			s.bytes.Add(int64(len(line)))
			if err != nil {
				s.err = err
				return
			}
		}
	}()
	return s
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestReloadAndCertRotation(t *testing.T) {
	dir := t.TempDir()
	g := newProcGroup(t, dir)
	upstreamAddr := freeAddr(t)
	g.start("go-everything", upstreamAddr, nil, everythingBin, "-http", upstreamAddr, "-stateless=false")
	slowURL, slowStarted := startSlowServer(t)

	ca := testpki.NewCA(t)
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair(t, ca, certPath, keyPath, 1001)
	listen, admin := freeAddr(t), freeAddr(t)
	frontend := "https://" + listen + "/mcp"
	cfgPath := filepath.Join(dir, "mcpgw.yaml")
	writeConfig := func(tools string) (badLine int) {
		t.Helper()
		cfg := fmt.Sprintf(`server:
  listen: %q
  tls: {cert: %s, key: %s}
  data_dir: %q
  admin: {listen: %q}
  keepalive: 1s
  shutdown_timeout: %s
identity:
  dev_users:
    - {token: %s, user: alice@example.com, groups: [engineers]}
applications:
  - name: everything
    frontend_url: %s
    upstream_url: http://%s/mcp
    rules:
      - name: engineers
        subjects: {groups: [engineers]}
        tools: %s
  - name: slow
    frontend_url: https://%s/slow
    upstream_url: %s
    rules:
      - {name: engineers, subjects: {groups: [engineers]}, tools: [slow]}
audit: {dir: %q, durability: async}
`, listen, certPath, keyPath, filepath.Join(dir, "data"), admin, reloadShutdownTimeout, aliceToken, frontend,
			upstreamAddr, tools, listen, slowURL, filepath.Join(dir, "audit"))
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		for i, l := range strings.Split(cfg, "\n") {
			if strings.Contains(l, "tools: "+tools) {
				return i + 1
			}
		}
		return 0
	}
	writeConfig(policyA)
	gw := g.start("mcpgw", listen, nil, mcpgwBin, "serve", "--config", cfgPath)
	hup := func() {
		t.Helper()
		if err := syscall.Kill(gw.Pid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	tlsConf := &tls.Config{RootCAs: ca.Pool}
	// The keep-alive client: one connection, counted.
	var dials atomic.Int32
	kaTransport := &http.Transport{
		TLSClientConfig: tlsConf,
		MaxConnsPerHost: 1,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	defer kaTransport.CloseIdleConnections()
	ka := &rpcClient{t: t, http: &http.Client{Transport: kaTransport, Timeout: 30 * time.Second}, url: frontend}
	ka.initialize()

	// The stream, on a connection of its own.
	streamTransport := &http.Transport{TLSClientConfig: tlsConf}
	defer streamTransport.CloseIdleConnections()
	sc := &rpcClient{t: t, http: &http.Client{Transport: streamTransport}, url: frontend, sid: ka.sid, proto: ka.proto}
	streamCtx, stopStream := context.WithCancel(context.Background())
	defer stopStream()
	stream := sc.openStream(streamCtx)
	// streamAlive checks that the stream still delivers (keep-alive
	// comments every second).
	streamAlive := func(when string) {
		t.Helper()
		n := stream.bytes.Load()
		if !waitFor(5*time.Second, func() bool { return stream.bytes.Load() > n }) {
			select {
			case <-stream.done:
				t.Fatalf("%s: the SSE stream ended: %v", when, stream.err)
			default:
				t.Fatalf("%s: nothing on the SSE stream for 5s", when)
			}
		}
	}
	streamAlive("at start")

	// The keep-alive client calls all the time, in the background too.
	var (
		callMu  sync.Mutex
		nextID  = 100
		callErr error
	)
	call := func(tool string) bool {
		t.Helper()
		callMu.Lock()
		defer callMu.Unlock()
		nextID++
		ok, err := ka.allowed(nextID, tool)
		if err != nil {
			t.Fatalf("tools/call %s on the keep-alive connection: %v", tool, err)
		}
		return ok
	}
	bgStop := make(chan struct{})
	bgDone := make(chan struct{})
	go func() {
		defer close(bgDone)
		for {
			select {
			case <-bgStop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			callMu.Lock()
			nextID++
			ok, err := ka.allowed(nextID, "test_simple_text")
			if err == nil && !ok {
				err = fmt.Errorf("test_simple_text denied")
			}
			if err != nil && callErr == nil {
				callErr = err
			}
			callMu.Unlock()
		}
	}()
	// policy says which policy is served: A allows progress and denies
	// image, B the other way round.
	policy := func() string {
		t.Helper()
		p, i := call("test_tool_with_progress"), call("test_image_content")
		switch {
		case p && !i:
			return "A"
		case i && !p:
			return "B"
		}
		return fmt.Sprintf("neither (progress allowed %v, image allowed %v)", p, i)
	}
	waitPolicy := func(want, when string) {
		t.Helper()
		var got string
		if !waitFor(10*time.Second, func() bool { got = policy(); return got == want }) {
			t.Fatalf("%s: policy %s served, want %s", when, got, want)
		}
	}
	logHas := func(s string) bool {
		b, _ := os.ReadFile(gw.LogPath)
		return bytes.Count(b, []byte(s)) > 0
	}
	logCount := func(s string) int {
		b, _ := os.ReadFile(gw.LogPath)
		return bytes.Count(b, []byte(s))
	}

	if got := policy(); got != "A" {
		t.Fatalf("at start: policy %s served, want A", got)
	}

	{
		t.Log("SIGHUP applies a changed policy")
		writeConfig(policyB)
		hup()
		waitPolicy("B", "after SIGHUP")
		streamAlive("after SIGHUP")
	}

	{
		t.Log("SIGHUP refuses a broken policy")
		before := logCount("reload refused")
		line := writeConfig(policyBroken)
		hup()
		want := fmt.Sprintf(`%s:%d: applications[0].rules[0].tools[1]: invalid RE2 pattern`, cfgPath, line)
		if !waitFor(10*time.Second, func() bool { return logCount("reload refused") > before }) {
			t.Fatalf("no refusal logged after SIGHUP with a broken policy")
		}
		if !logHas(want) {
			t.Errorf("the refusal does not name %q:\n%s", want, gw.Tail(5))
		}
		if got := policy(); got != "B" {
			t.Errorf("after a refused reload: policy %s served, want the old B", got)
		}
		streamAlive("after a refused SIGHUP")
	}

	token, err := os.ReadFile(filepath.Join(dir, "data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	// The admin API, called as the approvals test calls it.
	adminAPI := &approvalStack{admin: "http://" + admin}
	reloadAPI := func() (int, string) {
		t.Helper()
		return adminAPI.api(t, "POST", "/api/v1/reload", strings.TrimSpace(string(token)), "")
	}

	{
		t.Log("POST /api/v1/reload applies a changed policy")
		writeConfig(policyA)
		code, body := reloadAPI()
		if code != 200 || !strings.Contains(body, `"status":"reloaded"`) {
			t.Fatalf("reload: %d %s", code, body)
		}
		if got := policy(); got != "A" {
			t.Errorf("after the reload answered: policy %s served, want A", got)
		}
	}

	{
		t.Log("POST /api/v1/reload refuses a broken policy")
		line := writeConfig(policyBroken)
		code, body := reloadAPI()
		want := fmt.Sprintf(`%s:%d: applications[0].rules[0].tools[1]: invalid RE2 pattern`, cfgPath, line)
		if code != 422 || !strings.Contains(body, want) {
			t.Errorf("reload of a broken policy: %d %s, want 422 naming %q", code, body, want)
		}
		if got := policy(); got != "A" {
			t.Errorf("after a refused reload: policy %s served, want the old A", got)
		}
		streamAlive("after a refused reload")
	}
	writeConfig(policyA) // a good file again for what follows

	serial := func() int64 {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", listen, &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}

	{
		t.Log("a replaced certificate is served without a reload")
		if got := serial(); got != 1001 {
			t.Fatalf("serial %d served, want 1001", got)
		}
		writePair(t, ca, certPath, keyPath, 2002)
		var got int64
		if !waitFor(8*time.Second, func() bool { got = serial(); return got == 2002 }) {
			t.Fatalf("serial %d still served 8s after the files changed, want 2002", got)
		}
		if !logHas(`"serial":"7d2"`) {
			t.Errorf("the new certificate was not logged with its serial:\n%s", gw.Tail(5))
		}
		streamAlive("after the certificate changed")
		if got := policy(); got != "A" {
			t.Errorf("after the certificate changed: policy %s", got)
		}
	}

	close(bgStop)
	<-bgDone
	if callErr != nil {
		t.Errorf("background calls on the keep-alive connection: %v", callErr)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("the keep-alive client dialled %d connections, want 1 for the whole test", n)
	}
	select {
	case <-stream.done:
		t.Errorf("the SSE stream ended before shutdown: %v", stream.err)
	default:
	}

	{
		t.Log("SIGTERM drains an in-flight call and flushes its audit record")
		slow := &rpcClient{t: t, url: "https://" + listen + "/slow",
			http: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}, Timeout: 30 * time.Second}}
		slow.initialize()
		type answer struct {
			m   rpcMessage
			err error
		}
		done := make(chan answer, 1)
		go func() {
			m, err := slow.post(777, "tools/call", `{"name":"slow","arguments":{}}`)
			done <- answer{m, err}
		}()
		select {
		case <-slowStarted:
		case <-time.After(10 * time.Second):
			t.Fatal("the slow call did not reach its server")
		}
		type stopped struct {
			took   time.Duration
			killed bool
		}
		stop := make(chan stopped, 1)
		go func() {
			took, killed := gw.Stop(stopGrace)
			stop <- stopped{took, killed}
		}()
		a := <-done
		if a.err != nil || a.m.Error != nil || !strings.Contains(string(a.m.Result), "slow done") {
			t.Errorf("the in-flight call: %+v %v, want its result", a.m, a.err)
		}
		s := <-stop
		g.stop(gw)
		if s.killed || s.took > reloadShutdownTimeout+2*time.Second {
			t.Errorf("mcpgw took %v to exit after SIGTERM (killed %v), want within %v", s.took, s.killed, reloadShutdownTimeout)
		}
		if err := gw.ExitErr(); err != nil {
			t.Errorf("mcpgw exited with %v, want 0:\n%s", err, gw.Tail(10))
		}
		if s.took < slowCallTime/2 {
			t.Errorf("mcpgw exited %v after SIGTERM, before the in-flight call could finish", s.took)
		}
		select {
		case <-stream.done:
		case <-time.After(5 * time.Second):
			t.Errorf("the SSE stream is still open after mcpgw exited")
		}

		// The call's response record is in the audit log.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, mcpgwBin, "audit", "activity", "--app", "slow", "--json", "--all", "--config", cfgPath).CombinedOutput()
		if err != nil {
			t.Fatalf("mcpgw audit activity: %v\n%s", err, out)
		}
		found := false
		for _, l := range strings.Split(string(out), "\n") {
			var r struct {
				Message   string          `json:"message"`
				JSONRPCID json.RawMessage `json:"jsonrpc_id"`
				Status    string          `json:"status"`
			}
			if json.Unmarshal([]byte(l), &r) == nil && r.Message == "response" && string(r.JSONRPCID) == "777" && r.Status == "ok" {
				found = true
			}
		}
		if !found {
			t.Errorf("no response record of the drained call in the audit log:\n%s", out)
		}
	}
}
