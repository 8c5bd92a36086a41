package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/mcpgw/mcpgw/auditlog"
	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/jsonrpc"
	"github.com/mcpgw/mcpgw/policycache"
)

var (
	keepAliveComment = []byte(": keepalive\n\n")
	errClientGone    = errors.New("proxy: client went away")
)

// relay streams one upstream SSE response to the client event by event,
// flushing after each, never buffering the stream (DESIGN.md section 4).
// It runs in fasthttp's stream-writer goroutine after the handler has
// returned, so it owns copies of everything it needs and no RequestCtx.
type relay struct {
	s        *Server
	r        *route
	resp     *upResponse
	reader   *jsonrpc.EventReader
	scan     jsonrpc.Scanner
	msg      jsonrpc.Message
	filter   *jsonrpc.Filter // from filterPool, taken at the first list to filter
	ev       jsonrpc.Event
	subject  policycache.Subject
	names    listFilter
	pending  []pendingCall
	answered int
	out      []byte
	tmp, alt []byte // scratch; filterEvent alternates between them
	// chunk is the chunk being written; before the first, the serialized
	// response headers of a long-lived stream (one buffer for both keeps
	// the relay in the 2 KiB size class).
	chunk     []byte
	modern    bool
	listen    bool // a standalone GET stream: no originating request
	long      bool // lives as long as the client wants: hijacked (serve)
	priming   bool // forward priming events (client negotiated >= 2025-11-25)
	keepAlive time.Duration
	maxEvent  int

	// Audit (audit.go). Records come from recordPool, not from here: an
	// idle stream's relay must stay small (300 MiB for 10,000 streams).
	scope  auditScope
	served servedNames

	closeOnce sync.Once
}

var relayPool = sync.Pool{New: func() any { return new(relay) }}

// filterPool holds list filters for relays: most streams never carry a
// list, and an idle relay without one stays in a smaller size class
// (1.4 KiB less for each of ten thousand idle streams).
var filterPool = sync.Pool{New: func() any { return new(jsonrpc.Filter) }}

