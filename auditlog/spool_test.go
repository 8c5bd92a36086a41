package auditlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"
)

func openTest(t testing.TB, fs vfs.FS, opts Options) *Log {
	t.Helper()
	l, err := open("spool", opts, fs)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

func closeTest(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// activity returns a typical activity record, numbered n in its name.
func activity(n int) *Record {
	r := fullRecord()
	r.ID, r.Seq, r.PrevHash, r.Hash = "", 0, Hash{}, Hash{}
	r.Name = fmt.Sprintf("tool_%d", n)
	return r
}

// appendConcurrently appends per records from each of writers goroutines
// and returns the seqs handed out, by name.
func appendConcurrently(t *testing.T, l *Log, writers, per int) map[string]uint64 {
	t.Helper()
	var mu sync.Mutex
	seqs := map[string]uint64{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				r := activity(w*per + i)
				seq, err := l.Append(r)
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				seqs[r.Name] = seq
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return seqs
}

func TestAppendScanVerify(t *testing.T) {
	for _, d := range []Durability{Sync, Async} {
		t.Run(d.String(), func(t *testing.T) {
			fs := vfs.NewMem()
			l := openTest(t, fs, Options{Durability: d, NodeID: "gw1"})
			seqs := appendConcurrently(t, l, 8, 50)
			if len(seqs) != 400 {
				t.Fatalf("got %d records, want 400", len(seqs))
			}
			if d == Async {
				// Scan may miss the queued tail until Close writes it.
				closeTest(t, l)
				l = openTest(t, fs, Options{})
			}
			defer closeTest(t, l)
			var prev Hash
			var n uint64
			err := l.Scan(0, func(r *Record) bool {
				n++
				want := activity(0)
				want.Name = r.Name
				want.ID, want.Seq, want.PrevHash, want.Hash = fmt.Sprintf("gw1-%d", n), n, prev, r.Hash
				if diff := cmp.Diff(want, r, sameRecord); diff != "" {
					t.Fatalf("record %d differs (-want +got):\n%s", n, diff)
				}
				if seqs[r.Name] != n {
					t.Fatalf("record %s: got seq %d from Append, %d in the spool", r.Name, seqs[r.Name], n)
				}
				prev = r.Hash
				return true
			})
			if err != nil || n != 400 {
				t.Fatalf("Scan: got %d records, %v; want 400", n, err)
			}
			if seq, hash := l.Last(); seq != 400 || hash != prev {
				t.Errorf("Last: got %d %v, want 400 %v", seq, hash, prev)
			}
			if err := l.Verify(); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestAppendSetsChainFields(t *testing.T) {
	now := time.Date(2026, 11, 25, 0, 0, 0, 7, time.UTC)
	l := openTest(t, vfs.NewMem(), Options{NodeID: "n", Now: func() time.Time { return now }})
	defer closeTest(t, l)
	r1 := &Record{ID: "ignored", Seq: 99, Hash: Hash{9}}
	if seq, err := l.Append(r1); seq != 1 || err != nil {
		t.Fatalf("Append: got %d, %v; want 1", seq, err)
	}
	if !r1.Time.Equal(now) || r1.Seq != 1 || !r1.PrevHash.IsZero() || r1.Hash.IsZero() {
		t.Errorf("first record: got time %v seq %d prev %v hash %v", r1.Time, r1.Seq, r1.PrevHash, r1.Hash)
	}
	r2 := &Record{}
	l.Append(r2)
	if r2.PrevHash != r1.Hash {
		t.Errorf("second record: got prev_hash %v, want %v", r2.PrevHash, r1.Hash)
	}
	var got []string
	l.Scan(2, func(r *Record) bool { got = append(got, r.ID); return true })
	if !cmp.Equal(got, []string{"n-2"}) || l.RecordID(2) != "n-2" {
		t.Errorf("Scan(2): got ids %v, want [n-2]", got)
	}
}

func TestReopenContinuesSeq(t *testing.T) {
	fs := vfs.NewMem()
	l := openTest(t, fs, Options{})
	for i := range 10 {
		l.Append(activity(i))
	}
	node := l.NodeID()
	seq10, hash10 := l.Last()
	closeTest(t, l)

	l = openTest(t, fs, Options{Durability: Async})
	if seq, hash := l.Last(); seq != seq10 || hash != hash10 || l.NodeID() != node {
		t.Fatalf("after reopen: got head %d %v node %s, want %d %v %s", seq, hash, l.NodeID(), seq10, hash10, node)
	}
	if seq, err := l.Append(activity(10)); seq != 11 || err != nil {
		t.Fatalf("Append after reopen: got %d, %v; want 11", seq, err)
	}
	closeTest(t, l)
	l = openTest(t, fs, Options{NodeID: "renamed"})
	defer closeTest(t, l)
	if err := l.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if seq, _ := l.Last(); seq != 11 || l.NodeID() != "renamed" {
		t.Errorf("got head %d node %s, want 11 renamed", seq, l.NodeID())
	}
}

// TestCrashKeepsAcknowledgedRecords crashes the filesystem under a stream
// of Sync appends: every record whose Append had returned before the crash
// is in the recovered spool, and the chain verifies.
func TestCrashKeepsAcknowledgedRecords(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, unsynced := range []int{0, 50, 100} {
		t.Run(fmt.Sprintf("unsynced=%d", unsynced), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			l := openTest(t, fs, Options{NodeID: "gw"})
			var mu sync.Mutex
			var acked []uint64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						seq, err := l.Append(activity(w*1000000 + i))
						if err != nil {
							t.Errorf("Append: %v", err)
							return
						}
						mu.Lock()
						acked = append(acked, seq)
						mu.Unlock()
					}
				})
			}
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			before := append([]uint64(nil), acked...)
			mu.Unlock()
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rand.New(rand.NewPCG(rng.Uint64(), 0))})
			close(stop)
			wg.Wait()
			closeTest(t, l)
			if len(before) < 10 {
				t.Fatalf("only %d appends before the crash", len(before))
			}

			l = openTest(t, crashed, Options{})
			defer closeTest(t, l)
			present := map[uint64]bool{}
			if err := l.ScanJSON(0, func(seq uint64, _ []byte) bool { present[seq] = true; return true }); err != nil {
				t.Fatal(err)
			}
			for _, seq := range before {
				if !present[seq] {
					t.Fatalf("record %d was acknowledged before the crash and is gone (%d of %d present)", seq, len(present), len(before))
				}
			}
			if err := l.Verify(); err != nil {
				t.Errorf("Verify after crash: %v", err)
			}
			head, _ := l.Last()
			if head != uint64(len(present)) {
				t.Errorf("head %d, but %d records", head, len(present))
			}
			if seq, err := l.Append(activity(0)); err != nil || seq != head+1 {
				t.Errorf("Append after crash: got %d, %v; want %d", seq, err, head+1)
			}
			t.Logf("%d acknowledged before the crash, %d recovered", len(before), len(present))
		})
	}
}

