package auditlog

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/mcpgw/mcpgw/internal/pebblelog"
)

// Durability says when Append returns.
type Durability int

const (
	// Sync: Append returns once the record is in Pebble's write-ahead log
	// and fsynced (group commit: one fsync for all the records waiting).
	Sync Durability = iota
	// Async: Append returns once the record is queued; the committer
	// writes it without fsync. A crash can lose the records of the last
	// moments, never a record in the middle of the chain.
	Async
)

func (d Durability) String() string {
	if d == Async {
		return "async"
	}
	return "sync"
}

// Options configure a Log. The zero value is Sync with a generated node id.
type Options struct {
	Durability Durability
	// NodeID names this gateway in record ids ("<node>-<seq>"): 1 to 64
	// of A-Z a-z 0-9 . _ -. Empty: the id stored in the spool, or a new
	// random one the first time.
	NodeID string
	// MaxSpool is the spool size, in bytes, at which Full reports true;
	// 0 means no limit. Appends are never refused by the Log: with
	// WhenFull Reject the caller refuses new work while Full is true.
	MaxSpool int64
	// WhenFull is what the Log does itself when the spool reaches
	// MaxSpool (audit.when_full).
	WhenFull WhenFull
	// Shipping says that a Shipper sends this spool's records to the
	// control plane: retention and DropOldestShipped then delete only
	// records it has shipped. Without it every record counts as shipped.
	Shipping bool
	// Logger receives Pebble's messages and the Log's own, with
	// component=auditlog. Nil: discarded.
	Logger *slog.Logger
	// Now is the clock that stamps records without a time. Nil: time.Now.
	Now func() time.Time

	queueLen int                   // tests: 0 is the default, queueLen
	hold     chan struct{}         // tests: the committer starts when this is closed
	pebble   func(*pebble.Options) // tests: adjusts Pebble's options
	readOnly bool                  // OpenReadOnly: nothing is written at Open
}

// Errors of the Log.
var (
	ErrClosed    = errors.New("auditlog: log is closed")
	ErrBadNodeID = errors.New("auditlog: a node id is 1 to 64 of A-Z a-z 0-9 . _ -")
)

const (
	// queueLen bounds the records waiting for the committer. When it is
	// full, Append blocks (in both modes): an audit record is never
	// dropped, so a disk slower than the traffic slows the traffic.
	queueLen = 4096
	// maxBatch bounds the records of one Pebble batch (one fsync).
	maxBatch = 1024
	// maxPooledBody is the largest encoding buffer kept for reuse.
	maxPooledBody = 64 << 10
)

// Keys (see doc.go). The records database holds the records and, written
// once, the node id: nothing else is written beside the records, so its
// tables never overlap and compactions move them instead of rewriting
// them. Everything else is in the index database.
var (
	keyNode    = []byte("m/node")    // records: the node id
	keyShipped = []byte("m/shipped") // index: seq (8 bytes, big-endian) of the last record the receiver acknowledged
	keyAnchor  = []byte("m/anchor")  // index: seq || hash of the last record deleted (retention, drop)
	keyIndexed = []byte("m/indexed") // index: seq (8 bytes, big-endian) of the last record indexed
)

// The two Pebble databases of a spool, under its directory, and their
// memory: the index takes a few dozen bytes a record.
const (
	recordsDir = "records"
	indexDir   = "index"

	spoolCacheSize  = 8 << 20
	recordsMemtable = 4 << 20 // Pebble's default: 1 MiB made sync audit fall behind in s2
	indexMemtable   = 1 << 20
)

const recordPrefix = 'r'

// recordKey returns the key of record seq: 'r' and seq big-endian.
func recordKey(k *[9]byte, seq uint64) []byte {
	k[0] = recordPrefix
	binary.BigEndian.PutUint64(k[1:], seq)
	return k[:]
}

