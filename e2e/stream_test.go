//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
	"testing"
	"time"
)

// disconnectGrace is how long mcpgw may take to end the upstream request
// after its client went away.
const disconnectGrace = 5 * time.Second

// TestClientDisconnect checks what mcpgw does with the upstream request
// when a client goes away in the middle of a stream. A standalone GET stream
// and a 2026-07-28 request end at once (in the modern era closing the
// stream is the cancel signal, MCP-REQUIREMENTS.md 1.8.9). A legacy POST
// stream is not cancelled: disconnection is not cancellation there, and the
// gateway MUST NOT end upstream work for it (1.2.7).
func TestClientDisconnect(t *testing.T) {
	s := startStack(t, legacy)

	t.Run("legacy GET stream ends upstream", func(t *testing.T) {
		sid, version := initialize(t, s.URL, aliceToken)
		resp, cancel := openStream(t, http.MethodGet, s.URL, aliceToken, sid, version, nil)
		if resp.StatusCode != http.StatusOK {
			cancel()
			t.Fatalf("GET: got %d, want 200", resp.StatusCode)
		}
		if !s.Upstream.waitActive("GET", 1, disconnectGrace) {
			cancel()
			t.Fatalf("upstream has %d GET streams open, want 1", s.Upstream.active("GET"))
		}
		cancel()
		if !s.Upstream.waitActive("GET", 0, disconnectGrace) {
			t.Errorf("upstream GET stream still open %v after the client went away", disconnectGrace)
		}
	})

	t.Run("legacy POST stream is not cancelled", func(t *testing.T) {
		params := map[string]any{
			"protocolVersion": "2025-11-25",
			"capabilities":    map[string]any{"elicitation": map[string]any{}},
			"clientInfo":      map[string]any{"name": "mcpgw-e2e-raw", "version": "1.0.0"},
		}
		sid, version := initializeWith(t, s.URL, bobToken, params)
		call := rpcRequest(7, "tools/call", map[string]any{"name": "test_elicitation", "arguments": map[string]any{"message": "still there?"}})
		resp, cancel := openStream(t, http.MethodPost, s.URL, bobToken, sid, version, call)
		defer cancel()
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != "text/event-stream" {
			t.Fatalf("tools/call test_elicitation: got %d %q, want 200 text/event-stream", resp.StatusCode, mt)
		}
		if got := firstRequest(t, resp); got != "elicitation/create" {
			t.Fatalf("first server-to-client request on the stream is %q, want elicitation/create", got)
		}
		if n := s.Upstream.active("POST tools/call"); n != 1 {
			t.Fatalf("upstream is serving %d tools/call, want 1", n)
		}
		cancel()
		if s.Upstream.waitActive("POST tools/call", 0, time.Second) {
			t.Errorf("upstream tools/call ended within 1s of the client going away; a legacy disconnect is not a cancellation")
		}
	})

	t.Run("modern request is cancelled", func(t *testing.T) {
		m := startStack(t, modern)
		body := rpcRequest(9, "subscriptions/listen", map[string]any{
			"_meta": map[string]any{
				"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
				"io.modelcontextprotocol/clientCapabilities": map[string]any{},
			},
			"notifications": map[string]any{"toolsListChanged": true},
		})
		resp, cancel := openStream(t, http.MethodPost, m.URL, aliceToken, "", "2026-07-28", body, func(r *http.Request) {
			r.Header.Del("Mcp-Session-Id")
			r.Header.Set("Mcp-Method", "subscriptions/listen")
		})
		defer cancel()
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != "text/event-stream" {
			t.Fatalf("subscriptions/listen: got %d %q, want 200 text/event-stream", resp.StatusCode, mt)
		}
		if !m.Upstream.waitActive("POST subscriptions/listen", 1, disconnectGrace) {
			t.Fatalf("upstream is serving %d subscriptions/listen, want 1", m.Upstream.active("POST subscriptions/listen"))
		}
		cancel()
		if !m.Upstream.waitActive("POST subscriptions/listen", 0, disconnectGrace) {
			t.Errorf("upstream subscriptions/listen still open %v after the client went away", disconnectGrace)
		}
	})
}

// openStream sends a request whose response is a stream and returns once the
// response headers are in; cancel abandons it (the client goes away).
func openStream(t *testing.T, method, endpoint, token, sid, version string, body any, edits ...func(*http.Request)) (*http.Response, context.CancelFunc) {
	t.Helper()
	var rd io.Reader
	accept := "text/event-stream"
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
		accept = "application/json, text/event-stream"
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	req, err := http.NewRequestWithContext(ctx, method, endpoint, rd)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", version)
	for _, edit := range edits {
		edit(req)
	}
	headers := time.AfterFunc(10*time.Second, cancel)
	resp, err := http.DefaultClient.Do(req)
	headers.Stop()
	if err != nil {
		cancel()
		t.Fatalf("%s %s: no response headers: %v", method, endpoint, err)
	}
	return resp, func() {
		cancel()
		resp.Body.Close()
	}
}

// firstRequest reads SSE events until one carries a JSON-RPC request and
// returns its method, bounded by clientTimeout.
func firstRequest(t *testing.T, resp *http.Response) string {
	t.Helper()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data:")
			if !ok {
				continue
			}
			var msg struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
			}
			if json.Unmarshal([]byte(strings.TrimSpace(data)), &msg) == nil && msg.Method != "" && len(msg.ID) > 0 {
				found <- msg.Method
				return
			}
		}
		found <- ""
	}()
	select {
	case m := <-found:
		return m
	case <-time.After(clientTimeout):
		t.Fatalf("no server-to-client request on the stream within %v", clientTimeout)
		return ""
	}
}
