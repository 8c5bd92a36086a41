package proxy

import (
	"net/http"
	"net/url"
	"time"

	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/policycache"
)

// Snapshot is everything the data plane needs from one configuration load.
// The appliance builds it, the Server compiles it into routes and upstream
// clients, and a reload swaps the compiled result atomically. A Snapshot is
// not modified after it is handed to Server.Update.
type Snapshot struct {
	Applications []Application
	Policy       *policycache.Policy
	DevUsers     *identity.DevUsers
	// AllowDevUsersRemote accepts dev-user tokens on non-loopback listeners
	// (identity.allow_dev_users).
	AllowDevUsersRemote bool
	// Tokens verifies bearer tokens that are not dev-user tokens: the
	// authorization server's access tokens (identity.mode broker) or the
	// IdP's JWTs (resource). Nil: only dev users authenticate.
	Tokens TokenVerifier
	// IdentityHandler serves the OAuth endpoints and the metadata documents
	// (/.well-known/oauth-protected-resource..., /.well-known/
	// oauth-authorization-server, /oauth/...) on the frontend listener, for
	// every Host that names an application. Nil: those paths are 404.
	IdentityHandler http.Handler

	// MaxBody bounds a request body and each upstream message.
	MaxBody int
	// UpstreamTimeout bounds the wait for upstream response headers and the
	// silence between reads of an upstream response body.
	UpstreamTimeout time.Duration
	// KeepAlive is the interval of ":" comments on idle SSE streams.
	KeepAlive time.Duration
	// Audit says what audit records hold (with Options.Audit set).
	Audit AuditPolicy
}

// Application is one fronted MCP server.
type Application struct {
	Name string
	// Frontend is where clients connect; its host and path select the app.
	Frontend *url.URL
	// Upstream is the MCP server's endpoint.
	Upstream *url.URL
	// Headers are added to every upstream request (credentials included);
	// values are secrets and are never logged.
	Headers []Header
	// AuthNone serves the application without login; its rules name the
	// anonymous subject.
	AuthNone bool
	// AllowedOrigins are browser origins accepted besides the frontend's.
	AllowedOrigins []string
	// VisibilityAll lists everything and denies on use.
	VisibilityAll bool
	// ResourceMetadata is the URL of the application's protected resource
	// metadata (RFC 9728), sent in 401 challenges as resource_metadata
	// (MCP-REQUIREMENTS.md 4); "" leaves it out.
	ResourceMetadata string
}

// TokenVerifier checks a bearer token for an application. resource is the
// application's frontend URL, the audience the token must be bound to.
// Verify must be safe for concurrent use and cheap after a token's first
// use (a cache hit); the Principal it returns is shared and immutable.
type TokenVerifier interface {
	Verify(token []byte, resource string) (*identity.Principal, error)
}

// Header is one configured upstream header.
type Header struct{ Name, Value string }
