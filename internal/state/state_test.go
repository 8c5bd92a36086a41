package state

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time source for the expiry tests.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// opener opens an empty store whose expiry follows now.
type opener func(t *testing.T, now func() time.Time) Store

func openers() map[string]opener {
	return map[string]opener{
		"memory": func(t *testing.T, now func() time.Time) Store {
			return NewMemoryWithClock(now)
		},
		"pebble": func(t *testing.T, now func() time.Time) Store {
			p, err := OpenPebble(t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			p.now = now
			t.Cleanup(func() { p.Close() })
			return p
		},
	}
}

// TestConformance runs the same behaviour checks on every implementation.
func TestConformance(t *testing.T) {
	for name, open := range openers() {
		t.Run(name, func(t *testing.T) {
			for _, tc := range conformanceCases {
				t.Run(tc.name, func(t *testing.T) {
					c := newClock()
					tc.run(t, open(t, c.now), c)
				})
			}
		})
	}
}

var conformanceCases = []struct {
	name string
	run  func(t *testing.T, s Store, c *clock)
}{
	{"get absent", func(t *testing.T, s Store, c *clock) {
		if _, err := s.Get("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(absent): got %v, want ErrNotFound", err)
		}
	}},
	{"put get overwrite delete", func(t *testing.T, s Store, c *clock) {
		mustPut(t, s, "k", "v1", 0)
		wantValue(t, s, "k", "v1")
		mustPut(t, s, "k", "v2", 0)
		wantValue(t, s, "k", "v2")
		if err := s.Delete("k"); err != nil {
			t.Fatal(err)
		}
		wantAbsent(t, s, "k")
		if err := s.Delete("k"); err != nil {
			t.Errorf("Delete(absent): got %v, want nil", err)
		}
	}},
	{"empty value is present", func(t *testing.T, s Store, c *clock) {
		mustPut(t, s, "k", "", 0)
		wantValue(t, s, "k", "")
	}},
	{"values are copied", func(t *testing.T, s Store, c *clock) {
		in := []byte("abc")
		if err := s.Put("k", in, 0); err != nil {
			t.Fatal(err)
		}
		in[0] = 'X'
		out, err := s.Get("k")
		if err != nil {
			t.Fatal(err)
		}
		out[1] = 'Y'
		wantValue(t, s, "k", "abc")
	}},
	{"ttl expiry", func(t *testing.T, s Store, c *clock) {
		mustPut(t, s, "k", "v", time.Minute)
		mustPut(t, s, "forever", "v", 0)
		c.advance(59 * time.Second)
		wantValue(t, s, "k", "v")
		c.advance(time.Second)
		wantAbsent(t, s, "k")
		c.advance(1000 * time.Hour)
		wantValue(t, s, "forever", "v")
	}},
	{"negative ttl refused", func(t *testing.T, s Store, c *clock) {
		if err := s.Put("k", []byte("v"), -time.Second); err == nil {
			t.Error("Put with negative ttl: got nil error")
		}
		if err := s.CompareAndSwap("k", nil, []byte("v"), -time.Second); err == nil {
			t.Error("CompareAndSwap with negative ttl: got nil error")
		}
	}},
	{"cas", func(t *testing.T, s Store, c *clock) {
		steps := []struct {
			old, value string
			oldNil     bool
			want       error
			after      string
		}{
			{oldNil: true, value: "a", want: nil, after: "a"},
			{oldNil: true, value: "b", want: ErrConflict, after: "a"},
			{old: "x", value: "b", want: ErrConflict, after: "a"},
			{old: "", value: "b", want: ErrConflict, after: "a"},
			{old: "a", value: "b", want: nil, after: "b"},
			{old: "b", value: "", want: nil, after: ""},
			{old: "", value: "c", want: nil, after: "c"},
		}
		for i, st := range steps {
			var old []byte
			if !st.oldNil {
				old = []byte(st.old)
			}
			err := s.CompareAndSwap("k", old, []byte(st.value), 0)
			if !errors.Is(err, st.want) || (st.want == nil && err != nil) {
				t.Fatalf("step %d: got %v, want %v", i, err, st.want)
			}
			wantValue(t, s, "k", st.after)
		}
	}},
	{"cas on expired is absent", func(t *testing.T, s Store, c *clock) {
		mustPut(t, s, "k", "old", time.Second)
		c.advance(2 * time.Second)
		if err := s.CompareAndSwap("k", []byte("old"), []byte("x"), 0); !errors.Is(err, ErrConflict) {
			t.Errorf("CAS(old=expired value): got %v, want ErrConflict", err)
		}
		if err := s.CompareAndSwap("k", nil, []byte("new"), time.Minute); err != nil {
			t.Errorf("CAS(nil) over expired: got %v, want nil", err)
		}
		wantValue(t, s, "k", "new")
		c.advance(time.Minute)
		wantAbsent(t, s, "k")
	}},
	{"scan", func(t *testing.T, s Store, c *clock) {
		for _, k := range []string{"b/2", "a/1", "b/1", "b/3", "b0", "c", "b/\xff"} {
			mustPut(t, s, k, "v"+k, 0)
		}
		mustPut(t, s, "b/0", "gone", time.Second)
		c.advance(time.Second)
		got := scanKeys(t, s, "b/", -1)
		want := "b/1,b/2,b/3,b/\xff"
		if got != want {
			t.Errorf("Scan(b/): got %q, want %q", got, want)
		}
		if got, want := scanKeys(t, s, "b/", 2), "b/1,b/2"; got != want {
			t.Errorf("Scan(b/) stopping after 2: got %q, want %q", got, want)
		}
		if got, want := scanKeys(t, s, "", -1), "a/1,b/1,b/2,b/3,b/\xff,b0,c"; got != want {
			t.Errorf("Scan(\"\"): got %q, want %q", got, want)
		}
		if got := scanKeys(t, s, "zz", -1); got != "" {
			t.Errorf("Scan(zz): got %q, want nothing", got)
		}
		err := s.Scan("a/", func(k string, v []byte) bool {
			if string(v) != "va/1" {
				t.Errorf("Scan value of %s: got %q, want %q", k, v, "va/1")
			}
			// The callback may write.
			if err := s.Put("a/2", []byte("x"), 0); err != nil {
				t.Errorf("Put inside Scan: %v", err)
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		wantValue(t, s, "a/2", "x")
	}},
	{"closed", func(t *testing.T, s Store, c *clock) {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get("k"); !errors.Is(err, ErrClosed) {
			t.Errorf("Get after Close: got %v, want ErrClosed", err)
		}
		if err := s.Put("k", nil, 0); !errors.Is(err, ErrClosed) {
			t.Errorf("Put after Close: got %v, want ErrClosed", err)
		}
		if err := s.Scan("", func(string, []byte) bool { return true }); !errors.Is(err, ErrClosed) {
			t.Errorf("Scan after Close: got %v, want ErrClosed", err)
		}
	}},
	{"concurrent cas has one winner", func(t *testing.T, s Store, c *clock) {
		const n = 32
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				err := s.CompareAndSwap("once", nil, fmt.Appendf(nil, "%d", i), 0)
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, ErrConflict):
					t.Errorf("goroutine %d: got %v, want nil or ErrConflict", i, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if got := wins.Load(); got != 1 {
			t.Errorf("winners: got %d, want 1", got)
		}
	}},
	{"concurrent cas increments", func(t *testing.T, s Store, c *clock) {
		// Every goroutine adds one to a counter by read + CAS retry; no
		// increment may be lost.
		const n, per = 8, 5
		mustPut(t, s, "ctr", "0", 0)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range per {
					for {
						cur, err := s.Get("ctr")
						if err != nil {
							t.Error(err)
							return
						}
						var v int
						fmt.Sscan(string(cur), &v)
						err = s.CompareAndSwap("ctr", cur, fmt.Appendf(nil, "%d", v+1), 0)
						if err == nil {
							break
						}
						if !errors.Is(err, ErrConflict) {
							t.Error(err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		wantValue(t, s, "ctr", fmt.Sprint(n*per))
	}},
}

func mustPut(t *testing.T, s Store, key, value string, ttl time.Duration) {
	t.Helper()
	if err := s.Put(key, []byte(value), ttl); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func wantValue(t *testing.T, s Store, key, want string) {
	t.Helper()
	got, err := s.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): got error %v, want %q", key, err, want)
	}
	if !bytes.Equal(got, []byte(want)) {
		t.Fatalf("Get(%q): got %q, want %q", key, got, want)
	}
}

func wantAbsent(t *testing.T, s Store, key string) {
	t.Helper()
	if got, err := s.Get(key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(%q): got %q, %v, want ErrNotFound", key, got, err)
	}
}

// scanKeys returns the keys Scan visits, comma-separated, stopping after
// limit keys (limit < 0: all).
func scanKeys(t *testing.T, s Store, prefix string, limit int) string {
	t.Helper()
	var b []byte
	n := 0
	err := s.Scan(prefix, func(k string, v []byte) bool {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, k...)
		n++
		return limit < 0 || n < limit
	})
	if err != nil {
		t.Fatalf("Scan(%q): %v", prefix, err)
	}
	return string(b)
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"a", "b"},
		{"a\xff", "b"},
		{"\xff\xff", ""},
		{"ab", "ac"},
	} {
		if got := string(prefixEnd([]byte(tc.in))); got != tc.want {
			t.Errorf("prefixEnd(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestScanManyKeys crosses Pebble's scan batches, with expired keys among
// them and the callback writing.
func TestScanManyKeys(t *testing.T) {
	for name, open := range openers() {
		t.Run(name, func(t *testing.T) {
			c := newClock()
			s := open(t, c.now)
			const n = 3*scanBatch + 17
			for i := range n {
				ttl := time.Duration(0)
				if i%5 == 0 {
					ttl = time.Second
				}
				mustPut(t, s, fmt.Sprintf("k/%05d", i), fmt.Sprint(i), ttl)
			}
			mustPut(t, s, "l/after", "x", 0)
			c.advance(time.Second)
			seen := 0
			last := ""
			err := s.Scan("k/", func(k string, v []byte) bool {
				if k <= last {
					t.Errorf("key %s after %s: not in order", k, last)
				}
				last = k
				if string(v) != strings.TrimLeft(strings.TrimPrefix(k, "k/"), "0") {
					t.Errorf("value of %s: got %q", k, v)
				}
				seen++
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := n - (n+4)/5; seen != want {
				t.Errorf("scanned: got %d keys, want %d", seen, want)
			}
			// The expired keys were swept: a second scan of everything
			// finds the same live keys plus l/after.
			if got := strings.Count(scanKeys(t, s, "", -1), ",") + 1; got != seen+1 {
				t.Errorf("scan of everything: got %d keys, want %d", got, seen+1)
			}
		})
	}
}
