package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/state"
)

const (
	asIssuer   = "https://gw.example.com"
	asResource = "https://gw.example.com/mcp"
	asRedirect = "http://127.0.0.1:33418/callback"
	asVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-some-more"
)

// asClock is a settable clock shared by the server and its Memory store.
type asClock struct{ ns atomic.Int64 }

func (c *asClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *asClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// asFakeIdP stands in for the upstream provider: AuthCodeURL encodes what it
// was given, Exchange returns user or err after checking the PKCE pair and
// nonce it saw.
type asFakeIdP struct {
	mu         sync.Mutex
	user       *UpstreamUser
	err        error
	challenges map[string]string // nonce -> code challenge toward the IdP
}

func (f *asFakeIdP) AuthCodeURL(state, nonce, codeChallenge string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.challenges[nonce] = codeChallenge
	return "https://idp.example.com/authorize?" + url.Values{"state": {state}, "nonce": {nonce}}.Encode()
}

func (f *asFakeIdP) Exchange(ctx context.Context, code, codeVerifier, nonce string) (*UpstreamUser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if want := f.challenges[nonce]; want == "" || s256(codeVerifier) != want {
		return nil, errors.New("fake IdP: PKCE toward the provider does not match")
	}
	if code != "idp-code" {
		return nil, errors.New("fake IdP: unknown code")
	}
	u := *f.user
	return &u, nil
}

// asFakeCIMD serves client metadata documents from a map.
type asFakeCIMD map[string]*ClientMetadata

func (f asFakeCIMD) Fetch(ctx context.Context, clientID string) (*ClientMetadata, error) {
	md, ok := f[clientID]
	if !ok {
		return nil, errors.New("fetching the document failed: 404")
	}
	return md, nil
}

type asEnv struct {
	a     *AuthServer
	h     http.Handler
	idp   *asFakeIdP
	clock *asClock
	store *state.Memory
}

func newASEnv(t testing.TB, modify ...func(*AuthServerConfig)) *asEnv {
	t.Helper()
	clock := &asClock{}
	clock.ns.Store(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).UnixNano())
	store := state.NewMemoryWithClock(clock.now)
	idp := &asFakeIdP{
		user:       &UpstreamUser{Subject: "sub-1", User: "alice@example.com", Groups: []string{"engineers", "sre"}},
		challenges: map[string]string{},
	}
	cfg := AuthServerConfig{
		Issuer:   asIssuer,
		Apps:     []OAuthApp{{Name: "pingone-admin", Resource: asResource, Scopes: []string{"mcp"}}},
		Store:    store,
		Upstream: idp,
		ClientMetadata: asFakeCIMD{"https://client.example.com/meta.json": {
			ClientID: "https://client.example.com/meta.json", ClientName: "Doc Client",
			RedirectURIs: []string{"https://client.example.com/cb"},
		}},
		Key: make([]byte, 32),
		Now: clock.now,
	}
	for _, m := range modify {
		m(&cfg)
	}
	a, err := NewAuthServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return &asEnv{a: a, h: a.Handler(), idp: idp, clock: clock, store: store}
}

func (e *asEnv) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func (e *asEnv) get(target string) *httptest.ResponseRecorder {
	return e.do(httptest.NewRequest(http.MethodGet, target, nil))
}

func (e *asEnv) postForm(target string, form url.Values) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(r)
}

// register registers a public client with redirect URIs and returns its
// client_id.
func (e *asEnv) register(t testing.TB, redirects ...string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"redirect_uris": redirects, "client_name": "Test Client",
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"}})
	r := httptest.NewRequest(http.MethodPost, "/oauth/register", strings.NewReader(string(body)))
	r.Header.Set("Content-Type", "application/json")
	w := e.do(r)
	if w.Code != http.StatusCreated {
		t.Fatalf("register: got %d %s, want 201", w.Code, w.Body)
	}
	var resp struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.ClientID == "" {
		t.Fatalf("register: bad answer %s", w.Body)
	}
	return resp.ClientID
}

// authParams are the parameters of a valid authorization request.
func authParams(clientID string) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {asRedirect},
		"code_challenge":        {s256(asVerifier)},
		"code_challenge_method": {"S256"},
		"resource":              {asResource},
		"scope":                 {"mcp offline_access"},
		"state":                 {"client-state-1"},
	}
}