// TestGroupCommit holds the committer while 64 sync appends queue up: they
// are written in one batch, with one fsync.
func TestGroupCommit(t *testing.T) {
	hold := make(chan struct{})
	l := openTest(t, vfs.NewMem(), Options{hold: hold})
	defer closeTest(t, l)
	done := make(chan map[string]uint64)
	go func() { done <- appendConcurrently(t, l, 64, 1) }()
	for deadline := time.Now().Add(10 * time.Second); len(l.queue) < 64; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d appends queued", len(l.queue))
		}
	}
	close(hold)
	if seqs := <-done; len(seqs) != 64 {
		t.Fatalf("got %d records, want 64", len(seqs))
	}
	if got := l.Stats(); got.Records != 64 || got.Batches != 1 {
		t.Errorf("got %d records in %d batches, want 64 in 1", got.Records, got.Batches)
	}
}

// TestFullQueueBlocks fills a one-record queue from many writers: Append
// blocks until the committer takes a record, and nothing deadlocks or is
// lost.
func TestFullQueueBlocks(t *testing.T) {
	for _, d := range []Durability{Async, Sync} {
		t.Run(d.String(), func(t *testing.T) {
			fs := vfs.NewMem()
			l := openTest(t, fs, Options{Durability: d, queueLen: 1})
			done := make(chan map[string]uint64)
			go func() { done <- appendConcurrently(t, l, 8, 300) }()
			select {
			case seqs := <-done:
				if len(seqs) != 2400 {
					t.Errorf("got %d records, want 2400", len(seqs))
				}
			case <-time.After(10 * time.Second):
				t.Fatal("appends stuck on a full queue")
			}
			closeTest(t, l)
			l = openTest(t, fs, Options{})
			defer closeTest(t, l)
			if seq, _ := l.Last(); seq != 2400 {
				t.Errorf("got head %d, want 2400", seq)
			}
		})
	}
}

