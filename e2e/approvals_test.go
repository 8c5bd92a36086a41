//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The proof of issue 6 with the real binary: a user's approval-only call
// opens a request, two levels of approvers decide it through the admin API
// with their own identities, the exact call then succeeds until its grant
// expires; self-approval is refused, a denial ends a request, a revoked
// grant blocks the very next call, and concurrent calls open one request.

const (
	requesterToken = "alice-token-0123456789"  // alice@example.com, sre
	secopsToken    = "sam-token-0123456789"    // sam@example.com, secops (level 1)
	cabToken       = "cab-token-0123456789"    // cab-lead@example.com (level 2)
	adminUserToken = "admin-token-01234567890" // root@example.com, mcpgw-admins
)

type approvalStack struct {
	URL, admin string
	backend    *callBackend
	passed     atomic.Int64 // calls the gateway let through
}

func startApprovalStack(t *testing.T) *approvalStack {
	t.Helper()
	dir := t.TempDir()
	g := newProcGroup(t, dir)
	backend := startCallBackend(t)
	listen, admin := freeAddr(t), freeAddr(t)
	url := "http://" + listen + "/mcp"
	cfg := fmt.Sprintf(`server:
  listen: %q
  data_dir: %q
  admin: {listen: %q}
identity:
  dev_users:
    - {token: %s, user: alice@example.com, groups: [sre]}
    - {token: %s, user: sam@example.com, groups: [secops]}
    - {token: %s, user: cab-lead@example.com, groups: []}
    - {token: %s, user: root@example.com, groups: [mcpgw-admins]}
roles: {admin_groups: [mcpgw-admins]}
applications:
  - name: ops
    frontend_url: %s
    upstream_url: %s
    rules:
      - name: prod-writes
        subjects: {groups: [sre]}
        tools: ["delete_.*"]
        approval:
          levels:
            - {approvers: {groups: [secops]}}
            - {approvers: {users: [cab-lead@example.com]}}
          grant_ttl: 4s
          request_ttl: 1h
`, listen, filepath.Join(dir, "data"), admin, requesterToken, secopsToken, cabToken, adminUserToken, url, backend.URL)
	g.startMcpgw(listen, cfg)
	return &approvalStack{URL: url, admin: "http://" + admin, backend: backend}
}

