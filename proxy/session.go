package proxy

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/jsonrpc"
	"github.com/mcpgw/mcpgw/policycache"
)

// openSession reads a client's session id. A forged id, one minted for
// another user or application, or one that was ended, gets 404 as if it
// never existed (MCP-REQUIREMENTS.md 1.5.3, 1.5.6).
//
// *auditID is set to the session's id in audit records (auditSessionID).
func (s *Server) openSession(ctx *fasthttp.RequestCtx, r *route, p *identity.Principal, sid []byte, sess *identity.Session, auditID *string) bool {
	id, err := s.opened.open(s.sessions, sid, sess)
	if err != nil || sess.User != p.User || sess.App != r.name || s.ended.has(sid) {
		s.auditRefusal(ctx, r, p, msgSessionNotFound)
		writeRPCError(ctx, fasthttp.StatusNotFound, nil, jsonrpc.InvalidRequest, msgSessionNotFound)
		return false
	}
	*auditID = id
	r.metrics.sessionSeen(id, ctx)
	return true
}

// serveGet opens the standalone server→client stream of a legacy session
// (MCP-REQUIREMENTS.md 1.3). Without a session, or for a stateless
// upstream, there is no such stream: 405, the only answer clients read as
// "no GET stream" (P-4).
func (s *Server) serveGet(ctx *fasthttp.RequestCtx, r *route, p *identity.Principal, rh *reqHeaders) {
	sid, ok := rh.single(hdrSessionID, rh.sessionID)
	if !ok {
		writeRPCError(ctx, fasthttp.StatusBadRequest, nil, jsonrpc.InvalidRequest, msgAmbiguousHeaders)
		return
	}
	if len(sid) == 0 {
		ctx.Response.Header.Set("Allow", "POST")
		writePlainError(ctx, fasthttp.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	var sess identity.Session
	var auditID string
	if !s.openSession(ctx, r, p, sid, &sess, &auditID) {
		return
	}
	if sess.UpstreamID == "" {
		ctx.Response.Header.Set("Allow", "POST, DELETE")
		writePlainError(ctx, fasthttp.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	ex := acquireExchange()
	defer releaseExchange(ex)
	defer rh.outcome.takeFrom(&ex.hdr.outcome) // for Handle's metrics
	req, ok := r.appendUpstreamRequest(ex.req[:0], r.getHead, rh, &ctx.Request.Header, sess.UpstreamID, nil, false)
	ex.req = req
	if !ok {
		writeRPCError(ctx, fasthttp.StatusBadRequest, nil, jsonrpc.InvalidRequest, msgBadHeader)
		return
	}
	ex.hdr.outcome.allow()
	resp := acquireUpResponse()
	if err := r.upstream.listen.do(req, resp); err != nil {
		releaseUpResponse(resp)
		s.writeUpstreamError(ctx, ex, err)
		return
	}
	status := resp.StatusCode()
	if status == fasthttp.StatusOK && isMediaType(resp.Header.ContentType(), "text/event-stream") {
		ex.subject = subjectOf(p)
		if s.audit != nil {
			ex.scope.set(ctx, r, p, auditID)
		}
		s.startRelay(ctx, r, ex, resp, &sess, false, true, true)
		return
	}
	if allow := resp.Header.Peek("Allow"); len(allow) > 0 {
		ctx.Response.Header.SetBytesV("Allow", allow)
	}
	releaseUpResponse(resp)
	s.writeStatus(ctx, ex, status)
}

// serveDelete ends a legacy session, upstream too (MCP-REQUIREMENTS.md
// 1.5.4, 1.5.7). Afterwards the id gets 404.
func (s *Server) serveDelete(ctx *fasthttp.RequestCtx, r *route, p *identity.Principal, rh *reqHeaders) {
	sid, ok := rh.single(hdrSessionID, rh.sessionID)
	if !ok || len(sid) == 0 {
		writeRPCError(ctx, fasthttp.StatusBadRequest, nil, jsonrpc.InvalidRequest, msgSessionRequired)
		return
	}
	var sess identity.Session
	var auditID string
	if !s.openSession(ctx, r, p, sid, &sess, &auditID) {
		return
	}
	ex := acquireExchange()
	defer releaseExchange(ex)
	defer rh.outcome.takeFrom(&ex.hdr.outcome) // for Handle's metrics
	status := fasthttp.StatusNoContent
	if sess.UpstreamID != "" {
		req, ok := r.appendUpstreamRequest(ex.req[:0], r.deleteHead, rh, &ctx.Request.Header, sess.UpstreamID, nil, false)
		ex.req = req
		if !ok {
			writeRPCError(ctx, fasthttp.StatusBadRequest, nil, jsonrpc.InvalidRequest, msgBadHeader)
			return
		}
		resp := acquireUpResponse()
		if err := r.upstream.calls.do(req, resp); err != nil {
			releaseUpResponse(resp)
			s.writeUpstreamError(ctx, ex, err)
			return
		}
		status = resp.StatusCode()
		releaseUpResponse(resp)
	}
	s.ended.add(sid)
	ex.hdr.outcome.allow()
	r.metrics.sessionsEnded.Add(1)
	if s.audit != nil {
		ex.scope.set(ctx, r, p, auditID)
		s.auditSession(&ex.scope, auditID, false, nil, "deleted by client")
	}
	if status >= 200 && status < 300 || status == fasthttp.StatusNotFound {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	s.writeStatus(ctx, ex, status)
}

// writeStatus relays a bare upstream status with a JSON-RPC error body of
// the gateway's own; the upstream's body is not read.
func (s *Server) writeStatus(ctx *fasthttp.RequestCtx, ex *exchange, status int) {
	ex.hdr.outcome.upstreamStatus(status)
	switch {
	case status == fasthttp.StatusUnauthorized || status == fasthttp.StatusForbidden:
		writeRPCError(ctx, fasthttp.StatusBadGateway, nil, codeUpstream, msgUpstreamAuth)
	case status == fasthttp.StatusMethodNotAllowed:
		writePlainError(ctx, status, "Method Not Allowed")
	case status >= 400:
		writeRPCError(ctx, status, nil, codeUpstream, "Upstream error: HTTP "+fasthttp.StatusMessage(status))
	default:
		writeRPCError(ctx, fasthttp.StatusBadGateway, nil, codeUpstream, msgUpstreamBad)
	}
}

func subjectOf(p *identity.Principal) policycache.Subject {
	return policycache.Subject{User: p.User, Groups: p.Groups, Anonymous: p.Anonymous, Key: p.Key}
}

// endedSessions remembers deleted session ids (by SHA-256) so they get
// 404 afterwards even though ids are self-contained. It is bounded: the
// oldest entries go first.
type endedSessions struct {
	// any is set once a session has ended: until then a check costs no
	// hash and no lock.
	any atomic.Bool

	mu    sync.Mutex // guards the fields below
	set   map[[32]byte]struct{}
	order [][32]byte
	next  int
}

func newEndedSessions(max int) *endedSessions {
	return &endedSessions{set: make(map[[32]byte]struct{}), order: make([][32]byte, 0, max)}
}

func (e *endedSessions) add(sid []byte) {
	h := sha256.Sum256(sid)
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.set[h]; ok {
		return
	}
	if len(e.order) < cap(e.order) {
		e.order = append(e.order, h)
	} else {
		delete(e.set, e.order[e.next])
		e.order[e.next] = h
		e.next = (e.next + 1) % len(e.order)
	}
	e.set[h] = struct{}{}
	e.any.Store(true)
}

func (e *endedSessions) has(sid []byte) bool {
	if !e.any.Load() {
		return false
	}
	h := sha256.Sum256(sid)
	e.mu.Lock()
	_, ok := e.set[h]
	e.mu.Unlock()
	return ok
}

// openedSessions remembers session ids that opened, so that the requests
// of a session after its first pay a map lookup instead of AES-GCM (575 ns
// and an allocation per request in BenchmarkSessionOpen). Open is a pure
// function of the id and the codec's key, so a remembered result is the
// result Open would give; whether the session has ended is still checked
// on every request (endedSessions). Only ids the codec accepted are
// remembered, that is ids this gateway minted, and at most
// 2 x sessionShards x sessionShardSize of them: when a shard's current
// generation is full it becomes the previous one and the one before is
// dropped, so live sessions stay while abandoned ones age out.
type openedSessions struct {
	shards [sessionShards]sessionShard
}

const (
	sessionShards    = 16
	sessionShardSize = 4096
)

type sessionShard struct {
	mu           sync.RWMutex // guards the maps
	cur, prev    map[string]*openedSession
	hits, misses atomic.Uint64 // opens without and with the codec (metrics.go)
	_            [72]byte      // pads a shard to 128 bytes: no two shards' fields share a cache line
}

// openedSession is a remembered session and its audit id.
type openedSession struct {
	sess    identity.Session
	auditID string
}

func (o *openedSessions) shard(sid []byte) *sessionShard {
	// The id's last characters are random (the GCM tag, base64url).
	return &o.shards[sid[len(sid)-1]%sessionShards]
}

// open fills *sess for sid, from memory or through codec, and returns the
// session's audit id.
func (o *openedSessions) open(codec *identity.SessionCodec, sid []byte, sess *identity.Session) (string, error) {
	if len(sid) == 0 {
		return "", identity.ErrBadSession
	}
	sh := o.shard(sid)
	sh.mu.RLock()
	got, ok := sh.cur[string(sid)]
	old := false
	if !ok {
		got, ok = sh.prev[string(sid)]
		old = ok
	}
	sh.mu.RUnlock()
	if ok && !old {
		sh.hits.Add(1)
		*sess = got.sess
		return got.auditID, nil
	}
	keep := got
	if !ok {
		sh.misses.Add(1)
		if err := codec.Open(sid, sess); err != nil {
			return "", err
		}
		keep = &openedSession{sess: *sess, auditID: auditSessionID(sid)}
	} else {
		sh.hits.Add(1)
		*sess = got.sess // a session still in use moves to the current generation
	}
	sh.mu.Lock()
	if len(sh.cur) >= sessionShardSize || sh.cur == nil {
		sh.prev, sh.cur = sh.cur, make(map[string]*openedSession, sessionShardSize/4)
	}
	sh.cur[string(sid)] = keep
	sh.mu.Unlock()
	return keep.auditID, nil
}
