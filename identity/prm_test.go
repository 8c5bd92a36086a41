package identity

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResourceMetadataURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://gw.example.com/mcp", "https://gw.example.com/.well-known/oauth-protected-resource/mcp"},
		{"https://gw.example.com/mcp/", "https://gw.example.com/.well-known/oauth-protected-resource/mcp"},
		{"https://gw.example.com", "https://gw.example.com/.well-known/oauth-protected-resource"},
		{"https://gw.example.com/", "https://gw.example.com/.well-known/oauth-protected-resource"},
		{"http://127.0.0.1:8080/a/b", "http://127.0.0.1:8080/.well-known/oauth-protected-resource/a/b"},
		{"HTTPS://gw.example.com/mcp", "https://gw.example.com/.well-known/oauth-protected-resource/mcp"},
		{"not a url", ""},
	} {
		if got := ResourceMetadataURL(tc.in); got != tc.want {
			t.Errorf("ResourceMetadataURL(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestProtectedResourceHandler(t *testing.T) {
	apps := []OAuthApp{
		{Name: "a", Resource: "https://gw.example.com/mcp", Scopes: []string{"mcp"}},
		{Name: "b", Resource: "https://gw.example.com/other"},
		{Name: "c", Resource: "https://tools.example.com/mcp"},
	}
	h := ProtectedResourceHandler(apps, []string{"https://gw.example.com"})
	for _, tc := range []struct {
		name, host, path string
		status           int
		resource         string
	}{
		{"path-inserted", "gw.example.com", "/.well-known/oauth-protected-resource/mcp", 200, "https://gw.example.com/mcp"},
		{"path-inserted other host", "tools.example.com", "/.well-known/oauth-protected-resource/mcp", 200, "https://tools.example.com/mcp"},
		{"path-inserted with query", "gw.example.com", "/.well-known/oauth-protected-resource/other?x=1", 200, "https://gw.example.com/other"},
		{"root picks the host's first", "tools.example.com:443", "/.well-known/oauth-protected-resource", 200, "https://tools.example.com/mcp"},
		{"root on gw", "gw.example.com", "/.well-known/oauth-protected-resource", 200, "https://gw.example.com/mcp"},
		{"root on an unknown host", "elsewhere.example.com", "/.well-known/oauth-protected-resource", 200, "https://gw.example.com/mcp"},
		{"unknown path", "gw.example.com", "/.well-known/oauth-protected-resource/nope", 404, ""},
		{"prefix only", "gw.example.com", "/.well-known/oauth-protected-resourcex", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "https://"+tc.host+tc.path, nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tc.status)
			}
			if tc.status != 200 {
				return
			}
			var doc struct {
				Resource             string   `json:"resource"`
				AuthorizationServers []string `json:"authorization_servers"`
				Bearer               []string `json:"bearer_methods_supported"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Resource != tc.resource || len(doc.AuthorizationServers) != 1 || len(doc.Bearer) != 1 {
				t.Errorf("got %+v, want resource %s with one authorization server", doc, tc.resource)
			}
			if w.Header().Get("Access-Control-Allow-Origin") != "*" {
				t.Error("no CORS header")
			}
		})
	}
}

// TestProtectedResourceHandlerBehindTLSTerminator: a request that does
// not show it came over TLS (fasthttpadaptor, a terminating proxy) still
// gets its host's application at the root location.
func TestProtectedResourceHandlerBehindTLSTerminator(t *testing.T) {
	h := ProtectedResourceHandler([]OAuthApp{
		{Name: "a", Resource: "https://gw.example.com/mcp"},
		{Name: "c", Resource: "https://tools.example.com/mcp"},
	}, []string{"https://gw.example.com"})
	r := httptest.NewRequest(http.MethodGet, "http://tools.example.com/.well-known/oauth-protected-resource", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var doc struct{ Resource string }
	json.Unmarshal(w.Body.Bytes(), &doc)
	if doc.Resource != "https://tools.example.com/mcp" {
		t.Errorf("got %d %s, want the tools.example.com application", w.Code, w.Body)
	}
}

func TestAuthServerMetadata(t *testing.T) {
	e := newASEnv(t)
	w := e.get("/.well-known/oauth-authorization-server")
	if w.Code != 200 {
		t.Fatalf("got %d", w.Code)
	}
	var doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"issuer":                                         asIssuer,
		"authorization_endpoint":                         asIssuer + "/oauth/authorize",
		"token_endpoint":                                 asIssuer + "/oauth/token",
		"registration_endpoint":                          asIssuer + "/oauth/register",
		"revocation_endpoint":                            asIssuer + "/oauth/revoke",
		"scopes_supported":                               []any{"mcp"},
		"response_types_supported":                       []any{"code"},
		"response_modes_supported":                       []any{"query"},
		"grant_types_supported":                          []any{"authorization_code", "refresh_token"},
		"token_endpoint_auth_methods_supported":          []any{"none", "client_secret_post", "client_secret_basic"},
		"revocation_endpoint_auth_methods_supported":     []any{"none", "client_secret_post", "client_secret_basic"},
		"code_challenge_methods_supported":               []any{"S256"},
		"authorization_response_iss_parameter_supported": true,
		"client_id_metadata_document_supported":          true,
	}
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	// The protected resource metadata is served by the same handler.
	if w := e.get("/.well-known/oauth-protected-resource/mcp"); w.Code != 200 {
		t.Errorf("PRM through Handler: got %d", w.Code)
	}
	if w := e.get("/.well-known/openid-configuration"); w.Code != 404 {
		t.Errorf("openid-configuration: got %d, want 404", w.Code)
	}
}
