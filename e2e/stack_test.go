//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/procrun"
)

// Dev users of the test gateway. alice (engineers) may call two tools and
// use every prompt and resource; bob (sre) may call every test_ tool except
// test_error_handling, and nothing else.
const (
	aliceToken = "alice-token-0123456789"
	bobToken   = "bob-token-0123456789"
)

const (
	startTimeout = 30 * time.Second
	// stopGrace is how long a process may take to exit after SIGTERM.
	stopGrace = 15 * time.Second
)

// stack is go-everything behind a recording proxy behind mcpgw.
type stack struct {
	// URL is the application's frontend URL on mcpgw.
	URL string
	// UpstreamURL reaches go-everything directly, bypassing mcpgw and the
	// recorder: the reference for what the bare server answers.
	UpstreamURL string
	// Upstream records every request mcpgw sent upstream.
	Upstream *recorder
}

// era selects how go-everything runs: legacy (stateful sessions, protocol
// 2024-11-05 to 2025-11-25) or modern (stateless, also 2026-07-28).
type era int

const (
	legacy era = iota
	modern
)

// procGroup starts processes for a test and stops them, newest first, when
// the test ends, printing their logs if it failed.
type procGroup struct {
	t     *testing.T
	dir   string
	procs []*procrun.Process
}

func newProcGroup(t *testing.T, dir string) *procGroup {
	g := &procGroup{t: t, dir: dir}
	t.Cleanup(func() {
		for i := len(g.procs) - 1; i >= 0; i-- {
			p := g.procs[i]
			if p.Exited() {
				t.Errorf("%s exited while the test ran: %v", p.Name, p.ExitErr())
				continue
			}
			if took, killed := p.Stop(stopGrace); killed && p.Name == "mcpgw" {
				t.Errorf("mcpgw did not exit within %v of SIGTERM and was killed", took)
			}
		}
		if t.Failed() {
			for _, p := range g.procs {
				t.Logf("last lines of %s log:\n%s", p.Name, p.Tail(40))
			}
		}
	})
	return g
}

// start runs bin and waits until it accepts connections on addr.
func (g *procGroup) start(name, addr string, env []string, bin string, args ...string) *procrun.Process {
	g.t.Helper()
	p, err := procrun.StartListening(g.dir, name, addr, startTimeout, env, bin, args...)
	if err != nil {
		g.t.Fatal(err)
	}
	g.procs = append(g.procs, p)
	return p
}

// startMcpgw writes cfg to mcpgw.yaml in the group's folder and starts
// mcpgw serve on it, listening on listen. It returns the process and the
// file's path.
func (g *procGroup) startMcpgw(listen, cfg string) (*procrun.Process, string) {
	g.t.Helper()
	path := filepath.Join(g.dir, "mcpgw.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		g.t.Fatal(err)
	}
	return g.start("mcpgw", listen, nil, mcpgwBin, "serve", "--config", path), path
}

// stop ends p before the test does, on purpose.
func (g *procGroup) stop(p *procrun.Process) {
	p.Stop(stopGrace)
	g.procs = slices.DeleteFunc(g.procs, func(q *procrun.Process) bool { return q == p })
}

// startStack starts a fresh stack for t; everything is stopped, and the logs
// are printed if t failed, when t ends.
func startStack(t *testing.T, e era) *stack {
	t.Helper()
	dir := t.TempDir()
	g := newProcGroup(t, dir)
	start := func(name, addr string, bin string, args ...string) {
		t.Helper()
		g.start(name, addr, nil, bin, args...)
	}

	upstreamAddr := freeAddr(t)
	start("go-everything", upstreamAddr, everythingBin, "-http", upstreamAddr, fmt.Sprintf("-stateless=%v", e == modern))
	rec := startRecorder(t, "http://"+upstreamAddr)

	listen, admin := freeAddr(t), freeAddr(t)
	frontend := "http://" + listen + "/mcp"
	cfg := fmt.Sprintf(`server:
  listen: %q
  data_dir: %q
  admin: {listen: %q}
identity:
  dev_users:
    - {token: %s, user: alice@example.com, groups: [engineers]}
    - {token: %s, user: bob@example.com, groups: [sre]}
applications:
  - name: everything
    frontend_url: %s
    upstream_url: %s/mcp
    rules:
      - name: engineers
        subjects: {groups: [engineers]}
        tools: [test_simple_text, test_tool_with_progress]
        prompts: [".*"]
        resources: [".*"]
      - name: sre
        subjects: {groups: [sre]}
        tools: ["test_.*"]
        deny_tools: [test_error_handling]
audit: {dir: %q}
`, listen, filepath.Join(dir, "data"), admin, aliceToken, bobToken, frontend, rec.URL, filepath.Join(dir, "audit"))
	g.startMcpgw(listen, cfg)
	return &stack{URL: frontend, UpstreamURL: "http://" + upstreamAddr + "/mcp", Upstream: rec}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := procrun.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}
