package auditlog

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Query limits (see doc.go, "Queries").
const (
	// DefaultLimit is the page size when a query asks for none.
	DefaultLimit = 100
	// MaxLimit is the largest page; larger limits are clamped to it.
	MaxLimit = 1000
	// scanBudget bounds the candidates one query call examines. A call
	// that spends it returns what it found with a cursor to continue, so
	// a filter that matches little in a large spool never holds a call
	// (and the Pebble snapshot behind it) for long.
	scanBudget = 200_000
	// TimeSkew is how far the time of a record may be out of seq order
	// for Since and Until to be exact: a record's time is taken by its
	// writer before the record gets its seq. A query with Since stops at
	// the first record older than Since by more than this; one with Until
	// starts where the time index puts Until plus this.
	TimeSkew = time.Minute
)

// Errors of the queries.
var (
	ErrBadCursor      = errors.New("auditlog: malformed cursor")
	ErrUnknownSession = errors.New("auditlog: no such session")
	ErrUnknownRecord  = errors.New("auditlog: no such record")
)

// ActivityFilter selects records. Empty fields select everything; every
// field set must hold. Strings compare exactly.
type ActivityFilter struct {
	App, User, Session string
	Method, Name       string
	Decision           Decision
	Kind               Kind      // session, activity, approval, grant or admin
	Since, Until       time.Time // record time in [Since, Until)
	// After selects only records with a greater seq (for following the
	// log: pass the last seq seen).
	After uint64
}

// SessionFilter selects sessions. Empty fields select everything.
type SessionFilter struct {
	App, User string
	// Audited, when not nil, selects the sessions marked audited (true) or
	// not (false).
	Audited      *bool
	Since, Until time.Time // session start in [Since, Until)
}

// Session sums up one session: its start record's fields and what its
// records counted. JSON fields as in DESIGN.md section 6.
type Session struct {
	// ID is the session id (the same as SessionID, the name the other
	// objects use for it).
	ID              string    `json:"id"`
	SessionID       string    `json:"session_id"`
	App             string    `json:"app,omitempty"`
	User            string    `json:"user,omitempty"`
	Groups          []string  `json:"groups,omitempty"`
	Device          Device    `json:"device,omitzero"`
	ResourceType    string    `json:"resource_type,omitempty"`
	ProtocolVersion string    `json:"protocol_version,omitempty"`
	StartID         string    `json:"start_id,omitempty"` // the id of the start record
	Started         time.Time `json:"started,omitzero"`
	LastSeen        time.Time `json:"last_seen,omitzero"`
	Ended           time.Time `json:"ended,omitzero"`
	EndReason       string    `json:"end_reason,omitempty"`
	// Records counts the session's records (its audit marks are about
	// it, not part of it: they count neither here nor in LastSeen);
	// Requests the client's requests; Denied the messages with decision
	// deny, approval_required or refused; Errors the responses with status
	// error.
	Records  uint64   `json:"records"`
	Requests uint64   `json:"requests"`
	Denied   uint64   `json:"denied"`
	Errors   uint64   `json:"errors"`
	Audited  *Audited `json:"audited,omitempty"`
}

// Audited is the latest audit mark of a session.
type Audited struct {
	By       string    `json:"by"`
	Time     time.Time `json:"time"`
	Comment  string    `json:"comment,omitempty"`
	RecordID string    `json:"record_id"` // the admin record of the mark
}

// Cursors are opaque to callers: base64url of a letter naming the list and
// the seq (8 bytes, big-endian) that the next page continues below.
const (
	cursorActivity = 'a'
	cursorSessions = 's'
)

func encodeCursor(list byte, seq uint64) string {
	var b [9]byte
	b[0] = list
	binary.BigEndian.PutUint64(b[1:], seq)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// decodeCursor returns the seq a page continues below; 0 for no cursor.
func decodeCursor(list byte, c string) (uint64, error) {
	if c == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) != 9 || b[0] != list {
		return 0, ErrBadCursor
	}
	seq := binary.BigEndian.Uint64(b[1:])
	if seq == 0 {
		return 0, ErrBadCursor
	}
	return seq, nil
}

// pageBelow returns the seq that a page of list starts below: the
// cursor's, or past the last durable record.
func (l *Log) pageBelow(list byte, cursor string) (uint64, error) {
	below, err := decodeCursor(list, cursor)
	if err != nil {
		return 0, err
	}
	if head, _ := l.Last(); below == 0 || below > head+1 {
		below = head + 1
	}
	return below, nil
}

