package jsonrpc

import (
	"encoding/binary"
	"math/bits"
	"strings"
	"testing"
)

func TestSpecialMask(t *testing.T) {
	special := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 }
	first := func(w [8]byte) int {
		for k, c := range w {
			if special(c) {
				return k
			}
		}
		return 8
	}
	// Every byte value at every position, after plain bytes and before
	// every byte value: a borrow may only run upwards from the first
	// special byte, so the lowest flag must be exact.
	for p := range 8 {
		for v := range 256 {
			for next := range 256 {
				w := [8]byte{'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a'}
				w[p] = byte(v)
				if p < 7 {
					w[p+1] = byte(next)
				} else if next > 0 {
					break
				}
				got := 8
				if m := specialMask(binary.LittleEndian.Uint64(w[:])); m != 0 {
					got = bits.TrailingZeros64(m) >> 3
				}
				if want := first(w); got != want {
					t.Fatalf("specialMask(%q): got first special at %d, want %d", w[:], got, want)
				}
			}
		}
	}
}

// TestSkipValue pins where skipValue stops and why, around the shapes its
// fast paths read inline (see skipValue): every case that leaves a fast
// path early must end where the general functions say.
func TestSkipValue(t *testing.T) {
	tests := []struct {
		doc  string
		end  int
		want error
	}{
		{"true", 4, nil},
		{"tru", 3, ErrTruncated},
		{"t", 1, ErrTruncated},
		{"trUe", 0, ErrSyntax},
		{"true1", 4, nil},
		{"[true", 5, ErrTruncated},
		{"[tru", 4, ErrTruncated},
		{"[true]", 6, nil},
		{"[truex]", 5, ErrSyntax},
		{"false", 5, nil},
		{"fals", 4, ErrTruncated},
		{"f", 1, ErrTruncated},
		{"falsE", 0, ErrSyntax},
		{"[false,fals", 11, ErrTruncated},
		{"[false]", 7, nil},
		{"null", 4, nil},
		{"nul", 3, ErrTruncated},
		{"n", 1, ErrTruncated},
		{"nulL", 0, ErrSyntax},
		{"[null,nu", 8, ErrTruncated},
		{"[null]", 6, nil},
		{"0", 1, nil},
		{"-0", 2, nil},
		{"-", 1, ErrTruncated},
		{"01", 1, nil},
		{"[01]", 2, ErrSyntax},
		{"1", 1, nil},
		{"12", 2, nil},
		{"123456789012345678901234567890", 30, nil},
		{"1.", 2, ErrNumber},
		{"1.5", 3, nil},
		{"1e", 2, ErrNumber},
		{"1e5", 3, nil},
		{"1E+5", 4, nil},
		{"-12.5e-3", 8, nil},
		{"[1,2]", 5, nil},
		{"[1 ,2 ]", 7, nil},
		{"[12", 3, ErrTruncated},
		{"[12.", 4, ErrNumber},
		{"[-", 2, ErrTruncated},
		{"[-1]", 4, nil},
		{"+1", 0, ErrSyntax},
		{"[0x10]", 2, ErrSyntax},
		{"[1.5e3,", 7, ErrTruncated},
		{"\"\"", 2, nil},
		{"\"", 1, ErrTruncated},
		{"\"a", 2, ErrTruncated},
		{"\"abcdefg\"", 9, nil},
		{"\"abcdefgh\"", 10, nil},
		{"\"abcdefghijklmnop\"", 18, nil},
		{"\"abcdefghijklmnopq\"", 19, nil},
		{"\"abcdefghijklmnopqrstuvwxyz0123456789\"", 38, nil},
		{"\"abcdefghijklmnopqrstuvw\\\"xyz\"", 30, nil},
		{"\"abcdefghijklmnop\\u00e9\"", 24, nil},
		{"\"abcdefghijklmnopé\"", 20, nil},
		{"\"abcdefghijklmnop\x01\"", 17, ErrControl},
		{"\"abcdefghijklmno\xff\"", 16, ErrUTF8},
		{"\"abcdefghijklmnopqrstuvwxy\xc3\"", 26, ErrUTF8},
		{"\"abcdefghijklmnopqrstuvwxyz", 27, ErrTruncated},
		{"\"abcdefghijklmnopqrstuvwxyz\\", 27, ErrTruncated},
		{"{}", 2, nil},
		{"{ }", 3, nil},
		{"{", 1, ErrTruncated},
		{"{\"", 2, ErrTruncated},
		{"{\"a", 3, ErrTruncated},
		{"{\"a\"", 4, ErrTruncated},
		{"{\"a\":", 5, ErrTruncated},
		{"{\"a\":1", 6, ErrTruncated},
		{"{\"a\":1}", 7, nil},
		{"{\"a\" :1}", 8, nil},
		{"{\"a\": 1 }", 9, nil},
		{"{\"a\"1}", 4, ErrSyntax},
		{"{\"a\":1,}", 7, ErrSyntax},
		{"{\"a\":1,\"b\"}", 10, ErrSyntax},
		{"{a:1}", 1, ErrSyntax},
		{"{\"a\":1]", 6, ErrSyntax},
		{"[1}", 2, ErrSyntax},
		{"[]", 2, nil},
		{"[ ]", 3, nil},
		{"[", 1, ErrTruncated},
		{"[,]", 1, ErrSyntax},
		{"[1,]", 3, ErrSyntax},
		{"{\"abcdefgh\":1}", 14, nil},
		{"{\"abcdefg\":1}", 13, nil},
		{"{\"abcdefghijklmnop\":1}", 22, nil},
		{"{\"a\\nb\":1}", 10, nil},
		{"{\"a\\u0062\":1}", 13, nil},
		{"{\"a\\ud800\":1}", 3, ErrEscape},
		{"{\"a\xff\":1}", 3, ErrUTF8},
		{"{\"\":1}", 6, nil},
		{"{\"a\"\t:1}", 8, nil},
		{"{\"a\":\"b\",\"c\":[true,false,null,{\"d\":{}}]}", 40, nil},
		{" [ 1 , { \"a\" : [ ] } ] ", 22, nil},
		{"{\"a\":1}x", 7, nil},
		{"\"é\xff\"", 3, ErrUTF8},
		{"\"éé\xe6\x97\"", 5, ErrUTF8},
		{"\"日本語\"", 11, nil},
		{"\"日本語", 10, ErrTruncated},
		{"\"aé\"", 5, nil},
		{"[\"日本\",\"\xed\xa0\x80\"]", 11, ErrUTF8},
		{"\"é\x01\"", 3, ErrControl},
		{"\"é\\n\"", 6, nil},
		{"x", 0, ErrSyntax},
		{"", 0, ErrTruncated},
		{" ", 1, ErrTruncated},
		{"}", 0, ErrSyntax},
		{"]", 0, ErrSyntax},
		{",", 0, ErrSyntax},
		{":", 0, ErrSyntax},
	}
	for _, tt := range tests {
		end, err := skipValue([]byte(tt.doc), 0, 0)
		if end != tt.end || err != tt.want {
			t.Errorf("skipValue(%q): got %d, %v, want %d, %v", tt.doc, end, err, tt.end, tt.want)
		}
	}
}

