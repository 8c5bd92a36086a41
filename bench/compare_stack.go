//go:build unix

package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/internal/procrun"
)

// Bounds on the runner's waits.
const (
	startLimit = 30 * time.Second // for a process to listen
	stopGrace  = 10 * time.Second // between SIGTERM and SIGKILL
	toolLimit  = 30 * time.Second // for nginx -t and mcpgw check
)

type stackOptions struct {
	bin, nginx  string // nginx "" leaves nginx out
	dir         string
	tools       int
	listerTools string
	sessions    bool // the backend issues sessions and serves GET streams
	// gateways are the mcpgw targets to start (GatewayTargets), each
	// with the audit durability its name says.
	gateways []string
	// maxSpool and whenFull, when set, are each gateway's
	// audit.max_spool and audit.when_full.
	maxSpool, whenFull string
	idp                IdentityProvider // non-nil: mcpgw is the OAuth server in front of it
	log                io.Writer
}

// stack is the set of processes a run measures: the mock backend, nginx in
// front of it and one mcpgw per audit mode in front of it, each on its own
// loopback port.
type stack struct {
	log       io.Writer
	dir       string             // configs and logs
	procs     []*procrun.Process // in start order
	backend   string             // host:port
	nginxAddr string             // host:port, "" without nginx
	// callerToken and listerToken are the dev-user tokens every gateway
	// accepts (GatewaySetup's).
	callerToken, listerToken string
	gateways                 []*gatewayInstance // in stackOptions.gateways order
	meter                    *cpuMeter          // counts the runner and every process above as ours
}

// gatewayInstance is one mcpgw of a stack. Each has a folder of its own
// (config, data_dir, audit spool) under the stack's.
type gatewayInstance struct {
	target string // TargetMCPGWSync or TargetMCPGWAsync
	setup  GatewaySetup
	proc   *procrun.Process
}

// gateway returns the instance of a gateway target, or nil.
func (st *stack) gateway(target string) *gatewayInstance {
	for _, g := range st.gateways {
		if g.target == target {
			return g
		}
	}
	return nil
}

// startStack writes the configs, checks them with nginx -t and mcpgw check,
// and starts the processes, each awaited until it listens. On error nothing
// is left running.
func startStack(ctx context.Context, o stackOptions) (st *stack, err error) {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: cannot create the work folder: %w", err)
	}
	// nginx workers drop root privileges and must still reach their temp
	// paths inside the folder.
	if err := os.Chmod(o.dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if len(o.gateways) == 0 {
		return nil, errors.New("bench: BUG: a stack without a gateway")
	}
	addrs, err := loopbackAddrs(2 + 2*len(o.gateways))
	if err != nil {
		return nil, err
	}
	st = &stack{log: o.log, dir: o.dir, backend: addrs[0], callerToken: randomToken("caller"), listerToken: randomToken("lister")}
	defer func() {
		if err != nil {
			st.stop()
			st = nil
		}
	}()

	benchBin := filepath.Join(o.bin, "mcpgw-bench")
	gwBin := filepath.Join(o.bin, "mcpgw")
	for _, b := range []string{benchBin, gwBin} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("bench: %s is missing (make build and make bench build it): %w", b, err)
		}
	}

	backendArgs := []string{"backend", "--listen", st.backend, "--tools", fmt.Sprint(o.tools)}
	if o.sessions {
		backendArgs = append(backendArgs, "--sessions")
	}
	if err := st.start(ctx, "backend", st.backend, benchBin, backendArgs...); err != nil {
		return nil, err
	}

	if o.nginx != "" {
		st.nginxAddr = addrs[1]
		conf := filepath.Join(o.dir, "nginx.conf")
		text := NginxConfig(NginxSetup{Dir: o.dir, Listen: st.nginxAddr, Upstream: st.backend})
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("bench: cannot write nginx.conf: %w", err)
		}
		nginxArgs := []string{"-p", o.dir, "-c", conf, "-e", filepath.Join(o.dir, "nginx-error.log")}
		if _, err := runTool(ctx, toolLimit, o.nginx, append([]string{"-t", "-q"}, nginxArgs...)...); err != nil {
			return nil, fmt.Errorf("bench: nginx rejects its config: %w", err)
		}
		if err := st.start(ctx, "nginx", st.nginxAddr, o.nginx, nginxArgs...); err != nil {
			return nil, err
		}
	}

	var envFile string
	if o.idp != nil {
		if envFile, err = writeEnvFile(o.idp, o.dir); err != nil {
			return nil, err
		}
	}
	for i, target := range o.gateways {
		durability := GatewayDurability(target)
		if durability == "" {
			return nil, fmt.Errorf("bench: BUG: %q is not a gateway target", target)
		}
		g := &gatewayInstance{target: target, setup: GatewaySetup{
			Dir:         filepath.Join(o.dir, target),
			Listen:      addrs[2+2*i],
			Admin:       addrs[3+2*i],
			Upstream:    "http://" + st.backend + "/mcp",
			Durability:  durability,
			CallerToken: st.callerToken,
			ListerToken: st.listerToken,
			ListerTools: o.listerTools,
			EnvFile:     envFile,
			MaxSpool:    o.maxSpool,
			WhenFull:    o.whenFull,
		}}
		if o.idp != nil {
			g.setup.Issuer = o.idp.Issuer()
		}
		st.gateways = append(st.gateways, g)
		if err := os.MkdirAll(g.setup.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: cannot create %s's folder: %w", target, err)
		}
		conf := filepath.Join(g.setup.Dir, "mcpgw.yaml")
		if err := os.WriteFile(conf, []byte(GatewayConfig(g.setup)), 0o600); err != nil {
			return nil, fmt.Errorf("bench: cannot write %s's mcpgw.yaml: %w", target, err)
		}
		if _, err := runTool(ctx, toolLimit, gwBin, "check", "--config", conf); err != nil {
			return nil, fmt.Errorf("bench: mcpgw check rejects %s's config: %w", target, err)
		}
		if err := st.start(ctx, target, g.setup.Listen, gwBin, "serve", "--config", conf); err != nil {
			return nil, err
		}
		g.proc = st.procs[len(st.procs)-1]
		if o.idp != nil {
			// The caller's user logs in as a client would; its access
			// token carries the same group as CallerToken's dev user.
			if g.setup.OAuthToken, err = oauthLogin(ctx, o.idp, g.setup.ServerURL(), g.setup.Frontend(), "caller@bench.invalid", []string{"callers"}); err != nil {
				return nil, fmt.Errorf("bench: logging in through %s: %w", target, err)
			}
			fmt.Fprintf(st.log, "logged in through %s's authorization server: an access token for caller@bench.invalid\n", target)
		}
	}
	st.meter = &cpuMeter{}
	for _, c := range st.procs {
		st.meter.pids = append(st.meter.pids, c.Pid())
		st.meter.pids = append(st.meter.pids, childPIDs(c.Pid())...) // nginx's workers
	}
	return st, nil
}

