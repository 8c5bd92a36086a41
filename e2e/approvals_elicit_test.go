//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Approval refusals reach real clients in the form they declared they can
// follow: the official Go SDK client, declaring URL-mode elicitation in a
// 2025-11-25 session, gets -32042 with one URL elicitation to the approval
// page; a 2026-07-28 client declaring it gets an input-required result
// whose retry runs on the real server once the request is approved.

// startElicitStack is go-everything (legacy or stateless) behind mcpgw,
// where test_simple_text needs one approval by sam (secops) for alice.
func startElicitStack(t *testing.T, e era) (frontend, admin string) {
	t.Helper()
	dir := t.TempDir()
	g := newProcGroup(t, dir)
	upstreamAddr := freeAddr(t)
	g.start("go-everything", upstreamAddr, nil, everythingBin, "-http", upstreamAddr, fmt.Sprintf("-stateless=%v", e == modern))
	listen, adminAddr := freeAddr(t), freeAddr(t)
	frontend = "http://" + listen + "/mcp"
	cfg := fmt.Sprintf(`server:
  listen: %q
  data_dir: %q
  admin: {listen: %q}
identity:
  dev_users:
    - {token: %s, user: alice@example.com, groups: [sre]}
    - {token: %s, user: sam@example.com, groups: [secops]}
applications:
  - name: everything
    frontend_url: %s
    upstream_url: http://%s/mcp
    rules:
      - name: writes
        subjects: {groups: [sre]}
        tools: [test_simple_text]
        approval:
          levels: [{approvers: {groups: [secops]}}]
          grant_ttl: 10m
          request_ttl: 1h
`, listen, filepath.Join(dir, "data"), adminAddr, requesterToken, secopsToken, frontend, upstreamAddr)
	g.startMcpgw(listen, cfg)
	return frontend, "http://" + adminAddr
}

func approveAs(t *testing.T, admin, id, token string) {
	t.Helper()
	s := &approvalStack{admin: admin}
	s.decide(t, id, "approve", token, `{}`, http.StatusOK)
}

func TestApprovalURLElicitationGoSDK(t *testing.T) {
	frontend, admin := startElicitStack(t, legacy)
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpgw-e2e-elicit", Version: "1.0.0"}, &mcp.ClientOptions{
		Capabilities: &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}},
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "decline"}, nil
		},
	})
	transport := &mcp.StreamableClientTransport{
		Endpoint:   frontend,
		HTTPClient: &http.Client{Transport: bearer{token: requesterToken, base: http.DefaultTransport}},
		MaxRetries: -1,
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cs, err := client.Connect(ctx, transport, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if v := cs.InitializeResult().ProtocolVersion; v != "2025-11-25" {
		t.Fatalf("negotiated %s, want 2025-11-25 (URL elicitation)", v)
	}
	params := &mcp.CallToolParams{Name: "test_simple_text", Arguments: map[string]any{}}
	_, err = cs.CallTool(ctx, params)
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != mcp.CodeURLElicitationRequired {
		t.Fatalf("an approval-only call without a grant: got %v, want a -32042 error", err)
	}
	var data struct {
		Elicitations []mcp.ElicitParams `json:"elicitations"`
		ID           string             `json:"approval_request_id"`
		URL          string             `json:"approval_url"`
	}
	if err := json.Unmarshal(rpcErr.Data, &data); err != nil || len(data.Elicitations) != 1 {
		t.Fatalf("error data %s: %v", rpcErr.Data, err)
	}
	el := data.Elicitations[0]
	wantURL := strings.TrimSuffix(frontend, "/mcp") + "/approvals/" + data.ID
	if el.Mode != "url" || el.ElicitationID != data.ID || el.URL != wantURL || data.URL != wantURL || el.Message == "" {
		t.Fatalf("elicitation %+v for request %s, want url mode at %s", el, data.ID, wantURL)
	}
	approveAs(t, admin, data.ID, secopsToken)
	res, err := cs.CallTool(ctx, params)
	if err != nil || res.IsError || len(res.Content) == 0 {
		t.Fatalf("the approved call: %v %+v", err, res)
	}
}

func TestApprovalInputRequiredModern(t *testing.T) {
	frontend, admin := startElicitStack(t, modern)
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",` +
		`"io.modelcontextprotocol/clientCapabilities":{"elicitation":{"url":{}}},` +
		`"io.modelcontextprotocol/clientInfo":{"name":"e2e","version":"1"}}`
	call := func(id int, extra string) response {
		t.Helper()
		body := json.RawMessage(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}%s,%s}}`, id, extra, meta))
		return send(t, "POST", frontend, requesterToken, "", "2026-07-28", body, func(r *http.Request) {
			r.Header.Set("Mcp-Method", "tools/call")
			r.Header.Set("Mcp-Name", "test_simple_text")
		})
	}
	r := call(1, "")
	var first struct {
		Result struct {
			ResultType    string `json:"resultType"`
			InputRequests map[string]struct {
				Method string           `json:"method"`
				Params mcp.ElicitParams `json:"params"`
			} `json:"inputRequests"`
			RequestState string `json:"requestState"`
		} `json:"result"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &first) != nil || first.Result.ResultType != "input_required" || len(first.Result.InputRequests) != 1 {
		t.Fatalf("an approval-only call without a grant: %s", r.short())
	}
	var id string
	for _, in := range first.Result.InputRequests {
		if in.Method != "elicitation/create" || in.Params.Mode != "url" || !strings.HasSuffix(in.Params.URL, "/approvals/"+in.Params.ElicitationID) {
			t.Fatalf("input request %+v", in)
		}
		id = in.Params.ElicitationID
	}
	approveAs(t, admin, id, secopsToken)
	var key string
	for k := range first.Result.InputRequests {
		key = k
	}
	retry := call(2, fmt.Sprintf(`,"inputResponses":{%q:{"action":"accept"}},"requestState":%q`, key, first.Result.RequestState))
	res := retry.result(2)
	if retry.status != 200 || res == nil || res["resultType"] == "input_required" || !strings.Contains(fmt.Sprint(res["content"]), "text") {
		t.Fatalf("the retry after approval: %s", retry.short())
	}
}
