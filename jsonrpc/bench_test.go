package jsonrpc

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// benchToolsCall is a tools/call of about size bytes whose arguments come
// first, before name and method: the worst order for a scanner that must
// find method and name (it cannot stop early).
func benchToolsCall(size int) []byte {
	var b strings.Builder
	b.WriteString(`{"params":{"arguments":{"query":"select id, name, email from users where org = 'acme' and active","limit":100,"filters":{"region":["eu-west-1","us-east-2"],"tags":{"team":"platform","env":"prod"}},"notes":[`)
	for i := 0; b.Len() < size-200; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":` + strconv.Itoa(i) + `,"text":"The quick brown fox jumps over the lazy dog near the river bank.","ok":true}`)
	}
	b.WriteString(`]},"_meta":{"progressToken":"pt-1"},"name":"query_database"},"method":"tools/call","id":12345,"jsonrpc":"2.0"}`)
	return []byte(b.String())
}

// benchToolsList is a tools/list result with n tools.
func benchToolsList(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"jsonrpc":"2.0","id":7,"result":{"tools":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":"tool_` + strconv.Itoa(i) + `","description":"Does thing number ` + strconv.Itoa(i) +
			` for the caller.","inputSchema":{"type":"object","properties":{"id":{"type":"string"},"n":{"type":"integer"}},"required":["id"]},"annotations":{"readOnlyHint":true}}`)
	}
	b.WriteString(`],"nextCursor":"page-2"}}`)
	return []byte(b.String())
}

// everyTenth allows tool_0, tool_10, tool_20, ...
type everyTenth struct{}

func (everyTenth) Allow(name []byte) bool {
	return len(name) > 5 && name[len(name)-1] == '0' || string(name) == "tool_0"
}

func BenchmarkScanToolsCall2KiB(b *testing.B) {
	body := benchToolsCall(2048)
	var s Scanner
	var m Message
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := s.Scan(body, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanToolsCall2KiBEncodingJSON is the baseline: what decoding the
// same fields with encoding/json costs.
func BenchmarkScanToolsCall2KiBEncodingJSON(b *testing.B) {
	body := benchToolsCall(2048)
	type msg struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
			Meta      struct {
				ProgressToken json.RawMessage `json:"progressToken"`
			} `json:"_meta"`
		} `json:"params"`
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var m msg
		if err := json.Unmarshal(body, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidEncodingJSON is json.Valid alone on the same body: the
// floor for a validating pass in encoding/json.
func BenchmarkValidEncodingJSON(b *testing.B) {
	body := benchToolsCall(2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if !json.Valid(body) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkFilterToolsList1000To100(b *testing.B) {
	body := benchToolsList(1000)
	var f Filter
	dst := make([]byte, 0, len(body))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		out, stats, err := f.AppendFiltered(dst[:0], body, ListTools, everyTenth{}, FilterOptions{PrivateCache: true})
		if err != nil || stats.Kept != 100 {
			b.Fatal(err, stats)
		}
		dst = out
	}
}

// BenchmarkFilterToolsList1000To100EncodingJSON is the baseline: decode the
// result, keep the allowed tools, encode it again.
func BenchmarkFilterToolsList1000To100EncodingJSON(b *testing.B) {
	body := benchToolsList(1000)
	type msg struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  map[string]json.RawMessage
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var m msg
		if err := json.Unmarshal(body, &m); err != nil {
			b.Fatal(err)
		}
		var tools []json.RawMessage
		if err := json.Unmarshal(m.Result["tools"], &tools); err != nil {
			b.Fatal(err)
		}
		kept := tools[:0]
		for _, t := range tools {
			var e struct{ Name string }
			if err := json.Unmarshal(t, &e); err != nil {
				b.Fatal(err)
			}
			if (everyTenth{}).Allow([]byte(e.Name)) {
				kept = append(kept, t)
			}
		}
		raw, _ := json.Marshal(kept)
		m.Result["tools"] = raw
		m.Result["cacheScope"] = json.RawMessage(`"private"`)
		if _, err := json.Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
}
