package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/bits"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/mcpgw/mcpgw/auditlog"
	"github.com/mcpgw/mcpgw/jsonrpc"
)

// Metrics and request ids (DESIGN.md section 9). The proxy counts in plain
// atomic counters and imports no metrics library: package appliance reads
// a Metrics snapshot at scrape time and exports it to Prometheus. Per
// application it counts
//
//   - requests: one per frontend HTTP request routed to the application,
//     by method class and decision, counted by Handle as it returns (the
//     outcome the request came to is filled in on the way: outcome below);
//   - latency: the same requests, from their arrival (fasthttp's request
//     time, once the request is read) to the return of the handler, which
//     is when the answer's head is ready. An SSE answer's latency is the
//     time to its first byte, not to its end;
//   - upstream failures by kind;
//   - live SSE streams by kind;
//   - sessions started (initialize minted an id) and ended (DELETE), and
//     an estimate of the distinct sessions in use in the last minutes
//     (session ids are stateless: no table says which are open).
//
// Labels are bounded: a method is one of the MCP methods the gateway knows
// or a fixed class, never the client's string, and applications come from
// the configuration. No metric names a user, tool, token or argument.
//
// Cost on the hot path: per request, two atomic adds (its count and its
// latency bucket, plus the latency sum) and no allocation; the counters of
// an application are found once per Update (route.metrics), and a reload
// does not reset them.

// methodClass is the method label of a request: the JSON-RPC method of the
// message a POST carries, or a class.
type methodClass uint8

const (
	methodNone     methodClass = iota // a POST refused before its message was read
	methodOther                       // an unknown JSON-RPC method, or an HTTP method the gateway does not serve
	methodResponse                    // a client's result or error for a server request
	methodBatch                       // a 2025-03-26 batch
	methodGET                         // a standalone SSE stream (GET)
	methodDELETE                      // the end of a session (DELETE)
	methodOPTIONS                     // a CORS preflight
	methodInitialize
	methodPing
	methodToolsList
	methodToolsCall
	methodPromptsList
	methodPromptsGet
	methodResourcesList
	methodResourceTemplatesList
	methodResourcesRead
	methodResourcesSubscribe
	methodResourcesUnsubscribe
	methodCompletionComplete
	methodLoggingSetLevel
	methodSubscriptionsListen
	methodServerDiscover
	methodTasksGet
	methodTasksResult
	methodTasksCancel
	methodTasksList
	methodNotifInitialized
	methodNotifCancelled
	methodNotifProgress
	methodNotifRootsListChanged
	methodNotifTasksStatus
	numMethods
)

var methodNames = [numMethods]string{
	methodNone:                  "none",
	methodOther:                 "other",
	methodResponse:              "response",
	methodBatch:                 "batch",
	methodGET:                   "GET",
	methodDELETE:                "DELETE",
	methodOPTIONS:               "OPTIONS",
	methodInitialize:            "initialize",
	methodPing:                  "ping",
	methodToolsList:             "tools/list",
	methodToolsCall:             "tools/call",
	methodPromptsList:           "prompts/list",
	methodPromptsGet:            "prompts/get",
	methodResourcesList:         "resources/list",
	methodResourceTemplatesList: "resources/templates/list",
	methodResourcesRead:         "resources/read",
	methodResourcesSubscribe:    "resources/subscribe",
	methodResourcesUnsubscribe:  "resources/unsubscribe",
	methodCompletionComplete:    "completion/complete",
	methodLoggingSetLevel:       "logging/setLevel",
	methodSubscriptionsListen:   "subscriptions/listen",
	methodServerDiscover:        "server/discover",
	methodTasksGet:              "tasks/get",
	methodTasksResult:           "tasks/result",
	methodTasksCancel:           "tasks/cancel",
	methodTasksList:             "tasks/list",
	methodNotifInitialized:      "notifications/initialized",
	methodNotifCancelled:        "notifications/cancelled",
	methodNotifProgress:         "notifications/progress",
	methodNotifRootsListChanged: "notifications/roots/list_changed",
	methodNotifTasksStatus:      "notifications/tasks/status",
}

