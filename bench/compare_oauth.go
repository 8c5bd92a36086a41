//go:build unix

package bench

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// The comparison can run mcpgw as the OAuth authorization server of its
// application (identity mode broker, the default), in front of an OpenID
// provider, so that the s1o scenario measures calls authenticated by an
// access token mcpgw issued: what real clients send. The runner logs in as
// an MCP client would (dynamic registration, authorization code with PKCE,
// the provider's login, the consent page, the token endpoint) and hands
// the access token to the load.

// IdentityProvider is the OpenID provider of an OAuth comparison, one that
// logs its next user in without a form (make bench uses mockoidc, in
// bench/cmd/compare, so that the mcpgw-bench binary does not carry it).
type IdentityProvider interface {
	// Issuer is the provider's issuer URL.
	Issuer() string
	// EnvFile returns the lines of a pingone.env for mcpgw's client at
	// the provider (OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_*_URL, ...).
	EnvFile() string
	// NextUser makes the next login at the provider log in this user.
	NextUser(email string, groups []string)
	Close() error
}

// writeEnvFile writes the pingone.env that points mcpgw at p.
func writeEnvFile(p IdentityProvider, dir string) (string, error) {
	path := filepath.Join(dir, "pingone.env")
	if err := os.WriteFile(path, []byte(p.EnvFile()), 0o600); err != nil {
		return "", fmt.Errorf("bench: cannot write the env file: %w", err)
	}
	return path, nil
}

// oauthLogin logs a user in at p through mcpgw's authorization server at
// base (the gateway's server URL) for resource, and returns the access
// token.
func oauthLogin(ctx context.Context, p IdentityProvider, base, resource, email string, groups []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p.NextUser(email, groups)

	// The redirect URI is never connected to: the login stops at the
	// redirect that carries the code.
	const redirect = "http://127.0.0.1:9/callback"
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}

	var reg struct {
		ClientID string `json:"client_id"`
	}
	regBody := `{"client_name":"mcpgw-bench","redirect_uris":["` + redirect + `"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`
	if err := postJSON(ctx, client, base+"/oauth/register", regBody, &reg); err != nil {
		return "", fmt.Errorf("bench: dynamic registration: %w", err)
	}

	verifier := randomToken("v") + randomToken("v")
	sum := sha256.Sum256([]byte(verifier))
	state := randomToken("s")
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {reg.ClientID},
		"redirect_uri":          {redirect},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
		"state":                 {state},
		"resource":              {resource},
	}
	next := base + "/oauth/authorize?" + q.Encode()
	var code string
	for hops := 0; code == "" && hops < 10; hops++ {
		resp, body, err := get(ctx, client, next)
		if err != nil {
			return "", fmt.Errorf("bench: login: %w", err)
		}
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				return "", fmt.Errorf("bench: login: redirect without a location: %w", err)
			}
			if strings.HasPrefix(loc.String(), redirect) {
				if loc.Query().Get("state") != state {
					return "", errors.New("bench: login: the state came back changed")
				}
				if e := loc.Query().Get("error"); e != "" {
					return "", fmt.Errorf("bench: login refused: %s", e)
				}
				code = loc.Query().Get("code")
				continue
			}
			next = loc.String()
		case resp.StatusCode == http.StatusOK && strings.Contains(body, `action="/oauth/consent"`):
			form := url.Values{"action": {"approve"}}
			for _, name := range []string{"login", "csrf"} {
				m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(body)
				if m == nil {
					return "", fmt.Errorf("bench: the consent page has no %s field", name)
				}
				form.Set(name, html.UnescapeString(m[1]))
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth/consent", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", base)
			resp, err := client.Do(req)
			if err != nil {
				return "", fmt.Errorf("bench: consent: %w", err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			loc, err := resp.Location()
			if err != nil {
				return "", fmt.Errorf("bench: consent answered %d without a redirect", resp.StatusCode)
			}
			next = loc.String()
			if strings.HasPrefix(next, redirect) {
				code = loc.Query().Get("code")
			}
		default:
			return "", fmt.Errorf("bench: login: %s answered %d: %.300s", next, resp.StatusCode, body)
		}
	}
	if code == "" {
		return "", errors.New("bench: login: no authorization code after 10 redirects")
	}

	var tok struct {
		AccessToken string `json:"access_token"`
	}
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirect},
		"client_id":     {reg.ClientID},
		"code_verifier": {verifier},
		"resource":      {resource},
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := doJSON(client, req, &tok); err != nil {
		return "", fmt.Errorf("bench: token request: %w", err)
	}
	if tok.AccessToken == "" {
		return "", errors.New("bench: the token endpoint issued no access token")
	}
	return tok.AccessToken, nil
}

func get(ctx context.Context, c *http.Client, u string) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(b), err
}

func postJSON(ctx context.Context, c *http.Client, u, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return doJSON(c, req, out)
}

func doJSON(c *http.Client, req *http.Request, out any) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}
