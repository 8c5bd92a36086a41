package proxy

import (
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/identity"
	"github.com/mcpgw/mcpgw/policycache"
)

// Test fixtures: a real MCP server (the official Go SDK's streamable HTTP
// handler) behind the proxy, and real clients in front of it.

const (
	aliceToken = "alice-token-0123456789"
	bobToken   = "bob-token-0123456789"
	carolToken = "carol-token-0123456789"
)

// upstream is a Go SDK MCP server that counts tool invocations and records
// the headers of the last request it saw.
type upstream struct {
	url   string
	calls sync.Map // tool name -> *atomic.Int64

	mu      sync.Mutex // guards headers
	headers http.Header
}

func (u *upstream) count(name string) int64 {
	v, ok := u.calls.Load(name)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

func (u *upstream) hit(name string) {
	v, _ := u.calls.LoadOrStore(name, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (u *upstream) lastHeaders() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.headers.Clone()
}

type itemsInput struct {
	Environment string `json:"environment,omitempty"`
}

func startUpstream(t *testing.T, stateless bool) *upstream {
	t.Helper()
	u := &upstream{}
	srv := mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "1"}, nil)
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	for _, name := range []string{"list_items", "get_item", "get_secret", "delete_items", "unlist_all"} {
		mcp.AddTool(srv, &mcp.Tool{Name: name, Description: name}, func(ctx context.Context, req *mcp.CallToolRequest, in itemsInput) (*mcp.CallToolResult, any, error) {
			u.hit(name)
			return text(name + " ok " + in.Environment), nil, nil
		})
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "slow_progress", Description: "reports progress"}, func(ctx context.Context, req *mcp.CallToolRequest, in itemsInput) (*mcp.CallToolResult, any, error) {
		u.hit("slow_progress")
		tok := req.Params.GetProgressToken()
		for i := 1; i <= 3 && tok != nil; i++ {
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i), Total: 3})
			time.Sleep(5 * time.Millisecond)
		}
		return text("done"), nil, nil
	})
	srv.AddPrompt(&mcp.Prompt{Name: "greeting"}, func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}}, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: stateless})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.headers = r.Header.Clone()
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	u.url = ts.URL + "/mcp"
	return u
}

// gateway is a running proxy on a loopback port.
type gateway struct {
	srv  *Server
	base string // http://127.0.0.1:port
}

// testRules: engineers may list and get (but not get_secret), sre may also
// delete; the anonymous app allows everything.
func testPolicy(t *testing.T, apps ...string) *policycache.Policy {
	t.Helper()
	var specs []policycache.AppSpec
	for _, name := range apps {
		specs = append(specs, policycache.AppSpec{Name: name, Rules: []policycache.RuleSpec{
			{Name: "readers", Groups: []string{"engineers"}, Tools: []string{"list_.*", "get_.*", "slow_progress"}, DenyTools: []string{"get_secret.*"}, Prompts: []string{".*"}},
			{Name: "sre", Groups: []string{"sre"}, Tools: []string{"list_.*", "delete_.*"}, Arguments: map[string]string{"/environment": "dev|staging"}},
			{Name: "anyone", Anonymous: true, Tools: []string{".*"}, Prompts: []string{".*"}, Resources: []string{".*"}},
			{Name: "oncall-reads", Groups: []string{"oncall"}, Tools: []string{"list_.*"}},
			{Name: "prod-writes", Groups: []string{"oncall"}, Tools: []string{"delete_.*"}, Approval: true},
		}})
	}
	pol, err := policycache.Compile(specs, policycache.Options{})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	t.Cleanup(pol.Close)
	return pol
}

type appDef struct {
	name     string
	path     string
	upstream string
	authNone bool
	headers  []Header
}

func startGateway(t *testing.T, apps ...appDef) *gateway {
	t.Helper()
	return startGatewayWith(t, nil, apps...)
}

// startGatewayWith is startGateway with a hook that may change the
// snapshot (per application too) before the gateway serves it.
func startGatewayWith(t *testing.T, edit func(*Snapshot), apps ...appDef) *gateway {
	t.Helper()
	return startGatewayOpts(t, Options{}, edit, apps...)
}

// startGatewayOpts is startGatewayWith with Server options (the session
// codec and Loopback are set here).
func startGatewayOpts(t *testing.T, opts Options, edit func(*Snapshot), apps ...appDef) *gateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	codec, err := identity.NewSessionCodec(key)
	if err != nil {
		t.Fatal(err)
	}
	opts.Sessions, opts.Loopback = codec, true
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(apps))
	snap := &Snapshot{
		DevUsers: identity.NewDevUsers([]identity.DevUser{
			{Token: aliceToken, User: "alice@example.com", Groups: []string{"engineers"}},
			{Token: bobToken, User: "bob@example.com", Groups: []string{"sre"}},
			{Token: carolToken, User: "carol@example.com", Groups: []string{"oncall"}},
		}),
		MaxBody:         64 << 10,
		UpstreamTimeout: 5 * time.Second,
		KeepAlive:       200 * time.Millisecond,
	}
	for _, a := range apps {
		names = append(names, a.name)
		front, _ := url.Parse(base + a.path)
		up, _ := url.Parse(a.upstream)
		snap.Applications = append(snap.Applications, Application{Name: a.name, Frontend: front, Upstream: up, AuthNone: a.authNone, Headers: a.headers})
	}
	snap.Policy = testPolicy(t, names...)
	if edit != nil {
		edit(snap)
	}
	if err := srv.Update(snap); err != nil {
		t.Fatalf("Update: %v", err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return &gateway{srv: srv, base: base}
}

// bearer adds a token to every request of a client.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// connect opens a Go SDK client session through the gateway.
func connect(t *testing.T, endpoint, token, version string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}
	c := mcp.NewClient(&mcp.Implementation{Name: "proxy-test", Version: "1"}, opts)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("Connect(%s, %s): %v", endpoint, version, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}