// classifyMethod gives the label of a scanned client message. The switch
// on string(method) compares without allocating.
func classifyMethod(m *jsonrpc.Message) methodClass {
	if m.Kind == jsonrpc.KindResult || m.Kind == jsonrpc.KindError {
		return methodResponse
	}
	switch string(m.Method) {
	case "initialize":
		return methodInitialize
	case "ping":
		return methodPing
	case "tools/list":
		return methodToolsList
	case "tools/call":
		return methodToolsCall
	case "prompts/list":
		return methodPromptsList
	case "prompts/get":
		return methodPromptsGet
	case "resources/list":
		return methodResourcesList
	case "resources/templates/list":
		return methodResourceTemplatesList
	case "resources/read":
		return methodResourcesRead
	case "resources/subscribe":
		return methodResourcesSubscribe
	case "resources/unsubscribe":
		return methodResourcesUnsubscribe
	case "completion/complete":
		return methodCompletionComplete
	case "logging/setLevel":
		return methodLoggingSetLevel
	case "subscriptions/listen":
		return methodSubscriptionsListen
	case "server/discover":
		return methodServerDiscover
	case "tasks/get":
		return methodTasksGet
	case "tasks/result":
		return methodTasksResult
	case "tasks/cancel":
		return methodTasksCancel
	case "tasks/list":
		return methodTasksList
	case "notifications/initialized":
		return methodNotifInitialized
	case "notifications/cancelled":
		return methodNotifCancelled
	case "notifications/progress":
		return methodNotifProgress
	case "notifications/roots/list_changed":
		return methodNotifRootsListChanged
	case "notifications/tasks/status":
		return methodNotifTasksStatus
	}
	return methodOther
}

// decisionClass is the decision label of a request.
type decisionClass uint8

const (
	// decisionRefused is the zero value: a request is refused until
	// something lets it through.
	decisionRefused         decisionClass = iota
	decisionAllow                         // sent upstream (or, for DELETE and OPTIONS, served by the gateway)
	decisionDeny                          // policy denied it
	decisionApproval                      // an approval-only tool without a grant
	decisionUnauthenticated               // 401: no valid credentials
	numDecisions
)

var decisionNames = [numDecisions]string{
	decisionRefused:         "refused",
	decisionAllow:           "allow",
	decisionDeny:            "deny",
	decisionApproval:        "approval_required",
	decisionUnauthenticated: "unauthenticated",
}

// upstreamErrorKind is the kind label of an upstream failure.
type upstreamErrorKind uint8

const (
	upstreamNone        upstreamErrorKind = iota
	upstreamConnect                       // no connection: dial, TLS handshake, too many connections
	upstreamTimeout                       // no answer, or a silence, within the upstream timeout
	upstreamStatus5xx                     // an HTTP 5xx answer
	upstreamAuth                          // 401 or 403: the gateway's credentials refused
	upstreamBadResponse                   // an answer the gateway cannot read with certainty
	upstreamDisconnect                    // the connection closed or reset before the answer was whole
	numUpstreamErrors
)

var upstreamErrorNames = [numUpstreamErrors]string{
	upstreamConnect:     "connect",
	upstreamTimeout:     "timeout",
	upstreamStatus5xx:   "status_5xx",
	upstreamAuth:        "auth",
	upstreamBadResponse: "bad_response",
	upstreamDisconnect:  "disconnect",
}

// errConnect marks the errors of making an upstream connection (upPool.get).
type errConnect struct{ err error }

func (e errConnect) Error() string { return e.err.Error() }
func (e errConnect) Unwrap() error { return e.err }

