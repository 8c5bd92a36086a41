//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The approval page of issue 6 with the real binary, in broker mode in
// front of a real OpenID provider (oidc-provider, as in oauth_test.go): the
// approval_url of a refusal shows the request to its requester and to
// nobody else, a browser signs in through the provider and mcpgw's own
// authorization server and lands on the page, a request made with the
// page's form is the admin API's, and an approver decides on the page.

const (
	pageCarolToken = "carol-token-0123456789" // carol@example.com, sre: requests
	pageDaveToken  = "dave-token-01234567890" // dave@example.com: no part in anything
	pageRootToken  = "root-token-01234567890" // root@example.com, mcpgw-admins
)

// startApprovalPageStack starts oidc-provider and mcpgw (broker mode, with
// dev users too) in front of a call backend. Application ops lets sre call
// delete_.* once a member of engineers approved: bob (sre) and carol
// request, alice (engineers) approves.
func startApprovalPageStack(t *testing.T) *oauthStack {
	t.Helper()
	dir := t.TempDir()
	g := newProcGroup(t, dir)
	backend := startCallBackend(t)
	idpAddr, listen, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	s := &oauthStack{
		ServerURL: "http://" + listen,
		URL:       "http://" + listen + "/mcp",
		OtherURL:  "http://" + listen + "/other",
		IssuerURL: "http://" + idpAddr,
		admin:     admin,
		procs:     g,
	}
	s.startProvider("userinfo")
	env := fmt.Sprintf("OIDC_CLIENT_ID=mcpgw\nOIDC_CLIENT_SECRET=%s\nOIDC_AUTH_URL=%s/auth\nOIDC_TOKEN_URL=%s/token\n"+
		"OIDC_USER_URL=%s/me\nOIDC_SCOPES=openid profile email groups\nSERVER_URL=%s\n",
		oidcClientSecret, s.IssuerURL, s.IssuerURL, s.IssuerURL, s.ServerURL)
	envPath := filepath.Join(dir, "pingone.env")
	if err := os.WriteFile(envPath, []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`server:
  listen: %q
  data_dir: %q
  admin: {listen: %q}
identity:
  env_file: %q
  mode: broker
  groups_claim: groups
  token_ttl: 10m
  dev_users:
    - {token: %s, user: carol@example.com, groups: [sre]}
    - {token: %s, user: dave@example.com, groups: []}
    - {token: %s, user: root@example.com, groups: [mcpgw-admins]}
roles: {admin_groups: [mcpgw-admins]}
applications:
  - name: ops
    frontend_url: %s
    upstream_url: %s
    rules:
      - name: prod-writes
        subjects: {groups: [sre]}
        tools: ["delete_.*"]
        approval:
          levels: [{approvers: {groups: [engineers]}}]
          grant_ttl: 10m
          request_ttl: 1h
audit: {dir: %q}
`, listen, filepath.Join(dir, "data"), admin, envPath, pageCarolToken, pageDaveToken, pageRootToken,
		s.URL, backend.URL, filepath.Join(dir, "audit"))
	s.cfgPath = filepath.Join(dir, "mcpgw.yaml")
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s.gwAddr = listen
	s.gw = g.start("mcpgw", listen, nil, mcpgwBin, "serve", "--config", s.cfgPath)
	status, body := httpGet(t, s.ServerURL+"/.well-known/oauth-authorization-server")
	if status != 200 || json.Unmarshal(body, &s.Meta) != nil {
		t.Fatalf("authorization server metadata: got %d %s", status, body)
	}
	return s
}

