package jsonrpc

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAppendError(t *testing.T) {
	type rpcErr struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data,omitempty"`
	}
	type resp struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   rpcErr          `json:"error"`
	}
	tests := []struct {
		name string
		id   []byte
		code int
		msg  string
		data []byte
		want resp
	}{
		{"null id", nil, ParseError, "Parse error", nil, resp{"2.0", json.RawMessage("null"), rpcErr{-32700, "Parse error", nil}}},
		{"string id with data", []byte(`"a-1"`), URLElicitationRequired, "needs approval",
			[]byte(`{"approval_request_id":"r1","approval_url":"https://x/a?b=1&c=2"}`),
			resp{"2.0", json.RawMessage(`"a-1"`), rpcErr{-32042, "needs approval", json.RawMessage(`{"approval_request_id":"r1","approval_url":"https://x/a?b=1&c=2"}`)}}},
		{"escaping", []byte("42"), InvalidParams, "Unknown tool: \"x\"\\\n\t\x01\u2028é\xff", nil,
			resp{"2.0", json.RawMessage("42"), rpcErr{-32602, "Unknown tool: \"x\"\\\n\t\x01\u2028é\ufffd", nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := AppendError(nil, tt.id, tt.code, tt.msg, tt.data)
			if !json.Valid(out) {
				t.Fatalf("AppendError: got invalid JSON %s", out)
			}
			var got resp
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("decoding %s: %v", out, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AppendError %s (-want +got):\n%s", out, diff)
			}
			var s Scanner
			var m Message
			if err := s.Scan(out, &m); err != nil || m.Kind != KindError || m.ErrorCode != int64(tt.code) {
				t.Errorf("Scan(AppendError): got kind %v code %d err %v, want KindError %d", m.Kind, m.ErrorCode, err, tt.code)
			}
		})
	}
}

func TestAppendQuoted(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s/`, "\x00\x1f\x7f", "日本\u2029", "bad\xc3(utf8"} {
		out := AppendQuoted(nil, s)
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("AppendQuoted(%q) = %s: %v", s, out, err)
		}
		want := string([]rune(s)) // invalid UTF-8 reads back as U+FFFD
		if got != want {
			t.Errorf("AppendQuoted(%q) = %s: decodes to %q, want %q", s, out, got, want)
		}
	}
}

func TestAppendDecodedHeaderValue(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"tools/call", "tools/call", nil},
		{"=?base64?dG9vbHMvY2FsbA==?=", "tools/call", nil},
		{"=?base64?5pel5pys?=", "日本", nil},
		{"=?BASE64?dG9vbHMvY2FsbA==?=", "=?BASE64?dG9vbHMvY2FsbA==?=", nil},
		{"=?base64??=", "", nil}, // the encoding of the empty value
		{"=?base64?dG9vbHMvY2FsbA?=", "", ErrHeaderBase64},
		{"=?base64?!!!!?=", "", ErrHeaderBase64},
	}
	for _, tt := range tests {
		got, err := AppendDecodedHeaderValue([]byte("p:"), []byte(tt.in))
		if !errors.Is(err, tt.err) {
			t.Errorf("AppendDecodedHeaderValue(%q): got error %v, want %v", tt.in, err, tt.err)
			continue
		}
		want := "p:" + tt.want
		if err != nil {
			want = "p:"
		}
		if string(got) != want {
			t.Errorf("AppendDecodedHeaderValue(%q): got %q, want %q", tt.in, got, want)
		}
	}
	for v, want := range map[string]bool{"tools/call": true, "": true, "a b": true, " a": false, "a ": false, "é": false, "a\tb": false, "a\x7f": false} {
		if got := HeaderSafe([]byte(v)); got != want {
			t.Errorf("HeaderSafe(%q): got %v, want %v", v, got, want)
		}
	}
}
