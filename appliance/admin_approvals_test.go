package appliance

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpgw/mcpgw/access"
	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/internal/state"
)

// The people of the approvals tests, by bearer token. Application crm has
// one approval rule, prod-writes: sre members may call delete_.* once
// secops (level 1) and then cab-lead (level 2) approved.
var approvalUsers = map[string]*identity.Principal{
	"alice-token":  {User: "alice@example.com", Groups: []string{"secops", "sre"}}, // requester; a level-1 approver too
	"bob-token":    {User: "bob@example.com", Groups: []string{"sre"}},             // another requester
	"sam-token":    {User: "sam@example.com", Groups: []string{"secops"}},          // level 1
	"cab-token":    {User: "cab-lead@example.com"},                                 // level 2
	"eve-token":    {User: "eve@example.com", Groups: []string{"engineers"}},       // no part in it
	"audrey-token": {User: "audrey@example.com", Groups: []string{"auditors"}},
	"root-token":   {User: "root@example.com", Groups: []string{"mcpgw-admins"}},
}

func approvalVerifyUser(tok []byte) (*identity.Principal, bool) {
	p, ok := approvalUsers[string(tok)]
	return p, ok
}

var approvalT0 = time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)

// testClock is a clock tests step.
type testClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newApprovalService returns an access service over a memory store with
// the two-level flow of crm/prod-writes, on clock.
func newApprovalService(t *testing.T, clock *testClock) *access.Service {
	t.Helper()
	deletes := regexp.MustCompile(`^delete_.*$`)
	svc, err := access.New(access.Options{
		Store: state.NewMemoryWithClock(clock.now),
		Flows: map[access.FlowKey]access.Flow{{App: "crm", Rule: "prod-writes"}: {
			Levels: []access.Level{
				{Groups: []string{"secops"}, Count: 1},
				{Users: []string{"cab-lead@example.com"}, Count: 1},
			},
			GrantTTL:   30 * time.Minute,
			RequestTTL: time.Hour,
		}},
		ApprovalRule: func(app, _ string, groups []string, tool string) (string, bool) {
			if app == "crm" && slices.Contains(groups, "sre") && deletes.MatchString(tool) {
				return "prod-writes", true
			}
			return "", false
		},
		Now:           clock.now,
		SweepInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// approvalsServer serves the admin API with the approvals endpoints.
func approvalsServer(t *testing.T, svc *access.Service) *httptest.Server {
	t.Helper()
	a := newAdminServer([]byte(testAdminToken), func(context.Context) readiness { return readiness{Ready: true} })
	a.mountApprovals(svc, func() RolesConfig { return testRoles }, approvalVerifyUser)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return srv
}

// decode reads an answer's JSON into a new T.
func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("cannot decode %q: %v", body, err)
	}
	return v
}

// errorCode returns the code of an error answer.
func errorCode(t *testing.T, body string) string {
	t.Helper()
	return decode[struct {
		Error struct{ Code, Message string } `json:"error"`
	}](t, body).Error.Code
}

// request opens a request as the holder of token and returns it.
func openRequest(t *testing.T, srv *httptest.Server, token, tools string) access.Request {
	t.Helper()
	status, body := call(t, srv, "POST", "/api/v1/approvals", token, `{"app":"crm","tools":`+tools+`,"reason":"INC-42"}`)
	if status != 201 {
		t.Fatalf("POST /api/v1/approvals: got %d %s, want 201", status, body)
	}
	return decode[access.Request](t, body)
}

func TestApprovalsAPIFlow(t *testing.T) {
	clock := &testClock{t: approvalT0}
	svc := newApprovalService(t, clock)
	srv := approvalsServer(t, svc)

	req := openRequest(t, srv, "alice-token", `["delete_user","delete_user","delete_group"]`)
	want := access.Request{
		ID: req.ID, App: "crm", User: "alice@example.com", Rule: "prod-writes",
		Tools: []string{"delete_group", "delete_user"}, Reason: "INC-42", Status: access.StatusPending,
		Level: 1, Levels: []access.Level{{Groups: []string{"secops"}, Count: 1}, {Users: []string{"cab-lead@example.com"}, Count: 1}},
		Decisions: []access.Decision{}, Created: approvalT0, Expires: approvalT0.Add(time.Hour),
	}
	if diff := cmp.Diff(want, req); diff != "" {
		t.Fatalf("the new request (-want +got):\n%s", diff)
	}
	// The same again: the pending request, 200 not 201.
	status, body := call(t, srv, "POST", "/api/v1/approvals", "alice-token", `{"app":"crm","tools":["delete_group","delete_user"]}`)
	if got := decode[access.Request](t, body); status != 200 || got.ID != req.ID {
		t.Errorf("the same request again: got %d %s, want 200 with %s", status, got.ID, req.ID)
	}

	path := "/api/v1/approvals/" + req.ID
	steps := []struct {
		name, token, action, body string
		want                      int
		wantCode                  string
	}{
		{"the admin token cannot approve", testAdminToken, "approve", "", 403, "forbidden"},
		{"an admin user outside the flow is no approver", "root-token", "approve", "", 403, "forbidden"},
		{"the requester cannot approve, though in secops", "alice-token", "approve", "", 403, "forbidden"},
		{"the level-2 approver cannot act at level 1", "cab-token", "approve", "", 403, "forbidden"},
		{"a non-approver cannot deny", "eve-token", "deny", "", 403, "forbidden"},
		{"an unknown field", "sam-token", "approve", `{"comment":"ok","whole_tools":true}`, 400, "bad_request"},
		{"whole_tool on a deny", "sam-token", "deny", `{"whole_tool":true}`, 400, "bad_request"},
		{"data after the body", "sam-token", "approve", `{"comment":"ok"} {}`, 400, "bad_request"},
		{"level 1 approves", "sam-token", "approve", `{"comment":"looks right"}`, 200, ""},
		{"level 1 again is not pending at level 1 any more", "sam-token", "approve", "", 403, "forbidden"},
		{"level 2 approves with no body", "cab-token", "approve", "", 200, ""},
		{"an approved request cannot be denied", "cab-token", "deny", "", 409, "conflict"},
	}
	for _, s := range steps {
		status, body := call(t, srv, "POST", path+"/"+s.action, s.token, s.body)
		if status != s.want {
			t.Fatalf("%s: got %d %s, want %d", s.name, status, body, s.want)
		}
		if s.wantCode != "" {
			if got := errorCode(t, body); got != s.wantCode {
				t.Errorf("%s: got code %q, want %q", s.name, got, s.wantCode)
			}
		}
	}
	status, body = call(t, srv, "GET", path, "alice-token", "")
	got := decode[access.Request](t, body)
	if status != 200 || got.Status != access.StatusApproved || got.GrantID == "" || len(got.Decisions) != 2 {
		t.Fatalf("the request after two levels: got %d %+v, want approved with a grant", status, got)
	}
	wantDecisions := []access.Decision{
		{Level: 1, Approver: "sam@example.com", Decision: "approve", Comment: "looks right", Time: approvalT0},
		{Level: 2, Approver: "cab-lead@example.com", Decision: "approve", Time: approvalT0},
	}
	if diff := cmp.Diff(wantDecisions, got.Decisions); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
	if _, ok := svc.Check("alice@example.com", "crm", []byte("delete_user"), nil); !ok {
		t.Fatal("Check after the approval: got no grant, want one")
	}

	// The grant: listed for its user and for the auditor, not for eve.
	grants := func(token, query string) (int, []access.Grant) {
		status, body := call(t, srv, "GET", "/api/v1/grants"+query, token, "")
		if status != 200 {
			return status, nil
		}
		return status, decode[listPage[access.Grant]](t, body).Items
	}
	wantGrant := []access.Grant{{ID: got.GrantID, RequestID: req.ID, App: "crm", User: "alice@example.com",
		Tools: []string{"delete_group", "delete_user"}, Expires: approvalT0.Add(30 * time.Minute)}}
	for _, c := range []struct {
		name, token, query string
		wantStatus         int
		want               []access.Grant
	}{
		{"its user", "alice-token", "", 200, wantGrant},
		{"its user naming themself", "alice-token", "?user=alice@example.com&app=crm", 200, wantGrant},
		{"its user, another app", "alice-token", "?app=hr", 200, []access.Grant{}},
		{"another user sees only their own", "eve-token", "", 200, []access.Grant{}},
		{"another user naming alice", "eve-token", "?user=alice@example.com", 403, nil},
		{"an auditor", "audrey-token", "?user=alice@example.com", 200, wantGrant},
		{"the admin token", testAdminToken, "", 200, wantGrant},
		{"an unknown parameter", testAdminToken, "?users=alice@example.com", 400, nil},
	} {
		status, items := grants(c.token, c.query)
		if status != c.wantStatus {
			t.Errorf("grants as %s: got %d, want %d", c.name, status, c.wantStatus)
			continue
		}
		if diff := cmp.Diff(c.want, items); diff != "" {
			t.Errorf("grants as %s (-want +got):\n%s", c.name, diff)
		}
	}

	// Revocation: not by eve nor an auditor; by alice, giving it up.
	gpath := "/api/v1/grants/" + got.GrantID
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", 401},
		{"another user", "eve-token", 403},
		{"an auditor", "audrey-token", 403},
		{"its user", "alice-token", 204},
		{"its user again", "alice-token", 404},
		{"the admin token, once gone", testAdminToken, 404},
	} {
		status, body := call(t, srv, "DELETE", gpath, c.token, "")
		if status != c.want {
			t.Errorf("DELETE the grant as %s: got %d %s, want %d", c.name, status, body, c.want)
		}
	}
	if id, ok := svc.Check("alice@example.com", "crm", []byte("delete_user"), nil); ok {
		t.Errorf("Check after revocation: got grant %s, want none", id)
	}
}

