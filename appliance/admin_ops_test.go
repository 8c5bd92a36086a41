package appliance

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// opsConfig is a gateway whose policy the tests rewrite: @TOOLS@ are
// alice's tools.
const opsConfig = `server:
  listen: "@LISTEN@"
  admin: {listen: "@ADMIN@"}
  data_dir: @DIR@/data
identity:
  env_file: ""
  dev_users:
    - {token: alice-token-0123456789, user: alice, groups: [engineers]}
    - {token: root-token-0123456789, user: root, groups: [mcpgw-admins]}
    - {token: audrey-token-0123456789, user: audrey, groups: [auditors]}
roles: {admin_groups: [mcpgw-admins], auditor_groups: [auditors]}
applications:
  - name: app
    frontend_url: http://@LISTEN@/mcp
    upstream_url: http://127.0.0.1:9/key-in-the-path/mcp
    headers: {X-Api-Key: "${file:@DIR@/sentinel}"}
    rules:
      - {name: readers, subjects: {groups: [engineers]}, tools: [@TOOLS@]}
      - name: writers
        subjects: {groups: [sre]}
        tools: ["delete_.*"]
        mode: audit
        approval: {levels: [{approvers: {groups: [secops]}}]}
`

// opsGateway runs serve on opsConfig; write rewrites its config file.
type opsGateway struct {
	t      *testing.T
	dir    string
	path   string
	listen string
	admin  string
	token  string
}

