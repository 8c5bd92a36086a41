package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// The fuzz targets check the scanner against a reference built on
// encoding/json. Known, intended differences from encoding/json:
//
//   - json.Valid accepts invalid UTF-8 inside strings (encoding/json then
//     substitutes U+FFFD when decoding); Scan refuses it (ErrUTF8).
//   - json.Valid accepts \u escapes of lone surrogates (decoded as U+FFFD);
//     Scan refuses them (ErrEscape).
//   - json.Valid accepts nesting up to 10000; Scan refuses beyond 64.
//   - encoding/json decodes duplicate keys (last wins) and matches struct
//     fields case-insensitively; Scan refuses both on checked paths. The
//     reference below walks objects with json.Decoder tokens to see them.

// refValidJSON is json.Valid with the three differences above applied.
func refValidJSON(data []byte) bool {
	return json.Valid(data) && utf8.Valid(data) && !refLoneSurrogate(data) && refDepth(data) <= MaxDepth
}

// refLoneSurrogate reports a \u escape of an unpaired surrogate in a
// document json.Valid accepted.
func refLoneSurrogate(data []byte) bool {
	in := false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			in = !in
		case c == '\\' && in:
			if data[i+1] != 'u' {
				i++
				continue
			}
			r := refHex(data[i+2 : i+6])
			i += 5
			switch {
			case r >= 0xdc00 && r <= 0xdfff:
				return true
			case r >= 0xd800 && r <= 0xdbff:
				if i+6 >= len(data) || data[i+1] != '\\' || data[i+2] != 'u' {
					return true
				}
				lo := refHex(data[i+3 : i+7])
				if lo < 0xdc00 || lo > 0xdfff {
					return true
				}
				i += 6
			}
		}
	}
	return false
}

func refHex(h []byte) int {
	n := 0
	for _, c := range h {
		n <<= 4
		switch {
		case c >= '0' && c <= '9':
			n |= int(c - '0')
		case c >= 'a' && c <= 'f':
			n |= int(c-'a') + 10
		default:
			n |= int(c-'A') + 10
		}
	}
	return n
}

// refDepth is the deepest nesting of a document json.Valid accepted.
func refDepth(data []byte) int {
	in, depth, most := false, 0, 0
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == '{' || c == '['):
			depth++
			most = max(most, depth)
		case !in && (c == '}' || c == ']'):
			depth--
		}
	}
	return most
}

type refMember struct {
	key string
	raw json.RawMessage
}

// refMembers lists the members of a JSON object in order, keys decoded,
// duplicates kept; ok is false when raw is not an object.
func refMembers(raw []byte) ([]refMember, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var ms []refMember
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		ms = append(ms, refMember{tok.(string), v})
	}
	return ms, true
}

// refObject is one object on a checked path: its members by key, and
// whether it repeats a key or has a letter-case twin of a checked key.
type refObject struct {
	present bool // the member exists
	isObj   bool
	raw     json.RawMessage
	byKey   map[string]json.RawMessage
	unsure  bool
}

func refObj(raw json.RawMessage, present bool, checked ...string) refObject {
	o := refObject{present: present, raw: raw, byKey: map[string]json.RawMessage{}}
	ms, ok := refMembers(raw)
	if !present || !ok {
		return o
	}
	o.isObj = true
	for _, m := range ms {
		if _, dup := o.byKey[m.key]; dup {
			o.unsure = true
		}
		o.byKey[m.key] = m.raw
		for _, c := range checked {
			if m.key != c && strings.EqualFold(m.key, c) {
				o.unsure = true
			}
		}
	}
	return o
}

func (o refObject) get(key string) (json.RawMessage, bool) {
	v, ok := o.byKey[key]
	return v, ok
}

// refString decodes a JSON string value; ok is false for other values.
func refString(raw json.RawMessage, present bool) (string, bool) {
	if !present || len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		panic(err)
	}
	return s, true
}

type refResult struct {
	kind          Kind
	method, name  string
	id, params    string
	arguments     string
	progressToken string
}

