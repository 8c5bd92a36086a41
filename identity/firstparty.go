package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The gateway's own web pages (the approval page of just-in-time access)
// log users in as an OAuth client of this authorization server, as any
// client would: authorization code with PKCE S256 and state, through the
// same brokered login at the identity provider, for an application's
// resource. The client is built in, not registered: its client_id is
// FirstPartyClientID, its redirect URIs are fixed by the configuration,
// it is public (the pages redeem codes in-process, so there is no secret
// to keep), it gets no refresh tokens, and the consent page is skipped
// for it: the user is signing in to the gateway itself, at an address the
// operator configured, and the code is only redeemed together with the
// login cookie the page set (its state and PKCE verifier).

// FirstPartyClientID is the client_id of the gateway's own pages. Dynamic
// registrations get random 22-character ids and client ID metadata
// documents https URLs, so neither can take it.
const FirstPartyClientID = "mcpgw-approvals"

// FirstPartyClient is the gateway's own client of an AuthServer. It is
// safe for concurrent use.
type FirstPartyClient struct {
	as *AuthServer
}

// FirstPartyClient stores (replacing any earlier one) the built-in client
// with redirectURIs, each an absolute http(s) URL without fragment, and
// returns it. Call it again when the redirect URIs change (a reload).
func (a *AuthServer) FirstPartyClient(redirectURIs []string) (*FirstPartyClient, error) {
	if len(redirectURIs) == 0 {
		return nil, errors.New("identity: the gateway's own client needs a redirect URI")
	}
	for _, r := range redirectURIs {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("identity: the gateway's own redirect URI %q is not an absolute http(s) URL", r)
		}
	}
	rec := clientRecord{
		ClientMetadata: ClientMetadata{
			ClientID:                FirstPartyClientID,
			ClientName:              "mcpgw",
			RedirectURIs:            slices.Clone(redirectURIs),
			GrantTypes:              []string{"authorization_code"},
			ResponseTypes:           []string{"code"},
			TokenEndpointAuthMethod: authNone,
		},
		IssuedAt: a.now().Unix(),
	}
	if err := a.putJSON(keyClient+FirstPartyClientID, &rec, 0); err != nil {
		return nil, fmt.Errorf("identity: cannot store the gateway's own client: %w", err)
	}
	return &FirstPartyClient{as: a}, nil
}

// isFirstParty reports whether clientID is the built-in client, whose
// logins need no consent page.
func isFirstParty(clientID string) bool { return clientID == FirstPartyClientID }

// Issuer is the authorization server's issuer: the iss an authorization
// response must carry (RFC 9207).
func (c *FirstPartyClient) Issuer() string { return c.as.issuer }

// AuthCodeURL is the authorization request that sends the browser to log
// in for resource (an application's frontend URL) and come back to
// redirectURI with a code and state. challenge is the S256 challenge of
// the caller's PKCE verifier.
func (c *FirstPartyClient) AuthCodeURL(redirectURI, resource, state, challenge string) string {
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {FirstPartyClientID},
		"redirect_uri":          {redirectURI},
		"state":                 {state},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
		"resource":              {resource},
	}
	return c.as.issuer + "/oauth/authorize?" + q.Encode()
}

// S256Challenge is the PKCE S256 code challenge of verifier (RFC 7636
// section 4.2).
func S256Challenge(verifier string) string { return s256(verifier) }

// Exchange redeems code at the token endpoint, in-process (the gateway's
// own address may not be reachable from itself), with every check a
// client's redemption gets: single use, PKCE, redirect URI and resource.
// It returns the access token and when it expires. Errors carry the
// endpoint's error code and description, never the code or token.
func (c *FirstPartyClient) Exchange(ctx context.Context, code, verifier, redirectURI, resource string) (token string, expires time.Time, err error) {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"client_id":     {FirstPartyClientID},
		"code":          {code},
		"code_verifier": {verifier},
		"redirect_uri":  {redirectURI},
		"resource":      {resource},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.as.issuer+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("identity: cannot redeem the code: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var w memoryResponse
	start := c.as.now()
	c.as.serveToken(&w, req)
	var resp struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(w.body.Bytes(), &resp); err != nil {
		return "", time.Time{}, fmt.Errorf("identity: cannot read the token answer (status %d)", w.status)
	}
	if w.status != http.StatusOK || resp.AccessToken == "" || resp.ExpiresIn <= 0 {
		return "", time.Time{}, fmt.Errorf("identity: the code was refused: %s: %s", resp.Error, resp.Description)
	}
	return resp.AccessToken, start.Add(time.Duration(resp.ExpiresIn) * time.Second), nil
}

// memoryResponse is the http.ResponseWriter of an in-process call.
type memoryResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (m *memoryResponse) Header() http.Header {
	if m.header == nil {
		m.header = make(http.Header)
	}
	return m.header
}

func (m *memoryResponse) WriteHeader(status int) {
	if m.status == 0 {
		m.status = status
	}
}

func (m *memoryResponse) Write(b []byte) (int, error) {
	m.WriteHeader(http.StatusOK)
	return m.body.Write(b)
}