// Log is the audit spool: an append-only hash chain of records in a Pebble
// database. It is safe for concurrent use. One committer goroutine, owned
// by the Log and stopped by Close, writes the records in seq order.
type Log struct {
	db       *pebble.DB // the records (recordsDir)
	idb      *pebble.DB // the index and the meta keys but the node id (indexDir)
	log      *slog.Logger
	now      func() time.Time
	node     string
	sync     bool
	maxSpool int64
	dropFull bool // WhenFull is DropOldestShipped
	readOnly bool // OpenReadOnly
	shipping bool

	// ctx is canceled by Close: it stops the maintainer and the
	// compactions of Prune and dropShipped.
	ctx       context.Context
	cancel    context.CancelFunc
	kick      chan struct{} // wakes the maintainer (capacity 1)
	maintDone chan struct{} // closed when the maintainer has returned
	// pruneMu serializes the deletions (Prune, dropShipped), which move
	// the anchor.
	pruneMu sync.Mutex

	spoolBytes atomic.Int64  // DiskSpaceUsage at the last refresh
	full       atomic.Bool   // spoolBytes >= maxSpool > 0
	shipped    atomic.Uint64 // the shipped position ("m/shipped")
	pruned     atomic.Uint64 // records deleted by Prune since Open
	dropped    atomic.Uint64 // records deleted by dropShipped since Open

	queue   chan *pending
	stopped chan struct{} // closed when the committer has returned
	// free holds released pendings for reuse. Unlike a sync.Pool it is
	// not emptied by each GC: under load a GC cycle (Pebble allocates)
	// would otherwise cost an allocation every few records. It holds as
	// many as can be in flight: queued, and in the committer's batches.
	free chan *pending

	// mu guards the fields below; Append holds it while it sends to queue,
	// so that queue order is seq order. The committer never takes it (a
	// full queue would deadlock); lock order is mu, then headMu.
	mu     sync.Mutex
	next   uint64 // the last seq handed out
	closed bool

	// headMu guards the fields below, which the committer writes.
	headMu   sync.Mutex
	headSeq  uint64 // the last committed record
	headHash Hash
	failed   error // the write error that stopped the log, if any

	idx indexer // the query indexes, kept by the committer

	batches atomic.Uint64 // Pebble batches committed
	records atomic.Uint64 // records committed

	// dbMu guards dbClosed; readers hold it shared, Close exclusively.
	dbMu     sync.RWMutex
	dbClosed bool
}

// pending is a record on its way to the committer.
type pending struct {
	seq  uint64
	body []byte      // appendBody of the record
	ix   indexFields // what the indexes need of the record
	wait bool        // a Sync Append waits on done
	done chan error  // the commit's outcome, for waiters
	prev Hash        // set by the committer for waiters
	hash Hash
}

// Open opens (creating when needed) the spool in dir and starts its
// committer. Pebble's log messages and background errors go to
// opts.Logger.
func Open(dir string, opts Options) (*Log, error) {
	return open(dir, opts, vfs.Default)
}

