package appliance

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/access"
	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/internal/state"
)

// The approval page's tests run the handler over a compiled configuration
// whose application crm has the two-level flow of newApprovalService, and
// dev users standing for the people of approvalUsers.
const pageConfig = `server: {listen: "127.0.0.1:8080"}
identity:
  env_file: ""
  dev_users:
    - {token: alice-token, user: alice@example.com, groups: [secops, sre]}
    - {token: bob-token, user: bob@example.com, groups: [sre]}
    - {token: sam-token, user: sam@example.com, groups: [secops]}
    - {token: cab-token, user: cab-lead@example.com}
    - {token: eve-token, user: eve@example.com, groups: [engineers]}
    - {token: audrey-token, user: audrey@example.com, groups: [auditors]}
    - {token: root-token, user: root@example.com, groups: [mcpgw-admins]}
roles: {admin_groups: [mcpgw-admins], auditor_groups: [auditors]}
applications:
  - name: crm
    frontend_url: http://127.0.0.1:8080/mcp
    upstream_url: http://127.0.0.1:9000/mcp
    rules:
      - name: prod-writes
        subjects: {groups: [sre]}
        tools: ["delete_.*"]
        approval:
          levels: [{approvers: {groups: [secops]}}, {approvers: {users: [cab-lead@example.com]}}]
`

const pageBase = "http://127.0.0.1:8080"

type pageEnv struct {
	pg    *approvalsPage
	svc   *access.Service
	clock *testClock
}

func newPageEnv(t *testing.T) *pageEnv {
	t.Helper()
	dir := t.TempDir()
	cfg, err := testLoader(t).parse(writeFile(t, dir, "mcpgw.yaml", pageConfig), []byte(pageConfig))
	if err != nil {
		t.Fatal(err)
	}
	comp, err := compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(comp.close)
	clock := &testClock{t: approvalT0}
	svc := newApprovalService(t, clock)
	comp.snap.Approvals = proxyApprovals{svc}
	pg := newApprovalsPage(comp, bytes.Repeat([]byte{7}, 32), slog.New(slog.DiscardHandler))
	pg.now = clock.now
	return &pageEnv{pg: pg, svc: svc, clock: clock}
}

