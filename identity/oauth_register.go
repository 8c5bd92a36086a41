package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/internal/state"
)

// Client authentication at the token and revocation endpoints. Public
// clients (every MCP client that runs on the user's machine) use none;
// a dynamically registered web client (claude.ai registers one, P-20) may
// ask for a secret, which the server then issues and checks.
const (
	authNone       = "none"
	authSecretPost = "client_secret_post"
	authSecretBase = "client_secret_basic"
)

var clientAuthMethods = []string{authNone, authSecretPost, authSecretBase}

// Limits on a registration (RFC 7591) request.
const (
	maxRedirectURIs   = 20
	maxRedirectURILen = 2000
	maxClientNameLen  = 200
)

// clientRecord is a registered client, as stored under keyClient.
type clientRecord struct {
	ClientMetadata
	// SecretHash is the SHA-256 of the client secret of a confidential
	// client; empty for public clients.
	SecretHash []byte `json:",omitempty"`
	IssuedAt   int64
	// Dynamic is true for clients registered through /oauth/register (the
	// consent page says so).
	Dynamic bool `json:",omitempty"`
}

// registrationRequest is the part of RFC 7591 client metadata the server
// reads; other fields are ignored.
type registrationRequest struct {
	RedirectURIs            []string `json:"redirect_uris"`
	ClientName              string   `json:"client_name"`
	ClientURI               string   `json:"client_uri"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope"`
}

// serveRegister is dynamic client registration (RFC 7591).
func (a *AuthServer) serveRegister(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST, OPTIONS")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeOAuthError(w, newOAuthError(http.StatusBadRequest, "invalid_client_metadata", "the registration must be application/json"))
		return
	}
	if ok, wait := a.regLimit.allow(a.now()); !ok {
		if a.regLimit.shouldLog(a.now()) {
			a.log.Warn("client registrations refused: rate limit reached", "per_minute", registrationsPerMinute)
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		writeOAuthError(w, newOAuthError(http.StatusTooManyRequests, "temporarily_unavailable", "too many client registrations; try again later"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBody))
	if err != nil {
		writeOAuthError(w, newOAuthError(http.StatusBadRequest, "invalid_client_metadata", "the registration is too large or unreadable"))
		return
	}
	var req registrationRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeOAuthError(w, newOAuthError(http.StatusBadRequest, "invalid_client_metadata", "the registration is not valid JSON client metadata: "+err.Error()))
		return
	}
	rec, secret, oe := a.newClient(&req)
	if oe != nil {
		writeOAuthError(w, oe)
		return
	}
	if err := a.putJSON(keyClient+rec.ClientID, rec, 0); err != nil {
		a.log.Error("cannot store a client registration", "err", err)
		writeOAuthError(w, newOAuthError(http.StatusInternalServerError, "server_error", "the registration could not be stored"))
		return
	}
	a.log.Info("client registered", "client_id", rec.ClientID, "client_name", rec.ClientName,
		"redirect_uris", rec.RedirectURIs, "auth", rec.TokenEndpointAuthMethod)
	resp := struct {
		ClientID                string   `json:"client_id"`
		ClientSecret            string   `json:"client_secret,omitempty"`
		ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at,omitempty"`
		ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
		ClientName              string   `json:"client_name,omitempty"`
		ClientURI               string   `json:"client_uri,omitempty"`
		RedirectURIs            []string `json:"redirect_uris"`
		GrantTypes              []string `json:"grant_types"`
		ResponseTypes           []string `json:"response_types"`
		TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
		Scope                   string   `json:"scope,omitempty"`
	}{
		ClientID:                rec.ClientID,
		ClientIDIssuedAt:        rec.IssuedAt,
		ClientName:              rec.ClientName,
		ClientURI:               rec.ClientURI,
		RedirectURIs:            rec.RedirectURIs,
		GrantTypes:              rec.GrantTypes,
		ResponseTypes:           rec.ResponseTypes,
		TokenEndpointAuthMethod: rec.TokenEndpointAuthMethod,
		Scope:                   req.Scope,
	}
	if secret != "" {
		never := int64(0)
		resp.ClientSecret = secret
		resp.ClientSecretExpiresAt = &never
	}
	writeJSON(w, http.StatusCreated, resp)
}

