//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var aliceTools = []string{"test_simple_text", "test_tool_with_progress"}

// minStreamGap is how long before the result the first progress notification
// must arrive: the server sleeps 50 ms after each of its three notifications,
// so a relay that streams shows about 150 ms and one that buffers shows 0.
const minStreamGap = 75 * time.Millisecond

// TestTypeScriptClient drives mcpgw with the official TypeScript SDK client
// as alice and bob.
func TestTypeScriptClient(t *testing.T) {
	s := startStack(t, legacy)
	ref := upstreamReference(t, s)

	alice := runTS(t, s.URL, aliceToken,
		listTools(), listPrompts(), listResources(),
		callTool("test_simple_text", false),
		callTool("test_tool_with_progress", true),
		callTool("test_error_handling", false),
	)
	bob := runTS(t, s.URL, bobToken, listTools(), listPrompts())
	t.Logf("TypeScript client negotiated %s through mcpgw", alice.ProtocolVersion)
	step := func(res tsResult, i int) tsStep {
		t.Helper()
		if i >= len(res.Steps) {
			t.Fatalf("client reported %d steps, want more than %d", len(res.Steps), i)
		}
		if st := res.Steps[i]; !st.OK && st.Op != "callTool" {
			t.Fatalf("%s %s failed: %+v", st.Op, st.Name, st.Error)
		}
		return res.Steps[i]
	}

	t.Run("alice tools/list", func(t *testing.T) {
		assertNames(t, step(alice, 0).Names, aliceTools)
	})
	t.Run("alice prompts/list", func(t *testing.T) {
		assertNames(t, step(alice, 1).Names, ref.prompts)
	})
	t.Run("alice resources/list", func(t *testing.T) {
		assertNames(t, step(alice, 2).Names, ref.resources)
	})
	t.Run("bob tools/list", func(t *testing.T) {
		got := step(bob, 0).Names
		assertNames(t, got, ref.bobTools())
		if slices.Equal(sorted(got), sorted(aliceTools)) {
			t.Errorf("bob's tools/list equals alice's: %q", got)
		}
	})
	t.Run("bob prompts/list", func(t *testing.T) {
		assertNames(t, step(bob, 1).Names, nil)
	})
	t.Run("alice calls test_simple_text", func(t *testing.T) {
		st := step(alice, 3)
		if !st.OK {
			t.Fatalf("call failed: %+v", st.Error)
		}
		if st.Result.IsError || textOf(st.Result) != ref.simpleText {
			t.Errorf("got isError=%v text %q, want the upstream's %q", st.Result.IsError, textOf(st.Result), ref.simpleText)
		}
		if n := s.Upstream.count("tools/call", "test_simple_text"); n != 1 {
			t.Errorf("upstream saw %d tools/call test_simple_text, want 1", n)
		}
	})
	t.Run("alice calls test_tool_with_progress", func(t *testing.T) {
		st := step(alice, 4)
		if !st.OK {
			t.Fatalf("call failed: %+v", st.Error)
		}
		var got []float64
		for _, p := range st.Progress {
			got = append(got, p.Progress)
			if p.Total != 100 {
				t.Errorf("progress %v has total %v, want 100", p.Progress, p.Total)
			}
		}
		if want := []float64{0, 50, 100}; !slices.Equal(got, want) {
			t.Fatalf("got progress %v, want %v", got, want)
		}
		if textOf(st.Result) == "" || st.Result.IsError {
			t.Errorf("got result %+v, want the progress token echoed as text", st.Result)
		}
		if gap := time.Duration((st.ResultAtMs - st.Progress[0].AtMs) * float64(time.Millisecond)); gap < minStreamGap {
			t.Errorf("first progress notification came %v before the result, want at least %v (events buffered, not streamed)", gap, minStreamGap)
		}
	})
	t.Run("alice calls test_error_handling", func(t *testing.T) {
		st := step(alice, 5)
		if st.OK {
			t.Fatalf("call succeeded with %+v, want a JSON-RPC error", st.Result)
		}
		if st.Error == nil || st.Error.Code == nil {
			t.Errorf("got error %+v, want a JSON-RPC error with a code", st.Error)
		}
		if n := s.Upstream.count("tools/call", "test_error_handling"); n != 0 {
			t.Errorf("upstream saw %d tools/call test_error_handling, want 0 (denied calls must not be forwarded)", n)
		}
	})
	t.Run("upstream never sees client credentials or the client's session id", func(t *testing.T) {
		assertNoCredentialsUpstream(t, s)
		if alice.SessionID == "" {
			t.Fatal("client got no MCP-Session-Id from mcpgw")
		}
		if slices.Contains(s.Upstream.upstreamSessionIDs(), alice.SessionID) {
			t.Errorf("client's session id %q is the upstream's own", alice.SessionID)
		}
	})
}

// TestGoClient drives mcpgw with the official Go SDK client as bob, in
// front of a stateful upstream (the client falls back from server/discover to
// initialize, legacy era) and a stateless one (2026-07-28, modern era).
func TestGoClient(t *testing.T) {
	for _, tc := range []struct {
		name string
		era  era
		want string // protocol version the client should end up with
	}{
		{"legacy", legacy, "2025-11-25"},
		{"modern", modern, "2026-07-28"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startStack(t, tc.era)
			ref := upstreamReference(t, s)
			if ref.protocolVersion != tc.want {
				t.Fatalf("Go SDK client negotiated %q with the bare server, want %q", ref.protocolVersion, tc.want)
			}
			testGoClient(t, s, ref)
		})
	}
}