func open(dir string, opts Options, fs vfs.FS) (*Log, error) {
	if opts.NodeID != "" && !validNodeID(opts.NodeID) {
		return nil, ErrBadNodeID
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "auditlog")
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	// One block cache for both databases (Pebble gives each its own 8 MiB
	// otherwise): the spool is written far more than it is read, and the
	// memory counts where ten thousand idle streams must fit in 300 MiB.
	cache := pebble.NewCache(spoolCacheSize)
	defer cache.Unref() // each database holds its own reference
	openDB := func(name string, memtable uint64) (*pebble.DB, error) {
		popts := &pebble.Options{FS: fs, Logger: pebblelog.New(log, "auditlog"), Cache: cache, MemTableSize: memtable}
		if opts.pebble != nil {
			opts.pebble(popts)
		}
		db, err := pebble.Open(fs.PathJoin(dir, name), popts)
		if err != nil {
			return nil, fmt.Errorf("auditlog: cannot open spool in %s: %w", dir, err)
		}
		return db, nil
	}
	db, err := openDB(recordsDir, recordsMemtable)
	if err != nil {
		return nil, err
	}
	idb, err := openDB(indexDir, indexMemtable)
	if err != nil {
		db.Close()
		return nil, err
	}
	l := &Log{
		db:        db,
		idb:       idb,
		log:       log,
		now:       now,
		sync:      opts.Durability == Sync,
		maxSpool:  opts.MaxSpool,
		dropFull:  opts.WhenFull == DropOldestShipped,
		shipping:  opts.Shipping,
		readOnly:  opts.readOnly,
		queue:     make(chan *pending, cmp.Or(opts.queueLen, queueLen)),
		stopped:   make(chan struct{}),
		kick:      make(chan struct{}, 1),
		maintDone: make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.free = make(chan *pending, cap(l.queue)+maxInflight*maxBatch)
	if err := l.load(opts.NodeID); err != nil {
		db.Close()
		idb.Close()
		return nil, err
	}
	l.next = l.headSeq
	l.refreshSize() // Full is right from the start
	go l.commitLoop(opts.hold)
	l.wake() // with DropOldestShipped, a spool opened full makes room
	go l.maintain()
	return l, nil
}

// load reads the node id and the head of the chain from the meta keys.
func (l *Log) load(node string) error {
	stored, ok, err := l.get(keyNode)
	if err != nil {
		return err
	}
	switch {
	case node != "":
	case ok && validNodeID(string(stored)):
		node = string(stored)
	default:
		var b [6]byte
		rand.Read(b[:])
		node = hex.EncodeToString(b[:])
	}
	l.node = node
	if !ok || string(stored) != node {
		if err := l.db.Set(keyNode, []byte(node), pebble.Sync); err != nil {
			return fmt.Errorf("auditlog: cannot store node id: %w", err)
		}
	}
	shipped, err := getSeq(l.idb, keyShipped)
	if err != nil {
		return err
	}
	l.shipped.Store(shipped)
	// The head is the last record, or, when retention deleted them all,
	// the anchor.
	aseq, ahash, _, err := getSeqHash(l.idb, keyAnchor)
	if err != nil {
		return err
	}
	l.headSeq, l.headHash = aseq, ahash
	seq, line, ok, err := lastRecord(l.db)
	if err != nil {
		return err
	}
	if ok && seq > aseq {
		h, ok := recordHash(line)
		if !ok {
			return fmt.Errorf("auditlog: the last record (%d) has no hash; run verify", seq)
		}
		l.headSeq, l.headHash = seq, h
	}
	if l.readOnly {
		return nil
	}
	return l.catchUpIndex()
}

// lastRecord returns the last record of db, if any.
func lastRecord(db *pebble.DB) (seq uint64, line []byte, ok bool, err error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{recordPrefix}, UpperBound: []byte{recordPrefix + 1}})
	if err != nil {
		return 0, nil, false, fmt.Errorf("auditlog: cannot read the last record: %w", err)
	}
	defer it.Close()
	for valid := it.Last(); valid; valid = it.Prev() {
		if k := it.Key(); len(k) == 9 {
			v, err := it.ValueAndErr()
			if err != nil {
				return 0, nil, false, fmt.Errorf("auditlog: cannot read the last record: %w", err)
			}
			return binary.BigEndian.Uint64(k[1:]), append([]byte(nil), v...), true, nil
		}
	}
	if err := it.Error(); err != nil {
		return 0, nil, false, fmt.Errorf("auditlog: cannot read the last record: %w", err)
	}
	return 0, nil, false, nil
}

