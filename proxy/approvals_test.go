package proxy

import (
	"crypto/sha256"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/mcpgw/mcpgw/auditlog"
)

// fakeApprovals grants what grants holds (by tool, and by arguments hash
// when the grant has one) and hands out one request id per call shape.
type fakeApprovals struct {
	mu       sync.Mutex
	grants   map[string]*[32]byte // tool → hash (nil: the whole tool)
	requests map[string]string    // user app tool hash → id
	asked    []string             // user, groups, rule of each Request
}

func (f *fakeApprovals) Check(user, app string, tool []byte, h [32]byte) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.grants[string(tool)]
	if !ok || (g != nil && *g != h) {
		return "", false
	}
	return "g-" + string(tool), true
}

func (f *fakeApprovals) Request(user string, groups []string, app, rule, tool string, h *[32]byte) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := user + " " + app + " " + tool + " " + string(h[:])
	f.asked = append(f.asked, user+" "+strings.Join(groups, ",")+" "+rule)
	if id, ok := f.requests[key]; ok {
		return id, nil
	}
	id := "req-" + string(rune('0'+len(f.requests)+1))
	f.requests[key] = id
	return id, nil
}

func TestApprovalFlowInTheProxy(t *testing.T) {
	up := startUpstream(t, true)
	appr := &fakeApprovals{grants: map[string]*[32]byte{}, requests: map[string]string{}}
	l := openAudit(t, auditlog.Options{})
	gw := startGatewayOpts(t, Options{Audit: l}, func(s *Snapshot) { s.Approvals = appr },
		appDef{name: "app", path: "/mcp", upstream: up.url})
	call := func(args string) (int, string) {
		t.Helper()
		resp, body := post(t, gw.base+"/mcp", carolToken, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_items","arguments":`+args+`}}`, nil)
		return resp.StatusCode, body
	}
	refusal := func(body string) (code int, data map[string]string) {
		t.Helper()
		var m struct {
			Error struct {
				Code int               `json:"code"`
				Data map[string]string `json:"data"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return m.Error.Code, m.Error.Data
	}

	// No grant: refused, with the request to follow; the same call again
	// gets the same request.
	for range 2 {
		status, body := call(`{"environment":"prod"}`)
		code, data := refusal(body)
		if status != 200 || code != codeApprovalRequired || data["approval_request_id"] != "req-1" ||
			data["approval_url"] != gw.base+"/approvals/req-1" {
			t.Fatalf("without a grant: got %d %s", status, body)
		}
	}
	if _, body := call(`{"environment":"dev"}`); !strings.Contains(body, `"req-2"`) {
		t.Errorf("other arguments: got %s, want a request of their own", body)
	}
	if got := appr.asked[0]; got != "carol@example.com oncall prod-writes" {
		t.Errorf("Request was asked for %q, want carol, her groups and the approval rule", got)
	}
	if up.count("delete_items") != 0 {
		t.Fatal("a refused call reached the upstream")
	}

	// A grant of exactly one call: that call passes, others do not.
	h := sha256.Sum256([]byte(`{"environment":"prod"}`))
	appr.mu.Lock()
	appr.grants["delete_items"] = &h
	appr.mu.Unlock()
	if status, body := call(`{"environment":"prod"}`); status != 200 || strings.Contains(body, `"error"`) {
		t.Errorf("the granted call: got %d %s", status, body)
	}
	if _, body := call(`{"environment":"staging"}`); !strings.Contains(body, `"code":-31002`) {
		t.Errorf("a call the grant does not cover: got %s", body)
	}
	// A grant of the whole tool.
	appr.mu.Lock()
	appr.grants["delete_items"] = nil
	appr.mu.Unlock()
	if _, body := call(`{"environment":"staging"}`); strings.Contains(body, `"error"`) {
		t.Errorf("under a whole-tool grant: got %s", body)
	}
	if got := up.count("delete_items"); got != 2 {
		t.Errorf("the upstream ran delete_items %d times, want 2", got)
	}

	recs := auditRecords(t, l, func(recs []*auditlog.Record) bool {
		return len(find(recs, func(r *auditlog.Record) bool {
			return r.Name == "delete_items" && r.Message == auditlog.MessageResponse
		})) == 2
	})
	var decisions []string
	for _, r := range find(recs, func(r *auditlog.Record) bool { return r.Name == "delete_items" && r.Message == auditlog.MessageRequest }) {
		decisions = append(decisions, string(r.Decision)+" "+r.Rule+" "+r.Reason)
	}
	want := []string{
		"approval_required prod-writes approval request req-1",
		"approval_required prod-writes approval request req-1",
		"approval_required prod-writes approval request req-2",
		"allow grant:g-delete_items approved grant",
		"approval_required prod-writes approval request req-3",
		"allow grant:g-delete_items approved grant",
	}
	if strings.Join(decisions, "\n") != strings.Join(want, "\n") {
		t.Errorf("request records:\n%s\nwant\n%s", strings.Join(decisions, "\n"), strings.Join(want, "\n"))
	}
}