// startRelay answers the client with an SSE stream fed from resp.
//
// A stream that lives as long as the client wants it (a standalone GET
// stream, a 2026-07-28 subscriptions/listen) takes its connection over; a
// request's stream, which ends with its answer, keeps the connection for
// the client's next request.
func (s *Server) startRelay(ctx *fasthttp.RequestCtx, r *route, ex *exchange, resp *upResponse, sess *identity.Session, modern, listen, long bool) {
	rl := relayPool.Get().(*relay)
	rl.s, rl.r, rl.resp = s, r, resp
	rl.subject = ex.subject
	rl.pending = rl.pending[:0]
	for i := range ex.pending {
		if len(rl.pending) < cap(rl.pending) {
			rl.pending = rl.pending[:len(rl.pending)+1]
		} else {
			rl.pending = append(rl.pending, pendingCall{})
		}
		rl.pending[len(rl.pending)-1].copyFrom(&ex.pending[i])
	}
	rl.scope.copyFrom(&ex.scope)
	rl.answered = 0
	rl.modern, rl.listen, rl.long = modern, listen, long
	rl.priming = modern || sess.ProtocolVersion >= version20251125
	rl.keepAlive = r.keepAlive
	rl.closeOnce = sync.Once{}
	if rl.reader == nil || rl.maxEvent != r.maxBody {
		rl.reader = jsonrpc.NewEventReader(resp, r.maxBody)
		rl.maxEvent = r.maxBody
	} else {
		rl.reader.Reset(resp)
	}

	h := &ctx.Response.Header
	h.SetContentType("text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// Reverse proxies in front of the gateway must not buffer the stream
	// (MCP-REQUIREMENTS.md P-2, 1.8.8).
	h.Set("X-Accel-Buffering", "no")
	h.SetStatusCode(fasthttp.StatusOK)
	if !long {
		// The headers go out at once, before the first event.
		ctx.Response.ImmediateHeaderFlush = true
		ctx.SetBodyStreamWriter(rl.run)
		return
	}
	h.SetContentLength(-1) // chunked
	h.SetConnectionClose()
	rl.chunk = h.AppendBytes(rl.chunk[:0])
	// The stream takes its connection over: fasthttp's connection goroutine
	// and buffers go, and the relay writes HTTP/1.1 chunks straight to the
	// socket, one write per event. An idle stream then costs a goroutine
	// blocked on the upstream, the watcher and a few small buffers, which
	// is what holding ten thousand of them needs.
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(rl.serve)
}

// abortUpstream breaks the upstream connection off, at most once, so that
// a pump blocked reading it returns (the client left, or the gateway is
// shutting down).
func (rl *relay) abortUpstream() {
	rl.closeOnce.Do(func() { rl.resp.Abort() })
}

func (rl *relay) release() {
	// No abort reaches the response after this: it goes back to its pool.
	rl.closeOnce.Do(func() {})
	releaseUpResponse(rl.resp)
	rl.reader.Reset(nil)
	rl.s, rl.r, rl.resp = nil, nil, nil
	for i := range rl.pending {
		rl.pending[i].reset()
	}
	rl.scope.reset()
	if rl.filter != nil {
		filterPool.Put(rl.filter)
		rl.filter = nil
	}
	rl.subject = policycache.Subject{}
	rl.names = listFilter{}
	rl.msg.Reset()
	rl.out, rl.tmp, rl.alt = rl.out[:0], rl.tmp[:0], rl.alt[:0]
	relayPool.Put(rl)
}

// run relays a request's stream through fasthttp's stream writer, which
// keeps the connection for the client's next request. Nothing watches the
// connection meanwhile (fasthttp reads the next request from it
// afterwards), so a departed client is noticed at the next write: an event
// or a keep-alive comment.
func (rl *relay) run(w *bufio.Writer) {
	defer rl.release()
	if !rl.s.track(rl) {
		return
	}
	defer rl.s.untrack(rl)
	defer rl.r.metrics.streamStarted(streamResponse).Add(-1)
	rl.pump(func(p []byte, flush bool) error {
		if _, err := w.Write(p); err != nil || !flush {
			return err
		}
		return w.Flush()
	}, nil)
}

// serve runs a long-lived stream on the hijacked connection c: it writes
// the headers, then one chunk per event, and watches c for the client
// leaving. fasthttp closes c when serve returns.
func (rl *relay) serve(c net.Conn) {
	defer rl.release()
	if !rl.s.track(rl) {
		return
	}
	defer rl.s.untrack(rl)
	defer rl.r.metrics.streamStarted(streamListen).Add(-1)
	if _, err := c.Write(rl.chunk); err != nil {
		return
	}
	rl.chunk = rl.chunk[:0]
	if !rl.pump(func(p []byte, flush bool) error {
		if len(p) > 0 { // an empty chunk would end the body
			rl.chunk = appendChunk(rl.chunk, p)
		}
		if !flush || len(rl.chunk) == 0 {
			return nil
		}
		_, err := c.Write(rl.chunk)
		rl.chunk = rl.chunk[:0]
		return err
	}, c) {
		_, _ = c.Write(lastChunk)
	}
}

// pump reads upstream events and sends what process makes of them, with
// keep-alive comments from a timer in between, under one mutex. send is
// asked to flush after an event unless the next one has already arrived
// (EventReader.Buffered): events that arrived together leave together in
// one write, and none waits for one that has not arrived. When the
// client goes away, a 2026-07-28 request (and a standalone stream) is
// cancelled by closing the upstream; a legacy request is drained to its end
// instead, since disconnection is not cancellation there
// (MCP-REQUIREMENTS.md 1.2.7, 1.8.9). watch, when not nil, is the client's
// connection, read by a watcher goroutine that notices the client leaving
// at once; pump stops the watcher and waits for it before returning. It
// reports whether the client went away.
func (rl *relay) pump(send func(p []byte, flush bool) error, watch net.Conn) bool {
	var (
		mu   sync.Mutex // guards send, gone and done
		gone bool
		done bool
		ka   *time.Timer
	)
	cancels := rl.modern || rl.listen
	// write sends p; mu must be held.
	write := func(p []byte, flush bool) {
		if gone {
			return
		}
		if send(p, flush) != nil {
			gone = true
			if cancels {
				rl.abortUpstream()
			}
		}
	}
	ka = time.AfterFunc(rl.keepAlive, func() {
		mu.Lock()
		defer mu.Unlock()
		if done || gone {
			return
		}
		write(keepAliveComment, true)
		ka.Reset(rl.keepAlive)
	})

	var watcher chan struct{}
	if watch != nil {
		// While the response streams, nothing else reads the connection:
		// EOF or an error means the client is gone, which a write would
		// only find at the next event or keep-alive.
		watcher = make(chan struct{})
		go func() {
			defer close(watcher)
			var b [1]byte
			_, _ = watch.Read(b[:])
			mu.Lock()
			defer mu.Unlock()
			if done || gone {
				return
			}
			gone = true
			if cancels {
				rl.abortUpstream()
			}
		}()
	}

	var readErr error
	for {
		if err := rl.reader.Next(&rl.ev); err != nil {
			readErr = err
			break
		}
		out := rl.process()
		more := rl.reader.Buffered()
		if out == nil {
			if !more {
				mu.Lock()
				write(nil, true) // what earlier events left unflushed
				mu.Unlock()
			}
			continue
		}
		mu.Lock()
		write(out, !more)
		g := gone
		mu.Unlock()
		if g && cancels {
			break
		}
		ka.Reset(rl.keepAlive)
	}

	if readErr != nil && readErr != io.EOF && !errors.Is(readErr, errClientGone) {
		rl.r.metrics.upstream[upstreamErrorKindOf(readErr)].Add(1) // after Handle: counted here
	}
	mu.Lock()
	write(nil, true) // nothing stays unflushed
	if !gone && readErr != nil && readErr != io.EOF && !rl.listen && rl.answered < len(rl.pending) {
		// The upstream failed mid-stream: answer what is still open so
		// the client does not wait forever. A clean end without an
		// answer is left alone: the client may resume the stream.
		for _, p := range rl.pending {
			ev := jsonrpc.Event{HasData: true, Data: jsonrpc.AppendError(rl.tmp[:0], p.id, codeUpstream, msgUpstreamDown, nil)}
			rl.out = jsonrpc.AppendEvent(rl.out[:0], &ev)
			write(rl.out, true)
		}
	}
	done = true
	g := gone
	mu.Unlock()
	ka.Stop()
	for i := range rl.pending {
		reason := msgNoAnswer
		if readErr != nil && readErr != io.EOF {
			reason = msgUpstreamDown
		}
		rec := acquireRecord()
		rl.s.auditOutcome(&rl.scope, rec, &rl.pending[i], nil, codeUpstream, reason, 0, nil)
		releaseRecord(rec)
	}
	if watcher != nil {
		// fasthttp recycles the hijacked connection's wrapper once serve
		// returns: the watcher must be out of it by then.
		_ = watch.SetReadDeadline(time.Now())
		<-watcher
	}
	return g
}

// lastChunk ends a chunked body (RFC 9112 section 7.1).
var lastChunk = []byte("0\r\n\r\n")

// appendChunk frames p as one HTTP/1.1 chunk: its size in hex, CRLF, the
// bytes, CRLF.
func appendChunk(dst, p []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(p)), 16)
	dst = append(dst, '\r', '\n')
	dst = append(dst, p...)
	return append(dst, '\r', '\n')
}