// toIdP runs the authorization request and returns the state the server
// sent to the provider.
func (e *asEnv) toIdP(t testing.TB, params url.Values) string {
	t.Helper()
	w := e.get("/oauth/authorize?" + params.Encode())
	if w.Code != http.StatusFound {
		t.Fatalf("authorize: got %d %s, want 302", w.Code, w.Body)
	}
	loc, _ := url.Parse(w.Header().Get("Location"))
	if loc.Host != "idp.example.com" {
		t.Fatalf("authorize: redirected to %s, want the IdP", loc)
	}
	return loc.Query().Get("state")
}

// consentForm is what the consent page hands the browser.
type consentForm struct {
	login, csrf string
	cookie      *http.Cookie
}

var hiddenInput = regexp.MustCompile(`name="(login|csrf)" value="([^"]*)"`)

func parseConsent(t testing.TB, w *httptest.ResponseRecorder) consentForm {
	t.Helper()
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `action="/oauth/consent"`) {
		t.Fatalf("callback: got %d %s, want the consent page", w.Code, w.Body)
	}
	var f consentForm
	for _, m := range hiddenInput.FindAllStringSubmatch(w.Body.String(), -1) {
		if m[1] == "login" {
			f.login = m[2]
		} else {
			f.csrf = m[2]
		}
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == consentCookieSecure {
			f.cookie = c
		}
	}
	if f.login == "" || f.csrf == "" || f.cookie == nil {
		t.Fatalf("consent page without login, csrf or cookie: %+v", f)
	}
	return f
}

func (e *asEnv) answerConsent(f consentForm, action string) *httptest.ResponseRecorder {
	form := url.Values{"login": {f.login}, "csrf": {f.csrf}, "action": {action}}
	r := httptest.NewRequest(http.MethodPost, "/oauth/consent", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Origin", asIssuer)
	if f.cookie != nil {
		r.AddCookie(f.cookie)
	}
	return e.do(r)
}

// clientRedirect checks that w sends the browser to the client's redirect
// URI and returns its query.
func clientRedirect(t testing.TB, w *httptest.ResponseRecorder, redirect string) url.Values {
	t.Helper()
	if w.Code != http.StatusFound && w.Code != http.StatusSeeOther {
		t.Fatalf("got %d %s, want a redirect to the client", w.Code, w.Body)
	}
	loc := w.Header().Get("Location")
	if !strings.HasPrefix(loc, redirect+"?") {
		t.Fatalf("redirected to %s, want %s", loc, redirect)
	}
	u, _ := url.Parse(loc)
	return u.Query()
}

// login runs authorize, the provider, and consent (approving when asked)
// and returns the authorization code.
func (e *asEnv) login(t testing.TB, params url.Values) string {
	t.Helper()
	st := e.toIdP(t, params)
	w := e.get("/oauth/callback?" + url.Values{"state": {st}, "code": {"idp-code"}}.Encode())
	if w.Code == http.StatusOK {
		w = e.answerConsent(parseConsent(t, w), "approve")
	}
	q := clientRedirect(t, w, params.Get("redirect_uri"))
	if got, want := q.Get("state"), params.Get("state"); got != want {
		t.Errorf("state: got %q, want %q", got, want)
	}
	if got := q.Get("iss"); got != asIssuer {
		t.Errorf("iss: got %q, want %q", got, asIssuer)
	}
	if q.Get("code") == "" {
		t.Fatalf("no code in %v", q)
	}
	return q.Get("code")
}

type tokenAnswer struct {
	status  int
	header  http.Header
	Access  string `json:"access_token"`
	Type    string `json:"token_type"`
	Expires int64  `json:"expires_in"`
	Refresh string `json:"refresh_token"`
	Scope   string `json:"scope"`
	Error   string `json:"error"`
	Desc    string `json:"error_description"`
}

func (e *asEnv) token(t testing.TB, form url.Values) tokenAnswer {
	t.Helper()
	w := e.postForm("/oauth/token", form)
	var a tokenAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatalf("token: %d %q is not JSON", w.Code, w.Body)
	}
	a.status, a.header = w.Code, w.Header()
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("token answer Cache-Control: got %q, want no-store", got)
	}
	return a
}

func codeForm(clientID, code string) url.Values {
	return url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"client_id":     {clientID},
		"redirect_uri":  {asRedirect},
		"code_verifier": {asVerifier},
		"resource":      {asResource},
	}
}

func refreshForm(clientID, refresh string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {clientID}, "resource": {asResource}}
}

func wantTokens(t testing.TB, a tokenAnswer) {
	t.Helper()
	if a.status != http.StatusOK || a.Access == "" || a.Refresh == "" || a.Type != "Bearer" {
		t.Fatalf("token: got %d %+v, want 200 with access and refresh tokens", a.status, a)
	}
}

