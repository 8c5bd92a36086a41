package identity

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/internal/state"
)

// refreshRecord is a refresh token, stored under the hash of the token
// until its family expires. Used is set when it is redeemed (rotation); a
// redeemed token presented again revokes the family (OAuth 2.1 section
// 4.3.1, MCP-REQUIREMENTS.md 4.4.4).
type refreshRecord struct {
	Family   string
	ClientID string
	Resource string
	Scope    string
	grantUser
	Expires int64 // the family's expiry, unix ns
	Used    bool  `json:",omitempty"`
}

// familyRecord is one login's chain of refresh tokens.
type familyRecord struct {
	ClientID string
	User     string
	Resource string
	Expires  int64 // unix ns
	Revoked  bool  `json:",omitempty"`
}

// Parameters of a token request that must not be repeated.
var singleTokenParams = []string{"grant_type", "code", "redirect_uri", "code_verifier",
	"refresh_token", "client_id", "client_secret", "resource", "scope"}

// parseTokenForm reads a form-encoded POST body (token and revocation
// endpoints, RFC 6749 section 3.2).
func parseTokenForm(w http.ResponseWriter, r *http.Request) *oauthError {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return errInvalidRequest("the request must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		return errInvalidRequest("the request body cannot be read")
	}
	if len(r.URL.RawQuery) > 0 {
		// Credentials never belong in the URL (OAuth 2.1 section 3.2).
		return errInvalidRequest("parameters must be sent in the body, not the URL")
	}
	for _, p := range singleTokenParams {
		if len(r.PostForm[p]) > 1 {
			return errInvalidRequest(p + " was sent more than once")
		}
	}
	return nil
}

// clientRequest reads a POST of the token or revocation endpoint and
// authenticates its client; on failure it has answered.
func (a *AuthServer) clientRequest(w http.ResponseWriter, r *http.Request) (*clientRecord, bool) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST, OPTIONS")
		return nil, false
	}
	if oe := parseTokenForm(w, r); oe != nil {
		writeOAuthError(w, oe)
		return nil, false
	}
	c, oe := a.authenticateClient(r)
	if oe != nil {
		writeOAuthError(w, oe)
		return nil, false
	}
	return c, true
}

