package auditlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// WhenFull is what the Log does when the spool reaches Options.MaxSpool
// (audit.when_full).
type WhenFull int

const (
	// Reject: nothing; Full reports true and the caller refuses new tool
	// calls (503, fail closed) until retention or shipping frees space.
	Reject WhenFull = iota
	// DropOldestShipped: the Log deletes the oldest shipped records,
	// whatever their age, until the spool is under MaxSpool again, and
	// compacts them away. Full stays true while nothing shipped is left
	// to delete.
	DropOldestShipped
)

func (w WhenFull) String() string {
	if w == DropOldestShipped {
		return "drop_oldest_shipped"
	}
	return "reject"
}

const (
	// refreshEvery bounds how often the maintainer reads Pebble's metrics.
	refreshEvery = 100 * time.Millisecond
	// dropTarget is the fill, in percent of MaxSpool, that DropOldestShipped
	// frees down to, so that it does not run again at the next batch.
	dropTarget = 90
)

// Full reports whether the spool has reached Options.MaxSpool, as of the
// last refresh: the maintainer reads Pebble's metrics after batches are
// written and after deletions (at most every 100 ms), and every 100 ms
// while the spool is full. It is one atomic
// load, for the proxy to call on every tools/call.
func (l *Log) Full() bool { return l.full.Load() }

// wake asks the maintainer for a refresh, without waiting.
func (l *Log) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// maintain is the maintainer, a goroutine owned by the Log and stopped by
// Close: when woken (after batches and deletions), and every 100 ms while
// the spool is full, it refreshes the spool size and Full, and with
// DropOldestShipped makes room.
func (l *Log) maintain() {
	defer close(l.maintDone)
	t := time.NewTimer(refreshEvery)
	for {
		if !l.full.Load() {
			select {
			case <-l.kick:
			case <-l.ctx.Done():
				return
			}
		}
		settled := l.refreshSize()
		// Drop only once the files of the last deletion are gone: until
		// then the size overstates what the records take.
		if l.dropFull && settled && l.full.Load() {
			l.dropShipped()
		}
		t.Reset(refreshEvery)
		select {
		case <-t.C:
		case <-l.ctx.Done():
			return
		}
	}
}

// refreshSize reads the spool's disk usage into spoolBytes and full. It
// reports whether the usage is settled: no compaction running, no
// obsolete file waiting for deletion.
func (l *Log) refreshSize() (settled bool) {
	l.withDB(func(db, idb *pebble.DB) error {
		m, im := db.Metrics(), idb.Metrics()
		l.setSize(int64(m.DiskSpaceUsage() + im.DiskSpaceUsage()))
		settled = m.Compact.InProgressBytes == 0 && m.Table.Local.ObsoleteSize == 0 && m.Table.Local.ZombieSize == 0 &&
			m.BlobFiles.Local.ObsoleteSize == 0 && m.BlobFiles.Local.ZombieSize == 0
		return nil
	})
	return settled
}

func (l *Log) setSize(n int64) {
	l.spoolBytes.Store(n)
	l.full.Store(l.maxSpool > 0 && n >= l.maxSpool)
}

// shippedLimit returns the last record that deletions may take: the
// shipped position, or with shipping off the head (every record counts as
// shipped).
func (l *Log) shippedLimit() uint64 {
	if l.shipping {
		return l.shipped.Load()
	}
	seq, _ := l.Last()
	return seq
}

// markShipped durably moves the shipped position to seq.
func (l *Log) markShipped(seq uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], seq)
	if err := l.withDB(func(_, idb *pebble.DB) error { return idb.Set(keyShipped, v[:], pebble.Sync) }); err != nil {
		return fmt.Errorf("auditlog: cannot store the shipped position: %w", err)
	}
	l.shipped.Store(seq)
	if l.dropFull && l.full.Load() {
		l.wake() // there may be something to drop now
	}
	return nil
}

// Prune deletes the records older than before that are shipped (with
// shipping off, every record counts as shipped): the longest prefix of the
// spool whose records all qualify, so that the chain keeps no hole. It
// records the last deleted record as the chain's anchor (Verify checks the
// first remaining record against it), compacts the deleted range so that
// the disk space is freed, and returns how many records it deleted.
func (l *Log) Prune(before time.Time) (int, error) {
	l.pruneMu.Lock()
	defer l.pruneMu.Unlock()
	limit := l.shippedLimit()
	var (
		n       int
		last    uint64
		hash    Hash
		badLine bool
	)
	err := l.ScanJSON(0, func(seq uint64, line []byte) bool {
		if seq > limit {
			return false
		}
		t, tok := recordTime(line)
		h, hok := recordHash(line)
		if !tok || !hok {
			badLine = true
			return false
		}
		if !t.Before(before) {
			return false
		}
		n, last, hash = n+1, seq, h
		return true
	})
	if badLine {
		// Deleting past a record we cannot read would hide it.
		l.log.Error("audit retention stops at a malformed record; run verify", "after_seq", last)
	}
	if err == nil && n > 0 {
		err = l.deleteThrough(last, &hash)
	}
	if err != nil {
		return 0, err
	}
	l.pruned.Add(uint64(n))
	return n, nil
}