// refScan decides what Scan should do with data, by the rules in doc.go,
// using encoding/json. It returns ok false when Scan must refuse.
func refScan(data []byte) (refResult, bool) {
	var r refResult
	top := refObj(data, true, "jsonrpc", "id", "method", "params", "result", "error")
	if !top.isObj {
		return r, false
	}
	params, hasParams := top.get("params")
	p := refObj(params, hasParams, "name", "uri", "ref", "arguments", "_meta", "protocolVersion", "clientInfo", "capabilities", "notifications")
	pick := func(o refObject, key string) json.RawMessage { v, _ := o.get(key); return v }
	has := func(o refObject, key string) bool { _, ok := o.get(key); return ok }
	objs := []refObject{top, p}
	sub := func(parent refObject, key string, checked ...string) refObject {
		v, ok := parent.get(key)
		o := refObj(v, ok, checked...)
		objs = append(objs, o)
		return o
	}
	ref := sub(p, "ref", "type", "name", "uri")
	meta := sub(p, "_meta", "progressToken", "io.modelcontextprotocol/protocolVersion", "io.modelcontextprotocol/clientCapabilities")
	client := sub(p, "clientInfo", "name", "version")
	caps := sub(p, "capabilities", "elicitation")
	elic := sub(caps, "elicitation", "url")
	notif := sub(p, "notifications", "resourceSubscriptions")
	result := sub(top, "result", "protocolVersion", "resultType")
	errObj := sub(top, "error", "code")
	for _, o := range objs {
		if o.unsure {
			return r, false
		}
	}
	if v, ok := refString(pick(top, "jsonrpc"), has(top, "jsonrpc")); !ok || v != "2.0" {
		return r, false
	}
	idOK := func(allowNull bool) bool {
		id := pick(top, "id")
		switch {
		case id[0] == '"':
			return true
		case string(id) == "null":
			return allowNull
		case id[0] == '-' || (id[0] >= '0' && id[0] <= '9'):
			return !bytes.ContainsAny(id, ".eE")
		}
		return false
	}
	method, methodOK := refString(pick(top, "method"), has(top, "method"))
	switch {
	case has(top, "method"):
		if !methodOK || has(top, "result") || has(top, "error") {
			return r, false
		}
		r.kind = KindNotification
		if has(top, "id") {
			if !idOK(false) {
				return r, false
			}
			r.kind = KindRequest
		}
		if hasParams && !p.isObj && params[0] != '[' {
			return r, false
		}
	case has(top, "result"):
		if has(top, "error") || !has(top, "id") || !idOK(false) {
			return r, false
		}
		r.kind = KindResult
	case has(top, "error"):
		if !errObj.isObj || (has(top, "id") && !idOK(true)) {
			return r, false
		}
		r.kind = KindError
	default:
		return r, false
	}
	mustString := func(o refObject, key string) (string, bool) {
		v, present := o.get(key)
		s, ok := refString(v, present)
		return s, ok || !present
	}
	mustObject := func(o refObject) bool { return !o.present || o.isObj }
	if !mustObject(meta) {
		return r, false
	}
	if _, ok := mustString(meta, "io.modelcontextprotocol/protocolVersion"); !ok {
		return r, false
	}
	if _, ok := mustString(result, "protocolVersion"); !ok {
		return r, false
	}
	if _, ok := mustString(result, "resultType"); !ok {
		return r, false
	}
	var ok bool
	switch method {
	case "tools/call", "prompts/get":
		r.name, ok = mustString(p, "name")
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		r.name, ok = mustString(p, "uri")
	case "completion/complete":
		typ, ok1 := mustString(ref, "type")
		n, ok2 := mustString(ref, "name")
		u, ok3 := mustString(ref, "uri")
		ok = mustObject(ref) && ok1 && ok2 && ok3
		switch typ {
		case "ref/prompt":
			r.name = n
		case "ref/resource":
			r.name = u
		}
	case "initialize":
		_, ok1 := mustString(p, "protocolVersion")
		_, ok2 := mustString(client, "name")
		_, ok3 := mustString(client, "version")
		ok = ok1 && ok2 && ok3 && mustObject(client) && mustObject(caps) && mustObject(elic)
	case "subscriptions/listen":
		ok = mustObject(notif)
		if subs, present := notif.get("resourceSubscriptions"); present {
			var list []json.RawMessage
			if json.Unmarshal(subs, &list) != nil || subs[0] != '[' {
				ok = false
			}
			for _, e := range list {
				ok = ok && e[0] == '"'
			}
		}
	default:
		ok = true
	}
	if !ok {
		return r, false
	}
	r.method = method
	r.id = string(pick(top, "id"))
	r.params = string(params)
	r.arguments = string(pick(p, "arguments"))
	r.progressToken = string(pick(meta, "progressToken"))
	return r, true
}