func (st *stack) start(ctx context.Context, name, addr, bin string, args ...string) error {
	c, err := procrun.Start(st.dir, name, nil, bin, args...)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	st.procs = append(st.procs, c)
	wait, cancel := context.WithTimeout(ctx, startLimit)
	defer cancel()
	if err := procrun.WaitTCP(wait, addr, c); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	fmt.Fprintf(st.log, "started %s (pid %d) on %s\n", name, c.Pid(), addr)
	return nil
}

// spoolSizes says how large each gateway's audit spool is and how much
// the disk holding them has free, for the progress log.
func (st *stack) spoolSizes() string {
	parts := make([]string, 0, len(st.gateways)+1)
	for _, g := range st.gateways {
		parts = append(parts, g.target+" "+formatSize(dirSize(g.setup.AuditDir())))
	}
	if free, err := freeDisk(st.dir); err == nil {
		parts = append(parts, formatSize(free)+" free on the disk")
	}
	return "audit spools: " + strings.Join(parts, ", ")
}

// stop stops every process, the last started first, and removes each
// gateway's audit spool (GBs after a few rounds of full 2 KiB arguments);
// configs, logs and the rest of each data_dir stay for --keep.
func (st *stack) stop() {
	for i := len(st.procs) - 1; i >= 0; i-- {
		st.procs[i].Stop(stopGrace)
	}
	for _, g := range st.gateways {
		dir := g.setup.AuditDir()
		if rel, err := filepath.Rel(st.dir, dir); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			fmt.Fprintf(st.log, "BUG: %s's audit spool %s is not inside the run folder %s; not removed\n", g.target, dir, st.dir)
			continue
		}
		size := dirSize(dir)
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(st.log, "cannot remove %s's audit spool: %v\n", g.target, err)
			continue
		}
		fmt.Fprintf(st.log, "removed %s's audit spool (%s)\n", g.target, formatSize(size))
	}
}

