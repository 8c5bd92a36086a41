package appliance

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAdminToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "admin.token")
	tok, err := LoadOrCreateAdminToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) < 40 {
		t.Errorf("generated token has %d characters, want at least 40", len(tok))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("token file mode: got %#o, want 0600", got)
	}
	again, err := LoadOrCreateAdminToken(path)
	if err != nil || string(again) != string(tok) {
		t.Errorf("second load: got %q, %v; want the same token", again, err)
	}

	for _, c := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"operator token", "an-operator-chosen-token-1234\n", 0o600, ""},
		{"open to others", "an-operator-chosen-token-1234\n", 0o644, "open to group or others"},
		{"too short", "short\n", 0o600, "shorter than 16"},
		{"two words", "an operator chosen token\n", 0o600, "whitespace"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "admin.token")
			if err := os.WriteFile(p, []byte(c.content), c.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, c.mode); err != nil {
				t.Fatal(err)
			}
			tok, err := LoadOrCreateAdminToken(p)
			if c.want == "" {
				if err != nil || string(tok) != strings.TrimSpace(c.content) {
					t.Errorf("got %q, %v; want the file's token", tok, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got error %v, want one saying %q", err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "operator") {
				t.Errorf("the error quotes the token: %v", err)
			}
		})
	}
}

func TestAdminHandler(t *testing.T) {
	const token = "admin-token-0123456789abcdef"
	ready := readiness{Ready: true, Checks: map[string]string{"config": "loaded", "state": "open"}}
	h := newAdminServer([]byte(token), func(context.Context) readiness { return ready })
	do := func(method, path, authz string) (int, http.Header, string) {
		req, _ := http.NewRequest(method, "http://admin"+path, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		rec := newRecorder()
		h.ServeHTTP(rec, req)
		return rec.status, rec.header, rec.body.String()
	}
	for _, c := range []struct {
		name, method, path, authz string
		wantStatus                int
		wantBody                  string
	}{
		{"healthz without credentials", "GET", "/healthz", "", 200, `"status":"ok"`},
		{"readyz without credentials", "GET", "/readyz", "", 200, `"state":"open"`},
		{"api without credentials", "GET", "/api/v1/applications", "", 401, `{"error":{"code":"unauthorized","message":"a bearer token is required"}}`},
		{"api with a wrong token", "GET", "/api/v1/applications", "Bearer " + token + "x", 401, `"message":"the bearer token is not valid"`},
		{"api with another scheme", "GET", "/api/v1/applications", "Basic " + token, 401, `"code":"unauthorized"`},
		{"api with the token: no such endpoint yet", "GET", "/api/v1/nothing", "Bearer " + token, 404, `"code":"not_found"`},
		{"scheme is case-insensitive", "GET", "/api/v1/nothing", "bearer " + token, 404, `"code":"not_found"`},
		{"unknown path", "GET", "/metrics-nope", "", 404, `"code":"not_found"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, hdr, body := do(c.method, c.path, c.authz)
			if status != c.wantStatus || !strings.Contains(body, c.wantBody) {
				t.Errorf("got %d %s, want %d with %s", status, body, c.wantStatus, c.wantBody)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", ct)
			}
			if status == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", hdr.Get("WWW-Authenticate"))
			}
			if strings.Contains(body, token) {
				t.Errorf("the response echoes the token")
			}
		})
	}
	// Profiles show request data: they need the admin token.
	if status, _, _ := do("GET", "/debug/pprof/goroutine?debug=1", ""); status != 401 {
		t.Errorf("goroutine profile without credentials: got %d, want 401", status)
	}
	if status, hdr, body := do("GET", "/debug/pprof/goroutine?debug=1", "Bearer "+token); status != 200 || !strings.HasPrefix(body, "goroutine profile: total ") {
		t.Errorf("goroutine profile with the token: got %d %q %.60s", status, hdr.Get("Content-Type"), body)
	}
	ready = readiness{Ready: false, Checks: map[string]string{"config": "loaded", "state": "unavailable"}}
	if status, _, body := do("GET", "/readyz", ""); status != 503 || !strings.Contains(body, `"ready":false`) {
		t.Errorf("readyz with the store down: got %d %s, want 503 and ready false", status, body)
	}
}

// responseRecorder is a minimal http.ResponseWriter (httptest would do, but
// the appliance tests keep to what they need).
type responseRecorder struct {
	status int
	header http.Header
	body   strings.Builder
}

func newRecorder() *responseRecorder { return &responseRecorder{header: http.Header{}} }

func (r *responseRecorder) Header() http.Header { return r.header }
func (r *responseRecorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *responseRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return r.body.Write(b)
}

// TestServeAdminListener starts the whole gateway with a dev-users config
// and checks the admin listener, the generated token file and the state
// store, then a graceful stop.
func TestServeAdminListener(t *testing.T) {
	dir := t.TempDir()
	listen, admin := freeTestAddr(t), freeTestAddr(t)
	cfgPath := writeFile(t, dir, "mcpgw.yaml", `server:
  listen: "`+listen+`"
  admin: {listen: "`+admin+`"}
  data_dir: `+filepath.Join(dir, "data")+`
identity:
  env_file: ""
  dev_users: [{token: alice-token-0123456789, user: alice, groups: [engineers]}]
applications:
  - name: app
    frontend_url: http://`+listen+`/mcp
    upstream_url: http://127.0.0.1:9/mcp
    rules: [{name: r, subjects: {groups: [engineers]}, tools: [".*"]}]
`)
	stop := startServe(t, cfgPath)

	tok, err := os.ReadFile(filepath.Join(dir, "data", "admin.token"))
	if err != nil {
		t.Fatalf("admin token not generated under data_dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "state")); err != nil {
		t.Errorf("state store not under data_dir: %v", err)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+admin+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz", ""); code != 200 {
		t.Errorf("healthz: got %d %s", code, body)
	}
	code, body := get("/readyz", "")
	var rd readiness
	if code != 200 || json.Unmarshal([]byte(body), &rd) != nil || !rd.Ready || rd.Checks["state"] != "open" || rd.Checks["config"] != "loaded" {
		t.Errorf("readyz: got %d %s, want 200, ready, state open, config loaded", code, body)
	}
	if code, _ := get("/api/v1/x", ""); code != 401 {
		t.Errorf("api without token: got %d, want 401", code)
	}
	if code, _ := get("/api/v1/x", strings.TrimSpace(string(tok))); code != 404 {
		t.Errorf("api with the generated token: got %d, want 404 (no endpoints yet)", code)
	}
	// The admin API is never served on the frontend listener.
	if resp, err := client.Get("http://" + listen + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("frontend listener answers /healthz")
		}
	}

	if err := stop(); err != nil {
		t.Errorf("serve returned %v after cancel", err)
	}
	if _, err := client.Get("http://" + admin + "/healthz"); err == nil {
		t.Errorf("admin listener still answers after stop")
	}
}

func TestRestartOnly(t *testing.T) {
	a := &Config{Server: ServerConfig{Listen: ":8080", DataDir: "/d", Admin: AdminConfig{Listen: "127.0.0.1:9900", TokenFile: "/d/t"}}}
	b := *a
	if got := restartOnly(a, &b); len(got) != 0 {
		t.Errorf("same config: got %q, want none", got)
	}
	b.Server.DataDir, b.Server.Admin.Listen = "/e", "127.0.0.1:9901"
	if got := strings.Join(restartOnly(a, &b), ","); got != "server.admin.listen,server.data_dir" {
		t.Errorf("got %q, want server.admin.listen,server.data_dir", got)
	}
}