func TestAsyncCloseFlushes(t *testing.T) {
	fs := vfs.NewCrashableMem()
	l := openTest(t, fs, Options{Durability: Async})
	for i := range 5000 {
		if _, err := l.Append(activity(i)); err != nil {
			t.Fatal(err)
		}
	}
	closeTest(t, l)
	l = openTest(t, fs.CrashClone(vfs.CrashCloneCfg{}), Options{})
	defer closeTest(t, l)
	if seq, _ := l.Last(); seq != 5000 {
		t.Errorf("after Close and a crash: got head %d, want 5000", seq)
	}
	if err := l.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestVerifyFindsBreaks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(l *Log, rec func(uint64) []byte) error
		want   ChainError
	}{
		{"edited field", func(l *Log, rec func(uint64) []byte) error {
			v := rec(5)
			v[len(v)-3]++ // a digit of bytes_out
			return l.db.Set(key(5), v, pebble.Sync)
		}, ChainError{Seq: 5, Kind: BreakHash}},
		{"deleted record", func(l *Log, _ func(uint64) []byte) error {
			return l.db.Delete(key(7), pebble.Sync)
		}, ChainError{Seq: 8, Kind: BreakSeqGap, Want: 7}},
		{"deleted tail", func(l *Log, _ func(uint64) []byte) error {
			return l.db.Delete(key(10), pebble.Sync)
		}, ChainError{Seq: 10, Kind: BreakSeqGap, Want: 10}},
		{"swapped records", func(l *Log, rec func(uint64) []byte) error {
			a, b := rec(3), rec(4)
			l.db.Set(key(3), b, pebble.Sync)
			return l.db.Set(key(4), a, pebble.Sync)
		}, ChainError{Seq: 4, Kind: BreakSeqGap, Want: 3}},
		{"rehashed record", func(l *Log, rec func(uint64) []byte) error {
			// An editor who recomputes the record's own hash still
			// breaks the link to the next record.
			var r Record
			if err := decodeInto(rec(6), &r); err != nil {
				return err
			}
			r.User = "mallory"
			r.Hash = Hash{}
			canonical := AppendJSON(nil, &r)
			r.Hash = chainHash(&r.PrevHash, canonical)
			return l.db.Set(key(6), AppendJSON(nil, &r), pebble.Sync)
		}, ChainError{Seq: 7, Kind: BreakPrevHash}},
		{"garbage", func(l *Log, _ func(uint64) []byte) error {
			return l.db.Set(key(2), []byte("{"), pebble.Sync)
		}, ChainError{Seq: 2, Kind: BreakMalformed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openTest(t, vfs.NewMem(), Options{})
			defer closeTest(t, l)
			for i := range 10 {
				l.Append(activity(i))
			}
			if err := l.Verify(); err != nil {
				t.Fatalf("Verify before tampering: %v", err)
			}
			rec := func(seq uint64) []byte {
				v, _, err := l.get(key(seq))
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			if err := tc.tamper(l, rec); err != nil {
				t.Fatal(err)
			}
			var ce *ChainError
			if err := l.Verify(); !errors.As(err, &ce) || *ce != tc.want {
				t.Errorf("Verify: got %v, want %v", err, &tc.want)
			}
		})
	}
}

func key(seq uint64) []byte {
	var k [9]byte
	return recordKey(&k, seq)
}

func decodeInto(b []byte, r *Record) error {
	var v Verifier
	if err := v.Next(b); err != nil {
		return err
	}
	return json.Unmarshal(b, r)
}