// upstreamErrorKindOf classifies the error of an upstream exchange.
func upstreamErrorKindOf(err error) upstreamErrorKind {
	var ce errConnect
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.Is(err, errUpstreamConns), errors.Is(err, errPoolClosed):
		return upstreamConnect
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, fasthttp.ErrTimeout), errors.As(err, &ne) && ne.Timeout():
		return upstreamTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), isConnReset(err):
		return upstreamDisconnect
	}
	return upstreamBadResponse
}

// streamKind is the kind label of a live SSE stream.
type streamKind uint8

const (
	streamResponse streamKind = iota // the SSE answer to a POST, until its last answer
	streamListen                     // a standalone GET stream or a 2026-07-28 subscriptions/listen
	numStreamKinds
)

var streamKindNames = [numStreamKinds]string{streamResponse: "response", streamListen: "listen"}

// otherKind labels frontend requests that reach no application's MCP
// endpoint.
type otherKind uint8

const (
	otherIdentity   otherKind = iota // OAuth and metadata endpoints
	otherApprovals                   // the approval page
	otherNotFound                    // no application at this host and path
	otherUnreadable                  // fasthttp could not read the request (413, 431, 400)
	numOtherKinds
)

var otherKindNames = [numOtherKinds]string{
	otherIdentity: "identity", otherApprovals: "approvals", otherNotFound: "not_found", otherUnreadable: "unreadable",
}

// cacheKind labels a cache's hit and miss counts.
type cacheKind uint8

const (
	cachePolicy  cacheKind = iota // policycache's decision cache
	cacheToken                    // the token verifier's cache of verified tokens
	cacheSession                  // the proxy's opened session ids (openedSessions)
	numCaches
)

var cacheNames = [numCaches]string{cachePolicy: "policy", cacheToken: "token", cacheSession: "session"}

// outcome is what a frontend request came to. It travels with the
// request's headers (reqHeaders.outcome; an exchange's copy in ex.hdr is
// copied back when the serving function returns) and Handle counts it
// once, when the request ends.
type outcome struct {
	method   methodClass
	decision decisionClass
	upstream upstreamErrorKind // the upstream failure the request met, if any
}

// note records a client message and the verdict on it (auditClient, which
// every message that reaches a decision passes). A verdict that lets the
// message through changes nothing: the decision is allow only once the
// message is sent (allow). The messages of a batch leave the batch's
// label alone.
func (o *outcome) note(m *jsonrpc.Message, v *verdict) {
	if o.method == methodBatch {
		return
	}
	o.method = classifyMethod(m)
	if !v.refused() {
		return
	}
	switch v.decision {
	case auditlog.DecisionDeny:
		o.decision = decisionDeny
	case auditlog.DecisionApprovalRequired:
		o.decision = decisionApproval
	default:
		o.decision = decisionRefused
	}
}

// allow records that the request went upstream or was served.
func (o *outcome) allow() { o.decision = decisionAllow }

// upstreamFailed records an upstream failure; only a request that was let
// through meets one.
func (o *outcome) upstreamFailed(k upstreamErrorKind) {
	o.decision, o.upstream = decisionAllow, k
}

// upstreamStatus records the status of an upstream answer: 5xx and the
// refusals of the gateway's credentials are failures.
func (o *outcome) upstreamStatus(status int) {
	switch {
	case status >= 500:
		o.upstreamFailed(upstreamStatus5xx)
	case status == fasthttp.StatusUnauthorized || status == fasthttp.StatusForbidden:
		o.upstreamFailed(upstreamAuth)
	}
}

// takeFrom copies an exchange's outcome back into the request's; the
// serving functions defer it.
func (o *outcome) takeFrom(ex *outcome) { *o = *ex }

