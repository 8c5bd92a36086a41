package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// startBackend runs Serve for the test and returns its URL.
func startBackend(t *testing.T, cfg BackendConfig) string {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, cfg, func(a net.Addr) { addrc <- a }) }()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-errc:
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return "http://" + addr.String() + "/mcp"
}

// mcpPost posts body and returns the response and the JSON-RPC messages it
// carried (one for JSON; every data event for SSE), decoded.
func mcpPost(t *testing.T, url, body string, header map[string]string) (*http.Response, []map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []map[string]any
	decode := func(b []byte) {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("response %q is not JSON: %v", b, err)
		}
		msgs = append(msgs, m)
	}
	switch ct := resp.Header.Get("Content-Type"); {
	case len(raw) == 0:
	case strings.HasPrefix(ct, "text/event-stream"):
		for _, block := range strings.Split(string(raw), "\n\n") {
			for _, line := range strings.Split(block, "\n") {
				if data, ok := strings.CutPrefix(line, "data: "); ok {
					decode([]byte(data))
				}
			}
		}
	default:
		decode(raw)
	}
	return resp, msgs
}

const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`

func TestServeAnswers(t *testing.T) {
	for _, sse := range []bool{false, true} {
		for _, modern := range []bool{false, true} {
			t.Run(fmt.Sprintf("sse=%v/modern=%v", sse, modern), func(t *testing.T) {
				url := startBackend(t, BackendConfig{Tools: 25, SSE: sse})
				params := func(inner string) string {
					if !modern {
						if inner == "" {
							return ""
						}
						return `,"params":{` + inner + `}`
					}
					if inner == "" {
						return `,"params":{` + modernMeta + `}`
					}
					return `,"params":{` + inner + `,` + modernMeta + `}`
				}
				call := func(id int, method, inner string) map[string]any {
					t.Helper()
					resp, msgs := mcpPost(t, url, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q%s}`, id, method, params(inner)), nil)
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("%s: status %d, want 200", method, resp.StatusCode)
					}
					wantCT := "application/json"
					if sse {
						wantCT = "text/event-stream"
					}
					if got := resp.Header.Get("Content-Type"); got != wantCT && !strings.Contains(inner, "progress") {
						t.Errorf("%s: Content-Type %q, want %q", method, got, wantCT)
					}
					last := msgs[len(msgs)-1]
					if got := last["id"]; got != float64(id) {
						t.Errorf("%s: id %v, want %d", method, got, id)
					}
					if last["jsonrpc"] != "2.0" {
						t.Errorf("%s: jsonrpc %v", method, last["jsonrpc"])
					}
					return last
				}
				result := func(m map[string]any) map[string]any {
					t.Helper()
					r, ok := m["result"].(map[string]any)
					if !ok {
						t.Fatalf("no result in %v", m)
					}
					if modern && r["resultType"] != "complete" {
						t.Errorf("resultType %v, want complete", r["resultType"])
					}
					return r
				}

				tools := result(call(1, "tools/list", ""))["tools"].([]any)
				if len(tools) != 26 {
					t.Fatalf("tools/list: %d tools, want 26", len(tools))
				}
				first := tools[0].(map[string]any)
				if first["name"] != "tool_00000" || first["inputSchema"].(map[string]any)["type"] != "object" || first["description"] == "" {
					t.Errorf("first tool %v", first)
				}
				if tools[25].(map[string]any)["name"] != "echo" {
					t.Errorf("last tool %v, want echo", tools[25])
				}
				if modern {
					r := result(call(2, "tools/list", ""))
					if r["ttlMs"] != float64(0) || r["cacheScope"] != "public" {
						t.Errorf("modern tools/list: ttlMs %v cacheScope %v", r["ttlMs"], r["cacheScope"])
					}
				}
				if p := result(call(3, "prompts/list", ""))["prompts"].([]any); len(p) == 0 {
					t.Error("prompts/list: empty")
				}
				if r := result(call(4, "resources/list", ""))["resources"].([]any); len(r) == 0 {
					t.Error("resources/list: empty")
				}
				result(call(5, "ping", ""))

				r := result(call(6, "tools/call", `"name":"echo","arguments":{"data":"abcdef"}`))
				text := r["content"].([]any)[0].(map[string]any)["text"]
				if text != "received 17 bytes of arguments" {
					t.Errorf("echo text %q", text)
				}
				result(call(7, "tools/call", `"name":"tool_00024","arguments":{}`))

				meta := `"_meta":{"progressToken":"tok"}`
				if modern {
					meta = `"_meta":{"progressToken":"tok","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`
				}
				resp, msgs := mcpPost(t, url, `{"jsonrpc":"2.0","id":"p","method":"tools/call","params":{"name":"echo","arguments":{"progress":3,"data":"x"},`+meta+`}}`, nil)
				if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
					t.Errorf("progress: Content-Type %q", ct)
				}
				if len(msgs) != 4 {
					t.Fatalf("progress: %d messages, want 3 notifications and the result", len(msgs))
				}
				for i, m := range msgs[:3] {
					want := map[string]any{"jsonrpc": "2.0", "method": "notifications/progress", "params": map[string]any{"progressToken": "tok", "progress": float64(i + 1), "total": float64(3)}}
					if diff := cmp.Diff(want, m); diff != "" {
						t.Errorf("progress event %d (-want +got):\n%s", i, diff)
					}
				}
				if msgs[3]["id"] != "p" {
					t.Errorf("progress result id %v", msgs[3]["id"])
				}

				e := call(8, "tools/call", `"name":"nope","arguments":{}`)
				if code := e["error"].(map[string]any)["code"]; code != float64(-32602) {
					t.Errorf("unknown tool: code %v, want -32602", code)
				}
				if !modern {
					e = call(9, "nope/nope", "")
					if code := e["error"].(map[string]any)["code"]; code != float64(-32601) {
						t.Errorf("unknown method: code %v, want -32601", code)
					}
				}

				resp, _ = mcpPost(t, url, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, nil)
				if resp.StatusCode != http.StatusAccepted {
					t.Errorf("notification: status %d, want 202", resp.StatusCode)
				}
			})
		}
	}
}

