package proxy

import (
	"bytes"
	"errors"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/mcpgw/mcpgw/auditlog"
	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/jsonrpc"
	"github.com/mcpgw/mcpgw/policycache"
)

// Protocol versions (MCP-REQUIREMENTS.md section 0).
const (
	version20250326 = "2025-03-26"
	version20251125 = "2025-11-25"
	versionModern   = "2026-07-28"
)

// supportedVersionsPrefix opens data of -32022 (2026-07-28): the versions
// the gateway serves.
const supportedVersionsPrefix = `{"supported":["2026-07-28","2025-11-25","2025-06-18","2025-03-26","2024-11-05"]`

// servePost handles one client→server message (or a 2025-03-26 batch).
func (s *Server) servePost(ctx *fasthttp.RequestCtx, r *route, p *identity.Principal, rh *reqHeaders) {
	if !isMediaType(ctx.Request.Header.ContentType(), "application/json") {
		s.auditRefusal(ctx, r, p, msgContentType)
		writeRPCError(ctx, fasthttp.StatusUnsupportedMediaType, nil, jsonrpc.InvalidRequest, msgContentType)
		return
	}
	sid, ok1 := rh.single(hdrSessionID, rh.sessionID)
	hdrVersion, ok2 := rh.single(hdrProtocolVersion, rh.protocolVersion)
	if !ok1 || !ok2 {
		s.auditRefusal(ctx, r, p, msgAmbiguousHeaders)
		writeRPCError(ctx, fasthttp.StatusBadRequest, nil, jsonrpc.InvalidRequest, msgAmbiguousHeaders)
		return
	}

	var sess identity.Session
	var auditSess string
	hasSession := len(sid) > 0
	if hasSession && !s.openSession(ctx, r, p, sid, &sess, &auditSess) {
		return
	}
	if hasSession && len(hdrVersion) > 0 && !isLegacyVersion(hdrVersion) {
		// An invalid or unsupported version gets 400 (MCP-REQUIREMENTS.md
		// 1.6.2). A supported version other than the negotiated one is
		// tolerated, as SDK servers do (the conformance suite sends
		// 2025-03-26 inside 2025-11-25 sessions): everything the gateway
		// decides by version uses the one bound into the session id.
		s.auditRefusal(ctx, r, p, msgVersionMismatch)
		writeRPCError(ctx, fasthttp.StatusBadRequest, nil, jsonrpc.InvalidRequest, msgVersionMismatch)
		return
	}

	ex := acquireExchange()
	defer releaseExchange(ex)
	ex.subject = subjectOf(p)
	ex.hdr = *rh
	defer rh.outcome.takeFrom(&ex.hdr.outcome) // for Handle's metrics
	if s.audit != nil {
		ex.start = time.Now()
		ex.scope.set(ctx, r, p, auditSess)
		ex.scope.version = append(ex.scope.version, sess.ProtocolVersion...)
	}

	body := ctx.PostBody()
	if jsonrpc.IsBatch(body) {
		ex.hdr.outcome.method = methodBatch
		// Batches only exist in 2025-03-26 (MCP-REQUIREMENTS.md 2.2).
		if !hasSession || sess.ProtocolVersion != version20250326 {
			s.auditRefusal(ctx, r, p, msgBatchRefused)
			writeRPCError(ctx, fasthttp.StatusBadRequest, nil, jsonrpc.InvalidRequest, msgBatchRefused)
			return
		}
		s.serveBatch(ctx, r, ex, &sess, body)
		return
	}

	m := &ex.msg
	if err := ex.scan.Scan(body, m); err != nil {
		s.auditRefusal(ctx, r, p, msgParse+": "+err.Error())
		writeScanError(ctx, err)
		return
	}

	modern := !hasSession && isModernRequest(m, hdrVersion)
	if modern {
		ex.scope.version = append(ex.scope.version[:0], m.MetaProtocolVersion...)
		if !s.validateModern(ctx, m, rh) {
			s.auditClient(r, ex, m, &verdict{decision: auditlog.DecisionRefused, code: jsonrpc.InvalidRequest, reason: msgModernChecks}, len(body), false)
			return
		}
	}
	if bytes.Equal(m.Method, []byte("initialize")) {
		if hasSession {
			s.refuse(ctx, r, ex, m, len(body), fasthttp.StatusBadRequest, jsonrpc.InvalidRequest, "Invalid Request: initialize inside an existing session")
			return
		}
		ex.client.name = append(ex.client.name[:0], m.ClientName...)
		ex.client.version = append(ex.client.version[:0], m.ClientVersion...)
		ex.client.elicitURL = m.ElicitationURL
	}
	// URL-mode elicitation exists from 2025-11-25 (MCP-REQUIREMENTS.md
	// 2.3); versions are dates, so they compare as strings.
	ex.elicitURL = hasSession && sess.ElicitationURL && sess.ProtocolVersion >= version20251125

	fwd := body
	if modern && m.Kind == jsonrpc.KindRequest && mayCarryApprovalState(m) {
		// Maybe the retry of a call the gateway answered input_required
		// for approval: the upstream never issued that state
		// (approval.go). A rare path, so a fresh buffer nothing below
		// reuses.
		nb, ours, err := withoutApprovalState(nil, m)
		if err != nil {
			s.refuse(ctx, r, ex, m, len(body), fasthttp.StatusBadRequest, jsonrpc.InvalidParams, "Invalid params: "+err.Error())
			return
		}
		if ours {
			fwd = nb
		}
	}
	switch m.Kind {
	case jsonrpc.KindRequest:
		v := s.authorize(r, ex, m, modern)
		if !v.refused() && r.audit.RejectWhenFull && s.audit != nil && bytes.Equal(m.Method, []byte("tools/call")) && s.audit.Full() {
			// Fail closed: a call the gateway may not be able to
			// record is not made; reads keep working.
			v = verdict{code: codeAuditUnavailable, msg: msgAuditFull, status: fasthttp.StatusServiceUnavailable,
				decision: auditlog.DecisionRefused, reason: msgAuditFull}
		}
		if v.refused() {
			s.auditClient(r, ex, m, &v, len(body), false)
			status := fasthttp.StatusOK
			if v.status != 0 {
				status = v.status
			}
			if v.result != nil {
				writeRPCResult(ctx, m.ID, v.result)
				return
			}
			writeRPCErrorData(ctx, status, m.ID, v.code, v.msg, v.data)
			return
		}
		if !s.auditClient(r, ex, m, &v, len(body), true) {
			writeRPCError(ctx, fasthttp.StatusServiceUnavailable, m.ID, codeAuditUnavailable, msgAuditDown)
			return
		}
		ex.addPending(m)
	case jsonrpc.KindNotification:
		if !knownClientNotification(m.Method) {
			s.refuse(ctx, r, ex, m, len(body), fasthttp.StatusBadRequest, jsonrpc.InvalidRequest, "Invalid Request: unknown notification")
			return
		}
		if !s.auditClient(r, ex, m, &verdict{}, len(body), true) {
			writeRPCError(ctx, fasthttp.StatusServiceUnavailable, nil, codeAuditUnavailable, msgAuditDown)
			return
		}
	case jsonrpc.KindResult, jsonrpc.KindError:
		// A client's answer to a server→client request (sampling,
		// elicitation, roots, ping) goes back to the issuing upstream
		// session (MCP-REQUIREMENTS.md 1.2.8). The modern era has none.
		if modern {
			s.refuse(ctx, r, ex, m, len(body), fasthttp.StatusBadRequest, jsonrpc.InvalidRequest, "Invalid Request: responses are not accepted in 2026-07-28")
			return
		}
		if !s.auditClient(r, ex, m, &verdict{}, len(body), true) {
			writeRPCError(ctx, fasthttp.StatusServiceUnavailable, nil, codeAuditUnavailable, msgAuditDown)
			return
		}
	default:
		s.refuse(ctx, r, ex, m, len(body), fasthttp.StatusBadRequest, jsonrpc.InvalidRequest, msgInvalidRequest)
		return
	}
	s.forwardPost(ctx, r, ex, p, &sess, fwd, modern)
	if !ex.relayed {
		s.auditUnanswered(ex, codeUpstream, msgNoAnswer)
	}
}

