package jsonrpc

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of objects and arrays a document may have;
// the top-level object or array is depth 1 (DESIGN.md section 3).
const MaxDepth = 64

// The functions in this file are the validating lexer shared by Scan,
// SplitBatch, the list filter, Lookup and EachString. They take the document
// and a position and return the position after what they read. On error the
// returned position is where the problem is.

// isSpace holds the four JSON whitespace bytes (RFC 8259 section 2).
var isSpace = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// hexVal maps a hex digit to its value and everything else to 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
		t[c-'a'+'A'] = byte(c-'a') + 10
	}
	return t
}()

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace[b[i]] {
		i++
	}
	return i
}

// SWAR constants: one in every byte, and the high bit of every byte.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// specialMask has the high bit of a byte set for every byte of x that ends or
// interrupts a plain run of string content: '"', '\\', a control character
// (< 0x20) or a non-ASCII byte. The lowest such bit marks the first of them
// exactly: borrows only start at a special byte and run upwards.
//
// Flipping bit 1 maps the controls onto themselves and '"' onto 0x20, so
// one subtraction of 0x21 finds both; another finds '\\'; the high bit of
// x itself marks non-ASCII bytes.
func specialMask(x uint64) uint64 {
	return (((x ^ lsb*0x02) - lsb*0x21) | ((x ^ lsb*'\\') - lsb) | x) & msb
}

// plainEnd returns the position of the first byte at or after b[i] that
// specialMask flags, reading eight bytes at a time. It stops short, at
// most seven bytes before the end of b, where a whole word no longer fits;
// the caller reads the rest byte by byte. i must not be negative.
func plainEnd(b []byte, i int) int {
	for ; i <= len(b)-8; i += 8 {
		if m := specialMask(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	return i
}

// scanString validates the string whose opening quote is at b[i] and returns
// the position after its closing quote and whether it contains escapes.
//
// Strings must be valid UTF-8 (no overlong forms, no encoded surrogates, no
// code point above U+10FFFF) with no raw control character. A \u escape of a
// surrogate must be a high surrogate followed by an escaped low surrogate: a
// lone surrogate names no character, and decoders disagree on what it is
// (encoding/json substitutes U+FFFD, JavaScript keeps it), so it is refused
// (ErrEscape) where encoding/json would accept it.
func scanString(b []byte, i int) (int, bool, error) {
	j := plainEnd(b, i+1)
	if j < len(b) && b[j] == '"' {
		return j + 1, false, nil
	}
	return scanStringRest(b, j)
}

// scanStringRest continues scanString at b[i], inside the string, where a
// byte needs a closer look or fewer than eight bytes are left.
func scanStringRest(b []byte, i int) (int, bool, error) {
	esc := false
	for {
		if i >= len(b) {
			return i, esc, ErrTruncated
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, esc, nil
		case c == '\\':
			esc = true
			n, err := scanEscape(b, i)
			if err != nil {
				return i, esc, err
			}
			i = n
		case c < 0x20:
			return i, esc, ErrControl
		case c >= utf8.RuneSelf:
			// Non-ASCII text tends to come in runs: decode the whole run
			// before looking for the next special byte.
			for i < len(b) && b[i] >= utf8.RuneSelf {
				r, size := utf8.DecodeRune(b[i:])
				if r == utf8.RuneError && size == 1 {
					return i, esc, ErrUTF8
				}
				i += size
			}
		default:
			i++
		}
		i = plainEnd(b, i)
	}
}

// scanEscape validates the escape starting with the backslash at b[i] and
// returns the position after it (after both halves of a surrogate pair).
func scanEscape(b []byte, i int) (int, error) {
	if i+1 >= len(b) {
		return i, ErrTruncated
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2, nil
	case 'u':
		r, ok := hex4(b, i+2)
		if !ok {
			return i, ErrEscape
		}
		switch {
		case r < 0xd800 || r > 0xdfff:
			return i + 6, nil
		case r >= 0xdc00:
			return i, ErrEscape // low surrogate first
		}
		if i+7 >= len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
			return i, ErrEscape
		}
		lo, ok := hex4(b, i+8)
		if !ok || lo < 0xdc00 || lo > 0xdfff {
			return i, ErrEscape
		}
		return i + 12, nil
	}
	return i, ErrEscape
}

// hex4 decodes four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	a, c, d, e := hexVal[b[i]], hexVal[b[i+1]], hexVal[b[i+2]], hexVal[b[i+3]]
	if a|c|d|e == 0xff || (a|c|d|e)&0xf0 != 0 {
		return 0, false
	}
	return rune(a)<<12 | rune(c)<<8 | rune(d)<<4 | rune(e), true
}

