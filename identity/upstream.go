package identity

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Errors of the upstream login, for the authorize and callback pages to say
// what happened. Every error of OIDCUpstream wraps one of them, except a
// cancelled context and a configuration error from NewOIDCUpstream.
var (
	// ErrProviderDown: the identity provider could not be asked, or its
	// discovery document is missing or wrong (unreachable, timeout, 5xx, no
	// metadata at the derived issuer). Retrying later may help.
	ErrProviderDown = errors.New("identity: identity provider unavailable")
	// ErrLoginRejected: the provider answered, and the login is not good: the
	// code was refused (expired, reused, wrong verifier), or the ID token
	// failed verification (issuer, audience, expiry, signature, nonce), or
	// the user's claims are unusable. Retrying the same login will not help.
	ErrLoginRejected = errors.New("identity: login rejected")
)

// Bounds on what a login may carry into a Principal.
const (
	// maxUpstreamGroups is the most groups a user may have; a login with more
	// is rejected rather than cut (which groups to drop would be arbitrary,
	// and the operator should map fewer groups into the token instead).
	maxUpstreamGroups = 512
	// maxGroupName bounds one group name, in bytes.
	maxGroupName = 256
	// maxUserName bounds a user name: the session id format holds at most
	// 512 bytes of it (doc.go).
	maxUserName = 512
)

// OIDCConfig configures the login to the upstream identity provider: the
// client of pingone.env (or of any OpenID Provider).
type OIDCConfig struct {
	// Issuer is the provider's issuer URL, used for discovery and checked in
	// every ID token. "" derives it from AuthURL: the authorization endpoint
	// with one, then two, ... path segments removed, down to the bare origin,
	// the first whose /.well-known/openid-configuration names that issuer
	// (PingOne: https://auth.pingone.com/<env>/as/authorize gives
	// https://auth.pingone.com/<env>/as at once). Set it for providers whose
	// issuer is not a prefix of the authorization endpoint (Entra ID).
	Issuer string
	// ClientID and ClientSecret are the gateway's client at the provider
	// (OIDC_CLIENT_ID, OIDC_CLIENT_SECRET). An empty secret makes the
	// gateway a public client (PKCE only).
	ClientID, ClientSecret string
	// AuthURL, TokenURL and UserURL (OIDC_AUTH_URL, OIDC_TOKEN_URL,
	// OIDC_USER_URL) replace the discovered endpoints when set.
	AuthURL, TokenURL, UserURL string
	// Scopes to request (OIDC_SCOPES). Each element may itself be a list
	// separated by spaces or commas, as in the env file; "openid" is always
	// requested, first.
	Scopes []string
	// RedirectURL is the gateway's callback, <server url>/oauth/callback.
	RedirectURL string
	// GroupsClaim names the claim with the user's groups, looked up in the
	// ID token and, when absent there, in userinfo. Default "groups".
	GroupsClaim string
	// HTTPClient makes the requests to the provider; nil: a client with 10 s
	// timeouts that honours HTTPS_PROXY.
	HTTPClient *http.Client
}

// OIDCUpstream logs users in at an OpenID Provider with the authorization
// code flow and PKCE (it implements UpstreamLogin). It is safe for
// concurrent use.
//
// The provider need not be up when the gateway starts: NewOIDCUpstream tries
// discovery once, and when that fails every later use tries again (at most
// once per backoff of 1 s doubling to 30 s) and fails with ErrProviderDown
// until discovery succeeds. Discover reports the state for logs and
// readiness checks. Once discovered, the metadata is kept; signing keys are
// re-fetched when an unknown key id appears (go-oidc's remote key set).
type OIDCUpstream struct {
	cfg    OIDCConfig
	client *http.Client
	disc   discovered[oidcProvider]
}

// oidcProvider is what discovery yields.
type oidcProvider struct {
	issuer   string
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	provider *oidc.Provider // for userinfo
}

