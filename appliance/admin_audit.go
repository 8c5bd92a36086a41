package appliance

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/auditlog"
	"github.com/mcpgw/mcpgw/identity"
)

// The audit endpoints of the admin API (DESIGN.md section 7), mounted by
// mountAudit:
//
//	GET  /api/v1/sessions?app=&user=&audited=&since=&until=&limit=&cursor=
//	POST /api/v1/sessions/{id}/audited     {"comment": "..."} (optional)
//	GET  /api/v1/activity?app=&user=&session=&method=&name=&decision=&kind=&since=&until=&after=&limit=&cursor=
//	GET  /api/v1/activity/{id}
//	GET  /api/v1/audit/verify              (an addition: the hash chain, for mcpgw audit verify)
//
// Every one needs the auditor or the admin role: the admin token, or a
// user token whose groups are in roles.auditor_groups or
// roles.admin_groups. since and until are RFC 3339 times or Go durations
// meaning that long ago ("90m"); until is exclusive. kind and after are
// additions to section 7: kind selects one record kind (session,
// activity, approval, grant, admin; default all), after only records with
// a greater seq (mcpgw audit tail follows the log with it). An unknown
// parameter is a 400, so that a misspelt filter never widens a query.
//
// Lists answer {"items": [...], "next_cursor": "..."}, newest first;
// next_cursor is "" on the last page. A page may be short, even empty,
// with a cursor: the query examined its budget of records (auditlog
// Activity). Records are written exactly as stored, so each one's hash can
// be checked against the chain.

// adminRole is what a caller of the admin API may do; a greater role may
// do what a lesser one may.
type adminRole int

const (
	roleNone adminRole = iota
	roleAuditor
	roleAdmin
)

// adminTokenUser names the admin token's holder in audit records.
const adminTokenUser = "(admin token)"

// adminCaller is who made an admin request.
type adminCaller struct {
	role adminRole
	user string // adminTokenUser for the admin token
}

// roleAuth decides roles from bearer tokens: the admin token, or a user
// token that verifyUser accepts, whose groups roles maps to a role.
type roleAuth struct {
	adminToken []byte
	roles      func() RolesConfig
	verifyUser func(token []byte) (*identity.Principal, bool)
}

// require serves h to callers holding role need or greater: 401 without a
// valid bearer token, 403 with one that does not grant need.
func (ra *roleAuth) require(need adminRole, h func(http.ResponseWriter, *http.Request, adminCaller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearerToken(w, r)
		if !ok {
			return
		}
		c, ok := ra.caller([]byte(tok))
		if !ok {
			writeInvalidToken(w)
			return
		}
		if c.role < need {
			writeAdminError(w, http.StatusForbidden, "forbidden", "this needs the auditor or admin role")
			return
		}
		h(w, r, c)
	})
}

// caller resolves a bearer token; ok is false for a token nobody issued.
func (ra *roleAuth) caller(tok []byte) (adminCaller, bool) {
	if subtle.ConstantTimeCompare(tok, ra.adminToken) == 1 {
		return adminCaller{role: roleAdmin, user: adminTokenUser}, true
	}
	if ra.verifyUser == nil {
		return adminCaller{}, false
	}
	p, ok := ra.verifyUser(tok)
	if !ok || p == nil || p.Anonymous {
		return adminCaller{}, false
	}
	c := adminCaller{user: p.User}
	roles := ra.roles()
	for _, g := range p.Groups {
		switch {
		case slices.Contains(roles.AdminGroups, g):
			c.role = max(c.role, roleAdmin)
		case slices.Contains(roles.AuditorGroups, g):
			c.role = max(c.role, roleAuditor)
		}
	}
	return c, true
}

// mountAudit serves the audit endpoints from l. roles is called per
// request, so that a reload's roles apply at once; verifyUser checks a
// user's bearer token (nil: only the admin token is accepted).
func (a *adminServer) mountAudit(l *auditlog.Log, roles func() RolesConfig, verifyUser func(token []byte) (*identity.Principal, bool)) {
	ra := &roleAuth{adminToken: a.token, roles: roles, verifyUser: verifyUser}
	h := &auditAPI{log: l, now: time.Now}
	a.mux.Handle("GET /api/v1/sessions", ra.require(roleAuditor, h.sessions))
	a.mux.Handle("POST /api/v1/sessions/{id}/audited", ra.require(roleAuditor, h.markAudited))
	a.mux.Handle("GET /api/v1/activity", ra.require(roleAuditor, h.activity))
	a.mux.Handle("GET /api/v1/activity/{id}", ra.require(roleAuditor, h.record))
	a.mux.Handle("GET /api/v1/audit/verify", ra.require(roleAuditor, h.verify))
}