// getSeq reads a meta key holding a seq (8 bytes, big-endian); 0 when
// absent.
func getSeq(r pebble.Reader, key []byte) (uint64, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("auditlog: cannot read %s: %w", key, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("auditlog: %s of %d bytes: want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// getSeqHash reads a meta key holding seq (8 bytes, big-endian) || hash.
func getSeqHash(r pebble.Reader, key []byte) (seq uint64, hash Hash, ok bool, err error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, Hash{}, false, nil
	}
	if err != nil {
		return 0, Hash{}, false, fmt.Errorf("auditlog: cannot read %s: %w", key, err)
	}
	defer closer.Close()
	if len(v) != 8+len(Hash{}) {
		return 0, Hash{}, false, fmt.Errorf("auditlog: %s of %d bytes: want 40", key, len(v))
	}
	copy(hash[:], v[8:])
	return binary.BigEndian.Uint64(v), hash, true, nil
}

// seqHash encodes seq and hash as getSeqHash reads them.
func seqHash(seq uint64, hash *Hash) []byte {
	v := make([]byte, 8, 8+len(hash))
	binary.BigEndian.PutUint64(v, seq)
	return append(v, hash[:]...)
}

func (l *Log) get(key []byte) ([]byte, bool, error) {
	v, closer, err := l.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("auditlog: cannot read %s: %w", key, err)
	}
	v = append([]byte(nil), v...)
	return v, true, closer.Close()
}

func validNodeID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// NodeID returns the node id in this Log's record ids.
func (l *Log) NodeID() string { return l.node }

// RecordID returns the id of the record with this seq.
func (l *Log) RecordID(seq uint64) string { return l.node + "-" + strconv.FormatUint(seq, 10) }

// Append adds r to the chain and returns its seq (also set in r.Seq; 0
// with an error).
// r.Time is set to the clock's now when zero. The Log assigns the id,
// seq, prev_hash and hash (whatever r holds there is ignored); in Sync
// mode r.PrevHash and r.Hash are set on return.
//
// Sync: Append returns after the record is durable. Async: it returns once
// the record is queued. In both modes it blocks while the queue is full
// rather than drop a record. r is encoded before Append returns and not
// kept. After a write error the Log stops: this and every later Append
// return that error, and the records queued with it are not written.
func (l *Log) Append(r *Record) (uint64, error) { return l.append(r, l.sync) }

// Enqueue is Append without the wait, in either mode: the record is queued
// and chained in seq order, and written (and in Sync mode fsynced) with the
// records around it, but nobody waits for that. The proxy enqueues the
// outcome of a call, which must not hold the response; the request's record
// before it was appended. r.PrevHash and r.Hash are not set.
func (l *Log) Enqueue(r *Record) (uint64, error) { return l.append(r, false) }

func (l *Log) append(r *Record, wait bool) (uint64, error) {
	if r.Time.IsZero() {
		r.Time = l.now()
	}
	p := l.acquire()
	p.body = appendBody(p.body[:0], r)
	p.ix.capture(r)
	p.wait = wait
	l.mu.Lock()
	err := l.failure()
	if l.closed {
		err = ErrClosed
	}
	if err != nil {
		l.mu.Unlock()
		l.release(p)
		return 0, err
	}
	l.next++
	seq := l.next
	p.seq = seq
	l.queue <- p
	l.mu.Unlock()
	r.Seq = seq
	if !wait {
		return seq, nil // the committer releases p
	}
	err = <-p.done
	if err != nil {
		l.release(p)
		return 0, err
	}
	r.PrevHash, r.Hash = p.prev, p.hash
	l.release(p)
	return seq, nil
}

func (l *Log) acquire() *pending {
	select {
	case p := <-l.free:
		return p
	default:
		return &pending{done: make(chan error, 1), body: make([]byte, 0, 1024)}
	}
}

func (l *Log) release(p *pending) {
	if cap(p.body) > maxPooledBody {
		return
	}
	select {
	case l.free <- p:
	default:
	}
}

// commitLoop is the committer: it takes every record waiting (up to
// maxBatch), chains them and applies them to Pebble as one batch, and
// hands the batch to syncLoop, until Close closes the queue. It does not
// wait for the fsync: while one batch syncs, it builds the next (Pebble
// syncs its write-ahead log in order, so a synced batch implies the
// batches before it).
func (l *Log) commitLoop(hold chan struct{}) {
	// free holds the inflight batches not in use: taking one bounds the
	// batches in flight, and reusing them keeps Append from allocating.
	free := make(chan *inflight, maxInflight)
	for range maxInflight {
		free <- &inflight{batch: make([]*pending, 0, maxBatch)}
	}
	applied := make(chan *inflight, maxInflight)
	syncerDone := make(chan struct{})
	go l.syncLoop(applied, free, syncerDone)
	defer func() {
		close(applied)
		<-syncerDone
		close(l.stopped)
	}()
	if hold != nil {
		<-hold
	}
	seq, prev := l.Last()
	var scratch []byte
	for {
		p, ok := <-l.queue
		if !ok {
			return
		}
		f := <-free
		f.batch = append(f.batch, p)
	drain:
		for len(f.batch) < maxBatch {
			select {
			case p, ok := <-l.queue:
				if !ok {
					break drain // the next receive returns
				}
				f.batch = append(f.batch, p)
			default:
				break drain
			}
		}
		l.apply(f, &seq, &prev, &scratch)
		applied <- f
	}
}

// maxInflight bounds the batches applied but not yet synced.
const maxInflight = 4

// inflight is a batch on its way from the committer to syncLoop.
type inflight struct {
	batch []*pending
	b     *pebble.Batch // nil when err is set
	err   error
	seq   uint64 // the chain head after this batch
	hash  Hash
}

// apply chains f's records after seq and prev, which it advances, and
// applies them to Pebble as one batch with the new head (synced in sync
// mode, but not waited for).
func (l *Log) apply(f *inflight, seq *uint64, prev *Hash, scratch *[]byte) {
	if f.err = l.failure(); f.err != nil {
		return
	}
	b := l.db.NewBatch()
	ib := l.idb.NewBatch()
	var key [9]byte
	buf := *scratch
	s, h := *seq, *prev
	for _, p := range f.batch {
		if p.seq != s+1 {
			panic(fmt.Sprintf("BUG: auditlog: committing seq %d after %d", p.seq, s))
		}
		buf = append(buf[:0], `{"id":"`...)
		buf = append(buf, l.node...) // validNodeID: nothing to escape
		buf = append(buf, '-')
		buf = strconv.AppendUint(buf, p.seq, 10)
		buf = append(buf, '"')
		buf = appendSeqPrev(buf, p.seq, &h)
		hash := chainHash(&h, buf, p.body)
		buf = appendHashMember(buf, &hash)
		buf = append(buf, p.body...)
		err := b.Set(recordKey(&key, p.seq), buf, nil)
		if err == nil {
			err = l.idx.add(ib, p.seq, &p.ix)
		}
		if err != nil {
			b.Close()
			ib.Close()
			f.err = l.fail(err)
			return
		}
		p.prev, p.hash = h, hash
		s, h = p.seq, hash
	}
	*scratch = buf
	var err error
	if l.sync {
		err = l.db.ApplyNoSyncWait(b, pebble.Sync)
	} else {
		err = l.db.Apply(b, pebble.NoSync)
	}
	if err == nil {
		// The index follows without a sync of its own: after a crash,
		// Open brings it level with the records (catchUpIndex).
		err = setSeq(ib, keyIndexed, s)
		if err == nil {
			err = l.idb.Apply(ib, pebble.NoSync)
		}
	}
	ib.Close()
	if err != nil {
		b.Close()
		f.err = l.fail(err)
		return
	}
	f.b, f.seq, f.hash = b, s, h
	*seq, *prev = s, h
}

// syncLoop waits for each applied batch's fsync, in order, then moves the
// head and wakes the batch's callers. The committer owns it.
func (l *Log) syncLoop(applied <-chan *inflight, free chan<- *inflight, done chan<- struct{}) {
	defer close(done)
	for f := range applied {
		err := f.err
		if f.b != nil {
			if l.sync {
				if serr := f.b.SyncWait(); serr != nil {
					err = l.fail(serr)
				}
			}
			f.b.Close()
		}
		if err == nil {
			// A failure of an earlier batch taints this one.
			err = l.failure()
		}
		if err == nil {
			l.headMu.Lock()
			l.headSeq, l.headHash = f.seq, f.hash
			l.headMu.Unlock()
			l.batches.Add(1)
			l.records.Add(uint64(len(f.batch)))
			l.wake()
		}
		for i, p := range f.batch {
			if p.wait {
				p.done <- err
			} else {
				l.release(p)
			}
			f.batch[i] = nil
		}
		f.batch, f.b, f.err = f.batch[:0], nil, nil
		free <- f
	}
}

// fail stops the log after a write error.
func (l *Log) fail(err error) error {
	err = fmt.Errorf("auditlog: cannot write records: %w", err)
	l.log.Error("audit spool write failed; the log accepts no more records", "err", err)
	l.headMu.Lock()
	if l.failed == nil {
		l.failed = err
	}
	l.headMu.Unlock()
	return err
}

// Err returns the write error that stopped the log (it accepts no more
// records), or nil.
func (l *Log) Err() error { return l.failure() }

// failure returns the error that stopped the log, or nil.
func (l *Log) failure() error {
	l.headMu.Lock()
	defer l.headMu.Unlock()
	return l.failed
}

// Last returns the seq and hash of the last record written (0 and the zero
// hash for an empty chain). Records deleted by retention still count.
func (l *Log) Last() (seq uint64, hash Hash) {
	l.headMu.Lock()
	defer l.headMu.Unlock()
	return l.headSeq, l.headHash
}

// Stats are the Log's gauges and its counters since Open, for /metrics
// and /readyz. Reading them takes no lock and no I/O.
type Stats struct {
	Records uint64 // records committed
	Batches uint64 // Pebble batches committed (in sync mode, fsyncs)
	Head    uint64 // the seq of the last record (Last)
	// Shipped is the shipped position stored in the spool: the last
	// record the receiver acknowledged (0 when none was).
	Shipped    uint64
	SpoolBytes int64  // disk space of the spool, refreshed at most every 100 ms
	Full       bool   // SpoolBytes has reached MaxSpool (Full)
	Pruned     uint64 // records deleted by Prune
	Dropped    uint64 // shipped records deleted to make room (DropOldestShipped)
}

// Stats returns the Log's gauges and counters.
func (l *Log) Stats() Stats {
	head, _ := l.Last()
	return Stats{
		Records:    l.records.Load(),
		Batches:    l.batches.Load(),
		Head:       head,
		Shipped:    l.shipped.Load(),
		SpoolBytes: l.spoolBytes.Load(),
		Full:       l.full.Load(),
		Pruned:     l.pruned.Load(),
		Dropped:    l.dropped.Load(),
	}
}

// Close writes the queued records, stops the committer, syncs (in Async
// mode) and closes the spool. Appends that call after it return ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	close(l.queue)
	l.mu.Unlock()
	<-l.stopped
	l.cancel()
	<-l.maintDone

	l.dbMu.Lock()
	defer l.dbMu.Unlock()
	l.dbClosed = true
	var err error
	if !l.sync {
		err = l.db.LogData(nil, pebble.Sync)
	}
	if cerr := l.db.Close(); err == nil {
		err = cerr
	}
	if cerr := l.idb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("auditlog: cannot close spool: %w", err)
	}
	return nil
}

