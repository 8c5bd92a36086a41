package policycache

import (
	"math/bits"
	"runtime"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/ristretto/v2"
)

// maxCachedName bounds the names the cache keeps: a longer name (only an
// attacker or a broken client sends one) is evaluated every time, so that
// cache memory stays bounded by entries × this size.
const maxCachedName = 512

// readerShards spreads the in-flight counters over cache lines; a power of
// two.
const readerShards = 64

// cacheEntry is one cached name-level verdict with the full key it was
// computed for: a hit is accepted only if the key matches, so a 64-bit hash
// collision (chosen or not) is a miss, never another subject's decision.
// Entries are immutable once stored.
type cacheEntry struct {
	// key material
	app     *AppPolicy
	subject string // Subject.Key
	name    string
	kind    Kind

	// fixed is set when the decision does not depend on arguments; then
	// decision is the answer. Otherwise verdict is resolved per call.
	fixed    bool
	visible  bool
	decision Decision
	verdict  nameVerdict
}

// decisionCache wraps a ristretto cache so that it can be closed while
// other goroutines use it. ristretto's Close must not race with Get or Set
// (Set would send on a closed channel), so every use is bracketed by a
// counter in one of readerShards shards (chosen by the key hash, to spread
// contention) and close waits until all shards are empty after setting
// closed. With Go's sequentially consistent atomics either close sees the
// reader's increment and waits, or the reader sees closed and stays out.
type decisionCache struct {
	seed    uint64
	closed  atomic.Bool
	readers [readerShards]paddedCounter
	rc      *ristretto.Cache[uint64, *cacheEntry]
}

type paddedCounter struct {
	n atomic.Int64
	// hits and misses count lookups for metrics (Policy.CacheStats), in the
	// shard's line that entering the cache writes anyway.
	hits, misses atomic.Uint64
	_            [104]byte // keep each counter on its own pair of cache lines
}

func newDecisionCache(entries int64, seed uint64) (*decisionCache, error) {
	rc, err := ristretto.NewCache(&ristretto.Config[uint64, *cacheEntry]{
		NumCounters:        entries * 10, // ristretto's advice: 10× the entries
		MaxCost:            entries,      // every entry costs 1
		BufferItems:        64,
		IgnoreInternalCost: true,
		// The key already is a hash; ristretto's default would hash it again
		// through a type switch. The conflict hash is unused: entries carry
		// their full key.
		KeyToHash: func(h uint64) (uint64, uint64) { return h, 0 },
	})
	if err != nil {
		return nil, err
	}
	return &decisionCache{seed: seed, rc: rc}, nil
}

// hash computes the cache key of (app, kind, subject, name): one-shot
// xxhash of the subject key and of the name, combined with the app, kind
// and a random per-Policy seed by multiply-fold mixing. Equal tuples get
// equal hashes; a collision costs at most a miss, because every hit is
// verified against the tuple stored in the entry, and the seed keeps
// collisions from being precomputed to make entries evict each other.
// Hashing the parts separately avoids copying them into one buffer, which
// costs more than the hashing itself (the streaming Digest did).
func (c *decisionCache) hash(app uint64, k Kind, subject string, name []byte) uint64 {
	h := mix(c.seed^(app<<8|uint64(k)), xxhash.Sum64String(subject))
	return mix(h, xxhash.Sum64(name))
}

// mix folds the 128-bit product of its inputs, each first xored with an odd
// constant so that zero inputs still mix (the wyhash construction).
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a^0xa0761d6478bd642f, b^0xe7037ed1a0b428db)
	return hi ^ lo
}

// enter registers a use of the cache, or returns nil when it is closed.
// The first check keeps callers arriving after close off the counters, so
// close only waits for calls already inside.
func (c *decisionCache) enter(h uint64) *atomic.Int64 {
	if c.closed.Load() {
		return nil
	}
	n := &c.readers[h&(readerShards-1)].n
	n.Add(1)
	if c.closed.Load() {
		n.Add(-1)
		return nil
	}
	return n
}