// do serves one request; token, when set, is sent as a bearer token.
func (e *pageEnv) do(method, target, token string, form url.Values, header ...string) *httptest.ResponseRecorder {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, pageBase+target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	e.pg.ServeHTTP(w, r)
	return w
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf returns the form token the page gives the holder of token.
func (e *pageEnv) csrfOf(t *testing.T, token string) string {
	t.Helper()
	w := e.do("GET", "/approvals", token, nil)
	m := csrfField.FindStringSubmatch(w.Body.String())
	if w.Code != 200 || m == nil {
		t.Fatalf("GET /approvals as %s: got %d without a CSRF token: %s", token, w.Code, w.Body)
	}
	return m[1]
}

func (e *pageEnv) open(t *testing.T, user, reason string, tools ...string) *access.Request {
	t.Helper()
	p, ok := e.pg.comp.snap.DevUsers.Lookup([]byte(user + "-token"))
	if !ok {
		t.Fatalf("no dev user %s", user)
	}
	req, _, err := e.svc.Request(p.User, p.Groups, "crm", tools, reason)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func checkPageHeaders(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	h := w.Header()
	for name, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
		"X-Frame-Options":         "DENY",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
}

func TestApprovalsPageAuth(t *testing.T) {
	e := newPageEnv(t)
	for _, c := range []struct {
		name, token string
		header      []string
		want        int
		challenge   string
	}{
		{"no credentials", "", nil, 401, `Bearer realm="mcpgw"`},
		{"unknown token", "nobody-token", nil, 401, `Bearer realm="mcpgw", error="invalid_token"`},
		{"basic auth", "", []string{"Authorization", "Basic YTpi"}, 401, `Bearer realm="mcpgw", error="invalid_token"`},
		{"a dev user", "alice-token", nil, 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := e.do("GET", "/approvals", c.token, nil, c.header...)
			if w.Code != c.want || w.Header().Get("WWW-Authenticate") != c.challenge {
				t.Errorf("got %d %q, want %d %q", w.Code, w.Header().Get("WWW-Authenticate"), c.want, c.challenge)
			}
			checkPageHeaders(t, w)
			if c.want == 200 && !strings.Contains(w.Body.String(), "Signed in as <strong>alice@example.com</strong>") {
				t.Errorf("page does not name the user: %s", w.Body)
			}
		})
	}
	t.Run("dev users only on a loopback listener", func(t *testing.T) {
		e.pg.devUsers = false
		defer func() { e.pg.devUsers = true }()
		if w := e.do("GET", "/approvals", "alice-token", nil); w.Code != 401 {
			t.Errorf("got %d, want 401", w.Code)
		}
	})
	t.Run("a foreign host", func(t *testing.T) {
		r := httptest.NewRequest("GET", "http://evil.example/approvals", nil)
		r.Header.Set("Authorization", "Bearer alice-token")
		w := httptest.NewRecorder()
		e.pg.ServeHTTP(w, r)
		if w.Code != 404 {
			t.Errorf("got %d, want 404", w.Code)
		}
	})
}

func TestApprovalsPageVisibility(t *testing.T) {
	e := newPageEnv(t)
	req := e.open(t, "bob", "INC-7", "delete_items")
	unknown := e.do("GET", "/approvals/apr_nope", "eve-token", nil)
	if unknown.Code != 404 {
		t.Fatalf("unknown id: got %d, want 404", unknown.Code)
	}
	for _, c := range []struct {
		user      string
		want      int
		mayDecide bool
	}{
		{"bob", 200, false},    // the requester
		{"sam", 200, true},     // level 1
		{"alice", 200, true},   // level 1 too
		{"cab", 200, false},    // level 2: not yet
		{"root", 200, false},   // admin
		{"audrey", 200, false}, // auditor
		{"eve", 404, false},    // no part in it
	} {
		t.Run(c.user, func(t *testing.T) {
			w := e.do("GET", "/approvals/"+req.ID, c.user+"-token", nil)
			body := w.Body.String()
			if w.Code != c.want {
				t.Fatalf("got %d, want %d: %s", w.Code, c.want, body)
			}
			checkPageHeaders(t, w)
			if c.want == 404 {
				if body != unknown.Body.String() || strings.Contains(body, req.ID) {
					t.Errorf("the 404 of an invisible request differs from an unknown one's or names it:\n%s\n%s", body, unknown.Body)
				}
				return
			}
			for _, want := range []string{req.ID, "Pending: level 1 of 2", "members of secops", "bob@example.com", "delete_items", "INC-7"} {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			if got := strings.Contains(body, `value="approve"`); got != c.mayDecide {
				t.Errorf("approve button shown: got %v, want %v", got, c.mayDecide)
			}
		})
	}
	t.Run("the list", func(t *testing.T) {
		own := e.do("GET", "/approvals", "bob-token", nil).Body.String()
		if !strings.Contains(own, `href="/approvals/`+req.ID+`"`) {
			t.Errorf("bob's list lacks his request")
		}
		toDecide := e.do("GET", "/approvals", "sam-token", nil).Body.String()
		if !strings.Contains(toDecide, "Waiting for your decision") || !strings.Contains(toDecide, req.ID) {
			t.Errorf("sam's list lacks the request to decide")
		}
		if other := e.do("GET", "/approvals", "eve-token", nil).Body.String(); strings.Contains(other, req.ID) {
			t.Errorf("eve's list shows bob's request")
		}
	})
}

func TestApprovalsPageRequestForm(t *testing.T) {
	e := newPageEnv(t)
	csrf := e.csrfOf(t, "bob-token")
	form := url.Values{"csrf": {csrf}, "app": {"crm"}, "tools": {"delete_users, delete_items"}, "reason": {"<script>alert(1)</script> INC-9"}}
	w := e.do("POST", "/approvals", "bob-token", form, "Origin", pageBase)
	loc := w.Header().Get("Location")
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "/approvals/apr_") {
		t.Fatalf("got %d Location %q, want 303 to the new request: %s", w.Code, loc, w.Body)
	}
	reqs, _ := e.svc.Requests(access.StatusPending)
	if len(reqs) != 1 || reqs[0].User != "bob@example.com" || strings.Join(reqs[0].Tools, " ") != "delete_items delete_users" ||
		reqs[0].Reason != form.Get("reason") || "/approvals/"+reqs[0].ID != loc {
		t.Fatalf("requests: got %+v", reqs)
	}
	// Escaping: the reason is shown as text, never as markup.
	page := e.do("GET", loc, "sam-token", nil).Body.String()
	if strings.Contains(page, "<script>") || !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt; INC-9") {
		t.Errorf("the reason is not escaped:\n%s", page)
	}
	// The same request again is the pending one.
	if w := e.do("POST", "/approvals", "bob-token", form); w.Header().Get("Location") != loc {
		t.Errorf("the same request again: got %d %q, want %s", w.Code, w.Header().Get("Location"), loc)
	}
	t.Run("refused with the reason, the form kept", func(t *testing.T) {
		form := url.Values{"csrf": {csrf}, "app": {"crm"}, "tools": {"list_items"}, "reason": {"why \"not\""}}
		w := e.do("POST", "/approvals", "bob-token", form)
		body := w.Body.String()
		if w.Code != 400 || !strings.Contains(body, "The request was not made") || !strings.Contains(body, `value="list_items"`) ||
			!strings.Contains(body, "why &#34;not&#34;") {
			t.Errorf("got %d %s, want 400 naming the problem with the form refilled", w.Code, body)
		}
	})
}

