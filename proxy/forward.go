package proxy

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/jsonrpc"
)

// forwardPost sends an authorized body upstream and relays the answer.
// ex.pending names the requests whose responses are expected; it is empty
// for notifications and client responses.
func (s *Server) forwardPost(ctx *fasthttp.RequestCtx, r *route, ex *exchange, p *identity.Principal, sess *identity.Session, body []byte, modern bool) {
	req, ok := r.appendUpstreamRequest(ex.req[:0], r.postHead, &ex.hdr, &ctx.Request.Header, sess.UpstreamID, body, true)
	ex.req = req
	if !ok {
		s.failPending(ctx, ex, fasthttp.StatusBadRequest, jsonrpc.InvalidRequest, msgBadHeader)
		return
	}
	ex.hdr.outcome.allow()
	resp := acquireUpResponse()
	if err := r.upstream.calls.do(req, resp); err != nil {
		releaseUpResponse(resp)
		s.writeUpstreamError(ctx, ex, err)
		return
	}
	status := resp.StatusCode()
	ex.hdr.outcome.upstreamStatus(status)
	ct := resp.Header.ContentType()
	switch {
	case status == fasthttp.StatusUnauthorized || status == fasthttp.StatusForbidden:
		// Never relay the upstream's challenge: its resource_metadata
		// points at the upstream (MCP-REQUIREMENTS.md 4.5.2).
		releaseUpResponse(resp)
		s.failPending(ctx, ex, fasthttp.StatusBadGateway, codeUpstream, msgUpstreamAuth)
		return
	case len(ex.pending) == 0 && status >= 200 && status < 300:
		// Notifications and client responses get exactly 202
		// (MCP-REQUIREMENTS.md 1.2.4, P-22).
		releaseUpResponse(resp)
		ctx.SetStatusCode(fasthttp.StatusAccepted)
		return
	case status == fasthttp.StatusOK && isMediaType(ct, "text/event-stream"):
		ex.relayed = len(ex.pending) > 0
		if len(ex.pending) == 1 && ex.pending[0].init {
			s.relayInitStream(ctx, r, ex, p, resp)
			return
		}
		// subscriptions/listen lives as long as the client wants it.
		long := len(ex.pending) == 1 && bytes.Equal(ex.msg.Method, []byte("subscriptions/listen"))
		s.startRelay(ctx, r, ex, resp, sess, modern, false, long)
		return
	}
	defer releaseUpResponse(resp)
	b, err := resp.readBodyInto(ex.body[:0], r.maxBody)
	ex.body = b
	if err != nil {
		s.writeUpstreamError(ctx, ex, err)
		return
	}
	s.relayJSON(ctx, r, ex, p, resp, status, b, modern)
}

// relayJSON checks, filters and relays a whole upstream JSON answer.
func (s *Server) relayJSON(ctx *fasthttp.RequestCtx, r *route, ex *exchange, p *identity.Principal, resp *upResponse, status int, b []byte, modern bool) {
	if len(b) == 0 {
		if status >= 400 {
			s.failPending(ctx, ex, status, codeUpstream, "Upstream error: HTTP "+fasthttp.StatusMessage(status))
			return
		}
		s.failPending(ctx, ex, fasthttp.StatusBadGateway, codeUpstream, msgUpstreamBad)
		return
	}
	if !isMediaType(resp.Header.ContentType(), "application/json") {
		// Only JSON and SSE are MCP answers; anything else cannot be
		// read with certainty and is not passed on.
		if status >= 400 {
			s.failPending(ctx, ex, status, codeUpstream, "Upstream error: HTTP "+fasthttp.StatusMessage(status))
			return
		}
		s.failPending(ctx, ex, fasthttp.StatusBadGateway, codeUpstream, msgUpstreamBad)
		return
	}
	out, ok := s.checkMessages(r, ex, b, modern)
	if !ok {
		s.failPending(ctx, ex, fasthttp.StatusBadGateway, codeUpstream, msgUpstreamBad)
		return
	}
	if len(ex.pending) == 1 && ex.pending[0].init {
		if status == fasthttp.StatusOK && !s.mintSession(ctx, r, ex, p, resp) {
			return
		}
		s.auditOutcome(&ex.scope, &ex.rec, &ex.pending[0], &ex.msg, 0, "", len(out), nil)
	}
	if allow := resp.Header.Peek("Allow"); len(allow) > 0 {
		ctx.Response.Header.SetBytesV("Allow", allow)
	}
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType("application/json")
	ctx.Response.SetBody(out)
}

