package auditlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
)

// chainHash returns SHA-256(prev || canonical), the hash of a record
// whose canonical encoding (its JSON without the hash member) is canonical.
func chainHash(prev *Hash, canonical ...[]byte) Hash {
	h := sha256.New()
	h.Write(prev[:])
	for _, part := range canonical {
		h.Write(part)
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

// BreakKind says how a chain is broken.
type BreakKind string

// The kinds of break Verify reports.
const (
	BreakSeqGap    BreakKind = "seq gap"            // a record is missing, or a seq is out of order
	BreakPrevHash  BreakKind = "prev_hash mismatch" // prev_hash is not the previous record's hash
	BreakHash      BreakKind = "hash mismatch"      // the record was changed after it was hashed
	BreakMalformed BreakKind = "malformed record"   // not a record this package wrote
)

// ChainError reports the first break of a hash chain.
type ChainError struct {
	Seq  uint64    // the record at which the chain breaks (for a gap: the first one after it)
	Kind BreakKind // what is wrong
	Want uint64    // for BreakSeqGap: the seq that was expected
}

func (e *ChainError) Error() string {
	if e.Kind == BreakSeqGap {
		return fmt.Sprintf("auditlog: chain broken at seq %d: %s (want seq %d)", e.Seq, e.Kind, e.Want)
	}
	return fmt.Sprintf("auditlog: chain broken at seq %d: %s", e.Seq, e.Kind)
}

// Verifier checks a sequence of records, given as the JSON lines
// AppendJSON wrote, against the chain rules of doc.go. The first record it
// sees anchors the chain (its prev_hash is taken as given, since the
// records before it may have been shipped and deleted); use Anchor to check
// it against a known predecessor. The zero value is ready to use; a
// Verifier is not safe for concurrent use. A shipping receiver can run one
// over each batch.
type Verifier struct {
	started bool
	seq     uint64
	hash    Hash
}

// Anchor makes the next record follow seq and hash.
func (v *Verifier) Anchor(seq uint64, hash Hash) {
	v.started, v.seq, v.hash = true, seq, hash
}

// Last returns the seq and hash of the last record that verified.
func (v *Verifier) Last() (seq uint64, hash Hash) { return v.seq, v.hash }

// chainFields are the members of a record the chain checks.
type chainFields struct {
	Seq      *uint64 `json:"seq"`
	PrevHash Hash    `json:"prev_hash"`
	Hash     Hash    `json:"hash"`
}

// Next checks line, the JSON of the record after the last one checked.
// It returns a *ChainError for a break, and then stays where it was.
func (v *Verifier) Next(line []byte) error {
	var f chainFields
	if err := json.Unmarshal(line, &f); err != nil || f.Seq == nil {
		return &ChainError{Seq: v.seq + 1, Kind: BreakMalformed}
	}
	seq := *f.Seq
	i := bytes.Index(line, []byte(hashMember))
	if i < 0 || len(line) < i+len(hashMember)+65 {
		return &ChainError{Seq: seq, Kind: BreakMalformed}
	}
	end := i + len(hashMember) + 65 // the 64 digits and the closing quote
	if v.started && seq != v.seq+1 {
		return &ChainError{Seq: seq, Kind: BreakSeqGap, Want: v.seq + 1}
	}
	if v.started && f.PrevHash != v.hash {
		return &ChainError{Seq: seq, Kind: BreakPrevHash}
	}
	if chainHash(&f.PrevHash, line[:i], line[end:]) != f.Hash {
		return &ChainError{Seq: seq, Kind: BreakHash}
	}
	v.Anchor(seq, f.Hash)
	return nil
}
