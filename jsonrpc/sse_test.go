package jsonrpc

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// ev is an Event with strings, for readable diffs.
type ev struct {
	ID, Event, Data, Retry string
	HasID, HasData         bool
	Comment                bool
	Raw                    string
}

func evOf(e *Event) ev {
	return ev{ID: string(e.ID), Event: string(e.Event), Data: string(e.Data), Retry: string(e.Retry),
		HasID: e.HasID, HasData: e.HasData, Comment: e.Comment, Raw: string(e.Raw)}
}

// readAll reads every event of r, returning them and the final error.
func readAll(r io.Reader, max int) ([]ev, error) {
	er := NewEventReader(r, max)
	var out []ev
	var e Event
	for {
		err := er.Next(&e)
		if err != nil {
			return out, err
		}
		out = append(out, evOf(&e))
	}
}

var sseCases = []struct {
	name   string
	stream string
	want   []ev
}{
	{"LF", "event: message\ndata: {\"a\":1}\n\n", []ev{{Event: "message", Data: `{"a":1}`, HasData: true, Raw: "event: message\ndata: {\"a\":1}\n\n"}}},
	{"CRLF", "id: 1\r\ndata: x\r\n\r\n", []ev{{ID: "1", HasID: true, Data: "x", HasData: true, Raw: "id: 1\r\ndata: x\r\n\r\n"}}},
	{"CR", "id: 1\rdata: x\r\rdata: y\r\r", []ev{
		{ID: "1", HasID: true, Data: "x", HasData: true, Raw: "id: 1\rdata: x\r\r"},
		{Data: "y", HasData: true, Raw: "data: y\r\r"}}},
	{"mixed endings", "data: a\r\ndata: b\rdata: c\n\r\n", []ev{{Data: "a\nb\nc", HasData: true, Raw: "data: a\r\ndata: b\rdata: c\n\r\n"}}},
	{"multi-line data", "data: line1\ndata: line2\ndata:\ndata:  four\n\n", []ev{{Data: "line1\nline2\n\n four", HasData: true, Raw: "data: line1\ndata: line2\ndata:\ndata:  four\n\n"}}},
	{"no space after colon", "data:x\nevent:e\n\n", []ev{{Data: "x", Event: "e", HasData: true, Raw: "data:x\nevent:e\n\n"}}},
	{"field without colon", "data\n\n", []ev{{HasData: true, Raw: "data\n\n"}}},
	{"priming event", "id: 0\ndata: \n\n", []ev{{ID: "0", HasID: true, HasData: true, Raw: "id: 0\ndata: \n\n"}}},
	{"comments only", ": keepalive\n\n:\n\n", []ev{{Comment: true, Raw: ": keepalive\n\n"}, {Comment: true, Raw: ":\n\n"}}},
	{"comment inside event", "data: a\n: note\ndata: b\n\n", []ev{{Data: "a\nb", HasData: true, Raw: "data: a\n: note\ndata: b\n\n"}}},
	{"retry", "retry: 3000\nretry: x1\n\n", []ev{{Retry: "3000", Raw: "retry: 3000\nretry: x1\n\n"}}},
	{"retry not digits ignored", "retry: 30s\n\n", []ev{{Raw: "retry: 30s\n\n"}}},
	{"last id wins, NUL ignored", "id: a\nid: b\x00c\ndata: d\n\n", []ev{{ID: "a", HasID: true, Data: "d", HasData: true, Raw: "id: a\nid: b\x00c\ndata: d\n\n"}}},
	{"empty id", "id\ndata: d\n\n", []ev{{HasID: true, Data: "d", HasData: true, Raw: "id\ndata: d\n\n"}}},
	{"unknown field", "foo: bar\ndata: d\n\n", []ev{{Data: "d", HasData: true, Raw: "foo: bar\ndata: d\n\n"}}},
	{"Data is case sensitive", "Data: d\n\n", []ev{{Raw: "Data: d\n\n"}}},
	{"leading blank lines skipped", "\n\r\n\rdata: d\n\n\n\n", []ev{{Data: "d", HasData: true, Raw: "data: d\n\n"}}},
	{"byte order mark", "\xef\xbb\xbfdata: d\n\n", []ev{{Data: "d", HasData: true, Raw: "data: d\n\n"}}},
	{"only one byte order mark", "\xef\xbb\xbf\xef\xbb\xbfdata: d\n\n", []ev{{Raw: "\xef\xbb\xbfdata: d\n\n"}}},
	{"partial final event discarded", "data: a\n\ndata: b\n", []ev{{Data: "a", HasData: true, Raw: "data: a\n\n"}}},
	{"partial final line discarded", "data: a\n\ndata: b", []ev{{Data: "a", HasData: true, Raw: "data: a\n\n"}}},
	{"final CR at end of stream", "data: a\r\r", []ev{{Data: "a", HasData: true, Raw: "data: a\r\r"}}},
	{"empty stream", "", nil},
}

