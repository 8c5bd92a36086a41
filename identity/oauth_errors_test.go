package identity

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAuthorizeErrorPage: before the client and its redirect URI are
// known to be valid, errors are an HTML page and never a redirect.
func TestAuthorizeErrorPage(t *testing.T) {
	e := newASEnv(t)
	client := e.register(t, asRedirect)
	two := e.register(t, asRedirect, "http://localhost:9000/cb")
	for _, tc := range []struct {
		name   string
		modify func(url.Values)
		want   string
	}{
		{"missing client_id", func(q url.Values) { q.Del("client_id") }, "client_id is missing"},
		{"unknown client", func(q url.Values) { q.Set("client_id", "nope") }, "not registered"},
		{"wrong redirect uri", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:33418/other") }, "not one the client registered"},
		{"redirect uri differs by a slash", func(q url.Values) { q.Set("redirect_uri", asRedirect+"/") }, "not one the client registered"},
		{"loopback redirect on another path", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:9999/other") }, "not one the client registered"},
		{"loopback redirect on another host", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.2:33418/callback") }, "not one the client registered"},
		{"localhost instead of the IP", func(q url.Values) { q.Set("redirect_uri", "http://localhost:33418/callback") }, "not one the client registered"},
		{"no redirect uri, several registered", func(q url.Values) { q.Set("client_id", two); q.Del("redirect_uri") }, "registered several"},
		{"repeated client_id", func(q url.Values) { q.Add("client_id", client) }, "more than once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := authParams(client)
			tc.modify(q)
			w := e.get("/oauth/authorize?" + q.Encode())
			if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" {
				t.Fatalf("got %d, Location %q, want 400 and no redirect", w.Code, w.Header().Get("Location"))
			}
			if !strings.Contains(w.Body.String(), tc.want) || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
				t.Errorf("page: got %q, want HTML containing %q", w.Body, tc.want)
			}
			wantPageHeaders(t, w.Header())
		})
	}
}

// TestAuthorizeErrorRedirect: once the redirect URI is valid, errors go
// back to the client with error, state and iss.
func TestAuthorizeErrorRedirect(t *testing.T) {
	e := newASEnv(t)
	client := e.register(t, asRedirect)
	for _, tc := range []struct {
		name   string
		modify func(url.Values)
		want   string
	}{
		{"missing PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "invalid_request"},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain"); q.Set("code_challenge", asVerifier) }, "invalid_request"},
		{"PKCE method missing", func(q url.Values) { q.Del("code_challenge_method") }, "invalid_request"},
		{"malformed challenge", func(q url.Values) { q.Set("code_challenge", "short") }, "invalid_request"},
		{"implicit grant", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
		{"missing response_type", func(q url.Values) { q.Del("response_type") }, "unsupported_response_type"},
		{"wrong resource", func(q url.Values) { q.Set("resource", "https://gw.example.com/other") }, "invalid_target"},
		{"upstream resource", func(q url.Values) { q.Set("resource", "https://mcp-server-internal:8080/mcp") }, "invalid_target"},
		{"repeated scope", func(q url.Values) { q.Add("scope", "x") }, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := authParams(client)
			tc.modify(q)
			w := e.get("/oauth/authorize?" + q.Encode())
			got := clientRedirect(t, w, asRedirect)
			if got.Get("error") != tc.want || got.Get("state") != "client-state-1" || got.Get("iss") != asIssuer || got.Get("code") != "" {
				t.Errorf("got %v, want error=%s with state and iss, no code", got, tc.want)
			}
		})
	}
}

