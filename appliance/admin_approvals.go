package appliance

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/mcpgw/mcpgw/access"
	"github.com/mcpgw/mcpgw/identity"
)

// The approvals and grants endpoints of the admin API (DESIGN.md section
// 7; issue 6), mounted by mountApprovals over the access service:
//
//	GET    /api/v1/approvals?status=pending|approved|denied|expired   (absent: all)
//	GET    /api/v1/approvals/{id}                  (an addition: one request)
//	POST   /api/v1/approvals                       {"app", "tools", "reason"}
//	POST   /api/v1/approvals/{id}/approve          {"comment", "whole_tool"} (both optional)
//	POST   /api/v1/approvals/{id}/deny             {"comment"} (optional)
//	GET    /api/v1/grants?user=&app=
//	DELETE /api/v1/grants/{id}
//
// Approvals are personal: a request is made, approved and denied by a
// user with their own bearer token, never with the admin token, which
// names nobody (403). Who sees what:
//
//   - the admin token and users in admin or auditor groups list every
//     request and every grant;
//   - any other user lists the requests they made, the pending requests
//     whose current level names them as an approver (they may decide
//     them), and the requests they decided; and their own grants only;
//   - a grant is revoked by the admin role (token or group) or by its own
//     user giving it up.
//
// Whether a decision is allowed (an approver of the current level, never
// the requester, once per level) is access's to say; its errors map to
// statuses by writeAccessError. Unknown query parameters and body fields
// are a 400, as on the audit endpoints, and bodies are bounded.

// maxApprovalBody bounds the body of the POST endpoints: 64 tools of 256
// bytes and a 2 KiB reason (access.MaxTools, MaxNameLen, MaxTextLen) fit
// with room for JSON escapes.
const maxApprovalBody = 64 << 10

// approvalsCaller is who called an approvals endpoint.
type approvalsCaller struct {
	adminCaller
	adminToken bool     // the admin token: a role, no person
	groups     []string // the user's groups (approver groups match them)
}

// mountApprovals serves the approvals and grants endpoints from svc. roles
// is called per request so that a reload's roles apply at once; verifyUser
// checks a user's bearer token (nil: only the admin token is accepted,
// which can list and revoke but neither request nor decide).
func (a *adminServer) mountApprovals(svc *access.Service, roles func() RolesConfig, verifyUser func(token []byte) (*identity.Principal, bool)) {
	ra := &roleAuth{adminToken: a.token, roles: roles, verifyUser: verifyUser}
	h := &approvalsAPI{svc: svc}
	a.mux.Handle("GET /api/v1/approvals", ra.anyCaller(h.list))
	a.mux.Handle("GET /api/v1/approvals/{id}", ra.anyCaller(h.get))
	a.mux.Handle("POST /api/v1/approvals", ra.anyCaller(h.create))
	a.mux.Handle("POST /api/v1/approvals/{id}/approve", ra.anyCaller(h.approve))
	a.mux.Handle("POST /api/v1/approvals/{id}/deny", ra.anyCaller(h.deny))
	a.mux.Handle("GET /api/v1/grants", ra.anyCaller(h.grants))
	a.mux.Handle("DELETE /api/v1/grants/{id}", ra.anyCaller(h.revoke))
}

// anyCaller serves h to every authenticated caller, whatever their role
// (the handler decides what they may see and do): 401 without a valid
// bearer token, as require answers.
func (ra *roleAuth) anyCaller(h func(http.ResponseWriter, *http.Request, approvalsCaller)) http.Handler {
	return ra.require(roleNone, func(w http.ResponseWriter, r *http.Request, c adminCaller) {
		tok, _ := bearerToken(w, r) // require found it
		ac := approvalsCaller{adminCaller: c}
		if subtle.ConstantTimeCompare([]byte(tok), ra.adminToken) == 1 {
			ac.adminToken = true
			h(w, r, ac)
			return
		}
		// require accepted a user token, so verifyUser knows it; its
		// principal carries the groups that approver levels name.
		p, ok := ra.verifyUser([]byte(tok))
		if !ok || p == nil {
			writeInvalidToken(w)
			return
		}
		ac.groups = p.Groups
		h(w, r, ac)
	})
}

// seesAll reports whether c may read every request and grant.
func (c approvalsCaller) seesAll() bool { return c.role >= roleAuditor }