// callDelete calls delete_items as the holder of token; it returns the
// refusal's error data, or nil when the call went through.
func callDelete(t *testing.T, mcpURL, token, env string) map[string]string {
	t.Helper()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_items","arguments":{"env":%q}}}`, env)
	req, _ := http.NewRequest("POST", mcpURL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code int               `json:"code"`
			Data map[string]string `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("delete_items: %v: %s", err, b)
	}
	if m.Error == nil {
		return nil
	}
	if m.Error.Code != -31002 || m.Error.Data["approval_request_id"] == "" {
		t.Fatalf("delete_items: got %s, want a result or -31002 with a request", b)
	}
	return m.Error.Data
}

// pageGet GETs a page with a bearer token, without following redirects.
func pageGet(t *testing.T, u, token string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// browser is a user agent: a cookie jar, redirects followed, and the forms
// of the identity provider's login and consent pages filled in as user
// (devInteractions: any password).
type browser struct {
	t      *testing.T
	c      *http.Client
	trace  []string // "METHOD origin+path" of every request, redirects included
	user   string
	idp    string // the provider's origin: its forms are filled in
	origin string // mcpgw's frontend origin, sent as Origin on its forms
}

func newBrowser(t *testing.T, s *oauthStack, user string) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, user: user, idp: s.IssuerURL, origin: s.ServerURL}
	b.c = &http.Client{Jar: jar, Timeout: 15 * time.Second, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return http.ErrUseLastResponse
		}
		b.trace = append(b.trace, r.Method+" "+r.URL.Scheme+"://"+r.URL.Host+r.URL.Path)
		return nil
	}}
	return b
}

// do sends a request and returns the final response's URL, status and
// page, after redirects.
func (b *browser) do(method, u string, form url.Values) (*url.URL, int, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	req.Header.Set("Accept", "text/html")
	b.trace = append(b.trace, method+" "+req.URL.Scheme+"://"+req.URL.Host+req.URL.Path)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if o, _ := url.Parse(u); o.Scheme+"://"+o.Host == b.origin {
			req.Header.Set("Origin", b.origin)
		}
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.Request.URL, resp.StatusCode, string(page)
}

// open GETs u and, while the answer is a form of the identity provider,
// submits it (login, then consent); it returns where the browser landed.
func (b *browser) open(u string) (*url.URL, int, string) {
	b.t.Helper()
	at, status, page := b.do("GET", u, nil)
	for range 6 {
		if !strings.HasPrefix(at.String(), b.idp) || status != 200 {
			return at, status, page
		}
		action, fields := parseProviderForm(page, b.user)
		if action == "" {
			b.t.Fatalf("the provider's page at %s has no form: %.500s", at, page)
		}
		next, _ := at.Parse(action)
		at, status, page = b.do("POST", next.String(), fields)
	}
	b.t.Fatalf("the login did not leave the provider: %s", at)
	return nil, 0, ""
}

var (
	formRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	fieldRE = regexp.MustCompile(`(?i)<(input|button)\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`(?i)\s([a-z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')`)
)

func attrs(tag string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllStringSubmatch(tag, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2] + a[3])
	}
	return m
}

// parseProviderForm reads the first POST form of a provider page: hidden
// fields as they are, the login field as user, any password, and the
// submit button that continues.
func parseProviderForm(page, user string) (string, url.Values) {
	for _, f := range formRE.FindAllStringSubmatch(page, -1) {
		fa := attrs(f[1])
		if !strings.EqualFold(fa["method"], "post") {
			continue
		}
		fields := url.Values{}
		var submit []string
		for _, in := range fieldRE.FindAllStringSubmatch(f[2], -1) {
			a := attrs(in[2])
			typ := strings.ToLower(a["type"])
			if typ == "" && strings.EqualFold(in[1], "button") {
				typ = "submit"
			}
			switch name := a["name"]; {
			case name == "":
			case typ == "submit":
				if submit == nil {
					submit = []string{name, a["value"]}
				}
			case typ == "password":
				fields.Set(name, "x")
			case name == "login" || name == "username" || name == "email":
				fields.Set(name, user)
			default:
				fields.Set(name, a["value"])
			}
		}
		if submit != nil {
			fields.Set(submit[0], submit[1])
		}
		return fa["action"], fields
	}
	return "", nil
}

var pageCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestApprovalPage(t *testing.T) {
	s := startApprovalPageStack(t)
	admin := &approvalStack{admin: "http://" + s.admin}

	// A refusal names the request and its page.
	data := callDelete(t, s.URL, pageCarolToken, "prod")
	id, approvalURL := data["approval_request_id"], data["approval_url"]
	if data == nil || approvalURL != s.ServerURL+"/approvals/"+id {
		t.Fatalf("refusal data %v, want approval_url %s/approvals/<id>", data, s.ServerURL)
	}

	t.Run("the requester sees the pending request", func(t *testing.T) {
		status, hdr, page := pageGet(t, approvalURL, pageCarolToken)
		if status != 200 {
			t.Fatalf("GET %s as carol: got %d %s", approvalURL, status, page)
		}
		for _, want := range []string{id, "Pending: level 1 of 1", "members of engineers", "carol@example.com", "delete_items", "one exact call"} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %q:\n%s", want, page)
			}
		}
		if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
			hdr.Get("Cache-Control") != "no-store" || hdr.Get("X-Content-Type-Options") != "nosniff" || hdr.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("security headers: %v", hdr)
		}
	})
	t.Run("another user gets 404", func(t *testing.T) {
		status, _, page := pageGet(t, approvalURL, pageDaveToken)
		_, _, unknown := pageGet(t, s.ServerURL+"/approvals/apr_doesnotexist", pageDaveToken)
		if status != 404 || strings.Contains(page, id) || page != unknown {
			t.Errorf("GET as dave: got %d %s, want the 404 of an unknown id", status, page)
		}
	})
	t.Run("no credentials: the login starts", func(t *testing.T) {
		status, hdr, _ := pageGet(t, approvalURL, "")
		loc, _ := url.Parse(hdr.Get("Location"))
		if status != http.StatusFound || loc == nil || loc.Host != s.gwAddr || loc.Path != "/oauth/authorize" ||
			loc.Query().Get("redirect_uri") != s.ServerURL+"/approvals/callback" || loc.Query().Get("code_challenge_method") != "S256" {
			t.Errorf("got %d %q, want a redirect to mcpgw's authorization endpoint", status, hdr.Get("Location"))
		}
	})

	// bob (sre, logged in by the provider) is refused too, and opens his
	// request's page in a browser.
	clientID, code, verifier := s.code(t, "bob", s.URL)
	bobToken := s.token(t, codeGrant(clientID, code, verifier, s.URL)).AccessToken
	bobData := callDelete(t, s.URL, bobToken, "staging")
	bobID := bobData["approval_request_id"]
	bob := newBrowser(t, s, "bob")
	at, status, page := bob.open(bobData["approval_url"])
	t.Run("a browser signs in through the provider and lands on the page", func(t *testing.T) {
		if status != 200 || at.String() != bobData["approval_url"] {
			t.Fatalf("landed at %s with %d: %.1000s", at, status, page)
		}
		for _, want := range []string{"Signed in as <strong>bob@example.com</strong>", bobID, "Pending: level 1 of 1"} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %q:\n%s", want, page)
			}
		}
		if strings.Contains(page, id) {
			t.Errorf("bob's page shows carol's request")
		}
		trace := strings.Join(bob.trace, "\n")
		t.Logf("login trace:\n%s", trace)
		for _, want := range []string{
			"GET " + s.ServerURL + "/oauth/authorize",    // mcpgw's authorization server
			"POST " + s.IssuerURL + "/interaction/",      // the provider's login and consent
			"GET " + s.ServerURL + "/oauth/callback",     // back at mcpgw
			"GET " + s.ServerURL + "/approvals/callback", // the page's own code exchange
		} {
			if !strings.Contains(trace, want) {
				t.Errorf("the login did not pass %q:\n%s", want, trace)
			}
		}
		if _, status, _ := bob.do("GET", approvalURL, nil); status != 404 {
			t.Errorf("carol's request in bob's browser: got %d, want 404", status)
		}
	})

	t.Run("a request made with the page's form is the admin API's", func(t *testing.T) {
		_, status, list := bob.do("GET", s.ServerURL+"/approvals", nil)
		m := pageCSRF.FindStringSubmatch(list)
		if status != 200 || m == nil || !strings.Contains(list, bobID) {
			t.Fatalf("the list page: got %d %.1000s", status, list)
		}
		// Without the form's token nothing happens.
		if _, status, _ := bob.do("POST", s.ServerURL+"/approvals", url.Values{"app": {"ops"}, "tools": {"delete_users"}, "reason": {"x"}}); status != http.StatusForbidden {
			t.Errorf("a form without its CSRF token: got %d, want 403", status)
		}
		reason := "INC-77 <b>cleanup</b>"
		at, status, page := bob.do("POST", s.ServerURL+"/approvals", url.Values{"csrf": {m[1]}, "app": {"ops"}, "tools": {"delete_users"}, "reason": {reason}})
		newID := strings.TrimPrefix(at.Path, "/approvals/")
		if status != 200 || !strings.HasPrefix(newID, "apr_") || !strings.Contains(page, "INC-77 &lt;b&gt;cleanup&lt;/b&gt;") {
			t.Fatalf("after the form: at %s, %d %.1000s", at, status, page)
		}
		code, out := admin.api(t, "GET", "/api/v1/approvals?status=pending", pageRootToken, "")
		var list2 struct {
			Items []struct {
				ID, User, Reason string
				Tools            []string
			} `json:"items"`
		}
		if code != 200 || json.Unmarshal([]byte(out), &list2) != nil {
			t.Fatalf("GET /api/v1/approvals: got %d %s", code, out)
		}
		found := false
		for _, it := range list2.Items {
			if it.ID == newID {
				found = it.User == "bob@example.com" && it.Reason == reason && len(it.Tools) == 1 && it.Tools[0] == "delete_users"
			}
		}
		if !found {
			t.Errorf("request %s of the form is not in the admin API as bob's: %s", newID, out)
		}
	})

	t.Run("an approver decides on the page", func(t *testing.T) {
		alice := newBrowser(t, s, "alice")
		at, status, page := alice.open(bobData["approval_url"])
		m := pageCSRF.FindAllStringSubmatch(page, -1)
		if status != 200 || at.String() != bobData["approval_url"] || !strings.Contains(page, `value="approve"`) || m == nil {
			t.Fatalf("alice (engineers) at bob's request: %s %d %.1000s", at, status, page)
		}
		_, status, page = alice.do("POST", bobData["approval_url"], url.Values{"csrf": {m[len(m)-1][1]}, "decision": {"approve"}, "comment": {"go ahead"}})
		if status != 200 || !strings.Contains(page, "Approved: granted until") || !strings.Contains(page, "go ahead") {
			t.Fatalf("after approving: %d %.1000s", status, page)
		}
		if got := callDelete(t, s.URL, bobToken, "staging"); got != nil {
			t.Errorf("bob's approved call: refused with %v", got)
		}
		if _, _, page := bob.do("GET", bobData["approval_url"], nil); !strings.Contains(page, "Approved: granted until") {
			t.Errorf("bob's page after the approval: %.1000s", page)
		}
	})
}