// NewOIDCUpstream checks cfg and makes a first discovery attempt with ctx
// (at most 10 s, when the provider's address does not answer at all). It
// fails only for a configuration error; a provider that cannot be reached
// or discovered yet is retried later (see OIDCUpstream), so check Discover
// to log that state at startup.
func NewOIDCUpstream(ctx context.Context, cfg OIDCConfig) (*OIDCUpstream, error) {
	var errs []error
	if cfg.ClientID == "" {
		errs = append(errs, errors.New("identity: OIDC client id is empty (OIDC_CLIENT_ID)"))
	}
	if cfg.Issuer == "" && cfg.AuthURL == "" {
		errs = append(errs, errors.New("identity: OIDC issuer unknown: set identity.issuer or OIDC_AUTH_URL"))
	}
	// The provider's endpoints carry the client secret, codes and tokens:
	// https only, but for a provider on this machine.
	for _, f := range []struct{ name, val string }{
		{"identity.issuer", cfg.Issuer}, {"OIDC_AUTH_URL", cfg.AuthURL}, {"OIDC_TOKEN_URL", cfg.TokenURL},
		{"OIDC_USER_URL", cfg.UserURL},
	} {
		if f.val == "" {
			continue
		}
		if err := checkProviderURL(f.val); err != nil {
			errs = append(errs, fmt.Errorf("identity: %s: %w", f.name, err))
		}
	}
	// The callback is the gateway's own URL: plain http is the operator's
	// choice for a dev setup (server.tls omitted), and the provider decides
	// whether to accept it.
	if ru, err := url.Parse(cfg.RedirectURL); err != nil || (ru.Scheme != "https" && ru.Scheme != "http") || ru.Host == "" {
		errs = append(errs, errors.New("identity: redirect URL: want an absolute http(s) URL (server.url + /oauth/callback)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	cfg.Scopes = upstreamScopes(cfg.Scopes)
	u := &OIDCUpstream{cfg: cfg, client: upstreamHTTPClient(cfg.HTTPClient)}
	u.disc = discovered[oidcProvider]{load: u.discover, now: time.Now}
	_ = u.Discover(ctx) // remembered; reported by later calls
	return u, nil
}

// checkProviderURL accepts absolute https URLs, and http ones to loopback
// hosts (tests, a provider on the same machine).
func checkProviderURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme == "https" && u.Host != "":
		return nil
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return nil
	}
	return errors.New("want an https:// URL (http:// only for loopback hosts)")
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// upstreamScopes splits each element on spaces and commas, drops duplicates
// and puts "openid" first.
func upstreamScopes(in []string) []string {
	out := []string{oidc.ScopeOpenID}
	for _, s := range in {
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
			if !containsString(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Discover returns nil once the provider's metadata is known, discovering it
// now if it is not and no backoff is pending; otherwise an error wrapping
// ErrProviderDown that says why.
func (u *OIDCUpstream) Discover(ctx context.Context) error {
	ctx, cancel := withUpstreamTimeout(ctx)
	defer cancel()
	_, err := u.disc.get(ctx)
	return err
}

// Issuer returns the provider's issuer as its discovery document spells
// it, or "" before discovery has succeeded: what an "iss" parameter on the
// callback (RFC 9207 section 2.4) must equal when the provider sends one.
func (u *OIDCUpstream) Issuer() string {
	if p := u.disc.done.Load(); p != nil {
		return p.issuer
	}
	return ""
}

// discover finds the provider metadata and builds the OAuth client and ID
// token verifier.
func (u *OIDCUpstream) discover(ctx context.Context) (*oidcProvider, error) {
	candidates := []string{u.cfg.Issuer}
	if u.cfg.Issuer == "" {
		candidates = issuerCandidates(u.cfg.AuthURL)
	}
	var md *providerMetadata
	var errs []string
	for _, iss := range candidates {
		m, err := discoverProvider(ctx, u.client, iss, false)
		if err == nil {
			md = m
			break
		}
		if errors.Is(err, ErrProviderDown) || ctx.Err() != nil {
			return nil, err
		}
		errs = append(errs, err.Error())
	}
	if md == nil {
		return nil, fmt.Errorf("%w: cannot discover the OIDC provider (set identity.issuer?): %s", ErrProviderDown, strings.Join(errs, "; "))
	}
	pc := oidc.ProviderConfig{
		IssuerURL:   md.Issuer,
		AuthURL:     firstNonEmpty(u.cfg.AuthURL, md.AuthURL),
		TokenURL:    firstNonEmpty(u.cfg.TokenURL, md.TokenURL),
		UserInfoURL: firstNonEmpty(u.cfg.UserURL, md.UserInfoURL),
		JWKSURL:     md.JWKSURL,
		Algorithms:  allowedAlgs(md.Algorithms),
	}
	if pc.AuthURL == "" || pc.TokenURL == "" || pc.JWKSURL == "" {
		return nil, fmt.Errorf("%w: cannot use the OIDC provider: its metadata lacks an authorization, token or jwks endpoint", ErrProviderDown)
	}
	prov := pc.NewProvider(oidc.ClientContext(context.Background(), u.client))
	return &oidcProvider{
		issuer: md.Issuer,
		oauth: oauth2.Config{
			ClientID:     u.cfg.ClientID,
			ClientSecret: u.cfg.ClientSecret,
			Endpoint:     oauth2.Endpoint{AuthURL: pc.AuthURL, TokenURL: pc.TokenURL},
			RedirectURL:  u.cfg.RedirectURL,
			Scopes:       u.cfg.Scopes,
		},
		verifier: prov.Verifier(&oidc.Config{ClientID: u.cfg.ClientID, SupportedSigningAlgs: pc.Algorithms}),
		provider: prov,
	}, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// jwtAlgs are the signature algorithms mcpgw accepts in ID tokens and JWT
// access tokens: asymmetric only, never "none" or HS* (RFC 8725 section 3.1).
var jwtAlgs = []string{oidc.RS256, oidc.ES256, oidc.PS256, oidc.EdDSA}

// allowedAlgs intersects a provider's advertised algorithms with jwtAlgs; an
// empty result means all of jwtAlgs (the provider did not say, or says only
// algorithms mcpgw refuses, in which case no token will verify).
func allowedAlgs(advertised []string) []string {
	var out []string
	for _, a := range advertised {
		if containsString(jwtAlgs, a) && !containsString(out, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return jwtAlgs
	}
	return out
}

// AuthCodeURL returns the provider's authorization URL for one login: state
// and nonce as given, PKCE with the S256 challenge. When discovery is
// pending it waits for one attempt (at most 10 s). When the provider is not
// discovered and cannot be now, it returns the gateway's own RedirectURL
// with error=temporarily_unavailable and state, the error answer an
// authorization server gives when it cannot serve (RFC 6749 section
// 4.1.2.1), so the browser lands on the callback, which shows the provider
// as down without a trip to a host that does not answer.
func (u *OIDCUpstream) AuthCodeURL(state, nonce, codeChallenge string) string {
	ctx, cancel := withUpstreamTimeout(context.Background())
	defer cancel()
	p, err := u.disc.get(ctx)
	if err != nil {
		q := url.Values{
			"error":             {"temporarily_unavailable"},
			"error_description": {"the identity provider cannot be reached or discovered; the gateway keeps trying"},
			"state":             {state},
		}
		sep := "?"
		if strings.Contains(u.cfg.RedirectURL, "?") {
			sep = "&"
		}
		return u.cfg.RedirectURL + sep + q.Encode()
	}
	return p.oauth.AuthCodeURL(state,
		oidc.Nonce(nonce),
		oauth2.SetAuthURLParam("code_challenge", codeChallenge),
		oauth2.SetAuthURLParam("code_challenge_method", "S256"))
}

// Exchange redeems an authorization code at the token endpoint with the PKCE
// verifier, verifies the ID token (signature, issuer, audience = client id,
// expiry, and that its nonce is nonce) and returns the user. The user name is
// the email claim, unless email_verified is false; else preferred_username;
// else sub. Groups come from GroupsClaim in the ID token or, when the claim
// is absent there, from userinfo, which also supplies the user name claims
// when the ID token has neither email nor preferred_username. Errors wrap
// ErrProviderDown or ErrLoginRejected and carry no token or secret.
func (u *OIDCUpstream) Exchange(ctx context.Context, code, codeVerifier, nonce string) (*UpstreamUser, error) {
	ctx, cancel := withUpstreamTimeout(ctx)
	defer cancel()
	p, err := u.disc.get(ctx)
	if err != nil {
		return nil, err
	}
	if nonce == "" {
		return nil, fmt.Errorf("%w: cannot verify login: no nonce to compare", ErrLoginRejected)
	}
	hctx := oidc.ClientContext(ctx, u.client)
	tok, err := p.oauth.Exchange(hctx, code, oauth2.VerifierOption(codeVerifier))
	if err != nil {
		return nil, exchangeError(ctx, err, code)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, fmt.Errorf("%w: cannot verify login: the token response has no id_token (is \"openid\" allowed for the client?)", ErrLoginRejected)
	}
	idt, err := p.verifier.Verify(hctx, raw)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// go-oidc formats a failed key fetch with %v, so only its text
		// tells it from a bad token (oidc/jwks.go "fetching keys").
		if strings.Contains(err.Error(), "fetching keys") {
			return nil, fmt.Errorf("%w: cannot verify ID token: %v", ErrProviderDown, err)
		}
		return nil, fmt.Errorf("%w: cannot verify ID token: %v", ErrLoginRejected, err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, fmt.Errorf("%w: cannot verify ID token: nonce does not match this login", ErrLoginRejected)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, fmt.Errorf("%w: cannot verify ID token: %v", ErrLoginRejected, err)
		}
	}
	var claims map[string]json.RawMessage
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: cannot read ID token claims: %v", ErrLoginRejected, err)
	}
	// OpenID Connect Core 1.0 section 3.1.3.7 items 4 and 5: a token for
	// several audiences must name this client as its authorized party.
	if azp := stringClaim(claims, "azp"); (azp != "" || len(idt.Audience) > 1) && azp != u.cfg.ClientID {
		return nil, fmt.Errorf("%w: cannot verify ID token: its authorized party (azp) is not this client", ErrLoginRejected)
	}
	// Providers that follow OpenID Connect Core 1.0 section 5.4 put the
	// claims of the email and profile scopes (and custom ones such as
	// groups) in userinfo, not in an ID token issued with an access token
	// (oidc-provider does so; PingOne puts mapped attributes in either).
	// Userinfo fills what the ID token lacks; the ID token's own claims win.
	if (!hasClaim(claims, "email") && !hasClaim(claims, "preferred_username")) || !hasClaim(claims, u.cfg.GroupsClaim) {
		extra, err := u.userinfo(hctx, p, tok, idt.Subject)
		if err != nil {
			return nil, err
		}
		for k, v := range extra {
			if !hasClaim(claims, k) {
				claims[k] = v
			}
		}
	}
	user, err := userFromClaims(claims)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot log in: %v", ErrLoginRejected, err)
	}
	groups, err := parseGroups(claims[u.cfg.GroupsClaim])
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read claim %q: %v", ErrLoginRejected, u.cfg.GroupsClaim, err)
	}
	return &UpstreamUser{Subject: idt.Subject, User: user, Groups: groups}, nil
}

// exchangeError classifies a failed token request: an OAuth error answer
// (invalid_grant and friends) is a rejected login, anything else (no
// answer, 5xx, 429) a provider that is down. The provider's response body is
// left out: only the error code and a bounded description are kept, with the
// code removed from it (some providers echo it).
func exchangeError(ctx context.Context, err error, code string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("identity: cannot redeem the login code: %w", ctx.Err())
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		if status >= 500 || status == http.StatusTooManyRequests {
			return fmt.Errorf("%w: cannot redeem the login code: token endpoint answered %d", ErrProviderDown, status)
		}
		msg := re.ErrorCode
		if msg == "" {
			msg = fmt.Sprintf("HTTP %d", status)
		}
		desc := re.ErrorDescription
		if code != "" {
			desc = strings.ReplaceAll(desc, code, "<code>")
		}
		if d := boundedText(desc, 200); d != "" {
			msg += ": " + d
		}
		return fmt.Errorf("%w: cannot redeem the login code: %s", ErrLoginRejected, msg)
	}
	return fmt.Errorf("%w: cannot redeem the login code: %v", ErrProviderDown, causeOf(err))
}

// boundedText returns s cut to at most n bytes of printable text.
func boundedText(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len()+utf8.RuneLen(r) > n {
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// userinfo reads the userinfo endpoint's claims; nil when the provider has
// no such endpoint.
func (u *OIDCUpstream) userinfo(ctx context.Context, p *oidcProvider, tok *oauth2.Token, subject string) (map[string]json.RawMessage, error) {
	if p.provider.UserInfoEndpoint() == "" {
		return nil, nil
	}
	ui, err := p.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("identity: cannot read userinfo: %w", ctx.Err())
		}
		return nil, fmt.Errorf("%w: cannot read userinfo: %s", ErrProviderDown, boundedText(causeOf(err).Error(), 300))
	}
	// OpenID Connect Core 1.0 section 5.3.2: the sub in userinfo MUST be
	// the ID token's, or the response may be for someone else.
	if ui.Subject != subject {
		return nil, fmt.Errorf("%w: cannot read userinfo: its sub is not the ID token's", ErrLoginRejected)
	}
	var claims map[string]json.RawMessage
	if err := ui.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: cannot read userinfo: %v", ErrLoginRejected, err)
	}
	return claims, nil
}

// hasClaim reports whether claims has name with a value other than null.
func hasClaim(claims map[string]json.RawMessage, name string) bool {
	v, ok := claims[name]
	return ok && string(v) != "null"
}

// userFromClaims picks the user name: email (unless email_verified is
// false: a name the user could set to someone else's address must not
// select policy), else preferred_username, else sub. The name must be
// UTF-8 text without control characters, at most maxUserName bytes.
func userFromClaims(claims map[string]json.RawMessage) (string, error) {
	var user string
	if email := stringClaim(claims, "email"); email != "" && !falseClaim(claims, "email_verified") {
		user = email
	} else if pu := stringClaim(claims, "preferred_username"); pu != "" {
		user = pu
	} else {
		user = stringClaim(claims, "sub")
	}
	switch {
	case user == "":
		return "", errors.New("no email, preferred_username or sub claim")
	case len(user) > maxUserName:
		return "", fmt.Errorf("user name longer than %d bytes", maxUserName)
	case !printable(user):
		return "", errors.New("user name has control characters or is not UTF-8")
	}
	return user, nil
}

func stringClaim(claims map[string]json.RawMessage, name string) string {
	var s string
	if raw, ok := claims[name]; ok && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

// falseClaim reports whether a boolean claim is false, accepting the string
// "false" too (AWS Cognito sends email_verified as a string).
func falseClaim(claims map[string]json.RawMessage, name string) bool {
	switch strings.Trim(string(claims[name]), `" `) {
	case "false", "False", "FALSE":
		return true
	}
	return false
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// parseGroups reads a groups claim: a string is one group, an array of
// strings is a list; absent or null is no groups. Empty names are dropped.
// More than maxUpstreamGroups groups, or a name longer than maxGroupName
// bytes or not printable, is an error.
func parseGroups(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, nil
		}
		return checkGroups([]string{one})
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("neither a string nor a list of strings")
	}
	return checkGroups(list)
}

func checkGroups(list []string) ([]string, error) {
	out := list[:0]
	for _, g := range list {
		switch {
		case g == "":
			continue
		case len(g) > maxGroupName:
			return nil, fmt.Errorf("a group name is longer than %d bytes", maxGroupName)
		case !printable(g):
			return nil, errors.New("a group name has control characters or is not UTF-8")
		}
		out = append(out, g)
	}
	if len(out) > maxUpstreamGroups {
		return nil, fmt.Errorf("%d groups, more than %d", len(out), maxUpstreamGroups)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
