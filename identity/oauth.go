package identity

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgw/mcpgw/internal/state"
)

// SourceOAuth is the Source of principals vouched for by access tokens of
// the gateway's own authorization server.
const SourceOAuth = "oauth"

// Defaults and fixed lifetimes of the authorization server.
const (
	DefaultTokenTTL   = time.Hour
	DefaultRefreshTTL = 30 * 24 * time.Hour

	// loginTTL bounds a login from /oauth/authorize to the consent answer:
	// the state sent to the provider and the pending consent are single-use
	// and expire after it (MCP-REQUIREMENTS.md 4.6.1: about 10 minutes).
	loginTTL = 10 * time.Minute
	// codeTTL is an authorization code's lifetime (OAuth 2.1 section 4.1.2
	// recommends at most 10 minutes; clients redeem at once).
	codeTTL = 60 * time.Second
	// codeRecordTTL keeps a redeemed code's record after its lifetime, so
	// that a replay within it is recognised and revokes what the code
	// issued (OAuth 2.1 section 4.1.3), rather than failing as unknown.
	codeRecordTTL = loginTTL

	// usedRefreshRetention is how long a redeemed refresh token's record
	// is kept (at most until its family ends) so that presenting it again
	// revokes the family. Older replays are refused as unknown tokens
	// without revoking; the bound keeps hourly refreshes from piling up a
	// month of records per login.
	usedRefreshRetention = 7 * 24 * time.Hour
	// sweepInterval is how often the server scans its records so that
	// expired ones nobody reads again (abandoned logins, redeemed codes,
	// ended families) leave the store: Pebble removes expired keys only
	// when it meets them.
	sweepInterval = time.Hour

	// maxFormBody bounds the body of registration, token and revocation
	// requests and of the consent form.
	maxFormBody = 64 << 10

	// authKeyInfo* derive the server's keys from AuthServerConfig.Key.
	csrfKeyInfo = "mcpgw oauth consent csrf v1 HMAC-SHA256"
)

// Store key prefixes (internal/state). Secrets (codes, refresh tokens,
// login states) are never keys themselves: their SHA-256 is, so a copy of
// the store holds nothing a client could present.
const (
	keyClient        = "oauth/client/"  // + client_id: clientRecord
	keyLogin         = "oauth/login/"   // + hash(state sent to the provider): loginRecord
	keyPending       = "oauth/pending/" // + hash(pending consent id): pendingRecord
	keyConsent       = "oauth/consent/" // + hash(user, client_id): consentRecord
	keyCode          = "oauth/code/"    // + hash(code): codeRecord
	keyRefresh       = "oauth/refresh/" // + hash(refresh token): refreshRecord
	keyFamily        = "oauth/family/"  // + family id: familyRecord
	keyRevokedFamily = "oauth/revoked/" // + family id: revocation marker, lives TokenTTL
)

// OAuthApp is an application as the authorization server sees it: a
// protected resource clients get tokens for.
type OAuthApp struct {
	// Name is the application's name, shown on the consent page.
	Name string
	// Resource is the application's frontend URL (e.g.
	// https://gw.example.com/mcp): the RFC 8707 resource clients ask for and
	// the audience of the tokens issued for it.
	Resource string
	// Scopes are the scopes advertised for the application; requested
	// scopes outside them are not granted. Empty: no scopes.
	Scopes []string
}