// clampLimit applies DefaultLimit and MaxLimit.
func clampLimit(n int) int {
	if n <= 0 {
		return DefaultLimit
	}
	return min(n, MaxLimit)
}

// withDB runs fn while the databases stay open: db holds the records,
// idb the index.
func (l *Log) withDB(fn func(db, idb *pebble.DB) error) error {
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.dbClosed {
		return ErrClosed
	}
	return fn(l.db, l.idb)
}

// Activity returns the records that f selects, newest first (by seq), at
// most limit of them (DefaultLimit when 0, at most MaxLimit), and a cursor
// for the next page ("" when there is none). Pass "" as cursor for the
// first page. A page may hold fewer than limit records, even none, with a
// cursor: the call examined its budget of records and stopped there.
//
// It walks the records down from the newest durable one (Last), or from
// where the time index puts Until, or, with a session, from the session's
// last record to its first (its segments say where); Since ends the walk.
// Each record is tested on its JSON text before it is decoded with
// encoding/json: this is for the admin API and the CLI, never the hot
// path.
func (l *Log) Activity(f ActivityFilter, cursor string, limit int) (items []Record, next string, err error) {
	return l.activity(f, cursor, limit, scanBudget)
}

func (l *Log) activity(f ActivityFilter, cursor string, limit, budget int) (items []Record, next string, err error) {
	below, err := l.pageBelow(cursorActivity, cursor)
	if err != nil {
		return nil, "", err
	}
	limit = clampLimit(limit)
	needles := f.needles()
	err = l.withDB(func(db, idb *pebble.DB) error {
		from := f.After + 1
		if !f.Until.IsZero() {
			if s, ok, err := seqFromMinute(idb, floorDiv(unixNano(f.Until.Add(TimeSkew)), int64(time.Minute))+1); err != nil {
				return err
			} else if ok && s < below {
				below = s
			}
		}
		if f.Session != "" {
			agg, err := l.readSegments(idb, f.Session)
			if errors.Is(err, ErrUnknownSession) {
				return nil
			}
			if err != nil {
				return err
			}
			from, below = max(from, agg.first), min(below, agg.last+1)
		}
		if below <= from {
			return nil
		}
		var lower, upper [9]byte
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: recordKey(&lower, from), UpperBound: recordKey(&upper, below)})
		if err != nil {
			return fmt.Errorf("auditlog: cannot query: %w", err)
		}
		examined := 0
		for ok := it.Last(); ok; ok = it.Prev() {
			k := it.Key()
			if len(k) != 9 {
				continue
			}
			seq := binary.BigEndian.Uint64(k[1:])
			if examined == budget {
				next = encodeCursor(cursorActivity, seq+1)
				break
			}
			examined++
			line, err := it.ValueAndErr()
			if err != nil {
				it.Close()
				return fmt.Errorf("auditlog: cannot query: %w", err)
			}
			if !f.Since.IsZero() {
				if t, ok := recordTime(line); ok && t.Before(f.Since.Add(-TimeSkew)) {
					break
				}
			}
			if !containsAll(line, needles) {
				continue
			}
			r := new(Record)
			if err := json.Unmarshal(line, r); err != nil {
				it.Close()
				return fmt.Errorf("auditlog: cannot decode record %d: %w", seq, err)
			}
			if !f.match(r) {
				continue
			}
			items = append(items, *r)
			if len(items) == limit {
				if it.Prev() {
					next = encodeCursor(cursorActivity, seq)
				}
				break
			}
		}
		err = it.Error()
		if cerr := it.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("auditlog: cannot query: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return items, next, nil
}

// needles are members that a record f selects must contain, as
// AppendJSON writes them: a quick test before decoding (necessary, not
// sufficient: the text may also occur inside arguments).
func (f *ActivityFilter) needles() [][]byte {
	var ns [][]byte
	for _, m := range []struct{ key, v string }{
		{`,"kind":`, string(f.Kind)},
		{`,"session_id":`, f.Session},
		{`,"app":`, f.App},
		{`,"user":`, f.User},
		{`,"method":`, f.Method},
		{`,"name":`, f.Name},
		{`,"decision":`, string(f.Decision)},
	} {
		if m.v != "" {
			ns = append(ns, appendString([]byte(m.key), m.v))
		}
	}
	return ns
}

func containsAll(line []byte, needles [][]byte) bool {
	for _, n := range needles {
		if !bytes.Contains(line, n) {
			return false
		}
	}
	return true
}

func (f *ActivityFilter) match(r *Record) bool {
	return (f.Kind == "" || r.Kind == f.Kind) &&
		(f.Session == "" || r.SessionID == f.Session) &&
		(f.App == "" || r.App == f.App) &&
		(f.User == "" || r.User == f.User) &&
		(f.Method == "" || r.Method == f.Method) &&
		(f.Name == "" || r.Name == f.Name) &&
		(f.Decision == "" || r.Decision == f.Decision) &&
		(f.Since.IsZero() || !r.Time.Before(f.Since)) &&
		(f.Until.IsZero() || r.Time.Before(f.Until)) &&
		r.Seq > f.After
}

// seqFromMinute returns the first seq the time index holds for minute m or
// a later one: every record with a seq at or above it is (within
// TimeSkew) at least that recent.
func seqFromMinute(db *pebble.DB, m int64) (uint64, bool, error) {
	lower := binary.BigEndian.AppendUint64([]byte{indexPrefix, ixMinute}, uint64(max(m, 0)))
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: []byte{indexPrefix, ixMinute + 1}})
	if err != nil {
		return 0, false, fmt.Errorf("auditlog: cannot query: %w", err)
	}
	defer it.Close()
	if !it.First() {
		return 0, false, it.Error()
	}
	k := it.Key()
	if len(k) != 18 {
		return 0, false, errBadIndex
	}
	return binary.BigEndian.Uint64(k[10:]), true, nil
}