// TestAuthorizeResource: RFC 8707 resource matching.
func TestAuthorizeResource(t *testing.T) {
	e := newASEnv(t)
	client := e.register(t, asRedirect)
	for _, res := range []string{"", asResource, "HTTPS://GW.EXAMPLE.COM/mcp", "https://gw.example.com:443/mcp"} {
		q := authParams(client)
		q.Set("resource", res)
		if w := e.get("/oauth/authorize?" + q.Encode()); w.Code != http.StatusFound || !strings.Contains(w.Header().Get("Location"), "idp.example.com") {
			t.Errorf("resource %q: got %d %s, want a redirect to the IdP", res, w.Code, w.Header().Get("Location"))
		}
	}

	two := newASEnv(t, func(c *AuthServerConfig) {
		c.Apps = append(c.Apps, OAuthApp{Name: "other", Resource: "https://gw.example.com/other"})
	})
	client = two.register(t, asRedirect)
	q := authParams(client)
	q.Del("resource")
	got := clientRedirect(t, two.get("/oauth/authorize?"+q.Encode()), asRedirect)
	if got.Get("error") != "invalid_target" {
		t.Errorf("no resource with two apps: got %v, want invalid_target", got)
	}
	// Origin-only resources accept a trailing slash (MCP-REQUIREMENTS.md 4.1.5).
	root := newASEnv(t, func(c *AuthServerConfig) { c.Apps = []OAuthApp{{Name: "root", Resource: "https://mcp.example.com"}} })
	client = root.register(t, asRedirect)
	q = authParams(client)
	q.Set("resource", "https://mcp.example.com/")
	if w := root.get("/oauth/authorize?" + q.Encode()); w.Code != http.StatusFound || !strings.Contains(w.Header().Get("Location"), "idp.example.com") {
		t.Errorf("trailing slash: got %d %s, want a redirect to the IdP", w.Code, w.Header().Get("Location"))
	}
}

// TestCallbackErrors: what the user sees when the return from the
// provider goes wrong.
func TestCallbackErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		run    func(e *asEnv, st string) string // returns the callback query
		status int
		want   string
	}{
		{"no state", func(e *asEnv, st string) string { return "code=idp-code" }, 400, "without the login"},
		{"bad state", func(e *asEnv, st string) string { return "code=idp-code&state=forged" }, 400, "expired or was already used"},
		{"expired login", func(e *asEnv, st string) string {
			e.clock.advance(11 * time.Minute)
			return url.Values{"state": {st}, "code": {"idp-code"}}.Encode()
		}, 400, "expired or was already used"},
		{"state used twice", func(e *asEnv, st string) string {
			e.get("/oauth/callback?" + url.Values{"state": {st}, "code": {"idp-code"}}.Encode())
			return url.Values{"state": {st}, "code": {"idp-code"}}.Encode()
		}, 400, "expired or was already used"},
		{"provider error", func(e *asEnv, st string) string {
			return url.Values{"state": {st}, "error": {"access_denied"}, "error_description": {"user cancelled"}}.Encode()
		}, 502, "access_denied (user cancelled)"},
		{"no code", func(e *asEnv, st string) string { return url.Values{"state": {st}}.Encode() }, 502, "without an authorization code"},
		{"provider down", func(e *asEnv, st string) string {
			e.idp.err = errors.New("the identity provider did not answer: dial tcp 10.0.0.1:443: connection refused")
			return url.Values{"state": {st}, "code": {"idp-code"}}.Encode()
		}, 502, "did not answer: dial tcp"},
		{"id token rejected", func(e *asEnv, st string) string {
			e.idp.err = errors.New("the ID token is not valid: nonce mismatch")
			return url.Values{"state": {st}, "code": {"idp-code"}}.Encode()
		}, 502, "nonce mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newASEnv(t)
			client := e.register(t, asRedirect)
			st := e.toIdP(t, authParams(client))
			w := e.get("/oauth/callback?" + tc.run(e, st))
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("got %d %q, want %d with %q", w.Code, w.Body, tc.status, tc.want)
			}
			if w.Header().Get("Location") != "" {
				t.Errorf("got a redirect to %s, want a page", w.Header().Get("Location"))
			}
			wantPageHeaders(t, w.Header())
		})
	}
}

