package appliance

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/mcpgw/mcpgw/auditlog"
	"github.com/mcpgw/mcpgw/internal/pebblelog"
)

// auditConfig writes a config whose audit.dir is dir/audit and whose
// admin listener is admin, with the admin token in dir/admin.token.
func auditConfig(t *testing.T, dir, admin string) string {
	t.Helper()
	writeFile(t, dir, "admin.token", testAdminToken+"\n")
	return writeFile(t, dir, "mcpgw.yaml", `server:
  listen: "127.0.0.1:18080"
  admin: {listen: "`+admin+`", token_file: `+filepath.Join(dir, "admin.token")+`}
  data_dir: `+filepath.Join(dir, "data")+`
identity:
  env_file: ""
  dev_users: [{token: alice-token-0123456789, user: alice, groups: [engineers]}]
applications:
  - name: app
    frontend_url: http://127.0.0.1:8080/mcp
    upstream_url: http://127.0.0.1:9/mcp
    rules: [{name: r, subjects: {groups: [engineers]}, tools: [".*"]}]
audit:
  dir: `+filepath.Join(dir, "audit")+`
`)
}

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// storedLines returns the spool's records as stored, newest first.
func storedLines(t *testing.T, l *auditlog.Log) []string {
	t.Helper()
	var lines []string
	if err := l.ScanJSON(0, func(_ uint64, line []byte) bool { lines = append(lines, string(line)); return true }); err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
		lines[i], lines[j] = lines[j], lines[i]
	}
	return lines
}

