package identity

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/oauth2-proxy/mockoidc"
)

// testIdP is a mockoidc provider on loopback, with switches to make it
// answer 503 (down) and to add claims to its userinfo answers.
type testIdP struct {
	*mockoidc.MockOIDC
	down atomic.Bool

	mu            sync.Mutex // guards userinfoExtra
	userinfoExtra map[string]any
}

func startIdP(t *testing.T) *testIdP {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	idp := &testIdP{MockOIDC: m}
	if err := m.AddMiddleware(idp.middleware); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return idp
}

func (idp *testIdP) setUserinfoExtra(extra map[string]any) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.userinfoExtra = extra
}

func (idp *testIdP) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if idp.down.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		idp.mu.Lock()
		extra := idp.userinfoExtra
		idp.mu.Unlock()
		if !strings.HasSuffix(r.URL.Path, "/userinfo") || extra == nil {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			http.Error(w, "bad upstream userinfo", http.StatusInternalServerError)
			return
		}
		for k, v := range extra {
			body[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	})
}

func (idp *testIdP) config() OIDCConfig {
	return OIDCConfig{
		Issuer:       idp.Issuer(),
		ClientID:     idp.ClientID,
		ClientSecret: idp.ClientSecret,
		Scopes:       []string{"profile email"},
		RedirectURL:  "https://gw.example.com/oauth/callback",
	}
}

// login runs the browser's part: follows AuthCodeURL to the provider and
// returns the code it redirects back with.
func login(t *testing.T, u *OIDCUpstream, state, nonce, verifier string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(verifier))
	authURL := u.AuthCodeURL(state, nonce, base64.RawURLEncoding.EncodeToString(sum[:]))
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: got %s Location %q, want 302 to the callback", resp.Status, resp.Header.Get("Location"))
	}
	if got := loc.Query().Get("state"); got != state {
		t.Fatalf("state: got %q, want %q", got, state)
	}
	return loc.Query().Get("code")
}

const testVerifier = "a-code-verifier-that-is-long-enough-0123456789"

