//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/auditlog"
	"github.com/mcpgw/mcpgw/internal/procrun"
)

// The audit proofs of issue 5: the real binary is killed with SIGKILL
// under load and restarted, and the control plane's receiver is down for
// a while; afterwards the records of every call the backend received are
// in the spool exactly once, and the receiver has every record.

// callBackend is a minimal MCP backend: it answers tools/call of "record"
// with a result and counts each argument n it received.
type callBackend struct {
	URL string
	mu  sync.Mutex
	got map[int64]int // n → times received
}

func startCallBackend(t *testing.T) *callBackend {
	t.Helper()
	b := &callBackend{got: map[int64]int{}}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Arguments struct {
					N int64 `json:"n"`
				} `json:"arguments"`
			} `json:"params"`
		}
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil || msg.Method != "tools/call" {
			http.Error(w, "tools/call only", http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		b.got[msg.Params.Arguments.N]++
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"ok"}]}}`, msg.ID)
	}))
	t.Cleanup(ts.Close)
	b.URL = ts.URL + "/mcp"
	return b
}

func (b *callBackend) received() map[int64]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[int64]int, len(b.got))
	for n, c := range b.got {
		out[n] = c
	}
	return out
}

// receiver is the control plane's ingest (DESIGN.md section 6, shipping
// wire format): it keeps every record once by id, counts every line it
// was sent, and can be made to fail.
type receiver struct {
	URL string

	mode  atomic.Int32 // receiverMode
	mu    sync.Mutex
	byID  map[string][]byte
	lines int
	posts int
	keys  map[string]bool // Idempotency-Keys acknowledged
}

type receiverMode int32

const (
	receiverOK   receiverMode = iota
	receiver500               // answers 500
	receiverDrop              // closes the connection without an answer
	receiverSlow              // answers 503 after 2 s
)

func startReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{byID: map[string][]byte{}, keys: map[string]bool{}}
	ts := httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(ts.Close)
	rc.URL = ts.URL + "/ingest"
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	switch receiverMode(rc.mode.Load()) {
	case receiver500:
		http.Error(w, "down", http.StatusInternalServerError)
		return
	case receiverDrop:
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
		return
	case receiverSlow:
		time.Sleep(2 * time.Second)
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if r.Header.Get("Content-Type") != "application/x-ndjson" || r.Header.Get("Idempotency-Key") == "" {
		http.Error(w, "want application/x-ndjson with an Idempotency-Key", http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
		body = zr
	}
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 16<<20)
	var batch [][]byte
	for sc.Scan() {
		batch = append(batch, bytes.Clone(sc.Bytes()))
	}
	if sc.Err() != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.posts++
	rc.keys[r.Header.Get("Idempotency-Key")] = true
	for _, line := range batch {
		var id struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(line, &id) != nil || id.ID == "" {
			http.Error(w, "a line without an id", http.StatusBadRequest)
			return
		}
		rc.lines++
		rc.byID[id.ID] = line
	}
	w.WriteHeader(http.StatusAccepted)
}

// records returns the records received, once each, in seq order.
func (rc *receiver) records(t *testing.T) (recs []*auditlog.Record, lines [][]byte) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, line := range rc.byID {
		r := new(auditlog.Record)
		if err := json.Unmarshal(line, r); err != nil {
			t.Fatalf("receiver: %v: %s", err, line)
		}
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b *auditlog.Record) int { return int(a.Seq) - int(b.Seq) })
	for _, r := range recs {
		lines = append(lines, rc.byID[r.ID])
	}
	return recs, lines
}

// auditGateway is mcpgw in front of a callBackend, shipping to a receiver.
type auditGateway struct {
	t       *testing.T
	g       *procGroup
	cfgPath string
	listen  string
	admin   string
	proc    *procrun.Process
	URL     string
}

func startAuditGateway(t *testing.T, backend, ingest, auditExtra string) *auditGateway {
	t.Helper()
	dir := t.TempDir()
	gw := &auditGateway{t: t, g: newProcGroup(t, dir), listen: freeAddr(t), admin: freeAddr(t)}
	gw.URL = "http://" + gw.listen + "/mcp"
	cfg := fmt.Sprintf(`server:
  listen: %q
  data_dir: %q
  admin: {listen: %q}