// TestTokenErrors: every way a token request can fail, as RFC 6749
// section 5.2 JSON.
func TestTokenErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		form   func(e *asEnv, client, code string) url.Values
		status int
		want   string
	}{
		{"expired code", func(e *asEnv, client, code string) url.Values {
			e.clock.advance(61 * time.Second)
			return codeForm(client, code)
		}, 400, "invalid_grant"},
		{"unknown code", func(e *asEnv, client, code string) url.Values { return codeForm(client, "forged") }, 400, "invalid_grant"},
		{"wrong verifier", func(e *asEnv, client, code string) url.Values {
			f := codeForm(client, code)
			f.Set("code_verifier", strings.Repeat("a", 43))
			return f
		}, 400, "invalid_grant"},
		{"missing verifier", func(e *asEnv, client, code string) url.Values {
			f := codeForm(client, code)
			f.Del("code_verifier")
			return f
		}, 400, "invalid_request"},
		{"wrong redirect uri", func(e *asEnv, client, code string) url.Values {
			f := codeForm(client, code)
			f.Set("redirect_uri", "http://127.0.0.1:1/cb")
			return f
		}, 400, "invalid_grant"},
		{"missing redirect uri", func(e *asEnv, client, code string) url.Values {
			f := codeForm(client, code)
			f.Del("redirect_uri")
			return f
		}, 400, "invalid_grant"},
		{"another client", func(e *asEnv, client, code string) url.Values {
			return codeForm(e.register(t, asRedirect), code)
		}, 400, "invalid_grant"},
		{"unknown client", func(e *asEnv, client, code string) url.Values { return codeForm("nope", code) }, 401, "invalid_client"},
		{"no client", func(e *asEnv, client, code string) url.Values { return codeForm("", code) }, 401, "invalid_client"},
		{"wrong resource", func(e *asEnv, client, code string) url.Values {
			f := codeForm(client, code)
			f.Set("resource", "https://gw.example.com/other")
			return f
		}, 400, "invalid_target"},
		{"unsupported grant", func(e *asEnv, client, code string) url.Values {
			return url.Values{"grant_type": {"password"}, "client_id": {client}}
		}, 400, "unsupported_grant_type"},
		{"missing grant type", func(e *asEnv, client, code string) url.Values {
			return url.Values{"client_id": {client}, "code": {code}}
		}, 400, "invalid_request"},
		{"repeated code", func(e *asEnv, client, code string) url.Values {
			f := codeForm(client, code)
			f.Add("code", code)
			return f
		}, 400, "invalid_request"},
		{"secret from a public client", func(e *asEnv, client, code string) url.Values {
			f := codeForm(client, code)
			f.Set("client_secret", "x")
			return f
		}, 401, "invalid_client"},
		{"unknown refresh token", func(e *asEnv, client, code string) url.Values { return refreshForm(client, "forged") }, 400, "invalid_grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newASEnv(t)
			client := e.register(t, asRedirect)
			code := e.login(t, authParams(client))
			a := e.token(t, tc.form(e, client, code))
			wantTokenError(t, a, tc.status, tc.want)
			if a.Desc == "" {
				t.Error("error_description is empty")
			}
		})
	}
}

// TestCodeReuseRevokes: a code redeemed twice fails the second time and
// revokes what the first redemption issued.
func TestCodeReuseRevokes(t *testing.T) {
	e := newASEnv(t)
	client := e.register(t, asRedirect)
	code := e.login(t, authParams(client))
	first := e.token(t, codeForm(client, code))
	wantTokens(t, first)
	wantPrincipal(t, e.a, first.Access)
	wantTokenError(t, e.token(t, codeForm(client, code)), 400, "invalid_grant")
	if _, err := e.a.Verify([]byte(first.Access), asResource); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("access token after code reuse: got %v, want ErrTokenRevoked", err)
	}
	wantTokenError(t, e.token(t, refreshForm(client, first.Refresh)), 400, "invalid_grant")
}

// TestRefreshErrors: refresh tokens are bound to their client and
// resource and end with their family.
func TestRefreshErrors(t *testing.T) {
	e := newASEnv(t)
	client := e.register(t, asRedirect)
	tok := e.token(t, codeForm(client, e.login(t, authParams(client))))
	wantTokens(t, tok)

	other := e.register(t, asRedirect)
	wantTokenError(t, e.token(t, refreshForm(other, tok.Refresh)), 400, "invalid_grant")
	f := refreshForm(client, tok.Refresh)
	f.Set("resource", "https://gw.example.com/other")
	wantTokenError(t, e.token(t, f), 400, "invalid_target")
	f = refreshForm(client, tok.Refresh)
	f.Set("scope", "admin")
	wantTokenError(t, e.token(t, f), 400, "invalid_scope")
	// None of these used the token up.
	wantTokens(t, e.token(t, refreshForm(client, tok.Refresh)))

	// The family ends after RefreshTTL.
	tok = e.token(t, codeForm(client, e.login(t, authParams(client))))
	e.clock.advance(DefaultRefreshTTL + time.Second)
	wantTokenError(t, e.token(t, refreshForm(client, tok.Refresh)), 400, "invalid_grant")
}