func TestOIDCUpstreamLogin(t *testing.T) {
	idp := startIdP(t)
	tests := []struct {
		name    string
		cfg     func(OIDCConfig) OIDCConfig
		user    *mockoidc.MockUser
		extra   map[string]any // added to userinfo
		want    *UpstreamUser
		wantErr error
	}{
		{
			name: "groups from the ID token",
			cfg:  func(c OIDCConfig) OIDCConfig { c.Scopes = []string{"profile,email", "groups"}; return c },
			user: &mockoidc.MockUser{Subject: "u1", Email: "alice@example.com", EmailVerified: true, Groups: []string{"sre", "engineers", "sre"}},
			want: &UpstreamUser{Subject: "u1", User: "alice@example.com", Groups: []string{"sre", "engineers", "sre"}},
		},
		{
			name:  "groups from userinfo when the ID token has none",
			cfg:   func(c OIDCConfig) OIDCConfig { c.GroupsClaim = "memberOf"; return c },
			user:  &mockoidc.MockUser{Subject: "u2", Email: "bob@example.com", EmailVerified: true},
			extra: map[string]any{"memberOf": []string{"auditors"}},
			want:  &UpstreamUser{Subject: "u2", User: "bob@example.com", Groups: []string{"auditors"}},
		},
		{
			name:  "a single group as a string in userinfo",
			cfg:   func(c OIDCConfig) OIDCConfig { c.GroupsClaim = "memberOf"; return c },
			user:  &mockoidc.MockUser{Subject: "u3", Email: "carol@example.com", EmailVerified: true},
			extra: map[string]any{"memberOf": "secops"},
			want:  &UpstreamUser{Subject: "u3", User: "carol@example.com", Groups: []string{"secops"}},
		},
		{
			name: "no email: preferred_username",
			user: &mockoidc.MockUser{Subject: "u4", PreferredUsername: "mallory"},
			want: &UpstreamUser{Subject: "u4", User: "mallory"},
		},
		{
			name: "no email or username: sub",
			cfg:  func(c OIDCConfig) OIDCConfig { c.Scopes = nil; return c },
			user: &mockoidc.MockUser{Subject: "u5", Email: "x@example.com", EmailVerified: true},
			want: &UpstreamUser{Subject: "u5", User: "u5"},
		},
		{
			name: "issuer derived from the authorization endpoint",
			cfg: func(c OIDCConfig) OIDCConfig {
				c.Issuer, c.AuthURL, c.TokenURL = "", idp.AuthorizationEndpoint(), idp.TokenEndpoint()
				return c
			},
			user: &mockoidc.MockUser{Subject: "u6", Email: "dan@example.com", EmailVerified: true},
			want: &UpstreamUser{Subject: "u6", User: "dan@example.com"},
		},
		{
			name:    "groups claim of the wrong type",
			cfg:     func(c OIDCConfig) OIDCConfig { c.GroupsClaim = "memberOf"; return c },
			user:    &mockoidc.MockUser{Subject: "u7", Email: "erin@example.com", EmailVerified: true},
			extra:   map[string]any{"memberOf": map[string]any{"a": 1}},
			wantErr: ErrLoginRejected,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := idp.config()
			if tt.cfg != nil {
				cfg = tt.cfg(cfg)
			}
			u, err := NewOIDCUpstream(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := u.Discover(t.Context()); err != nil {
				t.Fatalf("Discover: %v", err)
			}
			if got := u.Issuer(); got != idp.Issuer() {
				t.Errorf("Issuer: got %q, want %q", got, idp.Issuer())
			}
			idp.setUserinfoExtra(tt.extra)
			defer idp.setUserinfoExtra(nil)
			idp.QueueUser(tt.user)
			code := login(t, u, "state-1", "nonce-1", testVerifier)
			got, err := u.Exchange(t.Context(), code, testVerifier, "nonce-1")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Exchange: got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("user (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOIDCUpstreamRejects(t *testing.T) {
	idp := startIdP(t)
	u, err := NewOIDCUpstream(t.Context(), idp.config())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		verifier string // sent at Exchange
		nonce    string // expected at Exchange
		reuse    bool
	}{
		{name: "nonce mismatch", verifier: testVerifier, nonce: "another-nonce"},
		{name: "wrong PKCE verifier", verifier: "not-the-verifier-not-the-verifier-0123456789", nonce: "nonce-1"},
		{name: "code reused", verifier: testVerifier, nonce: "nonce-1", reuse: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idp.QueueUser(mockoidc.DefaultUser())
			code := login(t, u, "s", "nonce-1", testVerifier)
			if tt.reuse {
				if _, err := u.Exchange(t.Context(), code, testVerifier, "nonce-1"); err != nil {
					t.Fatalf("first Exchange: %v", err)
				}
			}
			_, err := u.Exchange(t.Context(), code, tt.verifier, tt.nonce)
			if !errors.Is(err, ErrLoginRejected) {
				t.Fatalf("got %v, want ErrLoginRejected", err)
			}
			if strings.Contains(err.Error(), code) || strings.Contains(err.Error(), idp.ClientSecret) {
				t.Errorf("error %q shows the code or the client secret", err)
			}
		})
	}
}

func TestOIDCUpstreamProviderDown(t *testing.T) {
	idp := startIdP(t)
	idp.down.Store(true)
	u, err := NewOIDCUpstream(t.Context(), idp.config())
	if err != nil {
		t.Fatalf("NewOIDCUpstream with the provider down: got %v, want no error (the gateway starts)", err)
	}
	now := time.Now()
	u.disc.now = func() time.Time { return now }
	if err := u.Discover(t.Context()); !errors.Is(err, ErrProviderDown) {
		t.Fatalf("Discover: got %v, want ErrProviderDown", err)
	}
	if got, want := u.AuthCodeURL("s 1", "n", "c"), "https://gw.example.com/oauth/callback?error=temporarily_unavailable&"; !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "&state=s+1") {
		t.Errorf("AuthCodeURL while down: got %q, want the callback with %q and the state", got, want)
	}
	if _, err := u.Exchange(t.Context(), "code", testVerifier, "n"); !errors.Is(err, ErrProviderDown) {
		t.Errorf("Exchange while down: got %v, want ErrProviderDown", err)
	}

	idp.down.Store(false)
	if err := u.Discover(t.Context()); !errors.Is(err, ErrProviderDown) {
		t.Errorf("Discover within the backoff: got %v, want the remembered ErrProviderDown", err)
	}
	now = now.Add(discoveryMaxBackoff)
	if err := u.Discover(t.Context()); err != nil {
		t.Fatalf("Discover after the backoff: %v", err)
	}

	// Discovered, then down: the token request fails as "down".
	idp.QueueUser(mockoidc.DefaultUser())
	code := login(t, u, "s", "n", testVerifier)
	idp.down.Store(true)
	if _, err := u.Exchange(t.Context(), code, testVerifier, "n"); !errors.Is(err, ErrProviderDown) {
		t.Errorf("Exchange with the token endpoint down: got %v, want ErrProviderDown", err)
	}
}

func TestOIDCUpstreamUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	u, err := NewOIDCUpstream(t.Context(), OIDCConfig{
		ClientID: "c", AuthURL: "http://" + addr + "/env/as/authorize", RedirectURL: "https://gw.example.com/oauth/callback",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Discover(t.Context()); !errors.Is(err, ErrProviderDown) {
		t.Errorf("got %v, want ErrProviderDown", err)
	}
}

func TestNewOIDCUpstreamConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  OIDCConfig
		want []string
	}{
		{"nothing", OIDCConfig{}, []string{"client id is empty", "issuer unknown", "redirect URL"}},
		{"plain http to a remote host", OIDCConfig{ClientID: "c", AuthURL: "http://idp.example.com/as/authorize", RedirectURL: "https://gw/oauth/callback"}, []string{"OIDC_AUTH_URL: want an https:// URL"}},
		{"relative redirect URL", OIDCConfig{ClientID: "c", AuthURL: "https://idp.example.com/as/authorize", RedirectURL: "/oauth/callback"}, []string{"redirect URL: want an absolute"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewOIDCUpstream(t.Context(), tt.cfg)
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestIssuerCandidates(t *testing.T) {
	tests := []struct {
		auth string
		want []string
	}{
		{"https://auth.pingone.com/0f1e/as/authorize", []string{"https://auth.pingone.com/0f1e/as", "https://auth.pingone.com/0f1e", "https://auth.pingone.com"}},
		{"https://dev-1.okta.com/oauth2/default/v1/authorize", []string{"https://dev-1.okta.com/oauth2/default/v1", "https://dev-1.okta.com/oauth2/default", "https://dev-1.okta.com/oauth2", "https://dev-1.okta.com"}},
		{"https://tenant.auth0.com/authorize", []string{"https://tenant.auth0.com"}},
		{"not a url", nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, issuerCandidates(tt.auth)); diff != "" {
			t.Errorf("issuerCandidates(%q) (-want +got):\n%s", tt.auth, diff)
		}
	}
}

func TestDiscoveryTrailingSlashIssuer(t *testing.T) {
	// zitadel's example OP names its issuer with a trailing "/" (TESTING.md):
	// the document's spelling is kept, since ID tokens carry it.
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer": srv.URL + "/", "authorization_endpoint": srv.URL + "/authorize",
			"token_endpoint": srv.URL + "/token", "jwks_uri": srv.URL + "/keys",
		})
	}))
	defer srv.Close()
	md, err := discoverProvider(t.Context(), srv.Client(), srv.URL, false)
	if err != nil {
		t.Fatal(err)
	}
	if md.Issuer != srv.URL+"/" {
		t.Errorf("issuer: got %q, want %q", md.Issuer, srv.URL+"/")
	}
}