identity:
  dev_users:
    - {token: %s, user: alice@example.com, groups: [engineers]}
applications:
  - name: calls
    frontend_url: %s
    upstream_url: %s
    rules:
      - {name: engineers, subjects: {groups: [engineers]}, tools: [record]}
audit:
  dir: %q
  durability: sync
  ship: {url: %q, auth: none, batch: 200, interval: 100ms}
%s`, gw.listen, filepath.Join(dir, "data"), gw.admin, aliceToken, gw.URL, backend, filepath.Join(dir, "audit"), ingest, auditExtra)
	gw.cfgPath = filepath.Join(dir, "mcpgw.yaml")
	if err := os.WriteFile(gw.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	gw.start()
	return gw
}

func (gw *auditGateway) start() {
	gw.t.Helper()
	gw.proc = gw.g.start("mcpgw", gw.listen, nil, mcpgwBin, "serve", "--config", gw.cfgPath)
}

// kill ends the gateway with SIGKILL: no shutdown, no final sync.
func (gw *auditGateway) kill() {
	gw.t.Helper()
	if err := syscall.Kill(gw.proc.Pid(), syscall.SIGKILL); err != nil {
		gw.t.Fatal(err)
	}
	select {
	case <-gw.proc.Done():
	case <-time.After(10 * time.Second):
		gw.t.Fatal("mcpgw did not die of SIGKILL")
	}
	gw.g.procs = slices.DeleteFunc(gw.g.procs, func(p *procrun.Process) bool { return p == gw.proc })
}

// readyAudit reads the audit member of /readyz.
func (gw *auditGateway) readyAudit() (status int, audit struct {
	Head uint64 `json:"head"`
	Full bool   `json:"full"`
	Ship struct {
		Shipped  uint64 `json:"shipped"`
		Lag      uint64 `json:"lag"`
		Failures uint64 `json:"failures"`
	} `json:"ship"`
}) {
	resp, err := http.Get("http://" + gw.admin + "/readyz")
	if err != nil {
		return 0, audit
	}
	defer resp.Body.Close()
	var rd struct {
		Audit json.RawMessage `json:"audit"`
	}
	if json.NewDecoder(resp.Body).Decode(&rd) == nil && rd.Audit != nil {
		_ = json.Unmarshal(rd.Audit, &audit)
	}
	return resp.StatusCode, audit
}

// drained waits until the shipper has nothing left and returns the head.
func (gw *auditGateway) drained(timeout time.Duration) uint64 {
	gw.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, a := gw.readyAudit()
		if a.Head > 0 && a.Ship.Lag == 0 && a.Ship.Shipped == a.Head {
			return a.Head
		}
		if time.Now().After(deadline) {
			gw.t.Fatalf("the shipper did not drain within %v: %+v", timeout, a)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// callRecord is one tools/call of "record" with argument n; it returns the
// HTTP status (0 when the request failed) and the body.
func callRecord(ctx context.Context, url string, n int64) (int, string) {
	return callRecordPadded(ctx, url, n, 0)
}

// callRecordPadded is callRecord with an argument of pad random hex digits
// beside n (random, so that the spool's compression does not shrink them).
func callRecordPadded(ctx context.Context, url string, n int64, pad int) (int, string) {
	noise := make([]byte, pad/2)
	_, _ = rand.Read(noise)
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"record","arguments":{"n":%d,"pad":"%x"}}}`, n, n, noise)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	resp, err := loadClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

var loadClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, DialContext: (&net.Dialer{Timeout: time.Second}).DialContext},
}

