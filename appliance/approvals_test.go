package appliance

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/auditlog"
)

// writeApprovalConfig writes, in a new temporary directory, the config of
// a gateway on free loopback ports with one application whose delete_
// tools need two levels of approval (secops, then cab-lead), and the dev
// users alice (sre, the requester), sam (secops) and cab-lead. It returns
// the config's path.
func writeApprovalConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	listen, admin := freeTestAddr(t), freeTestAddr(t)
	return writeFile(t, dir, "mcpgw.yaml", `server:
  listen: "`+listen+`"
  admin: {listen: "`+admin+`", token_file: `+filepath.Join(dir, "admin.token")+`}
  data_dir: `+filepath.Join(dir, "data")+`
identity:
  dev_users:
    - {token: alice-token-0123456789, user: alice, groups: [sre]}
    - {token: sam-token-0123456789, user: sam, groups: [secops]}
    - {token: cab-token-0123456789, user: cab-lead}
applications:
  - name: app
    frontend_url: http://`+listen+`/mcp
    upstream_url: http://127.0.0.1:9/mcp
    rules:
      - name: prod-writes
        subjects: {groups: [sre]}
        tools: ["delete_.*"]
        approval:
          levels: [{approvers: {groups: [secops]}}, {approvers: {users: [cab-lead]}}]
          grant_ttl: 30m
          request_ttl: 1h
`)
}

// TestServeApprovalRequest: serve wires the access service into the
// proxy. An approval-only call is refused with the pending request to
// follow, the same request for the same call again, and the request is an
// audit record.
func TestServeApprovalRequest(t *testing.T) {
	cfgPath := writeApprovalConfig(t)
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	listen, admin := cfg.Server.Listen, cfg.Server.Admin.Listen
	stop := startServe(t, cfgPath)
	call := func(args string) (code int, data map[string]string) {
		t.Helper()
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_items","arguments":` + args + `}}`
		req, _ := http.NewRequest("POST", "http://"+listen+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer alice-token-0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m struct {
			Error struct {
				Code int               `json:"code"`
				Data map[string]string `json:"data"`
			} `json:"error"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		return m.Error.Code, m.Error.Data
	}
	code, data := call(`{"env":"prod"}`)
	id := data["approval_request_id"]
	if code != -31002 || id == "" || data["approval_url"] != "http://"+listen+"/approvals/"+id {
		t.Fatalf("approval-only call: got %d %v, want -31002 with a request and its URL", code, data)
	}
	if _, again := call(`{"env":"prod"}`); again["approval_request_id"] != id {
		t.Errorf("the same call again: got request %q, want %q", again["approval_request_id"], id)
	}
	if _, other := call(`{"env":"dev"}`); other["approval_request_id"] == id {
		t.Errorf("another call got the same request %q", id)
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"mcpgw_access_pending_requests 2\n", "mcpgw_access_grants 0\n"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("serve returned %v", err)
	}

	l, err := auditlog.OpenReadOnly(cfg.Audit.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var requested []string
	l.Scan(0, func(r *auditlog.Record) bool {
		if r.Kind == auditlog.KindApproval {
			requested = append(requested, r.Method+" "+r.User+" "+r.App+" "+r.Name+" "+r.Rule)
		}
		return true
	})
	if len(requested) != 2 || requested[0] != "approvals/requested alice app delete_items "+id {
		t.Errorf("approval records: got %q, want two approvals/requested, the first for %s", requested, id)
	}
}
