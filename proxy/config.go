package proxy

import (
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

	// MaxBody bounds a request body and each upstream message.
	MaxBody int
	// UpstreamTimeout bounds the wait for upstream response headers and the
	// silence between reads of an upstream response body.
	UpstreamTimeout time.Duration
	// KeepAlive is the interval of ":" comments on idle SSE streams.
	KeepAlive time.Duration
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
}

// Header is one configured upstream header.
type Header struct{ Name, Value string }
