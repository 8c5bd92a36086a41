package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrBadSession is what Open returns for every session id it does not
// accept: forged, garbled, truncated, too long, of another version or sealed
// with another key. The proxy answers it with 404 (MCP-REQUIREMENTS.md 1.5.3).
var ErrBadSession = errors.New("identity: invalid session id")

// Session is what a gateway session id binds (DESIGN.md section 4,
// MCP-REQUIREMENTS.md 1.5.5 and 1.5.6).
type Session struct {
	// User is the Principal.User of the session's owner (AnonymousUser on
	// auth: none applications). A request from any other user must not use
	// the session (MCP-REQUIREMENTS.md 1.5.6: 404).
	User string
	// App is the application the session was opened on.
	App string
	// ProtocolVersion is the MCP version negotiated at initialize.
	ProtocolVersion string
	// UpstreamID is the upstream server's MCP-Session-Id, or "" when the
	// upstream is stateless. It is never shown to the client.
	UpstreamID string
	// ElicitationURL reports that the client declared URL-mode
	// elicitation (capabilities.elicitation.url) at initialize, so the
	// gateway may answer with a URL-elicitation-required error.
	ElicitationURL bool
	// Issued is when the session was opened (nanosecond precision; Open
	// returns it in UTC). Mint uses the current time when it is zero.
	Issued time.Time
}

// Limits on what a session id carries. Mint refuses a Session over them, so
// every id it mints is at most MaxSessionIDLen bytes, and Open refuses longer
// ids before decoding anything.
const (
	// SessionKeySize is the size of the key NewSessionCodec takes.
	SessionKeySize = 32
	// MaxUpstreamSessionIDLen is the longest upstream session id a gateway
	// session id can carry.
	MaxUpstreamSessionIDLen = 512
	// MaxSessionIDLen is the length of the longest id Mint can return.
	MaxSessionIDLen = (maxSessionRawLen*8 + 5) / 6

	maxSessionUserLen    = 512
	maxSessionAppLen     = 256
	maxSessionVersionLen = 128

	sessionVersion1 = 1
	// sessionContextV1 is the additional data of every v1 id: it binds the
	// ciphertext to this use and this format version.
	sessionContextV1 = "mcpgw session v1"
	// sessionKeyInfo derives the AES key from the session key file (HKDF
	// info), so the same file can later key other things independently.
	sessionKeyInfo = "mcpgw session id v1 AES-256-GCM"

	issuedLen = 8
	nonceLen  = 12
	tagLen    = 16
	// Each field is preceded by its length as a uvarint, which takes two
	// bytes for every limit from 1<<7 to 1<<14-1.
	maxUvarintLen      = 2
	minSessionPlainLen = issuedLen + 4
	// A flags byte follows the fields when a flag is set; ids minted
	// before there were flags have none and open with every flag clear.
	flagsLen           = 1
	maxSessionPlainLen = issuedLen + 4*maxUvarintLen +
		maxSessionUserLen + maxSessionAppLen + maxSessionVersionLen + MaxUpstreamSessionIDLen + flagsLen

	flagElicitationURL = 1 << 0
	minSessionRawLen   = 1 + nonceLen + minSessionPlainLen + tagLen
	maxSessionRawLen   = 1 + nonceLen + maxSessionPlainLen + tagLen
	minSessionIDLen    = (minSessionRawLen*8 + 5) / 6
)

// Every field limit must take exactly maxUvarintLen bytes of uvarint, so
// that MaxSessionIDLen is exact (these fail to compile otherwise).
const (
	_ = uint(1<<(7*maxUvarintLen) - 1 - max(maxSessionUserLen, maxSessionAppLen, maxSessionVersionLen, MaxUpstreamSessionIDLen))
	_ = uint(min(maxSessionUserLen, maxSessionAppLen, maxSessionVersionLen, MaxUpstreamSessionIDLen) - 1<<(7*(maxUvarintLen-1)))
)