// load calls the gateway from workers goroutines until stop is closed and
// returns how many calls succeeded and failed.
func load(url string, workers int, next *atomic.Int64, stop <-chan struct{}) (ok, failed int64) {
	var wg sync.WaitGroup
	var okN, failN atomic.Int64
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, _ := callRecord(context.Background(), url, next.Add(1))
				if status == http.StatusOK {
					okN.Add(1)
				} else {
					failN.Add(1)
					time.Sleep(20 * time.Millisecond) // the gateway is restarting
				}
			}
		})
	}
	wg.Wait()
	return okN.Load(), failN.Load()
}

// checkShipped verifies what the receiver holds against the backend: the
// records form one unbroken chain from seq 1 to head, and every call the
// backend received has exactly one request record.
func checkShipped(t *testing.T, rc *receiver, backend *callBackend, head uint64) {
	t.Helper()
	recs, lines := rc.records(t)
	if uint64(len(recs)) != head {
		t.Fatalf("the receiver holds %d distinct records, the spool %d", len(recs), head)
	}
	var v auditlog.Verifier
	v.Anchor(0, auditlog.Hash{})
	for i, line := range lines {
		if err := v.Next(line); err != nil {
			t.Fatalf("chain at the receiver, record %d: %v", i+1, err)
		}
	}
	calls := map[int64]int{}
	for _, r := range recs {
		if r.Kind != auditlog.KindActivity || r.Method != "tools/call" || r.Message != auditlog.MessageRequest {
			continue
		}
		var args struct {
			N int64 `json:"n"`
		}
		if err := json.Unmarshal(r.Arguments, &args); err != nil {
			t.Fatalf("record %s: arguments %s: %v", r.ID, r.Arguments, err)
		}
		if r.Decision != auditlog.DecisionAllow || r.Rule != "engineers" || r.User != "alice@example.com" {
			t.Errorf("record %s: decision %q rule %q user %q", r.ID, r.Decision, r.Rule, r.User)
		}
		calls[args.N]++
	}
	got := backend.received()
	missing, doubled := 0, 0
	for n, times := range got {
		if times != 1 {
			t.Errorf("the backend received call %d %d times", n, times)
		}
		switch calls[n] {
		case 0:
			missing++
			if missing <= 5 {
				t.Errorf("call %d reached the backend and has no audit record", n)
			}
		case 1:
		default:
			doubled++
			t.Errorf("call %d has %d audit records", n, calls[n])
		}
	}
	t.Logf("backend received %d calls; %d request records; receiver: %d records, %d lines in %d posts",
		len(got), len(calls), len(recs), rc.lines, rc.posts)
	if missing > 0 || doubled > 0 {
		t.Fatalf("%d calls without a record, %d with more than one", missing, doubled)
	}
}

func TestAuditSurvivesSIGKILL(t *testing.T) {
	backend, rc := startCallBackend(t), startReceiver(t)
	gw := startAuditGateway(t, backend.URL, rc.URL, "")
	var next atomic.Int64
	stop := make(chan struct{})
	type result struct{ ok, failed int64 }
	done := make(chan result, 1)
	go func() {
		ok, failed := load(gw.URL, 16, &next, stop)
		done <- result{ok, failed}
	}()
	const kills = 4
	for range kills {
		time.Sleep(700 * time.Millisecond)
		gw.kill()
		gw.start()
	}
	time.Sleep(700 * time.Millisecond)
	close(stop)
	res := <-done
	t.Logf("%d calls answered, %d failed across %d kills", res.ok, res.failed, kills)
	if res.ok < 100 {
		t.Fatalf("only %d calls succeeded", res.ok)
	}
	head := gw.drained(30 * time.Second)
	checkShipped(t, rc, backend, head)

	// mcpgw audit reads the same spool: through the admin API while the
	// gateway runs, from the disk once it has stopped.
	want := fmt.Sprintf("ok: the chain holds through seq %d ", head)
	if out := gw.cli(t, 0, "audit", "verify"); !strings.HasPrefix(out, want) {
		t.Errorf("mcpgw audit verify (running): got %q, want it to start with %q", out, want)
	}
	out := gw.cli(t, 0, "audit", "activity", "--method", "tools/call", "--decision", "allow", "--limit", "3", "--json")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.Contains(lines[0], `"arguments":{"n":`) {
		t.Errorf("mcpgw audit activity --json: got\n%s", out)
	}
	gw.g.stop(gw.proc)
	if out := gw.cli(t, 0, "audit", "verify"); !strings.HasPrefix(out, want) {
		t.Errorf("mcpgw audit verify (stopped): got %q, want it to start with %q", out, want)
	}
}

