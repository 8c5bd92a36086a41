package identity

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/state"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// TestGoSDKClient logs in with the official Go SDK's OAuth client
// (auth.AuthorizationCodeHandler): from a 401 on the MCP endpoint it
// discovers the protected resource metadata and the authorization server
// metadata (checking the issuer and PKCE support), registers dynamically,
// authorizes with PKCE and resource, checks iss (RFC 9207) and exchanges
// the code. Only the browser is simulated: it follows the redirects,
// stands in for the provider's login, and approves the consent page.
func TestGoSDKClient(t *testing.T) {
	var a *AuthServer
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resource := srv.URL + "/mcp"
	mux.HandleFunc("/mcp", func(w http.ResponseWriter, r *http.Request) {
		tok, ok := BearerToken([]byte(r.Header.Get("Authorization")))
		if ok {
			if p, err := a.Verify(tok, resource); err == nil {
				io.WriteString(w, p.User)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+ResourceMetadataURL(resource)+`", scope="mcp"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	idp := &asFakeIdP{
		user:       &UpstreamUser{Subject: "sub-1", User: "alice@example.com", Groups: []string{"engineers"}},
		challenges: map[string]string{},
	}
	var err error
	a, err = NewAuthServer(AuthServerConfig{
		Issuer:   srv.URL,
		Apps:     []OAuthApp{{Name: "app", Resource: resource, Scopes: []string{"mcp"}}},
		Store:    state.NewMemory(),
		Upstream: idp,
		Key:      make([]byte, 32),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	mux.Handle("/", a.Handler())

	const redirect = "http://127.0.0.1:1/callback" // never dialled: the browser stops at it
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	fetch := func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
		next := args.URL
		var resp *http.Response
		for range 10 {
			u, err := url.Parse(next)
			if err != nil {
				return nil, err
			}
			switch {
			case strings.HasPrefix(next, redirect):
				q := u.Query()
				if e := q.Get("error"); e != "" {
					return nil, errors.New("authorization error: " + e)
				}
				return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
			case u.Host == "idp.example.com":
				// The provider logs the user in and returns to the callback.
				next = srv.URL + "/oauth/callback?" + url.Values{"state": {u.Query().Get("state")}, "code": {"idp-code"}}.Encode()
				continue
			}
			resp, err = browser.Get(next)
			if err != nil {
				return nil, err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				// The consent page: approve.
				form := url.Values{"action": {"approve"}}
				for _, m := range hiddenInput.FindAllStringSubmatch(string(body), -1) {
					form.Set(m[1], m[2])
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/oauth/consent", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Origin", srv.URL)
				if resp, err = browser.Do(req); err != nil {
					return nil, err
				}
				resp.Body.Close()
			}
			if resp.StatusCode/100 != 3 {
				return nil, errors.New("browser stopped at " + resp.Status + ": " + string(body))
			}
			next = resp.Header.Get("Location")
		}
		return nil, errors.New("too many redirects")
	}
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs:            []string{redirect},
			ClientName:              "go-sdk test client",
			TokenEndpointAuthMethod: "none",
			GrantTypes:              []string{"authorization_code", "refresh_token"},
		}},
		RedirectURL:              redirect,
		AuthorizationCodeFetcher: fetch,
		RequestRefreshToken:      true,
	})
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, resource, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("MCP endpoint without a token: got %d, want 401", resp.StatusCode)
	}
	if err := h.Authorize(ctx, req, resp); err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	ts, err := h.TokenSource(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" {
		t.Error("no refresh token")
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, resource, nil)
	tok.SetAuthHeader(req)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "alice@example.com" {
		t.Errorf("MCP endpoint with the token: got %d %q, want 200 alice@example.com", resp.StatusCode, body)
	}
}
