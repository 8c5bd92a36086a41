package jsonrpc

import (
	"errors"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	doc := `{"environment":"dev","n":12.5,"ok":true,"nil":null,"obj":{"a/b":{"m~n":"deep"},"list":[10,{"x":"\u0079es"},"c"]},"esc\u0061ped":"k","":"empty key"}`
	tests := []struct {
		pointer string
		value   string
		kind    ValueKind
		found   bool
	}{
		{"", doc, ValueObject, true},
		{"/environment", "dev", ValueString, true},
		{"/n", "12.5", ValueNumber, true},
		{"/ok", "true", ValueBool, true},
		{"/nil", "null", ValueNull, true},
		{"/obj/a~1b/m~0n", "deep", ValueString, true},
		{"/obj/list", `[10,{"x":"\u0079es"},"c"]`, ValueArray, true},
		{"/obj/list/0", "10", ValueNumber, true},
		{"/obj/list/1/x", "yes", ValueString, true},
		{"/obj/list/2", "c", ValueString, true},
		{"/obj/list/3", "", ValueInvalid, false},
		{"/obj/list/-", "", ValueInvalid, false},
		{"/obj/list/01", "", ValueInvalid, false},
		{"/obj/list/x", "", ValueInvalid, false},
		{"/escaped", "k", ValueString, true},
		{"/", "empty key", ValueString, true},
		{"/missing", "", ValueInvalid, false},
		{"/environment/x", "", ValueInvalid, false},
		{"/obj/a~1b/m~0n/z", "", ValueInvalid, false},
	}
	for _, tt := range tests {
		t.Run(tt.pointer, func(t *testing.T) {
			v, kind, found, err := Lookup([]byte(doc), tt.pointer, nil)
			if err != nil {
				t.Fatalf("Lookup: got error %v, want nil", err)
			}
			if string(v) != tt.value || kind != tt.kind || found != tt.found {
				t.Errorf("Lookup: got %q %v %v, want %q %v %v", v, kind, found, tt.value, tt.kind, tt.found)
			}
		})
	}
}

func TestLookupRefuses(t *testing.T) {
	tests := []struct {
		name, doc, pointer string
		want               error
	}{
		{"duplicate", `{"env":"dev","env":"prod"}`, "/env", ErrDuplicateKey},
		{"duplicate escaped", `{"env":"dev","\u0065nv":"prod"}`, "/env", ErrDuplicateKey},
		{"case twin", `{"env":"dev","ENV":"prod"}`, "/env", ErrAmbiguousKey},
		{"case twin alone", `{"Env":"prod"}`, "/env", ErrAmbiguousKey},
		{"case twin on the path", `{"a":{"b":1},"A":{"b":2}}`, "/a/b", ErrAmbiguousKey},
		{"bad pointer", `{}`, "env", ErrPointer},
		{"bad tilde", `{}`, "/a~2", ErrPointer},
		{"trailing tilde", `{}`, "/a~", ErrPointer},
		{"invalid doc", `{"a":tru}`, "/a", ErrSyntax},
		{"invalid after member", `{"a":1,"b":[}`, "/a", ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, found, err := Lookup([]byte(tt.doc), tt.pointer, nil)
			if !errors.Is(err, tt.want) || found {
				t.Errorf("Lookup: got %v found=%v, want %v", err, found, tt.want)
			}
		})
	}
	// Other members may repeat: only the path is checked.
	if v, _, found, err := Lookup([]byte(`{"x":1,"x":2,"env":"dev"}`), "/env", nil); err != nil || !found || string(v) != "dev" {
		t.Errorf("duplicate elsewhere: got %q %v %v, want dev", v, found, err)
	}
}

func TestLookupAllocs(t *testing.T) {
	doc := []byte(`{"a":{"b~c":[1,{"d":"\u0065scaped"}]},"z":"plain"}`)
	scratch := make([]byte, 0, 64)
	for _, p := range []string{"/a/b~0c/1/d", "/z", "/missing"} {
		if n := testing.AllocsPerRun(100, func() { _, _, _, _ = Lookup(doc, p, scratch) }); n != 0 {
			t.Errorf("Lookup(%q): got %v allocs per run, want 0", p, n)
		}
	}
}

func TestValueKindScalar(t *testing.T) {
	for k, want := range map[ValueKind]bool{ValueString: true, ValueNumber: true, ValueBool: true, ValueNull: false, ValueObject: false, ValueArray: false, ValueInvalid: false} {
		if got := k.Scalar(); got != want {
			t.Errorf("ValueKind(%d).Scalar(): got %v, want %v", k, got, want)
		}
	}
}

func TestEachString(t *testing.T) {
	var got []string
	err := EachString([]byte(` ["a", "b\/c" ,"\u00e9"] `), nil, func(s []byte) bool {
		got = append(got, string(s))
		return true
	})
	if err != nil || strings.Join(got, "|") != "a|b/c|é" {
		t.Errorf("EachString: got %q %v, want a|b/c|é", got, err)
	}
	got = got[:0]
	_ = EachString([]byte(`["a","b","c"]`), nil, func(s []byte) bool { got = append(got, string(s)); return len(got) < 2 })
	if strings.Join(got, "|") != "a|b" {
		t.Errorf("EachString stop: got %q, want a|b", got)
	}
	for doc, want := range map[string]error{`[]`: nil, `["a",1]`: ErrNotString, `{}`: ErrNotArray, `["a"`: ErrTruncated, `["\ud800"]`: ErrEscape, `["a"] x`: ErrTrailingData} {
		if err := EachString([]byte(doc), nil, func([]byte) bool { return true }); !errors.Is(err, want) {
			t.Errorf("EachString(%s): got %v, want %v", doc, err, want)
		}
	}
}