func TestServeModernUnknownMethod(t *testing.T) {
	url := startBackend(t, BackendConfig{Tools: 1})
	resp, msgs := mcpPost(t, url, `{"jsonrpc":"2.0","id":1,"method":"nope","params":{`+modernMeta+`}}`, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status %d, want 404 (MCP-REQUIREMENTS.md 1.8.2)", resp.StatusCode)
	}
	if len(msgs) != 1 || msgs[0]["error"].(map[string]any)["code"] != float64(-32601) {
		t.Errorf("body %v, want error -32601", msgs)
	}
}

func TestServeInitializeVersion(t *testing.T) {
	url := startBackend(t, BackendConfig{Tools: 1})
	for _, tc := range []struct{ asked, want string }{
		{"2024-11-05", "2024-11-05"},
		{"2025-03-26", "2025-03-26"},
		{"2025-06-18", "2025-06-18"},
		{"2025-11-25", "2025-11-25"},
		{"1999-01-01", "2025-11-25"},
	} {
		t.Run(tc.asked, func(t *testing.T) {
			resp, msgs := mcpPost(t, url, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"`+tc.asked+`","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, nil)
			if resp.StatusCode != http.StatusOK || len(msgs) != 1 {
				t.Fatalf("status %d, %d messages", resp.StatusCode, len(msgs))
			}
			r := msgs[0]["result"].(map[string]any)
			if got := r["protocolVersion"]; got != tc.want {
				t.Errorf("got protocolVersion %v, want %s", got, tc.want)
			}
			want := map[string]any{"tools": map[string]any{}, "prompts": map[string]any{}, "resources": map[string]any{}}
			if diff := cmp.Diff(want, r["capabilities"]); diff != "" {
				t.Errorf("capabilities (-want +got):\n%s", diff)
			}
			if r["serverInfo"].(map[string]any)["name"] == "" {
				t.Error("no serverInfo.name")
			}
			if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
				t.Errorf("stateless backend sent Mcp-Session-Id %q", sid)
			}
		})
	}
}