// checkMessages scans an upstream JSON body (one message, or an array for
// 2025-03-26 batches) and filters list results. It returns the bytes to
// send; ok is false when the body cannot be read with certainty.
func (s *Server) checkMessages(r *route, ex *exchange, b []byte, modern bool) ([]byte, bool) {
	if jsonrpc.IsBatch(b) {
		elems, err := ex.scan.SplitBatch(b, ex.elems[:0])
		ex.elems = elems
		if err != nil {
			return nil, false
		}
		out := append(ex.out[:0], '[')
		for i, el := range elems {
			// Each element is filtered into ex.tmp and copied out at once.
			filtered, ok := s.checkMessage(r, ex, el, modern, ex.tmp[:0])
			if !ok {
				return nil, false
			}
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, filtered...)
			if len(filtered) > 0 && cap(filtered) > cap(ex.tmp) && &filtered[:1][0] != &el[:1][0] {
				ex.tmp = filtered[:0]
			}
		}
		ex.out = append(out, ']')
		return ex.out, true
	}
	out, ok := s.checkMessage(r, ex, b, modern, ex.out[:0])
	ex.out = out
	return out, ok
}

// checkMessage scans one upstream message. A response to a list request is
// filtered into dst; anything else is returned as it came.
func (s *Server) checkMessage(r *route, ex *exchange, b []byte, modern bool, dst []byte) ([]byte, bool) {
	m := &ex.msg
	if err := ex.scan.Scan(b, m); err != nil {
		return nil, false
	}
	var pc *pendingCall
	if m.Kind == jsonrpc.KindResult || m.Kind == jsonrpc.KindError {
		for i := range ex.pending {
			if bytes.Equal(ex.pending[i].id, m.ID) {
				pc = &ex.pending[i]
				break
			}
		}
	}
	if pc == nil {
		s.auditUpstream(&ex.scope, &ex.rec, ex.pending, m, len(b), "", ex.tmp[:0])
		return b, true
	}
	out := b
	ex.served.reset(false)
	if m.Kind == jsonrpc.KindResult && pc.list != jsonrpc.ListNone {
		ex.served.reset(s.audit != nil)
		ex.names = listFilter{policy: r.policy, subject: &ex.subject, kind: listPolicyKind(pc.list), served: &ex.served}
		var err error
		if out, _, err = ex.filter.AppendFiltered(dst, b, pc.list, &ex.names, jsonrpc.FilterOptions{PrivateCache: modern}); err != nil {
			return nil, false
		}
	}
	if !pc.init {
		// initialize is recorded once its session is minted.
		s.auditOutcome(&ex.scope, &ex.rec, pc, m, 0, "", len(out), ex.served.json())
	}
	return out, true
}

