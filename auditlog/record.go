package auditlog

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
)

// Kind says what a record is about (DESIGN.md section 6).
type Kind string

// The record kinds.
const (
	KindSession  Kind = "session"
	KindActivity Kind = "activity"
	KindApproval Kind = "approval"
	KindGrant    Kind = "grant"
	KindAdmin    Kind = "admin"
)

// Direction is which way a message travelled through the gateway.
type Direction string

// The directions.
const (
	ClientToServer Direction = "client_to_server"
	ServerToClient Direction = "server_to_client"
)

// MessageKind is the JSON-RPC shape of the message a record describes.
type MessageKind string

// The message kinds.
const (
	MessageRequest      MessageKind = "request"
	MessageNotification MessageKind = "notification"
	MessageResponse     MessageKind = "response"
)

// Decision is what the gateway did with a message.
type Decision string

// The decisions.
const (
	DecisionAllow            Decision = "allow"
	DecisionDeny             Decision = "deny"
	DecisionApprovalRequired Decision = "approval_required"
	DecisionRefused          Decision = "refused" // the scanner could not read it with certainty
)

// The result statuses of a response record.
const (
	StatusOK    = "ok"    // a JSON-RPC result
	StatusError = "error" // a JSON-RPC error; ErrorCode holds its code
)

// ResourceTypeMCP is the resource_type of every record this gateway writes.
const ResourceTypeMCP = "MCP"

// Hash is a SHA-256 chain hash. In JSON it is 64 lowercase hex digits.
type Hash [32]byte

// IsZero reports whether h is all zero bytes (no hash; or, as a
// prev_hash, the start of the chain).
func (h Hash) IsZero() bool { return h == Hash{} }

// String returns h in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText implements encoding.TextMarshaler (hex).
func (h Hash) MarshalText() ([]byte, error) { return hex.AppendEncode(nil, h[:]), nil }

var errBadHash = errors.New("auditlog: a hash must be 64 hex digits")

// UnmarshalText implements encoding.TextUnmarshaler (hex).
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 2*len(h) {
		return errBadHash
	}
	if _, err := hex.Decode(h[:], b); err != nil {
		return errBadHash
	}
	return nil
}

// Device is the client a session came from.
type Device struct {
	ClientName    string `json:"client_name,omitempty"`    // clientInfo.name of initialize
	ClientVersion string `json:"client_version,omitempty"` // clientInfo.version of initialize
	UserAgent     string `json:"user_agent,omitempty"`
	RemoteAddr    string `json:"remote_addr,omitempty"`
}

// Record is one audit record: a session, an activity (one message), an
// approval, a grant or an admin action. Its JSON form (AppendJSON) is the
// record format of DESIGN.md section 6, used in the spool, by the admin
// API and for shipping; the struct tags describe the same form so that
// encoding/json reads it back.
//
// ID, Seq, PrevHash and Hash belong to the chain: Log.Append assigns them.
// JSONRPCID, Arguments, Served and ProgressToken are raw JSON values, written as
// given: the caller passes only values it has validated (the spans
// jsonrpc.Scan returned, or JSON this process produced). A Record is not
// safe for concurrent use; Append does not keep it after it returns.
type Record struct {
	ID           string    `json:"id"`
	Seq          uint64    `json:"seq"`
	PrevHash     Hash      `json:"prev_hash,omitzero"`
	Hash         Hash      `json:"hash,omitzero"`
	Time         time.Time `json:"time"`
	Kind         Kind      `json:"kind,omitempty"`
	SessionID    string    `json:"session_id,omitempty"`
	App          string    `json:"app,omitempty"`
	User         string    `json:"user,omitempty"`
	Groups       []string  `json:"groups,omitempty"`
	Device       Device    `json:"device,omitzero"`
	ResourceType string    `json:"resource_type,omitempty"`
	// ProtocolVersion is the MCP revision a session negotiated (session
	// records) or a 2026-07-28 request declared.
	ProtocolVersion string          `json:"protocol_version,omitempty"`
	Direction       Direction       `json:"direction,omitempty"`
	Message         MessageKind     `json:"message,omitempty"`
	Method          string          `json:"method,omitempty"`
	JSONRPCID       json.RawMessage `json:"jsonrpc_id,omitempty"` // as sent: a string or number token
	Name            string          `json:"name,omitempty"`       // tool or prompt name, or resource URI
	Arguments       json.RawMessage `json:"arguments,omitempty"`  // after audit.arguments and redact
	// Served is what a list response showed the caller after filtering:
	// {"count":N,"names":[...]}, with "truncated":true when the names
	// were capped.
	Served        json.RawMessage `json:"served,omitempty"`
	ProgressToken json.RawMessage `json:"progress_token,omitempty"`
	Decision      Decision        `json:"decision,omitempty"`
	Rule          string          `json:"rule,omitempty"` // the rule or grant behind the decision
	Reason        string          `json:"reason,omitempty"`
	Status        string          `json:"status,omitempty"` // StatusOK or StatusError
	ErrorCode     int64           `json:"error_code,omitempty"`
	LatencyUS     int64           `json:"latency_us,omitempty"`
	BytesIn       int64           `json:"bytes_in,omitempty"`
	BytesOut      int64           `json:"bytes_out,omitempty"`
}

