package jsonrpc

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func redactSecret(key []byte) bool { return string(key) == "secret" || string(key) == "pass word" }

func TestAppendRedacted(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"scalar", `7`, `7`},
		{"empty object", `{ }`, `{ }`},
		{"empty array", `[ ]`, `[ ]`},
		{"top level member", `{"a":1,"secret":"x"}`, `{"a":1,"secret":"[redacted]"}`},
		{"whitespace kept", `{ "secret" : {"deep":[1,2]} , "b" : [ ] }`, `{ "secret" : "[redacted]" , "b" : [ ] }`},
		{"nested in array", `[{"secret":1},{"x":{"secret":null}}]`, `[{"secret":"[redacted]"},{"x":{"secret":"[redacted]"}}]`},
		{"escaped key", `{"pass\u0020word":"p","se\u0063ret":true}`, `{"pass\u0020word":"[redacted]","se\u0063ret":"[redacted]"}`},
		{"value named like a key", `{"a":"secret"}`, `{"a":"secret"}`},
		{"every occurrence", `{"secret":1,"secret":2}`, `{"secret":"[redacted]","secret":"[redacted]"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w Redactor
			got, err := w.AppendRedacted([]byte("prefix:"), []byte(tc.in), redactSecret)
			if err != nil {
				t.Fatalf("AppendRedacted(%s): %v", tc.in, err)
			}
			if string(got) != "prefix:"+tc.want {
				t.Errorf("AppendRedacted(%s): got %s, want %s", tc.in, got[7:], tc.want)
			}
		})
	}
}

func TestAppendRedactedRefuses(t *testing.T) {
	deep := ""
	for range MaxDepth + 1 {
		deep += "["
	}
	for _, in := range []string{``, `{`, `{"a":}`, `{"secret":[1,}`, `[1 2]`, `{"a":1} x`, `"\x01"`, deep} {
		var w Redactor
		got, err := w.AppendRedacted([]byte("keep"), []byte(in), redactSecret)
		if err == nil || string(got) != "keep" {
			t.Errorf("AppendRedacted(%q): got %q, %v; want dst unchanged and an error", in, got, err)
		}
	}
}

func TestAppendRedactedAllocs(t *testing.T) {
	var w Redactor
	doc := []byte(`{"user":"u1","se\u0063ret":"x","nested":[{"secret":{"a":1}},2,"s"]}`)
	dst := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { dst, _ = w.AppendRedacted(dst[:0], doc, redactSecret) }); n != 0 {
		t.Errorf("got %v allocs per call, want 0", n)
	}
	// The proxy passes a closure over the route's audit.redact, built per
	// message: it must not escape either.
	re := regexp.MustCompile(`secret`)
	if n := testing.AllocsPerRun(100, func() {
		dst, _ = w.AppendRedacted(dst[:0], doc, func(key []byte) bool { return re.Match(key) })
	}); n != 0 {
		t.Errorf("with a closure: got %v allocs per call, want 0", n)
	}
}

// decodeNumbers decodes with numbers kept as text (a valid number may not
// fit a float64).
func decodeNumbers(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	return v, d.Decode(&v)
}

// refRedact is the reference: decode with encoding/json, replace, compare.
func refRedact(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if redactSecret([]byte(k)) {
				v[k] = "[redacted]"
			} else {
				v[k] = refRedact(x)
			}
		}
	case []any:
		for i, x := range v {
			v[i] = refRedact(x)
		}
	}
	return v
}

func FuzzRedact(f *testing.F) {
	for _, s := range []string{`{"secret":1}`, `[{"a":{"secret":[1]}}]`, `{"pass\u0020word":2, "b" : "c"}`, `3`, `{"a":[]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var w Redactor
		got, err := w.AppendRedacted(nil, doc, redactSecret)
		if !refValidJSON(doc) {
			if err == nil {
				t.Fatalf("accepted invalid %q", doc)
			}
			return
		}
		if err != nil {
			t.Fatalf("refused valid %q: %v", doc, err)
		}
		want, err1 := decodeNumbers(doc)
		have, err2 := decodeNumbers(got)
		if err1 != nil || err2 != nil {
			t.Fatalf("output %q of %q is not JSON", got, doc)
		}
		// Duplicate keys: encoding/json keeps the last; so do both sides.
		if diff := cmp.Diff(refRedact(want), have); diff != "" {
			t.Fatalf("AppendRedacted(%q) = %q (-want +got):\n%s", doc, got, diff)
		}
	})
}
