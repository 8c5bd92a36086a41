package identity

import "context"

// The authorization server (oauth.go) depends on two pieces implemented
// elsewhere in this package: the OIDC login at the upstream identity
// provider (upstream.go) and the fetcher of client ID metadata documents
// (cimd.go). They are interfaces so that the server's tests can stand a
// double in for the provider.

// UpstreamLogin is the authorization-code login at the upstream identity
// provider (PingOne or any OIDC provider) that the authorization server
// brokers. Implementations must be safe for concurrent use.
type UpstreamLogin interface {
	// AuthCodeURL returns the provider's authorization URL to send the
	// user's browser to, carrying state and nonce as given and PKCE
	// (code_challenge, method S256) toward the provider too. The provider
	// returns the browser to the gateway's /oauth/callback.
	AuthCodeURL(state, nonce, codeChallenge string) string
	// Exchange redeems the provider's code with codeVerifier, verifies the
	// ID token (signature, issuer, audience, expiry, nonce) and reads the
	// user's groups. Its error says what went wrong in words fit for the
	// login error page (no tokens or secrets in it).
	Exchange(ctx context.Context, code, codeVerifier, nonce string) (*UpstreamUser, error)
}

// UpstreamUser is the user an upstream login vouched for.
type UpstreamUser struct {
	// Subject is the provider's stable subject identifier (sub).
	Subject string
	// User is the user name policies name (an e-mail address or preferred
	// user name, per the identity configuration).
	User string
	// Groups are the user's groups as the provider listed them.
	Groups []string
}

// ClientMetadataFetcher fetches client ID metadata documents: OAuth client
// metadata published at an https URL that is itself the client_id
// (MCP-REQUIREMENTS.md 4.3.2). Implementations check that the document's
// client_id equals the URL, guard against SSRF, bound size and time, and
// cache (4.6.3); they must be safe for concurrent use.
type ClientMetadataFetcher interface {
	Fetch(ctx context.Context, clientID string) (*ClientMetadata, error)
}

// ClientMetadata is the part of a client's metadata (RFC 7591 section 2)
// the authorization server uses, from a metadata document or a dynamic
// registration.
type ClientMetadata struct {
	ClientID   string
	ClientName string
	ClientURI  string
	// RedirectURIs are matched exactly against an authorization request's
	// redirect_uri.
	RedirectURIs  []string
	GrantTypes    []string
	ResponseTypes []string
	// TokenEndpointAuthMethod is "none" for the public clients the server
	// supports.
	TokenEndpointAuthMethod string
}