// cli runs the mcpgw binary with args and the gateway's config, and
// returns its standard output; the exit code must be code.
func (gw *auditGateway) cli(t *testing.T, code int, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mcpgwBin, append(args, "--config", gw.cfgPath)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	got := 0
	if ee, ok := err.(*exec.ExitError); ok {
		got = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("mcpgw %v: %v", args, err)
	}
	if got != code {
		t.Fatalf("mcpgw %v: exit %d, want %d\n%s%s", args, got, code, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func TestAuditReceiverOutage(t *testing.T) {
	t.Run("nothing lost", func(t *testing.T) {
		backend, rc := startCallBackend(t), startReceiver(t)
		gw := startAuditGateway(t, backend.URL, rc.URL, "")
		var next atomic.Int64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { load(gw.URL, 8, &next, stop); close(done) }()
		for _, m := range []receiverMode{receiver500, receiverDrop, receiverSlow} {
			rc.mode.Store(int32(m))
			time.Sleep(1500 * time.Millisecond)
		}
		_, a := gw.readyAudit()
		if a.Ship.Failures == 0 || a.Ship.Lag == 0 {
			t.Errorf("during the outage: %+v, want failures and a lag", a)
		}
		rc.mode.Store(int32(receiverOK))
		close(stop)
		<-done
		head := gw.drained(60 * time.Second)
		checkShipped(t, rc, backend, head)
	})

	t.Run("tiny max_spool refuses calls until shipped records go", func(t *testing.T) {
		backend, rc := startCallBackend(t), startReceiver(t)
		rc.mode.Store(int32(receiver500))
		gw := startAuditGateway(t, backend.URL, rc.URL, "  max_spool: 64MiB\n  when_full: reject\n  retention: 1s\n")
		var n int64
		refused := 0
		deadline := time.Now().Add(60 * time.Second)
		for refused == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no call refused after %d calls", n)
			}
			n++
			status, body := callRecordPadded(context.Background(), gw.URL, n, 16<<10)
			switch {
			case status == http.StatusServiceUnavailable && strings.Contains(body, `"code":-31004`):
				refused++
			case status != http.StatusOK:
				t.Fatalf("call %d: got %d %s", n, status, body)
			}
		}
		t.Logf("the spool was full after %d calls", n)
		received := len(backend.received())
		if status, body := callRecordPadded(context.Background(), gw.URL, n+1, 16<<10); status != http.StatusServiceUnavailable {
			t.Errorf("with the spool full: got %d %s, want 503", status, body)
		}
		if got := len(backend.received()); got != received {
			t.Errorf("a refused call reached the backend (%d, then %d)", received, got)
		}

		rc.mode.Store(int32(receiverOK))
		deadline = time.Now().Add(60 * time.Second)
		for {
			n++
			status, _ := callRecord(context.Background(), gw.URL, n)
			if status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				_, a := gw.readyAudit()
				t.Fatalf("calls still refused 60 s after the receiver came back: %+v", a)
			}
			time.Sleep(200 * time.Millisecond)
		}
		head := gw.drained(30 * time.Second)
		recs, _ := rc.records(t)
		if uint64(len(recs)) != head {
			t.Errorf("the receiver holds %d records, the spool wrote %d", len(recs), head)
		}
		t.Logf("calls resumed; %d records shipped", len(recs))
	})
}
