package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var eras = []struct{ name, version string }{
	{"legacy", "2025-11-25"},
	{"modern", "2026-07-28"},
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("ListTools: %v", err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

func TestListsAreFilteredPerUser(t *testing.T) {
	for _, stateless := range []bool{false, true} {
		up := startUpstream(t, stateless)
		gw := startGateway(t, appDef{name: "app", path: "/mcp", upstream: up.url})
		for _, era := range eras {
			if era.version == "2026-07-28" && !stateless {
				continue // the stateful Go SDK server serves the legacy era only
			}
			t.Run(era.name+"/stateless="+map[bool]string{true: "yes", false: "no"}[stateless], func(t *testing.T) {
				alice := connect(t, gw.base+"/mcp", aliceToken, era.version, nil)
				bob := connect(t, gw.base+"/mcp", bobToken, era.version, nil)
				if got, want := toolNames(t, alice), []string{"get_item", "list_items", "slow_progress"}; !cmp.Equal(got, want) {
					t.Errorf("alice tools/list: got %v, want %v", got, want)
				}
				if got, want := toolNames(t, bob), []string{"delete_items", "list_items"}; !cmp.Equal(got, want) {
					t.Errorf("bob tools/list: got %v, want %v", got, want)
				}
			})
		}
	}
}

func callTool(cs *mcp.ClientSession, name string, args map[string]any) (*mcp.CallToolResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
}

func TestCallsAreDecidedAndDeniedCallsNeverReachUpstream(t *testing.T) {
	up := startUpstream(t, true)
	gw := startGateway(t, appDef{name: "app", path: "/mcp", upstream: up.url})
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			alice := connect(t, gw.base+"/mcp", aliceToken, era.version, nil)
			bob := connect(t, gw.base+"/mcp", bobToken, era.version, nil)
			before := up.count("list_items")
			res, err := callTool(alice, "list_items", nil)
			if err != nil || res.IsError {
				t.Fatalf("alice list_items: got %v %v, want success", res, err)
			}
			if got := up.count("list_items"); got != before+1 {
				t.Errorf("upstream list_items calls: got %d, want %d", got, before+1)
			}
			for _, c := range []struct {
				who  string
				cs   *mcp.ClientSession
				tool string
				args map[string]any
			}{
				{"alice", alice, "get_secret", nil},                                 // deny_tools wins
				{"alice", alice, "delete_items", nil},                               // no rule allows it
				{"alice", alice, "unlist_all", nil},                                 // list_.* must match whole names
				{"bob", bob, "delete_items", map[string]any{"environment": "prod"}}, // argument constraint fails
				{"bob", bob, "delete_items", nil},                                   // constraint on an absent argument fails
			} {
				before := up.count(c.tool)
				_, err := callTool(c.cs, c.tool, c.args)
				if err == nil || !strings.Contains(err.Error(), "Unknown tool") {
					t.Errorf("%s %s %v: got err %v, want an unknown-tool error", c.who, c.tool, c.args, err)
				}
				if got := up.count(c.tool) - before; got != 0 {
					t.Errorf("%s %s reached the upstream %d times, want 0", c.who, c.tool, got)
				}
			}
			res, err = callTool(bob, "delete_items", map[string]any{"environment": "staging"})
			if err != nil || res.IsError {
				t.Fatalf("bob delete_items staging: got %v %v, want success", res, err)
			}
		})
	}
}

func TestProgressStreamsOverSSE(t *testing.T) {
	up := startUpstream(t, true)
	gw := startGateway(t, appDef{name: "app", path: "/mcp", upstream: up.url})
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			var mu sync.Mutex
			var progress []float64
			alice := connect(t, gw.base+"/mcp", aliceToken, era.version, &mcp.ClientOptions{
				ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
					mu.Lock()
					progress = append(progress, req.Params.Progress)
					mu.Unlock()
				},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			params := &mcp.CallToolParams{Name: "slow_progress"}
			params.SetProgressToken("tok-1")
			res, err := alice.CallTool(ctx, params)
			if err != nil || res.IsError {
				t.Fatalf("slow_progress: got %v %v", res, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := []float64{1, 2, 3}; !cmp.Equal(progress, want) {
				t.Errorf("progress: got %v, want %v", progress, want)
			}
		})
	}
}

