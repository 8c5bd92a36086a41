package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"

	"github.com/valyala/fasthttp"

	"github.com/mcpgw/mcpgw/auditlog"
	"github.com/mcpgw/mcpgw/jsonrpc"
)

// approvalPath is where the frontend host shows an approval request.
const approvalPath = "/approvals/"

// approvalKey names the gateway's entry in an input-required result's
// inputRequests, and approvalState prefixes its requestState: a retry that
// echoes such a state answers the gateway, not the upstream.
const (
	approvalKey   = "io.mcpgw/approval"
	approvalState = "mcpgw-approval:"
)

// msgApprovalElicit is the message an elicitation shows the user before the
// client opens the approval page.
const msgApprovalElicit = "This tool needs approval before it runs. Open the approval page to follow the request; call again once it is approved."

// approval decides an approval-only call: allowed under a grant the caller
// holds (the record names the grant), else refused with the pending request
// the caller's approvers act on, created if need be (DESIGN.md "Policy
// semantics", section 7). The refusal points at the approval page in the
// form the client takes:
//   - a 2026-07-28 client that declared URL-mode elicitation gets an
//     input-required result; its retry, with the gateway's requestState, is
//     authorized afresh and goes through once a grant exists;
//   - a 2025-11-25 session that declared it gets the URL-elicitation-
//     required error (-32042);
//   - every other client gets -31002 with the request's id and URL.
//
// Each answer's data also names approval_request_id and approval_url.
func (s *Server) approval(r *route, ex *exchange, m *jsonrpc.Message, rule string, modern bool) verdict {
	v := verdict{code: codeApprovalRequired, msg: msgApproval, decision: auditlog.DecisionApprovalRequired,
		rule: rule, reason: "approval_required"}
	appr := r.approvals
	if appr == nil {
		return v
	}
	hash := argumentsHash(m.Arguments)
	if id, ok := appr.Check(ex.subject.User, r.name, m.Name, &hash); ok {
		return verdict{decision: auditlog.DecisionAllow, rule: "grant:" + id, reason: "approved grant"}
	}
	id, err := appr.Request(ex.subject.User, ex.subject.Groups, r.name, rule, string(m.Name), &hash)
	if err != nil {
		// The request could not be stored: the call is refused all the
		// same, without a request to follow.
		v.reason = "approval request not stored: " + err.Error()
		return v
	}
	url := r.origin + approvalPath + id
	v.reason = "approval request " + id
	switch {
	case modern && declaresURLElicitation(m.MetaClientCapabilities):
		v.result = appendApprovalInputRequired(ex.tmp[:0], id, url)
		ex.tmp = v.result
		v.reason += " (input_required)"
	case ex.elicitURL:
		v.code, v.msg = jsonrpc.URLElicitationRequired, msgApproval
		data := append(ex.tmp[:0], `{"elicitations":[`...)
		data = appendURLElicitation(data, id, url)
		data = append(data, "],"...)
		ex.tmp = appendApprovalRef(data, id, url)
		v.data = ex.tmp
	default:
		ex.tmp = appendApprovalRef(append(ex.tmp[:0], '{'), id, url)
		v.data = ex.tmp
	}
	return v
}

// appendApprovalRef appends the members every approval refusal carries
// (DESIGN.md section 7) and closes the object.
func appendApprovalRef(b []byte, id, url string) []byte {
	b = append(b, `"approval_request_id":`...)
	b = jsonrpc.AppendQuoted(b, id)
	b = append(b, `,"approval_url":`...)
	b = jsonrpc.AppendQuoted(b, url)
	return append(b, '}')
}

