package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/mcpgw/mcpgw/auditlog"
	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/policycache"
)

// Options are fixed for the life of a Server.
type Options struct {
	Logger   *slog.Logger
	Sessions *identity.SessionCodec
	// Loopback reports that the listener is bound to a loopback address:
	// Host is then checked against DNS rebinding (MCP-REQUIREMENTS.md 1.1.3)
	// and dev-user tokens are accepted without allow_dev_users.
	Loopback bool
	// TLS reports that clients reach the listener over TLS.
	TLS bool
	// Audit is the audit spool every message is recorded in (audit.go);
	// nil records nothing.
	Audit *auditlog.Log
}

// Server is the frontend: it routes, authenticates, inspects, decides and
// relays. It is safe for concurrent use; Update may be called at any time.
type Server struct {
	log      *slog.Logger
	sessions *identity.SessionCodec
	opened   openedSessions // sessions.Open, remembered
	loopback bool
	tls      bool

	state atomic.Pointer[state]
	ended *endedSessions

	audit            *auditlog.Log
	auditFailures    failureLog
	upstreamFailures failureLog
	srv              *fasthttp.Server
	metrics          *metricsRegistry // metrics.go
	idPrefix         [8]byte          // of the request ids it makes (metrics.go)

	mu      sync.Mutex // guards clients
	clients map[string]*upstreamClient

	streamsMu sync.Mutex // guards streams, closing and cut
	streams   map[*relay]struct{}
	// closing: Shutdown began; long-lived streams are refused. cut: the
	// drain is over; every stream is refused.
	closing, cut bool
	// streamsDone counts running streams. Long-lived ones run on hijacked
	// connections, which fasthttp's Shutdown no longer waits for.
	streamsDone sync.WaitGroup
}

// state is a compiled Snapshot: immutable once stored.
type state struct {
	snap     *Snapshot
	routes   map[string][]*route // key: lower-case "host:port" of the frontend
	apps     []*route
	identity fasthttp.RequestHandler // snap.IdentityHandler adapted; nil if none
	pages    fasthttp.RequestHandler // snap.ApprovalsHandler adapted; nil if none
}

// route is one application ready to serve.
type route struct {
	app       *Application
	name      string
	path      string
	origin    string // scheme://host[:port] of the frontend, lower case
	origins   map[string]bool
	headers   []Header
	upstream  *upstreamClient
	policy    *policycache.AppPolicy
	authNone  bool
	visAll    bool
	resource  string // the frontend URL: the audience of its tokens
	challenge string // the fixed part of its 401 challenge
	upPath    string // upstream request URI (path and query)
	upHost    string // upstream Host header
	// The fixed heads of its upstream requests (renderPrefixes).
	postHead, getHead, deleteHead []byte
	maxBody                       int
	timeout                       time.Duration
	keepAlive                     time.Duration
	audit                         *AuditPolicy // the snapshot's
	approvals                     Approvals    // the snapshot's; nil: none
	metrics                       *appMetrics  // the application's, kept across reloads
}

