package jsonrpc

import (
	"bytes"
	"cmp"
	"slices"
)

// Slots hold what the walk found at each checked path until the message is
// complete: a field's meaning can depend on a member that comes later (params
// before method), so nothing is assigned to the Message until the end.
const (
	slotJSONRPC = iota
	slotID
	slotMethod
	slotParams
	slotResult
	slotError
	slotName
	slotURI
	slotRef
	slotRefType
	slotRefName
	slotRefURI
	slotArguments
	slotMeta
	slotProgressToken
	slotMetaProtocolVersion
	slotMetaClientCapabilities
	slotProtocolVersion
	slotClientInfo
	slotClientName
	slotClientVersion
	slotCapabilities
	slotElicitation
	slotElicitationURL
	slotNotifications
	slotSubscriptions
	slotResultProtocolVersion
	slotResultType
	slotErrorCode
	slotList
	slotCacheScope
	numSlots
)

// action says how the walk reads the value of a checked member.
type action uint8

const (
	actRaw        action = iota // any value; keep its span
	actString                   // a string; keep it decoded
	actObject                   // an object; walk its checked members
	actParams                   // an object (walked) or an array
	actResult                   // any value; walked with Scanner.resultLevel if an object
	actStrings                  // an array of strings
	actList                     // the filtered list (Filter only)
	actCacheScope               // result.cacheScope (Filter only)
)

type field struct {
	key  string
	act  action
	slot uint8
	sub  *level // actObject
}

// level lists the checked members of one object on the checked paths. Every
// object on a checked path is refused if it has a duplicate key or a key that
// equals one of its checked keys except for letter case.
type level struct {
	fields []field
	result bool // the filter's result object: cacheScope may be added at its end
}

func (lv *level) find(key []byte) *field {
	for i := range lv.fields {
		if string(key) == lv.fields[i].key {
			return &lv.fields[i]
		}
	}
	return nil
}

func (lv *level) ambiguous(key []byte) bool {
	for i := range lv.fields {
		if foldEqual(key, lv.fields[i].key) {
			return true
		}
	}
	return false
}

// The checked paths (DESIGN.md section 3, MCP-REQUIREMENTS.md 2.1 and 3).
var (
	elicitationLevel  = level{fields: []field{{"url", actRaw, slotElicitationURL, nil}}}
	capabilitiesLevel = level{fields: []field{{"elicitation", actObject, slotElicitation, &elicitationLevel}}}
	clientInfoLevel   = level{fields: []field{
		{"name", actString, slotClientName, nil},
		{"version", actString, slotClientVersion, nil},
	}}
	notificationsLevel = level{fields: []field{{"resourceSubscriptions", actStrings, slotSubscriptions, nil}}}
	refLevel           = level{fields: []field{
		{"type", actString, slotRefType, nil},
		{"name", actString, slotRefName, nil},
		{"uri", actString, slotRefURI, nil},
	}}
	metaLevel = level{fields: []field{
		{"progressToken", actRaw, slotProgressToken, nil},
		{"io.modelcontextprotocol/protocolVersion", actString, slotMetaProtocolVersion, nil},
		{"io.modelcontextprotocol/clientCapabilities", actRaw, slotMetaClientCapabilities, nil},
	}}
	paramsLevel = level{fields: []field{
		{"name", actString, slotName, nil},
		{"uri", actString, slotURI, nil},
		{"ref", actObject, slotRef, &refLevel},
		{"arguments", actRaw, slotArguments, nil},
		{"_meta", actObject, slotMeta, &metaLevel},
		{"protocolVersion", actString, slotProtocolVersion, nil},
		{"clientInfo", actObject, slotClientInfo, &clientInfoLevel},
		{"capabilities", actObject, slotCapabilities, &capabilitiesLevel},
		{"notifications", actObject, slotNotifications, &notificationsLevel},
	}}
	resultLevel = level{fields: []field{
		{"protocolVersion", actString, slotResultProtocolVersion, nil},
		{"resultType", actString, slotResultType, nil},
	}}
	errorLevel = level{fields: []field{{"code", actRaw, slotErrorCode, nil}}}
	topLevel   = level{fields: []field{
		{"jsonrpc", actString, slotJSONRPC, nil},
		{"id", actRaw, slotID, nil},
		{"method", actString, slotMethod, nil},
		{"params", actParams, slotParams, &paramsLevel},
		{"result", actResult, slotResult, nil},
		{"error", actObject, slotError, &errorLevel},
	}}
)

