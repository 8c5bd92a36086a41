package auditlog

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func openDir(t testing.TB, dir string) *Log {
	t.Helper()
	l, err := Open(dir, Options{NodeID: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// appendTraffic writes n records: three sessions of two users in two
// apps, a stateless request now and then, denials, errors, records a
// minute apart.
func appendTraffic(t testing.TB, l *Log, n int) []*Record {
	t.Helper()
	var out []*Record
	for i := range n {
		sid := fmt.Sprintf("s%d", i%3)
		user := []string{"alice", "bob"}[i%3%2]
		app := []string{"crm", "crm", "hr"}[i%3]
		r := &Record{
			Kind: KindActivity, SessionID: sid, App: app, User: user, Method: "tools/call",
			Name: fmt.Sprintf("tool_%d", i%5), Message: MessageRequest, Direction: ClientToServer,
			Decision: DecisionAllow, Time: t0.Add(time.Duration(i) * time.Minute),
		}
		switch {
		case i < 3:
			r.Kind, r.Method, r.Name, r.Status, r.Decision, r.Message = KindSession, "initialize", "", StatusStarted, "", ""
		case i%7 == 0:
			r.Decision = DecisionDeny
		case i%11 == 0:
			r.Message, r.Status, r.Decision = MessageResponse, StatusError, ""
		case i%13 == 0:
			r.SessionID = "" // a 2026-07-28 stateless request
		}
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// pageAll reads every page of a query and fails on a duplicate.
func pageAll(t *testing.T, l *Log, f ActivityFilter, limit, budget int) []uint64 {
	t.Helper()
	var seqs []uint64
	seen := map[uint64]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
		items, next, err := l.activity(f, cursor, limit, budget)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) > limit {
			t.Fatalf("got %d items, want at most %d", len(items), limit)
		}
		for _, r := range items {
			if seen[r.Seq] {
				t.Fatalf("seq %d returned twice", r.Seq)
			}
			seen[r.Seq] = true
			seqs = append(seqs, r.Seq)
		}
		if next == "" {
			return seqs
		}
		cursor = next
	}
}

func TestActivityFiltersAndPaging(t *testing.T) {
	l := openDir(t, t.TempDir())
	defer closeTest(t, l)
	recs := appendTraffic(t, l, 250)
	want := func(keep func(r *Record) bool) []uint64 {
		var seqs []uint64
		for _, r := range slices.Backward(recs) {
			if keep(r) {
				seqs = append(seqs, r.Seq)
			}
		}
		return seqs
	}
	for _, c := range []struct {
		name string
		f    ActivityFilter
		keep func(r *Record) bool
	}{
		{"everything", ActivityFilter{}, func(r *Record) bool { return true }},
		{"app", ActivityFilter{App: "hr"}, func(r *Record) bool { return r.App == "hr" }},
		{"user (index)", ActivityFilter{User: "bob"}, func(r *Record) bool { return r.User == "bob" }},
		{"session (index)", ActivityFilter{Session: "s1"}, func(r *Record) bool { return r.SessionID == "s1" }},
		{"session and user", ActivityFilter{Session: "s0", User: "alice"}, func(r *Record) bool { return r.SessionID == "s0" }},
		{"session of another user", ActivityFilter{Session: "s1", User: "alice"}, func(r *Record) bool { return false }},
		{"method", ActivityFilter{Method: "initialize"}, func(r *Record) bool { return r.Method == "initialize" }},
		{"name", ActivityFilter{Name: "tool_3"}, func(r *Record) bool { return r.Name == "tool_3" }},
		{"decision", ActivityFilter{Decision: DecisionDeny}, func(r *Record) bool { return r.Decision == DecisionDeny }},
		{"kind", ActivityFilter{Kind: KindSession}, func(r *Record) bool { return r.Kind == KindSession }},
		{"name and decision", ActivityFilter{Name: "tool_0", Decision: DecisionDeny},
			func(r *Record) bool { return r.Name == "tool_0" && r.Decision == DecisionDeny }},
		{"since", ActivityFilter{Since: t0.Add(200 * time.Minute)}, func(r *Record) bool { return !r.Time.Before(t0.Add(200 * time.Minute)) }},
		{"until", ActivityFilter{Until: t0.Add(30 * time.Minute)}, func(r *Record) bool { return r.Time.Before(t0.Add(30 * time.Minute)) }},
		{"one minute", ActivityFilter{Since: t0.Add(100 * time.Minute), Until: t0.Add(101 * time.Minute)},
			func(r *Record) bool { return r.Time.Equal(t0.Add(100 * time.Minute)) }},
		{"a minute and a user", ActivityFilter{User: "alice", Since: t0.Add(99 * time.Minute), Until: t0.Add(120 * time.Minute)},
			func(r *Record) bool {
				return r.User == "alice" && !r.Time.Before(t0.Add(99*time.Minute)) && r.Time.Before(t0.Add(120*time.Minute))
			}},
		{"after", ActivityFilter{After: 240}, func(r *Record) bool { return r.Seq > 240 }},
		{"no such app", ActivityFilter{App: "nope"}, func(r *Record) bool { return false }},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := want(c.keep)
			for _, p := range []struct{ limit, budget int }{{1000, scanBudget}, {7, scanBudget}, {7, 5}, {100, 1}} {
				got := pageAll(t, l, c.f, p.limit, p.budget)
				if diff := cmp.Diff(w, got); diff != "" {
					t.Errorf("limit %d, budget %d: seqs (-want +got):\n%s", p.limit, p.budget, diff)
				}
			}
		})
	}
	// One page is limit records, newest first, with the fields stored.
	items, next, err := l.Activity(ActivityFilter{}, "", 0)
	if err != nil || len(items) != DefaultLimit || next == "" {
		t.Fatalf("default page: got %d items, cursor %q, %v; want %d and a cursor", len(items), next, err, DefaultLimit)
	}
	recs[249].ID = "gw1-250" // Append sets the seq and hashes, not the id
	if diff := cmp.Diff(*recs[249], items[0]); diff != "" {
		t.Errorf("newest record (-appended +read):\n%s", diff)
	}
	if items, _, _ := l.Activity(ActivityFilter{}, "", 5000); len(items) != 250 {
		t.Errorf("limit above the maximum: got %d items, want all 250 (clamped to %d)", len(items), MaxLimit)
	}
	for _, bad := range []string{"x", encodeCursor(cursorSessions, 5), encodeCursor(cursorActivity, 0)} {
		if _, _, err := l.Activity(ActivityFilter{}, bad, 10); !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor %q: got %v, want ErrBadCursor", bad, err)
		}
	}
}

