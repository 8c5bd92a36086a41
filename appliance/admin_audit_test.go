package appliance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpgw/mcpgw/auditlog"
	"github.com/mcpgw/mcpgw/identity"
)

const testAdminToken = "admin-token-0123456789abcdef"

// The user tokens of the audit API tests, by role.
var testUsers = map[string]*identity.Principal{
	"auditor-token": {User: "audrey@example.com", Groups: []string{"auditors", "engineers"}},
	"admin-token-u": {User: "root@example.com", Groups: []string{"mcpgw-admins"}},
	"plain-token":   {User: "alice@example.com", Groups: []string{"engineers"}},
}

func testVerifyUser(tok []byte) (*identity.Principal, bool) {
	p, ok := testUsers[string(tok)]
	return p, ok
}

var testRoles = RolesConfig{AdminGroups: []string{"mcpgw-admins"}, AuditorGroups: []string{"auditors"}}

var auditT0 = time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)

// fillAuditLog writes two sessions and their calls, a minute apart, and a
// stateless call: 3 records per call (request, response) plus starts.
func fillAuditLog(t *testing.T, l *auditlog.Log, calls int) {
	t.Helper()
	must := func(r *auditlog.Record) {
		t.Helper()
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range []struct{ sid, app, user string }{{"s-alice", "crm", "alice@example.com"}, {"s-bob", "hr", "bob@example.com"}} {
		must(&auditlog.Record{Kind: auditlog.KindSession, SessionID: s.sid, App: s.app, User: s.user, Groups: []string{"engineers"},
			Device:       auditlog.Device{ClientName: "claude-code", ClientVersion: "2.0.1", UserAgent: "claude-code/2.0.1", RemoteAddr: "10.0.0.7:51234"},
			ResourceType: auditlog.ResourceTypeMCP, ProtocolVersion: "2025-11-25", Method: "initialize", Status: auditlog.StatusStarted,
			Time: auditT0.Add(time.Duration(i) * time.Second)})
	}
	for i := range calls {
		sid, app, user := "s-alice", "crm", "alice@example.com"
		if i%2 == 1 {
			sid, app, user = "s-bob", "hr", "bob@example.com"
		}
		d := auditlog.DecisionAllow
		if i%5 == 4 {
			d = auditlog.DecisionDeny
		}
		at := auditT0.Add(time.Duration(i+1) * time.Minute)
		must(&auditlog.Record{Kind: auditlog.KindActivity, SessionID: sid, App: app, User: user, Direction: auditlog.ClientToServer,
			Message: auditlog.MessageRequest, Method: "tools/call", JSONRPCID: json.RawMessage(fmt.Sprint(i)), Name: fmt.Sprintf("get_%d", i%3),
			Arguments: json.RawMessage(`{"id":"<u&1>"}`), Decision: d, Rule: "readers", Time: at})
		must(&auditlog.Record{Kind: auditlog.KindActivity, SessionID: sid, App: app, User: user, Direction: auditlog.ServerToClient,
			Message: auditlog.MessageResponse, Method: "tools/call", JSONRPCID: json.RawMessage(fmt.Sprint(i)), Status: auditlog.StatusOK,
			LatencyUS: 1200, BytesOut: 300, Time: at.Add(time.Millisecond)})
	}
}

// auditServer serves the admin API with the audit endpoints over l.
func auditServer(t *testing.T, l *auditlog.Log) *httptest.Server {
	t.Helper()
	a := newAdminServer([]byte(testAdminToken), func(context.Context) readiness { return readiness{Ready: true} })
	a.mountAudit(l, func() RolesConfig { return testRoles }, testVerifyUser)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return srv
}

func openAuditLog(t *testing.T) *auditlog.Log {
	t.Helper()
	l, err := auditlog.Open(t.TempDir(), auditlog.Options{NodeID: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// call makes one admin request and returns the status and body. Every
// answer is JSON but a 204, which has no body.
func call(t *testing.T, srv *httptest.Server, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNoContent {
		if len(b) != 0 {
			t.Errorf("%s %s: 204 with a body %q", method, path, b)
		}
	} else if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return resp.StatusCode, string(b)
}

func TestAuditAPIRoles(t *testing.T) {
	l := openAuditLog(t)
	fillAuditLog(t, l, 4)
	srv := auditServer(t, l)
	endpoints := []struct{ method, path string }{
		{"GET", "/api/v1/sessions"},
		{"GET", "/api/v1/activity"},
		{"GET", "/api/v1/activity/gw1-1"},
		{"GET", "/api/v1/audit/verify"},
		{"POST", "/api/v1/sessions/s-alice/audited"},
	}
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", 401},
		{"a token nobody issued", "nope-token", 401},
		{"a user without a role", "plain-token", 403},
		{"an auditor", "auditor-token", 200},
		{"a user in admin_groups", "admin-token-u", 200},
		{"the admin token", testAdminToken, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, e := range endpoints {
				status, body := call(t, srv, e.method, e.path, c.token, "")
				if status != c.want {
					t.Errorf("%s %s: got %d %s, want %d", e.method, e.path, status, body, c.want)
				}
				if c.want != 200 {
					var eb struct {
						Error struct{ Code, Message string }
					}
					if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
						t.Errorf("%s %s: error body %s, want {\"error\":{\"code\",\"message\"}}", e.method, e.path, body)
					}
				}
			}
		})
	}
	// Other /api/v1/ paths still take the admin token only.
	if status, _ := call(t, srv, "GET", "/api/v1/nothing", "auditor-token", ""); status != 401 {
		t.Errorf("another endpoint with a user token: got %d, want 401", status)
	}
}

// listPage is a decoded list answer.
type listPage[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func getList[T any](t *testing.T, srv *httptest.Server, path string) listPage[T] {
	t.Helper()
	status, body := call(t, srv, "GET", path, "auditor-token", "")
	if status != 200 {
		t.Fatalf("GET %s: got %d %s", path, status, body)
	}
	var p listPage[T]
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return p
}

func TestAuditAPIActivity(t *testing.T) {
	l := openAuditLog(t)
	fillAuditLog(t, l, 60) // 2 starts + 120 records
	srv := auditServer(t, l)

	// Paging by 7 through every record: newest first, no gap, no repeat.
	var seqs []uint64
	cursor := ""
	for range 100 {
		p := getList[auditlog.Record](t, srv, "/api/v1/activity?limit=7&cursor="+url.QueryEscape(cursor))
		if len(p.Items) > 7 {
			t.Fatalf("got %d items, want at most 7", len(p.Items))
		}
		for _, r := range p.Items {
			seqs = append(seqs, r.Seq)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	var want []uint64
	for s := uint64(122); s >= 1; s-- {
		want = append(want, s)
	}
	if diff := cmp.Diff(want, seqs); diff != "" {
		t.Errorf("seqs paged by 7 (-want +got):\n%s", diff)
	}

	for _, c := range []struct {
		name, query string
		want        int // records
		check       func(r auditlog.Record) bool
	}{
		{"app", "app=hr", 61, func(r auditlog.Record) bool { return r.App == "hr" }},
		{"user", "user=alice@example.com", 61, func(r auditlog.Record) bool { return r.User == "alice@example.com" }},
		{"session", "session=s-bob", 61, func(r auditlog.Record) bool { return r.SessionID == "s-bob" }},
		{"method", "method=initialize", 2, func(r auditlog.Record) bool { return r.Method == "initialize" }},
		{"name", "name=get_1", 20, func(r auditlog.Record) bool { return r.Name == "get_1" }},
		{"decision", "decision=deny", 12, func(r auditlog.Record) bool { return r.Decision == auditlog.DecisionDeny }},
		{"kind", "kind=session", 2, func(r auditlog.Record) bool { return r.Kind == auditlog.KindSession }},
		{"one minute", "since=2026-11-25T14:10:00Z&until=2026-11-25T14:11:00Z", 2,
			func(r auditlog.Record) bool { return r.Time.Format("15:04") == "14:10" }},
		{"who was denied what, in a time range", "decision=deny&user=bob@example.com&since=2026-11-25T14:00:00Z&until=2026-11-25T14:30:00Z", 2,
			func(r auditlog.Record) bool {
				return r.User == "bob@example.com" && r.Decision == auditlog.DecisionDeny
			}},
		{"after", "after=120", 2, func(r auditlog.Record) bool { return r.Seq > 120 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := getList[auditlog.Record](t, srv, "/api/v1/activity?limit=1000&"+c.query)
			if len(p.Items) != c.want || p.NextCursor != "" {
				t.Errorf("got %d items, cursor %q; want %d and none", len(p.Items), p.NextCursor, c.want)
			}
			for _, r := range p.Items {
				if !c.check(r) {
					t.Errorf("record %s does not match", r.ID)
				}
			}
		})
	}

	// One record, exactly as stored: its hash checks against the chain.
	status, body := call(t, srv, "GET", "/api/v1/activity/gw1-3", "auditor-token", "")
	var stored string
	l.ScanJSON(3, func(seq uint64, line []byte) bool { stored = string(line); return false })
	if status != 200 || strings.TrimSpace(body) != stored {
		t.Errorf("GET /api/v1/activity/gw1-3: got %d %s, want 200 %s", status, body, stored)
	}
	var v auditlog.Verifier
	if err := v.Next([]byte(strings.TrimSpace(body))); err != nil {
		t.Errorf("the record served does not hash to its hash: %v", err)
	}
	if !strings.Contains(body, `"arguments":{"id":"<u&1>"}`) {
		t.Errorf("arguments re-escaped: %s", body)
	}
	for _, id := range []string{"gw1-999", "gw2-3", "x"} {
		if status, body := call(t, srv, "GET", "/api/v1/activity/"+id, "auditor-token", ""); status != 404 || !strings.Contains(body, `"not_found"`) {
			t.Errorf("GET /api/v1/activity/%s: got %d %s, want 404 not_found", id, status, body)
		}
	}

	for _, c := range []struct{ name, query string }{
		{"unknown parameter", "usr=alice"},
		{"repeated parameter", "app=a&app=b"},
		{"bad decision", "decision=maybe"},
		{"bad kind", "kind=call"},
		{"bad since", "since=yesterday"},
		{"bad until", "until=2026-13-01"},
		{"zero limit", "limit=0"},
		{"bad limit", "limit=ten"},
		{"bad after", "after=-1"},
		{"bad cursor", "cursor=abc"},
		{"cursor of the sessions list", "cursor=cwAAAAAAAAAK"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := call(t, srv, "GET", "/api/v1/activity?"+c.query, "auditor-token", "")
			if status != 400 || !strings.Contains(body, `"code":"bad_request"`) {
				t.Errorf("got %d %s, want 400 bad_request", status, body)
			}
		})
	}
}

func TestAuditAPISessions(t *testing.T) {
	l := openAuditLog(t)
	fillAuditLog(t, l, 10)
	srv := auditServer(t, l)

	p := getList[auditlog.Session](t, srv, "/api/v1/sessions")
	if len(p.Items) != 2 || p.NextCursor != "" {
		t.Fatalf("got %+v, want 2 sessions", p)
	}
	alice := p.Items[1]
	want := auditlog.Session{ID: "s-alice", SessionID: "s-alice", App: "crm", User: "alice@example.com", Groups: []string{"engineers"},
		Device:       auditlog.Device{ClientName: "claude-code", ClientVersion: "2.0.1", UserAgent: "claude-code/2.0.1", RemoteAddr: "10.0.0.7:51234"},
		ResourceType: auditlog.ResourceTypeMCP, ProtocolVersion: "2025-11-25", StartID: "gw1-1",
		Started: auditT0, LastSeen: auditT0.Add(9*time.Minute + time.Millisecond),
		Records: 11, Requests: 5, Denied: 1}
	if diff := cmp.Diff(want, alice); diff != "" {
		t.Errorf("session s-alice (-want +got):\n%s", diff)
	}

	status, body := call(t, srv, "POST", "/api/v1/sessions/s-alice/audited", "auditor-token", `{"comment":"checked <all> calls"}`)
	var marked auditlog.Session
	if status != 200 || json.Unmarshal([]byte(body), &marked) != nil || marked.Audited == nil ||
		marked.Audited.By != "audrey@example.com" || marked.Audited.Comment != "checked <all> calls" {
		t.Fatalf("POST audited: got %d %s, want the session marked by audrey@example.com", status, body)
	}
	if status, body := call(t, srv, "POST", "/api/v1/sessions/s-alice/audited", testAdminToken, ""); status != 200 ||
		!strings.Contains(body, `"by":"(admin token)"`) {
		t.Errorf("POST audited with the admin token and no body: got %d %s", status, body)
	}
	for _, c := range []struct {
		name, path, body string
		want             int
	}{
		{"unknown session", "/api/v1/sessions/nope/audited", "", 404},
		{"unknown member", "/api/v1/sessions/s-bob/audited", `{"comments":"x"}`, 400},
		{"not JSON", "/api/v1/sessions/s-bob/audited", `ok`, 400},
		{"too large", "/api/v1/sessions/s-bob/audited", `{"comment":"` + strings.Repeat("x", 17<<10) + `"}`, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			if status, body := call(t, srv, "POST", c.path, "auditor-token", c.body); status != c.want {
				t.Errorf("got %d %s, want %d", status, body, c.want)
			}
		})
	}

	for _, c := range []struct {
		name, query string
		want        []string
	}{
		{"all", "", []string{"s-bob", "s-alice"}},
		{"app", "app=hr", []string{"s-bob"}},
		{"user", "user=alice@example.com", []string{"s-alice"}},
		{"audited", "audited=true", []string{"s-alice"}},
		{"not audited", "audited=false", []string{"s-bob"}},
		{"since", "since=2026-11-25T14:00:01Z", []string{"s-bob"}},
		{"until", "until=2026-11-25T14:00:01Z", []string{"s-alice"}},
		{"since a duration ago", "since=1h", nil},
		{"one a page", "limit=1", []string{"s-bob", "s-alice"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			cursor := ""
			for range 10 {
				p := getList[auditlog.Session](t, srv, "/api/v1/sessions?"+c.query+"&cursor="+url.QueryEscape(cursor))
				for _, s := range p.Items {
					got = append(got, s.ID)
				}
				if cursor = p.NextCursor; cursor == "" {
					break
				}
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, q := range []string{"audited=maybe", "session=s-bob", "limit=-1", "cursor=YQAAAAAAAAAK"} {
		if status, body := call(t, srv, "GET", "/api/v1/sessions?"+q, "auditor-token", ""); status != 400 {
			t.Errorf("GET /api/v1/sessions?%s: got %d %s, want 400", q, status, body)
		}
	}

	// The marks are records of the chain, and the chain holds.
	p2 := getList[auditlog.Record](t, srv, "/api/v1/activity?kind=admin")
	if len(p2.Items) != 2 || p2.Items[0].Method != auditlog.MethodSessionsAudited || p2.Items[1].User != "audrey@example.com" {
		t.Errorf("audit marks: got %+v", p2.Items)
	}
	status, body = call(t, srv, "GET", "/api/v1/audit/verify", "auditor-token", "")
	if status != 200 || !strings.Contains(body, `"ok":true`) || !strings.Contains(body, `"head":24`) {
		t.Errorf("verify: got %d %s, want ok and head 24", status, body)
	}
}

// FuzzParseAuditQuery: any query string is parsed or refused, never a
// panic, and an accepted limit is within bounds.
func FuzzParseAuditQuery(f *testing.F) {
	f.Add("app=crm&user=alice&since=90m&until=2026-11-25T14:00:00Z&limit=5&decision=deny&kind=activity&after=3")
	f.Add("audited=true&limit=100000")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if _, p, err := parseActivityQuery(q, auditT0); err == nil && (p.limit < 0 || p.limit > auditlog.MaxLimit) {
			t.Errorf("%q: limit %d accepted", raw, p.limit)
		}
		if _, p, err := parseSessionQuery(q, auditT0); err == nil && (p.limit < 0 || p.limit > auditlog.MaxLimit) {
			t.Errorf("%q: limit %d accepted", raw, p.limit)
		}
	})
}