func wantTokenError(t testing.TB, a tokenAnswer, status int, code string) {
	t.Helper()
	if a.status != status || a.Error != code {
		t.Fatalf("token: got %d %s (%s), want %d %s", a.status, a.Error, a.Desc, status, code)
	}
}

func wantPrincipal(t testing.TB, a *AuthServer, token string) {
	t.Helper()
	p, err := a.Verify([]byte(token), asResource)
	if err != nil {
		t.Fatalf("Verify: got %v, want a principal", err)
	}
	if p.User != "alice@example.com" || strings.Join(p.Groups, ",") != "engineers,sre" || p.Source != SourceOAuth {
		t.Fatalf("Verify: got %+v, want alice in engineers,sre from oauth", p)
	}
}

// TestFullFlow walks a client through the whole life of a login.
func TestFullFlow(t *testing.T) {
	e := newASEnv(t)
	client := e.register(t, asRedirect)

	// First login: consent is asked.
	code := e.login(t, authParams(client))
	tok := e.token(t, codeForm(client, code))
	wantTokens(t, tok)
	if tok.Scope != "mcp" || tok.Expires != 3600 {
		t.Errorf("scope, expires_in: got %q, %d, want mcp, 3600", tok.Scope, tok.Expires)
	}
	wantPrincipal(t, e.a, tok.Access)
	// Twice, so the second is answered from the cache.
	e.a.cache.wait()
	wantPrincipal(t, e.a, tok.Access)

	// Refresh rotates.
	r1 := e.token(t, refreshForm(client, tok.Refresh))
	wantTokens(t, r1)
	if r1.Refresh == tok.Refresh {
		t.Fatal("refresh: the refresh token was not rotated")
	}
	wantPrincipal(t, e.a, r1.Access)
	r2 := e.token(t, refreshForm(client, r1.Refresh))
	wantTokens(t, r2)

	// Reusing an old refresh token revokes the family: the newest refresh
	// token and every access token of the family fail.
	wantTokenError(t, e.token(t, refreshForm(client, r1.Refresh)), 400, "invalid_grant")
	wantTokenError(t, e.token(t, refreshForm(client, r2.Refresh)), 400, "invalid_grant")
	for _, at := range []string{tok.Access, r1.Access, r2.Access} {
		if _, err := e.a.Verify([]byte(at), asResource); !errors.Is(err, ErrTokenRevoked) {
			t.Errorf("Verify after family revocation: got %v, want ErrTokenRevoked", err)
		}
	}

	// Second login of the same user and client: no consent page.
	st := e.toIdP(t, authParams(client))
	w := e.get("/oauth/callback?" + url.Values{"state": {st}, "code": {"idp-code"}}.Encode())
	q := clientRedirect(t, w, asRedirect)
	tok2 := e.token(t, codeForm(client, q.Get("code")))
	wantTokens(t, tok2)
	wantPrincipal(t, e.a, tok2.Access)

	// Revocation (RFC 7009) of the refresh token revokes its family.
	rv := e.postForm("/oauth/revoke", url.Values{"token": {tok2.Refresh}, "client_id": {client}})
	if rv.Code != http.StatusOK {
		t.Fatalf("revoke: got %d %s, want 200", rv.Code, rv.Body)
	}
	wantTokenError(t, e.token(t, refreshForm(client, tok2.Refresh)), 400, "invalid_grant")
	if _, err := e.a.Verify([]byte(tok2.Access), asResource); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("Verify after revoke: got %v, want ErrTokenRevoked", err)
	}
	// Unknown tokens are answered 200 too.
	if rv := e.postForm("/oauth/revoke", url.Values{"token": {"nonsense"}, "client_id": {client}}); rv.Code != http.StatusOK {
		t.Errorf("revoke of an unknown token: got %d, want 200", rv.Code)
	}
}