// Latency buckets: upper bounds from 100 µs (a refusal, a cached decision)
// to 10 s (a slow tool); slower requests count above the last.
var latencyBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// histogram counts durations by bucket. Counts are per bucket (not
// cumulative) so an observation is one add; the count is their sum.
type histogram struct {
	buckets [len(latencyBounds) + 1]atomic.Uint64 // the last: above every bound
	sumUS   atomic.Uint64                         // microseconds: 584,000 years of latency before it wraps
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	if d > 0 {
		h.sumUS.Add(uint64(d / time.Microsecond))
	}
}

// appMetrics are the counters of one application. Safe for concurrent use.
type appMetrics struct {
	requests [numMethods][numDecisions]atomic.Uint64
	latency  [numMethods]histogram
	upstream [numUpstreamErrors]atomic.Uint64
	streams  [numStreamKinds]atomic.Int64

	sessionsStarted, sessionsEnded atomic.Uint64
	seen                           sessionsSeen
}

// sessionStarted counts a session minted at ctx's request; auditID is
// its auditSessionID.
func (m *appMetrics) sessionStarted(auditID string, ctx *fasthttp.RequestCtx) {
	m.sessionsStarted.Add(1)
	m.sessionSeen(auditID, ctx)
}

// sessionSeen notes that a request of the session auditID arrived.
func (m *appMetrics) sessionSeen(auditID string, ctx *fasthttp.RequestCtx) {
	t := ctx.Time()
	if t.IsZero() { // a RequestCtx not from a fasthttp.Server (tests)
		t = time.Now()
	}
	m.seen.add(sessionHash(auditID), t.Unix())
}

// streamStarted counts a live stream of kind k and returns its gauge, for
// the deferred Add(-1).
func (m *appMetrics) streamStarted(k streamKind) *atomic.Int64 {
	g := &m.streams[k]
	g.Add(1)
	return g
}

// Active sessions. A session id is sealed and self-contained: nothing
// records which sessions are open, and a client that goes quiet never
// says so. What can be counted honestly is how many distinct sessions
// sent a request lately: each request of a session sets one bit, chosen
// by the session's hash, in a bitmap per minute; the distinct count of the
// last sessionMinutes minutes is estimated from the union of their
// bitmaps by linear counting (Whang et al., 1990: n = -m ln(zero bits/m)),
// within about 2% up to 50,000 sessions per application.
const (
	sessionMinutes = 5       // the current minute and the four before it
	sessionBits    = 1 << 14 // per minute and application: 2 KiB
)

type sessionsSeen struct {
	minutes [sessionMinutes]sessionMinute
}

type sessionMinute struct {
	minute atomic.Int64 // unix minute these bits are of
	bits   [sessionBits / 64]atomic.Uint64
}

// add sets h's bit in the bitmap of the minute of unix time now. The first
// request of a new minute clears the slot it reuses; a bit another request
// sets meanwhile may be lost, which the session's next request restores.
func (s *sessionsSeen) add(h uint64, now int64) {
	minute := now / 60
	sl := &s.minutes[uint64(minute)%sessionMinutes]
	if cur := sl.minute.Load(); cur != minute {
		if cur > minute {
			return // a request that arrived before the minute turned
		}
		if sl.minute.CompareAndSwap(cur, minute) {
			for i := range sl.bits {
				sl.bits[i].Store(0)
			}
		}
	}
	w := &sl.bits[(h/64)%(sessionBits/64)]
	if bit := uint64(1) << (h % 64); w.Load()&bit == 0 {
		w.Or(bit)
	}
}

// estimate is the number of distinct sessions seen in the minutes up to
// unix time now.
func (s *sessionsSeen) estimate(now int64) float64 {
	minute := now / 60
	var union [sessionBits / 64]uint64
	for i := range s.minutes {
		sl := &s.minutes[i]
		if m := sl.minute.Load(); m > minute-sessionMinutes && m <= minute {
			for j := range union {
				union[j] |= sl.bits[j].Load()
			}
		}
	}
	zeros := 0
	for _, w := range union {
		zeros += 64 - bits.OnesCount64(w)
	}
	if zeros == 0 {
		return sessionBits * math.Log(sessionBits) // saturated: the estimator's upper bound
	}
	return math.Round(-sessionBits * math.Log(float64(zeros)/sessionBits))
}