func (c *decisionCache) get(h uint64) (*cacheEntry, bool) {
	n := c.enter(h)
	if n == nil {
		return nil, false
	}
	e, ok := c.rc.Get(h)
	n.Add(-1)
	return e, ok
}

func (c *decisionCache) set(h uint64, e *cacheEntry) {
	if n := c.enter(h); n != nil {
		c.rc.Set(h, e, 1)
		n.Add(-1)
	}
}

// CacheStats returns the decision cache's hits and misses since Compile:
// lookups of decisions that go through the cache (see chooseCaching), a
// hit being an entry found for exactly this application, kind, subject and
// name. Zero when the cache is disabled. Safe for concurrent use.
func (p *Policy) CacheStats() (hits, misses uint64) {
	if p == nil || p.cache == nil {
		return 0, 0
	}
	for i := range p.cache.readers {
		hits += p.cache.readers[i].hits.Load()
		misses += p.cache.readers[i].misses.Load()
	}
	return hits, misses
}

// wait blocks until buffered Sets are applied (ristretto's Set is
// asynchronous); for tests.
func (c *decisionCache) wait() {
	if n := c.enter(0); n != nil {
		c.rc.Wait()
		n.Add(-1)
	}
}

func (c *decisionCache) close() {
	if c.closed.Swap(true) {
		return
	}
	for i := range c.readers {
		for c.readers[i].n.Load() != 0 {
			runtime.Gosched()
		}
	}
	c.rc.Close()
}

// cacheEntry returns the cached verdict for (a, s, k, name), computing and
// storing it on a miss, or nil when the cache is not used: disabled or
// closed, not worth it for this kind (see chooseCaching), a subject without
// Key, or an overlong name.
func (a *AppPolicy) cacheEntry(s *Subject, k Kind, name []byte) *cacheEntry {
	c := a.policy.cache
	if c == nil || !a.useCache[k] || s.Key == "" || len(name) > maxCachedName {
		return nil
	}
	h := c.hash(a.index, k, s.Key, name)
	shard := &c.readers[h&(readerShards-1)]
	if e, ok := c.get(h); ok && e.app == a && e.kind == k && e.subject == s.Key && e.name == string(name) {
		shard.hits.Add(1)
		return e
	}
	shard.misses.Add(1)
	// Never store under a key that does not describe s: a caller passing a
	// stale or wrong Key would otherwise poison the cache for the subject
	// that Key belongs to.
	if s.Key != SubjectKey(s.User, s.Groups, s.Anonymous) {
		return nil
	}
	e := &cacheEntry{app: a, subject: s.Key, name: string(name), kind: k}
	e.verdict = a.matchName(s, k, name, nil)
	e.visible = a.visible(&e.verdict)
	if !a.argsMatter(&e.verdict, k) {
		e.fixed = true
		e.decision = a.decide(&e.verdict, k, nil)
	}
	c.set(h, e)
	return e
}

// cheapRuleLimit: for an application with at most this many rules and no
// residual regexp for a kind, that kind is evaluated without the cache.
// BenchmarkCacheBreakEven (2-CPU VM, quiet run; every rule names the
// subject and has 3 allow and 1 deny pattern): a hit costs 63 ns and ~1 B;
// evaluation costs 80 ns for 1 rule, 110 for 2, 145 for 3, 180 for 4, 360
// for 8, with 0 B. A miss costs evaluation plus ~1.2 µs and ~600 B (hash,
// SubjectKey check, entry, Set), so the cache only pays at hit ratios above
// 98.6% for 1 rule and 96% for 2, against 94% for 3 and 88% for 8. Up to 2
// rules the few ns a hit could save are not worth a miss or an allocation.
// Any regexp costs 100 ns to several µs per call, so it always caches.
const cheapRuleLimit = 2

// chooseCaching decides per kind whether the cache pays for itself.
func (a *AppPolicy) chooseCaching() {
	for k := range numKinds {
		cache := len(a.rules) > cheapRuleLimit
		for i := range a.rules {
			r := &a.rules[i]
			cache = cache || r.allow[k].re != nil || r.deny[k].re != nil
		}
		a.useCache[k] = cache
	}
}