// appendUnescaped appends the decoded content of a string that scanString
// accepted; raw is the content between the quotes.
func appendUnescaped(dst, raw []byte) []byte {
	for {
		k := bytes.IndexByte(raw, '\\')
		if k < 0 {
			return append(dst, raw...)
		}
		dst = append(dst, raw[:k]...)
		raw = raw[k:]
		switch c := raw[1]; c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(raw, 2)
			if r >= 0xd800 && r < 0xdc00 {
				lo, _ := hex4(raw, 8)
				r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
				raw = raw[6:]
			}
			dst = utf8.AppendRune(dst, r)
			raw = raw[6:]
			continue
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
		raw = raw[2:]
	}
}

// scanNumber validates the number at b[i] (RFC 8259 section 6) and returns the
// position after it. What follows it is the caller's to check.
func scanNumber(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, ErrTruncated
	}
	switch c := b[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		i = skipDigits(b, i+1)
	default:
		return i, ErrNumber
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return j, ErrNumber
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return j, ErrNumber
		}
		i = j
	}
	return i, nil
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i]-'0' < 10 {
		i++
	}
	return i
}

// scanLiteral checks that b[i:] starts with lit.
func scanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) {
		if string(b[i:]) == lit[:len(b)-i] {
			return len(b), ErrTruncated
		}
		return i, ErrSyntax
	}
	if string(b[i:i+len(lit)]) != lit {
		return i, ErrSyntax
	}
	return i + len(lit), nil
}

// scanColon reads the whitespace and colon after an object key.
func scanColon(b []byte, i int) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return i, ErrTruncated
	}
	if b[i] != ':' {
		return i, ErrSyntax
	}
	return i + 1, nil
}

// Literals as little-endian words, for comparing four bytes at once.
const (
	wordTrue = 't' | 'r'<<8 | 'u'<<16 | 'e'<<24
	wordAlse = 'a' | 'l'<<8 | 's'<<16 | 'e'<<24 // "false" after its 'f'
	wordNull = 'n' | 'u'<<8 | 'l'<<16 | 'l'<<24

	wordQuoteColon = '"' | ':'<<8 // the end of a key and its colon
)

