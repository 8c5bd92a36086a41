package identity

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mcpgw/mcpgw/internal/state"
)

// authRequest is a validated authorization request, carried from
// /oauth/authorize through the provider's login and the consent page into
// the authorization code.
type authRequest struct {
	ClientID    string
	RedirectURI string
	// RedirectGiven is whether the request named redirect_uri (then the
	// token request must name the same, RFC 6749 section 4.1.3).
	RedirectGiven bool
	CodeChallenge string // PKCE S256 challenge of the client
	Resource      string // the application's Resource (RFC 8707)
	Scope         string // the granted scopes, space-separated
	State         string // the client's state, returned as it came
}

// loginRecord is a login in progress at the provider, stored under the
// hash of the state sent to it.
type loginRecord struct {
	authRequest
	Nonce    string // OIDC nonce toward the provider
	Verifier string // PKCE verifier toward the provider
}

// grantUser is the user a login vouched for.
type grantUser struct {
	User    string
	Subject string
	Groups  []string
}

// maxClientState bounds the client's state parameter, which is stored and
// returned.
const maxClientState = 2048

// Parameters of an authorization request that must not be repeated (RFC
// 6749 section 3.1).
var singleAuthParams = []string{"response_type", "client_id", "redirect_uri", "state",
	"code_challenge", "code_challenge_method", "scope", "resource"}

// serveAuthorize is the authorization endpoint (OAuth 2.1 section 4.1.1).
// Until the client and its redirect URI are known to be valid, errors are
// shown on an HTML page, never redirected (OAuth 2.1 section 4.1.2.1);
// after that, they are sent to the client's redirect URI.
func (a *AuthServer) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		methodNotAllowed(w, "GET, POST")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		a.errorPage(w, http.StatusBadRequest, "The login request cannot be read", "The application sent a malformed authorization request.")
		return
	}
	q := r.Form
	for _, p := range []string{"client_id", "redirect_uri"} {
		if len(q[p]) > 1 {
			a.errorPage(w, http.StatusBadRequest, "The login request is not valid", "The application sent "+p+" more than once.")
			return
		}
	}
	c, err := a.client(r.Context(), q.Get("client_id"))
	if err != nil {
		a.log.Info("authorization refused", "client_id", truncate(q.Get("client_id"), 200), "reason", err)
		a.errorPage(w, http.StatusBadRequest, "The application is not known to this gateway", capitalize(err.Error())+".")
		return
	}
	redirect, given, err := pickRedirectURI(c, q.Get("redirect_uri"))
	if err != nil {
		a.log.Info("authorization refused", "client_id", c.ClientID, "reason", err)
		a.errorPage(w, http.StatusBadRequest, "The application's redirect address is not registered", capitalize(err.Error())+
			". The gateway sends logins only to addresses the application registered, so this login cannot continue.")
		return
	}
	clientState := q.Get("state")
	if len(clientState) > maxClientState {
		clientState = "" // not echoed into a Location header
	}
	fail := func(code, desc string) {
		a.log.Info("authorization refused", "client_id", c.ClientID, "error", code, "reason", desc)
		a.redirectToClient(w, r, redirect, url.Values{"error": {code}, "error_description": {desc}}, clientState)
	}
	for _, p := range singleAuthParams {
		if len(q[p]) > 1 {
			fail("invalid_request", p+" was sent more than once")
			return
		}
	}
	if rt := q.Get("response_type"); rt != "code" {
		fail("unsupported_response_type", "response_type must be code")
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "":
		fail("invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256")
		return
	case method != "S256":
		fail("invalid_request", "code_challenge_method must be S256 (plain and absent are refused)")
		return
	case !isS256Challenge(challenge):
		fail("invalid_request", "code_challenge is not an S256 challenge (43 base64url characters)")
		return
	}
	app, oe := a.appFor(q.Get("resource"))
	if oe != nil {
		fail(oe.code, oe.description)
		return
	}
	if len(q.Get("state")) > maxClientState {
		fail("invalid_request", fmt.Sprintf("state is longer than %d bytes", maxClientState))
		return
	}
	login := loginRecord{
		authRequest: authRequest{
			ClientID:      c.ClientID,
			RedirectURI:   redirect,
			RedirectGiven: given,
			CodeChallenge: challenge,
			Resource:      app.Resource,
			Scope:         grantedScope(app, q.Get("scope")),
			State:         q.Get("state"),
		},
		Nonce:    randomToken(),
		Verifier: randomToken(),
	}
	st := randomToken()
	if err := a.putJSON(secretKey(keyLogin, st), &login, loginTTL); err != nil {
		a.log.Error("cannot store a login", "err", err)
		fail("server_error", "the gateway could not record the login")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, a.upstream.AuthCodeURL(st, login.Nonce, s256(login.Verifier)), http.StatusFound)
}