// auditAPI answers the audit endpoints.
type auditAPI struct {
	log *auditlog.Log
	now func() time.Time
}

func (h *auditAPI) sessions(w http.ResponseWriter, r *http.Request, _ adminCaller) {
	f, page, err := parseSessionQuery(r.URL.Query(), h.now())
	if err != nil {
		writeAdminError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	items, next, err := h.log.Sessions(f, page.cursor, page.limit)
	if err != nil {
		writeAuditError(w, err)
		return
	}
	if items == nil {
		items = []auditlog.Session{}
	}
	writeAuditJSON(w, http.StatusOK, struct {
		Items      []auditlog.Session `json:"items"`
		NextCursor string             `json:"next_cursor"`
	}{items, next})
}

// maxAuditedBody bounds the body of POST .../audited.
const maxAuditedBody = 16 << 10

func (h *auditAPI) markAudited(w http.ResponseWriter, r *http.Request, c adminCaller) {
	var body struct {
		Comment string `json:"comment"`
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxAuditedBody+1))
	if err != nil || len(data) > maxAuditedBody {
		writeAdminError(w, http.StatusBadRequest, "bad_request", "the body must be a JSON object of at most 16 KiB")
		return
	}
	if len(bytes.TrimSpace(data)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeAdminError(w, http.StatusBadRequest, "bad_request", `the body must be {"comment": "..."}`)
			return
		}
	}
	id := r.PathValue("id")
	if err := h.log.MarkAudited(id, c.user, body.Comment); err != nil {
		writeAuditError(w, err)
		return
	}
	s, err := h.log.Session(id)
	if err != nil {
		writeAuditError(w, err)
		return
	}
	writeAuditJSON(w, http.StatusOK, s)
}

func (h *auditAPI) activity(w http.ResponseWriter, r *http.Request, _ adminCaller) {
	f, page, err := parseActivityQuery(r.URL.Query(), h.now())
	if err != nil {
		writeAdminError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	items, next, err := h.log.Activity(f, page.cursor, page.limit)
	if err != nil {
		writeAuditError(w, err)
		return
	}
	// The records as stored (AppendJSON of a decoded record gives its
	// stored bytes), not re-encoded by encoding/json.
	body := append([]byte(nil), `{"items":[`...)
	for i := range items {
		if i > 0 {
			body = append(body, ',')
		}
		body = auditlog.AppendJSON(body, &items[i])
	}
	body = append(body, `],"next_cursor":`...)
	body = strconv.AppendQuote(body, next) // a cursor is base64url
	body = append(body, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (h *auditAPI) record(w http.ResponseWriter, r *http.Request, _ adminCaller) {
	rec, err := h.log.ActivityByID(r.PathValue("id"))
	if err != nil {
		writeAuditError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(auditlog.AppendJSON(nil, rec), '\n'))
}

// verifyResult is the answer of GET /api/v1/audit/verify.
type verifyResult struct {
	OK       bool   `json:"ok"`
	Head     uint64 `json:"head"`            // seq of the last record
	HeadHash string `json:"head_hash"`       // its hash
	Seq      uint64 `json:"seq,omitempty"`   // where the chain breaks
	Break    string `json:"break,omitempty"` // how (auditlog.BreakKind)
	Message  string `json:"message,omitempty"`
}

// verifyChain checks l's chain: a break is a result, not an error.
func verifyChain(l *auditlog.Log) (verifyResult, error) {
	seq, hash := l.Last()
	res := verifyResult{OK: true, Head: seq, HeadHash: hash.String()}
	err := l.Verify()
	var ce *auditlog.ChainError
	switch {
	case errors.As(err, &ce):
		res.OK, res.Seq, res.Break, res.Message = false, ce.Seq, string(ce.Kind), ce.Error()
	case err != nil:
		return res, err
	}
	return res, nil
}

func (h *auditAPI) verify(w http.ResponseWriter, r *http.Request, _ adminCaller) {
	// A large spool takes longer than the listener's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Hour))
	res, err := verifyChain(h.log)
	if err != nil {
		writeAuditError(w, err)
		return
	}
	writeAuditJSON(w, http.StatusOK, res)
}

// writeAuditError answers a query's error with its status.
func writeAuditError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, auditlog.ErrBadCursor):
		writeAdminError(w, http.StatusBadRequest, "bad_request", "the cursor is not one this endpoint gave")
	case errors.Is(err, auditlog.ErrUnknownSession):
		writeAdminError(w, http.StatusNotFound, "not_found", "no such session")
	case errors.Is(err, auditlog.ErrUnknownRecord):
		writeAdminError(w, http.StatusNotFound, "not_found", "no such record")
	case errors.Is(err, auditlog.ErrClosed):
		writeAdminError(w, http.StatusServiceUnavailable, "unavailable", "the audit log is closed")
	default:
		writeAdminError(w, http.StatusInternalServerError, "internal", "cannot read the audit log")
	}
}