// Scanner reads JSON-RPC 2.0 / MCP messages without decoding them into Go
// values: it validates the whole body and records where the checked fields
// are. A Scanner is reusable and not safe for concurrent use; in steady state
// a Scan allocates nothing.
type Scanner struct {
	body    []byte
	off     int    // where the last call failed
	scratch []byte // decoded strings that had escapes (Message fields alias it)
	keys    []keyRef
	sorted  []keyRef
	vals    [numSlots][]byte
	has     uint64 // bit per slot: member present
	bad     uint64 // bit per slot: present with the wrong type
	semErr  error  // first semantic problem; reported once the syntax is known good
	semOff  int

	resultLevel *level
	flt         filterState
}

type keyRef struct {
	key []byte // decoded
	at  int    // position of its opening quote
}

// Offset returns the byte offset in the body at which the last Scan,
// SplitBatch or AppendFiltered failed (0 after a success).
func (s *Scanner) Offset() int { return s.off }

// Reset drops the references the Scanner holds to the last body; buffers are
// kept for reuse.
func (s *Scanner) Reset() {
	s.body = nil
	s.off = 0
	s.scratch = s.scratch[:0]
	clear(s.keys[:cap(s.keys)])
	s.keys = s.keys[:0]
	clear(s.sorted[:cap(s.sorted)])
	s.sorted = s.sorted[:0]
	s.vals = [numSlots][]byte{}
	s.has, s.bad = 0, 0
	s.semErr, s.semOff = nil, 0
	s.flt = filterState{}
}

// Scan validates body as one JSON-RPC message and fills m (see Message for
// what each field holds). body must be a single JSON object; a JSON array is
// a batch (ErrBatch; see SplitBatch). Scan refuses what it cannot read with
// certainty: malformed JSON (errors matching ErrSyntax), a duplicate key or a
// key that differs from a checked key only in letter case in an object on the
// path to a checked field, and messages that are not JSON-RPC 2.0. On error m
// is left reset and Offset tells where the problem is.
func (s *Scanner) Scan(body []byte, m *Message) error {
	s.resultLevel = &resultLevel
	return s.scan(body, m)
}

func (s *Scanner) scan(body []byte, m *Message) error {
	m.Reset()
	s.body = body
	s.off = 0
	s.scratch = s.scratch[:0]
	s.keys = s.keys[:0]
	s.vals = [numSlots][]byte{}
	s.has, s.bad = 0, 0
	s.semErr, s.semOff = nil, 0

	i := skipSpace(body, 0)
	if i >= len(body) {
		return s.fail(i, ErrTruncated)
	}
	if body[i] != '{' {
		// Malformed JSON is reported as such before the shape is.
		end, err := skipValue(body, i, 0)
		if err != nil {
			return s.fail(end, err)
		}
		if end = skipSpace(body, end); end != len(body) {
			return s.fail(end, ErrTrailingData)
		}
		if body[i] == '[' {
			return s.fail(i, ErrBatch)
		}
		return s.fail(i, ErrNotObject)
	}
	end, err := s.walkObject(i, 1, &topLevel)
	if err != nil {
		return s.fail(end, err)
	}
	if end = skipSpace(body, end); end != len(body) {
		return s.fail(end, ErrTrailingData)
	}
	if s.semErr != nil {
		return s.fail(s.semOff, s.semErr)
	}
	if err := s.finish(m); err != nil {
		m.Reset()
		return err
	}
	return nil
}

func (s *Scanner) fail(off int, err error) error {
	s.off = off
	return err
}

// refuse records a semantic problem; syntax errors found later win, so that
// malformed JSON is always reported as such.
func (s *Scanner) refuse(off int, err error) {
	if s.semErr == nil {
		s.semErr, s.semOff = err, off
	}
}

// unescape decodes a string with escapes into the scratch buffer. Earlier
// results stay valid when the buffer grows: the old array is only read.
func (s *Scanner) unescape(raw []byte) []byte {
	n := len(s.scratch)
	s.scratch = appendUnescaped(s.scratch, raw)
	return s.scratch[n:len(s.scratch):len(s.scratch)]
}