func testGoClient(t *testing.T, s *stack, ref reference) {
	bob := connectGo(t, s.URL, bobToken)
	ctx := ctxFor(t)

	t.Run("protocol version", func(t *testing.T) {
		if got := bob.InitializeResult().ProtocolVersion; got != ref.protocolVersion {
			t.Errorf("negotiated %q through mcpgw, want %q as with the bare server", got, ref.protocolVersion)
		}
	})
	t.Run("alice tools/list", func(t *testing.T) {
		got, err := list(ctx, connectGo(t, s.URL, aliceToken).ClientSession, "tools/list")
		if err != nil {
			t.Fatal(err)
		}
		assertNames(t, got, aliceTools)
	})
	if ref.protocolVersion >= "2026-07-28" {
		t.Run("filtered tools/list is cacheScope private", func(t *testing.T) {
			res, err := bob.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.CacheScope != "private" {
				t.Errorf("got cacheScope %q, want \"private\" on a list filtered for one user", res.CacheScope)
			}
		})
	}
	for _, tc := range []struct {
		method string
		want   []string
	}{
		{"tools/list", ref.bobTools()},
		{"prompts/list", nil},
		{"resources/list", nil},
	} {
		t.Run("bob "+tc.method, func(t *testing.T) {
			got, err := list(ctx, bob.ClientSession, tc.method)
			if err != nil {
				t.Fatal(err)
			}
			assertNames(t, got, tc.want)
		})
	}
	t.Run("bob calls test_simple_text", func(t *testing.T) {
		res, err := bob.CallTool(ctx, &mcp.CallToolParams{Name: "test_simple_text"})
		if err != nil {
			t.Fatal(err)
		}
		if res.IsError || textOf(res) != ref.simpleText {
			t.Errorf("got isError=%v text %q, want the upstream's %q", res.IsError, textOf(res), ref.simpleText)
		}
	})
	t.Run("bob calls test_image_content, which alice may not", func(t *testing.T) {
		res, err := bob.CallTool(ctx, &mcp.CallToolParams{Name: "test_image_content"})
		if err != nil {
			t.Fatal(err)
		}
		if res.IsError || len(res.Content) == 0 {
			t.Errorf("got %+v, want image content", res)
		}
		if n := s.Upstream.count("tools/call", "test_image_content"); n != 1 {
			t.Errorf("upstream saw %d tools/call test_image_content, want 1", n)
		}
	})
	t.Run("bob calls test_tool_with_progress", func(t *testing.T) {
		const token = "bob-progress-1"
		params := &mcp.CallToolParams{Name: "test_tool_with_progress"}
		params.SetProgressToken(token)
		res, err := bob.CallTool(ctx, params)
		done := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		if got := textOf(res); got != token {
			t.Errorf("got result text %q, want the progress token %q", got, token)
		}
		var got []float64
		var first time.Time
		for _, p := range bob.progressSeen() {
			if fmt.Sprint(p.params.ProgressToken) != token {
				t.Errorf("progress notification for token %v, want %q", p.params.ProgressToken, token)
				continue
			}
			if first.IsZero() {
				first = p.at
			}
			got = append(got, p.params.Progress)
		}
		if want := []float64{0, 50, 100}; !slices.Equal(got, want) {
			t.Fatalf("got progress %v, want %v", got, want)
		}
		if gap := done.Sub(first); gap < minStreamGap {
			t.Errorf("first progress notification came %v before the result, want at least %v (events buffered, not streamed)", gap, minStreamGap)
		}
	})

	denied := []struct {
		name, method, target string
		call                 func() error
	}{
		{"tools/call test_error_handling (deny_tools)", "tools/call", "test_error_handling", func() error {
			_, err := bob.CallTool(ctx, &mcp.CallToolParams{Name: "test_error_handling"})
			return err
		}},
		{"prompts/get test_simple_prompt (no prompt rule)", "prompts/get", "test_simple_prompt", func() error {
			_, err := bob.GetPrompt(ctx, &mcp.GetPromptParams{Name: "test_simple_prompt"})
			return err
		}},
		{"resources/read test://static-text (no resource rule)", "resources/read", "test://static-text", func() error {
			_, err := bob.ReadResource(ctx, &mcp.ReadResourceParams{URI: "test://static-text"})
			return err
		}},
	}
	for _, tc := range denied {
		t.Run("bob denied "+tc.name, func(t *testing.T) {
			err := tc.call()
			var rpcErr *jsonrpc.Error
			if !errors.As(err, &rpcErr) {
				t.Errorf("got error %v (%T), want a JSON-RPC error", err, err)
			}
			if n := s.Upstream.count(tc.method, tc.target); n != 0 {
				t.Errorf("upstream saw %d %s %s, want 0 (denied messages must not be forwarded)", n, tc.method, tc.target)
			}
		})
	}
	t.Run("upstream never sees client credentials", func(t *testing.T) {
		assertNoCredentialsUpstream(t, s)
	})
}

func assertNames(t *testing.T, got, want []string) {
	t.Helper()
	if g, w := sorted(got), sorted(want); !slices.Equal(g, w) {
		t.Errorf("got %q, want %q", g, w)
	}
}

func assertNoCredentialsUpstream(t *testing.T, s *stack) {
	t.Helper()
	if got := s.Upstream.authorization(); len(got) > 0 {
		t.Errorf("upstream received Authorization headers %q, want none (the application configures no upstream credentials)", got)
	}
}
