package appliance

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// startToolsUpstream is a Go SDK MCP server with a few tools that answers
// only requests carrying X-Api-Key: k1.
func startToolsUpstream(t *testing.T) string {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "tools-upstream", Version: "1"}, nil)
	for _, name := range []string{"list_items", "get_item", "get_secret", "delete_items", "unlist_all"} {
		mcp.AddTool(srv, &mcp.Tool{Name: name}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{}, nil, nil
		})
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "k1" {
			http.Error(w, "no key", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

func TestToolsCommand(t *testing.T) {
	up := startToolsUpstream(t)
	dir := fixtureDir(t)
	config := func(key string) string {
		return writeFile(t, dir, "mcpgw.yaml", `identity:
  env_file: ""
  dev_users: [{token: alice-token-0123456789, user: alice@example.com, groups: [engineers]}]
applications:
  - name: app
    frontend_url: http://127.0.0.1:8080/mcp
    upstream_url: `+up+`
    headers: {X-Api-Key: `+key+`}
    rules:
      - name: readers
        subjects: {groups: [engineers]}
        tools: ["list_.*", "get_.*"]
        deny_tools: ["get_secret"]
      - name: writes
        subjects: {groups: [sre]}
        tools: ["delete_.*"]
        approval: {levels: [{approvers: {groups: [secops]}}]}
`)
	}
	cfg := config("k1")

	code, out, errOut := runMain("tools", "--config", cfg, "--app", "app")
	if code != ExitOK {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{
		"list_items  allowed by readers (groups engineers)\n",
		"get_secret  allowed by readers (groups engineers); denied by readers (groups engineers)\n",
		"delete_items  allowed by writes (groups sre, approval)\n",
		"unlist_all  no rule: nobody may call it\n",
		"5 of 5 tools of app (" + up + ")\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}

	// --match filters by whole name; --as says what that user would get.
	code, out, _ = runMain("tools", "--config", cfg, "--app", "app", "--match", "get_.*", "--as", "alice@example.com", "--groups", "engineers")
	if code != ExitOK || strings.Contains(out, "list_items") ||
		!strings.Contains(out, "get_item  allowed by readers (groups engineers)  [alice@example.com: allow by readers]\n") ||
		!strings.Contains(out, "get_secret  allowed by readers (groups engineers); denied by readers (groups engineers)  [alice@example.com: deny by readers]\n") ||
		!strings.Contains(out, "2 of 5 tools") {
		t.Errorf("--match get_.* --as alice: exit %d:\n%s", code, out)
	}

	// The upstream is reached with the application's headers: a wrong
	// key fails, and the key is not printed.
	code, out, errOut = runMain("tools", "--config", config("wrong-key-value"), "--app", "app")
	if code != ExitConfig || !strings.Contains(errOut, up) || strings.Contains(out+errOut, "wrong-key-value") {
		t.Errorf("wrong key: exit %d: %s%s", code, out, errOut)
	}
	for _, args := range [][]string{
		{"tools", "--config", cfg},
		{"tools", "--config", cfg, "--app", "nope"},
		{"tools", "--config", cfg, "--app", "app", "--match", "("},
	} {
		if code, _, _ := runMain(args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
}