// RunRetention prunes the records older than retention (by the Log's
// clock) every interval (an hour when it is not positive), and once at the
// start, until ctx ends; it returns nil then, or ErrClosed when the Log
// is closed under it. A retention of 0 deletes records once they are
// shipped. Errors are logged, and the next round tries again. The caller
// owns the goroutine.
func (l *Log) RunRetention(ctx context.Context, retention, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := l.Prune(l.now().Add(-retention))
		switch {
		case errors.Is(err, ErrClosed):
			return err
		case err != nil:
			l.log.Error("audit retention failed", "err", err)
		case n > 0:
			l.log.Info("audit retention deleted records", "records", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// dropShipped deletes the oldest shipped records to bring the spool under
// dropTarget percent of MaxSpool.
func (l *Log) dropShipped() {
	used := l.spoolBytes.Load()
	excess := used - l.maxSpool*dropTarget/100
	if excess <= 0 || used <= 0 {
		return
	}
	l.pruneMu.Lock()
	defer l.pruneMu.Unlock()
	limit := l.shippedLimit()
	head, _ := l.Last()
	var first, last uint64
	var hash Hash
	err := l.withDB(func(db, _ *pebble.DB) error {
		var lo, hi [9]byte
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: recordKey(&lo, 0), UpperBound: recordKey(&hi, limit+1)})
		if err != nil {
			return err
		}
		defer it.Close()
		if !it.First() {
			return it.Error()
		}
		first = binary.BigEndian.Uint64(it.Key()[1:])
		// Records take the spool's space in proportion to their number,
		// near enough: what the estimate misses (write-ahead log,
		// overheads), the next round takes.
		want := max(1, uint64(float64(head-first+1)*float64(excess)/float64(used)+0.5))
		if !it.SeekLT(recordKey(&hi, min(limit, first+want-1)+1)) {
			return it.Error()
		}
		last = binary.BigEndian.Uint64(it.Key()[1:])
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if h, ok := recordHash(v); ok {
			hash = h
			return nil
		}
		return fmt.Errorf("record %d is malformed; run verify", last)
	})
	if err == nil && last > 0 {
		err = l.deleteThrough(last, &hash)
	}
	if err != nil {
		l.log.Error("cannot drop shipped records from a full spool", "err", err)
		return
	}
	if last > 0 {
		n := last - first + 1
		l.dropped.Add(n)
		l.log.Warn("audit spool full: dropped the oldest shipped records", "records", n, "through_seq", last)
	}
}

// deleteThrough deletes the records from the oldest present through
// last, whose hash is hash, then compacts them away and wakes the
// maintainer to measure. The anchor moves to last first, with the index
// entries of those records, so that a crash in between leaves records at
// or below the anchor, which Verify and the next deletion pass over, and
// never a hole. The caller holds pruneMu.
func (l *Log) deleteThrough(last uint64, hash *Hash) error {
	var lo, hi [9]byte
	recordKey(&lo, 0)
	recordKey(&hi, last+1)
	return l.withDB(func(db, idb *pebble.DB) error {
		ib := idb.NewBatch()
		defer ib.Close()
		err := ib.Set(keyAnchor, seqHash(last, hash), nil)
		if err == nil {
			err = pruneIndex(idb, ib, last+1)
		}
		if err == nil {
			err = ib.Commit(pebble.Sync)
		}
		if err != nil {
			return fmt.Errorf("auditlog: cannot delete records: %w", err)
		}
		b := db.NewBatch()
		defer b.Close()
		if err := b.DeleteRange(lo[:], hi[:], nil); err != nil {
			return fmt.Errorf("auditlog: cannot delete records: %w", err)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return fmt.Errorf("auditlog: cannot delete records: %w", err)
		}
		// Deleted keys take space until a compaction drops them.
		if err := db.Compact(l.ctx, lo[:], hi[:], false); err != nil && l.ctx.Err() == nil {
			l.log.Warn("cannot compact deleted audit records", "err", err)
		}
		l.wake()
		return nil
	})
}

// recordTime returns the time member of a stored record. The members
// before it (id, seq, prev_hash, hash) hold no quote, so the first
// `"time":"` is the member.
func recordTime(line []byte) (time.Time, bool) {
	const member = `,"time":"`
	i := bytes.Index(line, []byte(member))
	if i < 0 {
		return time.Time{}, false
	}
	rest := line[i+len(member):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t, err == nil
}

// recordHash returns the hash member of a stored record.
func recordHash(line []byte) (Hash, bool) {
	return hexMember(line, hashMember)
}

// hexMember decodes the 64 hex digits after the first occurrence of
// member, which must come before any string member that could hold it.
func hexMember(line []byte, member string) (Hash, bool) {
	var h Hash
	i := bytes.Index(line, []byte(member))
	if i < 0 || len(line) < i+len(member)+2*len(h) {
		return h, false
	}
	_, err := hex.Decode(h[:], line[i+len(member):i+len(member)+2*len(h)])
	return h, err == nil
}