// TestRevocationSurvivesRestart: a new server on the same store still
// refuses the access tokens of a family revoked before.
func TestRevocationSurvivesRestart(t *testing.T) {
	e := newASEnv(t)
	client := e.register(t, asRedirect)
	tok := e.token(t, codeForm(client, e.login(t, authParams(client))))
	wantTokens(t, tok)
	if rv := e.postForm("/oauth/revoke", url.Values{"token": {tok.Access}, "client_id": {client}}); rv.Code != http.StatusOK {
		t.Fatalf("revoke: got %d", rv.Code)
	}
	a2, err := NewAuthServer(AuthServerConfig{Issuer: asIssuer, Apps: e.a.apps, Store: e.store, Upstream: e.idp,
		Key: make([]byte, 32), Now: e.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if _, err := a2.Verify([]byte(tok.Access), asResource); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("Verify on a restarted server: got %v, want ErrTokenRevoked", err)
	}
	// And once the tokens would have expired, the revocation is forgotten.
	e.clock.advance(2 * time.Hour)
	if m := a2.revoked.Load(); m == nil || len(*m) != 1 {
		t.Fatalf("revoked set: got %v, want one family", m)
	}
}

// TestConfidentialClient: a client that registers for client_secret_basic
// gets a secret and must present it.
func TestConfidentialClient(t *testing.T) {
	e := newASEnv(t)
	body := `{"redirect_uris":["https://claude.ai/api/mcp/auth_callback"],"client_name":"Claude","token_endpoint_auth_method":"client_secret_basic"}`
	r := httptest.NewRequest(http.MethodPost, "/oauth/register", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := e.do(r)
	var reg struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &reg); err != nil || w.Code != 201 || reg.ClientSecret == "" {
		t.Fatalf("register: got %d %s, want 201 with a secret", w.Code, w.Body)
	}
	params := authParams(reg.ClientID)
	params.Set("redirect_uri", "https://claude.ai/api/mcp/auth_callback")
	code := e.login(t, params)
	form := codeForm(reg.ClientID, code)
	form.Set("redirect_uri", "https://claude.ai/api/mcp/auth_callback")
	form.Del("client_id")

	post := func(user, pass string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth(user, pass)
		return e.do(r)
	}
	if w := post(reg.ClientID, "wrong"); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "invalid_client") || w.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("wrong secret: got %d %s %q, want 401 invalid_client with a Basic challenge", w.Code, w.Body, w.Header().Get("WWW-Authenticate"))
	}
	if w := post(reg.ClientID, reg.ClientSecret); w.Code != http.StatusOK {
		t.Errorf("right secret: got %d %s, want 200", w.Code, w.Body)
	}
}

// TestClientMetadataDocument: an https client_id is a metadata document
// whose redirect URIs are enforced.
func TestClientMetadataDocument(t *testing.T) {
	const id = "https://client.example.com/meta.json"
	e := newASEnv(t)
	params := authParams(id)
	params.Set("redirect_uri", "https://client.example.com/cb")
	code := e.login(t, params)
	form := codeForm(id, code)
	form.Set("redirect_uri", "https://client.example.com/cb")
	wantTokens(t, e.token(t, form))

	params.Set("redirect_uri", "https://evil.example.com/cb")
	if w := e.get("/oauth/authorize?" + params.Encode()); w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" {
		t.Errorf("unlisted redirect: got %d to %q, want a 400 page", w.Code, w.Header().Get("Location"))
	}
	params.Set("client_id", "https://client.example.com/missing.json")
	if w := e.get("/oauth/authorize?" + params.Encode()); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "404") {
		t.Errorf("unfetchable document: got %d %s, want a 400 page saying why", w.Code, w.Body)
	}

	off := newASEnv(t, func(c *AuthServerConfig) { c.ClientMetadata = nil })
	params.Set("client_id", id)
	params.Set("redirect_uri", "https://client.example.com/cb")
	if w := off.get("/oauth/authorize?" + params.Encode()); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "not enabled") {
		t.Errorf("CIMD off: got %d %s, want a 400 page", w.Code, w.Body)
	}
}

