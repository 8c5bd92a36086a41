package jsonrpc

import (
	"bytes"
	"io"
)

// minEventBuffer is the first buffer an EventReader reads into; it doubles
// as events need.
const minEventBuffer = 512

// DefaultMaxEvent is the event size limit NewEventReader uses when given 0.
const DefaultMaxEvent = 4 << 20

// Event is one block of a text/event-stream: the lines up to and including a
// blank line. Its slices alias the EventReader's buffers and stay valid until
// the next call to Next or Reset; they must not be modified.
//
// Next returns every block, not only the ones a browser would dispatch, so
// that a relay can forward ids and comments: an event without data lines has
// HasData false, a block of comments only has Comment true.
type Event struct {
	// ID is the value of the last valid "id" field (one holding a NUL is
	// ignored, as the spec says); HasID reports whether there was one. An
	// empty ID resets the client's last event id.
	ID    []byte
	HasID bool
	// Event is the value of the last "event" field (empty: "message").
	Event []byte
	// Data is the values of the "data" fields joined with "\n"; HasData
	// reports whether there was at least one. A priming event (an id and
	// an empty data line) has HasData true and empty Data.
	Data    []byte
	HasData bool
	// Retry is the value of the last "retry" field made of ASCII digits
	// only (others are ignored, as the spec says).
	Retry []byte
	// Comment reports that the block has only comment lines (":...").
	Comment bool
	// Raw is the block as it came, including its terminating blank line.
	// When the block ended with a CR that was the last byte available, a
	// LF after it (a CRLF split across reads) is not part of Raw: the block
	// is returned without waiting for more of the stream.
	Raw []byte
}

// EventReader splits a text/event-stream into events as the WHATWG HTML
// standard's "event stream interpretation" reads it: lines end with CRLF, LF
// or CR; lines starting with ':' are comments; a line without a colon is a
// field with an empty value; one space after the colon is dropped; a leading
// byte order mark is ignored; an event not ended by a blank line when the
// stream ends is discarded.
//
// It reads incrementally, holding at most one event of at most maxEvent
// bytes plus what the last Read returned beyond it. It is not safe for
// concurrent use; in steady state Next allocates nothing.
type EventReader struct {
	rd  io.Reader
	max int

	buf        []byte
	start, end int   // buf[start:end] is read but not yet returned
	scanned    int   // buf[start:start+scanned] holds complete non-blank lines
	err        error // from rd, sticky (io.EOF included)
	tooLarge   bool  // sticky ErrEventTooLarge
	skipLF     bool  // the last block ended with a CR at the end of the data
	bomChecked bool
	data       []byte // multi-line data, joined
}

// NewEventReader returns a reader of the event stream r that refuses events
// larger than maxEvent bytes (DefaultMaxEvent when maxEvent <= 0).
func NewEventReader(r io.Reader, maxEvent int) *EventReader {
	if maxEvent <= 0 {
		maxEvent = DefaultMaxEvent
	}
	er := &EventReader{max: maxEvent}
	er.Reset(r)
	return er
}

// Reset makes the reader read a new stream from r, keeping its buffers and
// its size limit.
func (r *EventReader) Reset(rd io.Reader) {
	if r.max <= 0 {
		r.max = DefaultMaxEvent
	}
	r.rd = rd
	r.start, r.end, r.scanned = 0, 0, 0
	r.err = nil
	r.tooLarge, r.skipLF, r.bomChecked = false, false, false
}

// Next reads the next event into ev. It returns io.EOF when the stream ends
// (after discarding an incomplete last event), the reader's error if reading
// failed, and ErrEventTooLarge, for good, when an event exceeds the limit.
func (r *EventReader) Next(ev *Event) error {
	*ev = Event{}
	if r.tooLarge {
		return ErrEventTooLarge
	}
	for zeroReads := 0; ; {
		if r.ready() {
			if end, ok := r.findBlock(); ok {
				r.parse(ev, r.buf[r.start:end])
				r.start, r.scanned = end, 0
				return nil
			}
			if r.end-r.start >= r.max {
				r.tooLarge = true
				return ErrEventTooLarge
			}
		}
		if r.err != nil {
			r.start, r.end, r.scanned = 0, 0, 0
			return r.err
		}
		n := r.fill()
		if n > 0 {
			zeroReads = 0
		} else if zeroReads++; zeroReads >= 100 {
			return io.ErrNoProgress
		}
	}
}

// Buffered reports whether a complete event is already buffered, so that
// the next Next returns it without reading. A relay flushes what it wrote
// when none is: events that arrived together leave together, and no event
// waits for one that has not arrived.
func (r *EventReader) Buffered() bool {
	if r.tooLarge || !r.ready() {
		return false
	}
	_, ok := r.findBlock()
	return ok
}

// ready handles what depends on bytes that may not have arrived yet: the LF
// of a CRLF whose CR ended the last block, and a byte order mark at the
// start of the stream. It reports false when it needs more data.
func (r *EventReader) ready() bool {
	if r.skipLF {
		if r.start == r.end && r.err == nil {
			return false
		}
		if r.start < r.end && r.buf[r.start] == '\n' {
			r.start++
		}
		r.skipLF = false
	}
	if !r.bomChecked {
		const bom = "\xef\xbb\xbf"
		avail := r.buf[r.start:r.end]
		if len(avail) < len(bom) && r.err == nil && bytes.HasPrefix([]byte(bom), avail) {
			return false
		}
		if bytes.HasPrefix(avail, []byte(bom)) {
			r.start += len(bom)
		}
		r.bomChecked = true
	}
	return true
}