// sessionHash is a session's bitmap hash: its audit id is hex of SHA-256,
// so its first 16 digits are a uniform 64-bit number.
func sessionHash(auditID string) uint64 {
	var h uint64
	for i := 0; i < len(auditID) && i < 16; i++ {
		c := auditID[i]
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		default:
			v = c & 0xf
		}
		h = h<<4 | uint64(v)
	}
	return h
}

// cacheSource is a cache that counts its hits and misses: policycache's
// Policy, identity's token verifiers, openedSessions.
type cacheSource interface {
	CacheStats() (hits, misses uint64)
}

// cacheTotals keeps a cache's counts monotonic across reloads, which
// replace the policy and the token verifier: the counts of a replaced
// source are kept, and the current one's added to them. (The few lookups
// a replaced source still serves for requests in flight are not counted.)
type cacheTotals struct {
	cur          cacheSource
	hits, misses uint64 // of the sources before cur
}

func (c *cacheTotals) set(src cacheSource) {
	if src == c.cur {
		return
	}
	if c.cur != nil {
		h, m := c.cur.CacheStats()
		c.hits, c.misses = c.hits+h, c.misses+m
	}
	c.cur = src
}

func (c *cacheTotals) read() (hits, misses uint64) {
	hits, misses = c.hits, c.misses
	if c.cur != nil {
		h, m := c.cur.CacheStats()
		hits, misses = hits+h, misses+m
	}
	return hits, misses
}

// metricsRegistry holds the counters of every application the Server has
// served, by name, so that they outlive reloads.
type metricsRegistry struct {
	other [numOtherKinds]atomic.Uint64

	mu     sync.Mutex // guards the fields below
	apps   map[string]*appMetrics
	caches [numCaches]cacheTotals
}

func newMetricsRegistry() *metricsRegistry {
	return &metricsRegistry{apps: make(map[string]*appMetrics)}
}

// app returns the counters of the named application, made at its first
// Update.
func (g *metricsRegistry) app(name string) *appMetrics {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.apps[name]
	if m == nil {
		m = new(appMetrics)
		g.apps[name] = m
	}
	return m
}

// setCaches records the caches of a new snapshot.
func (g *metricsRegistry) setCaches(snap *Snapshot, opened *openedSessions) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var pol, tok cacheSource
	if snap.Policy != nil {
		pol = snap.Policy
	}
	if src, ok := snap.Tokens.(cacheSource); ok {
		tok = src
	}
	g.caches[cachePolicy].set(pol)
	g.caches[cacheToken].set(tok)
	g.caches[cacheSession].set(opened)
}

// observe counts a request routed to r when Handle returns: its outcome,
// its latency, the upstream failure it met; with debug logging on it
// writes one line about it.
func (s *Server) observe(ctx *fasthttp.RequestCtx, r *route, o *outcome) {
	m := r.metrics
	method, decision := o.method, o.decision
	switch {
	case ctx.IsPost():
	case ctx.IsGet():
		method = methodGET
	case ctx.IsDelete():
		method = methodDELETE
	case ctx.IsOptions():
		method, decision = methodOPTIONS, decisionAllow
	default:
		method = methodOther
	}
	status := ctx.Response.StatusCode()
	if status == fasthttp.StatusUnauthorized {
		// Only authenticate answers 401: an upstream's is relayed as 502.
		decision = decisionUnauthenticated
	}
	m.requests[method][decision].Add(1)
	if o.upstream != upstreamNone {
		m.upstream[o.upstream].Add(1)
	}
	var d time.Duration
	if t := ctx.Time(); !t.IsZero() {
		d = time.Since(t)
		m.latency[method].observe(d)
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		attrs := [...]slog.Attr{
			slog.String("request_id", string(requestIDOf(ctx))),
			slog.String("app", r.name),
			slog.String("method", methodNames[method]),
			slog.String("decision", decisionNames[decision]),
			slog.Int("status", status),
			slog.Duration("duration", d),
			slog.String("upstream_error", upstreamErrorNames[o.upstream]),
		}
		n := len(attrs)
		if o.upstream == upstreamNone {
			n--
		}
		s.log.LogAttrs(context.Background(), slog.LevelDebug, "request", attrs[:n]...)
	}
}