// Reset zeroes r for reuse, keeping the capacity of Groups.
func (r *Record) Reset() {
	groups := r.Groups[:0]
	*r = Record{Groups: groups}
}

// AppendJSON appends r as one JSON object, with the fields in the order of
// the Record type, empty optional fields left out, and no newline:
//
//	{"id":"gw1-7","seq":7,"prev_hash":"9f…","hash":"2c…","time":"2026-11-25T23:01:02.000000042Z",
//	 "kind":"activity",…,"bytes_out":512}
//
// id, seq and time are always written; prev_hash and hash only when not
// zero. time is RFC 3339 in UTC with nine fraction digits (years outside
// 0000–9999 are clamped to that range). Strings are escaped as
// encoding/json does, except that <, > and & are kept; invalid UTF-8
// becomes U+FFFD, byte by byte, so the output is always valid UTF-8, and
// a record decoded with encoding/json encodes again to the same bytes. The
// raw fields (JSONRPCID, Arguments, Served, ProgressToken) are copied as they are:
// the output is valid JSON only when they are (see Record).
//
// AppendJSON does not allocate when dst has room.
func AppendJSON(dst []byte, r *Record) []byte {
	dst = appendHead(dst, r)
	if !r.Hash.IsZero() {
		dst = appendHashMember(dst, &r.Hash)
	}
	return appendBody(dst, r)
}

// appendHead appends the record's opening: id, seq and prev_hash.
func appendHead(dst []byte, r *Record) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, r.ID)
	return appendSeqPrev(dst, r.Seq, &r.PrevHash)
}

// appendSeqPrev appends the seq and prev_hash members.
func appendSeqPrev(dst []byte, seq uint64, prev *Hash) []byte {
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	if !prev.IsZero() {
		dst = append(dst, `,"prev_hash":"`...)
		dst = hex.AppendEncode(dst, prev[:])
		dst = append(dst, '"')
	}
	return dst
}

// hashMember opens the hash member; the canonical encoding of a record is
// its JSON without this member (see doc.go).
const hashMember = `,"hash":"`

func appendHashMember(dst []byte, h *Hash) []byte {
	dst = append(dst, hashMember...)
	dst = hex.AppendEncode(dst, h[:])
	return append(dst, '"')
}

