package auditlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The query indexes (see doc.go, "Queries"): key families under 'x', after
// the records, so that ScanJSON's range never holds them. There is no
// per-record index: every key kept per record costs the committer and
// every compaction after it (measured: more than the record itself), so
// queries walk the records in a seq range instead, which the time index
// and a session's segments narrow.
const (
	indexPrefix = 'x'
	// 'x' 't' minute seq → "": a record whose time is in that minute (Unix
	// minutes), written whenever the minute of the records changes.
	ixMinute = 't'
	// 'x' 's' seq → sessionEntry: the session started by record seq.
	ixSessions = 's'
	// 'x' 'g' len(sid) sid seq → segment: what the records of a session
	// from seq on say, as far as one stretch of the committer's cache saw.
	ixSegments = 'g'
)

// The status of a session record (DESIGN.md section 6, the proxy's
// convention): the record of initialize, and the end of the session.
const (
	StatusStarted = "started"
	StatusEnded   = "ended"
)

// MethodSessionsAudited is the method of the admin record MarkAudited
// writes: user is the auditor, reason the comment.
const MethodSessionsAudited = "sessions/audited"

// maxCachedSessions bounds the committer's session cache. When it is full
// the cache is emptied, and the next record of each session starts a new
// segment: queries add segments up, so nothing is lost but a few keys.
const maxCachedSessions = 1 << 16

// What capture saw in a record.
const (
	ixStart   = 1 << iota // a session record with status started
	ixEnd                 // a session record with status ended
	ixAudited             // an admin record MethodSessionsAudited
	ixRequest             // an activity record of a client's request
	ixDenied              // an activity record with decision deny, approval_required or refused
	ixError               // an activity record with status error
)

// indexFields is what the query indexes need of one record, captured by
// Append in the caller's goroutine (the Record is not kept). Its buffers
// live in the pooled pending record and are reused: capture does not
// allocate once they have grown.
type indexFields struct {
	time    int64 // Unix nanoseconds
	flags   uint8
	session []byte
	user    []byte
	app     []byte // for ixStart
	reason  []byte // for ixEnd and ixAudited
}

func (ix *indexFields) capture(r *Record) {
	ix.time = unixNano(r.Time)
	ix.flags = 0
	ix.session = append(ix.session[:0], r.SessionID...)
	ix.user = append(ix.user[:0], r.User...)
	ix.app = ix.app[:0]
	ix.reason = ix.reason[:0]
	switch r.Kind {
	case KindSession:
		switch r.Status {
		case StatusStarted:
			ix.flags |= ixStart
			ix.app = append(ix.app, r.App...)
		case StatusEnded:
			ix.flags |= ixEnd
			ix.reason = append(ix.reason, r.Reason...)
		}
	case KindActivity:
		if r.Message == MessageRequest && r.Direction != ServerToClient {
			ix.flags |= ixRequest
		}
		switch r.Decision {
		case DecisionDeny, DecisionApprovalRequired, DecisionRefused:
			ix.flags |= ixDenied
		}
		if r.Status == StatusError {
			ix.flags |= ixError
		}
	case KindAdmin:
		if r.Method == MethodSessionsAudited {
			ix.flags |= ixAudited
			ix.reason = append(ix.reason, r.Reason...)
		}
	}
}

// unixNano is t in Unix nanoseconds, clamped to what an int64 holds.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(minIndexTime):
		return minIndexTime.UnixNano()
	case t.After(maxIndexTime):
		return maxIndexTime.UnixNano()
	}
	return t.UnixNano()
}

var (
	minIndexTime = time.Unix(0, 0)
	maxIndexTime = time.Unix(0, 1<<63-1)
)

// indexer maintains the query indexes. Only the committer calls add, once
// per record, in seq order, with the index batch that follows the batch
// that writes the record (and catchUpIndex at Open, for the records the
// index missed in a crash). It never reads Pebble: a
// session's counters are kept in a cache and written as a segment that
// queries add up with the session's other segments (after a restart, or
// when the cache was emptied, a session's next record starts a segment).
type indexer struct {
	sessions   map[string]*segment // by session id; the committer's alone
	minute     int64               // of the last time-index entry
	haveMinute bool
	key, val   []byte // scratch
}

