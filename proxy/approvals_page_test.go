package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestApprovalsHandlerRouting: /approvals and /approvals/... reach the
// snapshot's ApprovalsHandler on an application's host, with the request
// as the client sent it; nothing else does, and a foreign Host reaches
// nothing.
func TestApprovalsHandlerRouting(t *testing.T) {
	up := startUpstream(t, true)
	gw := startGatewayWith(t, func(s *Snapshot) {
		s.ApprovalsHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "a", Value: "1"})
			http.SetCookie(w, &http.Cookie{Name: "b", Value: "2"})
			body, _ := io.ReadAll(r.Body)
			_, _ = io.WriteString(w, "page "+r.Method+" "+r.URL.RequestURI()+" "+r.Host+" "+string(body))
		})
	}, appDef{name: "app", path: "/mcp", upstream: up.url})
	host := strings.TrimPrefix(gw.base, "http://")

	for _, c := range []struct {
		method, path, body string
		wantStatus         int
		wantBody           string
	}{
		{"GET", "/approvals", "", 200, "page GET /approvals " + host + " "},
		{"GET", "/approvals/apr_1?x=1", "", 200, "page GET /approvals/apr_1?x=1 " + host + " "},
		{"POST", "/approvals", "tools=a", 200, "page POST /approvals " + host + " tools=a"},
		{"GET", "/approvalsx", "", 404, ""},
		{"GET", "/approval", "", 404, ""},
		{"GET", "/other/approvals", "", 404, ""},
	} {
		req, _ := http.NewRequest(c.method, gw.base+c.path, strings.NewReader(c.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.wantStatus || (c.wantBody != "" && string(b) != c.wantBody) {
			t.Errorf("%s %s: got %d %q, want %d %q", c.method, c.path, resp.StatusCode, b, c.wantStatus, c.wantBody)
		}
		if c.wantStatus == 200 && len(resp.Cookies()) != 2 {
			t.Errorf("%s %s: got cookies %v, want both Set-Cookie headers", c.method, c.path, resp.Cookies())
		}
	}

	// A Host that names no application reaches no page.
	req, _ := http.NewRequest("GET", gw.base+"/approvals", nil)
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("foreign Host: got %d, want 404", resp.StatusCode)
	}
	// The MCP endpoint is not the page's.
	resp2, body := post(t, gw.base+"/mcp", aliceToken, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, nil)
	if resp2.StatusCode != 200 || strings.HasPrefix(body, "page ") {
		t.Errorf("POST /mcp: got %d %.100s, want the proxy's answer", resp2.StatusCode, body)
	}
}