func TestApprovalsAPIDenyAndWholeTool(t *testing.T) {
	clock := &testClock{t: approvalT0}
	svc := newApprovalService(t, clock)
	srv := approvalsServer(t, svc)

	// A denial at level 2 ends the request: nobody decides it after.
	req := openRequest(t, srv, "bob-token", `["delete_user"]`)
	path := "/api/v1/approvals/" + req.ID
	for _, s := range []struct {
		token, action string
		want          int
	}{
		{"alice-token", "approve", 200}, // alice is in secops and not the requester here
		{"cab-token", "deny", 200},
		{"cab-token", "approve", 409},
		{"sam-token", "approve", 409},
	} {
		if status, body := call(t, srv, "POST", path+"/"+s.action, s.token, `{"comment":"no"}`); status != s.want {
			t.Fatalf("%s %s: got %d %s, want %d", s.token, s.action, status, body, s.want)
		}
	}
	got, err := svc.Get(req.ID)
	if err != nil || got.Status != access.StatusDenied || got.GrantID != "" {
		t.Fatalf("after the denial: got %+v %v, want denied without a grant", got, err)
	}

	// whole_tool on an exact-call request (the proxy's kind) widens the
	// grant to any arguments when every approver agreed.
	hash := [32]byte{1, 2, 3}
	exact, _, err := svc.RequestFor("bob@example.com", "crm", "prod-writes", "delete_group", &hash)
	if err != nil {
		t.Fatal(err)
	}
	epath := "/api/v1/approvals/" + exact.ID + "/approve"
	for _, token := range []string{"sam-token", "cab-token"} {
		if status, body := call(t, srv, "POST", epath, token, `{"whole_tool":true}`); status != 200 {
			t.Fatalf("whole_tool approval by %s: got %d %s, want 200", token, status, body)
		}
	}
	other := [32]byte{9}
	if _, ok := svc.Check("bob@example.com", "crm", []byte("delete_group"), &other); !ok {
		t.Error("Check with other arguments after whole_tool approvals: got no grant, want one")
	}

	// Without whole_tool, only the exact call.
	exact2, _, err := svc.RequestFor("bob@example.com", "crm", "prod-writes", "delete_org", &hash)
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{"sam-token", "cab-token"} {
		if status, body := call(t, srv, "POST", "/api/v1/approvals/"+exact2.ID+"/approve", token, ""); status != 200 {
			t.Fatalf("approval by %s: got %d %s, want 200", token, status, body)
		}
	}
	if _, ok := svc.Check("bob@example.com", "crm", []byte("delete_org"), &other); ok {
		t.Error("Check with other arguments after exact approvals: got a grant, want none")
	}
	if _, ok := svc.Check("bob@example.com", "crm", []byte("delete_org"), &hash); !ok {
		t.Error("Check of the exact call: got no grant, want one")
	}

	// The admin token revokes anybody's grant.
	g := svc.Grants("bob@example.com", "")
	if len(g) != 2 {
		t.Fatalf("bob's grants: got %d, want 2", len(g))
	}
	if status, body := call(t, srv, "DELETE", "/api/v1/grants/"+g[0].ID, testAdminToken, ""); status != 204 {
		t.Errorf("DELETE as the admin token: got %d %s, want 204", status, body)
	}
	if status, body := call(t, srv, "DELETE", "/api/v1/grants/"+g[1].ID, "root-token", ""); status != 204 {
		t.Errorf("DELETE as an admin user: got %d %s, want 204", status, body)
	}
	if left := svc.Grants("bob@example.com", ""); len(left) != 0 {
		t.Errorf("bob's grants after revocation: got %v, want none", left)
	}
}

