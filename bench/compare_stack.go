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
	sessions    bool             // the backend issues sessions and serves GET streams
	idp         IdentityProvider // non-nil: mcpgw is the OAuth server in front of it
	log         io.Writer
}

// stack is the set of processes a run measures: the mock backend, nginx in
// front of it and mcpgw in front of it, each on its own loopback port.
type stack struct {
	log       io.Writer
	dir       string             // configs and logs
	procs     []*procrun.Process // in start order
	backend   string             // host:port
	nginxAddr string             // host:port, "" without nginx
	gw        GatewaySetup
	gateway   *procrun.Process
	meter     *cpuMeter // counts the runner and every process above as ours
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
	addrs, err := loopbackAddrs(4)
	if err != nil {
		return nil, err
	}
	st = &stack{log: o.log, dir: o.dir, backend: addrs[0]}
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

	st.gw = GatewaySetup{
		Dir:         o.dir,
		Listen:      addrs[2],
		Admin:       addrs[3],
		Upstream:    "http://" + st.backend + "/mcp",
		CallerToken: randomToken("caller"),
		ListerToken: randomToken("lister"),
		ListerTools: o.listerTools,
	}
	if o.idp != nil {
		if st.gw.EnvFile, err = writeEnvFile(o.idp, o.dir); err != nil {
			return nil, err
		}
		st.gw.Issuer = o.idp.Issuer()
	}
	conf := filepath.Join(o.dir, "mcpgw.yaml")
	if err := os.WriteFile(conf, []byte(GatewayConfig(st.gw)), 0o600); err != nil {
		return nil, fmt.Errorf("bench: cannot write mcpgw.yaml: %w", err)
	}
	if _, err := runTool(ctx, toolLimit, gwBin, "check", "--config", conf); err != nil {
		return nil, fmt.Errorf("bench: mcpgw check rejects its config: %w", err)
	}
	if err := st.start(ctx, "mcpgw", st.gw.Listen, gwBin, "serve", "--config", conf); err != nil {
		return nil, err
	}
	st.gateway = st.procs[len(st.procs)-1]
	if o.idp != nil {
		// The caller's user logs in as a client would; its access token
		// carries the same group as CallerToken's dev user.
		if st.gw.OAuthToken, err = oauthLogin(ctx, o.idp, st.gw.ServerURL(), st.gw.Frontend(), "caller@bench.invalid", []string{"callers"}); err != nil {
			return nil, err
		}
		fmt.Fprintf(st.log, "logged in through mcpgw's authorization server: an access token for caller@bench.invalid\n")
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

// stop stops every process, the last started first.
func (st *stack) stop() {
	for i := len(st.procs) - 1; i >= 0; i-- {
		st.procs[i].Stop(stopGrace)
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
	case TargetMCPGW:
		return st.gw.Frontend()
	}
	panic("BUG: unknown target " + target)
}

// verify checks, before anything is measured, that every target answers
// tools/call and that tools/list through mcpgw is filtered while direct and
// nginx serve the backend's whole list, so that scenario 3 measures what it
// says.
func (st *stack) verify(ctx context.Context, tools int) error {
	targets := []string{TargetDirect, TargetMCPGW}
	if st.nginxAddr != "" {
		targets = []string{TargetDirect, TargetNginx, TargetMCPGW}
	}
	counts := make(map[string]int)
	for _, t := range targets {
		res, err := Run(ctx, LoadConfig{URL: st.url(t), Token: st.gw.CallerToken, Concurrency: 2, Requests: 200})
		if err != nil {
			return fmt.Errorf("bench: a first tools/call load against %s failed: %w", t, err)
		}
		if res.Errors > 0 || res.Requests == 0 {
			return fmt.Errorf("bench: a first tools/call load against %s: %d requests, %d errors%s", t, res.Requests, res.Errors, errorKinds(res))
		}
		n, err := countTools(ctx, st.url(t), st.gw.ListerToken)
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
	if n := counts[TargetMCPGW]; n == 0 || n >= counts[TargetDirect] {
		return fmt.Errorf("bench: mcpgw shows the lister %d of the backend's %d tools: the policy filter is not in effect", n, counts[TargetDirect])
	}
	fmt.Fprintf(st.log, "checked: tools/call answers on every target; tools/list has %d tools direct, %d through mcpgw\n", counts[TargetDirect], counts[TargetMCPGW])
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