// deleteItems calls the approval-only tool as alice; it returns the
// request id of a refusal ("" when the call went through).
func (s *approvalStack) deleteItems(t *testing.T, env string) string {
	t.Helper()
	id, err := s.tryDeleteItems(env)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// tryDeleteItems is deleteItems for other goroutines than the test's.
func (s *approvalStack) tryDeleteItems(env string) (string, error) {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_items","arguments":{"env":%q}}}`, env)
	req, _ := http.NewRequest("POST", s.URL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+requesterToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code int               `json:"code"`
			Data map[string]string `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("delete_items: %v: %s", err, b)
	}
	if m.Error == nil {
		s.passed.Add(1)
		return "", nil
	}
	if m.Error.Code != -31002 || m.Error.Data["approval_request_id"] == "" {
		return "", fmt.Errorf("delete_items: got %s, want a result or -31002 with a request", b)
	}
	return m.Error.Data["approval_request_id"], nil
}

// api calls the admin API with token and returns the status and body.
func (s *approvalStack) api(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, s.admin+path, bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *approvalStack) decide(t *testing.T, id, verb, token, body string, want int) string {
	t.Helper()
	code, out := s.api(t, "POST", "/api/v1/approvals/"+id+"/"+verb, token, body)
	if code != want {
		t.Fatalf("%s %s: got %d %s, want %d", verb, id, code, out, want)
	}
	return out
}

func TestApprovalFlow(t *testing.T) {
	s := startApprovalStack(t)

	// A refused call opens a request; the same call again names it.
	id := s.deleteItems(t, "prod")
	if id == "" {
		t.Fatal("an approval-only call went through without a grant")
	}
	if again := s.deleteItems(t, "prod"); again != id {
		t.Errorf("the same call again: request %q, want %q", again, id)
	}
	s.decide(t, id, "approve", requesterToken, `{}`, http.StatusForbidden)     // never one's own
	s.decide(t, id, "approve", cabToken, `{}`, http.StatusForbidden)           // level 2 waits for level 1
	s.decide(t, id, "approve", adminUserToken, `{}`, http.StatusForbidden)     // not an approver
	s.decide(t, id, "approve", secopsToken, `{"comment":"ok"}`, http.StatusOK) // level 1
	out := s.decide(t, id, "approve", cabToken, `{}`, http.StatusOK)           // level 2: granted
	if !strings.Contains(out, `"status":"approved"`) {
		t.Errorf("after the last level: %s", out)
	}
	if got := s.deleteItems(t, "prod"); got != "" {
		t.Fatalf("the approved call: refused with %s", got)
	}
	if got := s.deleteItems(t, "staging"); got == "" || got == id {
		t.Errorf("a call the grant does not cover: got request %q", got)
	}
	// The grant expires (grant_ttl 4s): the call is refused again.
	deadline := time.Now().Add(10 * time.Second)
	for s.deleteItems(t, "prod") == "" {
		if time.Now().After(deadline) {
			t.Fatal("the grant did not expire")
		}
		time.Sleep(250 * time.Millisecond)
	}

	// A denial ends a request; the next refusal opens a new one.
	denied := s.deleteItems(t, "qa")
	s.decide(t, denied, "deny", secopsToken, `{"comment":"no"}`, http.StatusOK)
	s.decide(t, denied, "approve", cabToken, `{}`, http.StatusConflict)
	if next := s.deleteItems(t, "qa"); next == "" || next == denied {
		t.Errorf("after a denial: got request %q, want a new one", next)
	}

	// A whole-tool grant, revoked: the very next call is refused.
	whole := s.deleteItems(t, "eu")
	s.decide(t, whole, "approve", secopsToken, `{"whole_tool":true}`, http.StatusOK)
	s.decide(t, whole, "approve", cabToken, `{"whole_tool":true}`, http.StatusOK)
	if got := s.deleteItems(t, "us"); got != "" {
		t.Fatalf("under a whole-tool grant: refused with %s", got)
	}
	code, grants := s.api(t, "GET", "/api/v1/grants?user=alice@example.com", adminUserToken, "")
	var list struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if code != 200 || json.Unmarshal([]byte(grants), &list) != nil || len(list.Items) == 0 {
		t.Fatalf("grants: got %d %s", code, grants)
	}
	for _, g := range list.Items {
		if code, out := s.api(t, "DELETE", "/api/v1/grants/"+g.ID, adminUserToken, ""); code != http.StatusNoContent {
			t.Fatalf("revoke %s: got %d %s", g.ID, code, out)
		}
	}
	if got := s.deleteItems(t, "us"); got == "" {
		t.Error("the call after the revocation went through")
	}
	// Every step is an audit record: kind approval for requests and their
	// decisions, grant for grants.
	for kind, want := range map[string][]string{
		"approval": {"approvals/requested", "approvals/approved", "approvals/denied"},
		"grant":    {"approvals/granted", "approvals/revoked"},
	} {
		code, out := s.api(t, "GET", "/api/v1/activity?kind="+kind+"&limit=1000", adminUserToken, "")
		if code != 200 {
			t.Fatalf("audit records of kind %s: got %d %s", kind, code, out)
		}
		for _, m := range want {
			if !strings.Contains(out, `"method":"`+m+`"`) {
				t.Errorf("no %s audit record of kind %s in %s", m, kind, out)
			}
		}
	}

	ran := 0
	for _, n := range s.backend.received() {
		ran += n
	}
	if int64(ran) != s.passed.Load() || ran < 2 {
		t.Errorf("the backend ran %d calls, the gateway let %d through", ran, s.passed.Load())
	}
}

func TestApprovalRequestedOnceUnderConcurrency(t *testing.T) {
	s := startApprovalStack(t)
	var mu sync.Mutex
	ids := map[string]int{}
	var wg sync.WaitGroup
	for range 24 {
		wg.Go(func() {
			id, err := s.tryDeleteItems("concurrent")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids[id]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(ids) != 1 {
		t.Errorf("24 concurrent calls opened %d requests (%v), want 1", len(ids), ids)
	}
	code, out := s.api(t, "GET", "/api/v1/approvals?status=pending", adminUserToken, "")
	if code != 200 || strings.Count(out, `"id":"apr_`) != 1 {
		t.Errorf("pending requests: got %d %s, want exactly one", code, out)
	}
}
