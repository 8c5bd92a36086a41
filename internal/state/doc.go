// Package state is the small key-value interface behind which gateway nodes
// keep what they share (DESIGN.md section 10): OAuth client registrations,
// refresh-token families, consent, pending logins, and later approval
// requests, grants and revocations. Packages that need shared state
// (identity, access) are written against Store only.
//
// Two implementations exist now: Pebble, an embedded store under
// server.data_dir (the single-node default), and Memory, for unit tests of
// other packages. An etcd backend for cluster mode is a later step; it will
// implement CompareAndSwap with an etcd transaction (compare the value,
// then put) instead of the process-local mutex used here.
//
// # Guarantees
//
//   - Put, CompareAndSwap and Delete are durable when they return: Pebble
//     syncs its write-ahead log before answering.
//   - CompareAndSwap is atomic with respect to every other write of the same
//     Store value: all writes of one Store serialise on one mutex. Two
//     processes must never open the same directory (Pebble locks it).
//   - A key written with a ttl reads as absent (ErrNotFound; skipped by Scan;
//     "absent" for CompareAndSwap with old == nil) from the moment its expiry
//     passes. Expired keys are removed lazily, when Get, Scan or
//     CompareAndSwap meets them; a periodic Scan of "" therefore sweeps the
//     whole store.
//
// # Concurrency and buffers
//
// Both implementations are safe for concurrent use. Values passed in are
// copied before the call returns; values returned (by Get, and to Scan's
// callback) are fresh copies the caller owns. Scan calls its callback
// without holding a lock, so the callback may write to the store; Memory
// calls it over a snapshot taken when Scan started, Pebble over batches of
// 256 records read in turn (bounding its memory on large prefixes), so a
// record written during a Scan may or may not be seen by it.
//
// # Record format
//
// Each stored value is the caller's value behind its expiry:
//
//	+------------------------------+-------------------+
//	| expiry                       | value             |
//	| uint64 BE, unix nanoseconds  | caller's bytes    |
//	| 0: never expires             |                   |
//	+------------------------------+-------------------+
//
// Keys are the caller's strings, stored as their bytes; Scan orders them
// bytewise. The ttl is converted to an absolute expiry with the local clock
// at the time of the write.
package state