// ScanJSON calls fn with the JSON of each record from seq from on, in seq
// order, until fn returns false. line is valid only during the call. fn
// must not call Close; records committed during a ScanJSON may or may not
// be seen.
func (l *Log) ScanJSON(from uint64, fn func(seq uint64, line []byte) bool) error {
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.dbClosed {
		return ErrClosed
	}
	return scanJSON(l.db, from, fn)
}

// scanJSON is ScanJSON on r (the database or a snapshot of it).
func scanJSON(r pebble.Reader, from uint64, fn func(seq uint64, line []byte) bool) error {
	var lower [9]byte
	it, err := r.NewIter(&pebble.IterOptions{
		LowerBound: recordKey(&lower, from),
		UpperBound: []byte{recordPrefix + 1},
	})
	if err != nil {
		return fmt.Errorf("auditlog: cannot scan: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 9 {
			continue
		}
		v, verr := it.ValueAndErr()
		if verr != nil {
			it.Close()
			return fmt.Errorf("auditlog: cannot scan: %w", verr)
		}
		if !fn(binary.BigEndian.Uint64(k[1:]), v) {
			break
		}
	}
	err = it.Error()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("auditlog: cannot scan: %w", err)
	}
	return nil
}

// Scan calls fn with each record from seq from on, decoded, in seq order,
// until fn returns false. Each *Record is fn's to keep. It decodes with
// encoding/json: for the admin API and the CLI, not the hot path.
func (l *Log) Scan(from uint64, fn func(*Record) bool) error {
	var derr error
	err := l.ScanJSON(from, func(seq uint64, line []byte) bool {
		r := new(Record)
		if err := json.Unmarshal(line, r); err != nil {
			derr = fmt.Errorf("auditlog: cannot decode record %d: %w", seq, err)
			return false
		}
		return fn(r)
	})
	if err != nil {
		return err
	}
	return derr
}