// skipValue validates the JSON value starting at b[i] (after optional
// whitespace) and returns the position after it. depth is the number of
// objects and arrays enclosing the value.
//
// It is iterative: one bit per open container (set for arrays) is all the
// state it needs, and MaxDepth is 64, so the stack is a uint64, used as a
// shift register whose low bit is the innermost container.
//
// Most of a message's bytes pass through here, so the common token shapes
// are read inline: a key or string value of printable ASCII without
// escapes, a colon or comma right after a token, a literal compared as one
// word, an integer. Anything else (whitespace, escapes, non-ASCII bytes,
// fractions, misspelt literals) goes to the general functions above. A
// fast path only ever accepts what those would accept, so every check is
// made and every error is reported where they would report it (lex_test.go
// pins the edges). The states are labels, since a key can follow a '{' or
// a ',' and a value a ':', a '[' or a ','.
func skipValue(b []byte, i, depth int) (int, error) {
	var (
		stack uint64 // bit n: the container n levels out is an array
		level int    // open containers
		c     byte
		j     int
		err   error
	)

value: // A value is expected at b[i], after whitespace.
	if i >= len(b) {
		return i, ErrTruncated
	}
	if c = b[i]; c <= ' ' {
		if i = skipSpace(b, i); i >= len(b) {
			return i, ErrTruncated
		}
		c = b[i]
	}
	if c == '"' {
		// Values run longer than keys: two words at a time, then plainEnd.
		for j = i + 1; j <= len(b)-16; j += 16 {
			m0 := specialMask(binary.LittleEndian.Uint64(b[j:]))
			m1 := specialMask(binary.LittleEndian.Uint64(b[j+8:]))
			if m0|m1 != 0 {
				if m0 != 0 {
					j += bits.TrailingZeros64(m0) >> 3
				} else {
					j += 8 + bits.TrailingZeros64(m1)>>3
				}
				goto stringEnd
			}
		}
		j = plainEnd(b, j)
	stringEnd:
		if j < len(b) && b[j] == '"' {
			i = j + 1
		} else if i, _, err = scanStringRest(b, j); err != nil {
			return i, err
		}
		goto after
	}
	if c == '{' {
		if depth+level >= MaxDepth {
			return i, ErrDepth
		}
		level++
		stack <<= 1
		if i++; i < len(b) && b[i] == '"' {
			goto key
		}
		if i = skipSpace(b, i); i < len(b) && b[i] == '}' {
			i++
			level--
			stack >>= 1
			goto after
		}
		goto key
	}
	if c-'1' < 9 {
		// An integer without leading zero that ends at a byte other than
		// '.', 'e' or 'E' (or at the end of b).
		for j = i + 1; j < len(b) && b[j]-'0' < 10; j++ {
		}
		if j >= len(b) || (b[j] != '.' && b[j]|0x20 != 'e') {
			i = j
			goto after
		}
	}
	switch c {
	case '[':
		if depth+level >= MaxDepth {
			return i, ErrDepth
		}
		level++
		stack = stack<<1 | 1
		if i = skipSpace(b, i+1); i < len(b) && b[i] == ']' {
			i++
			level--
			stack >>= 1
			goto after
		}
		goto value
	case 't':
		if i <= len(b)-4 && binary.LittleEndian.Uint32(b[i:]) == wordTrue {
			i += 4
		} else if i, err = scanLiteral(b, i, "true"); err != nil {
			return i, err
		}
	case 'f':
		if i <= len(b)-5 && binary.LittleEndian.Uint32(b[i+1:]) == wordAlse {
			i += 5
		} else if i, err = scanLiteral(b, i, "false"); err != nil {
			return i, err
		}
	case 'n':
		if i <= len(b)-4 && binary.LittleEndian.Uint32(b[i:]) == wordNull {
			i += 4
		} else if i, err = scanLiteral(b, i, "null"); err != nil {
			return i, err
		}
	default:
		if c != '-' && c-'0' >= 10 {
			return i, ErrSyntax
		}
		if i, err = scanNumber(b, i); err != nil {
			return i, err
		}
	}

after: // A value ends at b[i]: a comma or the innermost closer follows.
	if level == 0 {
		return i, nil
	}
	if i >= len(b) {
		return i, ErrTruncated
	}
	if c = b[i]; c <= ' ' {
		if i = skipSpace(b, i); i >= len(b) {
			return i, ErrTruncated
		}
		c = b[i]
	}
	if c == ',' {
		i++
		if stack&1 != 0 {
			goto value
		}
		goto key
	}
	if (stack&1 == 0 && c != '}') || (stack&1 != 0 && c != ']') {
		return i, ErrSyntax
	}
	i++
	level--
	stack >>= 1
	goto after

key: // A member key and its colon are expected at b[i], after whitespace.
	if i >= len(b) || b[i] != '"' {
		if i = skipSpace(b, i); i >= len(b) {
			return i, ErrTruncated
		}
		if b[i] != '"' {
			return i, ErrSyntax
		}
	}
	if j = plainEnd(b, i+1); j <= len(b)-2 && binary.LittleEndian.Uint16(b[j:]) == wordQuoteColon {
		i = j + 2
		goto value
	}
	if j < len(b) && b[j] == '"' {
		j++
	} else if j, _, err = scanStringRest(b, j); err != nil {
		return j, err
	}
	if i, err = scanColon(b, j); err != nil {
		return i, err
	}
	goto value
}

// foldEqual reports whether key equals target under Unicode simple case
// folding, the rule of bytes.EqualFold and of encoding/json's field matching.
// target is ASCII. Only two non-ASCII runes fold onto ASCII letters: U+017F
// (long s) onto s and U+212A (Kelvin sign) onto k; both are longer than one
// byte, so a key shorter than target never matches.
func foldEqual(key []byte, target string) bool {
	if len(key) < len(target) {
		return false
	}
	j := 0
	for i := 0; i < len(key); {
		if j == len(target) {
			return false
		}
		a, t := key[i], target[j]
		j++
		if a < utf8.RuneSelf {
			i++
			if a != t && (a|0x20 != t|0x20 || a|0x20 < 'a' || a|0x20 > 'z') {
				return false
			}
			continue
		}
		r, size := utf8.DecodeRune(key[i:])
		i += size
		if !(r == 0x17f && t|0x20 == 's') && !(r == 0x212a && t|0x20 == 'k') {
			return false
		}
	}
	return j == len(target)
}