// SessionCodec mints and opens gateway session ids. It is safe for
// concurrent use. Any gateway holding the same key opens the ids of the
// others, so no session table is shared between replicas.
type SessionCodec struct {
	aead    cipher.AEAD // AES-256-GCM, random 96-bit nonce prepended by Seal
	context []byte      // sessionContextV1; never modified
	enc     *base64.Encoding
	scratch sync.Pool // *sessionScratch
}

// sessionScratch holds the buffers of one Mint or Open, so that neither
// allocates more than the strings it returns.
type sessionScratch struct {
	raw   [maxSessionRawLen]byte   // version, nonce, ciphertext, tag
	plain [maxSessionPlainLen]byte // the encoded Session
	text  [MaxSessionIDLen]byte    // base64url of raw
}

// NewSessionCodec returns a codec keyed by key, which must be
// SessionKeySize random bytes (LoadOrCreateSessionKey). The AES-256 key is
// derived from it with HKDF-SHA-256; key itself is not kept.
func NewSessionCodec(key []byte) (*SessionCodec, error) {
	if len(key) != SessionKeySize {
		return nil, fmt.Errorf("identity: session key is %d bytes, want %d", len(key), SessionKeySize)
	}
	aead, err := newAEAD(key, sessionKeyInfo, "session")
	if err != nil {
		return nil, err
	}
	return &SessionCodec{
		aead:    aead,
		context: []byte(sessionContextV1),
		enc:     base64.RawURLEncoding.Strict(),
		scratch: sync.Pool{New: func() any { return new(sessionScratch) }},
	}, nil
}

