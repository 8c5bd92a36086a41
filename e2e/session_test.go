//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestSessionBinding checks with raw HTTP that an MCP session belongs to the
// user who opened it: another user's token, a garbled or forged id, or no
// token at all get nowhere, and nothing of it reaches the upstream.
func TestSessionBinding(t *testing.T) {
	s := startStack(t, legacy)
	sid, version := initialize(t, s.URL, aliceToken)

	listsBefore := s.Upstream.count("tools/list", "")
	cases := []struct {
		name          string
		method, token string
		sid           string
		want          int
		forwarded     bool // a tools/list reaches the upstream
	}{
		{"owner lists tools", http.MethodPost, aliceToken, sid, http.StatusOK, true},
		{"bob presents alice's session", http.MethodPost, bobToken, sid, http.StatusNotFound, false},
		{"alice presents a garbled session id", http.MethodPost, aliceToken, garble(sid), http.StatusNotFound, false},
		{"alice presents a forged session id", http.MethodPost, aliceToken, "forged-session-0000000000000000", http.StatusNotFound, false},
		{"alice's id with a suffix", http.MethodPost, aliceToken, sid + "A", http.StatusNotFound, false},
		{"bob deletes alice's session", http.MethodDelete, bobToken, sid, http.StatusNotFound, false},
		{"owner still lists tools", http.MethodPost, aliceToken, sid, http.StatusOK, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Upstream.count("tools/list", "")
			var body any
			if tc.method == http.MethodPost {
				body = rpcRequest(i+10, "tools/list", map[string]any{})
			}
			resp := send(t, tc.method, s.URL, tc.token, tc.sid, version, body)
			if resp.status != tc.want {
				t.Errorf("%s with token %s and session %q: got %d, want %d; body: %s", tc.method, tc.token, tc.sid, resp.status, tc.want, resp.short())
			}
			if tc.want == http.StatusOK {
				if _, ok := resp.result(i + 10)["tools"]; !ok {
					t.Errorf("got body %s, want a tools/list result", resp.short())
				}
			}
			forwarded := s.Upstream.count("tools/list", "") - before
			if tc.forwarded != (forwarded > 0) {
				t.Errorf("upstream saw %d tools/list, want forwarded=%v", forwarded, tc.forwarded)
			}
		})
	}
	if got, want := s.Upstream.count("tools/list", "")-listsBefore, 2; got != want {
		t.Errorf("upstream saw %d tools/list in all, want %d", got, want)
	}

	t.Run("no token", func(t *testing.T) {
		for _, sessionID := range []string{"", sid} {
			resp := send(t, http.MethodPost, s.URL, "", sessionID, version, rpcRequest(99, "tools/list", map[string]any{}))
			if resp.status != http.StatusUnauthorized {
				t.Errorf("session %q: got %d, want 401; body: %s", sessionID, resp.status, resp.short())
			}
			wa := resp.header.Get("WWW-Authenticate")
			// resource_metadata joins the challenge with the protected
			// resource metadata endpoint of the OAuth step (DESIGN.md 5).
			if !strings.HasPrefix(wa, "Bearer ") {
				t.Errorf("session %q: got WWW-Authenticate %q, want a Bearer challenge", sessionID, wa)
			}
		}
	})
	t.Run("a wrong token", func(t *testing.T) {
		resp := send(t, http.MethodPost, s.URL, "mallory-token-0123456789", sid, version, rpcRequest(98, "tools/list", map[string]any{}))
		if resp.status != http.StatusUnauthorized {
			t.Errorf("got %d, want 401; body: %s", resp.status, resp.short())
		}
	})
	t.Run("owner ends the session", func(t *testing.T) {
		if resp := send(t, http.MethodDelete, s.URL, aliceToken, sid, version, nil); resp.status/100 != 2 {
			t.Fatalf("DELETE: got %d, want 2xx; body: %s", resp.status, resp.short())
		}
		resp := send(t, http.MethodPost, s.URL, aliceToken, sid, version, rpcRequest(97, "tools/list", map[string]any{}))
		if resp.status != http.StatusNotFound {
			t.Errorf("after DELETE: got %d, want 404; body: %s", resp.status, resp.short())
		}
	})
	t.Run("client sees mcpgw's session id, not the upstream's", func(t *testing.T) {
		for _, id := range s.Upstream.upstreamSessionIDs() {
			if id == sid {
				t.Errorf("client's session id %q is the upstream's own", sid)
			}
		}
	})
}