// process decides what to send for the current event: its exact bytes, a
// rewritten event, or nothing. Every message is recorded (audit.go).
func (rl *relay) process() []byte {
	ev := &rl.ev
	if ev.Comment || !ev.HasData {
		return ev.Raw
	}
	if len(ev.Data) == 0 {
		// Priming event (SEP-1699): old clients crash on empty data
		// (MCP-REQUIREMENTS.md 1.4.4, P-14).
		if rl.priming {
			return ev.Raw
		}
		return nil
	}
	m := &rl.msg
	if err := rl.scan.Scan(ev.Data, m); err != nil {
		// Not readable with certainty: never passed on.
		if rl.s.audit != nil {
			rec := acquireRecord()
			rl.s.auditRefused(&rl.scope, rec, auditlog.ServerToClient, msgParse+": "+err.Error(), len(ev.Data))
			releaseRecord(rec)
		}
		return nil
	}
	rl.served.reset(false)
	out, pc, dropped := rl.decide(m)
	if rl.s.audit != nil {
		rec := acquireRecord()
		if pc != nil {
			rl.s.auditOutcome(&rl.scope, rec, pc, m, 0, "", len(out), rl.served.json())
		} else {
			rl.s.auditUpstream(&rl.scope, rec, rl.pending, m, len(out), dropped, rl.tmp[:0])
		}
		releaseRecord(rec)
	}
	return out
}

// decide is process for a message that scanned: what to send, the call it
// answers (nil: none of this stream's), and why it was dropped.
func (rl *relay) decide(m *jsonrpc.Message) (out []byte, pc *pendingCall, dropped string) {
	ev := &rl.ev
	switch m.Kind {
	case jsonrpc.KindResult, jsonrpc.KindError:
		list := jsonrpc.ListNone
		for i := range rl.pending {
			if bytes.Equal(rl.pending[i].id, m.ID) {
				pc = &rl.pending[i]
				list = pc.list
				rl.answered++
				break
			}
		}
		if m.Kind == jsonrpc.KindError {
			return ev.Raw, pc, ""
		}
		if rl.listen {
			// A response on a GET stream is a replay of another stream;
			// its request is unknown here, so every list shape is
			// filtered.
			return rl.filterEvent(jsonrpc.ListTools, jsonrpc.ListPrompts, jsonrpc.ListResources, jsonrpc.ListResourceTemplates), pc, ""
		}
		if list != jsonrpc.ListNone {
			rl.served.reset(rl.s.audit != nil)
			return rl.filterEvent(list), pc, ""
		}
		return ev.Raw, pc, ""
	case jsonrpc.KindNotification:
		if bytes.Equal(m.Method, []byte("notifications/resources/updated")) {
			// Updates about a resource the caller may not read are dropped
			// (MCP-REQUIREMENTS.md 3.3).
			uri, kind, found, err := jsonrpc.Lookup(m.Params, "/uri", rl.tmp[:0])
			if err != nil || !found || kind != jsonrpc.ValueString {
				return nil, nil, "resource update without a readable uri"
			}
			if rl.r.policy.Decide(&rl.subject, policycache.KindResource, uri, nil).Effect != policycache.Allow {
				return nil, nil, "resource not visible to the caller"
			}
		}
	}
	return ev.Raw, nil, ""
}

