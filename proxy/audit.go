package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"regexp"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/mcpgw/mcpgw/auditlog"
	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/jsonrpc"
)

// What the proxy records (DESIGN.md section 6), when Options.Audit is set:
//
//   - Every client message that reaches a decision: one activity record
//     with the decision, the rule and reason behind it, the arguments (per
//     audit.arguments) and bytes_in. In sync mode the record of a message
//     that is forwarded is durable before it is forwarded (Log.Append, group
//     commit); the records of refused messages are enqueued.
//   - Every answer to a forwarded request, from a JSON body or an SSE
//     event, or the gateway's error when none came: one response record
//     (status, error code, latency, bytes_out; for lists, what was served
//     after filtering). Enqueued: it never holds the response.
//   - Every other message the upstream sends on a stream (notifications,
//     progress tied to the call that asked for it, server requests), and
//     the events the gateway drops.
//   - Sessions: a session record when initialize mints one (device, groups,
//     negotiated version) and when the client deletes it.
//
// Session ids are bearer-like values and never reach the log: a record's
// session_id is the first 96 bits of the SHA-256 of the Mcp-Session-Id,
// in hex (auditSessionID).
//
// A failed Append (the spool stopped after a write error) and, with
// audit.when_full: reject, a full spool refuse the message with 503: a
// call the gateway cannot record is not made.

// ArgumentsMode is audit.arguments.
type ArgumentsMode uint8

const (
	ArgumentsFull     ArgumentsMode = iota // record arguments as sent
	ArgumentsRedacted                      // replace the values of keys AuditPolicy.Redact matches
	ArgumentsNone                          // record no arguments
)

// AuditPolicy is the reloadable part of audit: what records hold, and what
// a full spool means.
type AuditPolicy struct {
	Arguments ArgumentsMode
	// Redact matches the argument keys whose values are replaced in
	// ArgumentsRedacted mode (audit.redact, combined).
	Redact *regexp.Regexp
	// RejectWhenFull refuses tools/call with 503 while the spool is full
	// (audit.when_full: reject); reads keep working.
	RejectWhenFull bool
}

// maxServedNames caps the names a list's response record carries.
const maxServedNames = 1000

// auditScope is who and where, common to the records of one exchange or
// stream. The strings are the route's and the principal's, which outlive
// both; ua and addr are owned copies.
type auditScope struct {
	app     string
	user    string
	groups  []string
	session string // auditSessionID of the session; "" without one
	version []byte // the session's protocol version, or a modern request's
	ua      []byte // sessionless records carry the device
	addr    []byte
	tok     []byte // scratch: a progress token, as JSON
}

// set fills the scope for a request.
func (sc *auditScope) set(ctx *fasthttp.RequestCtx, r *route, p *identity.Principal, session string) {
	sc.app, sc.user, sc.groups, sc.session = r.name, p.User, p.Groups, session
	sc.version = sc.version[:0]
	sc.ua = append(sc.ua[:0], ctx.Request.Header.UserAgent()...)
	sc.addr = appendRemoteAddr(sc.addr[:0], ctx.RemoteAddr())
}

func (sc *auditScope) copyFrom(o *auditScope) {
	sc.app, sc.user, sc.groups, sc.session = o.app, o.user, o.groups, o.session
	sc.version = append(sc.version[:0], o.version...)
	sc.ua = append(sc.ua[:0], o.ua...)
	sc.addr = append(sc.addr[:0], o.addr...)
}

func (sc *auditScope) reset() {
	sc.app, sc.user, sc.groups, sc.session = "", "", nil, ""
	sc.version, sc.ua, sc.addr = sc.version[:0], sc.ua[:0], sc.addr[:0]
}

// record starts an activity record of this scope in rec.
func (sc *auditScope) record(rec *auditlog.Record) *auditlog.Record {
	*rec = auditlog.Record{
		Kind:         auditlog.KindActivity,
		SessionID:    sc.session,
		App:          sc.app,
		User:         sc.user,
		ResourceType: auditlog.ResourceTypeMCP,
	}
	if sc.session == "" {
		rec.Groups = sc.groups
		rec.Device = auditlog.Device{UserAgent: b2s(sc.ua), RemoteAddr: b2s(sc.addr)}
		rec.ProtocolVersion = b2s(sc.version)
	}
	return rec
}

func appendRemoteAddr(dst []byte, a net.Addr) []byte {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().AppendTo(dst)
	}
	if a == nil {
		return dst
	}
	return append(dst, a.String()...)
}

// auditSessionID is what audit records call a session (see above).
func auditSessionID(sid []byte) string {
	h := sha256.Sum256(sid)
	return hex.EncodeToString(h[:12])
}

// b2s returns b as a string without copying. It is the one unsafe
// conversion of the package, used for audit records only: Log.Append and
// Enqueue encode a record before they return and keep nothing of it, and
// b is not modified before then.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// messageKind is the record's message for a client or upstream message.
func messageKind(k jsonrpc.Kind) auditlog.MessageKind {
	switch k {
	case jsonrpc.KindRequest:
		return auditlog.MessageRequest
	case jsonrpc.KindNotification:
		return auditlog.MessageNotification
	}
	return auditlog.MessageResponse
}