func TestEventReader(t *testing.T) {
	tests := sseCases
	readers := map[string]func(string) io.Reader{
		"whole":    func(s string) io.Reader { return strings.NewReader(s) },
		"one byte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"half":     func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
	}
	for _, tt := range tests {
		for rname, mk := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				got, err := readAll(mk(tt.stream), 1<<10)
				if err != io.EOF {
					t.Fatalf("Next: got error %v, want io.EOF", err)
				}
				// A CRLF split across reads leaves the LF out of Raw.
				want := tt.want
				if rname != "whole" {
					want = append([]ev(nil), tt.want...)
					for i := range got {
						if i < len(want) && strings.HasSuffix(want[i].Raw, "\r\n") && !strings.HasSuffix(got[i].Raw, "\r\n") {
							want[i].Raw = strings.TrimSuffix(want[i].Raw, "\n")
						}
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("events (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestEventReaderTooLarge(t *testing.T) {
	stream := "data: " + strings.Repeat("x", 100) + "\n\n"
	for _, max := range []int{len(stream), len(stream) + 1} {
		got, err := readAll(strings.NewReader(stream), max)
		if err != io.EOF || len(got) != 1 {
			t.Errorf("max %d: got %d events and %v, want 1 and io.EOF", max, len(got), err)
		}
	}
	r := NewEventReader(iotest.OneByteReader(strings.NewReader("data: a\n\n"+stream+"data: b\n\n")), len(stream)-1)
	var e Event
	if err := r.Next(&e); err != nil || string(e.Data) != "a" {
		t.Fatalf("first event: got %q %v, want %q nil", e.Data, err, "a")
	}
	for range 2 {
		if err := r.Next(&e); !errors.Is(err, ErrEventTooLarge) {
			t.Fatalf("oversize event: got %v, want %v", err, ErrEventTooLarge)
		}
	}
	// A stream with no line ending at all is bounded too.
	r.Reset(strings.NewReader(strings.Repeat("y", 5000)))
	if err := r.Next(&e); !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("endless line: got %v, want %v", err, ErrEventTooLarge)
	}
}

// The reader must return an event as soon as its blank line has arrived,
// even when the blank line is a CR that might be followed by a LF.
func TestEventReaderDoesNotWaitAfterCR(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewEventReader(pr, 0)
	done := make(chan ev)
	go func() {
		var e Event
		if err := r.Next(&e); err != nil {
			t.Errorf("Next: got %v, want nil", err)
		}
		done <- evOf(&e)
		if err := r.Next(&e); err != nil {
			t.Errorf("Next: got %v, want nil", err)
		}
		done <- evOf(&e)
	}()
	if _, err := pw.Write([]byte("data: a\r\n\r")); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got.Data != "a" {
		t.Fatalf("first event: got %+v, want data a", got)
	}
	if _, err := pw.Write([]byte("\ndata: b\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got.Data != "b" || got.Raw != "data: b\r\n\r\n" {
		t.Fatalf("second event: got %+v, want data b with its own Raw", got)
	}
	pw.Close()
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestEventReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := readAll(io.MultiReader(strings.NewReader("data: a\n"), errReader{boom}), 0)
	if err != boom {
		t.Errorf("got %v, want %v", err, boom)
	}
}

func TestAppendEvent(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"data", Event{Data: []byte(`{"a":1}`), HasData: true}, "data: {\"a\":1}\n\n"},
		{"all fields", Event{ID: []byte("7"), HasID: true, Event: []byte("message"), Retry: []byte("100"), Data: []byte("x"), HasData: true},
			"id: 7\nevent: message\nretry: 100\ndata: x\n\n"},
		{"priming", Event{ID: []byte("0"), HasID: true, HasData: true}, "id: 0\ndata: \n\n"},
		{"multi-line data", Event{Data: []byte("a\nb\r\nc\rd\n"), HasData: true}, "data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n"},
		{"empty id", Event{HasID: true}, "id: \n\n"},
		{"newline cut from id", Event{ID: []byte("1\ndata: injected"), HasID: true}, "id: 1\n\n"},
		{"nothing", Event{Comment: true, Raw: []byte(": x\n\n")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendEvent(nil, &tt.ev)); got != tt.want {
				t.Errorf("AppendEvent: got %q, want %q", got, tt.want)
			}
		})
	}
	for text, want := range map[string]string{"keepalive": ": keepalive\n\n", "": ":\n\n", "a\nb\r\nc": ": a\n: b\n: c\n\n"} {
		if got := string(AppendComment(nil, text)); got != want {
			t.Errorf("AppendComment(%q): got %q, want %q", text, got, want)
		}
	}
}

func TestEventReaderAllocs(t *testing.T) {
	block := "id: 12\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\ndata: more\n\n: ping\n\n"
	stream := bytes.NewReader(nil)
	src := []byte(strings.Repeat(block, 64))
	r := NewEventReader(stream, 0)
	var e Event
	run := func() {
		stream.Reset(src)
		r.Reset(stream)
		for r.Next(&e) == nil {
		}
	}
	run()
	if n := testing.AllocsPerRun(20, run); n != 0 {
		t.Errorf("EventReader.Next: got %v allocs per stream, want 0", n)
	}
}