// Verify walks the spool and returns a *ChainError for the first break of
// the chain (doc.go): a missing or misplaced seq, a prev_hash that is not
// the previous record's hash, a record whose hash does not match its
// content, or a head (Last) that the records do not reach. The chain is
// anchored at the anchor that retention leaves (the last record deleted),
// or, when nothing was deleted, at the start (seq 1 with no prev_hash), so
// a record deleted from the front is found too. Other errors are I/O
// errors.
func (l *Log) Verify() error {
	headSeq, headHash := l.Last()
	// No deletion runs meanwhile: the anchor and the records after it
	// stay as they were left together.
	l.pruneMu.Lock()
	defer l.pruneMu.Unlock()
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.dbClosed {
		return ErrClosed
	}
	var v Verifier
	aseq, ahash, _, err := getSeqHash(l.idb, keyAnchor)
	if err != nil {
		return err
	}
	v.Anchor(aseq, ahash)
	var verr error
	// Records at or below the anchor are being deleted (the anchor is
	// written first): a crash can leave some.
	err = scanJSON(l.db, aseq+1, func(seq uint64, line []byte) bool {
		if verr = v.Next(line); verr != nil {
			return false
		}
		if got, _ := v.Last(); got != seq {
			verr = &ChainError{Seq: seq, Kind: BreakMalformed}
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	if verr != nil {
		return verr
	}
	if seq, hash := v.Last(); seq < headSeq {
		return &ChainError{Seq: headSeq, Kind: BreakSeqGap, Want: seq + 1}
	} else if seq == headSeq && hash != headHash {
		return &ChainError{Seq: seq, Kind: BreakHash}
	}
	return nil
}

// SpoolBytes returns the disk space the spool uses now, from Pebble's
// metrics (live and obsolete files). Stats has the value of the last
// refresh, without the cost.
func (l *Log) SpoolBytes() (int64, error) {
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.dbClosed {
		return 0, ErrClosed
	}
	return int64(l.db.Metrics().DiskSpaceUsage() + l.idb.Metrics().DiskSpaceUsage()), nil
}

// setSeq adds key = seq (8 bytes, big-endian) to b.
func setSeq(b *pebble.Batch, key []byte, seq uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], seq)
	return b.Set(key, v[:], nil)
}