// New makes a Server; call Update before serving.
func New(opts Options) (*Server, error) {
	if opts.Sessions == nil {
		return nil, errors.New("proxy: a session codec is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		log:      log.With("component", "proxy"),
		sessions: opts.Sessions,
		loopback: opts.Loopback,
		tls:      opts.TLS,
		audit:    opts.Audit,
		ended:    newEndedSessions(1 << 16),
		clients:  make(map[string]*upstreamClient),
		streams:  make(map[*relay]struct{}),
		metrics:  newMetricsRegistry(),
		idPrefix: requestIDPrefix(),
	}
	s.auditFailures.msg = "audit write failed"
	s.srv = &fasthttp.Server{
		Handler:               s.Handle,
		Name:                  "mcpgw",
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		NoDefaultDate:         false,
		CloseOnShutdown:       true,
		ReadTimeout:           30 * time.Second,
		IdleTimeout:           120 * time.Second,
		// Responses stream for as long as an SSE stream lives; keep-alive
		// comments detect dead clients instead of a write timeout.
		WriteTimeout:       0,
		MaxRequestBodySize: 4 << 20,
		ErrorHandler:       s.handleReadError,
		Logger:             fasthttpLogger{s.log},
	}
	return s, nil
}

// Update compiles snap and swaps it in. On error the previous state keeps
// serving.
func (s *Server) Update(snap *Snapshot) error {
	if snap.Policy == nil {
		return errors.New("proxy: snapshot has no policy")
	}
	st := &state{snap: snap, routes: make(map[string][]*route)}
	if snap.IdentityHandler != nil {
		st.identity = fasthttpadaptor.NewFastHTTPHandler(snap.IdentityHandler)
	}
	if snap.ApprovalsHandler != nil {
		st.pages = fasthttpadaptor.NewFastHTTPHandler(snap.ApprovalsHandler)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	used := make(map[string]bool)
	for i := range snap.Applications {
		app := &snap.Applications[i]
		pol := snap.Policy.App(app.Name)
		if pol == nil {
			return fmt.Errorf("proxy: application %q has no compiled policy", app.Name)
		}
		up, err := s.clientFor(app.Upstream, snap.UpstreamTimeout)
		if err != nil {
			return fmt.Errorf("proxy: application %q: %w", app.Name, err)
		}
		used[up.key] = true
		r := &route{
			app:       app,
			name:      app.Name,
			path:      strings.TrimSuffix(app.Frontend.EscapedPath(), "/"),
			origin:    originOf(app.Frontend.Scheme, app.Frontend.Host),
			origins:   make(map[string]bool),
			headers:   app.Headers,
			upstream:  up,
			policy:    pol,
			authNone:  app.AuthNone,
			visAll:    app.VisibilityAll,
			resource:  app.Frontend.String(),
			challenge: bearerChallenge(app),
			upPath:    app.Upstream.RequestURI(),
			upHost:    app.Upstream.Host,
			maxBody:   snap.MaxBody,
			timeout:   snap.UpstreamTimeout,
			keepAlive: snap.KeepAlive,
			audit:     &snap.Audit,
			approvals: snap.Approvals,
			metrics:   s.metrics.app(app.Name),
		}
		if r.path == "" {
			r.path = "/"
		}
		if err := r.renderPrefixes(); err != nil {
			return fmt.Errorf("proxy: application %q: %w", app.Name, err)
		}
		r.origins[r.origin] = true
		if isLoopbackName(app.Frontend.Hostname()) {
			// A loopback frontend is the same origin under each loopback
			// name; other hosts stay foreign (DNS rebinding, 1.1.3).
			port := app.Frontend.Port()
			if port != "" {
				port = ":" + port
			}
			for _, h := range []string{"localhost", "127.0.0.1", "[::1]"} {
				r.origins[app.Frontend.Scheme+"://"+h+port] = true
			}
		}
		for _, o := range app.AllowedOrigins {
			r.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
		}
		for _, key := range hostKeys(app.Frontend) {
			st.routes[key] = append(st.routes[key], r)
		}
		st.apps = append(st.apps, r)
	}
	if snap.MaxBody > 0 {
		// fasthttp refuses larger bodies before the handler runs; the
		// error handler answers 413 with a JSON-RPC error.
		s.srv.MaxRequestBodySize = snap.MaxBody
	}
	s.metrics.setCaches(snap, &s.opened)
	s.state.Store(st)
	for key, c := range s.clients {
		if !used[key] {
			delete(s.clients, key)
			c.close()
		}
	}
	return nil
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if s.state.Load() == nil {
		return errors.New("proxy: Serve before Update")
	}
	return s.srv.Serve(ln)
}

// Shutdown stops accepting, lets in-flight requests finish until ctx ends,
// then closes the upstream pools. A call answered as an event stream is
// in flight like any other and may finish; long-lived streams (a
// standalone GET, subscriptions/listen) never would, so they end at once.
// What still runs when ctx ends is cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.streamsMu.Lock()
	s.closing = true
	for rl := range s.streams {
		if rl.long {
			rl.abortUpstream() // closing its upstream ends the relay loop
		}
	}
	s.streamsMu.Unlock()
	// fasthttp waits for its connections, streaming calls included.
	err := s.srv.ShutdownWithContext(ctx)
	// No stream starts from here on (none may join streamsDone while it is
	// waited for); the ones still running are cut if time is up.
	s.streamsMu.Lock()
	s.cut = true
	if ctx.Err() != nil {
		for rl := range s.streams {
			rl.abortUpstream()
		}
	}
	s.streamsMu.Unlock()
	waited := make(chan struct{})
	go func() { s.streamsDone.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
		s.streamsMu.Lock()
		for rl := range s.streams {
			rl.abortUpstream()
		}
		s.streamsMu.Unlock()
		// The cut relays record their ends; give them a moment.
		select {
		case <-waited:
		case <-time.After(time.Second):
		}
	}
	s.mu.Lock()
	for key, c := range s.clients {
		delete(s.clients, key)
		c.close()
	}
	s.mu.Unlock()
	return err
}

// hostKeys gives the routing keys of a frontend URL: lower-case host:port,
// with the scheme's default port made explicit. Loopback names are
// interchangeable (a client configured with localhost reaches an app
// declared on 127.0.0.1).
func hostKeys(u *url.URL) []string {
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	if isLoopbackName(host) {
		return []string{"localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port}
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return []string{host + ":" + port}
}

// isApprovalsPath reports whether path is the approval page's: /approvals
// or under /approvals/ (approvalPath).
func isApprovalsPath(path []byte) bool {
	const p = approvalPath // "/approvals/"
	return string(path) == p[:len(p)-1] || bytes.HasPrefix(path, []byte(p))
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

func originOf(scheme, host string) string {
	return strings.ToLower(scheme + "://" + host)
}

func isLoopbackName(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// fasthttpLogger routes fasthttp's own messages into slog.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn("fasthttp", "msg", fmt.Sprintf(format, args...))
}