func TestVerifierAnchor(t *testing.T) {
	l := openTest(t, vfs.NewMem(), Options{})
	defer closeTest(t, l)
	for i := range 3 {
		l.Append(activity(i))
	}
	var lines [][]byte
	l.ScanJSON(0, func(_ uint64, line []byte) bool { lines = append(lines, append([]byte(nil), line...)); return true })
	var v Verifier
	v.Anchor(1, Hash{1})
	var ce *ChainError
	if err := v.Next(lines[1]); !errors.As(err, &ce) || ce.Kind != BreakPrevHash {
		t.Errorf("wrong anchor: got %v, want a prev_hash mismatch", err)
	}
	v = Verifier{}
	for _, line := range lines[1:] {
		if err := v.Next(line); err != nil {
			t.Errorf("from record 2: %v", err)
		}
	}
}

func TestCloseAndOptions(t *testing.T) {
	l := openTest(t, vfs.NewMem(), Options{MaxSpool: 1})
	l.Append(activity(0))
	if n, err := l.SpoolBytes(); n <= 0 || err != nil {
		t.Errorf("SpoolBytes: got %d, %v; want > 0", n, err)
	}
	if !l.Full() {
		t.Error("Full: got false with MaxSpool 1")
	}
	closeTest(t, l)
	if _, err := l.Append(activity(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: got %v, want ErrClosed", err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: got %v, want ErrClosed", err)
	}
	if err := l.Scan(0, func(*Record) bool { return true }); !errors.Is(err, ErrClosed) {
		t.Errorf("Scan after Close: got %v, want ErrClosed", err)
	}
	for _, bad := range []string{"a b", "x/y", "é", string(make([]byte, 65))} {
		if _, err := open("s", Options{NodeID: bad}, vfs.NewMem()); !errors.Is(err, ErrBadNodeID) {
			t.Errorf("NodeID %q: got %v, want ErrBadNodeID", bad, err)
		}
	}
	l = openTest(t, vfs.NewMem(), Options{})
	defer closeTest(t, l)
	if l.Full() {
		t.Error("Full: got true without MaxSpool")
	}
}

// TestStoredLinesRoundTrip: a stored record decoded by encoding/json and
// encoded again is the same bytes, so readers may serve either form and
// the chain holds for both; even for strings with invalid UTF-8, which
// were replaced on the way in.
func TestStoredLinesRoundTrip(t *testing.T) {
	l := openTest(t, vfs.NewMem(), Options{})
	defer closeTest(t, l)
	r := activity(0)
	r.User, r.Groups = "bad\xff\xfe\u2028", []string{"\x00", ""}
	r.Time = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600))
	l.Append(r)
	l.Append(&Record{Kind: KindAdmin})
	n := 0
	l.ScanJSON(0, func(seq uint64, line []byte) bool {
		n++
		var got Record
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatal(err)
		}
		if again := AppendJSON(nil, &got); string(again) != string(line) {
			t.Errorf("record %d: stored\n%s\nre-encoded\n%s", seq, line, again)
		}
		return true
	})
	if n != 2 {
		t.Errorf("got %d records, want 2", n)
	}
}

// TestAppendAllocs gates the hot path: in steady state a Sync Append,
// with the committer's work for it, allocates less than once on average
// (the pending records, their buffers and the batches are reused). Async
// reuses them too, but only once the queue has cycled; its benchmark
// shows 0 allocs/op.
func TestAppendAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	l := openTest(t, vfs.NewMem(), Options{})
	defer closeTest(t, l)
	rec := activity(0)
	r := *rec
	for range 200 {
		r = *rec
		l.Append(&r)
	}
	if n := testing.AllocsPerRun(500, func() { r = *rec; l.Append(&r) }); n >= 1 {
		t.Errorf("got %v allocs per Append, want 0", n)
	}
}