func TestSkipValueDepth(t *testing.T) {
	tests := []struct {
		doc        string
		depth, end int
		want       error
	}{
		{strings.Repeat("[", 64) + strings.Repeat("]", 64), 0, 128, nil},
		{strings.Repeat("[", 65) + strings.Repeat("]", 65), 0, 64, ErrDepth},
		{`[[]]`, 62, 4, nil},
		{`[[]]`, 63, 1, ErrDepth},
		{`{"a":{}}`, 63, 5, ErrDepth},
		{`{"a":[1,{"b":2}]}`, 61, 17, nil},
		{`{"a":[1,{"b":2}]}`, 62, 8, ErrDepth},
		{`1`, 64, 1, nil},
	}
	for _, tt := range tests {
		end, err := skipValue([]byte(tt.doc), 0, tt.depth)
		if end != tt.end || err != tt.want {
			t.Errorf("skipValue(%q, depth %d): got %d, %v, want %d, %v", tt.doc, tt.depth, end, err, tt.end, tt.want)
		}
	}
}

func TestReadKey(t *testing.T) {
	tests := []struct {
		doc      string
		raw      string
		esc      bool
		at, next int
		want     error
	}{
		{`"a":1`, "a", false, 0, 4, nil},
		{`"a":`, "a", false, 0, 4, nil},
		{`"a" :1`, "a", false, 0, 5, nil},
		{` "key":1`, "key", false, 1, 7, nil},
		{`"abcdefghij":1`, "abcdefghij", false, 0, 13, nil},
		{`"a\"b":1`, `a\"b`, true, 0, 7, nil},
		{`"é":1`, "é", false, 0, 5, nil},
		{`"a"`, "a", false, 0, 3, ErrTruncated},
		{`"a";1`, "a", false, 0, 3, ErrSyntax},
		{`"a`, "", false, 0, 2, ErrTruncated},
		{`x`, "", false, 0, 0, ErrSyntax},
		{``, "", false, 0, 0, ErrTruncated},
	}
	for _, tt := range tests {
		raw, esc, at, next, err := readKey([]byte(tt.doc), 0)
		if err != tt.want || at != tt.at || next != tt.next || (err == nil && (string(raw) != tt.raw || esc != tt.esc)) {
			t.Errorf("readKey(%q): got %q, %v, %d, %d, %v, want %q, %v, %d, %d, %v",
				tt.doc, raw, esc, at, next, err, tt.raw, tt.esc, tt.at, tt.next, tt.want)
		}
	}
}