// ActivityByID returns the record with this id ("<node>-<seq>"), or
// ErrUnknownRecord when this spool does not hold it.
func (l *Log) ActivityByID(id string) (*Record, error) {
	i := strings.LastIndexByte(id, '-')
	if i < 0 || id[:i] != l.node {
		return nil, ErrUnknownRecord
	}
	seq, err := strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil || seq == 0 {
		return nil, ErrUnknownRecord
	}
	if head, _ := l.Last(); seq > head {
		return nil, ErrUnknownRecord
	}
	var r *Record
	err = l.withDB(func(db, _ *pebble.DB) error {
		var k [9]byte
		v, closer, err := db.Get(recordKey(&k, seq))
		if errors.Is(err, pebble.ErrNotFound) {
			return ErrUnknownRecord
		}
		if err != nil {
			return fmt.Errorf("auditlog: cannot read record %d: %w", seq, err)
		}
		defer closer.Close()
		r = new(Record)
		if err := json.Unmarshal(v, r); err != nil {
			return fmt.Errorf("auditlog: cannot decode record %d: %w", seq, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Sessions returns the sessions that f selects, the latest started first,
// at most limit of them (DefaultLimit when 0, at most MaxLimit), and a
// cursor for the next page ("" when there is none). Only sessions whose
// start record (kind session, status started) is in the spool are listed.
// Like Activity, a page may be short, with a cursor, when the call spent
// its budget.
func (l *Log) Sessions(f SessionFilter, cursor string, limit int) (items []Session, next string, err error) {
	return l.sessions(f, cursor, limit, scanBudget)
}

func (l *Log) sessions(f SessionFilter, cursor string, limit, budget int) (items []Session, next string, err error) {
	below, err := l.pageBelow(cursorSessions, cursor)
	if err != nil {
		return nil, "", err
	}
	limit = clampLimit(limit)
	err = l.withDB(func(db, idb *pebble.DB) error {
		prefix := []byte{indexPrefix, ixSessions}
		it, err := idb.NewIter(&pebble.IterOptions{
			LowerBound: prefix,
			UpperBound: binary.BigEndian.AppendUint64(prefix, below),
		})
		if err != nil {
			return fmt.Errorf("auditlog: cannot query: %w", err)
		}
		defer it.Close()
		examined := 0
		for ok := it.Last(); ok; ok = it.Prev() {
			k := it.Key()
			if len(k) != 10 {
				continue
			}
			seq := binary.BigEndian.Uint64(k[2:])
			if examined == budget {
				next = encodeCursor(cursorSessions, seq+1)
				break
			}
			examined++
			v, err := it.ValueAndErr()
			if err != nil {
				return fmt.Errorf("auditlog: cannot query: %w", err)
			}
			e, err := decodeSessionEntry(v)
			if err != nil {
				return err
			}
			started := time.Unix(0, e.started).UTC()
			if !f.Since.IsZero() && started.Before(f.Since.Add(-TimeSkew)) {
				break
			}
			if f.App != "" && e.app != f.App || f.User != "" && e.user != f.User ||
				!f.Since.IsZero() && started.Before(f.Since) || !f.Until.IsZero() && !started.Before(f.Until) {
				continue
			}
			s, err := l.session(db, idb, e.sid)
			if errors.Is(err, ErrUnknownSession) {
				continue // its segments were pruned: pruneIndex deletes the entry next
			}
			if err != nil {
				return err
			}
			if s.StartID != l.RecordID(seq) {
				// An older session with an id used again: list the
				// one whose start this is, as its entry says.
				s.StartID, s.Started, s.App, s.User = l.RecordID(seq), started, e.app, e.user
			}
			if f.Audited != nil && (s.Audited != nil) != *f.Audited {
				continue
			}
			items = append(items, *s)
			if len(items) == limit {
				if it.Prev() {
					next = encodeCursor(cursorSessions, seq)
				}
				break
			}
		}
		return it.Error()
	})
	if err != nil {
		return nil, "", err
	}
	return items, next, nil
}

// Session returns the summary of one session, or ErrUnknownSession when
// no record of the spool names it.
func (l *Log) Session(id string) (*Session, error) {
	var s *Session
	err := l.withDB(func(db, idb *pebble.DB) (err error) {
		s, err = l.session(db, idb, id)
		return err
	})
	return s, err
}

// sessionAgg is a session's segments added up.
type sessionAgg struct {
	Session
	first, last uint64 // the seqs of the session's first and last records
	start       uint64 // the start record's, or 0
}

// readSegments adds up the segments of session id; ErrUnknownSession when
// it has none.
func (l *Log) readSegments(db *pebble.DB, id string) (*sessionAgg, error) {
	a := &sessionAgg{Session: Session{ID: id, SessionID: id}}
	var endedLast, auditedSeq uint64
	var lastSeen int64
	lower, upper := segmentBounds(id)
	err := eachKey(db, lower, upper, func(_, v []byte) error {
		g, err := decodeSegment(v)
		if err != nil {
			return err
		}
		if a.first == 0 {
			a.first = g.first
		}
		a.last = max(a.last, g.last)
		a.start = max(a.start, g.start)
		a.Records += g.records
		a.Requests += g.requests
		a.Denied += g.denied
		a.Errors += g.errors
		lastSeen = max(lastSeen, g.lastSeen)
		if g.ended != 0 && g.last >= endedLast {
			endedLast = g.last
			a.Ended, a.EndReason = time.Unix(0, g.ended).UTC(), g.endReason
		}
		if g.auditedSeq > auditedSeq {
			auditedSeq = g.auditedSeq
			a.Audited = &Audited{By: g.auditedBy, Time: time.Unix(0, g.auditedAt).UTC(),
				Comment: g.auditComment, RecordID: l.RecordID(g.auditedSeq)}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if a.first == 0 {
		return nil, ErrUnknownSession
	}
	if lastSeen != 0 {
		a.LastSeen = time.Unix(0, lastSeen).UTC()
	}
	return a, nil
}

// session adds up the segments of session id and reads its first record
// (the start record when the spool holds it) for who and from where.
func (l *Log) session(db, idb *pebble.DB, id string) (*Session, error) {
	a, err := l.readSegments(idb, id)
	if err != nil {
		return nil, err
	}
	s := &a.Session
	seq := cmp.Or(a.start, a.first)
	var k [9]byte
	v, closer, err := db.Get(recordKey(&k, seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return s, nil // deleted by retention: the counters remain
	}
	if err != nil {
		return nil, fmt.Errorf("auditlog: cannot read record %d: %w", seq, err)
	}
	defer closer.Close()
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("auditlog: cannot decode record %d: %w", seq, err)
	}
	s.App, s.User, s.Groups = r.App, r.User, r.Groups
	if a.start != 0 {
		s.Device, s.ResourceType, s.ProtocolVersion = r.Device, r.ResourceType, r.ProtocolVersion
		s.StartID, s.Started = r.ID, r.Time.UTC()
	}
	return s, nil
}

// MarkAudited records that auditor by has reviewed session id, with an
// optional comment: an admin record (method MethodSessionsAudited, user
// by, reason comment), appended like any other, so the mark is itself in
// the chain. It returns ErrUnknownSession when no record names the
// session. Sessions and Session show the latest mark as soon as it
// returns, in either durability mode.
func (l *Log) MarkAudited(id, by, comment string) error {
	if id == "" {
		return ErrUnknownSession
	}
	if _, err := l.Session(id); err != nil {
		return err
	}
	// Waited for in either durability mode (in Async mode without the
	// fsync), so that the caller's next query shows the mark.
	_, err := l.append(&Record{
		Kind:         KindAdmin,
		SessionID:    id,
		User:         by,
		ResourceType: ResourceTypeMCP,
		Method:       MethodSessionsAudited,
		Reason:       comment,
	}, true)
	return err
}