// segment sums up the records of one session from seq first on. Its
// strings are set only at the end of a session and by audit marks.
type segment struct {
	first, last  uint64 // seqs of its first and last records
	lastSeen     int64  // the newest record time, Unix nanoseconds
	records      uint64
	requests     uint64
	denied       uint64
	errors       uint64
	start        uint64 // seq of the session's start record, if in this segment
	ended        int64  // time of the end record, Unix nanoseconds; 0: not seen
	endReason    string
	auditedSeq   uint64 // seq of the latest audit mark; 0: none
	auditedAt    int64
	auditedBy    string
	auditComment string
}

func (x *indexer) add(b *pebble.Batch, seq uint64, ix *indexFields) error {
	if m := floorDiv(ix.time, int64(time.Minute)); !x.haveMinute || m != x.minute {
		x.minute, x.haveMinute = m, true
		x.key = binary.BigEndian.AppendUint64(append(x.key[:0], indexPrefix, ixMinute), uint64(m))
		if err := b.Set(binary.BigEndian.AppendUint64(x.key, seq), nil, nil); err != nil {
			return err
		}
	}
	if len(ix.session) == 0 {
		return nil
	}
	if x.sessions == nil {
		x.sessions = make(map[string]*segment)
	}
	g := x.sessions[string(ix.session)]
	if g == nil {
		if len(x.sessions) >= maxCachedSessions {
			clear(x.sessions)
		}
		g = &segment{first: seq}
		x.sessions[string(ix.session)] = g
	}
	g.last = seq
	if ix.flags&ixAudited == 0 {
		// An audit mark is about the session, not part of it.
		g.lastSeen = max(g.lastSeen, ix.time)
		g.records++
	}
	if ix.flags&ixRequest != 0 {
		g.requests++
	}
	if ix.flags&ixDenied != 0 {
		g.denied++
	}
	if ix.flags&ixError != 0 {
		g.errors++
	}
	if ix.flags&ixStart != 0 {
		g.start = seq
		x.key = binary.BigEndian.AppendUint64(append(x.key[:0], indexPrefix, ixSessions), seq)
		x.val = appendSessionEntry(x.val[:0], ix)
		if err := b.Set(x.key, x.val, nil); err != nil {
			return err
		}
	}
	if ix.flags&ixEnd != 0 {
		g.ended, g.endReason = ix.time, string(ix.reason)
	}
	if ix.flags&ixAudited != 0 {
		g.auditedSeq, g.auditedAt, g.auditedBy, g.auditComment = seq, ix.time, string(ix.user), string(ix.reason)
	}
	x.key = appendIndexKey(x.key[:0], ixSegments, ix.session, g.first)
	x.val = g.appendTo(x.val[:0])
	if err := b.Set(x.key, x.val, nil); err != nil {
		return err
	}
	if ix.flags&ixEnd != 0 {
		delete(x.sessions, string(ix.session))
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// appendIndexPrefix appends 'x' family len(value) value: the prefix of the
// keys of one value in a family of per-value record lists.
func appendIndexPrefix(dst []byte, family byte, value []byte) []byte {
	dst = append(dst, indexPrefix, family)
	dst = binary.AppendUvarint(dst, uint64(len(value)))
	return append(dst, value...)
}

// segmentBounds returns the bounds of the segment keys of session id:
// prefix || seq (8 bytes), where the length before the id makes the
// prefix name one id only.
func segmentBounds(id string) (lower, upper []byte) {
	lower = appendIndexPrefix(nil, ixSegments, []byte(id))
	return lower, append(append([]byte(nil), lower...), bytes.Repeat([]byte{0xff}, 9)...)
}

func appendIndexKey(dst []byte, family byte, value []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(appendIndexPrefix(dst, family, value), seq)
}

// A session entry ('x' 's' seq): started (varint) app user session id,
// each string preceded by its length (uvarint).
func appendSessionEntry(dst []byte, ix *indexFields) []byte {
	dst = binary.AppendVarint(dst, ix.time)
	dst = appendBytes(dst, ix.app)
	dst = appendBytes(dst, ix.user)
	return appendBytes(dst, ix.session)
}

type sessionEntry struct {
	started        int64
	app, user, sid string
}

var errBadIndex = errors.New("auditlog: malformed index entry")

func decodeSessionEntry(v []byte) (e sessionEntry, err error) {
	d := decoder{b: v}
	e.started = d.varint()
	e.app, e.user, e.sid = d.str(), d.str(), d.str()
	if d.bad || len(d.b) != 0 {
		return e, errBadIndex
	}
	return e, nil
}

func appendBytes(dst, s []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

func appendStr(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

// segmentVersion leads the encoding of a segment.
const segmentVersion = 1

// appendTo encodes g: version, then its fields in declaration order,
// integers as (u)varints and strings preceded by their length.
func (g *segment) appendTo(dst []byte) []byte {
	dst = append(dst, segmentVersion)
	for _, u := range [...]uint64{g.first, g.last} {
		dst = binary.AppendUvarint(dst, u)
	}
	dst = binary.AppendVarint(dst, g.lastSeen)
	for _, u := range [...]uint64{g.records, g.requests, g.denied, g.errors, g.start} {
		dst = binary.AppendUvarint(dst, u)
	}
	dst = binary.AppendVarint(dst, g.ended)
	dst = appendStr(dst, g.endReason)
	dst = binary.AppendUvarint(dst, g.auditedSeq)
	dst = binary.AppendVarint(dst, g.auditedAt)
	dst = appendStr(dst, g.auditedBy)
	return appendStr(dst, g.auditComment)
}

func decodeSegment(v []byte) (g segment, err error) {
	if len(v) == 0 || v[0] != segmentVersion {
		return g, errBadIndex
	}
	d := decoder{b: v[1:]}
	g.first, g.last = d.uvarint(), d.uvarint()
	g.lastSeen = d.varint()
	g.records, g.requests, g.denied, g.errors, g.start = d.uvarint(), d.uvarint(), d.uvarint(), d.uvarint(), d.uvarint()
	g.ended = d.varint()
	g.endReason = d.str()
	g.auditedSeq = d.uvarint()
	g.auditedAt = d.varint()
	g.auditedBy, g.auditComment = d.str(), d.str()
	if d.bad || len(d.b) != 0 {
		return g, errBadIndex
	}
	return g, nil
}

// decoder reads what the append functions above wrote; bad is set at the
// first malformed value, after which every read returns zero.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint undoes binary.AppendVarint's zig-zag encoding.
func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.bad, d.b = true, nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// pruneIndex adds to b the deletion of the index entries that only records
// below seq below need: time index entries below it, the segments whose
// last record is below it, and the list entries of sessions started below
// it that are left without segments. Retention calls it with the batch
// that deletes those records. A session that started below and goes on
// keeps its list entry and the segments of its records from below on.
func pruneIndex(db *pebble.DB, b *pebble.Batch, below uint64) error {
	minutes := []byte{indexPrefix, ixMinute}
	err := eachKey(db, minutes, []byte{indexPrefix, ixMinute + 1}, func(k, _ []byte) error {
		if len(k) != 18 || binary.BigEndian.Uint64(k[10:]) >= below {
			return nil
		}
		return b.Delete(k, nil)
	})
	if err != nil {
		return err
	}
	sessions := []byte{indexPrefix, ixSessions}
	return eachKey(db, sessions, binary.BigEndian.AppendUint64(sessions, below), func(k, v []byte) error {
		e, err := decodeSessionEntry(v)
		if err != nil {
			return err
		}
		kept := false
		lower, upper := segmentBounds(e.sid)
		err = eachKey(db, lower, upper, func(sk, sv []byte) error {
			g, err := decodeSegment(sv)
			if err != nil {
				return err
			}
			if g.last >= below {
				kept = true
				return nil
			}
			return b.Delete(sk, nil)
		})
		if err != nil || kept {
			return err
		}
		return b.Delete(k, nil)
	})
}

// eachKey calls fn with each key and value in [lower, upper), in order.
func eachKey(db *pebble.DB, lower, upper []byte, fn func(k, v []byte) error) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for ok := it.First(); ok && err == nil; ok = it.Next() {
		var v []byte
		if v, err = it.ValueAndErr(); err == nil {
			err = fn(it.Key(), v)
		}
	}
	if err == nil {
		err = it.Error()
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("auditlog: cannot read the index: %w", err)
	}
	return nil
}