// refuse records and answers a client message refused for its form (not by
// policy). The error carries no id for notifications and responses.
func (s *Server) refuse(ctx *fasthttp.RequestCtx, r *route, ex *exchange, m *jsonrpc.Message, bytesIn, status, code int, msg string) {
	s.auditClient(r, ex, m, &verdict{decision: auditlog.DecisionRefused, code: code, msg: msg}, bytesIn, false)
	var id []byte
	if m.Kind == jsonrpc.KindRequest {
		id = m.ID
	}
	writeRPCError(ctx, status, id, code, msg)
}

// serveBatch checks every element of a 2025-03-26 batch on its own. If any
// element is refused, nothing is forwarded and every request element is
// answered with an error.
func (s *Server) serveBatch(ctx *fasthttp.RequestCtx, r *route, ex *exchange, sess *identity.Session, body []byte) {
	elems, err := ex.scan.SplitBatch(body, ex.elems[:0])
	ex.elems = elems
	if err != nil {
		writeScanError(ctx, err)
		return
	}
	refused := false
	verdicts := ex.verdicts[:0]
	out := append(ex.out[:0], '[')
	for i, el := range elems {
		m := &ex.msg
		if err := ex.scan.Scan(el, m); err != nil {
			s.auditRefused(&ex.scope, &ex.rec, auditlog.ClientToServer, msgParse+": "+err.Error(), len(body))
			writeScanError(ctx, err)
			return
		}
		if bytes.Equal(m.Method, []byte("initialize")) {
			// initialize MUST NOT be batched (MCP-REQUIREMENTS.md 2.2.1).
			s.refuse(ctx, r, ex, m, len(el), fasthttp.StatusBadRequest, jsonrpc.InvalidRequest, "Invalid Request: initialize in a batch")
			return
		}
		if i > 0 {
			out = append(out, ',')
		}
		v := verdict{}
		switch m.Kind {
		case jsonrpc.KindRequest:
			v = s.authorize(r, ex, m, false)
			if v.refused() {
				refused = true
				out = jsonrpc.AppendError(out, m.ID, v.code, v.msg, v.data)
			} else {
				out = jsonrpc.AppendError(out, m.ID, jsonrpc.InvalidRequest, msgBatchElementRefused, nil)
				ex.addPending(m)
			}
		case jsonrpc.KindNotification:
			if !knownClientNotification(m.Method) {
				s.refuse(ctx, r, ex, m, len(el), fasthttp.StatusBadRequest, jsonrpc.InvalidRequest, "Invalid Request: unknown notification")
				return
			}
			out = out[:len(out)-boolToInt(i > 0)]
		case jsonrpc.KindResult, jsonrpc.KindError:
			out = out[:len(out)-boolToInt(i > 0)]
		default:
			s.refuse(ctx, r, ex, m, len(el), fasthttp.StatusBadRequest, jsonrpc.InvalidRequest, msgInvalidRequest)
			return
		}
		verdicts = append(verdicts, v)
	}
	ex.verdicts = verdicts
	out = append(out, ']')
	ex.out = out
	if !s.auditBatch(r, ex, elems, refused) {
		writeRPCError(ctx, fasthttp.StatusServiceUnavailable, nil, codeAuditUnavailable, msgAuditDown)
		return
	}
	if refused {
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.Response.Header.SetContentType("application/json")
		ctx.Response.SetBody(out)
		return
	}
	ex.msg.Reset()
	s.forwardPost(ctx, r, ex, nil, sess, body, false)
	if !ex.relayed {
		s.auditUnanswered(ex, codeUpstream, msgNoAnswer)
	}
}