func TestParseGroups(t *testing.T) {
	many := make([]string, maxUpstreamGroups+1)
	for i := range many {
		many[i] = "g" + strings.Repeat("x", i%7) + string(rune('a'+i%26))
	}
	manyJSON, _ := json.Marshal(many)
	tests := []struct {
		name    string
		raw     string
		want    []string
		wantErr bool
	}{
		{"absent", "", nil, false},
		{"null", "null", nil, false},
		{"string", `"sre"`, []string{"sre"}, false},
		{"empty string", `""`, nil, false},
		{"array", `["a","","b"]`, []string{"a", "b"}, false},
		{"number", `42`, nil, true},
		{"array of numbers", `[1,2]`, nil, true},
		{"control character", `["a\u0007"]`, nil, true},
		{"too long a name", `["` + strings.Repeat("g", maxGroupName+1) + `"]`, nil, true},
		{"too many", string(manyJSON), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGroups(json.RawMessage(tt.raw))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err: got %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUserFromClaims(t *testing.T) {
	tests := []struct {
		name   string
		claims string
		want   string
	}{
		{"email", `{"email":"a@x","email_verified":true,"preferred_username":"a","sub":"1"}`, "a@x"},
		{"email without email_verified", `{"email":"a@x","sub":"1"}`, "a@x"},
		{"email_verified false", `{"email":"a@x","email_verified":false,"preferred_username":"a","sub":"1"}`, "a"},
		{"email_verified \"false\"", `{"email":"a@x","email_verified":"false","sub":"1"}`, "1"},
		{"sub", `{"sub":"1"}`, "1"},
		{"nothing", `{}`, ""},
		{"control character", `{"sub":"a\nb"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var claims map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tt.claims), &claims); err != nil {
				t.Fatal(err)
			}
			got, err := userFromClaims(claims)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestUpstreamScopes(t *testing.T) {
	got := upstreamScopes([]string{"profile email", "groups,email", " openid "})
	if diff := cmp.Diff([]string{"openid", "profile", "email", "groups"}, got); diff != "" {
		t.Errorf("scopes (-want +got):\n%s", diff)
	}
}

var _ UpstreamLogin = (*OIDCUpstream)(nil)

func FuzzParseGroups(f *testing.F) {
	for _, s := range []string{`"a"`, `["a","b"]`, `null`, `[1]`, `{"a":1}`, `["\u0000"]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		groups, err := parseGroups(raw)
		if err != nil {
			return
		}
		if len(groups) > maxUpstreamGroups {
			t.Fatalf("%d groups", len(groups))
		}
		for _, g := range groups {
			if g == "" || len(g) > maxGroupName || !printable(g) {
				t.Fatalf("accepted group %q", g)
			}
		}
	})
}

// fakeOP is an OpenID Provider whose token and userinfo answers a test
// writes, for the failures mockoidc cannot produce.
type fakeOP struct {
	srv *httptest.Server
	key jwtTestKey

	mu          sync.Mutex // guards the fields below
	tokenStatus int
	tokenBody   map[string]any
	idToken     string
	userStatus  int
	userinfo    map[string]any
}

func startFakeOP(t *testing.T) *fakeOP {
	t.Helper()
	op := &fakeOP{key: newJWTTestKey(t, jose.ES256, "op")}
	op.srv = httptest.NewServer(http.HandlerFunc(op.serve))
	t.Cleanup(op.srv.Close)
	return op
}

func (op *fakeOP) serve(w http.ResponseWriter, r *http.Request) {
	op.mu.Lock()
	defer op.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		_ = enc.Encode(map[string]any{
			"issuer": op.srv.URL, "authorization_endpoint": op.srv.URL + "/authorize",
			"token_endpoint": op.srv.URL + "/token", "userinfo_endpoint": op.srv.URL + "/userinfo",
			"jwks_uri": op.srv.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"ES256", "HS256"},
		})
	case "/jwks":
		_ = enc.Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{op.key.public}})
	case "/token":
		body := map[string]any{"access_token": "at-123", "token_type": "Bearer", "expires_in": 3600}
		for k, v := range op.tokenBody {
			body[k] = v
		}
		if op.idToken != "" {
			body["id_token"] = op.idToken
		}
		if op.tokenStatus != 0 {
			w.WriteHeader(op.tokenStatus)
		}
		_ = enc.Encode(body)
	case "/userinfo":
		if op.userStatus != 0 {
			w.WriteHeader(op.userStatus)
		}
		_ = enc.Encode(op.userinfo)
	default:
		http.NotFound(w, r)
	}
}