func TestServeSessions(t *testing.T) {
	url := startBackend(t, BackendConfig{Tools: 1, Sessions: true})
	resp, _ := mcpPost(t, url, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, nil)
	sid := resp.Header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatal("no Mcp-Session-Id")
	}
	for _, c := range sid {
		if c < 0x21 || c > 0x7e {
			t.Fatalf("session id %q has a character outside visible ASCII", sid)
		}
	}
	hdr := map[string]string{"Mcp-Session-Id": sid}
	if resp, _ := mcpPost(t, url, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, hdr); resp.StatusCode != http.StatusOK {
		t.Errorf("ping in session: status %d", resp.StatusCode)
	}
	if resp, _ := mcpPost(t, url, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{"Mcp-Session-Id": "unknown"}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("ping in unknown session: status %d, want 404", resp.StatusCode)
	}

	get := func(sid string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Mcp-Session-Id", sid)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := get("unknown"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET unknown session: status %d, want 404", resp.StatusCode)
		resp.Body.Close()
	}
	stream := get(sid)
	if stream.StatusCode != http.StatusOK || stream.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET stream: status %d, Content-Type %q", stream.StatusCode, stream.Header.Get("Content-Type"))
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, bufio.NewReader(stream.Body))
		ended <- err
	}()

	req, _ := http.NewRequest(http.MethodDelete, url, nil)
	req.Header.Set("Mcp-Session-Id", sid)
	del, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	del.Body.Close()
	if del.StatusCode != http.StatusOK {
		t.Errorf("DELETE: status %d, want 200", del.StatusCode)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the GET stream did not end when its session was deleted")
	}
	stream.Body.Close()
	if resp, _ := mcpPost(t, url, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, hdr); resp.StatusCode != http.StatusNotFound {
		t.Errorf("ping after DELETE: status %d, want 404", resp.StatusCode)
	}
}

func TestServeNoSessionsRefusesGet(t *testing.T) {
	url := startBackend(t, BackendConfig{Tools: 1})
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		req, _ := http.NewRequest(method, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
			t.Errorf("%s: status %d Allow %q, want 405 POST", method, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

// TestServeGoSDKClient connects the official Go SDK client to the backend
// in both eras, lists the tools and calls echo.
func TestServeGoSDKClient(t *testing.T) {
	for _, tc := range []struct {
		version string
		cfg     BackendConfig
	}{
		{"2025-11-25", BackendConfig{Tools: 100, Sessions: true}},
		{"2025-06-18", BackendConfig{Tools: 100, SSE: true}},
		{"2026-07-28", BackendConfig{Tools: 100}},
		{"2026-07-28", BackendConfig{Tools: 100, SSE: true}},
	} {
		t.Run(fmt.Sprintf("%s/sse=%v/sessions=%v", tc.version, tc.cfg.SSE, tc.cfg.Sessions), func(t *testing.T) {
			url := startBackend(t, tc.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			client := mcp.NewClient(&mcp.Implementation{Name: "bench-test", Version: "1"}, nil)
			cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: tc.version})
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer cs.Close()
			if got := cs.InitializeResult().ProtocolVersion; got != tc.version {
				t.Errorf("negotiated %s, want %s", got, tc.version)
			}
			n := 0
			for tool, err := range cs.Tools(ctx, nil) {
				if err != nil {
					t.Fatalf("Tools: %v", err)
				}
				if tool.Name == "" || tool.InputSchema == nil {
					t.Errorf("tool %+v", tool)
				}
				n++
			}
			if n != 101 {
				t.Errorf("listed %d tools, want 101", n)
			}
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"data": "hello"}})
			if err != nil {
				t.Fatalf("CallTool: %v", err)
			}
			if res.IsError || len(res.Content) != 1 {
				t.Fatalf("CallTool result %+v", res)
			}
			if text := res.Content[0].(*mcp.TextContent).Text; text != "received 16 bytes of arguments" {
				t.Errorf("echo text %q", text)
			}
			if _, err := cs.ListPrompts(ctx, nil); err != nil {
				t.Errorf("ListPrompts: %v", err)
			}
			if _, err := cs.ListResources(ctx, nil); err != nil {
				t.Errorf("ListResources: %v", err)
			}
		})
	}
}

// The idle GET stream writes its chunked framing by hand; a strict decoder
// (fasthttp's, net/http's) must read back exactly one keep-alive comment.
func TestKeepAliveChunkFraming(t *testing.T) {
	r := httputil.NewChunkedReader(bytes.NewReader(append(append([]byte(nil), keepAliveChunk...), "0\r\n\r\n"...)))
	got, err := io.ReadAll(r)
	if err != nil || string(got) != keepAliveComment {
		t.Errorf("decoded %q (%v), want %q", got, err, keepAliveComment)
	}
}
