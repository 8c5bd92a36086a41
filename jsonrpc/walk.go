package jsonrpc

import "encoding/binary"

// Iteration over the members of objects and the elements of arrays, for the
// walkers that need to see each one (the message walk, the list filter,
// SplitBatch, Lookup, EachString). skipValue does the same without stopping.

// firstItem reads past the '{' or '[' at b[i]. It returns the position of
// the first member key or element, or done and the position after the
// closing byte (closer: '}' or ']') of an empty container.
func firstItem(b []byte, i int, closer byte) (int, bool) {
	j := skipSpace(b, i+1)
	if j < len(b) && b[j] == closer {
		return j + 1, true
	}
	return j, false
}

// nextItem reads what follows a member value or element ending at b[i]:
// either a comma (it returns the position after it) or the closing byte
// (done, position after it).
func nextItem(b []byte, i int, closer byte) (int, bool, error) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return i, false, ErrTruncated
	}
	switch b[i] {
	case ',':
		return i + 1, false, nil
	case closer:
		return i + 1, true, nil
	}
	return i, false, ErrSyntax
}

// readKey reads a member key (after optional whitespace) and its colon. It
// returns the raw key content between the quotes, whether it has escapes, the
// position of its opening quote and the position after the colon.
func readKey(b []byte, i int) (raw []byte, esc bool, at, next int, err error) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return nil, false, i, i, ErrTruncated
	}
	if b[i] != '"' {
		return nil, false, i, i, ErrSyntax
	}
	// Most keys are plain ASCII with the colon right after them.
	if j := plainEnd(b, i+1); j <= len(b)-2 && binary.LittleEndian.Uint16(b[j:]) == wordQuoteColon {
		return b[i+1 : j], false, i, j + 2, nil
	}
	end, esc, err := scanString(b, i)
	if err != nil {
		return nil, false, i, end, err
	}
	next, err = scanColon(b, end)
	return b[i+1 : end-1], esc, i, next, err
}

// scanStringArray validates the array at b[i] (depth: its own depth) and
// reports whether every element is a string.
func scanStringArray(b []byte, i, depth int) (int, bool, error) {
	ok := true
	j, done := firstItem(b, i, ']')
	var err error
	for !done {
		j = skipSpace(b, j)
		if j < len(b) && b[j] == '"' {
			j, _, err = scanString(b, j)
		} else {
			ok = false
			j, err = skipValue(b, j, depth)
		}
		if err != nil {
			return j, false, err
		}
		if j, done, err = nextItem(b, j, ']'); err != nil {
			return j, false, err
		}
	}
	return j, ok, nil
}

// parseInt64 parses a JSON number token that is an integer fitting int64.
func parseInt64(tok []byte) (int64, bool) {
	neg := len(tok) > 0 && tok[0] == '-'
	if neg {
		tok = tok[1:]
	}
	if len(tok) == 0 || len(tok) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range tok {
		if c-'0' >= 10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	switch {
	case neg && u <= 1<<63:
		return -int64(u-1) - 1, true
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}