// TestConsent: the consent page's protections and the deny answer.
func TestConsent(t *testing.T) {
	callback := func(t *testing.T, e *asEnv) consentForm {
		client := e.register(t, asRedirect)
		st := e.toIdP(t, authParams(client))
		w := e.get("/oauth/callback?" + url.Values{"state": {st}, "code": {"idp-code"}}.Encode())
		wantPageHeaders(t, w.Header())
		for _, want := range []string{"Test Client", "http://127.0.0.1:33418", "alice@example.com", "pingone-admin", "registered itself"} {
			if !strings.Contains(w.Body.String(), want) {
				t.Errorf("consent page does not name %q", want)
			}
		}
		return parseConsent(t, w)
	}
	for _, tc := range []struct {
		name   string
		modify func(*consentForm)
		origin string
	}{
		{"wrong csrf token", func(f *consentForm) { f.csrf = "forged" }, asIssuer},
		{"no csrf token", func(f *consentForm) { f.csrf = "" }, asIssuer},
		{"no cookie", func(f *consentForm) { f.cookie = nil }, asIssuer},
		{"cookie of another login", func(f *consentForm) { c := *f.cookie; c.Value = "other"; f.cookie = &c }, asIssuer},
		{"cross-site post", func(f *consentForm) {}, "https://evil.example.com"},
		{"cross-site post from a subdomain", func(f *consentForm) {}, "https://evil.gw.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newASEnv(t)
			f := callback(t, e)
			good := f
			tc.modify(&f)
			form := url.Values{"login": {f.login}, "csrf": {f.csrf}, "action": {"approve"}}
			r := httptestPost("/oauth/consent", form)
			r.Header.Set("Origin", tc.origin)
			if f.cookie != nil {
				r.AddCookie(f.cookie)
			}
			w := e.do(r)
			if w.Code != http.StatusForbidden || w.Header().Get("Location") != "" || !strings.Contains(w.Body.String(), "Nothing was approved") {
				t.Fatalf("got %d %s, want 403 page", w.Code, w.Body)
			}
			wantPageHeaders(t, w.Header())
			// The real form still works afterwards.
			clientRedirect(t, e.answerConsent(good, "approve"), asRedirect)
		})
	}
	t.Run("same origin spelled differently", func(t *testing.T) {
		e := newASEnv(t)
		f := callback(t, e)
		r := httptestPost("/oauth/consent", url.Values{"login": {f.login}, "csrf": {f.csrf}, "action": {"approve"}})
		r.Header.Set("Origin", "https://GW.example.com:443")
		r.AddCookie(f.cookie)
		clientRedirect(t, e.do(r), asRedirect)
	})
	t.Run("loopback port may change", func(t *testing.T) {
		// RFC 8252 section 7.3: any port on a loopback IP; the approval
		// given for one port holds for the next.
		e := newASEnv(t)
		client := e.register(t, asRedirect)
		e.login(t, authParams(client))
		q := authParams(client)
		q.Set("redirect_uri", "http://127.0.0.1:40001/callback")
		st := e.toIdP(t, q)
		w := e.get("/oauth/callback?" + url.Values{"state": {st}, "code": {"idp-code"}}.Encode())
		code := clientRedirect(t, w, "http://127.0.0.1:40001/callback").Get("code")
		f := codeForm(client, code)
		f.Set("redirect_uri", "http://127.0.0.1:40001/callback")
		wantTokens(t, e.token(t, f))
	})
	t.Run("deny", func(t *testing.T) {
		e := newASEnv(t)
		q := clientRedirect(t, e.answerConsent(callback(t, e), "deny"), asRedirect)
		if q.Get("error") != "access_denied" || q.Get("code") != "" || q.Get("state") != "client-state-1" || q.Get("iss") != asIssuer {
			t.Errorf("deny: got %v, want error=access_denied with state and iss", q)
		}
	})
	t.Run("answered twice", func(t *testing.T) {
		e := newASEnv(t)
		f := callback(t, e)
		clientRedirect(t, e.answerConsent(f, "approve"), asRedirect)
		if w := e.answerConsent(f, "approve"); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "already answered") {
			t.Errorf("second answer: got %d %s, want 400 page", w.Code, w.Body)
		}
	})
	t.Run("redirect elsewhere asks again", func(t *testing.T) {
		e := newASEnv(t)
		client := e.register(t, asRedirect, "https://app.example.com/cb")
		e.login(t, authParams(client)) // approves for 127.0.0.1:33418
		q := authParams(client)
		q.Set("redirect_uri", "https://app.example.com/cb")
		st := e.toIdP(t, q)
		w := e.get("/oauth/callback?" + url.Values{"state": {st}, "code": {"idp-code"}}.Encode())
		if !strings.Contains(w.Body.String(), "https://app.example.com") {
			t.Errorf("got %d %s, want the consent page naming the new host", w.Code, w.Body)
		}
	})
}

