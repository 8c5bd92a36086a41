package appliance

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/testpki"
)

// mcpUpstream answers initialize as an MCP server does, as JSON or as a
// server-sent event, when the request carries the configured header; it
// counts the DELETEs that end the check's session.
type mcpUpstream struct {
	*httptest.Server
	sse     bool
	deletes atomic.Int32
}

func newMCPUpstream(t *testing.T, sse bool) *mcpUpstream {
	u := &mcpUpstream{sse: sse}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != sentinel {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodDelete {
			if r.Header.Get("Mcp-Session-Id") == "sess-1" {
				u.deletes.Add(1)
			}
			return
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &m) != nil || m.Method != "initialize" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		answer := `{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"test-server","version":"1.2.3"}}}`
		w.Header().Set("Mcp-Session-Id", "sess-1")
		if u.sse {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, ": hello\n\nevent: message\ndata: %s\n\n", answer)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	t.Cleanup(u.Close)
	return u
}

// newIdP serves OpenID discovery for its own URL.
func newIdP(t *testing.T) *httptest.Server {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"authorization_endpoint":"%s/authorize","token_endpoint":"%s/token","jwks_uri":"%s/jwks"}`,
			srv.URL, srv.URL, srv.URL, srv.URL)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// checkFixture writes a config with TLS (a certificate for the given
// hosts, valid until notAfter), one application per upstream URL, and
// resource mode at issuer.
func checkFixture(t *testing.T, notAfter time.Time, hosts []string, issuer string, upstreams ...string) string {
	t.Helper()
	dir := fixtureDir(t)
	ca := testpki.NewCA(t)
	certPEM, keyPEM := ca.Issue(t, 4242, notAfter, hosts...)
	cert := writeFile(t, dir, "cert.pem", string(certPEM))
	key := writeFile(t, dir, "key.pem", string(keyPEM))
	var apps strings.Builder
	for i, u := range upstreams {
		fmt.Fprintf(&apps, `  - name: app%d
    frontend_url: https://127.0.0.1:8443/mcp%d
    upstream_url: %s/mcp
    headers: {X-Api-Key: "${file:%s/sentinel}"}
    rules: [{name: r, subjects: {groups: [g]}, tools: [".*"]}]
`, i, i, u, dir)
	}
	return writeFile(t, dir, "mcpgw.yaml", fmt.Sprintf(`server:
  listen: "127.0.0.1:8443"
  tls: {cert: %s, key: %s}
identity:
  env_file: ""
  mode: resource
  issuer: %s
applications:
%s`, cert, key, issuer, apps.String()))
}

// preflightLines returns the lines of the preflight section.
func preflightLines(out string) []string {
	_, after, _ := strings.Cut(out, "preflight\n")
	var lines []string
	for _, l := range strings.Split(after, "\n") {
		if strings.HasPrefix(l, "  ") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return lines
}

func hasLine(lines []string, prefix, contains string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, contains) {
			return true
		}
	}
	return false
}

func TestCheckPreflight(t *testing.T) {
	idp := newIdP(t)
	jsonUp, sseUp := newMCPUpstream(t, false), newMCPUpstream(t, true)
	good := checkFixture(t, time.Now().Add(60*24*time.Hour), []string{"localhost", "127.0.0.1"}, idp.URL, jsonUp.URL, sseUp.URL)
	code, out, errOut := runMain("check", "--config", good)
	lines := preflightLines(out)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q, output:\n%s", code, errOut, out)
	}
	for _, want := range [][2]string{
		{"ok    config:", "parsed and valid (2 applications)"},
		{"ok    secrets:", "1 references present and not empty: ${file:"},
		{"ok    tls:", "cert.pem and its key load and match (subject CN=mcpgw test 4242, serial 1092)"},
		{"ok    tls:", "the certificate is valid until"},
		{"ok    tls:", "the certificate covers localhost"},
		{"ok    tls:", "the certificate covers 127.0.0.1"},
		{"ok    upstream app0:", `speaks MCP (protocol 2025-11-25, server "test-server" 1.2.3)`},
		{"ok    upstream app1:", `speaks MCP (protocol 2025-11-25, server "test-server" 1.2.3)`},
		{"ok    identity provider:", idp.URL + " answers discovery"},
	} {
		if !hasLine(lines, want[0], want[1]) {
			t.Errorf("no line %q…%q in:\n%s", want[0], want[1], strings.Join(lines, "\n"))
		}
	}
	if !strings.Contains(out, good+": ok (2 applications); ") {
		t.Errorf("last line:\n%s", out)
	}
	if strings.Contains(out+errOut, sentinel) {
		t.Errorf("check printed a secret value")
	}
	if jsonUp.deletes.Load() != 1 || sseUp.deletes.Load() != 1 {
		t.Errorf("sessions ended: %d and %d, want 1 each", jsonUp.deletes.Load(), sseUp.deletes.Load())
	}

	// Offline: no network line, and nothing asked.
	code, out, _ = runMain("check", "--offline", "--config", good)
	lines = preflightLines(out)
	if code != ExitOK || !hasLine(lines, "warn  network:", "not checked (--offline)") || hasLine(lines, "ok    upstream", "") {
		t.Errorf("offline: exit %d:\n%s", code, out)
	}
	if jsonUp.deletes.Load() != 1 {
		t.Errorf("offline check reached the upstream")
	}
}

func TestCheckPreflightFailures(t *testing.T) {
	idp := newIdP(t)
	up := newMCPUpstream(t, false)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html>hello</html>")
	}))
	defer html.Close()
	modernOnly := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"unsupported protocol version"}}`)
	}))
	defer modernOnly.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	deadIdP := httptest.NewServer(http.NotFoundHandler())
	deadIdPURL := deadIdP.URL
	deadIdP.Close()

	for _, c := range []struct {
		name     string
		notAfter time.Duration
		hosts    []string
		issuer   string
		upstream string
		wantCode int
		want     [][2]string
	}{
		{"expires soon", 5 * 24 * time.Hour, []string{"localhost", "127.0.0.1"}, idp.URL, up.URL, ExitOK,
			[][2]string{{"warn  tls:", "the certificate expires on"}, {"warn  tls:", "in 4 days"}}},
		{"expired", -time.Hour, []string{"localhost", "127.0.0.1"}, idp.URL, up.URL, ExitConfig,
			[][2]string{{"FAIL  tls:", "the certificate expired on"}}},
		{"another host", 60 * 24 * time.Hour, []string{"mcpgw.example.com"}, idp.URL, up.URL, ExitOK,
			[][2]string{{"warn  tls:", "does not cover localhost (names: mcpgw.example.com)"},
				{"warn  tls:", "does not cover 127.0.0.1"}}},
		{"upstream down", 60 * 24 * time.Hour, []string{"localhost", "127.0.0.1"}, idp.URL, downURL, ExitConfig,
			[][2]string{{"FAIL  upstream app0:", downURL + "/mcp not reachable: "}}},
		{"upstream not MCP", 60 * 24 * time.Hour, []string{"localhost", "127.0.0.1"}, idp.URL, html.URL, ExitConfig,
			[][2]string{{"FAIL  upstream app0:", `answered HTTP 200 with "text/html", not a JSON-RPC response`}}},
		{"upstream answers initialize with an error", 60 * 24 * time.Hour, []string{"localhost", "127.0.0.1"}, idp.URL, modernOnly.URL, ExitOK,
			[][2]string{{"ok    upstream app0:", "speaks MCP (initialize answered with JSON-RPC error -32602, HTTP 400)"}}},
		{"upstream answers 404", 60 * 24 * time.Hour, []string{"localhost", "127.0.0.1"}, idp.URL, notFound.URL, ExitConfig,
			[][2]string{{"FAIL  upstream app0:", "answered HTTP 404 with"}}},
		{"identity provider down", 60 * 24 * time.Hour, []string{"localhost", "127.0.0.1"}, deadIdPURL, up.URL, ExitConfig,
			[][2]string{{"FAIL  identity provider:", "discovery at " + deadIdPURL + " failed"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := checkFixture(t, time.Now().Add(c.notAfter), c.hosts, c.issuer, c.upstream)
			code, out, _ := runMain("check", "--timeout", "3s", "--config", cfg)
			lines := preflightLines(out)
			if code != c.wantCode {
				t.Errorf("exit %d, want %d:\n%s", code, c.wantCode, out)
			}
			for _, w := range c.want {
				if !hasLine(lines, w[0], w[1]) {
					t.Errorf("no line %q…%q in:\n%s", w[0], w[1], strings.Join(lines, "\n"))
				}
			}
			if c.wantCode != ExitOK && !strings.Contains(out, cfg+": FAIL (") {
				t.Errorf("no FAIL summary:\n%s", out)
			}
			if strings.Contains(out, sentinel) {
				t.Errorf("check printed a secret value")
			}
		})
	}

	// Offline, an expired certificate does not stop serve and so is only
	// a warning: the unit's start gate does not keep the gateway down.
	expired := checkFixture(t, time.Now().Add(-time.Hour), []string{"localhost", "127.0.0.1"}, idp.URL, up.URL)
	if code, out, _ := runMain("check", "--offline", "--config", expired); code != ExitOK ||
		!hasLine(preflightLines(out), "warn  tls:", "the certificate expired on") {
		t.Errorf("check --offline with an expired certificate: exit %d, want %d and a warning:\n%s", code, ExitOK, out)
	}

	// The upstream refuses the configured credentials.
	dir := fixtureDir(t)
	cfg := writeFile(t, dir, "mcpgw.yaml", `identity:
  env_file: ""
  dev_users: [{token: alice-token-0123456789, user: alice}]
applications:
  - name: app
    frontend_url: http://127.0.0.1:8080/mcp
    upstream_url: `+up.URL+`/mcp
    headers: {X-Api-Key: wrong-key}
`)
	code, out, _ := runMain("check", "--config", cfg)
	lines := preflightLines(out)
	if code != ExitConfig || !hasLine(lines, "FAIL  upstream app:", "refused the request with HTTP 401: check the application's headers") ||
		!hasLine(lines, "warn  tls:", "plain HTTP") || !hasLine(lines, "warn  env file:", "only dev users log in") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestCheckEnvFileLines(t *testing.T) {
	dir := fixtureDir(t)
	env := writeFile(t, dir, "open.env", "OIDC_CLIENT_ID=gw\nOIDC_CLIENT_SECRET="+sentinel+"\n"+
		"OIDC_AUTH_URL=https://idp.example/as/authorize\nOIDC_TOKEN_URL=https://idp.example/as/token\nSERVER_URL=http://127.0.0.1:8080\n")
	if err := os.Chmod(env, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, dir, "mcpgw.yaml", "identity:\n  env_file: "+env+"\n"+
		strings.ReplaceAll(strings.TrimPrefix(explainConfig, "identity:\n"), "@DIR@", dir))
	code, out, _ := runMain("check", "--offline", "--config", cfg)
	lines := preflightLines(out)
	if code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range [][2]string{
		{"ok    env file:", env + " read (OIDC_AUTH_URL, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_TOKEN_URL, SERVER_URL; values hidden)"},
		{"warn  env file:", "has mode 0644: every local user can read the client secret"},
		{"warn  network:", "not checked (--offline)"},
	} {
		if !hasLine(lines, want[0], want[1]) {
			t.Errorf("no line %q…%q in:\n%s", want[0], want[1], strings.Join(lines, "\n"))
		}
	}
	if strings.Contains(out, sentinel) {
		t.Errorf("check printed a secret value")
	}
}
