package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestCORSPreflightAndExposedHeaders(t *testing.T) {
	up := startUpstream(t, true)
	gw := startGateway(t, appDef{name: "app", path: "/mcp", upstream: up.url})
	req, _ := http.NewRequest(http.MethodOptions, gw.base+"/mcp", nil)
	req.Header.Set("Origin", "http://localhost"+gw.base[strings.LastIndexByte(gw.base, ':'):])
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, mcp-session-id")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight: got %d, want 204", resp.StatusCode)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != req.Header.Get("Origin") {
		t.Errorf("Allow-Origin: got %q, want %q", got, req.Header.Get("Origin"))
	}
	for _, h := range []string{"Authorization", "Mcp-Session-Id", "MCP-Protocol-Version", "Last-Event-ID", "Mcp-Method", "Mcp-Name"} {
		if !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), h) {
			t.Errorf("Allow-Headers %q lacks %s", resp.Header.Get("Access-Control-Allow-Headers"), h)
		}
	}
	for _, h := range []string{"Mcp-Session-Id", "WWW-Authenticate"} {
		if !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), h) {
			t.Errorf("Expose-Headers %q lacks %s", resp.Header.Get("Access-Control-Expose-Headers"), h)
		}
	}
	// A foreign origin's preflight gets no CORS grant.
	req.Header.Set("Origin", "http://evil.example.com")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign preflight: got %d Allow-Origin %q, want 403 and none", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

func TestBatchesIn20250326Sessions(t *testing.T) {
	up := startUpstream(t, false)
	gw := startGateway(t, appDef{name: "app", path: "/mcp", upstream: up.url})
	init := strings.Replace(initBody, "2025-06-18", "2025-03-26", 1)
	resp, _ := post(t, gw.base+"/mcp", aliceToken, init, nil)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize 2025-03-26: got %d %q", resp.StatusCode, sid)
	}
	hdr := map[string]string{"Mcp-Session-Id": sid}
	batch := `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_items"}},` +
		`{"jsonrpc":"2.0","id":"two","method":"tools/call","params":{"name":"delete_items"}},` +
		`{"jsonrpc":"2.0","method":"notifications/initialized"}]`
	before := up.count("list_items")
	resp, body := post(t, gw.base+"/mcp", aliceToken, batch, hdr)
	if resp.StatusCode != 200 {
		t.Fatalf("batch with a denied element: got %d %s, want 200", resp.StatusCode, body)
	}
	var answers []struct {
		ID    json.RawMessage `json:"id"`
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &answers); err != nil {
		t.Fatalf("batch answer %q: %v", body, err)
	}
	if len(answers) != 2 {
		t.Fatalf("batch answers: got %d (%s), want one per request", len(answers), body)
	}
	if string(answers[0].ID) != "1" || answers[0].Error == nil || answers[0].Error.Code != -32600 {
		t.Errorf("allowed element: got %s, want an error naming the refused batch", body)
	}
	if string(answers[1].ID) != `"two"` || answers[1].Error == nil || answers[1].Error.Code != -32602 {
		t.Errorf("denied element: got %s, want unknown tool", body)
	}
	if got := up.count("list_items") - before; got != 0 {
		t.Errorf("a refused batch reached the upstream %d times", got)
	}
	for name, b := range map[string]string{
		"initialize in a batch": `[` + init + `]`,
		"empty batch":           `[]`,
		"invalid element":       `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}]`,
	} {
		if resp, body := post(t, gw.base+"/mcp", aliceToken, b, hdr); resp.StatusCode != 400 {
			t.Errorf("%s: got %d %s, want 400", name, resp.StatusCode, body)
		}
	}
}