// writeAudit adds rec to the log: durably before returning when wait is
// set and the log is in sync mode, else enqueued.
func (s *Server) writeAudit(rec *auditlog.Record, wait bool) error {
	var err error
	if wait {
		_, err = s.audit.Append(rec)
	} else {
		_, err = s.audit.Enqueue(rec)
	}
	if err != nil {
		s.auditFailures.note(s.log, err)
	}
	return err
}

// auditClient records a client message and the decision on it. forward
// says the message is about to be forwarded: in sync mode its record must
// be durable first (wait). It returns false when the record could not be
// written; the caller then refuses the message.
func (s *Server) auditClient(r *route, ex *exchange, m *jsonrpc.Message, v *verdict, bytesIn int, wait bool) bool {
	ex.hdr.outcome.note(m, v) // every decided message passes here: metrics.go
	if s.audit == nil {
		return true
	}
	rec := ex.scope.record(&ex.rec)
	rec.Direction = auditlog.ClientToServer
	rec.Message = messageKind(m.Kind)
	rec.Method = b2s(m.Method)
	rec.JSONRPCID = m.ID
	rec.Name = b2s(m.Name)
	rec.Arguments = auditArguments(r, ex, m.Arguments)
	rec.ProgressToken = m.ProgressToken
	rec.Decision, rec.Rule, rec.Reason = v.decision, v.rule, v.reason
	if rec.Decision == "" {
		rec.Decision = auditlog.DecisionAllow
	}
	if v.refused() {
		rec.Status, rec.ErrorCode = auditlog.StatusError, int64(v.code)
		if rec.Reason == "" {
			rec.Reason = v.msg
		}
	}
	rec.BytesIn = int64(bytesIn)
	return s.writeAudit(rec, wait) == nil
}

// auditRefusal records a client request refused before its message could
// be read or placed (bad headers, an unknown session, an unreadable body).
func (s *Server) auditRefusal(ctx *fasthttp.RequestCtx, r *route, p *identity.Principal, reason string) {
	if s.audit == nil {
		return
	}
	var sc auditScope
	sc.set(ctx, r, p, "")
	var rec auditlog.Record
	s.auditRefused(&sc, &rec, auditlog.ClientToServer, reason, len(ctx.Request.Body()))
}

// auditRefused records, in scope sc, a message the gateway could not read
// and did not pass on (bytesIn: its size).
func (s *Server) auditRefused(sc *auditScope, rec *auditlog.Record, dir auditlog.Direction, reason string, bytesIn int) {
	if s.audit == nil {
		return
	}
	sc.record(rec)
	rec.Direction = dir
	rec.Decision = auditlog.DecisionRefused
	rec.Reason = reason
	rec.Status = auditlog.StatusError
	rec.BytesIn = int64(bytesIn)
	_ = s.writeAudit(rec, false)
}

// auditArguments returns params.arguments as audit.arguments wants them.
func auditArguments(r *route, ex *exchange, args []byte) []byte {
	if len(args) == 0 {
		return nil
	}
	switch r.audit.Arguments {
	case ArgumentsNone:
		return nil
	case ArgumentsRedacted:
		re := r.audit.Redact
		out, err := ex.redactor.AppendRedacted(ex.argBuf[:0], args, func(key []byte) bool {
			return re != nil && re.Match(key)
		})
		if err != nil {
			return nil // Scan checked the span; never reached
		}
		ex.argBuf = out
		return out
	}
	return args
}

// auditOutcome records the answer to a pending call: m (a result or an
// error) and the bytes sent for it, or, with m nil, the gateway's own
// error code and reason when no answer came.
func (s *Server) auditOutcome(sc *auditScope, rec *auditlog.Record, pc *pendingCall, m *jsonrpc.Message, code int, reason string, bytesOut int, served []byte) {
	if s.audit == nil || pc.audited {
		return
	}
	pc.audited = true
	sc.record(rec)
	if pc.session != "" {
		rec.SessionID = pc.session // initialize: the session it opened
	}
	rec.Direction = auditlog.ServerToClient
	rec.Message = auditlog.MessageResponse
	rec.Method = b2s(pc.method)
	rec.JSONRPCID = pc.id
	rec.Name = b2s(pc.name)
	switch {
	case m == nil:
		rec.Status, rec.ErrorCode, rec.Reason = auditlog.StatusError, int64(code), reason
	case m.Kind == jsonrpc.KindError:
		rec.Status, rec.ErrorCode = auditlog.StatusError, m.ErrorCode
	default:
		rec.Status = auditlog.StatusOK
	}
	rec.LatencyUS = time.Since(pc.start).Microseconds()
	rec.BytesOut = int64(bytesOut)
	rec.Served = served
	_ = s.writeAudit(rec, false)
}

