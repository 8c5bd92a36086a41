package state

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/mcpgw/mcpgw/internal/pebblelog"
)

// Pebble is the embedded Store: a Pebble database in one directory (by
// default under server.data_dir). It is safe for concurrent use. Every write
// is synced to Pebble's write-ahead log before it returns, and all writes
// serialise on one mutex so that CompareAndSwap is atomic; reads share it.
type Pebble struct {
	db  *pebble.DB
	now func() time.Time // the clock that sets and checks expiry
	log *slog.Logger

	// mu guards closed and db against Close; writers hold it exclusively
	// (which makes CompareAndSwap atomic), readers share it.
	mu     sync.RWMutex
	closed bool
}

var _ Store = (*Pebble)(nil)

// OpenPebble opens (creating when needed) the store in dir. Pebble's own
// log messages and background errors go to log, with component=state.
func OpenPebble(dir string, log *slog.Logger) (*Pebble, error) {
	return openPebble(dir, vfs.Default, log)
}

func openPebble(dir string, fs vfs.FS, log *slog.Logger) (*Pebble, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "state")
	db, err := pebble.Open(dir, &pebble.Options{
		FS:     fs,
		Logger: pebblelog.New(log, "state"),
	})
	if err != nil {
		return nil, fmt.Errorf("state: cannot open store in %s: %w", dir, err)
	}
	return &Pebble{db: db, now: time.Now, log: log}, nil
}

// get returns the record stored under key (nil, false when absent).
func (p *Pebble) get(key string) ([]byte, bool, error) {
	rec, closer, err := p.db.Get([]byte(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state: cannot read: %w", err)
	}
	rec = slices.Clone(rec)
	if err := closer.Close(); err != nil {
		return nil, false, fmt.Errorf("state: cannot read: %w", err)
	}
	return rec, true, nil
}

// liveValue returns the value of key, or false when it is absent or expired.
func (p *Pebble) liveValue(key string) ([]byte, bool, error) {
	rec, ok, err := p.get(key)
	if !ok || err != nil {
		return nil, false, err
	}
	expiry, value, ok := decodeRecord(rec)
	if !ok {
		return nil, false, fmt.Errorf("state: record of %d bytes is too short", len(rec))
	}
	if !live(expiry, p.now()) {
		return nil, false, nil
	}
	return value, true, nil
}

// Get implements Store. An expired key is removed on the way.
func (p *Pebble) Get(key string) ([]byte, error) {
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return nil, ErrClosed
	}
	value, ok, err := p.liveValue(key)
	p.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	if !ok {
		p.sweep(key)
		return nil, ErrNotFound
	}
	return value, nil
}

// sweep deletes key if it is still expired. Failures are only logged: the
// key reads as absent either way.
func (p *Pebble) sweep(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	rec, ok, err := p.get(key)
	if !ok || err != nil {
		return
	}
	if expiry, _, ok := decodeRecord(rec); ok && live(expiry, p.now()) {
		return // rewritten since we looked
	}
	if err := p.db.Delete([]byte(key), pebble.NoSync); err != nil {
		p.log.Warn("cannot remove an expired key", "err", err)
	}
}

// Put implements Store.
func (p *Pebble) Put(key string, value []byte, ttl time.Duration) error {
	return p.write(key, false, nil, value, ttl)
}

// CompareAndSwap implements Store. The read, comparison and write happen
// under the store's write mutex (the etcd backend will use a transaction).
func (p *Pebble) CompareAndSwap(key string, old, value []byte, ttl time.Duration) error {
	return p.write(key, true, old, value, ttl)
}

// write stores value under key and syncs; when compare is set, only if the
// current value matches old.
func (p *Pebble) write(key string, compare bool, old, value []byte, ttl time.Duration) error {
	expiry, err := expiryOf(p.now(), ttl)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if compare {
		cur, present, err := p.liveValue(key)
		if err != nil {
			return err
		}
		if !matches(present, cur, old) {
			return ErrConflict
		}
	}
	if err := p.db.Set([]byte(key), encodeRecord(expiry, value), pebble.Sync); err != nil {
		return fmt.Errorf("state: cannot write: %w", err)
	}
	return nil
}

// Delete implements Store.
func (p *Pebble) Delete(key string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if err := p.db.Delete([]byte(key), pebble.Sync); err != nil {
		return fmt.Errorf("state: cannot delete: %w", err)
	}
	return nil
}

// scanBatch is how many live records Scan reads under the read lock
// before it calls back for them, which bounds its memory on large
// prefixes (a sweep of every refresh token).
const scanBatch = 256

// Scan implements Store. It reads the live records in batches of
// scanBatch (a Pebble iterator each, under the read lock), and calls fn for
// a batch without holding any lock, so fn may write to the store; a
// record written during a Scan, ahead of where it has read, may or may not
// be seen. Expired keys it passes are removed.
func (p *Pebble) Scan(prefix string, fn func(key string, value []byte) bool) error {
	var lower []byte // nil for "": Pebble's invariant checks (on under -race) index a non-nil bound
	if prefix != "" {
		lower = []byte(prefix)
	}
	upper := prefixEnd(lower)
	for {
		batch, expired, next, err := p.scanBatch(lower, upper)
		if err != nil {
			return err
		}
		for _, key := range expired {
			p.sweep(key)
		}
		for _, e := range batch {
			if !fn(e.key, e.value) {
				return nil
			}
		}
		if next == nil {
			return nil
		}
		lower = next
	}
}

type scanned struct {
	key   string
	value []byte
}

// scanBatch reads up to scanBatch live records from lower (inclusive) to
// upper (exclusive; nil: no bound). next is where the following batch
// starts, nil when the range is done.
func (p *Pebble) scanBatch(lower, upper []byte) (batch []scanned, expired []string, next []byte, err error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return nil, nil, nil, ErrClosed
	}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("state: cannot scan: %w", err)
	}
	now := p.now()
	for ok := it.First(); ok; ok = it.Next() {
		if len(batch) == scanBatch {
			// The smallest key after the last one read.
			next = append([]byte(batch[len(batch)-1].key), 0)
			break
		}
		rec, verr := it.ValueAndErr()
		if verr != nil {
			it.Close()
			return nil, nil, nil, fmt.Errorf("state: cannot scan: %w", verr)
		}
		expiry, value, ok := decodeRecord(rec)
		switch {
		case !ok:
		case !live(expiry, now):
			expired = append(expired, string(it.Key()))
		default:
			batch = append(batch, scanned{string(it.Key()), slices.Clone(value)})
		}
	}
	err = it.Error()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("state: cannot scan: %w", err)
	}
	return batch, expired, next, nil
}

// Close implements Store. It flushes nothing that is not already durable.
func (p *Pebble) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.closed = true
	if err := p.db.Close(); err != nil {
		return fmt.Errorf("state: cannot close store: %w", err)
	}
	return nil
}
