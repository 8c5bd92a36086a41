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
	// ApprovalsHandler serves the approval page of just-in-time access
	// (/approvals and /approvals/..., the approval_url of refusals) on the
	// frontend listener, for every Host that names an application. Nil:
	// those paths are 404.
	ApprovalsHandler http.Handler

	// MaxBody bounds a request body and each upstream message.
	MaxBody int
	// UpstreamTimeout bounds the wait for upstream response headers and the
	// silence between reads of an upstream response body.
	UpstreamTimeout time.Duration
	// KeepAlive is the interval of ":" comments on idle SSE streams.
	KeepAlive time.Duration
	// Audit says what audit records hold (with Options.Audit set).
	Audit AuditPolicy
	// Approvals holds the just-in-time grants of approval-only tools and
	// takes the requests for them (package access). Nil: approval-only
	// calls are refused with codeApprovalRequired and no request.
	Approvals Approvals
}

// Approvals is what the proxy asks of just-in-time access (DESIGN.md
// "Policy semantics"; package access implements it, adapted by the
// appliance). Both methods must be safe for concurrent use.
type Approvals interface {
	// Check reports whether user holds an unexpired grant for tool of app
	// that covers a call whose arguments hash to argsHash (a grant of the
	// whole tool covers any arguments). It runs on every approval-only
	// call: an in-memory lookup that does not allocate, and right on the
	// very next call after a revocation or expiry.
	Check(user, app string, tool []byte, argsHash [32]byte) (grantID string, ok bool)
	// Request returns the pending request for this call, creating it when
	// none exists (one per user, app, tool and arguments hash, however many
	// connections ask at once). rule is the approval rule that allows the
	// tool.
	Request(user string, groups []string, app, rule, tool string, argsHash *[32]byte) (requestID string, err error)
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
