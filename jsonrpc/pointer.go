package jsonrpc

import (
	"bytes"
	"strings"
)

// ValueKind is the JSON type of a value Lookup found.
type ValueKind uint8

const (
	ValueInvalid ValueKind = iota
	ValueString
	ValueNumber
	ValueBool
	ValueNull
	ValueObject
	ValueArray
)

// Scalar reports whether k is a string, number or boolean: a value a
// pattern can be matched against. null is not.
func (k ValueKind) Scalar() bool {
	return k == ValueString || k == ValueNumber || k == ValueBool
}

// CheckPointer reports whether p is a valid RFC 6901 JSON pointer: empty, or
// '/'-separated tokens in which '~' is always followed by '0' or '1'.
func CheckPointer(p string) error {
	if p != "" && p[0] != '/' {
		return ErrPointer
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || (p[i+1] != '0' && p[i+1] != '1')) {
			return ErrPointer
		}
	}
	return nil
}

// Lookup finds the value the RFC 6901 JSON pointer names in doc (a JSON
// value, such as Message.Arguments). It returns the value, its kind and
// whether it exists; a string's value is decoded (no quotes, escapes
// resolved; appended to scratch[:0] when it had escapes, so pass a buffer to
// reuse), any other value is its raw span in doc.
//
// Lookup validates what it walks through. In every object on the path it
// refuses the member it looks for given twice (ErrDuplicateKey) or a member
// whose key equals it except for letter case (ErrAmbiguousKey): a
// case-insensitive decoder upstream could read that one instead. An array
// index must be 0 or have no leading zero; "-" and indexes past the end find
// nothing, as does a token applied to a string, number, boolean or null.
func Lookup(doc []byte, pointer string, scratch []byte) (value []byte, kind ValueKind, found bool, err error) {
	if err := CheckPointer(pointer); err != nil {
		return nil, ValueInvalid, false, err
	}
	var keyBuf [64]byte
	i, depth := skipSpace(doc, 0), 0
	for p := pointer; p != ""; {
		tok := p[1:]
		if k := strings.IndexByte(tok, '/'); k >= 0 {
			tok, p = tok[:k], tok[k:]
		} else {
			p = ""
		}
		if i >= len(doc) {
			return nil, ValueInvalid, false, ErrTruncated
		}
		var ok bool
		switch doc[i] {
		case '{':
			i, ok, err = findMember(doc, i, depth+1, unescapeToken(keyBuf[:0], tok), scratch)
		case '[':
			i, ok, err = findElement(doc, i, depth+1, tok)
		default:
			return nil, ValueInvalid, false, nil
		}
		if err != nil || !ok {
			return nil, ValueInvalid, false, err
		}
		depth++
		i = skipSpace(doc, i)
	}
	if i >= len(doc) {
		return nil, ValueInvalid, false, ErrTruncated
	}
	start := i
	end, err := skipValue(doc, i, depth)
	if err != nil {
		return nil, ValueInvalid, false, err
	}
	switch c := doc[start]; c {
	case '"':
		v := doc[start+1 : end-1]
		if _, esc, _ := scanString(doc, start); esc {
			v = appendUnescaped(scratch[:0], v)
		}
		return v, ValueString, true, nil
	case '{':
		return doc[start:end], ValueObject, true, nil
	case '[':
		return doc[start:end], ValueArray, true, nil
	case 't', 'f':
		return doc[start:end], ValueBool, true, nil
	case 'n':
		return doc[start:end], ValueNull, true, nil
	}
	return doc[start:end], ValueNumber, true, nil
}

// unescapeToken resolves ~1 and ~0 (in that order, RFC 6901 section 4).
func unescapeToken(dst []byte, tok string) []byte {
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c == '~' {
			if tok[i+1] == '1' {
				c = '/'
			}
			i++
		}
		dst = append(dst, c)
	}
	return dst
}

// findMember walks the whole object at doc[i] (at depth) and returns the
// position of the value of member key.
func findMember(doc []byte, i, depth int, key, scratch []byte) (int, bool, error) {
	if depth > MaxDepth {
		return i, false, ErrDepth
	}
	at, count := 0, 0
	kb := scratch[:0]
	j, done := firstItem(doc, i, '}')
	for !done {
		raw, esc, _, next, err := readKey(doc, j)
		if err != nil {
			return next, false, err
		}
		k := raw
		if esc {
			kb = appendUnescaped(kb[:0], raw)
			k = kb
		}
		switch {
		case string(k) == string(key):
			count++
			at = next
		case bytes.EqualFold(k, key):
			return j, false, ErrAmbiguousKey
		}
		if j, err = skipValue(doc, next, depth); err != nil {
			return j, false, err
		}
		if j, done, err = nextItem(doc, j, '}'); err != nil {
			return j, false, err
		}
	}
	if count > 1 {
		return j, false, ErrDuplicateKey
	}
	return at, count == 1, nil
}

// findElement returns the position of element tok of the array at doc[i]
// (at depth), validating the elements before it.
func findElement(doc []byte, i, depth int, tok string) (int, bool, error) {
	if depth > MaxDepth {
		return i, false, ErrDepth
	}
	n, ok := arrayIndex(tok)
	if !ok {
		return i, false, nil
	}
	j, done := firstItem(doc, i, ']')
	var err error
	for ; !done; n-- {
		if n == 0 {
			return j, true, nil
		}
		if j, err = skipValue(doc, j, depth); err != nil {
			return j, false, err
		}
		if j, done, err = nextItem(doc, j, ']'); err != nil {
			return j, false, err
		}
	}
	return j, false, nil
}

func arrayIndex(tok string) (int, bool) {
	if tok == "" || len(tok) > 9 || (tok[0] == '0' && len(tok) > 1) {
		return 0, false
	}
	n := 0
	for i := 0; i < len(tok); i++ {
		if tok[i]-'0' >= 10 {
			return 0, false
		}
		n = n*10 + int(tok[i]-'0')
	}
	return n, true
}

// EachString calls fn with each decoded string of the JSON array arr, until
// fn returns false. Strings with escapes are decoded into scratch (reused per
// element); fn must not keep its argument. It fails with ErrNotArray if arr
// is not an array and ErrNotString at the first element that is not a
// string.
func EachString(arr []byte, scratch []byte, fn func(s []byte) bool) error {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return ErrNotArray
	}
	j, done := firstItem(arr, i, ']')
	for !done {
		j = skipSpace(arr, j)
		if j >= len(arr) {
			return ErrTruncated
		}
		if arr[j] != '"' {
			return ErrNotString
		}
		end, esc, err := scanString(arr, j)
		if err != nil {
			return err
		}
		v := arr[j+1 : end-1]
		if esc {
			scratch = appendUnescaped(scratch[:0], v)
			v = scratch
		}
		if !fn(v) {
			return nil
		}
		if j, done, err = nextItem(arr, end, ']'); err != nil {
			return err
		}
	}
	if skipSpace(arr, j) != len(arr) {
		return ErrTrailingData
	}
	return nil
}