// AuthServerConfig configures NewAuthServer.
type AuthServerConfig struct {
	// Issuer is the gateway's own base URL (server.url or SERVER_URL), an
	// origin without a path or trailing slash, e.g. https://gw.example.com.
	// The endpoints live under it (/oauth/...).
	Issuer string
	// Apps are the protected resources; at least one.
	Apps []OAuthApp
	// Store keeps registrations, logins, codes, consents and refresh
	// families. Required.
	Store state.Store
	// Upstream is the login at the identity provider. Required.
	Upstream UpstreamLogin
	// ClientMetadata fetches client ID metadata documents (https
	// client_ids); nil turns them off.
	ClientMetadata ClientMetadataFetcher
	// Key is 32 secret bytes (LoadOrCreateSessionKey) from which the
	// access-token and CSRF keys are derived with HKDF.
	Key []byte
	// TokenTTL is the access token lifetime (default DefaultTokenTTL).
	TokenTTL time.Duration
	// RefreshTTL is the lifetime of a refresh-token family, from the login
	// that started it (default DefaultRefreshTTL).
	RefreshTTL time.Duration
	// Log receives the server's records (never tokens, codes or secrets);
	// nil discards them.
	Log *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// AuthServer is the gateway's OAuth 2.1 authorization server for MCP
// clients in broker mode (DESIGN.md section 5). It is safe for concurrent
// use; Close stops its token cache.
type AuthServer struct {
	issuer   string
	secure   bool // issuer is https: cookies are __Host- and Secure
	apps     []OAuthApp
	canon    []string // canonical Resource of each app
	store    state.Store
	upstream UpstreamLogin
	cimd     ClientMetadataFetcher
	sealer   *tokenSealer
	csrfKey  []byte
	tokenTTL time.Duration
	refTTL   time.Duration
	log      *slog.Logger
	now      func() time.Time
	cache    *tokenCache
	metadata []byte // the RFC 8414 document
	prm      http.Handler
	mux      *http.ServeMux
	regLimit *tokenBucket // bounds dynamic registrations (ratelimit.go)

	revokeMu sync.Mutex                       // serialises writers of revoked
	revoked  atomic.Pointer[map[string]int64] // family -> unix ns until which it counts as revoked

	stop      chan struct{} // closed by Close: ends the sweeper
	sweeperWG sync.WaitGroup
	closeOnce sync.Once
}

// NewAuthServer validates cfg and returns the server. It reads the
// revocations still in force from the Store.
func NewAuthServer(cfg AuthServerConfig) (*AuthServer, error) {
	var problems []string
	issuer, err := url.Parse(cfg.Issuer)
	switch {
	case err != nil || cfg.Issuer == "":
		problems = append(problems, fmt.Sprintf("issuer %q is not a URL", cfg.Issuer))
	case issuer.Scheme != "https" && issuer.Scheme != "http", issuer.Host == "":
		problems = append(problems, fmt.Sprintf("issuer %q is not an http(s) URL", cfg.Issuer))
	case issuer.Path != "" || issuer.RawQuery != "" || issuer.Fragment != "" || issuer.User != nil:
		problems = append(problems, fmt.Sprintf("issuer %q must be an origin only (scheme://host[:port], no path or trailing slash)", cfg.Issuer))
	}
	if len(cfg.Apps) == 0 {
		problems = append(problems, "no applications")
	}
	canon := make([]string, len(cfg.Apps))
	for i, app := range cfg.Apps {
		c, ok := canonicalResource(app.Resource)
		if !ok {
			problems = append(problems, fmt.Sprintf("application %q: resource %q is not an absolute http(s) URL without fragment", app.Name, app.Resource))
			continue
		}
		if j := slices.Index(canon[:i], c); j >= 0 {
			problems = append(problems, fmt.Sprintf("applications %q and %q have the same resource %q", cfg.Apps[j].Name, app.Name, app.Resource))
		}
		canon[i] = c
	}
	if cfg.Store == nil {
		problems = append(problems, "no state store")
	}
	if cfg.Upstream == nil {
		problems = append(problems, "no upstream login")
	}
	if len(cfg.Key) != SessionKeySize {
		problems = append(problems, fmt.Sprintf("key is %d bytes, want %d", len(cfg.Key), SessionKeySize))
	}
	if cfg.TokenTTL < 0 || cfg.RefreshTTL < 0 {
		problems = append(problems, "negative token lifetime")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("identity: cannot create authorization server: %s", strings.Join(problems, "; "))
	}

	a := &AuthServer{
		issuer:   cfg.Issuer,
		secure:   issuer.Scheme == "https",
		apps:     slices.Clone(cfg.Apps),
		canon:    canon,
		store:    cfg.Store,
		upstream: cfg.Upstream,
		cimd:     cfg.ClientMetadata,
		tokenTTL: orDefault(cfg.TokenTTL, DefaultTokenTTL),
		refTTL:   orDefault(cfg.RefreshTTL, DefaultRefreshTTL),
		log:      cfg.Log,
		now:      cfg.Now,
		regLimit: newTokenBucket(registrationsPerMinute, registrationBurst),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("component", "oauth")
	if a.now == nil {
		a.now = time.Now
	}
	if a.sealer, err = newTokenSealer(cfg.Key); err != nil {
		return nil, err
	}
	if a.csrfKey, err = hkdf.Key(sha256.New, cfg.Key, nil, csrfKeyInfo, 32); err != nil {
		return nil, fmt.Errorf("identity: cannot derive CSRF key: %w", err)
	}
	if a.metadata, err = a.metadataDocument(); err != nil {
		return nil, err
	}
	if err := a.loadRevocations(); err != nil {
		return nil, err
	}
	if a.cache, err = newTokenCache(); err != nil {
		return nil, err
	}
	a.prm = ProtectedResourceHandler(a.apps, []string{a.issuer})
	a.mux = a.routes()
	a.stop = make(chan struct{})
	a.sweeperWG.Add(1)
	go a.sweepLoop()
	return a, nil
}

// sweepLoop runs sweep every sweepInterval until Close.
func (a *AuthServer) sweepLoop() {
	defer a.sweeperWG.Done()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.sweep()
		}
	}
}