// newAEAD derives an AES-256 key from key with HKDF-SHA-256 under info
// (each use has its own info string, so no two share a cipher key) and
// returns AES-256-GCM with a random 96-bit nonce prepended by Seal. what
// names the use in errors.
func newAEAD(key []byte, info, what string) (cipher.AEAD, error) {
	aesKey, err := hkdf.Key(sha256.New, key, nil, info, 32)
	if err != nil {
		return nil, fmt.Errorf("identity: cannot derive %s cipher key: %w", what, err)
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, fmt.Errorf("identity: cannot create %s cipher: %w", what, err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("identity: cannot create %s cipher: %w", what, err)
	}
	return aead, nil
}

// Mint returns a new session id for s: opaque, authenticated, different on
// every call even for the same s, and made of base64url characters only
// (visible ASCII, MCP-REQUIREMENTS.md 1.5.1). It refuses a Session whose
// fields are over the limits (UpstreamID over MaxUpstreamSessionIDLen bytes,
// User over 512, App over 256, ProtocolVersion over 128) or whose Issued
// cannot be counted in int64 nanoseconds since 1970 (years 1678 to 2262).
// A zero Issued stands for now; Mint does not modify s.
//
// Mint allocates once, for the returned string.
func (c *SessionCodec) Mint(s *Session) (string, error) {
	if err := checkMintable(s); err != nil {
		return "", err
	}
	sc := c.scratch.Get().(*sessionScratch)
	defer c.scratch.Put(sc)

	issued := s.Issued
	if issued.IsZero() {
		issued = time.Now()
	}
	p := binary.BigEndian.AppendUint64(sc.plain[:0], uint64(issued.UnixNano()))
	p = appendField(p, s.User)
	p = appendField(p, s.App)
	p = appendField(p, s.ProtocolVersion)
	p = appendField(p, s.UpstreamID)
	if s.ElicitationURL {
		p = append(p, flagElicitationURL)
	}

	raw := append(sc.raw[:0], sessionVersion1)
	raw = c.aead.Seal(raw, nil, p, c.context)
	clear(p)

	text := sc.text[:c.enc.EncodedLen(len(raw))]
	c.enc.Encode(text, raw)
	return string(text), nil
}

func checkMintable(s *Session) error {
	const prefix = "identity: cannot mint session id: "
	if s == nil {
		return errors.New(prefix + "no session")
	}
	for _, f := range [...]struct {
		name  string
		value string
		limit int
	}{
		{"upstream session id", s.UpstreamID, MaxUpstreamSessionIDLen},
		{"user", s.User, maxSessionUserLen},
		{"application", s.App, maxSessionAppLen},
		{"protocol version", s.ProtocolVersion, maxSessionVersionLen},
	} {
		if len(f.value) > f.limit {
			return fmt.Errorf(prefix+"%s is %d bytes, limit %d", f.name, len(f.value), f.limit)
		}
	}
	// UnixNano is undefined outside int64 nanoseconds; a round trip tells.
	if !s.Issued.IsZero() && !time.Unix(0, s.Issued.UnixNano()).Equal(s.Issued) {
		return errors.New(prefix + "issued time is outside the years 1678 to 2262")
	}
	return nil
}

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Open checks id and, when it is a session id this codec (or another with
// the same key) minted, fills *s from it. Any other input, including one
// with a single bit changed, returns ErrBadSession and leaves *s as it was.
//
// Authenticity rests on AES-GCM alone: Open compares no secret bytes itself.
// It refuses ids longer than MaxSessionIDLen before decoding. Open allocates
// once when it succeeds: one string holding User, App, ProtocolVersion and
// UpstreamID, which are substrings of it (about as many bytes as the id
// decodes to). It does not keep id.
func (c *SessionCodec) Open(id []byte, s *Session) error {
	if len(id) < minSessionIDLen || len(id) > MaxSessionIDLen {
		return ErrBadSession
	}
	// The base64 decoder skips CR and LF; a session id has neither.
	for _, b := range id {
		if !isBase64URLChar(b) {
			return ErrBadSession
		}
	}
	sc := c.scratch.Get().(*sessionScratch)
	defer c.scratch.Put(sc)

	n, err := c.enc.Decode(sc.raw[:], id)
	if err != nil || n < minSessionRawLen || sc.raw[0] != sessionVersion1 {
		return ErrBadSession
	}
	p, err := c.aead.Open(sc.plain[:0], nil, sc.raw[1:n], c.context)
	if err != nil {
		return ErrBadSession
	}
	defer clear(p)
	return decodeSession(p, s)
}

// decodeSession parses an authenticated plaintext. Only Mint wrote it, but
// it is parsed strictly all the same.
func decodeSession(p []byte, s *Session) error {
	if len(p) < minSessionPlainLen {
		return ErrBadSession
	}
	limits := [4]uint64{maxSessionUserLen, maxSessionAppLen, maxSessionVersionLen, MaxUpstreamSessionIDLen}
	var bounds [4][2]int // start and end of each field in p
	pos := issuedLen
	for i, limit := range limits {
		l, k := binary.Uvarint(p[pos:])
		if k <= 0 || l > limit || l > uint64(len(p)-pos-k) {
			return ErrBadSession
		}
		pos += k
		bounds[i] = [2]int{pos, pos + int(l)}
		pos += int(l)
	}
	var flags byte
	switch len(p) - pos {
	case 0:
	case flagsLen:
		// Only known flags, and a flags byte only when one is set: one
		// session has one encoding.
		if flags = p[pos]; flags == 0 || flags&^flagElicitationURL != 0 {
			return ErrBadSession
		}
	default:
		return ErrBadSession
	}
	fields := string(p[issuedLen:pos])
	field := func(i int) string { return fields[bounds[i][0]-issuedLen : bounds[i][1]-issuedLen] }
	*s = Session{
		User:            field(0),
		App:             field(1),
		ProtocolVersion: field(2),
		UpstreamID:      field(3),
		ElicitationURL:  flags&flagElicitationURL != 0,
		Issued:          time.Unix(0, int64(binary.BigEndian.Uint64(p))).UTC(),
	}
	return nil
}

func isBase64URLChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}