// auditBatch records each element of a batch with its verdict (the
// elements are scanned again: the scanner holds one message at a time).
// When one was refused, nothing is forwarded and the others are recorded
// as refused for that reason. Otherwise the last record waits: the
// records before it are then durable too.
func (s *Server) auditBatch(r *route, ex *exchange, elems [][]byte, refused bool) bool {
	if s.audit == nil {
		return true
	}
	for i, el := range elems {
		m := &ex.msg
		if ex.scan.Scan(el, m) != nil {
			panic("BUG: proxy: a batch element scanned once and not twice")
		}
		v := &ex.verdicts[i]
		if refused && !v.refused() {
			*v = verdict{code: jsonrpc.InvalidRequest, decision: auditlog.DecisionRefused, reason: msgBatchElementRefused}
		}
		if !s.auditClient(r, ex, m, v, len(el), !refused && i == len(elems)-1) {
			return false
		}
	}
	return true
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// verdict is the outcome of authorizing one request: the error to answer
// (code 0: none) and what the audit record says of it.
type verdict struct {
	code   int
	msg    string
	data   []byte
	status int
	// result, when set, answers a refused request with this result
	// instead of an error (a 2026-07-28 input-required result).
	result []byte

	decision auditlog.Decision // "": allow
	rule     string            // the rule that decided
	reason   string
}

func (v verdict) refused() bool { return v.code != 0 }

// authorize applies policy to a checked method (DESIGN.md "Policy
// semantics"); unchecked methods pass, unknown methods are refused.
func (s *Server) authorize(r *route, ex *exchange, m *jsonrpc.Message, modern bool) verdict {
	if modern && removedInModern(m.Method) {
		// 2026-07-28 removed these; unknown methods get 404 + -32601
		// (MCP-REQUIREMENTS.md 1.8.2, 3.4.5).
		return verdict{code: jsonrpc.MethodNotFound, msg: "Method not found", status: fasthttp.StatusNotFound,
			decision: auditlog.DecisionRefused, reason: "method removed in 2026-07-28"}
	}
	kind, checked := NameKind(m.Method)
	if !checked {
		switch string(m.Method) {
		case "completion/complete":
			// Authorized against the prompt or resource it references, or
			// it leaks their names and values (MCP-REQUIREMENTS.md 3.1).
			switch string(m.RefType) {
			case "ref/prompt":
				kind = policycache.KindPrompt
			case "ref/resource":
				kind = policycache.KindResource
			default:
				return verdict{code: jsonrpc.InvalidParams, msg: "Invalid params: unknown completion reference", decision: auditlog.DecisionRefused}
			}
		case "subscriptions/listen":
			return s.authorizeSubscriptions(r, ex, m, modern)
		case "initialize", "ping", "tools/list", "prompts/list", "resources/list",
			"resources/templates/list", "logging/setLevel", "server/discover",
			"tasks/get", "tasks/result", "tasks/cancel", "tasks/list":
			return verdict{}
		default:
			v := verdict{code: jsonrpc.MethodNotFound, msg: "Method not found", decision: auditlog.DecisionRefused, reason: "unknown method"}
			if modern {
				// 2026-07-28: unknown methods get 404 + -32601
				// (MCP-REQUIREMENTS.md 1.8.2).
				v.status = fasthttp.StatusNotFound
			}
			return v
		}
	}
	if len(m.Name) == 0 {
		return verdict{code: jsonrpc.InvalidParams, msg: "Invalid params: a name or uri is required", decision: auditlog.DecisionRefused}
	}
	var args policycache.Args
	if kind == policycache.KindTool {
		ex.args = argLookup{doc: m.Arguments, scratch: ex.tmp[:0]}
		args = &ex.args
	}
	d := r.policy.Decide(&ex.subject, kind, m.Name, args)
	var v verdict
	switch d.Effect {
	case policycache.Allow:
		v = verdict{decision: auditlog.DecisionAllow}
	case policycache.NeedsApproval:
		v = s.approval(r, ex, m, d.Rule, modern)
	default:
		v = deniedVerdict(r, kind, m.Name, modern)
	}
	if v.rule == "" { // an approval names the grant or the request itself
		v.rule, v.reason = d.Rule, d.Reason.String()
	}
	if d.Shadow {
		// An audit-mode rule would have decided otherwise: recorded,
		// never enforced (DESIGN.md "Policy semantics").
		v.reason = shadowReason(d)
	}
	return v
}

// shadowReason is the audit reason of a decision an audit-mode rule would
// have changed: "<reason>; audit-mode rule <rule> would <effect>".
func shadowReason(d policycache.Decision) string {
	return d.Reason.String() + "; audit-mode rule " + d.ShadowRule + " would " + shadowVerb(d.ShadowEffect)
}

func shadowVerb(e policycache.Effect) string {
	switch e {
	case policycache.Allow:
		return "allow"
	case policycache.NeedsApproval:
		return "require approval"
	}
	return "deny"
}

// NameKind says which kind of name a method's params.name or params.uri is,
// for the methods policy checks by that name alone (DESIGN.md "Policy
// semantics"); ok is false for every other method. mcpgw explain uses it
// too, so that it answers what the data plane decides.
func NameKind(method []byte) (kind policycache.Kind, ok bool) {
	switch string(method) {
	case "tools/call":
		return policycache.KindTool, true
	case "prompts/get":
		return policycache.KindPrompt, true
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		return policycache.KindResource, true
	}
	return 0, false
}

// deniedVerdict answers a denied name. Unless the application lists
// everything, a denied name looks like one that does not exist.
func deniedVerdict(r *route, kind policycache.Kind, name []byte, modern bool) verdict {
	v := verdict{code: jsonrpc.InvalidParams, decision: auditlog.DecisionDeny}
	switch {
	case r.visAll:
		v.code, v.msg = codeAccessDenied, msgDenied
	case kind == policycache.KindPrompt:
		v.msg = "Unknown prompt: " + string(name)
	case kind == policycache.KindResource:
		if !modern {
			v.code = -32002
		}
		v.msg = "Resource not found: " + string(name)
	default:
		v.msg = "Unknown tool: " + string(name)
	}
	return v
}

// authorizeSubscriptions authorizes every resourceSubscriptions URI of
// subscriptions/listen like resources/read (MCP-REQUIREMENTS.md 3.4.4).
func (s *Server) authorizeSubscriptions(r *route, ex *exchange, m *jsonrpc.Message, modern bool) verdict {
	if m.Subscriptions == nil {
		return verdict{}
	}
	var denied []byte
	var d policycache.Decision
	err := jsonrpc.EachString(m.Subscriptions, ex.tmp[:0], func(uri []byte) bool {
		if d = r.policy.Decide(&ex.subject, policycache.KindResource, uri, nil); d.Effect != policycache.Allow {
			denied = append(denied[:0], uri...)
			return false
		}
		return true
	})
	if err != nil {
		return verdict{code: jsonrpc.InvalidParams, msg: "Invalid params: resourceSubscriptions must be an array of strings", decision: auditlog.DecisionRefused}
	}
	if denied != nil {
		v := deniedVerdict(r, policycache.KindResource, denied, modern)
		v.rule, v.reason = d.Rule, d.Reason.String()+": "+string(denied)
		return v
	}
	return verdict{}
}

// removedInModern lists legacy methods that 2026-07-28 removed.
func removedInModern(method []byte) bool {
	switch string(method) {
	case "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe":
		return true
	}
	return false
}

// knownClientNotification lists the client→server notifications of every
// supported revision; anything else is refused rather than passed on.
func knownClientNotification(method []byte) bool {
	switch string(method) {
	case "notifications/initialized", "notifications/cancelled", "notifications/progress",
		"notifications/roots/list_changed", "notifications/tasks/status":
		return true
	}
	return false
}

// isModernRequest tells a 2026-07-28 request from a legacy one. Requests
// inside a session, and initialize, are legacy; otherwise a per-request
// _meta version or a version header that is not a legacy revision makes a
// request modern (MCP-REQUIREMENTS.md G-0.4).
func isModernRequest(m *jsonrpc.Message, hdrVersion []byte) bool {
	if bytes.Equal(m.Method, []byte("initialize")) {
		return false
	}
	if len(m.MetaProtocolVersion) > 0 {
		return true
	}
	return len(hdrVersion) > 0 && !isLegacyVersion(hdrVersion)
}

func isLegacyVersion(v []byte) bool {
	switch string(v) {
	case "2024-10-07", "2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25":
		return true
	}
	return false
}

// validateModern applies the 2026-07-28 transport checks the gateway owes as
// an intermediary that reads bodies (MCP-REQUIREMENTS.md 1.8.1, 1.8.3,
// 1.8.4). Authorization itself is decided on the body.
func (s *Server) validateModern(ctx *fasthttp.RequestCtx, m *jsonrpc.Message, rh *reqHeaders) bool {
	hdrVersion := rh.protocolVersion
	if m.Kind != jsonrpc.KindRequest && m.Kind != jsonrpc.KindNotification {
		return true
	}
	if len(m.MetaProtocolVersion) == 0 {
		writeRPCError(ctx, fasthttp.StatusBadRequest, m.ID, jsonrpc.InvalidParams,
			"Invalid params: _meta[\"io.modelcontextprotocol/protocolVersion\"] is required")
		return false
	}
	if !bytes.Equal(hdrVersion, m.MetaProtocolVersion) {
		writeRPCError(ctx, fasthttp.StatusBadRequest, m.ID, jsonrpc.HeaderMismatch, msgHeaderMismatch)
		return false
	}
	if string(m.MetaProtocolVersion) != versionModern {
		// data carries what the gateway supports and echoes what was
		// asked for (2026-07-28 UnsupportedProtocolVersionError).
		data := append([]byte(supportedVersionsPrefix), `,"requested":`...)
		data = jsonrpc.AppendQuoted(data, string(m.MetaProtocolVersion))
		data = append(data, '}')
		writeRPCErrorData(ctx, fasthttp.StatusBadRequest, m.ID, jsonrpc.UnsupportedProtocolVersion,
			"Unsupported protocol version", data)
		return false
	}
	method, ok := rh.single(hdrMethod, rh.method)
	if !ok || !headerEquals(method, m.Method) {
		writeRPCError(ctx, fasthttp.StatusBadRequest, m.ID, jsonrpc.HeaderMismatch, msgHeaderMismatch)
		return false
	}
	switch string(m.Method) {
	case "tools/call", "prompts/get", "resources/read":
		name, ok := rh.single(hdrName, rh.name)
		if !ok || len(m.Name) == 0 || !headerEquals(name, m.Name) {
			writeRPCError(ctx, fasthttp.StatusBadRequest, m.ID, jsonrpc.HeaderMismatch, msgHeaderMismatch)
			return false
		}
	}
	return true
}

// headerEquals compares a (possibly base64-encoded) header value with the
// body's value.
func headerEquals(hdr, want []byte) bool {
	if len(hdr) == 0 {
		return false
	}
	var buf [256]byte
	v, err := jsonrpc.AppendDecodedHeaderValue(buf[:0], hdr)
	if err != nil {
		return false
	}
	return bytes.Equal(v, want)
}

// writeScanError answers a message the scanner refused.
func writeScanError(ctx *fasthttp.RequestCtx, err error) {
	code := jsonrpc.InvalidRequest
	msg := msgInvalidRequest
	switch {
	case errors.Is(err, jsonrpc.ErrSyntax), errors.Is(err, jsonrpc.ErrUTF8),
		errors.Is(err, jsonrpc.ErrDepth), errors.Is(err, jsonrpc.ErrTrailingData):
		code, msg = jsonrpc.ParseError, msgParse
	}
	writeRPCError(ctx, fasthttp.StatusBadRequest, nil, code, msg+": "+err.Error())
}

// isMediaType compares the media type of a Content-Type value, ignoring
// parameters and case (MCP-REQUIREMENTS.md P-10).
func isMediaType(v []byte, want string) bool {
	if i := bytes.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	v = bytes.TrimSpace(v)
	return len(v) == len(want) && bytes.EqualFold(v, []byte(want))
}
