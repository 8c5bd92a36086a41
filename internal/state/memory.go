package state

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory is an in-memory Store for unit tests of other packages. It keeps
// the same record format and expiry rules as Pebble, and nothing survives
// the process. It is safe for concurrent use.
type Memory struct {
	now func() time.Time // the clock that sets and checks expiry

	mu     sync.Mutex        // guards the fields below
	data   map[string][]byte // key -> record (expiry, value)
	closed bool
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory {
	return &Memory{now: time.Now, data: make(map[string][]byte)}
}

// NewMemoryWithClock returns an empty in-memory Store whose expiry follows
// now instead of the wall clock, for tests that step time.
func NewMemoryWithClock(now func() time.Time) *Memory {
	m := NewMemory()
	m.now = now
	return m
}

// getLocked returns the live value of key; it removes an expired record.
func (m *Memory) getLocked(key string) ([]byte, bool) {
	rec, ok := m.data[key]
	if !ok {
		return nil, false
	}
	expiry, value, _ := decodeRecord(rec)
	if !live(expiry, m.now()) {
		delete(m.data, key)
		return nil, false
	}
	return value, true
}

// Get implements Store.
func (m *Memory) Get(key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	value, ok := m.getLocked(key)
	if !ok {
		return nil, ErrNotFound
	}
	return slices.Clone(value), nil
}

// Put implements Store.
func (m *Memory) Put(key string, value []byte, ttl time.Duration) error {
	return m.write(key, false, nil, value, ttl)
}

// CompareAndSwap implements Store.
func (m *Memory) CompareAndSwap(key string, old, value []byte, ttl time.Duration) error {
	return m.write(key, true, old, value, ttl)
}

// write stores value under key; when compare is set, only if the current
// value matches old.
func (m *Memory) write(key string, compare bool, old, value []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	expiry, err := expiryOf(m.now(), ttl)
	if err != nil {
		return err
	}
	if compare {
		if cur, present := m.getLocked(key); !matches(present, cur, old) {
			return ErrConflict
		}
	}
	m.data[key] = encodeRecord(expiry, value)
	return nil
}

// Delete implements Store.
func (m *Memory) Delete(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	delete(m.data, key)
	return nil
}

// Scan implements Store. It calls fn without holding the lock, over the
// live keys present when Scan started.
func (m *Memory) Scan(prefix string, fn func(key string, value []byte) bool) error {
	type kv struct {
		key   string
		value []byte
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	var found []kv
	for key := range m.data {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		if value, ok := m.getLocked(key); ok {
			found = append(found, kv{key, slices.Clone(value)})
		}
	}
	m.mu.Unlock()
	slices.SortFunc(found, func(a, b kv) int { return strings.Compare(a.key, b.key) })
	for _, e := range found {
		if !fn(e.key, e.value) {
			break
		}
	}
	return nil
}

// Close implements Store; the data is dropped.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	m.data = nil
	return nil
}