// writeAuditJSON is writeAdminJSON without HTML escaping: records and
// user names keep their characters.
func writeAuditJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("BUG: appliance: cannot encode admin response: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// pageQuery is the paging of a list query.
type pageQuery struct {
	cursor string
	limit  int // 0: auditlog.DefaultLimit
}

// The parameters of the list queries.
var (
	sessionParams  = []string{"app", "user", "audited", "since", "until", "limit", "cursor"}
	activityParams = []string{"app", "user", "session", "method", "name", "decision", "kind", "since", "until", "after", "limit", "cursor"}
)

// parseSessionQuery reads the filters of GET /api/v1/sessions (and of
// mcpgw audit sessions). now resolves durations in since and until.
func parseSessionQuery(q url.Values, now time.Time) (f auditlog.SessionFilter, p pageQuery, err error) {
	qr := queryReader{q: q, now: now}
	qr.known(sessionParams)
	f.App, f.User = qr.str("app"), qr.str("user")
	if v := qr.str("audited"); v != "" {
		b, perr := strconv.ParseBool(v)
		if perr != nil {
			qr.fail("audited must be true or false")
		}
		f.Audited = &b
	}
	f.Since, f.Until = qr.time("since"), qr.time("until")
	p = qr.page()
	return f, p, qr.err
}

// parseActivityQuery reads the filters of GET /api/v1/activity (and of
// mcpgw audit activity and tail).
func parseActivityQuery(q url.Values, now time.Time) (f auditlog.ActivityFilter, p pageQuery, err error) {
	qr := queryReader{q: q, now: now}
	qr.known(activityParams)
	f.App, f.User, f.Session = qr.str("app"), qr.str("user"), qr.str("session")
	f.Method, f.Name = qr.str("method"), qr.str("name")
	switch d := auditlog.Decision(qr.str("decision")); d {
	case "", auditlog.DecisionAllow, auditlog.DecisionDeny, auditlog.DecisionApprovalRequired, auditlog.DecisionRefused:
		f.Decision = d
	default:
		qr.fail("decision must be allow, deny, approval_required or refused")
	}
	switch k := auditlog.Kind(qr.str("kind")); k {
	case "", auditlog.KindSession, auditlog.KindActivity, auditlog.KindApproval, auditlog.KindGrant, auditlog.KindAdmin:
		f.Kind = k
	default:
		qr.fail("kind must be session, activity, approval, grant or admin")
	}
	f.Since, f.Until = qr.time("since"), qr.time("until")
	if v := qr.str("after"); v != "" {
		n, perr := strconv.ParseUint(v, 10, 64)
		if perr != nil {
			qr.fail("after must be a seq (a whole number)")
		}
		f.After = n
	}
	p = qr.page()
	return f, p, qr.err
}

// queryReader reads query parameters, keeping the first problem.
type queryReader struct {
	q   url.Values
	now time.Time
	err error
}

func (qr *queryReader) fail(msg string) {
	if qr.err == nil {
		qr.err = errors.New(msg)
	}
}

// known fails on a parameter not in names, or one given twice.
func (qr *queryReader) known(names []string) {
	keys := make([]string, 0, len(qr.q))
	for k := range qr.q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch {
		case !slices.Contains(names, k):
			qr.fail(fmt.Sprintf("unknown parameter %q; this endpoint takes %s", k, strings.Join(names, ", ")))
		case len(qr.q[k]) > 1:
			qr.fail(fmt.Sprintf("parameter %q is given more than once", k))
		}
	}
}

func (qr *queryReader) str(name string) string { return qr.q.Get(name) }

// time reads an RFC 3339 time, or a duration meaning that long before now.
func (qr *queryReader) time(name string) time.Time {
	v := qr.str(name)
	if v == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return qr.now.Add(-d)
	}
	qr.fail(name + " must be an RFC 3339 time (2026-11-25T14:03:00Z) or a duration ago (90m)")
	return time.Time{}
}

func (qr *queryReader) page() pageQuery {
	p := pageQuery{cursor: qr.str("cursor")}
	if v := qr.str("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			qr.fail(fmt.Sprintf("limit must be a whole number from 1 to %d", auditlog.MaxLimit))
		}
		p.limit = min(n, auditlog.MaxLimit)
	}
	return p
}