// filterEvent filters the current event's data by the given list kinds and
// re-frames it, keeping its id and event type.
func (rl *relay) filterEvent(kinds ...jsonrpc.ListKind) []byte {
	// Each pass reads the previous pass's output and writes into the
	// other of two buffers the relay keeps.
	data := rl.ev.Data
	for _, k := range kinds {
		rl.names = listFilter{policy: rl.r.policy, subject: &rl.subject, kind: listPolicyKind(k), served: &rl.served}
		if rl.filter == nil {
			rl.filter = filterPool.Get().(*jsonrpc.Filter)
		}
		out, _, err := rl.filter.AppendFiltered(rl.tmp[:0], data, k, &rl.names, jsonrpc.FilterOptions{PrivateCache: rl.modern})
		if err != nil {
			return nil
		}
		data = out
		rl.tmp, rl.alt = rl.alt, out
	}
	ev := rl.ev
	ev.Data = data
	rl.out = jsonrpc.AppendEvent(rl.out[:0], &ev)
	return rl.out
}

// relayInitStream handles an initialize answered with SSE: the session id
// header must precede the body, so the stream is read up to the initialize
// response (bounded by max_body), the session minted, and what was read sent
// as one SSE body.
func (s *Server) relayInitStream(ctx *fasthttp.RequestCtx, r *route, ex *exchange, p *identity.Principal, resp *upResponse) {
	defer releaseUpResponse(resp)
	rd := jsonrpc.NewEventReader(resp, r.maxBody)
	var ev jsonrpc.Event
	out := ex.out[:0]
	var prime []byte
	found := false
	for !found {
		if err := rd.Next(&ev); err != nil {
			if err == io.EOF {
				break
			}
			s.writeUpstreamError(ctx, ex, err)
			return
		}
		switch {
		case ev.Comment || !ev.HasData:
			continue
		case len(ev.Data) == 0:
			prime = append(prime, ev.Raw...)
			continue
		}
		if err := ex.scan.Scan(ev.Data, &ex.msg); err != nil {
			continue
		}
		if (ex.msg.Kind == jsonrpc.KindResult || ex.msg.Kind == jsonrpc.KindError) && bytes.Equal(ex.msg.ID, ex.pending[0].id) {
			found = true
		} else {
			s.auditUpstream(&ex.scope, &ex.rec, ex.pending, &ex.msg, len(ev.Raw), "", ex.tmp[:0])
		}
		out = append(out, ev.Raw...)
		if len(out) > r.maxBody {
			s.writeUpstreamError(ctx, ex, errBodyTooLarge)
			return
		}
	}
	if !found {
		s.failPending(ctx, ex, fasthttp.StatusBadGateway, codeUpstream, msgUpstreamBad)
		return
	}
	if !s.mintSession(ctx, r, ex, p, resp) {
		return
	}
	s.auditOutcome(&ex.scope, &ex.rec, &ex.pending[0], &ex.msg, 0, "", len(out), nil)
	if len(prime) > 0 && ex.msg.Kind == jsonrpc.KindResult && string(ex.msg.ProtocolVersion) >= version20251125 {
		out = append(prime, out...)
	}
	ex.out = out
	h := &ctx.Response.Header
	h.SetContentType("text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.SetBody(out)
}

// track registers a running stream so Shutdown can end it; false when the
// gateway is shutting down and the stream would outlive the drain.
func (s *Server) track(rl *relay) bool {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	// A call answered as a stream is in flight like any other and may
	// finish while the gateway drains; a long-lived stream would not.
	if s.closing && (rl.long || s.cut) {
		return false
	}
	s.streams[rl] = struct{}{}
	s.streamsDone.Add(1)
	return true
}

func (s *Server) untrack(rl *relay) {
	s.streamsMu.Lock()
	delete(s.streams, rl)
	s.streamsMu.Unlock()
	s.streamsDone.Done()
}