// serveToken is the token endpoint (OAuth 2.1 section 3.2).
func (a *AuthServer) serveToken(w http.ResponseWriter, r *http.Request) {
	c, ok := a.clientRequest(w, r)
	if !ok {
		return
	}
	var oe *oauthError
	grant := r.PostForm.Get("grant_type")
	if grant == "authorization_code" && len(c.GrantTypes) > 0 && !slices.Contains(c.GrantTypes, grant) {
		writeOAuthError(w, newOAuthError(http.StatusBadRequest, "unauthorized_client", "the client did not register grant type "+grant))
		return
	}
	switch grant {
	case "authorization_code":
		oe = a.codeGrant(w, r, c)
	case "refresh_token":
		oe = a.refreshGrant(w, r, c)
	case "":
		oe = errInvalidRequest("grant_type is missing")
	default:
		oe = newOAuthError(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
	if oe != nil {
		if oe.status < 500 {
			a.log.Info("token request refused", "client_id", c.ClientID, "grant_type", truncate(grant, 40), "error", oe.code, "reason", oe.description)
		}
		writeOAuthError(w, oe)
	}
}

func errServer(desc string) *oauthError {
	return newOAuthError(http.StatusInternalServerError, "server_error", desc)
}

// checkResourceParam checks the resource parameters of a token request
// against the resource of the grant (RFC 8707 section 2.2).
func checkResourceParam(form []string, granted string) *oauthError {
	for _, res := range form {
		if !sameResource(res, granted) {
			return newOAuthError(http.StatusBadRequest, "invalid_target",
				"resource "+truncate(res, 200)+" is not the resource the authorization was granted for")
		}
	}
	return nil
}

// codeGrant redeems an authorization code (OAuth 2.1 section 4.1.3).
func (a *AuthServer) codeGrant(w http.ResponseWriter, r *http.Request, c *clientRecord) *oauthError {
	f := r.PostForm
	code := f.Get("code")
	if code == "" {
		return errInvalidRequest("code is missing")
	}
	key := secretKey(keyCode, code)
	var rec codeRecord
	raw, err := a.getJSON(key, &rec)
	if errors.Is(err, state.ErrNotFound) || (err == nil && rec.Expires == 0) {
		return errInvalidGrant("the authorization code is not valid or has expired")
	}
	if err != nil {
		a.log.Error("cannot read an authorization code", "err", err)
		return errServer("the gateway could not read the authorization code")
	}
	if rec.Used {
		a.revokeFamily(rec.Family, "authorization code used twice")
		return errInvalidGrant("the authorization code was already used; the tokens issued for it are revoked")
	}
	if a.now().UnixNano() >= rec.Expires {
		return errInvalidGrant("the authorization code has expired (codes are valid for 60 seconds)")
	}
	if rec.ClientID != c.ClientID {
		return errInvalidGrant("the authorization code was issued to another client")
	}
	ru := f.Get("redirect_uri")
	if (rec.RedirectGiven || ru != "") && ru != rec.RedirectURI {
		return errInvalidGrant("redirect_uri does not match the authorization request")
	}
	verifier := f.Get("code_verifier")
	if verifier == "" {
		return errInvalidRequest("code_verifier is missing (PKCE is required)")
	}
	if !isCodeVerifier(verifier) || subtle.ConstantTimeCompare([]byte(s256(verifier)), []byte(rec.CodeChallenge)) != 1 {
		return errInvalidGrant("PKCE verification failed: code_verifier does not match the code_challenge")
	}
	if oe := checkResourceParam(f["resource"], rec.Resource); oe != nil {
		return oe
	}

	// Redeem: mark the code used, naming the family it starts, before
	// issuing anything, so that of two redemptions one wins and the other
	// is a replay.
	now := a.now()
	family := randomToken()[:22]
	used := rec
	used.Used, used.Family = true, family
	usedRaw, _ := json.Marshal(&used)
	if err := a.store.CompareAndSwap(key, raw, usedRaw, codeRecordTTL); err != nil {
		if errors.Is(err, state.ErrConflict) {
			var other codeRecord
			if _, err := a.getJSON(key, &other); err == nil {
				a.revokeFamily(other.Family, "authorization code used twice")
			}
			return errInvalidGrant("the authorization code was already used; the tokens issued for it are revoked")
		}
		a.log.Error("cannot redeem an authorization code", "err", err)
		return errServer("the gateway could not redeem the authorization code")
	}
	fam := familyRecord{ClientID: c.ClientID, User: rec.User, Resource: rec.Resource, Expires: now.Add(a.refTTL).UnixNano()}
	if err := a.putJSON(keyFamily+family, &fam, a.refTTL); err != nil {
		a.log.Error("cannot store a refresh family", "err", err)
		return errServer("the gateway could not record the login")
	}
	a.log.Info("tokens issued", "client_id", c.ClientID, "user", rec.User, "resource", rec.Resource, "grant_type", "authorization_code")
	return a.issueTokens(w, c, family, fam.Expires, rec.Resource, rec.Scope, &rec.grantUser)
}

// refreshGrant redeems a refresh token (OAuth 2.1 section 4.3), rotating
// it.
func (a *AuthServer) refreshGrant(w http.ResponseWriter, r *http.Request, c *clientRecord) *oauthError {
	f := r.PostForm
	tok := f.Get("refresh_token")
	if tok == "" {
		return errInvalidRequest("refresh_token is missing")
	}
	key := secretKey(keyRefresh, tok)
	var rec refreshRecord
	raw, err := a.getJSON(key, &rec)
	if errors.Is(err, state.ErrNotFound) {
		return errInvalidGrant("the refresh token is not valid, has expired or was revoked")
	}
	if err != nil {
		a.log.Error("cannot read a refresh token", "err", err)
		return errServer("the gateway could not read the refresh token")
	}
	if rec.ClientID != c.ClientID {
		return errInvalidGrant("the refresh token was issued to another client")
	}
	if rec.Used {
		a.revokeFamily(rec.Family, "refresh token used twice")
		return errInvalidGrant("the refresh token was already used; every token of this login is revoked, log in again")
	}
	now := a.now()
	var fam familyRecord
	if _, err := a.getJSON(keyFamily+rec.Family, &fam); err != nil || fam.Revoked || now.UnixNano() >= fam.Expires {
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			a.log.Error("cannot read a refresh family", "err", err)
			return errServer("the gateway could not read the login")
		}
		return errInvalidGrant("the login this refresh token belongs to was revoked or has expired; log in again")
	}
	if oe := checkResourceParam(f["resource"], rec.Resource); oe != nil {
		return oe
	}
	for _, s := range strings.Fields(f.Get("scope")) {
		if !slices.Contains(strings.Fields(rec.Scope), s) {
			return newOAuthError(http.StatusBadRequest, "invalid_scope", "scope "+truncate(s, 100)+" was not granted to this login")
		}
	}
	scope := rec.Scope
	if f.Get("scope") != "" {
		scope = strings.Join(strings.Fields(f.Get("scope")), " ")
	}
	used := rec
	used.Used = true
	usedRaw, _ := json.Marshal(&used)
	keep := min(time.Duration(rec.Expires-now.UnixNano()), usedRefreshRetention)
	if err := a.store.CompareAndSwap(key, raw, usedRaw, keep); err != nil {
		if errors.Is(err, state.ErrConflict) {
			a.revokeFamily(rec.Family, "refresh token used twice")
			return errInvalidGrant("the refresh token was already used; every token of this login is revoked, log in again")
		}
		a.log.Error("cannot redeem a refresh token", "err", err)
		return errServer("the gateway could not redeem the refresh token")
	}
	a.log.Info("tokens issued", "client_id", c.ClientID, "user", rec.User, "resource", rec.Resource, "grant_type", "refresh_token")
	return a.issueTokens(w, c, rec.Family, rec.Expires, rec.Resource, scope, &rec.grantUser)
}

// issueTokens answers a successful grant: a sealed access token and, for
// clients that may refresh, a new refresh token of family.
func (a *AuthServer) issueTokens(w http.ResponseWriter, c *clientRecord, family string, familyExpires int64, resource, scope string, user *grantUser) *oauthError {
	now := a.now()
	access, err := a.sealer.seal(&accessToken{
		Expires:  now.Add(a.tokenTTL),
		User:     user.User,
		ClientID: c.ClientID,
		Resource: resource,
		Family:   family,
		Groups:   user.Groups,
	})
	if err != nil {
		a.log.Error("cannot issue an access token", "user", user.User, "err", err)
		return errServer(err.Error())
	}
	resp := struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int64  `json:"expires_in"`
		RefreshToken string `json:"refresh_token,omitempty"`
		Scope        string `json:"scope,omitempty"`
	}{AccessToken: access, TokenType: "Bearer", ExpiresIn: int64(a.tokenTTL / time.Second), Scope: scope}
	if left := time.Duration(familyExpires - now.UnixNano()); left > 0 && mayRefresh(c) {
		rt := randomToken()
		rec := refreshRecord{Family: family, ClientID: c.ClientID, Resource: resource, Scope: scope, grantUser: *user, Expires: familyExpires}
		if err := a.putJSON(secretKey(keyRefresh, rt), &rec, left); err != nil {
			a.log.Error("cannot store a refresh token", "err", err)
			return errServer("the gateway could not record the refresh token")
		}
		resp.RefreshToken = rt
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// mayRefresh reports whether c gets refresh tokens: unless it registered
// grant types without refresh_token.
func mayRefresh(c *clientRecord) bool {
	return len(c.GrantTypes) == 0 || slices.Contains(c.GrantTypes, "refresh_token")
}

// revokeFamily revokes a login's refresh family: its refresh tokens fail
// from now on, and so do its access tokens on this node (and on every node
// that starts after it, until they would have expired anyway).
func (a *AuthServer) revokeFamily(family, reason string) {
	if family == "" {
		return
	}
	now := a.now()
	// A minute past the last access token this family could have issued,
	// so that one issued by a refresh racing the revocation is covered.
	until := now.Add(a.tokenTTL + time.Minute).UnixNano()
	a.markRevoked(family, until)
	b, _ := json.Marshal(until)
	if err := a.store.Put(keyRevokedFamily+family, b, a.tokenTTL+time.Minute); err != nil {
		a.log.Error("cannot store a revocation", "err", err)
	}
	var fam familyRecord
	if _, err := a.getJSON(keyFamily+family, &fam); err == nil {
		fam.Revoked = true
		if left := time.Duration(fam.Expires - now.UnixNano()); left > 0 {
			if err := a.putJSON(keyFamily+family, &fam, left); err != nil {
				a.log.Error("cannot store a revocation", "err", err)
			}
		}
	} else if !errors.Is(err, state.ErrNotFound) {
		a.log.Error("cannot read a refresh family", "err", err)
	}
	a.log.Warn("login revoked", "reason", reason, "client_id", fam.ClientID, "user", fam.User, "resource", fam.Resource)
}

// serveRevoke is token revocation (RFC 7009). Revoking a refresh token or
// an access token revokes its whole family. Unknown tokens, and tokens of
// other clients, are answered 200 and left alone (RFC 7009 section 2.2).
func (a *AuthServer) serveRevoke(w http.ResponseWriter, r *http.Request) {
	c, ok := a.clientRequest(w, r)
	if !ok {
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		writeOAuthError(w, errInvalidRequest("token is missing"))
		return
	}
	var rec refreshRecord
	if _, err := a.getJSON(secretKey(keyRefresh, tok), &rec); err == nil {
		if rec.ClientID == c.ClientID {
			a.revokeFamily(rec.Family, "revoked by the client")
		}
	} else {
		var t accessToken
		if a.sealer.open([]byte(tok), &t) == nil && t.ClientID == c.ClientID {
			a.revokeFamily(t.Family, "revoked by the client")
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