// sweep scans the records that expire, which removes the expired ones
// (internal/state sweeps what a Scan meets), and drops revocations that no
// longer matter from memory.
func (a *AuthServer) sweep() {
	for _, prefix := range []string{keyLogin, keyPending, keyCode, keyRefresh, keyFamily, keyRevokedFamily} {
		err := a.store.Scan(prefix, func(string, []byte) bool {
			select {
			case <-a.stop:
				return false
			default:
				return true
			}
		})
		if err != nil {
			a.log.Warn("cannot sweep expired records", "prefix", prefix, "err", err)
		}
	}
	a.markRevoked("", 0)
}

// orDefault returns v, or def when v is zero.
func orDefault(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// loadRevocations fills the in-memory revoked set from the Store, so that
// a restart does not bring revoked access tokens back to life.
func (a *AuthServer) loadRevocations() error {
	var err error
	scanErr := a.store.Scan(keyRevokedFamily, func(key string, value []byte) bool {
		var until int64
		if err = json.Unmarshal(value, &until); err != nil {
			return false
		}
		a.markRevoked(strings.TrimPrefix(key, keyRevokedFamily), until)
		return true
	})
	if err == nil {
		err = scanErr
	}
	if err != nil {
		return fmt.Errorf("identity: cannot load revocations: %w", err)
	}
	return nil
}

// Close stops the sweeper and the token cache. Verify may still be called
// after Close (it answers correctly, without the cache); the Store is not
// closed.
func (a *AuthServer) Close() error {
	a.closeOnce.Do(func() {
		close(a.stop)
		a.sweeperWG.Wait()
		a.cache.close()
	})
	return nil
}

// Handler serves every endpoint of the authorization server, and the
// protected resource metadata of its applications (ProtectedResourceHandler
// naming this server), at the issuer-relative paths:
//
//	GET  /.well-known/oauth-authorization-server      RFC 8414 metadata
//	GET  /.well-known/oauth-protected-resource[/...]  RFC 9728 metadata
//	POST /oauth/register                               RFC 7591 registration
//	GET  /oauth/authorize  (and POST)                  authorization request
//	GET  /oauth/callback                               return from the provider
//	POST /oauth/consent                                the consent form's answer
//	POST /oauth/token                                  code and refresh grants
//	POST /oauth/revoke                                 RFC 7009 revocation
//
// /.well-known/openid-configuration is not served: the server is not an
// OpenID provider, and MCP clients try RFC 8414 first for an issuer without
// a path (MCP-REQUIREMENTS.md 4.2.1); an OpenID document without jwks_uri
// and the other required fields would fail strict clients.
func (a *AuthServer) Handler() http.Handler { return a.mux }

func (a *AuthServer) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/.well-known/oauth-protected-resource", a.prm)
	mux.Handle("/.well-known/oauth-protected-resource/", a.prm)
	mux.HandleFunc("/.well-known/oauth-authorization-server", cors(a.serveMetadata))
	mux.HandleFunc("/oauth/register", cors(a.serveRegister))
	mux.HandleFunc("/oauth/authorize", a.serveAuthorize)
	mux.HandleFunc("/oauth/callback", a.serveCallback)
	mux.HandleFunc("/oauth/consent", a.serveConsent)
	mux.HandleFunc("/oauth/token", cors(a.serveToken))
	mux.HandleFunc("/oauth/revoke", cors(a.serveRevoke))
	return mux
}