// walkObject walks the object at s.body[i], at the given depth, whose checked
// members lv lists, and returns the position after it.
func (s *Scanner) walkObject(i, depth int, lv *level) (int, error) {
	b := s.body
	if depth > MaxDepth {
		return i, ErrDepth
	}
	open := i
	mark := len(s.keys)
	members, lastEnd := 0, i
	j, done := firstItem(b, i, '}')
	for !done {
		raw, esc, at, next, err := readKey(b, j)
		if err != nil {
			return next, err
		}
		key := raw
		if esc {
			key = s.unescape(raw)
		}
		s.keys = append(s.keys, keyRef{key, at})
		if f := lv.find(key); f != nil {
			j, err = s.member(next, depth, f)
		} else {
			if lv.ambiguous(key) {
				s.refuse(at, ErrAmbiguousKey)
			}
			j, err = skipValue(b, next, depth)
		}
		if err != nil {
			return j, err
		}
		members, lastEnd = members+1, j
		if j, done, err = nextItem(b, j, '}'); err != nil {
			return j, err
		}
	}
	s.checkDuplicates(s.keys[mark:])
	s.keys = s.keys[:mark]
	if lv.result && s.flt.active {
		s.flt.endResult(b, open, lastEnd, members, s.has&(1<<slotCacheScope) != 0)
	}
	return j, nil
}

// member reads the value of a checked member at s.body[i] (after optional
// whitespace) inside an object at depth.
func (s *Scanner) member(i, depth int, f *field) (int, error) {
	b := s.body
	i = skipSpace(b, i)
	if i >= len(b) {
		return i, ErrTruncated
	}
	bit := uint64(1) << f.slot
	s.has |= bit
	start, c := i, b[i]
	var err error
	switch f.act {
	case actString:
		if c == '"' {
			end, esc, err := scanString(b, i)
			if err != nil {
				return end, err
			}
			v := b[i+1 : end-1]
			if esc {
				v = s.unescape(v)
			}
			s.vals[f.slot] = v
			return end, nil
		}
		s.bad |= bit
		return skipValue(b, i, depth)
	case actObject, actParams:
		switch {
		case c == '{':
			i, err = s.walkObject(i, depth+1, f.sub)
		case c == '[' && f.act == actParams:
			i, err = skipValue(b, i, depth)
		default:
			s.bad |= bit
			i, err = skipValue(b, i, depth)
		}
	case actResult:
		if c == '{' {
			i, err = s.walkObject(i, depth+1, s.resultLevel)
		} else {
			i, err = skipValue(b, i, depth)
		}
	case actStrings:
		ok := false
		if c == '[' {
			i, ok, err = scanStringArray(b, i, depth+1)
		} else {
			i, err = skipValue(b, i, depth)
		}
		if !ok {
			s.bad |= bit
		}
	case actList:
		if c == '[' {
			i, err = s.filterList(i, depth+1)
		} else {
			i, err = skipValue(b, i, depth)
		}
	case actCacheScope:
		if i, err = skipValue(b, i, depth); err == nil {
			s.flt.replaceCacheScope(b, start, i)
		}
	default: // actRaw
		i, err = skipValue(b, i, depth)
	}
	if err != nil {
		return i, err
	}
	s.vals[f.slot] = b[start:i]
	return i, nil
}

// checkDuplicates refuses an object with the same (decoded) key twice. Small
// objects are checked pair by pair; larger ones by sorting, so that a body
// with a huge object costs n log n, not n².
func (s *Scanner) checkDuplicates(keys []keyRef) {
	if len(keys) <= 16 {
		for a := 1; a < len(keys); a++ {
			for c := 0; c < a; c++ {
				if bytes.Equal(keys[a].key, keys[c].key) {
					s.refuse(keys[a].at, ErrDuplicateKey)
					return
				}
			}
		}
		return
	}
	sorted := append(s.sorted[:0], keys...)
	slices.SortFunc(sorted, func(x, y keyRef) int {
		if c := bytes.Compare(x.key, y.key); c != 0 {
			return c
		}
		return cmp.Compare(x.at, y.at)
	})
	for a := 1; a < len(sorted); a++ {
		if bytes.Equal(sorted[a].key, sorted[a-1].key) {
			s.refuse(sorted[a].at, ErrDuplicateKey)
			break
		}
	}
	s.sorted = sorted[:0]
}

