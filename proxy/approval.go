package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"

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
	// The hash goes by value: a pointer through the interface would move
	// it to the heap on every approval-only call, granted ones included.
	if id, ok := appr.Check(ex.subject.User, r.name, m.Name, hash); ok {
		return verdict{decision: auditlog.DecisionAllow, rule: "grant:" + id, reason: "approved grant"}
	}
	asked := hash // escapes with the request; only refused calls pay for it
	id, err := appr.Request(ex.subject.User, ex.subject.Groups, r.name, rule, string(m.Name), &asked)
	if err != nil {
		// The request could not be stored: the call is refused all the
		// same, without a request to follow.
		v.reason = "approval request not stored: " + err.Error()
		return v
	}
	url := r.origin + approvalPath + id
	v.reason = "approval request " + id
	switch {
	case modern && declaresURLElicitation(m.Params):
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

// declaresURLElicitation reports whether a 2026-07-28 request's params
// declare elicitation.url in _meta's clientCapabilities. It runs on the
// refusal path only, so the scanner keeps no span for it. Anything
// unreadable declares nothing: the client then gets the plain -31002.
func declaresURLElicitation(params []byte) bool {
	var p struct {
		Meta struct {
			Caps struct {
				Elicitation *struct {
					URL json.RawMessage `json:"url"`
				} `json:"elicitation"`
			} `json:"io.modelcontextprotocol/clientCapabilities"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(params, &p); err != nil || p.Meta.Caps.Elicitation == nil {
		return false
	}
	u := bytes.TrimSpace(p.Meta.Caps.Elicitation.URL)
	return len(u) > 0 && u[0] == '{'
}

// mayCarryApprovalState is the hot path's cheap test for a retry of an
// input-required result of the gateway's: its params hold the gateway's
// requestState prefix somewhere. withoutApprovalState reads them properly.
func mayCarryApprovalState(m *jsonrpc.Message) bool {
	return bytes.Equal(m.Method, []byte("tools/call")) && bytes.Contains(m.Params, []byte(approvalState))
}

// withoutApprovalState appends to dst the retried request without the
// gateway's requestState and inputResponses, which its upstream never
// asked for; ours is false (and dst unchanged) when params.requestState is
// absent or not the gateway's. Every other member of params is kept byte
// for byte, in order. The state is never trusted: the retry is authorized
// afresh; it only says whose the state is. A requestState that is not one
// string, or a retry also answering anything but the gateway's input
// request, is refused: the upstream issued no state for it.
func withoutApprovalState(dst []byte, m *jsonrpc.Message) (out []byte, ours bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(m.Params))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return dst, false, errors.New("params must be an object")
	}
	start := len(dst)
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = append(dst, m.ID...)
	dst = append(dst, `,"method":`...)
	dst = jsonrpc.AppendQuoted(dst, string(m.Method))
	dst = append(dst, `,"params":{`...)
	first, states := true, 0
	var responses json.RawMessage
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return dst[:start], false, err
		}
		key, _ := t.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return dst[:start], false, err
		}
		switch key {
		case "requestState":
			var state string
			if err := json.Unmarshal(val, &state); err != nil {
				return dst[:start], false, errors.New("requestState must be a string")
			}
			states++
			ours = strings.HasPrefix(state, approvalState)
			continue
		case "inputResponses":
			responses = val
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
		return dst[:start], false, errors.New("params must be an object")
	}
	if states > 1 {
		return dst[:start], false, errors.New("requestState given more than once")
	}
	if !ours {
		return dst[:start], false, nil
	}
	if responses != nil {
		var answered map[string]json.RawMessage
		if err := json.Unmarshal(responses, &answered); err != nil {
			return dst[:start], false, errors.New("inputResponses must be an object")
		}
		for k := range answered {
			if k != approvalKey {
				return dst[:start], false, errors.New("inputResponses answers a request the gateway did not make")
			}
		}
	}
	return append(dst, "}}"...), true, nil
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