// auditUnanswered records the gateway's error for every pending call of ex
// that got no answer.
func (s *Server) auditUnanswered(ex *exchange, code int, reason string) {
	for i := range ex.pending {
		s.auditOutcome(&ex.scope, &ex.rec, &ex.pending[i], nil, code, reason, 0, nil)
	}
}

// auditUpstream records one message from the upstream that is not the
// answer to a pending call: a notification (progress tied to the call that
// asked for it by its progress token), a server request, or a response
// the gateway cannot tie to a call of this exchange (a replay on a GET
// stream). dropped, when not empty, says why the gateway did not pass the
// message on.
func (s *Server) auditUpstream(sc *auditScope, rec *auditlog.Record, pending []pendingCall, m *jsonrpc.Message, bytesOut int, dropped string, scratch []byte) {
	if s.audit == nil {
		return
	}
	sc.record(rec)
	rec.Direction = auditlog.ServerToClient
	rec.Message = messageKind(m.Kind)
	rec.Method = b2s(m.Method)
	rec.JSONRPCID = m.ID
	switch m.Kind {
	case jsonrpc.KindNotification:
		if string(m.Method) == "notifications/progress" {
			tok, kind, found, err := jsonrpc.Lookup(m.Params, "/progressToken", scratch)
			if err == nil && found && (kind == jsonrpc.ValueString || kind == jsonrpc.ValueNumber) {
				if kind == jsonrpc.ValueString {
					tok = jsonrpc.AppendQuoted(sc.tok[:0], b2s(tok)) // Lookup decoded it
					sc.tok = tok
				}
				rec.ProgressToken = tok
				for i := range pending {
					if pc := &pending[i]; bytes.Equal(pc.progress, tok) {
						rec.JSONRPCID, rec.Name = pc.id, b2s(pc.name)
						break
					}
				}
			}
		}
	case jsonrpc.KindResult:
		rec.Status = auditlog.StatusOK
	case jsonrpc.KindError:
		rec.Status, rec.ErrorCode = auditlog.StatusError, m.ErrorCode
	}
	rec.Decision = auditlog.DecisionAllow
	if dropped != "" {
		rec.Decision, rec.Reason = auditlog.DecisionDeny, dropped
	}
	rec.BytesOut = int64(bytesOut)
	_ = s.writeAudit(rec, false)
}

// auditSession records a session's start (the initialize result that
// minted it) or its end.
func (s *Server) auditSession(sc *auditScope, session string, started bool, client *clientInfo, reason string) {
	if s.audit == nil {
		return
	}
	rec := auditlog.Record{
		Kind:         auditlog.KindSession,
		SessionID:    session,
		App:          sc.app,
		User:         sc.user,
		ResourceType: auditlog.ResourceTypeMCP,
		Reason:       reason,
	}
	if started {
		rec.Groups = sc.groups
		rec.Device = auditlog.Device{
			ClientName:    b2s(client.name),
			ClientVersion: b2s(client.version),
			UserAgent:     b2s(sc.ua),
			RemoteAddr:    b2s(sc.addr),
		}
		rec.ProtocolVersion = b2s(sc.version)
		rec.Method = "initialize"
		rec.Status = auditlog.StatusStarted
	} else {
		rec.Status = auditlog.StatusEnded
	}
	_ = s.writeAudit(&rec, false)
}

// recordPool holds the records of relays, which write one per event but
// must not carry one while idle.
var recordPool = sync.Pool{New: func() any { return new(auditlog.Record) }}

func acquireRecord() *auditlog.Record { return recordPool.Get().(*auditlog.Record) }

func releaseRecord(r *auditlog.Record) {
	*r = auditlog.Record{} // keeps no buffer of the stream alive
	recordPool.Put(r)
}

// clientInfo is what a client declared at initialize: its clientInfo and
// whether it takes URL-mode elicitation (capabilities.elicitation.url).
type clientInfo struct {
	name, version []byte
	elicitURL     bool
}

// servedNames collects what a list response showed the caller, as the
// record's served member: {"count":N,"names":[...]}.
type servedNames struct {
	on    bool
	count int
	names []byte // the names, quoted and comma-separated
	out   []byte
}

func (sn *servedNames) reset(on bool) {
	sn.on, sn.count, sn.names = on, 0, sn.names[:0]
}

func (sn *servedNames) add(name []byte) {
	if !sn.on {
		return
	}
	sn.count++
	if sn.count > maxServedNames {
		return
	}
	if sn.count > 1 {
		sn.names = append(sn.names, ',')
	}
	sn.names = jsonrpc.AppendQuoted(sn.names, b2s(name))
}

// json returns the served member, or nil when nothing was collected.
func (sn *servedNames) json() []byte {
	if !sn.on {
		return nil
	}
	out := append(sn.out[:0], `{"count":`...)
	out = strconv.AppendInt(out, int64(sn.count), 10)
	out = append(out, `,"names":[`...)
	out = append(out, sn.names...)
	out = append(out, ']')
	if sn.count > maxServedNames {
		out = append(out, `,"truncated":true`...)
	}
	sn.out = append(out, '}')
	return sn.out
}