// TestConcurrentCodeRedemption: of many concurrent redemptions of one code
// exactly one gets tokens.
func TestConcurrentCodeRedemption(t *testing.T) {
	e := newASEnv(t)
	client := e.register(t, asRedirect)
	code := e.login(t, authParams(client))
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w := e.postForm("/oauth/token", codeForm(client, code)); w.Code == http.StatusOK {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := ok.Load(); got != 1 {
		t.Errorf("successful redemptions: got %d, want 1", got)
	}
}

func TestNewAuthServerValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*AuthServerConfig)
		want   string
	}{
		{"issuer with path", func(c *AuthServerConfig) { c.Issuer = "https://gw.example.com/auth" }, "origin only"},
		{"issuer trailing slash", func(c *AuthServerConfig) { c.Issuer = "https://gw.example.com/" }, "origin only"},
		{"issuer not http", func(c *AuthServerConfig) { c.Issuer = "ftp://gw" }, "not an http(s) URL"},
		{"no apps", func(c *AuthServerConfig) { c.Apps = nil }, "no applications"},
		{"duplicate resource", func(c *AuthServerConfig) {
			c.Apps = append(c.Apps, OAuthApp{Name: "b", Resource: "https://GW.example.com:443/mcp"})
		}, "same resource"},
		{"short key", func(c *AuthServerConfig) { c.Key = []byte("short") }, "key is 5 bytes"},
		{"no store", func(c *AuthServerConfig) { c.Store = nil }, "no state store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := AuthServerConfig{Issuer: asIssuer, Apps: []OAuthApp{{Name: "a", Resource: asResource}},
				Store: state.NewMemory(), Upstream: &asFakeIdP{}, Key: make([]byte, 32)}
			tc.modify(&cfg)
			_, err := NewAuthServer(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func ExampleResourceMetadataURL() {
	fmt.Println(ResourceMetadataURL("https://gw.example.com/mcp"))
	fmt.Println(ResourceMetadataURL("https://gw.example.com"))
	// Output:
	// https://gw.example.com/.well-known/oauth-protected-resource/mcp
	// https://gw.example.com/.well-known/oauth-protected-resource
}

// scanRecorder records the prefixes scanned through it.
type scanRecorder struct {
	state.Store
	mu       sync.Mutex
	prefixes []string
}

func (s *scanRecorder) Scan(prefix string, fn func(string, []byte) bool) error {
	s.mu.Lock()
	s.prefixes = append(s.prefixes, prefix)
	s.mu.Unlock()
	return s.Store.Scan(prefix, fn)
}

// TestSweep: a sweep scans every prefix whose records expire (the store
// removes the expired records a Scan meets), forgets revocations whose
// tokens have expired, and Close stops the sweeper.
func TestSweep(t *testing.T) {
	rec := &scanRecorder{}
	e := newASEnv(t, func(c *AuthServerConfig) { rec.Store = c.Store; c.Store = rec })
	e.a.markRevoked("old", e.clock.now().Add(time.Minute).UnixNano())
	e.a.markRevoked("new", e.clock.now().Add(time.Hour).UnixNano())
	e.clock.advance(2 * time.Minute)
	rec.prefixes = nil
	e.a.sweep()
	if got, want := strings.Join(rec.prefixes, " "), "oauth/login/ oauth/pending/ oauth/code/ oauth/refresh/ oauth/family/ oauth/revoked/"; got != want {
		t.Errorf("swept prefixes: got %q, want %q", got, want)
	}
	if m := *e.a.revoked.Load(); len(m) != 1 || m["new"] == 0 {
		t.Errorf("revoked set after the sweep: got %v, want only new", m)
	}
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	e.a.Close() // twice is fine
}

// TestRestartOnPebble: registrations, consents and refresh tokens live in
// the Pebble store and survive a restart of the gateway (issue 4).
func TestRestartOnPebble(t *testing.T) {
	dir := t.TempDir()
	open := func() (*asEnv, *state.Pebble) {
		p, err := state.OpenPebble(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		e := newASEnv(t, func(c *AuthServerConfig) { c.Store = p })
		return e, p
	}
	e, p := open()
	client := e.register(t, asRedirect)
	tok := e.token(t, codeForm(client, e.login(t, authParams(client))))
	wantTokens(t, tok)
	e.a.Close()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	e, p = open()
	defer p.Close()
	wantPrincipal(t, e.a, tok.Access) // sealed: no state needed
	r := e.token(t, refreshForm(client, tok.Refresh))
	wantTokens(t, r)
	// The client is still registered and the consent remembered: the next
	// login goes straight back to the client.
	st := e.toIdP(t, authParams(client))
	w := e.get("/oauth/callback?" + url.Values{"state": {st}, "code": {"idp-code"}}.Encode())
	clientRedirect(t, w, asRedirect)
}

// TestConsentPageEscapes: what a client registers is shown as text.
func TestConsentPageEscapes(t *testing.T) {
	e := newASEnv(t)
	body := `{"redirect_uris":["` + asRedirect + `"],"client_name":"<script>alert(1)</script>","client_uri":"https://x.example/\"><b>"}`
	r := httptestPost("/oauth/register", nil)
	r.Body = ioNopCloser(body)
	r.Header.Set("Content-Type", "application/json")
	w := e.do(r)
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &reg); err != nil || reg.ClientID == "" {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	st := e.toIdP(t, authParams(reg.ClientID))
	page := e.get("/oauth/callback?" + url.Values{"state": {st}, "code": {"idp-code"}}.Encode()).Body.String()
	if strings.Contains(page, "<script>") || strings.Contains(page, "<b>") || !strings.Contains(page, "&lt;script&gt;") {
		t.Errorf("consent page does not escape the client's metadata:\n%s", page)
	}
}
