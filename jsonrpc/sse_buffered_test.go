package jsonrpc

import (
	"io"
	"testing"
)

// oneRead hands out its chunks one Read at a time.
type oneRead struct{ chunks []string }

func (o *oneRead) Read(p []byte) (int, error) {
	if len(o.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, o.chunks[0])
	o.chunks[0] = o.chunks[0][n:]
	if o.chunks[0] == "" {
		o.chunks = o.chunks[1:]
	}
	return n, nil
}

func TestEventReaderBuffered(t *testing.T) {
	// Two events and half of a third arrive in one read, the rest later.
	rd := NewEventReader(&oneRead{chunks: []string{"data: 1\n\ndata: 2\r\n\r\ndata: 3", "\n\n"}}, 0)
	var ev Event
	want := []struct {
		data     string
		buffered bool
	}{{"1", true}, {"2", false}, {"3", false}}
	if rd.Buffered() {
		t.Fatal("Buffered before any read: got true")
	}
	for i, w := range want {
		if err := rd.Next(&ev); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if string(ev.Data) != w.data {
			t.Errorf("event %d: data %q, want %q", i, ev.Data, w.data)
		}
		if got := rd.Buffered(); got != w.buffered {
			t.Errorf("after event %d: Buffered %v, want %v", i, got, w.buffered)
		}
	}
	if err := rd.Next(&ev); err != io.EOF {
		t.Errorf("end: got %v, want EOF", err)
	}
	// A block whose blank line has not fully arrived is not buffered.
	rd = NewEventReader(&oneRead{chunks: []string{"data: a\r\n\r\ndata: b\r\n", "\r\n"}}, 0)
	if err := rd.Next(&ev); err != nil || string(ev.Data) != "a" {
		t.Fatalf("got %q %v", ev.Data, err)
	}
	if rd.Buffered() {
		t.Error("Buffered with half of the next event: got true")
	}
	if err := rd.Next(&ev); err != nil || string(ev.Data) != "b" {
		t.Fatalf("got %q %v", ev.Data, err)
	}
}