// maySee reports whether c may read req: see the comment at the top.
func (c approvalsCaller) maySee(req *access.Request) bool {
	if c.seesAll() || req.User == c.user {
		return true
	}
	if req.Status == access.StatusPending && c.mayDecide(req) {
		return true
	}
	return slices.ContainsFunc(req.Decisions, func(d access.Decision) bool { return d.Approver == c.user })
}

// mayDecide reports whether c is an approver of req's current level
// (access.Level.Allows, without its count; access has the last word).
func (c approvalsCaller) mayDecide(req *access.Request) bool {
	if c.adminToken || req.User == c.user || req.Level < 1 || req.Level > len(req.Levels) {
		return false
	}
	return req.Levels[req.Level-1].Allows(c.user, c.groups)
}

// approvalsAPI answers the approvals and grants endpoints.
type approvalsAPI struct {
	svc *access.Service
}

// approvalList and grantList are the list answers.
type approvalList struct {
	Items      []access.Request `json:"items"`
	NextCursor string           `json:"next_cursor"` // always "": the lists are short-lived and small
}

type grantList struct {
	Items      []access.Grant `json:"items"`
	NextCursor string         `json:"next_cursor"`
}

func (h *approvalsAPI) list(w http.ResponseWriter, r *http.Request, c approvalsCaller) {
	qr := queryReader{q: r.URL.Query()}
	qr.known([]string{"status"})
	status := access.Status(qr.str("status"))
	if status != "" && !status.Valid() {
		qr.fail("status must be pending, approved, denied or expired")
	}
	if qr.err != nil {
		writeAdminError(w, http.StatusBadRequest, "bad_request", qr.err.Error())
		return
	}
	reqs, err := h.svc.Requests(status)
	if err != nil {
		writeAccessError(w, err)
		return
	}
	if !c.seesAll() {
		reqs = slices.DeleteFunc(reqs, func(req access.Request) bool { return !c.maySee(&req) })
	}
	writeAuditJSON(w, http.StatusOK, approvalList{Items: reqs})
}

func (h *approvalsAPI) get(w http.ResponseWriter, r *http.Request, c approvalsCaller) {
	if !noQuery(w, r) {
		return
	}
	req, err := h.svc.Get(r.PathValue("id"))
	if err == nil && !c.maySee(req) {
		err = access.ErrUnknownRequest // not theirs to know of
	}
	if err != nil {
		writeAccessError(w, err)
		return
	}
	writeAuditJSON(w, http.StatusOK, req)
}

func (h *approvalsAPI) create(w http.ResponseWriter, r *http.Request, c approvalsCaller) {
	if !noQuery(w, r) {
		return
	}
	if c.adminToken {
		writeAdminError(w, http.StatusForbidden, "forbidden",
			"the admin token names no user; request approval with your own user token")
		return
	}
	var body struct {
		App    string   `json:"app"`
		Tools  []string `json:"tools"`
		Reason string   `json:"reason"`
	}
	if err := readStrictBody(r, &body, false); err != nil {
		writeAdminError(w, http.StatusBadRequest, "bad_request", err.Error()+`: the body must be {"app": "...", "tools": ["..."], "reason": "..."}`)
		return
	}
	req, created, err := h.svc.Request(c.user, c.groups, body.App, body.Tools, body.Reason)
	if err != nil {
		writeAccessError(w, err)
		return
	}
	status := http.StatusOK // the pending request that already asked for this
	if created {
		status = http.StatusCreated
	}
	writeAuditJSON(w, status, req)
}

func (h *approvalsAPI) approve(w http.ResponseWriter, r *http.Request, c approvalsCaller) {
	var body struct {
		Comment   string `json:"comment"`
		WholeTool bool   `json:"whole_tool"`
	}
	if !h.decisionBody(w, r, c, &body, `{"comment": "...", "whole_tool": false}`) {
		return
	}
	decide := func(id, approver string, groups []string, comment string) (*access.Request, error) {
		return h.svc.Decide(id, approver, groups, true, comment)
	}
	if body.WholeTool {
		decide = h.svc.ApproveWholeTool
	}
	req, err := decide(r.PathValue("id"), c.user, c.groups, body.Comment)
	h.answerDecision(w, req, err)
}