func startOpsGateway(t *testing.T) *opsGateway {
	t.Helper()
	g := &opsGateway{t: t, dir: fixtureDir(t), listen: freeTestAddr(t), admin: freeTestAddr(t)}
	g.path = filepath.Join(g.dir, "mcpgw.yaml")
	g.write(`"list_.*"`)
	stop := startServe(t, g.path)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve returned %v", err)
		}
	})
	tok, err := os.ReadFile(filepath.Join(g.dir, "data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	g.token = strings.TrimSpace(string(tok))
	return g
}

func (g *opsGateway) write(tools string) {
	g.t.Helper()
	r := strings.NewReplacer("@LISTEN@", g.listen, "@ADMIN@", g.admin, "@DIR@", g.dir, "@TOOLS@", tools)
	writeFile(g.t, g.dir, "mcpgw.yaml", r.Replace(opsConfig))
}

func (g *opsGateway) do(method, path, token string) (int, string) {
	g.t.Helper()
	req, err := http.NewRequest(method, "http://"+g.admin+path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (g *opsGateway) explain(name string) Explanation {
	g.t.Helper()
	q := url.Values{"app": {"app"}, "user": {"alice"}, "groups": {"engineers"}, "name": {name}}
	code, body := g.do("GET", "/api/v1/explain?"+q.Encode(), g.token)
	if code != 200 {
		g.t.Fatalf("explain %s: got %d %s", name, code, body)
	}
	return decode[Explanation](g.t, body)
}

func TestReloadEndpoint(t *testing.T) {
	g := startOpsGateway(t)
	if e := g.explain("get_user"); e.Effect != "deny" {
		t.Fatalf("before the reload: get_user is %s, want deny", e.Effect)
	}

	// Who may reload.
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", 401},
		{"a token nobody issued", "nope-token-0123456789", 401},
		{"a user without a role", "alice-token-0123456789", 403},
		{"an auditor", "audrey-token-0123456789", 403},
	} {
		if code, body := g.do("POST", "/api/v1/reload", c.token); code != c.want {
			t.Errorf("%s: got %d %s, want %d", c.name, code, body, c.want)
		}
	}
	if e := g.explain("get_user"); e.Effect != "deny" {
		t.Fatalf("a refused caller reloaded: get_user is %s", e.Effect)
	}

	// A changed policy is applied.
	g.write(`"list_.*", "get_.*"`)
	code, body := g.do("POST", "/api/v1/reload", g.token)
	if code != 200 {
		t.Fatalf("reload: got %d %s", code, body)
	}
	got := decode[struct {
		Status        string   `json:"status"`
		Applications  int      `json:"applications"`
		RestartNeeded []string `json:"restart_needed"`
	}](t, body)
	if got.Status != "reloaded" || got.Applications != 1 || got.RestartNeeded == nil || len(got.RestartNeeded) != 0 {
		t.Errorf("reload answered %s", body)
	}
	if e := g.explain("get_user"); e.Effect != "allow" || e.Rule != "readers" {
		t.Errorf("after the reload: get_user is %+v, want allowed by readers", e)
	}

	// A user in an admin group may reload too.
	g.write(`"get_.*"`)
	if code, body := g.do("POST", "/api/v1/reload", "root-token-0123456789"); code != 200 {
		t.Fatalf("reload by an admin group member: got %d %s", code, body)
	}
	if e := g.explain("list_users"); e.Effect != "deny" {
		t.Errorf("after the second reload: list_users is %s, want deny", e.Effect)
	}

	// A broken policy is refused with file:line; the old one serves.
	g.write(`"get_.*", "list_(.*"`)
	code, body = g.do("POST", "/api/v1/reload", g.token)
	if code != 422 || errorCode(t, body) != "reload_refused" {
		t.Fatalf("reload of a bad regex: got %d %s, want 422 reload_refused", code, body)
	}
	if want := g.path + ":18: applications[0].rules[0].tools[1]: invalid RE2 pattern"; !strings.Contains(body, want) {
		t.Errorf("refusal %s does not name %q", body, want)
	}
	if e := g.explain("get_user"); e.Effect != "allow" {
		t.Errorf("after a refused reload: get_user is %s, want allow (the old policy)", e.Effect)
	}

	// A pattern read from a secret file is refused without its value.
	g.write(`"${file:` + g.dir + `/sentinel-regex}"`)
	code, body = g.do("POST", "/api/v1/reload", g.token)
	if code != 422 || !strings.Contains(body, "invalid RE2 pattern") {
		t.Fatalf("reload of a bad secret pattern: got %d %s, want 422", code, body)
	}
	if strings.Contains(body, sentinel) {
		t.Errorf("the refusal shows a secret value: %s", body)
	}
	if code, body := g.do("POST", "/api/v1/reload?x=1", g.token); code != 400 {
		t.Errorf("reload with a parameter: got %d %s, want 400", code, body)
	}
}

func TestApplicationsEndpoint(t *testing.T) {
	g := startOpsGateway(t)
	for _, tok := range []string{g.token, "audrey-token-0123456789", "root-token-0123456789"} {
		code, body := g.do("GET", "/api/v1/applications", tok)
		if code != 200 {
			t.Fatalf("applications: got %d %s", code, body)
		}
		if strings.Contains(body, sentinel) || strings.Contains(body, "key-in-the-path") {
			t.Errorf("applications shows a secret or the upstream path: %s", body)
		}
		page := decode[struct {
			Items      []appView `json:"items"`
			NextCursor *string   `json:"next_cursor"`
		}](t, body)
		if len(page.Items) != 1 || page.NextCursor == nil || *page.NextCursor != "" {
			t.Fatalf("applications: %s", body)
		}
		a := page.Items[0]
		want := appView{Name: "app", FrontendURL: "http://" + g.listen + "/mcp", Upstream: "http://127.0.0.1:9",
			Headers: []string{"X-Api-Key"}, Auth: "oauth", Visibility: "permitted", RuleCount: 2,
			Rules: []ruleView{{"readers", "enforce", false}, {"writers", "audit", true}}}
		if a.Name != want.Name || a.FrontendURL != want.FrontendURL || a.Upstream != want.Upstream || a.Auth != want.Auth ||
			a.Visibility != want.Visibility || a.RuleCount != want.RuleCount || strings.Join(a.Headers, ",") != "X-Api-Key" ||
			len(a.Rules) != 2 || a.Rules[0] != want.Rules[0] || a.Rules[1] != want.Rules[1] {
			t.Errorf("got %+v, want %+v", a, want)
		}
	}
	if code, _ := g.do("GET", "/api/v1/applications", "alice-token-0123456789"); code != 403 {
		t.Errorf("applications as a user without a role: got %d, want 403", code)
	}
	if code, _ := g.do("GET", "/api/v1/applications", ""); code != 401 {
		t.Errorf("applications without a token: got %d, want 401", code)
	}
}

func TestExplainEndpoint(t *testing.T) {
	g := startOpsGateway(t)
	e := g.explain("list_users")
	if e.Effect != "allow" || e.Rule != "readers" || e.Reason != "allowed_by_rule" || e.User != "alice" || e.Method != "tools/call" {
		t.Errorf("got %+v", e)
	}
	// The same answer as mcpgw explain.
	code, out, _ := runMain("explain", "--config", g.path, "--app", "app", "--user", "alice", "--groups", "engineers", "--name", "list_users")
	_, body := g.do("GET", "/api/v1/explain?app=app&user=alice&groups=engineers&name=list_users", g.token)
	if code != ExitOK || decode[struct{ Text string }](t, body).Text != strings.TrimSpace(out) {
		t.Errorf("the endpoint answers %s, mcpgw explain %q", body, out)
	}
	for _, c := range []struct {
		query string
		want  int
		code  string
	}{
		{"app=app", 400, "bad_request"},
		{"name=x", 400, "bad_request"},
		{"app=nope&name=x", 404, "not_found"},
		{"app=app&name=x&method=tools/list", 400, "bad_request"},
		{"app=app&name=x&colour=red", 400, "bad_request"},
		{"app=app&name=x&name=y", 400, "bad_request"},
		{"app=app&name=x&arguments=[1]", 400, "bad_request"},
	} {
		code, body := g.do("GET", "/api/v1/explain?"+c.query, g.token)
		if code != c.want || errorCode(t, body) != c.code {
			t.Errorf("explain?%s: got %d %s, want %d %s", c.query, code, body, c.want, c.code)
		}
	}
	if code, _ := g.do("GET", "/api/v1/explain?app=app&name=x", "alice-token-0123456789"); code != 403 {
		t.Errorf("explain as a user without a role: got %d, want 403", code)
	}
}

func TestRedactSecrets(t *testing.T) {
	cfg := &Config{
		Applications: []ApplicationConfig{{Headers: map[string]Secret{"X-Key": NewSecret("header-" + sentinel)}}},
		Identity: IdentityConfig{
			DevUsers: []DevUser{{Token: NewSecret("dev-token-" + sentinel)}},
			Env:      map[string]Secret{"OIDC_CLIENT_SECRET": NewSecret(sentinel), "OIDC_AUTH_URL": NewSecret("https://idp.example/as/authorize")},
		},
	}
	err := errors.New("a: header-" + sentinel + " b: dev-token-" + sentinel + " c: " + sentinel + " d: https://idp.example/as/authorize")
	got := redactSecrets(err, nil, cfg).Error()
	if strings.Contains(got, sentinel) {
		t.Errorf("redacted: %s", got)
	}
	if want := "a: [redacted] b: [redacted] c: [redacted] d: https://idp.example/as/authorize"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	plain := errors.New("nothing secret")
	if redactSecrets(plain, cfg) != plain {
		t.Errorf("an error without secrets was replaced")
	}
}
