package jsonrpc

// RedactedValue replaces a redacted member's value.
const RedactedValue = `"[redacted]"`

// Redactor copies JSON values with the values of chosen members replaced.
// The audit log records tool arguments through one (audit.arguments:
// redacted). A Redactor is reusable and not safe for concurrent use; in
// steady state it does not allocate.
type Redactor struct {
	out     []byte
	scratch []byte // unescaped keys
}

// AppendRedacted appends the JSON value doc to dst, with the value of every
// object member whose key redact reports true (the key unescaped, at any
// depth, inside arrays too) replaced by RedactedValue. Everything else,
// whitespace included, is copied byte for byte. doc is checked as it is
// walked, with the depth limit of Scan; on error nothing is appended and
// dst is returned as it was. The key passed to redact is valid only during
// the call.
func (w *Redactor) AppendRedacted(dst, doc []byte, redact func(key []byte) bool) ([]byte, error) {
	// redact is passed down, not kept in w: kept, a closure the caller
	// builds per call would escape to the heap.
	w.out = dst
	i, err := w.value(doc, skipSpace(doc, 0), 0, redact)
	if err == nil && skipSpace(doc, i) != len(doc) {
		err = ErrTrailingData
	}
	out := w.out
	w.out = nil
	if err != nil {
		return dst, err
	}
	return out, nil
}

// value copies the value at doc[i] (after whitespace), redacting inside
// it, and returns the position after it.
func (w *Redactor) value(doc []byte, i, depth int, redact func(key []byte) bool) (int, error) {
	j := skipSpace(doc, i)
	w.out = append(w.out, doc[i:j]...)
	if i = j; i >= len(doc) {
		return i, ErrTruncated
	}
	switch doc[i] {
	case '{':
		return w.object(doc, i, depth+1, redact)
	case '[':
		return w.array(doc, i, depth+1, redact)
	}
	end, err := skipValue(doc, i, depth)
	if err != nil {
		return end, err
	}
	w.out = append(w.out, doc[i:end]...)
	return end, nil
}

func (w *Redactor) object(doc []byte, i, depth int, redact func(key []byte) bool) (int, error) {
	if depth > MaxDepth {
		return i, ErrDepth
	}
	j, done := firstItem(doc, i, '}')
	w.out = append(w.out, doc[i:j]...) // '{' and the whitespace before the first key
	if done {
		return j, nil
	}
	for {
		raw, esc, _, next, err := readKey(doc, j)
		if err != nil {
			return next, err
		}
		w.out = append(w.out, doc[j:next]...) // key, colon and the space around them
		key := raw
		if esc {
			w.scratch = appendUnescaped(w.scratch[:0], raw)
			key = w.scratch
		}
		if redact(key) {
			v := skipSpace(doc, next)
			end, err := skipValue(doc, v, depth)
			if err != nil {
				return end, err
			}
			w.out = append(w.out, doc[next:v]...)
			w.out = append(w.out, RedactedValue...)
			j = end
		} else if j, err = w.value(doc, next, depth, redact); err != nil {
			return j, err
		}
		if j, done, err = w.separator(doc, j, '}'); err != nil || done {
			return j, err
		}
	}
}

func (w *Redactor) array(doc []byte, i, depth int, redact func(key []byte) bool) (int, error) {
	if depth > MaxDepth {
		return i, ErrDepth
	}
	j, done := firstItem(doc, i, ']')
	w.out = append(w.out, doc[i:j]...)
	if done {
		return j, nil
	}
	for {
		var err error
		if j, err = w.value(doc, j, depth, redact); err != nil {
			return j, err
		}
		if j, done, err = w.separator(doc, j, ']'); err != nil || done {
			return j, err
		}
	}
}

// separator copies what follows a member or element ending at doc[i]: a
// comma, or the closing byte (done), with the whitespace before it.
func (w *Redactor) separator(doc []byte, i int, closer byte) (int, bool, error) {
	k, done, err := nextItem(doc, i, closer)
	if err != nil {
		return k, false, err
	}
	w.out = append(w.out, doc[i:k]...)
	return k, done, nil
}