// appendBody appends everything after the hash member, from time to the
// closing brace. It depends on no chain field, so Append encodes it before
// the record has a place in the chain.
func appendBody(dst []byte, r *Record) []byte {
	dst = append(dst, `,"time":`...)
	dst = appendTime(dst, r.Time)
	dst = appendOptString(dst, `,"kind":`, string(r.Kind))
	dst = appendOptString(dst, `,"session_id":`, r.SessionID)
	dst = appendOptString(dst, `,"app":`, r.App)
	dst = appendOptString(dst, `,"user":`, r.User)
	if len(r.Groups) > 0 {
		dst = append(dst, `,"groups":[`...)
		for i, g := range r.Groups {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, g)
		}
		dst = append(dst, ']')
	}
	if d := &r.Device; *d != (Device{}) {
		dst = append(dst, `,"device":{`...)
		n := len(dst)
		dst = appendOptString(dst, `,"client_name":`, d.ClientName)
		dst = appendOptString(dst, `,"client_version":`, d.ClientVersion)
		dst = appendOptString(dst, `,"user_agent":`, d.UserAgent)
		dst = appendOptString(dst, `,"remote_addr":`, d.RemoteAddr)
		// Drop the comma that opened the first member.
		copy(dst[n:], dst[n+1:])
		dst = append(dst[:len(dst)-1], '}')
	}
	dst = appendOptString(dst, `,"resource_type":`, r.ResourceType)
	dst = appendOptString(dst, `,"protocol_version":`, r.ProtocolVersion)
	dst = appendOptString(dst, `,"direction":`, string(r.Direction))
	dst = appendOptString(dst, `,"message":`, string(r.Message))
	dst = appendOptString(dst, `,"method":`, r.Method)
	dst = appendOptRaw(dst, `,"jsonrpc_id":`, r.JSONRPCID)
	dst = appendOptString(dst, `,"name":`, r.Name)
	dst = appendOptRaw(dst, `,"arguments":`, r.Arguments)
	dst = appendOptRaw(dst, `,"served":`, r.Served)
	dst = appendOptRaw(dst, `,"progress_token":`, r.ProgressToken)
	dst = appendOptString(dst, `,"decision":`, string(r.Decision))
	dst = appendOptString(dst, `,"rule":`, r.Rule)
	dst = appendOptString(dst, `,"reason":`, r.Reason)
	dst = appendOptString(dst, `,"status":`, r.Status)
	dst = appendOptInt(dst, `,"error_code":`, r.ErrorCode)
	dst = appendOptInt(dst, `,"latency_us":`, r.LatencyUS)
	dst = appendOptInt(dst, `,"bytes_in":`, r.BytesIn)
	dst = appendOptInt(dst, `,"bytes_out":`, r.BytesOut)
	return append(dst, '}')
}

func appendOptString(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	return appendString(append(dst, key...), s)
}

func appendOptRaw(dst []byte, key string, raw []byte) []byte {
	if len(raw) == 0 {
		return dst
	}
	return append(append(dst, key...), raw...)
}

func appendOptInt(dst []byte, key string, v int64) []byte {
	if v == 0 {
		return dst
	}
	return strconv.AppendInt(append(dst, key...), v, 10)
}

// appendTime appends t as a quoted RFC 3339 UTC time with nanoseconds,
// "2006-01-02T15:04:05.000000000Z", digit by digit (time.AppendFormat
// parses its layout on every call).
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	nsec := t.Nanosecond()
	switch {
	case year < 0:
		year, month, day, hour, minute, sec, nsec = 0, 1, 1, 0, 0, 0, 0
	case year > 9999:
		year, month, day, hour, minute, sec, nsec = 9999, 12, 31, 23, 59, 59, 999999999
	}
	dst = append(dst, '"')
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, nsec, 9)
	return append(dst, 'Z', '"')
}

// appendDigits appends the width lowest decimal digits of v (v >= 0),
// zero-padded.
func appendDigits(dst []byte, v, width int) []byte {
	n := len(dst) + width
	dst = append(dst, "000000000"[:width]...)
	for i := n - 1; i >= n-width; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
	return dst
}

// plain marks the ASCII bytes that go into a JSON string as they are.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a JSON string: ", \ and control characters
// escaped, U+2028 and U+2029 escaped (JavaScript line terminators, as
// encoding/json does), each invalid UTF-8 byte replaced by the character
// U+FFFD (encoding/json writes the escape \ufffd instead; writing the
// character, as a valid U+FFFD in s is written, makes decoding and
// encoding again give the same bytes).
func appendString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, `\n`...)
			case '\r':
				dst = append(dst, `\r`...)
			case '\t':
				dst = append(dst, `\t`...)
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		var esc string
		switch {
		case r == utf8.RuneError && size == 1:
			esc = "\uFFFD" // as the character, like a valid U+FFFD: re-encoding is stable
		case r == '\u2028':
			esc = `\u2028`
		case r == '\u2029':
			esc = `\u2029`
		default:
			i += size
			continue
		}
		dst = append(append(dst, s[start:i]...), esc...)
		i += size
		start = i
	}
	return append(append(dst, s[start:]...), '"')
}