// pickRedirectURI returns the redirect URI of a request: the one named,
// which must be one of the client's exactly (OAuth 2.1 section 4.1.1)
// except for the port of a loopback one (registeredRedirect), or the
// client's only one when none is named.
func pickRedirectURI(c *clientRecord, named string) (string, bool, error) {
	if named == "" {
		if len(c.RedirectURIs) == 1 {
			return c.RedirectURIs[0], false, nil
		}
		return "", false, errors.New("redirect_uri is missing, and the client registered several")
	}
	if !registeredRedirect(c, named) {
		return "", false, fmt.Errorf("redirect_uri %s is not one the client registered", truncate(named, 200))
	}
	return named, true, nil
}

// registeredRedirect reports whether uri is one of c's redirect URIs:
// equal as strings, or, for http on a loopback IP literal, equal but for
// the port, which native apps pick at the time of the request (RFC 8252
// section 7.3, OAuth 2.1 section 8.4.2: the server must allow any port).
// "localhost" is matched exactly (RFC 8252 section 8.3 advises against it
// for this reason).
func registeredRedirect(c *clientRecord, uri string) bool {
	if slices.Contains(c.RedirectURIs, uri) {
		return true
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || !isLoopbackIP(u.Hostname()) {
		return false
	}
	for _, r := range c.RedirectURIs {
		ru, err := url.Parse(r)
		if err == nil && ru.Scheme == "http" && ru.Hostname() == u.Hostname() &&
			ru.EscapedPath() == u.EscapedPath() && ru.RawQuery == u.RawQuery && ru.User == nil && u.User == nil {
			return true
		}
	}
	return false
}

func isLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isS256Challenge reports whether s can be an S256 code challenge: the
// unpadded base64url of 32 bytes (RFC 7636 section 4.2).
func isS256Challenge(s string) bool {
	if len(s) != 43 {
		return false
	}
	for i := range len(s) {
		if !isBase64URLChar(s[i]) {
			return false
		}
	}
	return true
}

// isCodeVerifier reports whether s is a PKCE code verifier: 43 to 128
// unreserved characters (RFC 7636 section 4.1).
func isCodeVerifier(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !isBase64URLChar(c) && c != '.' && c != '~' {
			return false
		}
	}
	return true
}

// s256 is the S256 code challenge of a verifier.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// redirectToClient sends the browser to the client's (validated) redirect
// URI with params, the client's state and iss (RFC 9207), keeping the
// query the URI already has.
func (a *AuthServer) redirectToClient(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values, clientState string) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		// Validated at registration; this is a corrupt record.
		a.errorPage(w, http.StatusInternalServerError, "The login cannot be returned to the application", "Its redirect address cannot be parsed.")
		return
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if clientState != "" {
		q.Set("state", clientState)
	}
	q.Set("iss", a.issuer)
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	http.Redirect(w, r, u.String(), status)
}

