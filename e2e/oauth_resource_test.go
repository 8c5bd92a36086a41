//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestOAuthResourceMode runs mcpgw with identity.mode resource: clients
// bring JWT access tokens (RFC 9068) that the identity provider issued for
// the application's frontend URL (RFC 8707 resource indicator = audience),
// and mcpgw verifies them against the provider's keys. The tokens come from
// a real login at oidc-provider with its public client and PKCE.
func TestOAuthResourceMode(t *testing.T) {
	s := startOAuthStack(t, "resource", "userinfo")

	// providerToken logs user in at the provider for resource and returns
	// the JWT access token.
	providerToken := func(t *testing.T, user, resource string) string {
		t.Helper()
		verifier, challenge := pkce()
		q := url.Values{"client_id": {"e2e-public"}, "response_type": {"code"}, "scope": {"openid mcp"},
			"redirect_uri": {clientRedirect}, "state": {"st"}, "code_challenge": {challenge},
			"code_challenge_method": {"S256"}, "resource": {resource}}
		res := login(t, s.IssuerURL+"/auth?"+q.Encode(), user, clientRedirect, "", nil)
		if !res.OK {
			t.Fatalf("login at the provider as %s: %+v\ntrace: %s", user, res.Error, strings.Join(res.Trace, " → "))
		}
		back, _ := url.Parse(res.URL)
		resp, err := httpClient.PostForm(s.IssuerURL+"/token", url.Values{"grant_type": {"authorization_code"},
			"client_id": {"e2e-public"}, "code": {back.Query().Get("code")}, "redirect_uri": {clientRedirect},
			"code_verifier": {verifier}, "resource": {resource}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &tok) != nil || strings.Count(tok.AccessToken, ".") != 2 {
			t.Fatalf("provider token response: %d %s, want a JWT access token", resp.StatusCode, b)
		}
		return tok.AccessToken
	}

	t.Run("the metadata sends clients to the provider", func(t *testing.T) {
		status, body := httpGet(t, s.ServerURL+"/.well-known/oauth-protected-resource/mcp")
		var prm struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
		}
		if status != 200 || json.Unmarshal(body, &prm) != nil || prm.Resource != s.URL || !slices.Equal(prm.AuthorizationServers, []string{s.IssuerURL}) {
			t.Errorf("got %d %s, want resource %s at [%s]", status, body, s.URL, s.IssuerURL)
		}
		if status, _ := httpGet(t, s.ServerURL+"/.well-known/oauth-authorization-server"); status == http.StatusOK {
			t.Errorf("mcpgw serves authorization server metadata in resource mode")
		}
	})

	bob := providerToken(t, "bob", s.URL)
	alice := providerToken(t, "alice", s.URL)
	aliceOther := providerToken(t, "alice", s.OtherURL)

	t.Run("groups in the provider's token change tools/list", func(t *testing.T) {
		ctx := ctxFor(t)
		aliceTools, err := list(ctx, connectGo(t, s.URL, alice).ClientSession, "tools/list")
		if err != nil {
			t.Fatal(err)
		}
		assertNames(t, aliceTools, []string{"test_simple_text", "test_tool_with_progress"})
		bobTools, err := list(ctx, connectGo(t, s.URL, bob).ClientSession, "tools/list")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(bobTools, "test_sampling") || slices.Contains(bobTools, "test_error_handling") {
			t.Errorf("bob (sre) sees %q; want every test_ tool but test_error_handling", bobTools)
		}
	})

	t.Run("audience", func(t *testing.T) {
		if status, _ := mcpInitialize(t, s.URL, aliceOther); status != http.StatusUnauthorized {
			t.Errorf("a token for %s at %s: got %d, want 401", s.OtherURL, s.URL, status)
		}
		if status, _ := mcpInitialize(t, s.OtherURL, aliceOther); status != http.StatusOK {
			t.Errorf("a token for %s at itself: got %d, want 200", s.OtherURL, status)
		}
		parts := strings.Split(alice, ".")
		forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
		if status, _ := mcpInitialize(t, s.URL, forged); status != http.StatusUnauthorized {
			t.Errorf("a token with a bad signature: got %d, want 401", status)
		}
	})

	t.Run("the upstream never sees the provider's token", func(t *testing.T) {
		assertNoCredentialsUpstream(t, &stack{Upstream: s.Upstream})
	})
}