func TestApprovalsAPIVisibility(t *testing.T) {
	clock := &testClock{t: approvalT0}
	svc := newApprovalService(t, clock)
	srv := approvalsServer(t, svc)

	// aliceReq and bobEarly expire; bobReq, made later, moves to level 2
	// (sam decided it) and is pending still.
	aliceReq := openRequest(t, srv, "alice-token", `["delete_user"]`)
	clock.add(time.Second)
	bobEarly := openRequest(t, srv, "bob-token", `["delete_group"]`)
	clock.add(30 * time.Minute)
	bobReq := openRequest(t, srv, "bob-token", `["delete_user"]`)
	if status, body := call(t, srv, "POST", "/api/v1/approvals/"+bobReq.ID+"/approve", "sam-token", ""); status != 200 {
		t.Fatalf("sam approves: got %d %s", status, body)
	}
	clock.add(30 * time.Minute)

	ids := func(token, query string) (int, []string) {
		t.Helper()
		status, body := call(t, srv, "GET", "/api/v1/approvals"+query, token, "")
		if status != 200 {
			return status, nil
		}
		page := decode[listPage[access.Request]](t, body)
		if page.NextCursor != "" {
			t.Errorf("next_cursor %q, want \"\"", page.NextCursor)
		}
		out := []string{}
		for _, r := range page.Items {
			out = append(out, r.ID)
		}
		return status, out
	}
	all := []string{aliceReq.ID, bobEarly.ID, bobReq.ID}
	for _, c := range []struct {
		name, token, query string
		wantStatus         int
		want               []string
	}{
		{"no token", "", "", 401, nil},
		{"a token nobody issued", "nope", "", 401, nil},
		{"the admin token", testAdminToken, "", 200, all},
		{"an admin user", "root-token", "", 200, all},
		{"an auditor", "audrey-token", "", 200, all},
		{"an auditor, expired only", "audrey-token", "?status=expired", 200, []string{aliceReq.ID, bobEarly.ID}},
		{"an auditor, pending only", "audrey-token", "?status=pending", 200, []string{bobReq.ID}},
		// alice: her own; bobReq left level 1 (hers to decide) before she
		// decided it, and bobEarly expired there.
		{"the requester alice", "alice-token", "", 200, []string{aliceReq.ID}},
		{"the requester bob", "bob-token", "", 200, []string{bobEarly.ID, bobReq.ID}},
		// sam decided bobReq; the others expired, nobody's to decide.
		{"the level-1 approver", "sam-token", "", 200, []string{bobReq.ID}},
		{"the level-2 approver", "cab-token", "?status=pending", 200, []string{bobReq.ID}},
		{"a user with no part", "eve-token", "", 200, []string{}},
		{"a bad status", "audrey-token", "?status=open", 400, nil},
		{"an unknown parameter", "audrey-token", "?state=pending", 400, nil},
		{"status twice", "audrey-token", "?status=pending&status=denied", 400, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, got := ids(c.token, c.query)
			if status != c.wantStatus {
				t.Fatalf("got %d, want %d", status, c.wantStatus)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}

	// Before expiry, the level-1 approvers see what they may decide.
	clock2 := &testClock{t: approvalT0}
	srv2 := approvalsServer(t, newApprovalService(t, clock2))
	r1 := openRequest(t, srv2, "bob-token", `["delete_user"]`)
	for _, c := range []struct {
		token string
		want  int
	}{{"alice-token", 200}, {"sam-token", 200}, {"cab-token", 404}, {"eve-token", 404}, {"bob-token", 200}} {
		if status, _ := call(t, srv2, "GET", "/api/v1/approvals/"+r1.ID, c.token, ""); status != c.want {
			t.Errorf("GET the pending request as %s: got %d, want %d", c.token, status, c.want)
		}
	}
	if status, _ := call(t, srv2, "GET", "/api/v1/approvals/apr_nothing", testAdminToken, ""); status != 404 {
		t.Errorf("GET an unknown request: got %d, want 404", status)
	}
}

func TestApprovalsAPIRequestErrors(t *testing.T) {
	clock := &testClock{t: approvalT0}
	srv := approvalsServer(t, newApprovalService(t, clock))
	for _, c := range []struct {
		name, token, body string
		want              int
	}{
		{"no token", "", `{"app":"crm","tools":["delete_user"]}`, 401},
		{"the admin token names nobody", testAdminToken, `{"app":"crm","tools":["delete_user"]}`, 403},
		{"a tool that needs no approval", "alice-token", `{"app":"crm","tools":["get_user"]}`, 400},
		{"a user outside the rule", "eve-token", `{"app":"crm","tools":["delete_user"]}`, 400},
		{"an unknown app", "alice-token", `{"app":"hr","tools":["delete_user"]}`, 400},
		{"no tools", "alice-token", `{"app":"crm","tools":[]}`, 400},
		{"no body", "alice-token", ``, 400},
		{"not an object", "alice-token", `["crm"]`, 400},
		{"an unknown field", "alice-token", `{"app":"crm","tools":["delete_user"],"ttl":"1h"}`, 400},
		{"a tool as a string", "alice-token", `{"app":"crm","tools":"delete_user"}`, 400},
		{"a reason too long", "alice-token", `{"app":"crm","tools":["delete_user"],"reason":"` + strings.Repeat("x", access.MaxTextLen+1) + `"}`, 400},
		{"a body too large", "alice-token", `{"app":"crm","tools":["delete_user"],"reason":"` + strings.Repeat("x", maxApprovalBody) + `"}`, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := call(t, srv, "POST", "/api/v1/approvals", c.token, c.body)
			if status != c.want {
				t.Errorf("got %d %s, want %d", status, body, c.want)
			}
		})
	}
	if status, _ := call(t, srv, "POST", "/api/v1/approvals?app=crm", "alice-token", `{"app":"crm","tools":["delete_user"]}`); status != 400 {
		t.Errorf("a query parameter on POST: got %d, want 400", status)
	}
	if status, _ := call(t, srv, "POST", "/api/v1/approvals/apr_nothing/approve", "sam-token", ""); status != 404 {
		t.Errorf("approve an unknown request: got %d, want 404", status)
	}
	if status, _ := call(t, srv, "DELETE", "/api/v1/grants/grt_nothing", testAdminToken, ""); status != 404 {
		t.Errorf("DELETE an unknown grant: got %d, want 404", status)
	}
}