// post sends a raw request to the gateway.
func post(t *testing.T, url, token, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// forge changes one character in the middle of a session id: the result
// is always a different id (replacing the last two characters with "AA"
// was not, for the 1 in 256 to 1,024 ids that end in "AA"), and a data
// character, not one that carries only base64 padding bits.
func forge(sid string) string {
	b := []byte(sid)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

func TestSessions(t *testing.T) {
	up := startUpstream(t, false)
	gw := startGateway(t, appDef{name: "app", path: "/mcp", upstream: up.url}, appDef{name: "other", path: "/other", upstream: up.url})
	resp, _ := post(t, gw.base+"/mcp", aliceToken, initBody, nil)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: got %d session %q, want 200 and a session id", resp.StatusCode, sid)
	}
	if n := len(resp.Header.Values("Mcp-Session-Id")); n != 1 {
		t.Errorf("Mcp-Session-Id headers: got %d, want exactly 1", n)
	}
	if upSID := up.lastHeaders().Get("Mcp-Session-Id"); upSID != "" && strings.Contains(sid, upSID) {
		t.Errorf("the gateway's session id shows the upstream's")
	}
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	hdr := map[string]string{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"}
	if resp, body := post(t, gw.base+"/mcp", aliceToken, list, hdr); resp.StatusCode != 200 {
		t.Fatalf("alice in her own session: got %d %s, want 200", resp.StatusCode, body)
	}
	for _, c := range []struct {
		name, url, token, sid string
	}{
		{"another user's token", gw.base + "/mcp", bobToken, sid},
		{"another application", gw.base + "/other", aliceToken, sid},
		{"forged", gw.base + "/mcp", aliceToken, forge(sid)},
		{"garbage", gw.base + "/mcp", aliceToken, "not-a-session"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{"Mcp-Session-Id": c.sid, "MCP-Protocol-Version": "2025-06-18"}
			if resp, body := post(t, c.url, c.token, list, h); resp.StatusCode != 404 {
				t.Errorf("got %d %s, want 404", resp.StatusCode, body)
			}
		})
	}
	// DELETE ends the session; the id then gets 404.
	req, _ := http.NewRequest(http.MethodDelete, gw.base+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	req.Header.Set("Mcp-Session-Id", sid)
	dresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	dresp.Body.Close()
	if dresp.StatusCode/100 != 2 {
		t.Errorf("DELETE: got %d, want 2xx", dresp.StatusCode)
	}
	if resp, body := post(t, gw.base+"/mcp", aliceToken, list, hdr); resp.StatusCode != 404 {
		t.Errorf("after DELETE: got %d %s, want 404", resp.StatusCode, body)
	}
}

func rpcError(t *testing.T, body string) (code int, msg string) {
	t.Helper()
	var m struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.Error == nil {
		t.Fatalf("want a JSON-RPC error body, got %q (%v)", body, err)
	}
	return m.Error.Code, m.Error.Message
}

func TestRefusals(t *testing.T) {
	up := startUpstream(t, true)
	gw := startGateway(t, appDef{name: "app", path: "/mcp", upstream: up.url},
		appDef{name: "down", path: "/down", upstream: "http://127.0.0.1:1/mcp"})
	call := func(name string) string {
		return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + name + `","arguments":{}}}`
	}
	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_items","arguments":{"x":"` + strings.Repeat("a", 70<<10) + `"}}}`
	cases := []struct {
		name       string
		path       string
		token      string
		body       string
		hdr        map[string]string
		wantStatus int
		wantCode   int // 0: no JSON-RPC error body expected
	}{
		{"no token", "/mcp", "", call("list_items"), nil, 401, -32600},
		{"bad token", "/mcp", "nope-nope-nope", call("list_items"), nil, 401, -32600},
		{"invalid JSON", "/mcp", aliceToken, `{"jsonrpc":"2.0",`, nil, 400, -32700},
		{"invalid UTF-8", "/mcp", aliceToken, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"list_\xff\"}}", nil, 400, -32700},
		{"trailing data", "/mcp", aliceToken, call("list_items") + `{}`, nil, 400, -32700},
		{"duplicate name", "/mcp", aliceToken, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_items","name":"delete_items"}}`, nil, 400, -32600},
		{"name differing by case", "/mcp", aliceToken, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_items","Name":"delete_items"}}`, nil, 400, -32600},
		{"escaped method still checked", "/mcp", aliceToken, `{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"delete\u005fitems"}}`, nil, 200, -32602},
		{"deep nesting", "/mcp", aliceToken, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_items","arguments":` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70) + `}}`, nil, 400, -32700},
		{"batch outside 2025-03-26", "/mcp", aliceToken, `[` + call("list_items") + `]`, nil, 400, -32600},
		{"oversize body", "/mcp", aliceToken, big, nil, 413, -32600},
		{"unknown method", "/mcp", aliceToken, `{"jsonrpc":"2.0","id":1,"method":"tools/call2","params":{"name":"x"}}`, nil, 200, -32601},
		{"wrong content type", "/mcp", aliceToken, call("list_items"), map[string]string{"Content-Type": "text/plain"}, 415, -32600},
		{"foreign origin", "/mcp", aliceToken, call("list_items"), map[string]string{"Origin": "http://evil.example.com"}, 403, -32600},
		{"null origin", "/mcp", aliceToken, call("list_items"), map[string]string{"Origin": "null"}, 403, -32600},
		{"upstream down", "/down", aliceToken, call("list_items"), nil, 502, -31003},
		{"notification accepted", "/mcp", aliceToken, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, nil, 202, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := post(t, gw.base+c.path, c.token, c.body, c.hdr)
			if resp.StatusCode != c.wantStatus {
				t.Fatalf("status: got %d (%s), want %d", resp.StatusCode, body, c.wantStatus)
			}
			if c.wantCode == 0 {
				if body != "" {
					t.Errorf("body: got %q, want none", body)
				}
				return
			}
			if code, msg := rpcError(t, body); code != c.wantCode {
				t.Errorf("JSON-RPC code: got %d (%s), want %d", code, msg, c.wantCode)
			}
			if c.wantStatus == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate: got %q, want a Bearer challenge", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	if got := up.count("delete_items"); got != 0 {
		t.Errorf("refused calls reached the upstream %d times", got)
	}
}

func TestHeadersToUpstream(t *testing.T) {
	up := startUpstream(t, true)
	gw := startGateway(t, appDef{name: "app", path: "/mcp", upstream: up.url,
		headers: []Header{{Name: "X-Api-Key", Value: "injected-secret"}}})
	_, _ = post(t, gw.base+"/mcp", aliceToken, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_items"}}`,
		map[string]string{"X-Forwarded-For": "10.0.0.1", "Cookie": "a=b", "Mcp-Session-Id": ""})
	h := up.lastHeaders()
	if got := h.Get("Authorization"); got != "" {
		t.Errorf("upstream saw Authorization %q, want none", got)
	}
	if got := h.Get("X-Api-Key"); got != "injected-secret" {
		t.Errorf("upstream X-Api-Key: got %q, want the configured value", got)
	}
	for _, name := range []string{"X-Forwarded-For", "Cookie"} {
		if got := h.Get(name); got != "" {
			t.Errorf("upstream saw %s %q, want none", name, got)
		}
	}
	if got := h.Get("Accept"); got != "application/json, text/event-stream" {
		t.Errorf("upstream Accept: got %q", got)
	}
}

func TestGETWithoutSessionIs405(t *testing.T) {
	up := startUpstream(t, true)
	gw := startGateway(t, appDef{name: "app", path: "/mcp", upstream: up.url})
	req, _ := http.NewRequest(http.MethodGet, gw.base+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") == "" {
		t.Errorf("GET without session: got %d Allow %q, want 405 with Allow", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// A dual-era client probes with a 2026-07-28 request first and falls back to
// initialize on a legacy answer (MCP-REQUIREMENTS.md 1.8.12); through the
// gateway it must end up in the era the upstream serves.
func TestEraProbingFallsBack(t *testing.T) {
	for _, c := range []struct {
		name      string
		stateless bool
		want      string
	}{
		{"legacy-only upstream", false, "2025-11-25"},
		{"dual-era upstream", true, "2026-07-28"},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := startUpstream(t, c.stateless)
			gw := startGateway(t, appDef{name: "app", path: "/mcp", upstream: up.url})
			cs := connect(t, gw.base+"/mcp", aliceToken, "", nil)
			if got := cs.InitializeResult().ProtocolVersion; got != c.want {
				t.Errorf("negotiated %q, want %q", got, c.want)
			}
			if got, want := toolNames(t, cs), []string{"get_item", "list_items", "slow_progress"}; !cmp.Equal(got, want) {
				t.Errorf("tools/list after probing: got %v, want %v", got, want)
			}
		})
	}
}

// A tool allowed only through an approval rule is listed, but a call is
// answered by the gateway with the approval error and never forwarded
// until grants exist (DESIGN.md "Policy semantics").
func TestApprovalOnlyToolsAreVisibleButRefused(t *testing.T) {
	up := startUpstream(t, true)
	gw := startGateway(t, appDef{name: "app", path: "/mcp", upstream: up.url})
	resp, body := post(t, gw.base+"/mcp", carolToken, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"delete_items"`) {
		t.Fatalf("tools/list: got %d, want delete_items listed for approval; body %s", resp.StatusCode, body)
	}
	resp, body = post(t, gw.base+"/mcp", carolToken, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_items"}}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("tools/call: got %d %s, want 200 with a JSON-RPC error", resp.StatusCode, body)
	}
	if code, msg := rpcError(t, body); code != codeApprovalRequired || !strings.Contains(msg, "approval") {
		t.Errorf("got %d %q, want %d and a message about approval", code, msg, codeApprovalRequired)
	}
	if got := up.count("delete_items"); got != 0 {
		t.Errorf("the call reached the upstream %d times, want 0", got)
	}
}