// finish checks the message's shape and fills m.
func (s *Scanner) finish(m *Message) error {
	v := &s.vals
	has := func(slot int) bool { return s.has&(1<<slot) != 0 }
	if string(v[slotJSONRPC]) != "2.0" {
		return s.fail(0, ErrVersion)
	}
	method := v[slotMethod]
	switch {
	case has(slotMethod):
		if method == nil || has(slotResult) || has(slotError) {
			return s.fail(0, ErrInvalidMessage)
		}
		m.Kind = KindNotification
		if has(slotID) {
			if !validID(v[slotID], false) {
				return s.fail(0, ErrInvalidID)
			}
			m.Kind = KindRequest
		}
	case has(slotResult):
		if has(slotError) {
			return s.fail(0, ErrInvalidMessage)
		}
		if !has(slotID) || !validID(v[slotID], false) {
			return s.fail(0, ErrInvalidID)
		}
		m.Kind = KindResult
	case has(slotError):
		if has(slotID) && !validID(v[slotID], true) {
			return s.fail(0, ErrInvalidID)
		}
		m.Kind = KindError
	default:
		return s.fail(0, ErrInvalidMessage)
	}

	// A checked field of the wrong type cannot be read with certainty.
	// Fields whose meaning depends on the method only count for it.
	const always = 1<<slotParams | 1<<slotError | 1<<slotMeta | 1<<slotMetaProtocolVersion |
		1<<slotResultProtocolVersion | 1<<slotResultType
	relevant := uint64(always)
	switch string(method) {
	case "tools/call", "prompts/get":
		relevant |= 1 << slotName
		m.Name = v[slotName]
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		relevant |= 1 << slotURI
		m.Name = v[slotURI]
	case "completion/complete":
		relevant |= 1<<slotRef | 1<<slotRefType | 1<<slotRefName | 1<<slotRefURI
		m.RefType = v[slotRefType]
		switch string(m.RefType) {
		case "ref/prompt":
			m.Name = v[slotRefName]
		case "ref/resource":
			m.Name = v[slotRefURI]
		}
	case "initialize":
		relevant |= 1<<slotProtocolVersion | 1<<slotClientInfo | 1<<slotClientName |
			1<<slotClientVersion | 1<<slotCapabilities | 1<<slotElicitation
		m.ClientName, m.ClientVersion = v[slotClientName], v[slotClientVersion]
		m.ElicitationURL = has(slotElicitationURL)
	case "subscriptions/listen":
		relevant |= 1<<slotNotifications | 1<<slotSubscriptions
		m.Subscriptions = v[slotSubscriptions]
	}
	if s.bad&relevant != 0 {
		return s.fail(0, ErrInvalidMessage)
	}

	m.Method = method
	m.ID = v[slotID]
	m.Params = v[slotParams]
	m.Arguments = v[slotArguments]
	m.ProgressToken = v[slotProgressToken]
	m.HasMeta = has(slotMeta)
	m.MetaProtocolVersion = v[slotMetaProtocolVersion]
	m.HasMetaClientCapabilities = has(slotMetaClientCapabilities)
	switch m.Kind {
	case KindRequest, KindNotification:
		m.ProtocolVersion = v[slotProtocolVersion]
	case KindResult:
		m.ProtocolVersion = v[slotResultProtocolVersion]
		m.Result = v[slotResult]
		m.ResultType = v[slotResultType]
	case KindError:
		m.ErrorCode, _ = parseInt64(v[slotErrorCode])
	}
	return nil
}

// validID reports whether a raw id token is a string or an integer (or null,
// where allowed). MCP-REQUIREMENTS.md 2.1.1: ids are strings or integers,
// never null in requests; keep them raw to preserve type and precision.
func validID(tok []byte, allowNull bool) bool {
	switch c := tok[0]; {
	case c == '"':
		return true
	case c == 'n':
		return allowNull
	case c == '-' || c-'0' < 10:
		for _, d := range tok { // no fraction or exponent
			if d == '.' || d|0x20 == 'e' {
				return false
			}
		}
		return true
	}
	return false
}

// SplitBatch validates body as a JSON-RPC batch (a non-empty JSON array) and
// appends the span of each element to dst. The elements are not checked as
// messages: Scan each one. Spans alias body.
func (s *Scanner) SplitBatch(body []byte, dst [][]byte) ([][]byte, error) {
	s.off = 0
	i := skipSpace(body, 0)
	if i >= len(body) {
		return dst, s.fail(i, ErrTruncated)
	}
	if body[i] != '[' {
		return dst, s.fail(i, ErrNotBatch)
	}
	n := len(dst)
	j, done := firstItem(body, i, ']')
	var err error
	for !done {
		j = skipSpace(body, j)
		start := j
		if j, err = skipValue(body, j, 1); err != nil {
			return dst[:n], s.fail(j, err)
		}
		dst = append(dst, body[start:j])
		if j, done, err = nextItem(body, j, ']'); err != nil {
			return dst[:n], s.fail(j, err)
		}
	}
	if k := skipSpace(body, j); k != len(body) {
		return dst[:n], s.fail(k, ErrTrailingData)
	}
	if len(dst) == n {
		return dst, s.fail(i, ErrEmptyBatch)
	}
	return dst, nil
}

// IsBatch reports whether body's first non-whitespace byte is '[', that is,
// whether it is a JSON-RPC batch rather than one message.
func IsBatch(body []byte) bool {
	i := skipSpace(body, 0)
	return i < len(body) && body[i] == '['
}