func TestApprovalsPageCSRF(t *testing.T) {
	e := newPageEnv(t)
	csrf := e.csrfOf(t, "bob-token")
	form := func(token string) url.Values {
		return url.Values{"csrf": {token}, "app": {"crm"}, "tools": {"delete_items"}, "reason": {"x"}}
	}
	for _, c := range []struct {
		name   string
		form   url.Values
		header []string
	}{
		{"no token", form(""), nil},
		{"a wrong token", form("AAAA" + csrf[4:]), nil},
		{"another user's token", form(e.csrfOf(t, "alice-token")), nil},
		{"another origin", form(csrf), []string{"Origin", "https://evil.example"}},
		{"another port", form(csrf), []string{"Origin", "http://127.0.0.1:8081"}},
		{"cross-site fetch", form(csrf), []string{"Sec-Fetch-Site", "cross-site"}},
		{"same-site fetch", form(csrf), []string{"Sec-Fetch-Site", "same-site"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := e.do("POST", "/approvals", "bob-token", c.form, c.header...)
			if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "Nothing was changed") {
				t.Errorf("got %d %s, want 403", w.Code, w.Body)
			}
			if reqs, _ := e.svc.Requests(""); len(reqs) != 0 {
				t.Fatalf("a refused form made a request: %+v", reqs)
			}
		})
	}
	t.Run("Origin null with the token", func(t *testing.T) {
		// Forms of a page with Referrer-Policy: no-referrer send it.
		w := e.do("POST", "/approvals", "bob-token", form(csrf), "Origin", "null", "Sec-Fetch-Site", "same-origin")
		if w.Code != http.StatusSeeOther {
			t.Errorf("got %d %s, want 303", w.Code, w.Body)
		}
	})
	t.Run("decisions too", func(t *testing.T) {
		req := e.open(t, "bob", "", "delete_all")
		w := e.do("POST", "/approvals/"+req.ID, "sam-token", url.Values{"csrf": {csrf}, "decision": {"approve"}})
		if got, _ := e.svc.Get(req.ID); w.Code != http.StatusForbidden || len(got.Decisions) != 0 {
			t.Errorf("got %d and decisions %+v, want 403 and none", w.Code, got.Decisions)
		}
	})
}