func TestActivityBudgetReturnsCursor(t *testing.T) {
	l := openDir(t, t.TempDir())
	defer closeTest(t, l)
	appendTraffic(t, l, 40)
	items, next, err := l.activity(ActivityFilter{App: "nope"}, "", 10, 15)
	if err != nil || len(items) != 0 || next == "" {
		t.Fatalf("got %d items, cursor %q, %v; want none and a cursor", len(items), next, err)
	}
	items, next, err = l.activity(ActivityFilter{App: "nope"}, next, 10, 15)
	if err != nil || len(items) != 0 || next == "" {
		t.Fatalf("second page: got %d items, cursor %q, %v; want none and a cursor", len(items), next, err)
	}
	if _, next, _ = l.activity(ActivityFilter{App: "nope"}, next, 10, 15); next != "" {
		t.Errorf("third page: got cursor %q, want none (40 records, 15 a page)", next)
	}
}

func TestActivityByID(t *testing.T) {
	l := openDir(t, t.TempDir())
	defer closeTest(t, l)
	recs := appendTraffic(t, l, 5)
	got, err := l.ActivityByID("gw1-4")
	if err != nil {
		t.Fatal(err)
	}
	recs[3].ID = "gw1-4"
	if diff := cmp.Diff(*recs[3], *got); diff != "" {
		t.Errorf("record gw1-4 (-appended +read):\n%s", diff)
	}
	for _, id := range []string{"gw1-6", "gw1-0", "gw2-4", "gw1-x", "4", ""} {
		if _, err := l.ActivityByID(id); !errors.Is(err, ErrUnknownRecord) {
			t.Errorf("id %q: got %v, want ErrUnknownRecord", id, err)
		}
	}
}

