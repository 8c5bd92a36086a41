package proxy

import (
	"crypto/rand"
	"strconv"
	"testing"

	"github.com/mcpgw/mcpgw/identity"
)

func TestOpenedSessions(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	codec, err := identity.NewSessionCodec(key)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(user string) []byte {
		id, err := codec.Mint(&identity.Session{User: user, App: "app", ProtocolVersion: "2025-11-25", UpstreamID: "up-" + user})
		if err != nil {
			t.Fatal(err)
		}
		return []byte(id)
	}
	var o openedSessions
	sid := mint("alice@example.com")
	for i := range 2 {
		var s identity.Session
		id, err := o.open(codec, sid, &s)
		if err != nil || s.User != "alice@example.com" || s.UpstreamID != "up-alice@example.com" {
			t.Fatalf("open %d: got %+v, %v; want alice's session", i, s, err)
		}
		if want := auditSessionID(sid); id != want || len(id) != 24 {
			t.Errorf("open %d: got audit id %q, want %q (24 hex digits)", i, id, want)
		}
	}
	forged := append([]byte(nil), sid...)
	forged[len(forged)/2] ^= 1
	for i := range 2 {
		var s identity.Session
		if _, err := o.open(codec, forged, &s); err == nil {
			t.Fatalf("open of a forged id %d: got %+v, want an error", i, s)
		}
	}
	if _, err := o.open(codec, nil, new(identity.Session)); err == nil {
		t.Error("open of an empty id: got no error")
	}
	if n := testing.AllocsPerRun(100, func() {
		var s identity.Session
		_, _ = o.open(codec, sid, &s)
	}); n != 0 {
		t.Errorf("allocs of a remembered open: got %v, want 0", n)
	}

	// A session in use survives any number of others passing through its
	// shard; the cache stays bounded.
	sh := o.shard(sid)
	for i := 0; i < 3*sessionShardSize*sessionShards; i++ {
		other := mint("u" + strconv.Itoa(i))
		if _, err := o.open(codec, other, new(identity.Session)); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			if _, err := o.open(codec, sid, new(identity.Session)); err != nil {
				t.Fatal(err)
			}
		}
	}
	sh.mu.RLock()
	_, inCur := sh.cur[string(sid)]
	_, inPrev := sh.prev[string(sid)]
	size := len(sh.cur) + len(sh.prev)
	sh.mu.RUnlock()
	if !inCur && !inPrev {
		t.Error("a session in use was dropped")
	}
	if size > 2*sessionShardSize {
		t.Errorf("shard holds %d ids, want at most %d", size, 2*sessionShardSize)
	}
}

// BenchmarkOpenSession compares a remembered open with the codec's.
func BenchmarkOpenSession(b *testing.B) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	codec, _ := identity.NewSessionCodec(key)
	id, _ := codec.Mint(&identity.Session{User: "alice@example.com", App: "app", ProtocolVersion: "2025-11-25", UpstreamID: "0123456789abcdef0123456789abcdef"})
	sid := []byte(id)
	b.Run("remembered", func(b *testing.B) {
		var o openedSessions
		var s identity.Session
		b.ReportAllocs()
		for b.Loop() {
			if _, err := o.open(codec, sid, &s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("codec", func(b *testing.B) {
		var s identity.Session
		b.ReportAllocs()
		for b.Loop() {
			if err := codec.Open(sid, &s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