func TestApprovalsPageDecide(t *testing.T) {
	e := newPageEnv(t)
	req := e.open(t, "alice", "", "delete_items")
	decide := func(user, decision, comment string) *httptest.ResponseRecorder {
		return e.do("POST", "/approvals/"+req.ID, user+"-token",
			url.Values{"csrf": {e.csrfOf(t, user+"-token")}, "decision": {decision}, "comment": {comment}}, "Origin", pageBase)
	}
	// alice is a level-1 approver but the requester: no button, and a
	// decision she sends anyway is refused.
	if body := e.do("GET", "/approvals/"+req.ID, "alice-token", nil).Body.String(); strings.Contains(body, `value="approve"`) ||
		!strings.Contains(body, "You cannot decide your own request") {
		t.Errorf("the requester's page offers a decision: %s", body)
	}
	if w := decide("alice", "approve", ""); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "was not recorded") {
		t.Errorf("self-approval: got %d %s, want 403", w.Code, w.Body)
	}
	if w := decide("eve", "approve", ""); w.Code != http.StatusNotFound {
		t.Errorf("a stranger's decision: got %d, want 404", w.Code)
	}
	if w := decide("cab", "approve", ""); w.Code != http.StatusForbidden {
		t.Errorf("level 2 before level 1: got %d, want 403", w.Code)
	}
	if w := decide("sam", "maybe", ""); w.Code != http.StatusBadRequest {
		t.Errorf("no decision: got %d, want 400", w.Code)
	}
	if w := decide("sam", "approve", "ok <b>"); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/approvals/"+req.ID {
		t.Fatalf("level 1: got %d %q, want 303 back to the request", w.Code, w.Header().Get("Location"))
	}
	if w := decide("cab", "approve", ""); w.Code != http.StatusSeeOther {
		t.Fatalf("level 2: got %d %s", w.Code, w.Body)
	}
	got, _ := e.svc.Get(req.ID)
	if got.Status != access.StatusApproved || got.GrantID == "" {
		t.Fatalf("after both levels: %+v", got)
	}
	body := e.do("GET", "/approvals/"+req.ID, "alice-token", nil).Body.String()
	for _, want := range []string{"Approved: granted until 2026-11-25 14:30:00 UTC", got.GrantID, "sam@example.com", "ok &lt;b&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("approved page lacks %q:\n%s", want, body)
		}
	}
	if w := decide("cab", "deny", ""); w.Code != http.StatusConflict {
		t.Errorf("a decision after the end: got %d, want 409", w.Code)
	}

	denied := e.open(t, "bob", "", "delete_users")
	if w := e.do("POST", "/approvals/"+denied.ID, "sam-token", url.Values{"csrf": {e.csrfOf(t, "sam-token")}, "decision": {"deny"}, "comment": {"not now"}}); w.Code != http.StatusSeeOther {
		t.Fatalf("deny: got %d %s", w.Code, w.Body)
	}
	if body := e.do("GET", "/approvals/"+denied.ID, "bob-token", nil).Body.String(); !strings.Contains(body, "Denied by sam@example.com at level 1: “not now”") {
		t.Errorf("denied page: %s", body)
	}

	// Time passes: the grant ends, a pending request expires.
	pending := e.open(t, "bob", "", "delete_rows")
	e.clock.add(61 * time.Minute)
	if body := e.do("GET", "/approvals/"+req.ID, "alice-token", nil).Body.String(); !strings.Contains(body, "The grant <code>"+got.GrantID+"</code> has ended") {
		t.Errorf("approved page after the grant's end: %s", body)
	}
	if body := e.do("GET", "/approvals/"+pending.ID, "bob-token", nil).Body.String(); !strings.Contains(body, "Expired") ||
		!strings.Contains(body, "No decision was made before 2026-11-25 15:00:00 UTC") || strings.Contains(body, `value="approve"`) {
		t.Errorf("expired page: %s", body)
	}
}

// pageIdP is the provider behind the authorization server of the login
// test: any code logs dana in.
type pageIdP struct{}

func (pageIdP) AuthCodeURL(state, nonce, challenge string) string {
	return "https://idp.example/authorize?" + url.Values{"state": {state}}.Encode()
}

func (pageIdP) Exchange(context.Context, string, string, string) (*identity.UpstreamUser, error) {
	return &identity.UpstreamUser{Subject: "d", User: "dana@example.com", Groups: []string{"sre"}}, nil
}