// serveCallback is where the provider returns the browser: the login is
// looked up by state (single use, at most loginTTL old), the provider's
// code exchanged, and the consent page shown unless the user already
// approved this client.
func (a *AuthServer) serveCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	q := r.URL.Query()
	st := q.Get("state")
	if st == "" {
		a.errorPage(w, http.StatusBadRequest, "The login cannot continue",
			"The identity provider returned without the login's state. Start the login again from your application.")
		return
	}
	var login loginRecord
	if err := a.take(secretKey(keyLogin, st), &login); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			a.errorPage(w, http.StatusBadRequest, "This login has expired or was already used",
				"A login must be finished within 10 minutes, and each can be used once. Start the login again from your application.")
			return
		}
		a.log.Error("cannot read a login", "err", err)
		a.errorPage(w, http.StatusInternalServerError, "The login cannot continue", "The gateway could not read the login's record.")
		return
	}
	if e := q.Get("error"); e != "" {
		a.log.Info("identity provider refused a login", "client_id", login.ClientID, "error", truncate(e, 100))
		detail := "It answered: " + truncate(e, 100)
		if d := q.Get("error_description"); d != "" {
			detail += " (" + truncate(d, 300) + ")"
		}
		a.errorPage(w, http.StatusBadGateway, "The identity provider did not log you in", detail+". Start the login again from your application.")
		return
	}
	code := q.Get("code")
	if code == "" {
		a.errorPage(w, http.StatusBadGateway, "The identity provider did not log you in",
			"It returned without an authorization code. Start the login again from your application.")
		return
	}
	u, err := a.upstream.Exchange(r.Context(), code, login.Verifier, login.Nonce)
	if err != nil {
		a.log.Warn("identity provider login failed", "client_id", login.ClientID, "err", err)
		a.errorPage(w, http.StatusBadGateway, "The identity provider could not complete your login",
			capitalize(err.Error())+". Try again; if it keeps failing, tell the gateway's administrator.")
		return
	}
	if u == nil || u.User == "" {
		a.errorPage(w, http.StatusBadGateway, "The identity provider could not complete your login",
			"It did not say who you are (no user name). Tell the gateway's administrator.")
		return
	}
	user := grantUser{User: u.User, Subject: u.Subject, Groups: u.Groups}
	c, err := a.client(r.Context(), login.ClientID)
	if err != nil {
		a.errorPage(w, http.StatusBadRequest, "The application is not known to this gateway", capitalize(err.Error())+".")
		return
	}
	if !registeredRedirect(c, login.RedirectURI) {
		a.errorPage(w, http.StatusBadRequest, "The application's redirect address is no longer registered",
			"Its metadata changed during the login. Start the login again from your application.")
		return
	}
	approved, err := a.hasConsent(user.User, login.ClientID, login.RedirectURI)
	if err != nil {
		a.log.Error("cannot read a consent", "err", err)
		a.errorPage(w, http.StatusInternalServerError, "The login cannot continue", "The gateway could not read your earlier approvals.")
		return
	}
	if approved {
		a.issueCode(w, r, &login.authRequest, &user)
		return
	}
	a.askConsent(w, c, &login.authRequest, &user)
}

// codeRecord is an authorization code, stored under the hash of the code
// for codeRecordTTL; it is valid until Expires and once.
type codeRecord struct {
	authRequest
	grantUser
	Expires int64 // unix ns
	// Used and Family are set when the code is redeemed: a replay revokes
	// the family the redemption started.
	Used   bool   `json:",omitempty"`
	Family string `json:",omitempty"`
}

// issueCode stores a new authorization code for req and user and sends
// the browser back to the client with it.
func (a *AuthServer) issueCode(w http.ResponseWriter, r *http.Request, req *authRequest, user *grantUser) {
	code := randomToken()
	rec := codeRecord{authRequest: *req, grantUser: *user, Expires: a.now().Add(codeTTL).UnixNano()}
	if err := a.putJSON(secretKey(keyCode, code), &rec, codeRecordTTL); err != nil {
		a.log.Error("cannot store an authorization code", "err", err)
		a.redirectToClient(w, r, req.RedirectURI, url.Values{"error": {"server_error"},
			"error_description": {"the gateway could not record the authorization"}}, req.State)
		return
	}
	a.log.Info("authorization code issued", "client_id", req.ClientID, "user", user.User, "resource", req.Resource)
	a.redirectToClient(w, r, req.RedirectURI, url.Values{"code": {code}}, req.State)
}

// capitalize upper-cases the first letter of an error message for a page,
// unless its first word is an identifier (client_id, redirect_uri).
func capitalize(s string) string {
	first, _, _ := strings.Cut(s, " ")
	if s == "" || s[0] < 'a' || s[0] > 'z' || strings.Contains(first, "_") {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
