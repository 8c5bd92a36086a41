package appliance

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpgw/mcpgw/access"
)

// runApprovalsCmd runs mcpgw approvals args with $MCPGW_TOKEN set to
// envToken ("" for unset).
func runApprovalsCmd(envToken string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	getenv := func(name string) string {
		if name == "MCPGW_TOKEN" {
			return envToken
		}
		return ""
	}
	code = Main(append([]string{"approvals"}, args...), Env{Stdout: &out, Stderr: &errb, Getenv: getenv})
	return code, out.String(), errb.String()
}

// requestLine matches the line a request prints, capturing its id.
var requestLine = regexp.MustCompile(`^(apr_[a-z2-7]+) `)

func TestApprovalsCommand(t *testing.T) {
	clock := &testClock{t: approvalT0}
	svc := newApprovalService(t, clock)
	srv := approvalsServer(t, svc)
	dir := t.TempDir()
	cfg := auditConfig(t, dir, strings.TrimPrefix(srv.URL, "http://"))

	// alice asks ahead of time; the same again is the same request.
	code, out, errOut := runApprovalsCmd("", "request", "--config", cfg, "--token", "alice-token",
		"--app", "crm", "--tool", "delete_user", "--tool", "delete_group", "--reason", "INC-42 cleanup")
	m := requestLine.FindStringSubmatch(out)
	if code != ExitOK || m == nil {
		t.Fatalf("request: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	id := m[1]
	wantLine := id + ` pending level=1/2 user=alice@example.com app=crm tools=delete_group,delete_user expires=2026-11-25T15:00:00Z reason="INC-42 cleanup"` + "\n"
	if out != wantLine {
		t.Errorf("request: got %q, want %q", out, wantLine)
	}
	code, out, errOut = runApprovalsCmd("alice-token", "request", "--config", cfg, "--app", "crm",
		"--tool", "delete_group", "--tool", "delete_user", "--reason", "again")
	if code != ExitOK || !strings.HasPrefix(out, id+" pending") || !strings.Contains(errOut, "already existed") {
		t.Errorf("request again with $MCPGW_TOKEN: exit %d, stdout %q, stderr %q; want %s, already existed", code, out, errOut, id)
	}

	steps := []struct {
		name, envToken string
		args           []string
		wantCode       int
		wantOut        string // a prefix of stdout
		wantErr        string // a part of stderr
	}{
		{"list with the admin token of token_file", "", []string{"list"}, ExitOK, id + " pending level=1/2 ", ""},
		{"list pending as the level-1 approver", "sam-token", []string{"list", "--status", "pending"}, ExitOK, id + " pending", ""},
		{"list as a user with no part", "eve-token", []string{"list"}, ExitOK, "", "no approval requests"},
		{"list approved", "", []string{"list", "--status", "approved"}, ExitOK, "", "no approval requests"},
		{"the requester cannot approve", "alice-token", []string{"approve", id}, ExitConfig, "",
			"refused: the requester cannot decide their own request (403 forbidden)"},
		{"level 2 cannot act at level 1", "cab-token", []string{"approve", id}, ExitConfig, "", "(403 forbidden)"},
		{"level 1 approves", "sam-token", []string{"approve", id, "--comment", "ok", "--whole-tool"}, ExitOK, id + " pending level=2/2 ", ""},
		{"level 1 again", "sam-token", []string{"approve", id}, ExitConfig, "", "(403 forbidden)"},
		{"level 2 approves, flags first", "", []string{"approve", "--token", "cab-token", "--comment", "go", id}, ExitOK, id + " approved level=2/2 ", ""},
		{"deny after the approval", "cab-token", []string{"deny", id}, ExitConfig, "", "(409 conflict)"},
		{"an unknown request", "sam-token", []string{"deny", "apr_nothing"}, ExitConfig, "", "no such approval request (404 not_found)"},
		{"a token nobody issued", "nope", []string{"list"}, ExitConfig, "", "the bearer token is not valid (401 unauthorized)"},
		{"the admin token cannot request", testAdminToken, []string{"request", "--app", "crm", "--tool", "delete_org", "--reason", "r"},
			ExitConfig, "", "the admin token names no user"},
	}
	for _, s := range steps {
		args := append(s.args[:1:1], append([]string{"--config", cfg}, s.args[1:]...)...)
		code, out, errOut := runApprovalsCmd(s.envToken, args...)
		if code != s.wantCode || !strings.HasPrefix(out, s.wantOut) || !strings.Contains(errOut, s.wantErr) {
			t.Errorf("%s: got exit %d, stdout %q, stderr %q; want exit %d, stdout from %q, stderr with %q",
				s.name, code, out, errOut, s.wantCode, s.wantOut, s.wantErr)
		}
	}
	req, err := svc.Get(id)
	if err != nil || req.Status != access.StatusApproved || len(req.Decisions) != 2 || req.Decisions[0].Comment != "ok" {
		t.Fatalf("the request after the commands: got %+v %v, want approved, level 1 with comment ok", req, err)
	}
	if !strings.Contains(runOut(t, "", "list", "--config", cfg, "--status", "approved"), " grant="+req.GrantID+" ") {
		t.Errorf("list approved does not name grant %s", req.GrantID)
	}

	// --json prints the API's answer as it came.
	code, out, _ = runApprovalsCmd("audrey-token", "list", "--config", cfg, "--json")
	var page listPage[access.Request]
	if code != ExitOK || json.Unmarshal([]byte(out), &page) != nil {
		t.Fatalf("list --json: exit %d, %q", code, out)
	}
	if diff := cmp.Diff([]access.Request{*req}, page.Items); diff != "" {
		t.Errorf("list --json (-want +got):\n%s", diff)
	}

	// --whole-tool reaches the gateway: on an exact-call request the
	// approval is recorded as one for the whole tool.
	hash := [32]byte{7}
	exact, _, err := svc.RequestFor("bob@example.com", "crm", "prod-writes", "delete_user", &hash)
	if err != nil {
		t.Fatal(err)
	}
	runOut(t, "sam-token", "approve", exact.ID, "--config", cfg, "--whole-tool")
	if got, err := svc.Get(exact.ID); err != nil || len(got.Decisions) != 1 || !got.Decisions[0].WholeTool {
		t.Errorf("approve --whole-tool of an exact call: got %+v %v, want one whole_tool approval", got, err)
	}

	// A denial through the command ends a second request.
	second, _, err := svc.Request("bob@example.com", []string{"sre"}, "crm", []string{"delete_org"}, "")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runApprovalsCmd("sam-token", "deny", second.ID, "--config", cfg, "--comment", "not today", "--json")
	var denied access.Request
	if code != ExitOK || json.Unmarshal([]byte(out), &denied) != nil || denied.Status != access.StatusDenied {
		t.Errorf("deny --json: exit %d, stdout %q, stderr %q; want the denied request", code, out, errOut)
	}
}

// runOut runs mcpgw approvals and returns its stdout, failing on a non-zero exit.
func runOut(t *testing.T, envToken string, args ...string) string {
	t.Helper()
	code, out, errOut := runApprovalsCmd(envToken, args...)
	if code != ExitOK {
		t.Fatalf("mcpgw approvals %v: exit %d, %s", args, code, errOut)
	}
	return out
}

func TestApprovalsCommandUsage(t *testing.T) {
	dir := t.TempDir()
	cfg := auditConfig(t, dir, closedAddr(t))
	for _, c := range []struct {
		name     string
		envToken string
		args     []string
		want     int
		wantErr  string
	}{
		{"no subcommand", "", nil, ExitUsage, "usage: mcpgw approvals"},
		{"an unknown subcommand", "", []string{"grant"}, ExitUsage, "usage: mcpgw approvals"},
		{"help", "", []string{"help"}, ExitOK, ""},
		{"approve without an id", "t", []string{"approve", "--config", cfg}, ExitUsage, "which request?"},
		{"deny with two ids", "t", []string{"deny", "apr_a", "apr_b", "--config", cfg}, ExitUsage, `unexpected argument "apr_b"`},
		{"approve without a token", "", []string{"approve", "apr_a", "--config", cfg}, ExitUsage, "approvals are personal"},
		{"request without a reason", "t", []string{"request", "--config", cfg, "--app", "crm", "--tool", "x"}, ExitUsage, "--reason are required"},
		{"list with a bad status", "t", []string{"list", "--config", cfg, "--status", "open"}, ExitUsage, "--status must be"},
		{"list with an argument", "t", []string{"list", "pending", "--config", cfg}, ExitUsage, `unexpected argument "pending"`},
		{"whole-tool on deny", "t", []string{"deny", "apr_a", "--whole-tool", "--config", cfg}, ExitUsage, "not defined"},
		{"no gateway answers", "t", []string{"list", "--config", cfg}, ExitConfig, "cannot reach the gateway's admin API"},
		{"a config that does not load", "t", []string{"list", "--config", dir + "/missing.yaml"}, ExitConfig, "missing.yaml"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := runApprovalsCmd(c.envToken, c.args...)
			if code != c.want || !strings.Contains(errOut, c.wantErr) {
				t.Errorf("got exit %d, stderr %q; want exit %d, stderr with %q", code, errOut, c.want, c.wantErr)
			}
		})
	}
}

// TestServeApprovalsCommand: serve mounts the approvals endpoints on its
// admin listener, with the dev users of its config as approvers, and the
// command drives a two-level flow to a grant that its user gives up.
func TestServeApprovalsCommand(t *testing.T) {
	cfg := writeApprovalConfig(t)
	loaded, err := LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin := loaded.Server.Admin.Listen
	stop := startServe(t, cfg)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("serve returned %v", err)
		}
	}()

	out := runOut(t, "alice-token-0123456789", "request", "--config", cfg, "--app", "app", "--tool", "delete_items", "--reason", "cleanup")
	m := requestLine.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, " pending level=1/2 user=alice app=app tools=delete_items ") {
		t.Fatalf("request through serve: got %q", out)
	}
	id := m[1]
	if code, _, errOut := runApprovalsCmd("alice-token-0123456789", "approve", id, "--config", cfg); code != ExitConfig || !strings.Contains(errOut, "403 forbidden") {
		t.Errorf("self-approval through serve: exit %d, %q; want 1 and a 403", code, errOut)
	}
	runOut(t, "sam-token-0123456789", "approve", id, "--config", cfg)
	out = runOut(t, "cab-token-0123456789", "approve", id, "--config", cfg)
	if !strings.HasPrefix(out, id+" approved level=2/2 ") || !strings.Contains(out, " grant=grt_") {
		t.Fatalf("the last approval through serve: got %q", out)
	}
	if out := runOut(t, "", "list", "--config", cfg, "--status", "approved"); !strings.HasPrefix(out, id+" approved") {
		t.Errorf("list with the admin token of token_file: got %q", out)
	}

	// alice lists her grant and gives it up.
	grants := func() []access.Grant {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+admin+"/api/v1/grants", nil)
		req.Header.Set("Authorization", "Bearer alice-token-0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var page listPage[access.Grant]
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /api/v1/grants: %d %v", resp.StatusCode, err)
		}
		return page.Items
	}
	g := grants()
	if len(g) != 1 || g[0].RequestID != id || g[0].User != "alice" {
		t.Fatalf("alice's grants: got %+v, want the grant of %s", g, id)
	}
	req, _ := http.NewRequest("DELETE", "http://"+admin+"/api/v1/grants/"+g[0].ID, nil)
	req.Header.Set("Authorization", "Bearer alice-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Errorf("DELETE her grant: got %d, want 204", resp.StatusCode)
	}
	if g := grants(); len(g) != 0 {
		t.Errorf("alice's grants after giving it up: got %+v, want none", g)
	}
}