// appendURLElicitation appends the parameters of a URL-mode elicitation
// (mode, elicitationId, url, message) that opens the approval page. The
// elicitation id is the approval request's: one request, one elicitation.
func appendURLElicitation(b []byte, id, url string) []byte {
	b = append(b, `{"mode":"url","elicitationId":`...)
	b = jsonrpc.AppendQuoted(b, id)
	b = append(b, `,"url":`...)
	b = jsonrpc.AppendQuoted(b, url)
	b = append(b, `,"message":`...)
	b = jsonrpc.AppendQuoted(b, msgApprovalElicit)
	return append(b, '}')
}

// appendApprovalInputRequired appends a 2026-07-28 InputRequiredResult
// asking the client to open the approval page (MCP-REQUIREMENTS.md 3.4.2).
func appendApprovalInputRequired(b []byte, id, url string) []byte {
	b = append(b, `{"resultType":"input_required","inputRequests":{`...)
	b = jsonrpc.AppendQuoted(b, approvalKey)
	b = append(b, `:{"method":"elicitation/create","params":`...)
	b = appendURLElicitation(b, id, url)
	b = append(b, `}},"requestState":`...)
	b = jsonrpc.AppendQuoted(b, approvalState+id)
	b = append(b, `,"_meta":{`...)
	b = appendApprovalRef(b, id, url)
	return append(b, '}')
}

// declaresURLElicitation reports whether a 2026-07-28 request's
// _meta clientCapabilities declare elicitation.url. Anything unreadable
// declares nothing: the client then gets the plain -31002 error.
func declaresURLElicitation(caps []byte) bool {
	if len(caps) == 0 {
		return false
	}
	var c struct {
		Elicitation *struct {
			URL json.RawMessage `json:"url"`
		} `json:"elicitation"`
	}
	if err := json.Unmarshal(caps, &c); err != nil || c.Elicitation == nil {
		return false
	}
	u := bytes.TrimSpace(c.Elicitation.URL)
	return len(u) > 0 && u[0] == '{'
}

// isApprovalState reports whether a retry's requestState is one the
// gateway issued for an approval. It is never trusted: the retry is
// authorized afresh; the state only says whose it is.
func isApprovalState(state []byte) bool {
	return bytes.HasPrefix(state, []byte(approvalState))
}

// withoutApprovalState appends to dst the retried request without the
// gateway's requestState and inputResponses, which its upstream never
// asked for. Every other member of params is kept byte for byte, in order.
// A retry also answering anything but the gateway's input request is
// refused: the upstream issued no state for it.
func withoutApprovalState(dst []byte, m *jsonrpc.Message) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(m.Params))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return dst, errors.New("params must be an object")
	}
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = append(dst, m.ID...)
	dst = append(dst, `,"method":`...)
	dst = jsonrpc.AppendQuoted(dst, string(m.Method))
	dst = append(dst, `,"params":{`...)
	first := true
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return dst, err
		}
		key, _ := t.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return dst, err
		}
		switch key {
		case "requestState":
			continue
		case "inputResponses":
			var responses map[string]json.RawMessage
			if err := json.Unmarshal(val, &responses); err != nil {
				return dst, errors.New("inputResponses must be an object")
			}
			for k := range responses {
				if k != approvalKey {
					return dst, errors.New("inputResponses answers a request the gateway did not make")
				}
			}
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = jsonrpc.AppendQuoted(dst, key)
		dst = append(dst, ':')
		dst = append(dst, val...)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return dst, errors.New("params must be an object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return dst, errors.New("data after params")
	}
	return append(dst, "}}"...), nil
}

// writeRPCResult answers a request with a result the gateway made.
func writeRPCResult(ctx *fasthttp.RequestCtx, id, result []byte) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetContentType("application/json")
	b := append(make([]byte, 0, 64+len(id)+len(result)), `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, result...)
	ctx.Response.SetBodyRaw(append(b, '}'))
}

// argumentsHash is the hash an exact-call grant is bound to: SHA-256 of
// params.arguments as sent (of nothing when absent), so the approved call
// is the one retried byte for byte.
func argumentsHash(args []byte) [32]byte { return sha256.Sum256(args) }