func TestSessions(t *testing.T) {
	dir := t.TempDir()
	l := openDir(t, dir)
	must := func(r *Record) {
		t.Helper()
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	start := func(sid, app, user string, at time.Time) {
		must(&Record{Kind: KindSession, SessionID: sid, App: app, User: user, Groups: []string{"eng"},
			Device:       Device{ClientName: "claude-code", ClientVersion: "2.0", UserAgent: "node", RemoteAddr: "10.0.0.9:4000"},
			ResourceType: ResourceTypeMCP, ProtocolVersion: "2025-11-25", Method: "initialize", Status: StatusStarted, Time: at})
	}
	call := func(sid, app, user string, at time.Time, d Decision, status string) {
		must(&Record{Kind: KindActivity, SessionID: sid, App: app, User: user, Method: "tools/call", Name: "get_user",
			Direction: ClientToServer, Message: MessageRequest, Decision: d, Time: at})
		must(&Record{Kind: KindActivity, SessionID: sid, App: app, User: user, Method: "tools/call",
			Direction: ServerToClient, Message: MessageResponse, Status: status, Time: at.Add(time.Millisecond)})
	}
	start("sa", "crm", "alice", t0)
	call("sa", "crm", "alice", t0.Add(time.Second), DecisionAllow, StatusOK)
	start("sb", "hr", "bob", t0.Add(time.Hour))
	call("sa", "crm", "alice", t0.Add(2*time.Hour), DecisionDeny, StatusError)
	must(&Record{Kind: KindSession, SessionID: "sa", App: "crm", User: "alice", Status: StatusEnded, Reason: "deleted by client", Time: t0.Add(3 * time.Hour)})
	closeTest(t, l)

	// After a restart the committer's cache is empty: sb's next records
	// start a second segment, which queries add to the first.
	l = openDir(t, dir)
	defer closeTest(t, l)
	call("sb", "hr", "bob", t0.Add(4*time.Hour), DecisionApprovalRequired, StatusOK)
	start("sc", "hr", "alice", t0.Add(5*time.Hour))
	if err := l.MarkAudited("sa", "auditor@example.com", "looked fine"); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkAudited("nope", "auditor@example.com", ""); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("MarkAudited of an unknown session: got %v, want ErrUnknownSession", err)
	}

	all, next, err := l.Sessions(SessionFilter{}, "", 0)
	if err != nil || next != "" {
		t.Fatalf("Sessions: %v, cursor %q", err, next)
	}
	var ids []string
	for _, s := range all {
		ids = append(ids, s.ID)
	}
	if diff := cmp.Diff([]string{"sc", "sb", "sa"}, ids); diff != "" {
		t.Errorf("sessions, latest started first (-want +got):\n%s", diff)
	}
	sa := all[2]
	if sa.Audited == nil || sa.Audited.Time.IsZero() {
		t.Fatalf("sa: got audited %+v, want a mark", sa.Audited)
	}
	wantSA := Session{
		ID: "sa", SessionID: "sa", App: "crm", User: "alice", Groups: []string{"eng"},
		Device:       Device{ClientName: "claude-code", ClientVersion: "2.0", UserAgent: "node", RemoteAddr: "10.0.0.9:4000"},
		ResourceType: ResourceTypeMCP, ProtocolVersion: "2025-11-25", StartID: "gw1-1",
		Started: t0, LastSeen: t0.Add(3 * time.Hour), Ended: t0.Add(3 * time.Hour), EndReason: "deleted by client",
		Records: 6, Requests: 2, Denied: 1, Errors: 1,
		Audited: &Audited{By: "auditor@example.com", Time: sa.Audited.Time, Comment: "looked fine", RecordID: "gw1-11"},
	}
	if diff := cmp.Diff(wantSA, sa); diff != "" {
		t.Errorf("session sa (-want +got):\n%s", diff)
	}
	sb := all[1]
	if sb.Records != 3 || sb.Requests != 1 || sb.Denied != 1 || sb.Errors != 0 || !sb.Ended.IsZero() ||
		!sb.LastSeen.Equal(t0.Add(4*time.Hour+time.Millisecond)) {
		t.Errorf("session sb across a restart: got %+v", sb)
	}

	yes, no := true, false
	for _, c := range []struct {
		name string
		f    SessionFilter
		want []string
	}{
		{"app", SessionFilter{App: "hr"}, []string{"sc", "sb"}},
		{"user", SessionFilter{User: "alice"}, []string{"sc", "sa"}},
		{"app and user", SessionFilter{App: "hr", User: "alice"}, []string{"sc"}},
		{"audited", SessionFilter{Audited: &yes}, []string{"sa"}},
		{"not audited", SessionFilter{Audited: &no}, []string{"sc", "sb"}},
		{"since", SessionFilter{Since: t0.Add(time.Hour)}, []string{"sc", "sb"}},
		{"until", SessionFilter{Until: t0.Add(time.Hour)}, []string{"sa"}},
		{"nothing", SessionFilter{User: "carol"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, limit := range []int{1, 2, 100} {
				got := pageSessions(t, l, c.f, limit, scanBudget)
				if diff := cmp.Diff(c.want, got); diff != "" {
					t.Errorf("limit %d (-want +got):\n%s", limit, diff)
				}
			}
		})
	}
	s, err := l.Session("sb")
	if err != nil || s.StartID != "gw1-4" || s.App != "hr" {
		t.Errorf("Session(sb): got %+v, %v", s, err)
	}
	if _, err := l.Session("nope"); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("Session(nope): got %v, want ErrUnknownSession", err)
	}
	// The audit mark is a record of the chain.
	marks, _, err := l.Activity(ActivityFilter{Kind: KindAdmin, Session: "sa"}, "", 10)
	if err != nil || len(marks) != 1 || marks[0].Method != MethodSessionsAudited || marks[0].User != "auditor@example.com" {
		t.Errorf("audit mark records: got %+v, %v", marks, err)
	}
	if err := l.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestSessionsPaging(t *testing.T) {
	l := openDir(t, t.TempDir())
	defer closeTest(t, l)
	const n = 230
	for i := range n {
		_, err := l.Append(&Record{Kind: KindSession, SessionID: fmt.Sprintf("s%03d", i), User: "u", App: "a",
			Status: StatusStarted, Time: t0.Add(time.Duration(i) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []struct{ limit, budget int }{{100, scanBudget}, {100, 33}, {1000, scanBudget}} {
		got := pageSessions(t, l, SessionFilter{}, p.limit, p.budget)
		var want []string
		for i := n - 1; i >= 0; i-- {
			want = append(want, fmt.Sprintf("s%03d", i))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("limit %d, budget %d (-want +got):\n%s", p.limit, p.budget, diff)
		}
	}
}

// pageSessions reads every page of a sessions query.
func pageSessions(t *testing.T, l *Log, f SessionFilter, limit, budget int) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for range 1000 {
		items, next, err := l.sessions(f, cursor, limit, budget)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range items {
			ids = append(ids, s.ID)
		}
		if cursor = next; cursor == "" {
			return ids
		}
	}
	t.Fatal("paging does not end")
	return nil
}

func TestSegmentEncoding(t *testing.T) {
	g := segment{first: 7, last: 1 << 40, lastSeen: -5, records: 3, requests: 2, denied: 1, errors: 1, start: 7,
		ended: 99, endReason: "deleted by client", auditedSeq: 12, auditedAt: 100, auditedBy: "a", auditComment: "ü"}
	got, err := decodeSegment(g.appendTo(nil))
	if err != nil || got != g {
		t.Errorf("got %+v, %v; want %+v", got, err, g)
	}
	b := g.appendTo(nil)
	for i := range b {
		if _, err := decodeSegment(b[:i]); err == nil {
			t.Errorf("a segment cut to %d bytes decodes", i)
		}
	}
}

func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenReadOnly(dir + "/none"); err == nil {
		t.Error("OpenReadOnly of a missing spool: got no error")
	}
	l := openDir(t, dir)
	appendTraffic(t, l, 10)
	if _, err := OpenReadOnly(dir); err == nil {
		t.Error("OpenReadOnly while a Log holds the spool: got no error, want the lock refused")
	}
	closeTest(t, l)

	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeTest(t, ro)
	items, _, err := ro.Activity(ActivityFilter{Session: "s1"}, "", 100)
	if err != nil || len(items) != 3 {
		t.Errorf("Activity on the read-only log: got %d items, %v; want 3", len(items), err)
	}
	if err := ro.Verify(); err != nil {
		t.Errorf("Verify on the read-only log: %v", err)
	}
	if _, err := ro.Append(&Record{Kind: KindAdmin}); err == nil {
		t.Error("Append on the read-only log: got no error")
	}
}

func TestPruneIndex(t *testing.T) {
	l := openDir(t, t.TempDir())
	defer closeTest(t, l)
	must := func(r *Record) {
		t.Helper()
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	must(&Record{Kind: KindSession, SessionID: "old", Status: StatusStarted, Time: at(0)})      // 1
	must(&Record{Kind: KindActivity, SessionID: "old", Message: MessageRequest, Time: at(1)})   // 2
	must(&Record{Kind: KindSession, SessionID: "old", Status: StatusEnded, Time: at(2)})        // 3
	must(&Record{Kind: KindSession, SessionID: "going", Status: StatusStarted, Time: at(3)})    // 4
	must(&Record{Kind: KindActivity, SessionID: "going", Message: MessageRequest, Time: at(4)}) // 5
	must(&Record{Kind: KindActivity, SessionID: "going", Message: MessageRequest, Time: at(9)}) // 6
	must(&Record{Kind: KindSession, SessionID: "new", Status: StatusStarted, Time: at(10)})     // 7

	minutes := func() (n int) {
		eachKey(l.idb, []byte{indexPrefix, ixMinute}, []byte{indexPrefix, ixMinute + 1}, func(_, _ []byte) error { n++; return nil })
		return n
	}
	if got := minutes(); got != 7 {
		t.Fatalf("time index entries: got %d, want 7", got)
	}
	b := l.idb.NewBatch()
	if err := pruneIndex(l.idb, b, 6); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	if got := minutes(); got != 2 {
		t.Errorf("time index entries after pruning below 6: got %d, want 2", got)
	}
	got := pageSessions(t, l, SessionFilter{}, 10, scanBudget)
	if diff := cmp.Diff([]string{"new", "going"}, got); diff != "" {
		t.Errorf("sessions after pruning below 6 (-want +got):\n%s", diff)
	}
	if _, err := l.Session("old"); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("the pruned session: got %v, want ErrUnknownSession", err)
	}
}

// BenchmarkActivityScan is a query that selects nothing from a spool of
// 100k records: it examines its budget of records (the text test; none is
// decoded), the worst case per call. Against it, BenchmarkActivityPage
// decodes one page of 100 records.
func BenchmarkActivityScan(b *testing.B) { benchActivity(b, ActivityFilter{User: "nobody"}, 100_000) }
func BenchmarkActivityPage(b *testing.B) { benchActivity(b, ActivityFilter{}, 100) }

// benchActivity reports the records a call examines per second.
func benchActivity(b *testing.B, f ActivityFilter, examined int) {
	l, err := Open(b.TempDir(), Options{Durability: Async, NodeID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const n = 100_000
	for i := range n {
		r := activity(i)
		if _, err := l.Append(r); err != nil {
			b.Fatal(err)
		}
	}
	for l.Stats().Head < n {
		time.Sleep(time.Millisecond)
	}
	b.ReportAllocs()
	calls := 0
	for b.Loop() {
		if _, _, err := l.Activity(f, "", 100); err != nil {
			b.Fatal(err)
		}
		calls++
	}
	b.ReportMetric(float64(calls*examined)/b.Elapsed().Seconds(), "records/s")
}

// TestMarkAuditedAsync: in Async mode Append returns before the commit;
// MarkAudited does not, so the next query shows the mark.
func TestMarkAuditedAsync(t *testing.T) {
	l, err := Open(t.TempDir(), Options{Durability: Async, NodeID: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	defer closeTest(t, l)
	for i := range 50 {
		sid := fmt.Sprintf("s%d", i)
		if _, err := l.Append(&Record{Kind: KindSession, SessionID: sid, Status: StatusStarted}); err != nil {
			t.Fatal(err)
		}
		for l.Stats().Head < uint64(2*i+1) { // the session must be known
			time.Sleep(time.Millisecond)
		}
		if err := l.MarkAudited(sid, "audrey", ""); err != nil {
			t.Fatal(err)
		}
		if s, err := l.Session(sid); err != nil || s.Audited == nil {
			t.Fatalf("session %s right after MarkAudited: got %+v, %v; want the mark", sid, s, err)
		}
	}
}

// FuzzIndexDecoders: the decoders of index values and cursors never panic,
// and what a segment decodes from encodes back to the same bytes.
func FuzzIndexDecoders(f *testing.F) {
	g := segment{first: 7, last: 9, lastSeen: 5, records: 3, start: 7, ended: 8, endReason: "x", auditedBy: "a"}
	f.Add(g.appendTo(nil))
	f.Add(appendSessionEntry(nil, &indexFields{time: 1, app: []byte("crm"), user: []byte("u"), session: []byte("s")}))
	f.Add([]byte(encodeCursor(cursorActivity, 42)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if g, err := decodeSegment(b); err == nil {
			if again := g.appendTo(nil); !bytes.Equal(again, b) {
				// Varints have one shortest form; a longer one decodes too.
				if g2, err := decodeSegment(again); err != nil || g2 != g {
					t.Errorf("segment %x: decodes to %+v, which encodes to %x, which decodes to %+v, %v", b, g, again, g2, err)
				}
			}
		}
		decodeSessionEntry(b)
		decodeCursor(cursorActivity, string(b))
	})
}