// newClient validates a registration request and returns the record to
// store and, for a confidential client, its secret.
func (a *AuthServer) newClient(req *registrationRequest) (*clientRecord, string, *oauthError) {
	invalid := func(desc string) *oauthError {
		return newOAuthError(http.StatusBadRequest, "invalid_client_metadata", desc)
	}
	if err := checkRedirectURIs(req.RedirectURIs); err != nil {
		return nil, "", newOAuthError(http.StatusBadRequest, "invalid_redirect_uri", err.Error())
	}
	if len(req.ClientName) > maxClientNameLen {
		return nil, "", invalid(fmt.Sprintf("client_name is longer than %d bytes", maxClientNameLen))
	}
	if req.ClientURI != "" {
		if u, err := url.Parse(req.ClientURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || len(req.ClientURI) > maxRedirectURILen {
			return nil, "", invalid("client_uri is not an http(s) URL")
		}
	}
	grants := req.GrantTypes
	if len(grants) == 0 {
		grants = []string{"authorization_code", "refresh_token"}
	}
	for _, g := range grants {
		if g != "authorization_code" && g != "refresh_token" {
			return nil, "", invalid("grant_types: " + g + " is not supported (authorization_code, refresh_token)")
		}
	}
	if !slices.Contains(grants, "authorization_code") {
		return nil, "", invalid("grant_types must include authorization_code")
	}
	responses := req.ResponseTypes
	if len(responses) == 0 {
		responses = []string{"code"}
	}
	if len(responses) != 1 || responses[0] != "code" {
		return nil, "", invalid("response_types must be [\"code\"]")
	}
	method := req.TokenEndpointAuthMethod
	if method == "" {
		// RFC 7591 defaults to client_secret_basic, but MCP clients are
		// public clients and omit it expecting none (OAuth 2.1 section 2.1).
		method = authNone
	}
	if !slices.Contains(clientAuthMethods, method) {
		return nil, "", invalid("token_endpoint_auth_method " + method + " is not supported (none, client_secret_post, client_secret_basic)")
	}
	rec := &clientRecord{
		ClientMetadata: ClientMetadata{
			ClientID:                randomToken()[:22], // 128 bits
			ClientName:              req.ClientName,
			ClientURI:               req.ClientURI,
			RedirectURIs:            req.RedirectURIs,
			GrantTypes:              grants,
			ResponseTypes:           responses,
			TokenEndpointAuthMethod: method,
		},
		IssuedAt: a.now().Unix(),
		Dynamic:  true,
	}
	var secret string
	if method != authNone {
		secret = randomToken()
		sum := sha256.Sum256([]byte(secret))
		rec.SecretHash = sum[:]
	}
	return rec, secret, nil
}

// checkRedirectURIs validates the redirect URIs of a client
// (MCP-REQUIREMENTS.md 4.4.3; OAuth 2.1 section 2.3.1; RFC 8252 for
// native apps): absolute, no fragment, and either https, http on a
// loopback host (127.0.0.1, [::1], localhost; any port), or a private-use
// scheme of a native app (cursor://, vscode://; RFC 8252 section 7.1).
// Schemes a browser would run or read locally (javascript, data, file, ...)
// and plain http to other hosts are refused.
func checkRedirectURIs(uris []string) error {
	if len(uris) == 0 {
		return errors.New("redirect_uris is required")
	}
	if len(uris) > maxRedirectURIs {
		return fmt.Errorf("more than %d redirect_uris", maxRedirectURIs)
	}
	for _, s := range uris {
		if err := checkRedirectURI(s); err != nil {
			return fmt.Errorf("redirect_uri %q: %w", truncate(s, 200), err)
		}
	}
	return nil
}

func checkRedirectURI(s string) error {
	if len(s) > maxRedirectURILen {
		return fmt.Errorf("longer than %d bytes", maxRedirectURILen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if !u.IsAbs() {
		return errors.New("not an absolute URL")
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return errors.New("must not have a fragment")
	}
	if u.User != nil {
		return errors.New("must not carry user information")
	}
	switch scheme := strings.ToLower(u.Scheme); scheme {
	case "https":
		if u.Hostname() == "" { // "https://:443/cb" has a Host and no host
			return errors.New("has no host")
		}
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return errors.New("http is allowed only to a loopback host (127.0.0.1, [::1], localhost); use https")
		}
	case "javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "ftp", "ws", "wss", "mailto", "tel":
		return errors.New("scheme " + scheme + " cannot receive an authorization response")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// errUnknownClient and the other client lookup failures are shown on the
// authorization error page and sent as invalid_client by the token
// endpoint.
var errUnknownClient = errors.New("unknown client_id: the client is not registered with this gateway (register again)")

// client returns the client client_id names: a registration in the Store,
// or, for an https client_id when client ID metadata documents are on, the
// document it points at (fetched through the ClientMetadataFetcher and
// checked here too).
func (a *AuthServer) client(ctx context.Context, clientID string) (*clientRecord, error) {
	if clientID == "" {
		return nil, errors.New("client_id is missing")
	}
	if strings.HasPrefix(clientID, "https://") {
		return a.metadataClient(ctx, clientID)
	}
	var rec clientRecord
	if _, err := a.getJSON(keyClient+clientID, &rec); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return nil, errUnknownClient
		}
		return nil, err
	}
	return &rec, nil
}

func (a *AuthServer) metadataClient(ctx context.Context, clientID string) (*clientRecord, error) {
	if a.cimd == nil {
		return nil, errors.New("client ID metadata documents are not enabled on this gateway; register the client instead")
	}
	md, err := a.cimd.Fetch(ctx, clientID)
	if err != nil {
		return nil, fmt.Errorf("cannot use the client's metadata document: %w", err)
	}
	if md.ClientID != clientID {
		return nil, errors.New("the client's metadata document names another client_id")
	}
	if err := checkRedirectURIs(md.RedirectURIs); err != nil {
		return nil, fmt.Errorf("the client's metadata document is not valid: %w", err)
	}
	if m := md.TokenEndpointAuthMethod; m != "" && m != authNone {
		return nil, errors.New("the client's metadata document asks for token_endpoint_auth_method " + m + "; only none is supported for metadata documents")
	}
	rec := &clientRecord{ClientMetadata: *md}
	rec.TokenEndpointAuthMethod = authNone
	return rec, nil
}

// authenticateClient checks the client authentication of a token or
// revocation request (RFC 6749 section 2.3.1): HTTP Basic or form
// client_id (and client_secret). It returns the client, or an
// invalid_client error (401, with a Basic challenge when Basic was used).
func (a *AuthServer) authenticateClient(r *http.Request) (*clientRecord, *oauthError) {
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 section 2.3.1: both are form-urlencoded inside Basic.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return nil, a.invalidClient(true, "malformed Basic credentials")
		}
		if f := r.PostForm.Get("client_id"); f != "" && f != id {
			return nil, errInvalidRequest("client_id in the form differs from the Basic credentials")
		}
	} else {
		id = r.PostForm.Get("client_id")
		secret = r.PostForm.Get("client_secret")
	}
	if id == "" {
		return nil, a.invalidClient(basic, "client_id is missing")
	}
	c, err := a.client(r.Context(), id)
	if err != nil {
		return nil, a.invalidClient(basic, err.Error())
	}
	if c.TokenEndpointAuthMethod == authNone {
		if secret != "" {
			return nil, a.invalidClient(basic, "the client is public (token_endpoint_auth_method none) and must not send a secret")
		}
		return c, nil
	}
	sum := sha256.Sum256([]byte(secret))
	if secret == "" || subtle.ConstantTimeCompare(sum[:], c.SecretHash) != 1 {
		return nil, a.invalidClient(basic, "client authentication failed")
	}
	return c, nil
}

func (a *AuthServer) invalidClient(basic bool, desc string) *oauthError {
	e := newOAuthError(http.StatusUnauthorized, "invalid_client", desc)
	e.basic = basic
	return e
}
