package proxy

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/mcpgw/mcpgw/identity"
)

// fakeTokens accepts one token for one resource and records what it was
// asked.
type fakeTokens struct {
	mu        sync.Mutex
	token     string
	resource  string
	principal *identity.Principal
	asked     []string // resources
}

func (f *fakeTokens) Verify(token []byte, resource string) (*identity.Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, resource)
	if string(token) != f.token || resource != f.resource {
		return nil, errors.New("bad token")
	}
	return f.principal, nil
}

func TestTokensAndChallenge(t *testing.T) {
	up := startUpstream(t, true)
	tokens := &fakeTokens{token: "oauth-access-token-1", principal: identity.NewPrincipal("dave@example.com", []string{"engineers"}, "oauth")}
	gw := startGatewayWith(t, func(s *Snapshot) {
		s.Tokens = tokens
		s.Applications[0].ResourceMetadata = s.Applications[0].Frontend.Scheme + "://" + s.Applications[0].Frontend.Host + "/.well-known/oauth-protected-resource/mcp"
		tokens.resource = s.Applications[0].Frontend.String()
		s.IdentityHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"path":"`+r.URL.Path+`"}`)
		})
	}, appDef{name: "app", path: "/mcp", upstream: up.url})

	call := func(name string) string {
		return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + name + `","arguments":{}}}`
	}
	t.Run("challenge names the metadata", func(t *testing.T) {
		resp, _ := post(t, gw.base+"/mcp", "", call("list_items"), nil)
		if resp.StatusCode != 401 {
			t.Fatalf("status: got %d, want 401", resp.StatusCode)
		}
		got := resp.Header.Get("WWW-Authenticate")
		want := `Bearer realm="mcpgw", resource_metadata="` + gw.base + `/.well-known/oauth-protected-resource/mcp"`
		if got != want {
			t.Errorf("WWW-Authenticate: got %q, want %q", got, want)
		}
	})
	t.Run("bad token gets invalid_token", func(t *testing.T) {
		resp, _ := post(t, gw.base+"/mcp", "wrong-token-123", call("list_items"), nil)
		if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.HasSuffix(got, `error="invalid_token"`) {
			t.Errorf("got %d %q, want 401 with error=\"invalid_token\"", resp.StatusCode, got)
		}
	})
	t.Run("verified token is the caller", func(t *testing.T) {
		resp, body := post(t, gw.base+"/mcp", tokens.token, call("list_items"), nil)
		if resp.StatusCode != 200 || !strings.Contains(body, `"result"`) {
			t.Fatalf("got %d %s, want 200 with a result", resp.StatusCode, body)
		}
		tokens.mu.Lock()
		asked := tokens.asked[len(tokens.asked)-1]
		tokens.mu.Unlock()
		if asked != tokens.resource {
			t.Errorf("Verify asked for resource %q, want %q", asked, tokens.resource)
		}
		if h := up.lastHeaders().Get("Authorization"); h != "" {
			t.Errorf("upstream saw Authorization %q: the client's token must never pass through", h)
		}
	})
	t.Run("a token for a denied tool is still denied", func(t *testing.T) {
		_, body := post(t, gw.base+"/mcp", tokens.token, call("delete_items"), nil)
		if !strings.Contains(body, `"error"`) {
			t.Errorf("got %s, want an error: dave is an engineer and may not delete", body)
		}
	})
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-authorization-server", "/oauth/register"} {
		t.Run("identity endpoint "+path, func(t *testing.T) {
			resp, err := http.Get(gw.base + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != `{"path":"`+path+`"}` {
				t.Errorf("got %d %s, want the identity handler's answer", resp.StatusCode, body)
			}
		})
	}
	t.Run("identity endpoints only on frontend hosts", func(t *testing.T) {
		req, _ := http.NewRequest("GET", gw.base+"/oauth/register", nil)
		req.Host = "evil.example:80"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("status: got %d, want 404", resp.StatusCode)
		}
	})
	t.Run("other paths stay 404", func(t *testing.T) {
		resp, err := http.Get(gw.base + "/oauthx")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("status: got %d, want 404", resp.StatusCode)
		}
	})
}