// TestEnqueueThenAppend: Enqueue does not wait, even in Sync mode, but a
// record enqueued before a synced Append is durable when that Append
// returns (the chain is written in seq order, and a synced batch implies
// the ones before it).
func TestEnqueueThenAppend(t *testing.T) {
	fs := vfs.NewCrashableMem()
	hold := make(chan struct{})
	l := openTest(t, fs, Options{NodeID: "gw", hold: hold})
	seq, err := l.Enqueue(activity(1)) // returns with the committer held
	if seq != 1 || err != nil {
		t.Fatalf("Enqueue: got %d, %v; want 1", seq, err)
	}
	close(hold)
	r := activity(2)
	if seq, err := l.Append(r); seq != 2 || err != nil || r.Hash.IsZero() {
		t.Fatalf("Append: got %d, %v, hash %v; want 2 and a hash", seq, err, r.Hash)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(3, 4))})
	closeTest(t, l)
	l = openTest(t, crashed, Options{})
	defer closeTest(t, l)
	var names []string
	l.Scan(0, func(r *Record) bool { names = append(names, r.Name); return true })
	if !cmp.Equal(names, []string{"tool_1", "tool_2"}) {
		t.Errorf("after the crash: got %v, want [tool_1 tool_2]", names)
	}
}

// TestRecordsDatabaseHoldsOnlyRecords: beside the records, the records
// database holds the node id and nothing else, however the spool is used
// (sessions, shipping, retention). A key written with every batch, such as
// a chain head or an index entry, would make every table overlap the others
// and every compaction rewrite the spool (it once cost Append in async mode
// more than half its speed).
func TestRecordsDatabaseHoldsOnlyRecords(t *testing.T) {
	l := openTest(t, vfs.NewMem(), Options{Shipping: true})
	defer closeTest(t, l)
	for i := range 50 {
		r := activity(i)
		r.SessionID = fmt.Sprintf("s%d", i%3)
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.markShipped(20); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prune(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	it, err := l.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	records := 0
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		switch {
		case len(k) == 9 && k[0] == recordPrefix:
			records++
		case string(k) == string(keyNode):
		default:
			t.Errorf("the records database holds key %q", k)
		}
	}
	if records != 30 {
		t.Errorf("got %d records after pruning 20 of 50, want 30", records)
	}
}

// TestIndexCatchesUp: Open brings the index level with the records, when
// it is behind (its log is not synced: a crash loses its tail), ahead (the
// records lost more than the index) or gone.
func TestIndexCatchesUp(t *testing.T) {
	for _, tc := range []string{"behind", "ahead", "gone"} {
		t.Run(tc, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			l := openTest(t, fs, Options{})
			for i := range 12 {
				r := activity(i)
				r.SessionID = []string{"a", "b"}[i%2]
				if _, err := l.Append(r); err != nil {
					t.Fatal(err)
				}
			}
			var reopen vfs.FS = fs
			switch tc {
			case "behind":
				// Sync appends: the records are synced, the index not.
				reopen = fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
				l.Close()
			case "ahead":
				closeTest(t, l)
				idb, err := pebble.Open(fs.PathJoin("spool", indexDir), &pebble.Options{FS: fs})
				if err != nil {
					t.Fatal(err)
				}
				b := idb.NewBatch()
				b.Set(appendIndexKey(nil, ixSegments, []byte("ghost"), 70), (&segment{first: 70, last: 71, records: 2}).appendTo(nil), nil)
				setSeq(b, keyIndexed, 71)
				if err := b.Commit(pebble.Sync); err != nil {
					t.Fatal(err)
				}
				idb.Close()
			case "gone":
				closeTest(t, l)
				if err := fs.RemoveAll(fs.PathJoin("spool", indexDir)); err != nil {
					t.Fatal(err)
				}
			}
			var logs bytes.Buffer
			l = openTest(t, reopen, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			defer closeTest(t, l)
			if !strings.Contains(logs.String(), "audit index caught up") {
				t.Errorf("Open did not catch the index up; its log:\n%s", logs.String())
			}
			if got, _ := getSeq(l.idb, keyIndexed); got != 12 {
				t.Errorf("m/indexed after catching up: got %d, want 12", got)
			}
			for _, sid := range []string{"a", "b"} {
				s, err := l.Session(sid)
				if err != nil || s.Records != 6 || s.Requests != 6 {
					t.Errorf("session %s: got %+v, %v; want 6 records", sid, s, err)
				}
			}
			if _, err := l.Session("ghost"); err == nil {
				t.Error("a session of records lost in the crash is still indexed")
			}
			if err := l.Verify(); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}
