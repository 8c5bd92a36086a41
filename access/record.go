package access

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Key layout in the state.Store (doc.go draws it).
const (
	requestPrefix = "access/requests/"
	grantPrefix   = "access/grants/"
	pendingPrefix = "access/pending/"
)

func requestKey(id string) string { return requestPrefix + id }
func grantKey(id string) string   { return grantPrefix + id }

// pendingKey is the dedupe key of (user, app, tools, hash): the hex SHA-256
// of the length-prefixed fields, so that no choice of names collides and
// the key has a fixed length. tools must be sorted.
func pendingKey(user, app string, tools []string, hash *[32]byte) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	field := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	field(user)
	field(app)
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(tools)))])
	for _, t := range tools {
		field(t)
	}
	if hash != nil {
		h.Write([]byte{1})
		h.Write(hash[:])
	} else {
		h.Write([]byte{0})
	}
	return pendingPrefix + hex.EncodeToString(h.Sum(nil))
}

// recordVersion is written in every record; a reader refuses others.
const recordVersion = 1

// requestRecord is a Request as stored: the Request's own fields plus what
// the flow said when it was created.
type requestRecord struct {
	V int `json:"v"`
	Request
	GrantTTL time.Duration `json:"grant_ttl_ns"`
}

// grantRecord is a Grant as stored.
type grantRecord struct {
	V int `json:"v"`
	Grant
}

var errBadRecord = errors.New("access: malformed stored record")

func encodeRequest(r *requestRecord) []byte {
	r.V = recordVersion
	b, err := json.Marshal(r)
	if err != nil {
		panic("BUG: access: cannot encode a request: " + err.Error())
	}
	return b
}

// decodeRequest reads a stored request and checks the invariants the
// state machine relies on.
func decodeRequest(b []byte) (*requestRecord, error) {
	var r requestRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	if err := checkShared(r.V, r.ID, r.User, r.App, r.Tools, r.ArgumentsHash); err != nil {
		return nil, err
	}
	switch {
	case !r.Status.Valid():
		return nil, fmt.Errorf("%w: status %q", errBadRecord, r.Status)
	case len(r.Levels) == 0 || r.Level < 1 || r.Level > len(r.Levels):
		return nil, fmt.Errorf("%w: level %d of %d", errBadRecord, r.Level, len(r.Levels))
	case r.GrantTTL <= 0:
		return nil, fmt.Errorf("%w: grant ttl %d", errBadRecord, r.GrantTTL)
	}
	for _, l := range r.Levels {
		if l.Count < 1 {
			return nil, fmt.Errorf("%w: level count %d", errBadRecord, l.Count)
		}
	}
	return &r, nil
}

func encodeGrant(g *Grant) []byte {
	b, err := json.Marshal(grantRecord{V: recordVersion, Grant: *g})
	if err != nil {
		panic("BUG: access: cannot encode a grant: " + err.Error())
	}
	return b
}

func decodeGrant(b []byte) (*liveGrant, error) {
	var r grantRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	if err := checkShared(r.V, r.ID, r.User, r.App, r.Tools, r.ArgumentsHash); err != nil {
		return nil, err
	}
	return newLiveGrant(r.Grant), nil
}

// checkShared checks the fields that requests and grants share.
func checkShared(v int, id, user, app string, tools []string, hash string) error {
	switch {
	case v != recordVersion:
		return fmt.Errorf("%w: version %d", errBadRecord, v)
	case id == "" || user == "" || app == "" || len(tools) == 0:
		return fmt.Errorf("%w: missing id, user, app or tools", errBadRecord)
	case hash != "" && !validHash(hash):
		return fmt.Errorf("%w: arguments hash", errBadRecord)
	}
	return nil
}

// validHash reports whether s is a SHA-256 in lowercase hex.
func validHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func hashHex(h *[32]byte) string {
	if h == nil {
		return ""
	}
	return hex.EncodeToString(h[:])
}

// clone returns a deep copy of r.
func (r *requestRecord) clone() *requestRecord {
	c := *r
	c.Tools = slices.Clone(r.Tools)
	c.Levels = slices.Clone(r.Levels)
	for i := range c.Levels {
		c.Levels[i].Users = slices.Clone(c.Levels[i].Users)
		c.Levels[i].Groups = slices.Clone(c.Levels[i].Groups)
	}
	c.Decisions = slices.Clone(r.Decisions)
	return &c
}