func (h *approvalsAPI) deny(w http.ResponseWriter, r *http.Request, c approvalsCaller) {
	var body struct {
		Comment string `json:"comment"`
	}
	if !h.decisionBody(w, r, c, &body, `{"comment": "..."}`) {
		return
	}
	req, err := h.svc.Decide(r.PathValue("id"), c.user, c.groups, false, body.Comment)
	h.answerDecision(w, req, err)
}

// decisionBody refuses the admin token and reads the optional body of
// approve or deny into v; false when it answered.
func (h *approvalsAPI) decisionBody(w http.ResponseWriter, r *http.Request, c approvalsCaller, v any, shape string) bool {
	if !noQuery(w, r) {
		return false
	}
	if c.adminToken {
		writeAdminError(w, http.StatusForbidden, "forbidden",
			"approvals are personal: approve or deny with your own user token, not the admin token")
		return false
	}
	if err := readStrictBody(r, v, true); err != nil {
		writeAdminError(w, http.StatusBadRequest, "bad_request", err.Error()+": the body must be "+shape)
		return false
	}
	return true
}

func (h *approvalsAPI) answerDecision(w http.ResponseWriter, req *access.Request, err error) {
	if err != nil {
		writeAccessError(w, err)
		return
	}
	writeAuditJSON(w, http.StatusOK, req)
}

func (h *approvalsAPI) grants(w http.ResponseWriter, r *http.Request, c approvalsCaller) {
	qr := queryReader{q: r.URL.Query()}
	qr.known([]string{"user", "app"})
	if qr.err != nil {
		writeAdminError(w, http.StatusBadRequest, "bad_request", qr.err.Error())
		return
	}
	user := qr.str("user")
	if !c.seesAll() {
		if user != "" && user != c.user {
			writeAdminError(w, http.StatusForbidden, "forbidden", "you may list only your own grants; others' need the auditor or admin role")
			return
		}
		user = c.user
	}
	writeAuditJSON(w, http.StatusOK, grantList{Items: h.svc.Grants(user, qr.str("app"))})
}

func (h *approvalsAPI) revoke(w http.ResponseWriter, r *http.Request, c approvalsCaller) {
	if !noQuery(w, r) {
		return
	}
	id := r.PathValue("id")
	if c.role < roleAdmin {
		// Only their own grant. A grant this node does not hold in
		// memory (made by another node of a cluster) cannot be checked
		// for its owner here: it reads as unknown.
		all := h.svc.Grants("", "")
		i := slices.IndexFunc(all, func(g access.Grant) bool { return g.ID == id })
		switch {
		case i < 0:
			writeAccessError(w, access.ErrUnknownGrant)
			return
		case all[i].User != c.user:
			writeAdminError(w, http.StatusForbidden, "forbidden", "only the admin role or the grant's own user may revoke it")
			return
		}
	}
	if err := h.svc.Revoke(id, c.user); err != nil {
		writeAccessError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// noQuery answers 400 when an endpoint that takes no parameters got some;
// false when it answered.
func noQuery(w http.ResponseWriter, r *http.Request) bool {
	qr := queryReader{q: r.URL.Query()}
	qr.known(nil)
	if qr.err != nil {
		writeAdminError(w, http.StatusBadRequest, "bad_request", qr.err.Error())
		return false
	}
	return true
}

// readStrictBody decodes r's body, at most maxApprovalBody bytes, into v:
// one JSON object with only v's fields and nothing after it. An empty
// body is allowed when optional (v keeps its zero value).
func readStrictBody(r *http.Request, v any, optional bool) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxApprovalBody+1))
	switch {
	case err != nil:
		return errors.New("cannot read the body")
	case len(data) > maxApprovalBody:
		return errors.New("the body is larger than 64 KiB")
	case len(bytes.TrimSpace(data)) == 0 && optional:
		return nil
	case len(bytes.TrimSpace(data)) == 0:
		return errors.New("the body is empty")
	case bytes.TrimSpace(data)[0] != '{':
		return errors.New("the body is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("the body is not valid: " + strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("the body has data after its JSON object")
	}
	return nil
}

// writeAccessError answers an access error with its status (accessProblem).
func writeAccessError(w http.ResponseWriter, err error) {
	status, code, msg := accessProblem(err)
	writeAdminError(w, status, code, msg)
}