// TestOriginAndHost checks the browser and DNS-rebinding defences on a
// loopback listener: a foreign Origin or Host is refused even with a valid
// token, and never forwarded; the frontend's own origin is accepted.
func TestOriginAndHost(t *testing.T) {
	s := startStack(t, legacy)
	own, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*http.Request)
		ok   bool
	}{
		{"foreign Origin", func(r *http.Request) { r.Header.Set("Origin", "http://evil.example.com") }, false},
		{"foreign Host", func(r *http.Request) { r.Host = "evil.example.com" }, false},
		{"foreign Host and Origin", func(r *http.Request) {
			r.Host = "evil.example.com"
			r.Header.Set("Origin", "http://evil.example.com")
		}, false},
		{"own Origin", func(r *http.Request) { r.Header.Set("Origin", own.Scheme+"://"+own.Host) }, true},
		{"no Origin", func(*http.Request) {}, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Upstream.count("initialize", "")
			resp := send(t, http.MethodPost, s.URL, aliceToken, "", "", rpcRequest(i+1, "initialize", initializeParams), tc.edit)
			forwarded := s.Upstream.count("initialize", "") - before
			if tc.ok {
				if resp.status != http.StatusOK || forwarded != 1 {
					t.Errorf("got %d and %d forwarded, want 200 and 1; body: %s", resp.status, forwarded, resp.short())
				}
				return
			}
			if resp.status/100 != 4 || resp.status == http.StatusUnauthorized || forwarded != 0 {
				t.Errorf("got %d and %d forwarded, want a 4xx refusal other than 401 and nothing forwarded; body: %s", resp.status, forwarded, resp.short())
			}
		})
	}
}

var initializeParams = map[string]any{
	"protocolVersion": "2025-11-25",
	"capabilities":    map[string]any{},
	"clientInfo":      map[string]any{"name": "mcpgw-e2e-raw", "version": "1.0.0"},
}

// initialize opens a legacy-era session as token's user, declaring no client
// capabilities, and returns the session id and the negotiated protocol
// version.
func initialize(t *testing.T, endpoint, token string) (sid, version string) {
	t.Helper()
	return initializeWith(t, endpoint, token, initializeParams)
}

func initializeWith(t *testing.T, endpoint, token string, params map[string]any) (sid, version string) {
	t.Helper()
	resp := send(t, http.MethodPost, endpoint, token, "", "", rpcRequest(1, "initialize", params))
	if resp.status != http.StatusOK {
		t.Fatalf("initialize: got %d, want 200; body: %s", resp.status, resp.short())
	}
	sid = resp.header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatalf("initialize: no MCP-Session-Id in the response; headers: %v", resp.header)
	}
	version, _ = resp.result(1)["protocolVersion"].(string)
	if version == "" {
		t.Fatalf("initialize: no protocolVersion in %s", resp.short())
	}
	notif := map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}
	if r := send(t, http.MethodPost, endpoint, token, sid, version, notif); r.status != http.StatusAccepted {
		t.Fatalf("notifications/initialized: got %d, want 202; body: %s", r.status, r.short())
	}
	return sid, version
}

func rpcRequest(id int, method string, params any) map[string]any {
	return map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params}
}

// garble changes one character in the middle of a session id.
func garble(sid string) string {
	b := []byte(sid)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// short is the body, cut to a length that keeps failure messages readable.
func (r response) short() string {
	const max = 400
	if len(r.body) > max {
		return fmt.Sprintf("%s… (%d bytes)", r.body[:max], len(r.body))
	}
	return string(r.body)
}

// send makes one Streamable HTTP request; body (if not nil) is JSON-encoded;
// edits (if any) change the request before it is sent.
func send(t *testing.T, method, endpoint, token, sid, version string, body any, edits ...func(*http.Request)) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctxFor(t), method, endpoint, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
	}
	if version != "" {
		req.Header.Set("Mcp-Protocol-Version", version)
	}
	for _, edit := range edits {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, endpoint, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, endpoint, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// result finds the JSON-RPC response with this id in a JSON or SSE body and
// returns its result (nil if there is none).
func (r response) result(id int) map[string]any {
	var msgs [][]byte
	mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
	if mt == "text/event-stream" {
		sc := bufio.NewScanner(bytes.NewReader(r.body))
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		var data []byte
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "data:"):
				if data != nil {
					data = append(data, '\n')
				}
				data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")...)
			case line == "":
				if len(data) > 0 {
					msgs = append(msgs, data)
				}
				data = nil
			}
		}
		if len(data) > 0 {
			msgs = append(msgs, data)
		}
	} else {
		msgs = append(msgs, r.body)
	}
	for _, m := range msgs {
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Result map[string]any  `json:"result"`
		}
		if json.Unmarshal(m, &msg) == nil && string(msg.ID) == fmt.Sprint(id) {
			return msg.Result
		}
	}
	return nil
}