// findBlock looks for the blank line that ends the block at buf[start:],
// skipping blank lines in front of it. A CR that is the last byte available
// ends a line only at the end of the stream, or when the line is blank: then
// the block is complete whatever follows.
func (r *EventReader) findBlock() (int, bool) {
	b := r.buf[:r.end]
	p := r.start + r.scanned
	for p < len(b) {
		k := bytes.IndexByte(b[p:], '\n')
		rest := b[p:]
		if k >= 0 {
			rest = rest[:k]
		}
		if c := bytes.IndexByte(rest, '\r'); c >= 0 {
			k = c
		}
		if k < 0 {
			break
		}
		t, n := p+k, 1
		if b[t] == '\r' {
			switch {
			case t+1 < len(b):
				if b[t+1] == '\n' {
					n = 2
				}
			case t == p:
				r.skipLF = true
			case r.err == nil:
				r.scanned = p - r.start
				return 0, false
			}
		}
		if t == p { // a blank line
			if p == r.start {
				r.start = t + n
				p = r.start
				if r.skipLF {
					r.scanned = 0
					return 0, false
				}
				continue
			}
			return t + n, true
		}
		p = t + n
	}
	r.scanned = p - r.start
	return 0, false
}

// fill reads more of the stream, making room first.
func (r *EventReader) fill() int {
	if r.start > 0 && (r.start == r.end || r.end == len(r.buf) || r.start > len(r.buf)/2) {
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	if r.end == len(r.buf) {
		// Start small: an idle stream carries keep-alive comments of a few
		// bytes, and a gateway may hold ten thousand streams.
		size := min(max(2*len(r.buf), minEventBuffer), r.max)
		buf := make([]byte, size)
		copy(buf, r.buf[r.start:r.end])
		r.buf, r.end, r.start = buf, r.end-r.start, 0
	}
	n, err := r.rd.Read(r.buf[r.end:])
	r.end += n
	if err != nil {
		r.err = err
	}
	return n
}

// parse reads the fields of a complete block.
func (r *EventReader) parse(ev *Event, block []byte) {
	ev.Raw = block
	ev.Comment = true
	dataLines := 0
	for p := 0; p < len(block); {
		line := block[p:]
		k := bytes.IndexAny(line, "\r\n")
		if k == 0 {
			break // the blank line
		}
		line = line[:k]
		p += k + 1
		if block[p-1] == '\r' && p < len(block) && block[p] == '\n' {
			p++
		}
		if line[0] == ':' {
			continue
		}
		ev.Comment = false
		name, value := line, line[len(line):]
		if c := bytes.IndexByte(line, ':'); c >= 0 {
			name, value = line[:c], line[c+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(name) {
		case "data":
			switch dataLines {
			case 0:
				ev.Data = value
			case 1:
				r.data = append(append(append(r.data[:0], ev.Data...), '\n'), value...)
			default:
				r.data = append(append(r.data, '\n'), value...)
			}
			dataLines++
			ev.HasData = true
		case "event":
			ev.Event = value
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				ev.ID, ev.HasID = value, true
			}
		case "retry":
			if allDigits(value) {
				ev.Retry = value
			}
		}
	}
	if dataLines > 1 {
		ev.Data = r.data
	}
}

func allDigits(v []byte) bool {
	for _, c := range v {
		if c-'0' >= 10 {
			return false
		}
	}
	return len(v) > 0
}

// AppendEvent appends ev as an event stream block: "id:", "event:", "retry:"
// and one "data:" line per line of Data, then a blank line. ev.Comment and
// ev.Raw are ignored, and an event with none of those fields appends nothing.
// ID, Event and Retry end at their first CR or LF, which a field cannot hold;
// Data is split at CRLF, LF and CR, which read back as "\n".
func AppendEvent(dst []byte, ev *Event) []byte {
	n := len(dst)
	if ev.HasID {
		dst = appendField(dst, "id", ev.ID)
	}
	if len(ev.Event) > 0 {
		dst = appendField(dst, "event", ev.Event)
	}
	if len(ev.Retry) > 0 {
		dst = appendField(dst, "retry", ev.Retry)
	}
	if ev.HasData || len(ev.Data) > 0 {
		d := ev.Data
		for {
			k := bytes.IndexAny(d, "\r\n")
			if k < 0 {
				dst = appendField(dst, "data", d)
				break
			}
			dst = appendField(dst, "data", d[:k])
			if d[k] == '\r' && k+1 < len(d) && d[k+1] == '\n' {
				k++
			}
			d = d[k+1:]
		}
	}
	if len(dst) == n {
		return dst
	}
	return append(dst, '\n')
}

func appendField(dst []byte, name string, value []byte) []byte {
	if k := bytes.IndexAny(value, "\r\n"); k >= 0 {
		value = value[:k]
	}
	dst = append(dst, name...)
	dst = append(dst, ':', ' ')
	dst = append(dst, value...)
	return append(dst, '\n')
}

// AppendComment appends a comment block, such as the keep-alive
// ": keepalive\n\n" (MCP-REQUIREMENTS.md 1.8.8). Each line of text becomes
// one comment line.
func AppendComment(dst []byte, text string) []byte {
	for {
		line, rest := text, ""
		if k := indexLineBreak(text); k >= 0 {
			line, rest = text[:k], text[k+1:]
			if text[k] == '\r' && rest != "" && rest[0] == '\n' {
				rest = rest[1:]
			}
		}
		dst = append(dst, ':')
		if line != "" {
			dst = append(dst, ' ')
			dst = append(dst, line...)
		}
		dst = append(dst, '\n')
		if rest == "" {
			return append(dst, '\n')
		}
		text = rest
	}
}

func indexLineBreak(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '\r' || s[i] == '\n' {
			return i
		}
	}
	return -1
}