// cors lets browser-based clients (the MCP Inspector) call the endpoints
// that take no cookies: metadata, registration, token and revocation. The
// answer names no credentials, so "*" is safe.
func cors(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
			w.Header().Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h(w, r)
	}
}

// metadataDocument builds the RFC 8414 document once.
func (a *AuthServer) metadataDocument() ([]byte, error) {
	var scopes []string
	for _, app := range a.apps {
		for _, s := range app.Scopes {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
	}
	doc := struct {
		Issuer                            string   `json:"issuer"`
		AuthorizationEndpoint             string   `json:"authorization_endpoint"`
		TokenEndpoint                     string   `json:"token_endpoint"`
		RegistrationEndpoint              string   `json:"registration_endpoint"`
		RevocationEndpoint                string   `json:"revocation_endpoint"`
		ScopesSupported                   []string `json:"scopes_supported,omitempty"`
		ResponseTypesSupported            []string `json:"response_types_supported"`
		ResponseModesSupported            []string `json:"response_modes_supported"`
		GrantTypesSupported               []string `json:"grant_types_supported"`
		TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
		RevocationEndpointAuthMethods     []string `json:"revocation_endpoint_auth_methods_supported"`
		CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
		IssParameterSupported             bool     `json:"authorization_response_iss_parameter_supported"`
		ClientIDMetadataDocumentSupported bool     `json:"client_id_metadata_document_supported"`
	}{
		Issuer:                            a.issuer,
		AuthorizationEndpoint:             a.issuer + "/oauth/authorize",
		TokenEndpoint:                     a.issuer + "/oauth/token",
		RegistrationEndpoint:              a.issuer + "/oauth/register",
		RevocationEndpoint:                a.issuer + "/oauth/revoke",
		ScopesSupported:                   scopes,
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               []string{"authorization_code", "refresh_token"},
		TokenEndpointAuthMethodsSupported: clientAuthMethods,
		RevocationEndpointAuthMethods:     clientAuthMethods,
		CodeChallengeMethodsSupported:     []string{"S256"},
		IssParameterSupported:             true,
		ClientIDMetadataDocumentSupported: a.cimd != nil,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("identity: cannot encode authorization server metadata: %w", err)
	}
	return b, nil
}

func (a *AuthServer) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(a.metadata)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

// oauthError is an RFC 6749 section 5.2 error answer (also used by
// registration, RFC 7591 section 3.2.2).
type oauthError struct {
	status      int
	code        string
	description string
	// basic adds a WWW-Authenticate: Basic challenge (RFC 6749 section
	// 5.2: invalid_client after Basic authentication).
	basic bool
}

func (e *oauthError) Error() string { return e.code + ": " + e.description }

func newOAuthError(status int, code, description string) *oauthError {
	return &oauthError{status: status, code: code, description: description}
}

func errInvalidRequest(desc string) *oauthError {
	return newOAuthError(http.StatusBadRequest, "invalid_request", desc)
}

func errInvalidGrant(desc string) *oauthError {
	return newOAuthError(http.StatusBadRequest, "invalid_grant", desc)
}

// writeJSON answers v as JSON with Cache-Control: no-store (RFC 6749
// section 5.1: token responses and their errors must not be cached).
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("BUG: cannot encode an OAuth answer: " + err.Error())
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	w.Write(b)
}

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	if e.basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="mcpgw", charset="UTF-8"`)
	}
	writeJSON(w, e.status, struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{e.code, e.description})
}

// randomToken returns 32 random bytes in unpadded base64url (43
// characters): codes, refresh tokens, states, nonces, verifiers, ids.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// secretKey returns the Store key of a secret: prefix + its SHA-256.
func secretKey(prefix, secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return prefix + base64.RawURLEncoding.EncodeToString(sum[:])
}

// getJSON reads the record under key into v; state.ErrNotFound when there
// is none.
func (a *AuthServer) getJSON(key string, v any) ([]byte, error) {
	raw, err := a.store.Get(key)
	if err != nil {
		return nil, err
	}
	if string(raw) == takenMarker {
		return nil, state.ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("identity: corrupt record %s: %w", strings.SplitAfterN(key, "/", 3)[1], err)
	}
	return raw, nil
}

func (a *AuthServer) putJSON(key string, v any, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		panic("BUG: cannot encode a state record: " + err.Error())
	}
	return a.store.Put(key, b, ttl)
}

// takenMarker replaces a record that take consumed. It is not JSON, so it
// never equals a record, and getJSON reads it as absent.
const takenMarker = "\x00taken"

// take reads the record under key into v and consumes it, so that of two
// concurrent takers only one succeeds: state.ErrNotFound for the other.
func (a *AuthServer) take(key string, v any) error {
	raw, err := a.getJSON(key, v)
	if err != nil {
		return err
	}
	err = a.store.CompareAndSwap(key, raw, []byte(takenMarker), time.Minute)
	if errors.Is(err, state.ErrConflict) {
		return state.ErrNotFound
	}
	return err
}

// canonicalResource returns the canonical form of an absolute http(s) URI
// for comparison (MCP-REQUIREMENTS.md 4.1.5): scheme and host lower-cased,
// default port dropped, an origin-only URI without its trailing slash.
// Paths are compared as they are (a different path is a different
// resource).
func canonicalResource(s string) (string, bool) {
	u, err := url.Parse(s)
	// Hostname, not Host: "http://:80" has a Host (":80") and no host.
	if err != nil || u.Fragment != "" || u.User != nil || u.Hostname() == "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", false
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); (scheme == "https" && p == "443") || (scheme == "http" && p == "80") {
		host = strings.TrimSuffix(host, ":"+p)
	}
	path := u.EscapedPath()
	if path == "/" {
		path = ""
	}
	c := scheme + "://" + host + path
	if u.RawQuery != "" {
		c += "?" + u.RawQuery
	}
	return c, true
}

// sameResource reports whether two resource URIs are the same resource.
func sameResource(a, b string) bool {
	ca, ok1 := canonicalResource(a)
	cb, ok2 := canonicalResource(b)
	return ok1 && ok2 && ca == cb
}

// appFor returns the application a requested resource names; with no
// resource, the only application when there is one (RFC 8707 section 2).
func (a *AuthServer) appFor(resource string) (*OAuthApp, *oauthError) {
	if resource == "" {
		if len(a.apps) == 1 {
			return &a.apps[0], nil
		}
		return nil, newOAuthError(http.StatusBadRequest, "invalid_target", "resource is required: this server protects several resources (RFC 8707)")
	}
	c, ok := canonicalResource(resource)
	if ok {
		if i := slices.Index(a.canon, c); i >= 0 {
			return &a.apps[i], nil
		}
	}
	return nil, newOAuthError(http.StatusBadRequest, "invalid_target", "resource "+resource+" is not protected by this server")
}

// grantedScope returns the requested scopes that app offers, in request
// order, space-separated.
func grantedScope(app *OAuthApp, requested string) string {
	var granted []string
	for _, s := range strings.Fields(requested) {
		if slices.Contains(app.Scopes, s) && !slices.Contains(granted, s) {
			granted = append(granted, s)
		}
	}
	return strings.Join(granted, " ")
}