// mintSession answers an initialize result with the gateway's own session
// id, binding user, application, negotiated version and the upstream's
// session id (DESIGN.md section 4). ex.msg holds the scanned result.
func (s *Server) mintSession(ctx *fasthttp.RequestCtx, r *route, ex *exchange, p *identity.Principal, resp *upResponse) bool {
	m := &ex.msg
	if m.Kind != jsonrpc.KindResult {
		return true // an initialize error creates no session
	}
	if len(m.ProtocolVersion) == 0 {
		s.failPending(ctx, ex, fasthttp.StatusBadGateway, codeUpstream, msgUpstreamBad)
		return false
	}
	upstreamSID, ok := singleResponseHeader(&resp.Header, "Mcp-Session-Id")
	if !ok {
		s.failPending(ctx, ex, fasthttp.StatusBadGateway, codeUpstream, msgUpstreamBad)
		return false
	}
	id, err := s.sessions.Mint(&identity.Session{
		User:            p.User,
		App:             r.name,
		ProtocolVersion: string(m.ProtocolVersion),
		UpstreamID:      string(upstreamSID),
		ElicitationURL:  ex.client.elicitURL,
	})
	if err != nil {
		s.failPending(ctx, ex, fasthttp.StatusBadGateway, codeUpstream, msgUpstreamBad)
		return false
	}
	ctx.Response.Header.Set("Mcp-Session-Id", id)
	sid := auditSessionID([]byte(id))
	r.metrics.sessionStarted(sid, ctx)
	if s.audit != nil {
		ex.scope.version = append(ex.scope.version[:0], m.ProtocolVersion...)
		s.auditSession(&ex.scope, sid, true, &ex.client, "")
		ex.pending[0].session = sid
	}
	return true
}

func singleResponseHeader(h *fasthttp.ResponseHeader, name string) ([]byte, bool) {
	all := h.PeekAll(name)
	switch len(all) {
	case 0:
		return nil, true
	case 1:
		return all[0], true
	}
	return nil, false
}

// failPending answers the pending request (if one) with the gateway's
// error and records that no answer came for the pending calls.
func (s *Server) failPending(ctx *fasthttp.RequestCtx, ex *exchange, status, code int, msg string) {
	if msg == msgUpstreamBad {
		ex.hdr.outcome.upstreamFailed(upstreamBadResponse)
	}
	s.auditUnanswered(ex, code, msg)
	writeRPCError(ctx, status, firstID(ex), code, msg)
}

func firstID(ex *exchange) []byte {
	if len(ex.pending) == 1 {
		return ex.pending[0].id
	}
	return nil
}

// writeUpstreamError answers a failed upstream exchange with 502 (or 504)
// and a JSON-RPC error body.
func (s *Server) writeUpstreamError(ctx *fasthttp.RequestCtx, ex *exchange, err error) {
	status, msg := fasthttp.StatusBadGateway, msgUpstreamDown
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, fasthttp.ErrTimeout) || (errors.As(err, &ne) && ne.Timeout()) {
		status, msg = fasthttp.StatusGatewayTimeout, msgUpstreamTimeout
	} else if errors.Is(err, errBodyTooLarge) {
		msg = msgUpstreamBad
	}
	if msg != msgUpstreamBad { // failPending counts those
		ex.hdr.outcome.upstreamFailed(upstreamErrorKindOf(err))
	}
	s.upstreamFailures.noteFor(s.log, err, requestIDOf(ctx))
	s.failPending(ctx, ex, status, codeUpstream, msg)
}

// failureLog logs failures of one kind (upstream exchanges, audit writes)
// at most once a second, each line counting the failures it stands for: an
// upstream that is down fails every request, and nothing is logged per
// message (STYLE.md).
type failureLog struct {
	msg   string       // the line's message; "upstream exchange failed" if empty
	last  atomic.Int64 // unix nanoseconds of the last line
	count atomic.Int64 // failures since the last line
}

func (f *failureLog) note(log *slog.Logger, err error) { f.noteFor(log, err, nil) }

// noteFor is note for the request whose id is requestID: a line written
// now names it (not the other failures the line counts).
func (f *failureLog) noteFor(log *slog.Logger, err error, requestID []byte) {
	n := f.count.Add(1)
	now := time.Now().UnixNano()
	last := f.last.Load()
	if now-last < int64(time.Second) || !f.last.CompareAndSwap(last, now) {
		return
	}
	f.count.Add(-n)
	msg := f.msg
	if msg == "" {
		msg = "upstream exchange failed"
	}
	if len(requestID) > 0 {
		log.Warn(msg, "error", err.Error(), "failures", n, "request_id", string(requestID))
		return
	}
	log.Warn(msg, "error", err.Error(), "failures", n)
}

var errBodyTooLarge = errors.New("proxy: upstream message too large")