func TestAuditCommandLocal(t *testing.T) {
	dir := t.TempDir()
	cfg := auditConfig(t, dir, closedAddr(t))
	l, err := auditlog.Open(filepath.Join(dir, "audit"), auditlog.Options{NodeID: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	fillAuditLog(t, l, 10) // 22 records
	if err := l.MarkAudited("s-bob", "audrey@example.com", "fine"); err != nil {
		t.Fatal(err)
	}
	stored := storedLines(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// One page, and the cursor to the next.
	code, out, errOut := runMain("audit", "activity", "--config", cfg, "--user", "bob@example.com", "--limit", "4")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != ExitOK || len(lines) != 4 {
		t.Fatalf("activity --limit 4: exit %d, %d lines:\n%s\nstderr %s", code, len(lines), out, errOut)
	}
	want := `^2026-11-25T14:10:00.001Z gw1-22 activity user=bob@example.com app=hr session=s-bob response tools/call id=9 status=ok latency=1.2ms$`
	if !regexp.MustCompile(want).MatchString(lines[0]) {
		t.Errorf("line: got %q, want it to match %s", lines[0], want)
	}
	m := regexp.MustCompile(`more: --cursor (\S+)`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("stderr %q names no cursor", errOut)
	}
	_, out2, _ := runMain("audit", "activity", "--config", cfg, "--user", "bob@example.com", "--limit", "4", "--cursor", m[1])
	if first := strings.SplitN(out2, "\n", 2)[0]; !strings.Contains(first, " gw1-14 ") {
		t.Errorf("second page starts with %q, want gw1-14 (bob's records: 22 21 18 17, then 14)", first)
	}

	// --json --all: every record, as stored, newest first.
	code, out, errOut = runMain("audit", "activity", "--config", cfg, "--json", "--all", "--limit", "3")
	if code != ExitOK {
		t.Fatalf("activity --json --all: exit %d, %s", code, errOut)
	}
	if diff := cmp.Diff(stored, strings.Split(strings.TrimSpace(out), "\n")); diff != "" {
		t.Errorf("activity --json --all (-stored +printed):\n%s", diff)
	}

	code, out, _ = runMain("audit", "activity", "--config", cfg, "--decision", "deny", "--since", "2026-11-25T14:00:00Z", "--until", "2026-11-25T14:06:00Z")
	if code != ExitOK || strings.Count(out, "\n") != 1 || !strings.Contains(out, "decision=deny rule=readers") || !strings.Contains(out, `args={"id":"<u&1>"}`) {
		t.Errorf("activity --decision deny in a range: exit %d\n%s", code, out)
	}

	code, out, _ = runMain("audit", "sessions", "--config", cfg)
	wantSessions := "2026-11-25T14:00:01.000Z s-bob user=bob@example.com app=hr client=claude-code/2.0.1 from=10.0.0.7:51234 " +
		"records=11 requests=5 denied=1 errors=0 last_seen=2026-11-25T14:10:00Z open audited_by=audrey@example.com audited="
	if code != ExitOK || !strings.HasPrefix(out, wantSessions) || strings.Count(out, "\n") != 2 {
		t.Errorf("sessions: exit %d\n%s\nwant it to start with\n%s", code, out, wantSessions)
	}
	code, out, _ = runMain("audit", "sessions", "--config", cfg, "--audited", "false", "--json")
	if code != ExitOK || !strings.HasPrefix(out, `{"id":"s-alice","session_id":"s-alice","app":"crm"`) || strings.Count(out, "\n") != 1 {
		t.Errorf("sessions --audited false --json: exit %d\n%s", code, out)
	}

	code, out, _ = runMain("audit", "verify", "--config", cfg)
	if code != ExitOK || !strings.HasPrefix(out, "ok: the chain holds through seq 23 (hash ") {
		t.Errorf("verify: exit %d %q", code, out)
	}

	// An edited record breaks the chain: exit 1, naming the seq.
	db, err := pebble.Open(filepath.Join(dir, "audit", "records"), &pebble.Options{Logger: pebblelog.New(slog.New(slog.DiscardHandler), "test")})
	if err != nil {
		t.Fatal(err)
	}
	key := binary.BigEndian.AppendUint64([]byte{'r'}, 5)
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(v, []byte(`"decision":"allow"`), []byte(`"decision":"deny"`), 1)
	closer.Close()
	if err := db.Set(key, edited, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, out, _ = runMain("audit", "verify", "--config", cfg)
	if code != ExitConfig || !strings.HasPrefix(out, "BROKEN at seq 5: ") {
		t.Errorf("verify of an edited record: exit %d %q, want 1 and BROKEN at seq 5", code, out)
	}
}

func TestAuditCommandUsage(t *testing.T) {
	dir := t.TempDir()
	cfg := auditConfig(t, dir, closedAddr(t))
	for _, c := range []struct {
		name string
		args []string
		want int
	}{
		{"no subcommand", []string{"audit"}, ExitUsage},
		{"unknown subcommand", []string{"audit", "delete"}, ExitUsage},
		{"help", []string{"audit", "--help"}, ExitOK},
		{"bad decision", []string{"audit", "activity", "--config", cfg, "--decision", "maybe"}, ExitUsage},
		{"bad time", []string{"audit", "activity", "--config", cfg, "--since", "yesterday"}, ExitUsage},
		{"a filter sessions lack", []string{"audit", "sessions", "--config", cfg, "--session", "x"}, ExitUsage},
		{"-n outside tail", []string{"audit", "activity", "--config", cfg, "-n", "5"}, ExitUsage},
		{"a cursor for tail", []string{"audit", "tail", "--config", cfg, "--cursor", "x"}, ExitUsage},
		{"no audit store", []string{"audit", "activity", "--config", cfg}, ExitConfig},
		{"no config", []string{"audit", "verify", "--config", filepath.Join(dir, "none.yaml")}, ExitConfig},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runMain(c.args...)
			if code != c.want {
				t.Errorf("exit: got %d, want %d (stdout %q, stderr %q)", code, c.want, out, errOut)
			}
		})
	}
}

// TestAuditCommandThroughGateway: while a gateway holds the spool, the
// command reads it through the admin API, with the same output.
func TestAuditCommandThroughGateway(t *testing.T) {
	dir := t.TempDir()
	l, err := auditlog.Open(filepath.Join(dir, "audit"), auditlog.Options{NodeID: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fillAuditLog(t, l, 6)
	srv := auditServer(t, l)
	cfg := auditConfig(t, dir, strings.TrimPrefix(srv.URL, "http://"))
	if _, err := auditlog.OpenReadOnly(filepath.Join(dir, "audit")); err == nil {
		t.Fatal("the spool opens while the gateway holds it; this test needs it locked")
	}

	code, out, errOut := runMain("audit", "activity", "--config", cfg, "--json", "--all", "--limit", "5")
	if code != ExitOK {
		t.Fatalf("activity through the API: exit %d, %s", code, errOut)
	}
	if diff := cmp.Diff(storedLines(t, l), strings.Split(strings.TrimSpace(out), "\n")); diff != "" {
		t.Errorf("activity --json --all through the API (-stored +printed):\n%s", diff)
	}
	code, out, _ = runMain("audit", "sessions", "--config", cfg, "--app", "crm")
	if code != ExitOK || !strings.Contains(out, " s-alice user=alice@example.com app=crm ") || strings.Count(out, "\n") != 1 {
		t.Errorf("sessions --app crm through the API: exit %d\n%s", code, out)
	}
	code, out, _ = runMain("audit", "verify", "--config", cfg, "--json")
	if code != ExitOK || !strings.HasPrefix(out, `{"ok":true,"head":14,`) {
		t.Errorf("verify --json through the API: exit %d %q", code, out)
	}

	// A wrong admin token: the API's 401, said plainly.
	writeFile(t, dir, "admin.token", "another-token-0123456789\n")
	code, _, errOut = runMain("audit", "activity", "--config", cfg)
	if code != ExitConfig || !strings.Contains(errOut, "the bearer token is not valid (401 unauthorized)") {
		t.Errorf("with a wrong token: exit %d, stderr %q", code, errOut)
	}
}

// lineCollector receives what tailAudit writes, a record (one Write) at a
// time.
type lineCollector chan string

func (c lineCollector) Write(p []byte) (int, error) {
	c <- string(p)
	return len(p), nil
}

func TestTailAudit(t *testing.T) {
	for _, c := range []struct {
		name   string
		remote bool
	}{{"spool", false}, {"admin API", true}} {
		t.Run(c.name, func(t *testing.T) {
			l := openAuditLog(t)
			fillAuditLog(t, l, 4) // seqs 1..10
			var src auditSource = &localAudit{log: l}
			if c.remote {
				srv := auditServer(t, l)
				src = &remoteAudit{base: srv.URL, token: testAdminToken, client: srv.Client()}
			}
			out := make(lineCollector, 100)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			q := url.Values{"user": {"alice@example.com"}}
			go func() { done <- tailAudit(ctx, src, q, 3, 5*time.Millisecond, out, true) }()
			var seqs []string
			read := func(n int) {
				for range n {
					select {
					case line := <-out:
						seqs = append(seqs, regexp.MustCompile(`"seq":(\d+)`).FindStringSubmatch(line)[1])
					case <-time.After(10 * time.Second):
						t.Fatalf("tail printed %d records in 10s", len(seqs))
					}
				}
			}
			read(3)
			// New records, some of them alice's, in several polls.
			for i := range 30 {
				user := []string{"alice@example.com", "bob@example.com"}[i%2]
				if _, err := l.Append(&auditlog.Record{Kind: auditlog.KindActivity, User: user, Method: "tools/call",
					Name: "later", Time: auditT0.Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
				if i%7 == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
			read(15)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			select {
			case line := <-out:
				t.Errorf("tail printed more: %s", line)
			default:
			}
			// The last 3 of alice's before (her call's response, her
			// next call's request and response), then every one of hers
			// after, in order, once.
			want := []string{"4", "7", "8"}
			for s := 11; s <= 40; s += 2 {
				want = append(want, strconv.Itoa(s))
			}
			if diff := cmp.Diff(want, seqs); diff != "" {
				t.Errorf("seqs tailed (-want +got):\n%s", diff)
			}
		})
	}
}

// budgetSource answers like a store that examines 3 records a call: seqs
// 20 down to 1, of which those divisible by 4 match.
type budgetSource struct{ calls int }

func (s *budgetSource) activity(q url.Values) ([]auditlog.Record, string, error) {
	s.calls++
	below := 21
	if c := q.Get("cursor"); c != "" {
		below, _ = strconv.Atoi(c)
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	var items []auditlog.Record
	seq := below - 1
	for examined := 0; seq >= 1 && examined < 3 && len(items) < limit; seq-- {
		examined++
		if seq%4 == 0 {
			items = append(items, auditlog.Record{ID: "gw1-" + strconv.Itoa(seq), Seq: uint64(seq)})
		}
	}
	if seq < 1 {
		return items, "", nil
	}
	return items, strconv.Itoa(seq + 1), nil
}

func (s *budgetSource) sessions(url.Values) ([]auditlog.Session, string, error) { return nil, "", nil }
func (s *budgetSource) verify() (verifyResult, error)                           { return verifyResult{}, nil }
func (s *budgetSource) close() error                                            { return nil }

func TestAuditListFillsShortPages(t *testing.T) {
	var out, errOut bytes.Buffer
	src := &budgetSource{}
	if err := auditList(src, "activity", url.Values{"limit": {"3"}}, false, Env{Stdout: &out, Stderr: &errOut}, true); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		got = append(got, regexp.MustCompile(`"id":"([^"]+)"`).FindStringSubmatch(line)[1])
	}
	if diff := cmp.Diff([]string{"gw1-20", "gw1-16", "gw1-12"}, got); diff != "" {
		t.Errorf("printed (-want +got):\n%s", diff)
	}
	if want := "more: --cursor 12 (or --all)\n"; errOut.String() != want {
		t.Errorf("stderr: got %q, want %q", errOut.String(), want)
	}
}
