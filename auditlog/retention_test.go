package auditlog

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"
)

var hour0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// appendAt appends one record stamped at each of the hours given, after hour0.
func appendAt(t *testing.T, l *Log, hours ...int) {
	t.Helper()
	for _, h := range hours {
		r := activity(h)
		r.Time = hour0.Add(time.Duration(h) * time.Hour)
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
}

func present(t *testing.T, l *Log) []uint64 {
	t.Helper()
	var seqs []uint64
	if err := l.ScanJSON(0, func(seq uint64, _ []byte) bool { seqs = append(seqs, seq); return true }); err != nil {
		t.Fatal(err)
	}
	return seqs
}

func seqs(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestPrune: retention deletes a prefix of records that are both old and
// shipped (every record, with shipping off), never a hole; the chain still
// verifies, across a reopen, and even with nothing left.
func TestPrune(t *testing.T) {
	for _, tc := range []struct {
		name     string
		shipping bool
		shipped  uint64
		hours    []int // one record an hour each
		before   int   // prune before hour0 + this many hours
		want     []uint64
	}{
		{"shipped and old", true, 6, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 8, seqs(7, 10)},
		{"old and not all shipped", true, 3, []int{0, 1, 2, 3, 4, 5}, 8, seqs(4, 6)},
		{"nothing shipped", true, 0, []int{0, 1, 2}, 8, seqs(1, 3)},
		{"shipping off: every record counts as shipped", false, 0, []int{0, 1, 2, 3, 4, 5}, 4, seqs(5, 6)},
		{"a newer record stops the prefix", false, 0, []int{0, 1, 9, 2, 3}, 5, seqs(3, 5)},
		{"everything", false, 0, []int{0, 1, 2}, 5, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			l := openTest(t, fs, Options{Shipping: tc.shipping})
			appendAt(t, l, tc.hours...)
			if tc.shipped > 0 {
				if err := l.markShipped(tc.shipped); err != nil {
					t.Fatal(err)
				}
			}
			n, err := l.Prune(hour0.Add(time.Duration(tc.before) * time.Hour))
			if wantN := len(tc.hours) - len(tc.want); n != wantN || err != nil {
				t.Errorf("Prune: got %d, %v; want %d", n, err, wantN)
			}
			if diff := cmp.Diff(tc.want, present(t, l)); diff != "" {
				t.Errorf("records left (-want +got):\n%s", diff)
			}
			if got := l.Stats().Pruned; got != uint64(n) {
				t.Errorf("Stats().Pruned: got %d, want %d", got, n)
			}
			if err := l.Verify(); err != nil {
				t.Errorf("Verify after Prune: %v", err)
			}
			closeTest(t, l)
			l = openTest(t, fs, Options{Shipping: tc.shipping})
			defer closeTest(t, l)
			if err := l.Verify(); err != nil {
				t.Errorf("Verify after reopen: %v", err)
			}
			appendAt(t, l, 20)
			if err := l.Verify(); err != nil {
				t.Errorf("Verify after one more record: %v", err)
			}
		})
	}
}

// TestVerifyAnchor: once retention has moved the anchor, deleting the
// first remaining record by hand (or the anchor's successor going
// missing in any way) is a break; without an anchor, so is deleting the
// first record.
func TestVerifyAnchor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		prune bool
		want  ChainError
	}{
		{"after retention", true, ChainError{Seq: 5, Kind: BreakSeqGap, Want: 4}},
		{"without retention", false, ChainError{Seq: 2, Kind: BreakSeqGap, Want: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openTest(t, vfs.NewMem(), Options{})
			defer closeTest(t, l)
			appendAt(t, l, 0, 1, 2, 3, 4, 5)
			first := uint64(1)
			if tc.prune {
				if n, err := l.Prune(hour0.Add(3 * time.Hour)); n != 3 || err != nil {
					t.Fatalf("Prune: got %d, %v; want 3", n, err)
				}
				first = 4
			}
			if err := l.Verify(); err != nil {
				t.Fatalf("Verify before tampering: %v", err)
			}
			if err := l.db.Delete(key(first), pebble.Sync); err != nil {
				t.Fatal(err)
			}
			var ce *ChainError
			if err := l.Verify(); !errors.As(err, &ce) || *ce != tc.want {
				t.Errorf("Verify: got %v, want %v", err, &tc.want)
			}
		})
	}
	t.Run("everything deleted by hand", func(t *testing.T) {
		l := openTest(t, vfs.NewMem(), Options{})
		defer closeTest(t, l)
		appendAt(t, l, 0, 1, 2)
		var lo, hi [9]byte
		l.db.DeleteRange(recordKey(&lo, 0), recordKey(&hi, 4), pebble.Sync)
		var ce *ChainError
		if err := l.Verify(); !errors.As(err, &ce) || ce.Kind != BreakSeqGap {
			t.Errorf("Verify: got %v, want a seq gap", err)
		}
	})
}

// TestRunRetention prunes at once, then every interval, and returns when
// its context ends.
func TestRunRetention(t *testing.T) {
	now := hour0.Add(100 * time.Hour)
	l := openTest(t, vfs.NewMem(), Options{Now: func() time.Time { return now }})
	defer closeTest(t, l)
	appendAt(t, l, 0, 1, 99)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.RunRetention(ctx, 10*time.Hour, time.Millisecond) }()
	waitFor(t, "retention", func() bool { return l.Stats().Pruned == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunRetention: got %v, want nil", err)
	}
	if diff := cmp.Diff([]uint64{3}, present(t, l)); diff != "" {
		t.Errorf("records left (-want +got):\n%s", diff)
	}
}