// TestApprovalsPageLogin runs the page's own login through the gateway's
// authorization server (as its first-party client) and the cookie it
// leaves, and the ways a callback is refused.
func TestApprovalsPageLogin(t *testing.T) {
	e := newPageEnv(t)
	store := state.NewMemory()
	t.Cleanup(func() { store.Close() })
	as, err := identity.NewAuthServer(identity.AuthServerConfig{
		Issuer: pageBase, Apps: []identity.OAuthApp{{Name: "crm", Resource: pageBase + "/mcp"}},
		Store: store, Upstream: pageIdP{}, Key: bytes.Repeat([]byte{3}, 32),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { as.Close() })
	e.pg.comp.snap.Tokens = as
	if e.pg.login, err = as.FirstPartyClient([]string{pageBase + "/approvals/callback"}); err != nil {
		t.Fatal(err)
	}
	e.pg.now = time.Now // the authorization server's clock
	serve := func(h http.Handler, target string, cookies []*http.Cookie) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", target, nil)
		for _, c := range cookies {
			r.AddCookie(c)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	// login starts at target and follows the redirects up to the page's
	// callback; it returns the callback URL and the login cookie.
	login := func(t *testing.T, target string) (string, []*http.Cookie) {
		t.Helper()
		w := serve(e.pg, pageBase+target, nil)
		loc := w.Header().Get("Location")
		if w.Code != http.StatusFound || !strings.HasPrefix(loc, pageBase+"/oauth/authorize?") {
			t.Fatalf("GET %s without credentials: got %d %q, want a redirect to the authorization server", target, w.Code, loc)
		}
		u, _ := url.Parse(loc)
		q := u.Query()
		if q.Get("client_id") != identity.FirstPartyClientID || q.Get("redirect_uri") != pageBase+"/approvals/callback" ||
			q.Get("code_challenge_method") != "S256" || q.Get("resource") != pageBase+"/mcp" || q.Get("state") == "" {
			t.Fatalf("authorization request: %v", q)
		}
		cookies := w.Result().Cookies()
		if len(cookies) != 1 || cookies[0].Name != "mcpgw-approvals-login" || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteLaxMode {
			t.Fatalf("login cookie: %+v", cookies)
		}
		w = serve(as.Handler(), loc, nil)
		idp, _ := url.Parse(w.Header().Get("Location"))
		w = serve(as.Handler(), pageBase+"/oauth/callback?"+url.Values{"state": {idp.Query().Get("state")}, "code": {"c"}}.Encode(), nil)
		back := w.Header().Get("Location")
		if !strings.HasPrefix(back, pageBase+"/approvals/callback?") {
			t.Fatalf("the authorization server sent the browser to %q (%d %s), want the page's callback", back, w.Code, w.Body)
		}
		return back, cookies
	}

	back, cookies := login(t, "/approvals/apr_x1")
	w := serve(e.pg, back, cookies)
	var session *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == "mcpgw-approvals" {
			session = c
		}
	}
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/approvals/apr_x1" || session == nil ||
		!session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/" || session.MaxAge <= 0 || session.MaxAge > 3600 {
		t.Fatalf("callback: got %d %q, session cookie %+v", w.Code, w.Header().Get("Location"), session)
	}
	page := serve(e.pg, pageBase+"/approvals", []*http.Cookie{session})
	if page.Code != 200 || !strings.Contains(page.Body.String(), "Signed in as <strong>dana@example.com</strong>") ||
		!strings.Contains(page.Body.String(), `action="/approvals/logout"`) {
		t.Fatalf("the page with the session cookie: got %d %s", page.Code, page.Body)
	}
	// The form works with the cookie and its CSRF token.
	csrf := csrfField.FindStringSubmatch(page.Body.String())[1]
	r := httptest.NewRequest("POST", pageBase+"/approvals", strings.NewReader(url.Values{"csrf": {csrf}, "app": {"crm"}, "tools": {"delete_x"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.AddCookie(session)
	post := httptest.NewRecorder()
	e.pg.ServeHTTP(post, r)
	if reqs, _ := e.svc.Requests(""); post.Code != http.StatusSeeOther || len(reqs) != 1 || reqs[0].User != "dana@example.com" {
		t.Errorf("request with the cookie: got %d, requests %+v", post.Code, reqs)
	}

	t.Run("callback without the login cookie", func(t *testing.T) {
		back, _ := login(t, "/approvals")
		if w := serve(e.pg, back, nil); w.Code != http.StatusBadRequest || len(w.Result().Cookies()) != 1 || w.Result().Cookies()[0].MaxAge >= 0 {
			t.Errorf("got %d cookies %v, want 400 and no session", w.Code, w.Result().Cookies())
		}
	})
	t.Run("callback with another login's cookie", func(t *testing.T) {
		back, _ := login(t, "/approvals")
		_, other := login(t, "/approvals")
		if w := serve(e.pg, back, other); w.Code != http.StatusBadRequest {
			t.Errorf("got %d, want 400", w.Code)
		}
	})
	t.Run("callback used twice", func(t *testing.T) {
		back, cookies := login(t, "/approvals")
		if w := serve(e.pg, back, cookies); w.Code != http.StatusSeeOther {
			t.Fatalf("first: got %d %s", w.Code, w.Body)
		}
		if w := serve(e.pg, back, cookies); w.Code == http.StatusSeeOther {
			t.Errorf("second use of the callback: got %d, want a refusal", w.Code)
		}
	})
	t.Run("a garbled cookie starts a new login", func(t *testing.T) {
		w := serve(e.pg, pageBase+"/approvals", []*http.Cookie{{Name: "mcpgw-approvals", Value: "garbage"}})
		if w.Code != http.StatusFound || !strings.HasPrefix(w.Header().Get("Location"), pageBase+"/oauth/authorize?") {
			t.Errorf("got %d %q, want a new login", w.Code, w.Header().Get("Location"))
		}
	})
	t.Run("a POST without a session is not a login", func(t *testing.T) {
		r := httptest.NewRequest("POST", pageBase+"/approvals", strings.NewReader("tools=x"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		e.pg.ServeHTTP(w, r)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("got %d, want 401", w.Code)
		}
	})
	t.Run("over TLS the cookies are __Host- and Secure", func(t *testing.T) {
		e.pg.tls = true
		defer func() { e.pg.tls = false }()
		w := serve(e.pg, pageBase+"/approvals", nil)
		c := w.Result().Cookies()
		if w.Code != http.StatusFound || len(c) != 1 || c[0].Name != "__Host-mcpgw-approvals-login" || !c[0].Secure ||
			c[0].Path != "/" || c[0].Domain != "" || !c[0].HttpOnly || c[0].SameSite != http.SameSiteLaxMode {
			t.Errorf("got %d cookies %+v", w.Code, c)
		}
		if w := serve(e.pg, pageBase+"/approvals", []*http.Cookie{{Name: "__Host-mcpgw-approvals", Value: session.Value}}); w.Code != 200 {
			t.Errorf("the session under its TLS name: got %d, want 200", w.Code)
		}
	})
	t.Run("sign out", func(t *testing.T) {
		r := httptest.NewRequest("POST", pageBase+"/approvals/logout", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.AddCookie(session)
		w := httptest.NewRecorder()
		e.pg.ServeHTTP(w, r)
		c := w.Result().Cookies()
		if w.Code != 200 || len(c) != 1 || c[0].Name != "mcpgw-approvals" || c[0].MaxAge >= 0 {
			t.Errorf("got %d cookies %+v, want the session cookie cleared", w.Code, c)
		}
	})
}

func TestSafeNext(t *testing.T) {
	for p, want := range map[string]bool{
		"/approvals": true, "/approvals/apr_1-x": true,
		"/approvals/": false, "/approvals/callback": false, "/approvals/logout": false,
		"//evil.example": false, "/approvals/a/b": false, "/approvals/a%2f": false, "/other": false,
	} {
		if got := safeNext(p); got != want {
			t.Errorf("safeNext(%q): got %v, want %v", p, got, want)
		}
	}
}

// TestAttachApprovalsPage: attach sets the page in every identity mode; only
// broker mode with a provider signs browsers in.
func TestAttachApprovalsPage(t *testing.T) {
	get := func(t *testing.T, comp *compiled) *httptest.ResponseRecorder {
		t.Helper()
		if comp.snap.ApprovalsHandler == nil {
			t.Fatal("no approval page attached")
		}
		w := httptest.NewRecorder()
		comp.snap.ApprovalsHandler.ServeHTTP(w, httptest.NewRequest("GET", "http://localhost:8080/approvals/apr_1", nil))
		return w
	}
	t.Run("broker", func(t *testing.T) {
		comp, _ := attachConfig(t, attachApps, "OIDC_CLIENT_ID=gw\nOIDC_CLIENT_SECRET=s3cret-value\n"+
			"OIDC_AUTH_URL=http://127.0.0.1:1/as/authorize\nOIDC_TOKEN_URL=http://127.0.0.1:1/as/token\n"+
			"SERVER_URL=http://127.0.0.1:8080\n")
		w := get(t, comp)
		u, _ := url.Parse(w.Header().Get("Location"))
		if w.Code != http.StatusFound || u == nil || u.Host != "127.0.0.1:8080" || u.Path != "/oauth/authorize" ||
			u.Query().Get("redirect_uri") != "http://localhost:8080/approvals/callback" || u.Query().Get("resource") != "http://127.0.0.1:8080/mcp" {
			t.Errorf("got %d %q, want a login at the authorization server returning to this host", w.Code, w.Header().Get("Location"))
		}
	})
	t.Run("dev users only", func(t *testing.T) {
		comp, _ := attachConfig(t, "identity:\n  env_file: \"\"\n  dev_users: [{token: alice-token, user: alice}]\n"+attachApps, "")
		if w := get(t, comp); w.Code != http.StatusUnauthorized {
			t.Errorf("got %d, want 401", w.Code)
		}
	})
	t.Run("resource", func(t *testing.T) {
		comp, _ := attachConfig(t, "identity: {mode: resource, issuer: \"http://127.0.0.1:1/as\"}\n"+attachApps, "")
		if w := get(t, comp); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "does not sign browsers in") {
			t.Errorf("got %d %s, want 401 explaining bearer tokens", w.Code, w.Body)
		}
	})
}

// TestServeApprovalsPage: serve puts the page on the frontend listener, over
// its access service: the approval_url of a refusal shows the request to
// its requester's bearer token and to nobody else.
func TestServeApprovalsPage(t *testing.T) {
	cfgPath := writeApprovalConfig(t)
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	stop := startServe(t, cfgPath)
	defer stop()
	base := "http://" + cfg.Server.Listen
	get := func(target, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_items","arguments":{}}}`
	req, _ := http.NewRequest("POST", base+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer alice-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`"approval_url":"([^"]+)"`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("refusal without approval_url: %s", b)
	}
	if status, page := get(m[1], "alice-token-0123456789"); status != 200 || !strings.Contains(page, "Pending: level 1 of 2") {
		t.Errorf("GET %s as the requester: got %d %s", m[1], status, page)
	}
	if status, _ := get(m[1], "cab-token-0123456789"); status != 200 {
		t.Errorf("GET %s as a level-2 approver: got %d, want 200", m[1], status)
	}
	if status, _ := get(base+"/approvals", "nobody-token-0123456789"); status != 401 {
		t.Errorf("an unknown token: got %d, want 401", status)
	}
}

// TestApprovalsPageWholeTool: for a request of one exact call, an approver
// may grant the whole tool instead, as whole_tool does in the admin API.
func TestApprovalsPageWholeTool(t *testing.T) {
	e := newPageEnv(t)
	hash := [32]byte{1, 2, 3}
	call, _, err := e.svc.RequestFor("bob@example.com", "crm", "prod-writes", "delete_items", &hash)
	if err != nil {
		t.Fatal(err)
	}
	ahead := e.open(t, "bob", "", "delete_users")
	if body := e.do("GET", "/approvals/"+ahead.ID, "sam-token", nil).Body.String(); strings.Contains(body, `name="whole_tool"`) {
		t.Errorf("a request for whole tools offers whole_tool")
	}
	page := e.do("GET", "/approvals/"+call.ID, "sam-token", nil).Body.String()
	if !strings.Contains(page, `name="whole_tool"`) || !strings.Contains(page, call.ArgumentsHash) {
		t.Fatalf("the page of one exact call lacks whole_tool or the hash: %s", page)
	}
	w := e.do("POST", "/approvals/"+call.ID, "sam-token", url.Values{"csrf": {e.csrfOf(t, "sam-token")}, "decision": {"approve"}, "whole_tool": {"1"}})
	got, _ := e.svc.Get(call.ID)
	if w.Code != http.StatusSeeOther || len(got.Decisions) != 1 || !got.Decisions[0].WholeTool {
		t.Errorf("got %d, decisions %+v; want one whole-tool approval", w.Code, got.Decisions)
	}
	if body := e.do("GET", "/approvals/"+call.ID, "bob-token", nil).Body.String(); !strings.Contains(body, "approve (whole tool)") {
		t.Errorf("the decision does not say whole tool: %s", body)
	}
}
