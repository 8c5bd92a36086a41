package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/state"
)

func TestDeriveTokenKey(t *testing.T) {
	session := bytes.Repeat([]byte{7}, 32)
	k1, err := deriveTokenKey(session)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := deriveTokenKey(session)
	other, _ := deriveTokenKey(bytes.Repeat([]byte{8}, 32))
	switch {
	case len(k1) != 32:
		t.Errorf("token key: got %d bytes, want 32", len(k1))
	case bytes.Equal(k1, session):
		t.Errorf("the token key is the session key")
	case !bytes.Equal(k1, k2):
		t.Errorf("the token key is not deterministic: restarts would void every token")
	case bytes.Equal(k1, other):
		t.Errorf("different session keys give the same token key")
	}
}

func TestResourceIssuer(t *testing.T) {
	for _, c := range []struct{ issuer, auth, want string }{
		{"https://idp.example/as", "https://auth.pingone.com/env/as/authorize", "https://idp.example/as"},
		{"", "https://auth.pingone.com/env-1/as/authorize", "https://auth.pingone.com/env-1/as"},
		{"", "https://idp.example/authorize?x=1", "https://idp.example"},
		{"", "", ""},
	} {
		id := &IdentityConfig{Issuer: c.issuer, Env: map[string]Secret{}}
		if c.auth != "" {
			id.Env["OIDC_AUTH_URL"] = NewSecret(c.auth)
		}
		if got := resourceIssuer(id); got != c.want {
			t.Errorf("issuer %q, OIDC_AUTH_URL %q: got %q, want %q", c.issuer, c.auth, got, c.want)
		}
	}
}

// attachConfig loads src (with env file contents envSrc, if not empty) and
// attaches identity to its compiled snapshot.
func attachConfig(t *testing.T, src, envSrc string) (*compiled, *identityRuntime) {
	t.Helper()
	dir := t.TempDir()
	if envSrc != "" {
		src = "identity:\n  env_file: " + writeFile(t, dir, "pingone.env", envSrc) + "\n" + src
	}
	cfg, err := testLoader(t).parse(writeFile(t, dir, "mcpgw.yaml", src), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	comp, err := compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	store := state.NewMemory()
	rt, err := newIdentityRuntime(bytes.Repeat([]byte{1}, 32), store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.attach(context.Background(), comp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { comp.close(); store.Close() })
	return comp, rt
}

const attachApps = `applications:
  - name: app
    frontend_url: http://127.0.0.1:8080/mcp
    upstream_url: http://127.0.0.1:9000/mcp
    rules: [{name: r, subjects: {groups: [g]}, tools: [".*"]}]
  - name: open
    frontend_url: http://127.0.0.1:8080/open
    upstream_url: http://127.0.0.1:9000/mcp
    auth: none
    rules: [{name: r, subjects: {anonymous: true}, tools: [".*"]}]
`

func TestAttachIdentity(t *testing.T) {
	t.Run("dev users only: nothing attached", func(t *testing.T) {
		comp, rt := attachConfig(t, "identity:\n  env_file: \"\"\n  dev_users: [{token: alice-token, user: alice}]\n"+attachApps, "")
		if rd := rt.readiness(context.Background(), comp); !rd.Ready || rd.Checks["identity_provider"] != "" {
			t.Errorf("readiness: got %+v, want ready and no identity provider check", rd)
		}
		if comp.snap.Tokens != nil || comp.snap.IdentityHandler != nil || comp.snap.Applications[0].ResourceMetadata != "" {
			t.Errorf("got tokens %v, handler %v, metadata %q; want none without OIDC",
				comp.snap.Tokens, comp.snap.IdentityHandler, comp.snap.Applications[0].ResourceMetadata)
		}
	})

	// The provider is not reachable: mcpgw still starts (logins fail
	// until it is), and everything clients discover is in place.
	t.Run("broker", func(t *testing.T) {
		comp, rt := attachConfig(t, attachApps, "OIDC_CLIENT_ID=gw\nOIDC_CLIENT_SECRET=s3cret-value\n"+
			"OIDC_AUTH_URL=http://127.0.0.1:1/as/authorize\nOIDC_TOKEN_URL=http://127.0.0.1:1/as/token\n"+
			"SERVER_URL=http://127.0.0.1:8080\n")
		checkAttached(t, comp, "http://127.0.0.1:8080")
		// A provider that is down does not make the gateway unready.
		if rd := rt.readiness(context.Background(), comp); !rd.Ready || !strings.HasPrefix(rd.Checks["identity_provider"], "not discovered") {
			t.Errorf("readiness with the provider down: got %+v, want ready, provider not discovered", rd)
		}
		// mcpgw is the authorization server: its metadata is served.
		rec := httptest.NewRecorder()
		comp.snap.IdentityHandler.ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1:8080/.well-known/oauth-authorization-server", nil))
		var md struct {
			Issuer string `json:"issuer"`
		}
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &md) != nil || md.Issuer != "http://127.0.0.1:8080" {
			t.Errorf("authorization server metadata: got %d %s, want issuer http://127.0.0.1:8080", rec.Code, rec.Body)
		}
	})

	t.Run("resource", func(t *testing.T) {
		comp, _ := attachConfig(t, "identity: {mode: resource, issuer: \"http://127.0.0.1:1/as\"}\n"+attachApps, "")
		checkAttached(t, comp, "http://127.0.0.1:1/as")
	})
}

// checkAttached checks what attach set for attachApps: a verifier, the
// resource metadata of the oauth application (pointing at authServer) and
// none for the auth: none one.
func checkAttached(t *testing.T, comp *compiled, authServer string) {
	t.Helper()
	snap := comp.snap
	if snap.Tokens == nil || snap.IdentityHandler == nil {
		t.Fatalf("got tokens %v, handler %v; want both", snap.Tokens, snap.IdentityHandler)
	}
	app, open := snap.Applications[0], snap.Applications[1]
	if open.ResourceMetadata != "" {
		t.Errorf("auth: none application has resource metadata %q", open.ResourceMetadata)
	}
	if !strings.HasPrefix(app.ResourceMetadata, "http://127.0.0.1:8080/.well-known/oauth-protected-resource") {
		t.Fatalf("resource metadata URL: got %q", app.ResourceMetadata)
	}
	rec := httptest.NewRecorder()
	snap.IdentityHandler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, app.ResourceMetadata, nil))
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &prm) != nil {
		t.Fatalf("GET %s: got %d %s", app.ResourceMetadata, rec.Code, rec.Body)
	}
	if prm.Resource != "http://127.0.0.1:8080/mcp" || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != authServer {
		t.Errorf("protected resource metadata: got %+v, want resource http://127.0.0.1:8080/mcp at %s", prm, authServer)
	}
	if _, err := snap.Tokens.Verify([]byte("not-a-token"), "http://127.0.0.1:8080/mcp"); err == nil {
		t.Errorf("a garbage token verified")
	}
}