// bulky returns a record with n bytes of arguments that compress poorly,
// so that the spool's size follows the records.
func bulky(rng *rand.Rand, n int) *Record {
	r := activity(0)
	var b strings.Builder
	b.WriteString(`{"blob":"`)
	const digits = "0123456789abcdef"
	for range n {
		b.WriteByte(digits[rng.IntN(16)])
	}
	b.WriteString(`"}`)
	r.Arguments = []byte(b.String())
	r.Time = hour0
	return r
}

// smallMemtable keeps the write-ahead log files (and the ones kept for
// reuse) small beside the records, as they are in a spool of gigabytes.
func smallMemtable(o *pebble.Options) { o.MemTableSize = 256 << 10 }

// waitFor polls cond until it holds, for at most 10 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestDropOldestShipped fills a 2 MiB spool: with nothing shipped it stays
// full and keeps every record; once records are shipped, the Log deletes
// the oldest of them, whatever their age, until it is under the limit, and
// the chain still verifies.
func TestDropOldestShipped(t *testing.T) {
	const maxSpool = 2 << 20
	rng := rand.New(rand.NewPCG(5, 6))
	l := openTest(t, vfs.NewMem(), Options{MaxSpool: maxSpool, WhenFull: DropOldestShipped, Shipping: true, pebble: smallMemtable})
	defer closeTest(t, l)
	for range 1500 { // 3 MB of arguments
		if _, err := l.Append(bulky(rng, 2000)); err != nil {
			t.Fatal(err)
		}
	}
	l.db.Flush()
	l.wake()
	waitFor(t, "the spool to be full", l.Full)
	time.Sleep(3 * refreshEvery)
	if st := l.Stats(); !st.Full || st.Dropped != 0 || len(present(t, l)) != 1500 {
		t.Fatalf("nothing shipped: got %+v, %d records; want full, nothing dropped", st, len(present(t, l)))
	}

	if err := l.markShipped(1000); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "room", func() bool { return !l.Full() })
	st := l.Stats()
	left := present(t, l)
	t.Logf("after dropping: %+v, records %d to %d", st, left[0], left[len(left)-1])
	if st.SpoolBytes >= maxSpool || st.Dropped == 0 || st.Dropped > 1000 {
		t.Errorf("got %+v, want under %d bytes, 1 to 1000 dropped", st, maxSpool)
	}
	if uint64(left[0]) != st.Dropped+1 || left[len(left)-1] != 1500 {
		t.Errorf("records left: %d to %d, want %d to 1500", left[0], left[len(left)-1], st.Dropped+1)
	}
	if err := l.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// TestRejectFullUntilPruned: in Reject mode the Log deletes nothing
// itself; Full holds until retention frees the space.
func TestRejectFullUntilPruned(t *testing.T) {
	const maxSpool = 2 << 20
	rng := rand.New(rand.NewPCG(7, 8))
	l := openTest(t, vfs.NewMem(), Options{MaxSpool: maxSpool, pebble: smallMemtable, Now: func() time.Time { return hour0 }})
	defer closeTest(t, l)
	for range 1500 {
		if _, err := l.Append(bulky(rng, 2000)); err != nil {
			t.Fatal(err)
		}
	}
	l.db.Flush()
	l.wake()
	waitFor(t, "the spool to be full", l.Full)
	if n, err := l.Prune(hour0.Add(time.Hour)); n != 1500 || err != nil {
		t.Fatalf("Prune: got %d, %v; want 1500", n, err)
	}
	waitFor(t, "room", func() bool { return !l.Full() })
	if st := l.Stats(); st.SpoolBytes >= maxSpool || st.Pruned != 1500 {
		t.Errorf("after Prune: got %+v, want under %d bytes", st, maxSpool)
	}
}

// TestFullIsCheap: the proxy calls Full on every tools/call.
func TestFullIsCheap(t *testing.T) {
	l := openTest(t, vfs.NewMem(), Options{MaxSpool: 1})
	defer closeTest(t, l)
	if n := testing.AllocsPerRun(1000, func() { l.Full() }); n != 0 {
		t.Errorf("got %v allocs per Full, want 0", n)
	}
}

func BenchmarkFull(b *testing.B) {
	l := openTest(b, vfs.NewMem(), Options{MaxSpool: 1 << 30})
	defer closeTest(b, l)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Full()
		}
	})
}

// BenchmarkFullBaselineMetrics is what Full cost when it read Pebble's
// metrics on every call.
func BenchmarkFullBaselineMetrics(b *testing.B) {
	l := openTest(b, vfs.NewMem(), Options{MaxSpool: 1 << 30})
	defer closeTest(b, l)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.SpoolBytes()
		}
	})
}

// TestPruneStopsAtMalformedRecord: retention never deletes past a record
// it cannot read, which would hide the damage from Verify.
func TestPruneStopsAtMalformedRecord(t *testing.T) {
	l := openTest(t, vfs.NewMem(), Options{})
	defer closeTest(t, l)
	appendAt(t, l, 0, 1, 2, 3)
	if err := l.db.Set(key(3), []byte("{"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Prune(hour0.Add(10 * time.Hour)); n != 2 || err != nil {
		t.Errorf("Prune: got %d, %v; want 2", n, err)
	}
	var ce *ChainError
	if err := l.Verify(); !errors.As(err, &ce) || *ce != (ChainError{Seq: 3, Kind: BreakMalformed}) {
		t.Errorf("Verify: got %v, want record 3 malformed", err)
	}
}