// alive returns an error wrapping errChildExited when a process has died.
func (st *stack) alive() error {
	for _, c := range st.procs {
		if c.Exited() {
			return fmt.Errorf("%w: %s (%v); its log ends:\n%s", errChildExited, c.Name, c.ExitErr(), c.Tail(20))
		}
	}
	return nil
}

// url is the MCP endpoint of a target.
func (st *stack) url(target string) string {
	switch target {
	case TargetDirect:
		return "http://" + st.backend + "/mcp"
	case TargetNginx:
		return "http://" + st.nginxAddr + "/mcp"
	}
	if g := st.gateway(target); g != nil {
		return g.setup.Frontend()
	}
	panic("BUG: unknown target " + target)
}

// verify checks, before anything is measured, that every target answers
// tools/call and that tools/list through mcpgw is filtered while direct and
// nginx serve the backend's whole list, so that scenario 3 measures what it
// says.
func (st *stack) verify(ctx context.Context, tools int) error {
	targets := []string{TargetDirect}
	if st.nginxAddr != "" {
		targets = append(targets, TargetNginx)
	}
	for _, g := range st.gateways {
		targets = append(targets, g.target)
	}
	counts := make(map[string]int)
	for _, t := range targets {
		res, err := Run(ctx, LoadConfig{URL: st.url(t), Token: st.callerToken, Concurrency: 2, Requests: 200})
		if err != nil {
			return fmt.Errorf("bench: a first tools/call load against %s failed: %w", t, err)
		}
		if res.Errors > 0 || res.Requests == 0 {
			return fmt.Errorf("bench: a first tools/call load against %s: %d requests, %d errors%s", t, res.Requests, res.Errors, errorKinds(res))
		}
		n, err := countTools(ctx, st.url(t), st.listerToken)
		if err != nil {
			return fmt.Errorf("bench: tools/list against %s: %w", t, err)
		}
		counts[t] = n
	}
	if counts[TargetDirect] != tools+1 {
		return fmt.Errorf("bench: the backend lists %d tools, want %d", counts[TargetDirect], tools+1)
	}
	if st.nginxAddr != "" && counts[TargetNginx] != counts[TargetDirect] {
		return fmt.Errorf("bench: nginx lists %d tools, the backend %d", counts[TargetNginx], counts[TargetDirect])
	}
	shown := make([]string, 0, len(st.gateways))
	for _, g := range st.gateways {
		if n := counts[g.target]; n == 0 || n >= counts[TargetDirect] {
			return fmt.Errorf("bench: %s shows the lister %d of the backend's %d tools: the policy filter is not in effect", g.target, n, counts[TargetDirect])
		}
		shown = append(shown, fmt.Sprintf("%d through %s", counts[g.target], g.target))
	}
	fmt.Fprintf(st.log, "checked: tools/call answers on every target; tools/list has %d tools direct, %s\n", counts[TargetDirect], strings.Join(shown, ", "))
	return nil
}

// countTools performs the 2025-11-25 handshake at url and returns how many
// tools tools/list shows. It is a plain client for checks, not for load.
func countTools(ctx context.Context, url, token string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c := &mcpProbe{url: url, token: token}
	if _, err := c.post(ctx, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpgw-bench-compare","version":"1"}}}`); err != nil {
		return 0, fmt.Errorf("initialize: %w", err)
	}
	if _, err := c.post(ctx, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); err != nil {
		return 0, fmt.Errorf("notifications/initialized: %w", err)
	}
	body, err := c.post(ctx, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	if err != nil {
		return 0, err
	}
	var msg struct {
		Result struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
			NextCursor string `json:"nextCursor"`
		} `json:"result"`
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		return 0, fmt.Errorf("tools/list answer: %w", err)
	}
	if msg.Error != nil {
		return 0, fmt.Errorf("tools/list answered error %d: %s", msg.Error.Code, msg.Error.Message)
	}
	if msg.Result.NextCursor != "" {
		return 0, errors.New("tools/list answer is paged; the comparison expects one page")
	}
	return len(msg.Result.Tools), nil
}

type mcpProbe struct {
	url, token, session string
}

// post sends one JSON-RPC message and returns the answer's JSON (the last
// data line of an SSE answer), or nil for a 202.
func (c *mcpProbe) post(ctx context.Context, body string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+c.token)
	if c.session != "" {
		req.Header.Set("Mcp-Session-Id", c.session)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusAccepted {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, data)
	}
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
		c.session = sid
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/event-stream" {
		var last []byte
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, len(data)+1)
		for sc.Scan() {
			if d, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:")); ok {
				last = bytes.TrimSpace(append([]byte(nil), d...))
			}
		}
		return last, nil
	}
	return data, nil
}