func FuzzScan(f *testing.F) {
	for _, tc := range scanAcceptCases {
		f.Add([]byte(tc.body))
	}
	for _, tc := range scanRefuseCases {
		f.Add([]byte(tc.body))
	}
	var s Scanner
	var m Message
	f.Fuzz(func(t *testing.T, data []byte) {
		err := s.Scan(data, &m)
		valid := refValidJSON(data)
		if !valid {
			if err == nil || !errors.Is(err, ErrSyntax) {
				t.Fatalf("Scan(%q): got %v, want a syntax error (json.Valid=%v)", data, err, json.Valid(data))
			}
			return
		}
		if errors.Is(err, ErrSyntax) {
			t.Fatalf("Scan(%q): got syntax error %v, want none (the reference accepts the JSON)", data, err)
		}
		want, ok := refScan(data)
		if !ok {
			if err == nil {
				t.Fatalf("Scan(%q): got nil, want a refusal (the reference refuses)", data)
			}
			return
		}
		if err != nil {
			t.Fatalf("Scan(%q): got %v, want nil (the reference accepts)", data, err)
		}
		got := refResult{kind: m.Kind, method: string(m.Method), name: string(m.Name), id: string(m.ID),
			params: string(m.Params), arguments: string(m.Arguments), progressToken: string(m.ProgressToken)}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(refResult{})); diff != "" {
			t.Fatalf("Scan(%q): message (-reference +got):\n%s", data, diff)
		}
	})
}

// evenLength allows names of even length: a filter the reference can apply.
type evenLength struct{}

func (evenLength) Allow(name []byte) bool { return utf8.RuneCount(name)%2 == 0 }

func FuzzFilter(f *testing.F) {
	for _, tc := range filterCases {
		f.Add([]byte(tc.body), tc.private)
	}
	f.Add(benchToolsList(3), true)
	var flt Filter
	var s Scanner
	var m Message
	f.Fuzz(func(t *testing.T, body []byte, private bool) {
		out, stats, err := flt.AppendFiltered(nil, body, ListTools, evenLength{}, FilterOptions{PrivateCache: private})
		scanErr := s.Scan(body, &m)
		if err != nil {
			if scanErr == nil && !refFilterUnsure(body) {
				t.Fatalf("AppendFiltered(%q): got %v, want nil (Scan accepts, no twin of tools/cacheScope)", body, err)
			}
			return
		}
		if scanErr != nil {
			t.Fatalf("AppendFiltered(%q): got nil, but Scan refuses it: %v", body, scanErr)
		}
		if !json.Valid(out) {
			t.Fatalf("AppendFiltered(%q): got invalid JSON %q", body, out)
		}
		var in, got map[string]any
		decode := func(b []byte, v *map[string]any) {
			d := json.NewDecoder(bytes.NewReader(b))
			d.UseNumber()
			if err := d.Decode(v); err != nil {
				t.Fatalf("decoding %q: %v", b, err)
			}
		}
		decode(body, &in)
		decode(out, &got)
		kept, dropped := 0, 0
		if result, ok := in["result"].(map[string]any); ok && m.Kind == KindResult {
			if private {
				result["cacheScope"] = "private"
			}
			if _, isArray := result["tools"].([]any); isArray {
				var tools []json.RawMessage
				resultMembers, _ := refMembers(m.Result)
				for _, rm := range resultMembers {
					if rm.key == "tools" {
						_ = json.Unmarshal(rm.raw, &tools)
					}
				}
				keptTools := []any{}
				for _, raw := range tools {
					if refEntryAllowed(raw) {
						var v any
						decode := json.NewDecoder(bytes.NewReader(raw))
						decode.UseNumber()
						_ = decode.Decode(&v)
						keptTools = append(keptTools, v)
						kept++
					} else {
						dropped++
					}
				}
				result["tools"] = keptTools
			}
		}
		if diff := cmp.Diff(in, got); diff != "" {
			t.Fatalf("AppendFiltered(%q) = %q (-reference +got):\n%s", body, out, diff)
		}
		if stats.Kept != kept || stats.Dropped != dropped {
			t.Fatalf("AppendFiltered(%q): got stats %+v, want kept %d dropped %d", body, stats, kept, dropped)
		}
	})
}