// Request ids. Every frontend request gets one in its X-Request-Id
// response header, and every log line the proxy writes about a request
// carries it as request_id. A client's own X-Request-Id is kept when it is
// 1 to 64 of A-Z a-z 0-9 . _ - (anything else could forge log lines or
// carry data); otherwise the gateway makes one: 32 lowercase hex digits,
// a random prefix per Server, the connection's number and the request's
// number on it (fasthttp's ConnID and ConnRequestNum), so no counter is
// shared between requests. Ids are for correlation, not secrets.
//
// Audit records do not carry the request id: the record format is part of
// the hash chain (auditlog), and a field added there is a format change of
// its own.

const maxRequestID = 64

var hdrXRequestID = []byte("X-Request-Id")

// requestIDPrefix makes the per-Server prefix of generated ids.
func requestIDPrefix() [8]byte {
	var b [4]byte
	_, _ = rand.Read(b[:])
	var p [8]byte
	hex.Encode(p[:], b[:])
	return p
}

// validRequestID reports whether a client's X-Request-Id is kept.
func validRequestID(v []byte) bool {
	if len(v) == 0 || len(v) > maxRequestID {
		return false
	}
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// setRequestID sets ctx's X-Request-Id response header: the client's id
// when it is valid (and sent once), else a new one.
func (s *Server) setRequestID(ctx *fasthttp.RequestCtx, client []byte, ok bool) {
	if ok && validRequestID(client) {
		ctx.Response.Header.SetCanonical(hdrXRequestID, client)
		return
	}
	var n [16]byte // the low 6 bytes of each number
	binary.BigEndian.PutUint64(n[:8], ctx.ConnID()<<16)
	binary.BigEndian.PutUint64(n[6:14], ctx.ConnRequestNum()<<16)
	var buf [32]byte
	copy(buf[:8], s.idPrefix[:])
	hex.Encode(buf[8:], n[:12])
	ctx.Response.Header.SetCanonical(hdrXRequestID, buf[:])
}

// setRequestIDSlow is setRequestID for requests whose headers were not
// read in one pass (those that reach no application).
func (s *Server) setRequestIDSlow(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	s.setRequestID(ctx, h.PeekBytes(hdrXRequestID), len(h.PeekAll("X-Request-Id")) <= 1)
}

// requestIDOf returns the request id set on ctx's response.
func requestIDOf(ctx *fasthttp.RequestCtx) []byte {
	return ctx.Response.Header.PeekBytes(hdrXRequestID)
}

// Metrics is a snapshot of the proxy's counters (Server.Metrics). Every
// value is a count, a duration or a gauge; the only names in it are the
// configured applications' and fixed labels.
type Metrics struct {
	// LatencyBounds are the upper bounds of the latency buckets, in
	// seconds; shared, read only.
	LatencyBounds []float64
	Apps          []AppMetrics
	// Other counts frontend requests that reach no application's MCP
	// endpoint, by kind: identity (OAuth and metadata endpoints),
	// approvals (the approval page), not_found, unreadable (refused by
	// fasthttp before routing: too large, malformed).
	Other  []LabeledValue
	Caches []CacheMetrics
}

// AppMetrics are one application's counters.
type AppMetrics struct {
	App string
	// Requests by method and decision; only the pairs that occurred.
	Requests []RequestCount
	// Latency by method; only the methods that occurred.
	Latency []LatencyHistogram
	// UpstreamErrors by kind, every kind.
	UpstreamErrors []LabeledValue
	// Streams are the live SSE streams by kind, every kind.
	Streams                        []LabeledValue
	SessionsStarted, SessionsEnded uint64
	// SessionsActive estimates the distinct sessions that sent a request
	// in the current minute and the four before it.
	SessionsActive float64
}

// RequestCount is the count of one method and decision.
type RequestCount struct {
	Method, Decision string
	Count            uint64
}

// LatencyHistogram is the latency of one method's requests.
type LatencyHistogram struct {
	Method string
	// Cumulative counts, one per Metrics.LatencyBounds.
	Cumulative []uint64
	Count      uint64
	SumSeconds float64
}

// LabeledValue is a value and its label.
type LabeledValue struct {
	Label string
	Value float64
}

// CacheMetrics are the lookups of one cache.
type CacheMetrics struct {
	Cache        string
	Hits, Misses uint64
}

var latencyBoundsSeconds = func() []float64 {
	b := make([]float64, len(latencyBounds))
	for i, d := range latencyBounds {
		b[i] = d.Seconds()
	}
	return b
}()

// Metrics returns the counters as they are now, for the applications of
// the current configuration. It allocates: it is for scrapes, not the hot
// path. Safe for concurrent use.
func (s *Server) Metrics() *Metrics {
	out := &Metrics{LatencyBounds: latencyBoundsSeconds}
	now := time.Now().Unix()
	if st := s.state.Load(); st != nil {
		for _, r := range st.apps {
			out.Apps = append(out.Apps, r.metrics.snapshot(r.name, now))
		}
	}
	for k := range numOtherKinds {
		out.Other = append(out.Other, LabeledValue{otherKindNames[k], float64(s.metrics.other[k].Load())})
	}
	s.metrics.mu.Lock()
	for k := range numCaches {
		h, m := s.metrics.caches[k].read()
		out.Caches = append(out.Caches, CacheMetrics{Cache: cacheNames[k], Hits: h, Misses: m})
	}
	s.metrics.mu.Unlock()
	return out
}

func (m *appMetrics) snapshot(app string, now int64) AppMetrics {
	a := AppMetrics{
		App:             app,
		SessionsStarted: m.sessionsStarted.Load(),
		SessionsEnded:   m.sessionsEnded.Load(),
		SessionsActive:  m.seen.estimate(now),
	}
	for meth := range numMethods {
		for dec := range numDecisions {
			if n := m.requests[meth][dec].Load(); n > 0 {
				a.Requests = append(a.Requests, RequestCount{Method: methodNames[meth], Decision: decisionNames[dec], Count: n})
			}
		}
		h := &m.latency[meth]
		var cum uint64
		buckets := make([]uint64, len(latencyBounds))
		for i := range latencyBounds {
			cum += h.buckets[i].Load()
			buckets[i] = cum
		}
		cum += h.buckets[len(latencyBounds)].Load()
		if cum > 0 {
			a.Latency = append(a.Latency, LatencyHistogram{Method: methodNames[meth], Cumulative: buckets, Count: cum,
				SumSeconds: float64(h.sumUS.Load()) / 1e6})
		}
	}
	for k := upstreamNone + 1; k < numUpstreamErrors; k++ {
		a.UpstreamErrors = append(a.UpstreamErrors, LabeledValue{upstreamErrorNames[k], float64(m.upstream[k].Load())})
	}
	for k := range numStreamKinds {
		a.Streams = append(a.Streams, LabeledValue{streamKindNames[k], float64(m.streams[k].Load())})
	}
	return a
}

// CacheStats counts the session ids opened from memory (hits) and through
// the codec (misses).
func (o *openedSessions) CacheStats() (hits, misses uint64) {
	for i := range o.shards {
		hits += o.shards[i].hits.Load()
		misses += o.shards[i].misses.Load()
	}
	return hits, misses
}
