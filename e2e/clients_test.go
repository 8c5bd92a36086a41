//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const clientTimeout = 60 * time.Second

// tsResult is what clients/mcp-client.mjs prints.
type tsResult struct {
	Connected       bool                `json:"connected"`
	ConnectError    *tsError            `json:"connectError"`
	ProtocolVersion string              `json:"protocolVersion"`
	SessionID       string              `json:"sessionId"`
	ServerInfo      *mcp.Implementation `json:"serverInfo"`
	Steps           []tsStep            `json:"steps"`
}

type tsStep struct {
	Op         string              `json:"op"`
	Name       string              `json:"name"`
	OK         bool                `json:"ok"`
	Error      *tsError            `json:"error"`
	Names      []string            `json:"names"`
	Result     *mcp.CallToolResult `json:"result"`
	Progress   []tsProgress        `json:"progress"`
	StartedMs  float64             `json:"startedMs"`
	ResultAtMs float64             `json:"resultAtMs"`
}

type tsError struct {
	Code    *int64 `json:"code"`
	Message string `json:"message"`
}

type tsProgress struct {
	Progress float64 `json:"progress"`
	Total    float64 `json:"total"`
	Message  string  `json:"message"`
	AtMs     float64 `json:"atMs"`
}

// runTS runs the TypeScript SDK client with Node from the machine (not the
// suites' Node 22) and returns its report. steps are the script's ops.
func runTS(t *testing.T, url, token string, steps ...map[string]any) tsResult {
	t.Helper()
	var res tsResult
	stderr, runErr := runNodeJSON(t, "node", &res, filepath.Join("clients", "mcp-client.mjs"), url, token, stepsArg(t, steps))
	if !res.Connected {
		t.Fatalf("TypeScript client could not connect to %s: %+v (run: %v)\nstderr:\n%s", url, res.ConnectError, runErr, stderr)
	}
	if runErr != nil {
		t.Fatalf("TypeScript client: %v\nstderr:\n%s", runErr, stderr)
	}
	return res
}

func stepsArg(t *testing.T, steps []map[string]any) string {
	t.Helper()
	b, err := json.Marshal(steps)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// runNodeJSON runs a Node script with node (a path, or "node" from PATH),
// bounded by clientTimeout, and decodes the JSON it prints into out. It
// returns the script's stderr and its exit error; output that is not JSON
// fails the test.
func runNodeJSON(t *testing.T, node string, out any, script string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Env = append(cmd.Environ(), "E2E_NODE_MODULES="+nodeModules)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s gave no answer within %s; stderr:\n%s", script, clientTimeout, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("%s output is not JSON (%v, run: %v)\nstdout:\n%s\nstderr:\n%s", script, err, runErr, stdout.String(), stderr.String())
	}
	return stderr.String(), runErr
}

func listTools() map[string]any     { return map[string]any{"op": "listTools"} }
func listPrompts() map[string]any   { return map[string]any{"op": "listPrompts"} }
func listResources() map[string]any { return map[string]any{"op": "listResources"} }
func callTool(name string, progress bool) map[string]any {
	return map[string]any{"op": "callTool", "name": name, "progress": progress}
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// goClient is a Go SDK client session plus the progress notifications it
// received.
type goClient struct {
	*mcp.ClientSession

	mu       sync.Mutex
	progress []goProgress
}

type goProgress struct {
	params *mcp.ProgressNotificationParams
	at     time.Time
}

func (c *goClient) progressSeen() []goProgress {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]goProgress(nil), c.progress...)
}

// connectGo connects the official Go SDK client to url, with token as
// bearer token when not empty. The session is closed when t ends.
func connectGo(t *testing.T, url, token string) *goClient {
	t.Helper()
	gc := &goClient{}
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpgw-e2e-go", Version: "1.0.0"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			gc.mu.Lock()
			gc.progress = append(gc.progress, goProgress{req.Params, time.Now()})
			gc.mu.Unlock()
		},
	})
	var rt http.RoundTripper = http.DefaultTransport.(*http.Transport).Clone()
	if token != "" {
		rt = bearer{token: token, base: rt}
	}
	transport := &mcp.StreamableClientTransport{
		Endpoint:   url,
		HTTPClient: &http.Client{Transport: rt},
		MaxRetries: -1,
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cs, err := client.Connect(ctx, transport, nil)
	if err != nil {
		t.Fatalf("Go SDK client connecting to %s: %v", url, err)
	}
	t.Cleanup(func() { cs.Close() })
	gc.ClientSession = cs
	return gc
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	t.Cleanup(cancel)
	return ctx
}

// reference is what the bare upstream serves (every name, sorted), asked
// directly with the Go SDK client.
type reference struct {
	tools, prompts, resources []string
	protocolVersion           string
	simpleText                string
}

func upstreamReference(t *testing.T, s *stack) reference {
	t.Helper()
	c := connectGo(t, s.UpstreamURL, "")
	ctx := ctxFor(t)
	var ref reference
	ref.protocolVersion = c.InitializeResult().ProtocolVersion
	for method, dst := range map[string]*[]string{
		"tools/list":     &ref.tools,
		"prompts/list":   &ref.prompts,
		"resources/list": &ref.resources,
	} {
		var err error
		if *dst, err = list(ctx, c.ClientSession, method); err != nil {
			t.Fatalf("upstream %v", err)
		}
	}
	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "test_simple_text"})
	if err != nil {
		t.Fatalf("upstream test_simple_text: %v", err)
	}
	ref.simpleText = textOf(res)
	sort.Strings(ref.tools)
	sort.Strings(ref.prompts)
	sort.Strings(ref.resources)
	if len(ref.tools) == 0 || len(ref.prompts) == 0 || len(ref.resources) == 0 || ref.simpleText == "" {
		t.Fatalf("upstream serves too little to test with: %+v", ref)
	}
	return ref
}

// bobTools is what bob's rule allows of the upstream's tools.
func (r reference) bobTools() []string {
	var out []string
	for _, name := range r.tools {
		if strings.HasPrefix(name, "test_") && name != "test_error_handling" {
			out = append(out, name)
		}
	}
	return out
}

// list makes one list request (tools/list, prompts/list or resources/list)
// and returns the names (URIs for resources) it got.
func list(ctx context.Context, cs *mcp.ClientSession, method string) ([]string, error) {
	var names []string
	switch method {
	case "tools/list":
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		for _, x := range res.Tools {
			names = append(names, x.Name)
		}
	case "prompts/list":
		res, err := cs.ListPrompts(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		for _, x := range res.Prompts {
			names = append(names, x.Name)
		}
	case "resources/list":
		res, err := cs.ListResources(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		for _, x := range res.Resources {
			names = append(names, x.URI)
		}
	default:
		return nil, fmt.Errorf("list: unknown method %s", method)
	}
	return names, nil
}

func textOf(res *mcp.CallToolResult) string {
	if res == nil {
		return ""
	}
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

func sorted(names []string) []string {
	out := slices.Clone(names)
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	return out
}