func TestOIDCUpstreamExchangeFailures(t *testing.T) {
	op := startFakeOP(t)
	hs := newJWTTestKey(t, jose.HS256, "op")
	u, err := NewOIDCUpstream(t.Context(), OIDCConfig{
		Issuer: op.srv.URL, ClientID: "gw", ClientSecret: "gw-secret",
		RedirectURL: "https://gw.example.com/oauth/callback", GroupsClaim: "groups",
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	idClaims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"iss": op.srv.URL, "aud": "gw", "sub": "u1", "email": "alice@example.com",
			"nonce": "n", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	tests := []struct {
		name        string
		tokenStatus int
		tokenBody   map[string]any
		claims      map[string]any
		idKey       *jwtTestKey
		userStatus  int
		userinfo    map[string]any
		want        error
		wantText    string
		wantUser    string // default alice@example.com
	}{
		{name: "good, groups from userinfo", claims: idClaims(nil), userinfo: map[string]any{"sub": "u1", "groups": []string{"sre"}}},
		{
			name:     "user name from userinfo when the ID token has only sub (OIDC Core 5.4)",
			claims:   idClaims(func(c map[string]any) { delete(c, "email") }),
			userinfo: map[string]any{"sub": "u1", "email": "bob@example.com", "groups": []string{"sre"}},
			wantUser: "bob@example.com",
		},
		{
			name:     "the ID token's claims win over userinfo's",
			claims:   idClaims(nil),
			userinfo: map[string]any{"sub": "u1", "email": "mallory@example.com", "groups": []string{"sre"}},
		},
		{name: "audience list with azp", claims: idClaims(func(c map[string]any) { c["aud"] = []string{"gw", "other"}; c["azp"] = "gw" })},
		{name: "audience list without azp", claims: idClaims(func(c map[string]any) { c["aud"] = []string{"gw", "other"} }), want: ErrLoginRejected, wantText: "azp"},
		{name: "azp of another client", claims: idClaims(func(c map[string]any) { c["azp"] = "other" }), want: ErrLoginRejected, wantText: "azp"},
		{name: "wrong audience", claims: idClaims(func(c map[string]any) { c["aud"] = "other" }), want: ErrLoginRejected, wantText: "audience"},
		{name: "wrong issuer", claims: idClaims(func(c map[string]any) { c["iss"] = "https://evil.example.com" }), want: ErrLoginRejected, wantText: "issued by a different provider"},
		{name: "expired", claims: idClaims(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }), want: ErrLoginRejected, wantText: "expired"},
		{name: "no nonce", claims: idClaims(func(c map[string]any) { delete(c, "nonce") }), want: ErrLoginRejected, wantText: "nonce"},
		{name: "HS256 ID token", claims: idClaims(nil), idKey: &hs, want: ErrLoginRejected},
		{name: "no ID token", want: ErrLoginRejected, wantText: "no id_token"},
		{name: "code refused", tokenStatus: 400, tokenBody: map[string]any{"error": "invalid_grant", "error_description": "code expired"}, want: ErrLoginRejected, wantText: "invalid_grant: code expired"},
		{name: "token endpoint down", tokenStatus: 503, claims: idClaims(nil), want: ErrProviderDown},
		{name: "userinfo of someone else", claims: idClaims(nil), userinfo: map[string]any{"sub": "u2", "groups": []string{"admins"}}, want: ErrLoginRejected, wantText: "sub"},
		{name: "userinfo down", claims: idClaims(nil), userStatus: 502, want: ErrProviderDown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op.mu.Lock()
			op.tokenStatus, op.tokenBody, op.idToken = tt.tokenStatus, tt.tokenBody, ""
			if tt.claims != nil {
				k := op.key
				if tt.idKey != nil {
					k = *tt.idKey
				}
				op.idToken = string(k.sign(t, tt.claims))
			}
			op.userStatus, op.userinfo = tt.userStatus, tt.userinfo
			if op.userinfo == nil {
				op.userinfo = map[string]any{"sub": "u1"}
			}
			op.mu.Unlock()
			got, err := u.Exchange(t.Context(), "the-code", testVerifier, "n")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got %v, want a user", err)
				}
				want := tt.wantUser
				if want == "" {
					want = "alice@example.com"
				}
				if got.User != want {
					t.Errorf("user: got %q, want %q", got.User, want)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("got %v, want %v mentioning %q", err, tt.want, tt.wantText)
			}
			for _, secret := range []string{"the-code", "gw-secret", "at-123"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows %q", err, secret)
				}
			}
		})
	}
}
