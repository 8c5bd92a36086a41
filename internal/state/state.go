package state

import (
	"encoding/binary"
	"errors"
	"time"
)

// ErrNotFound is returned by Get for a key that is absent or expired.
var ErrNotFound = errors.New("state: not found")

// ErrConflict is returned by CompareAndSwap when the current value is not
// the expected one.
var ErrConflict = errors.New("state: conflict")

// ErrClosed is returned by every method of a Store after Close.
var ErrClosed = errors.New("state: store is closed")

// Store is the shared state of gateway nodes.
//
// Store is safe for concurrent use. Values passed in are copied; values
// returned are the caller's.
type Store interface {
	// Get returns the value of key, or ErrNotFound for a key that is absent
	// or expired.
	Get(key string) ([]byte, error)
	// Put stores value under key. A ttl of 0 means no expiry; a negative ttl
	// is refused. It is durable (fsync) when Put returns.
	Put(key string, value []byte, ttl time.Duration) error
	// CompareAndSwap stores value if the current value equals old (old ==
	// nil: the key must be absent or expired); else ErrConflict. A non-nil
	// empty old matches a present empty value only.
	CompareAndSwap(key string, old, value []byte, ttl time.Duration) error
	// Delete removes key; deleting an absent key is not an error.
	Delete(key string) error
	// Scan calls fn for every live key with the prefix, in key order, until
	// fn returns false.
	Scan(prefix string, fn func(key string, value []byte) bool) error
	// Close releases the store. Methods called after Close return ErrClosed.
	Close() error
}

const expiryLen = 8

var errNegativeTTL = errors.New("state: negative ttl")

// expiryOf returns the absolute expiry for ttl written at now (0: never).
func expiryOf(now time.Time, ttl time.Duration) (uint64, error) {
	if ttl < 0 {
		return 0, errNegativeTTL
	}
	if ttl == 0 {
		return 0, nil
	}
	return uint64(now.Add(ttl).UnixNano()), nil
}

// encodeRecord returns expiry followed by value in a new slice.
func encodeRecord(expiry uint64, value []byte) []byte {
	rec := make([]byte, expiryLen+len(value))
	binary.BigEndian.PutUint64(rec, expiry)
	copy(rec[expiryLen:], value)
	return rec
}

// decodeRecord splits a stored record. ok is false for a record too short
// to carry an expiry (never written by this package).
func decodeRecord(rec []byte) (expiry uint64, value []byte, ok bool) {
	if len(rec) < expiryLen {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(rec), rec[expiryLen:], true
}

// live reports whether a record with expiry is readable at now.
func live(expiry uint64, now time.Time) bool {
	return expiry == 0 || uint64(now.UnixNano()) < expiry
}

// matches reports whether the current value (present tells whether it
// exists and is live) is what CompareAndSwap expects.
func matches(present bool, cur, old []byte) bool {
	if old == nil {
		return !present
	}
	return present && string(cur) == string(old)
}

// prefixEnd returns the smallest key greater than every key with prefix,
// or nil when there is none (prefix empty or all 0xff).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
