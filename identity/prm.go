package identity

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// prmPath is the well-known path of protected resource metadata (RFC 9728
// section 3).
const prmPath = "/.well-known/oauth-protected-resource"

// ResourceMetadataURL returns the URL of the protected resource metadata of
// resource in its path-inserted form (RFC 9728 section 3.1): for
// https://gw.example.com/mcp, https://gw.example.com/.well-known/
// oauth-protected-resource/mcp. It is what 401 challenges name as
// resource_metadata (MCP-REQUIREMENTS.md 4.1.3). An unparsable resource
// yields "".
func ResourceMetadataURL(resource string) string {
	u, err := url.Parse(resource)
	if err != nil || u.Host == "" {
		return ""
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	return strings.ToLower(u.Scheme) + "://" + u.Host + prmPath + path
}

// prmEntry is one application's metadata document, encoded once.
type prmEntry struct {
	host string // lower-case host:port of the resource, default port explicit
	name string // lower-case host name of the resource, without port
	path string // resource path without trailing slash ("" for the origin)
	doc  []byte
}

// ProtectedResourceHandler serves the protected resource metadata (RFC
// 9728) of apps, naming authorizationServers (the gateway's own issuer in
// broker mode, the IdP's issuer in resource mode), at both locations
// clients try (MCP-REQUIREMENTS.md 4.1.3):
//
//   - path-inserted, /.well-known/oauth-protected-resource/<resource path>:
//     the application with that path, preferring the one on the request's
//     Host;
//   - root, /.well-known/oauth-protected-resource: the first application on
//     the request's Host, or the first application when none is on it.
//
// A query string is ignored (the TypeScript SDK copies the server URL's
// query onto the metadata URL). Documents carry resource, the
// authorization servers, scopes_supported (when the application has
// scopes), bearer_methods_supported ["header"] and resource_name. The
// handler is safe for concurrent use.
func ProtectedResourceHandler(apps []OAuthApp, authorizationServers []string) http.Handler {
	entries := make([]prmEntry, 0, len(apps))
	for _, app := range apps {
		u, err := url.Parse(app.Resource)
		if err != nil || u.Host == "" {
			continue
		}
		doc, err := json.MarshalIndent(struct {
			Resource               string   `json:"resource"`
			AuthorizationServers   []string `json:"authorization_servers"`
			ScopesSupported        []string `json:"scopes_supported,omitempty"`
			BearerMethodsSupported []string `json:"bearer_methods_supported"`
			ResourceName           string   `json:"resource_name,omitempty"`
		}{app.Resource, authorizationServers, app.Scopes, []string{"header"}, app.Name}, "", "  ")
		if err != nil {
			panic("BUG: cannot encode protected resource metadata: " + err.Error())
		}
		entries = append(entries, prmEntry{
			host: hostKey(u.Host, u.Scheme == "https"),
			name: strings.ToLower(u.Hostname()),
			path: strings.TrimSuffix(u.EscapedPath(), "/"),
			doc:  doc,
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodOptions:
			w.Header().Set("Access-Control-Allow-Methods", "GET, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "MCP-Protocol-Version")
			w.WriteHeader(http.StatusNoContent)
			return
		default:
			methodNotAllowed(w, "GET, HEAD, OPTIONS")
			return
		}
		rest, ok := strings.CutPrefix(r.URL.EscapedPath(), prmPath)
		if !ok || (rest != "" && rest[0] != '/') {
			http.NotFound(w, r)
			return
		}
		rest = strings.TrimSuffix(rest, "/")
		// Prefer the application on the request's host and port, then on
		// its host name (behind a TLS terminator or fasthttpadaptor the
		// request may not say it came over TLS), then any.
		host := hostKey(r.Host, r.TLS != nil)
		name := strings.ToLower(r.Host)
		if h, _, err := net.SplitHostPort(name); err == nil {
			name = h
		}
		name = strings.Trim(name, "[]")
		var found *prmEntry
		best := 0
		for i := range entries {
			e := &entries[i]
			if rest != "" && e.path != rest {
				continue
			}
			score := 1
			switch {
			case e.host == host:
				score = 3
			case strings.Trim(e.name, "[]") == name:
				score = 2
			}
			if score > best {
				found, best = e, score
			}
		}
		if found == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(found.doc)
	})
}

// hostKey lower-cases host and makes the default port explicit, so that
// Host headers with and without it compare equal.
func hostKey(host string, tls bool) string {
	host = strings.ToLower(host)
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if tls {
		return host + ":443"
	}
	return host + ":80"
}