// refEntryAllowed: an object with exactly one "name", a string, no
// letter-case twin of "name", and evenLength allows it.
func refEntryAllowed(raw json.RawMessage) bool {
	ms, ok := refMembers(raw)
	if !ok {
		return false
	}
	count, name := 0, ""
	for _, m := range ms {
		switch {
		case m.key == "name":
			count++
			s, isString := refString(m.raw, true)
			if !isString {
				return false
			}
			name = s
		case strings.EqualFold(m.key, "name"):
			return false
		}
	}
	return count == 1 && evenLength{}.Allow([]byte(name))
}

// refFilterUnsure reports a result holding a repeated or letter-case twin of
// "tools" or "cacheScope", which the filter refuses beyond Scan.
func refFilterUnsure(body []byte) bool {
	top, _ := refMembers(body)
	for _, t := range top {
		if t.key != "result" {
			continue
		}
		o := refObj(t.raw, true, "tools", "cacheScope")
		return o.unsure
	}
	return false
}

func FuzzSSE(f *testing.F) {
	for _, tc := range sseCases {
		f.Add([]byte(tc.stream), uint8(1))
		f.Add([]byte(tc.stream), uint8(7))
	}
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		const max = 1 << 16
		whole, errWhole := readAll(bytes.NewReader(stream), max)
		chunked, errChunked := readAll(&chunkReader{stream, int(chunk%16) + 1}, max)
		if errWhole != errChunked {
			t.Fatalf("errors: whole %v, chunked %v", errWhole, errChunked)
		}
		if errWhole != io.EOF {
			return
		}
		// Only a CRLF split across reads may change Raw (its LF is left out).
		norm := func(evs []ev) []ev {
			out := append([]ev(nil), evs...)
			for i := range out {
				out[i].Raw = strings.TrimSuffix(out[i].Raw, "\n")
			}
			return out
		}
		if diff := cmp.Diff(norm(whole), norm(chunked)); diff != "" {
			t.Fatalf("stream %q: whole vs chunked (-whole +chunked):\n%s", stream, diff)
		}
		// Each Raw is a block of the stream; re-serialized events read back
		// the same.
		var again []byte
		var fields []ev
		for _, e := range whole {
			if !bytes.Contains(stream, []byte(e.Raw)) {
				t.Fatalf("stream %q: Raw %q is not part of it", stream, e.Raw)
			}
			event := Event{ID: []byte(e.ID), HasID: e.HasID, Event: []byte(e.Event), Data: []byte(e.Data), HasData: e.HasData, Retry: []byte(e.Retry)}
			if n := len(again); len(AppendEvent(again, &event)) > n {
				again = AppendEvent(again, &event)
				e.Raw, e.Comment = "", false
				fields = append(fields, e)
			}
		}
		reparsed, err := readAll(iotest.OneByteReader(bytes.NewReader(again)), max)
		if err != io.EOF {
			t.Fatalf("re-serialized %q: got %v, want io.EOF", again, err)
		}
		for i := range reparsed {
			reparsed[i].Raw, reparsed[i].Comment = "", false
		}
		if diff := cmp.Diff(fields, reparsed); diff != "" {
			t.Fatalf("stream %q re-serialized as %q (-first +second):\n%s", stream, again, diff)
		}
	})
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}