func httptestPost(target string, form url.Values) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = "192.0.2.1:1234"
	return r
}

func wantPageHeaders(t *testing.T, h http.Header) {
	t.Helper()
	for name, want := range map[string]string{
		"X-Frame-Options": "DENY",
		"Cache-Control":   "no-store",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	if got := h.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy: got %q, want frame-ancestors 'none'", got)
	}
}

// TestRegister: dynamic registration (RFC 7591) validation.
func TestRegister(t *testing.T) {
	e := newASEnv(t)
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"https", `{"redirect_uris":["https://claude.ai/api/mcp/auth_callback"]}`, 201, `"token_endpoint_auth_method":"none"`},
		{"loopback v4", `{"redirect_uris":["http://127.0.0.1:33418/cb"]}`, 201, "client_id"},
		{"loopback v6", `{"redirect_uris":["http://[::1]:8080/cb"]}`, 201, "client_id"},
		{"localhost", `{"redirect_uris":["http://localhost:6274/oauth/callback"]}`, 201, "client_id"},
		{"native app scheme", `{"redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback"]}`, 201, "client_id"},
		{"http to another host", `{"redirect_uris":["http://example.com/cb"]}`, 400, "invalid_redirect_uri"},
		{"fragment", `{"redirect_uris":["https://app.example.com/cb#x"]}`, 400, "invalid_redirect_uri"},
		{"javascript", `{"redirect_uris":["javascript:alert(1)"]}`, 400, "invalid_redirect_uri"},
		{"relative", `{"redirect_uris":["/cb"]}`, 400, "invalid_redirect_uri"},
		{"none", `{"redirect_uris":[]}`, 400, "invalid_redirect_uri"},
		{"missing", `{"client_name":"x"}`, 400, "invalid_redirect_uri"},
		{"implicit", `{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}`, 400, "invalid_client_metadata"},
		{"client credentials", `{"redirect_uris":["https://a.example/cb"],"grant_types":["client_credentials"]}`, 400, "invalid_client_metadata"},
		{"private_key_jwt", `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, 400, "invalid_client_metadata"},
		{"not json", `redirect_uris=x`, 400, "invalid_client_metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptestPost("/oauth/register", nil)
			r.Body = ioNopCloser(tc.body)
			r.Header.Set("Content-Type", "application/json")
			w := e.do(r)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("got %d %s, want %d with %q", w.Code, w.Body, tc.status, tc.want)
			}
		})
	}
}

func ioNopCloser(s string) *nopCloser { return &nopCloser{strings.NewReader(s)} }

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

// FuzzCheckRedirectURI: an accepted redirect URI is absolute, has no
// fragment, and is never plain http to a host other than loopback.
func FuzzCheckRedirectURI(f *testing.F) {
	for _, s := range []string{asRedirect, "https://claude.ai/api/mcp/auth_callback", "cursor://x/cb",
		"http://example.com/cb", "javascript:alert(1)", "http://[::1]:1/", "HTTP://LOCALHOST/", "https://a#b", "//x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkRedirectURI(s) != nil {
			return
		}
		u, err := url.Parse(s)
		if err != nil || !u.IsAbs() || strings.Contains(s, "#") {
			t.Fatalf("accepted %q: not an absolute URL without fragment", s)
		}
		switch strings.ToLower(u.Scheme) {
		case "http":
			if !isLoopbackHost(u.Hostname()) {
				t.Fatalf("accepted %q: http to a non-loopback host", s)
			}
		case "javascript", "data", "file", "vbscript":
			t.Fatalf("accepted %q: scheme %s", s, u.Scheme)
		}
	})
}

// FuzzCanonicalResource: canonical forms are fixed points, and a resource
// is always the same resource as itself.
func FuzzCanonicalResource(f *testing.F) {
	for _, s := range []string{asResource, "HTTPS://GW.example.com:443/", "http://a:80", "https://a/b?c=d", "https://a/#x", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := canonicalResource(s)
		if !ok {
			return
		}
		if c2, ok := canonicalResource(c); !ok || c2 != c {
			t.Fatalf("canonicalResource(%q) = %q, but canonicalResource of that = %q, %v", s, c, c2, ok)
		}
		if !sameResource(s, s) {
			t.Fatalf("%q is not the same resource as itself", s)
		}
	})
}
