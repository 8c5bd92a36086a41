package access

import (
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpgw/mcpgw/internal/state"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// grantFor approves a ruleOne request for tool (hash nil: whole tool) and
// returns the grant id.
func (f *fixture) grantFor(t *testing.T, user, tool string, hash *[32]byte) string {
	t.Helper()
	req, _, err := f.s.RequestFor(user, app, ruleOne, tool, hash)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.s.Decide(req.ID, "boss@example.com", nil, true, "")
	if err != nil {
		t.Fatal(err)
	}
	return got.GrantID
}

func TestCheckExactAndWhole(t *testing.T) {
	f := newFixture(t)
	whole := f.grantFor(t, requester, "restart_web", nil)
	exact := f.grantFor(t, requester, "restart_db", hashOf("primary"))
	tests := []struct {
		name   string
		user   string
		app    string
		tool   string
		hash   *[32]byte
		wantID string
	}{
		{"whole tool, any arguments", requester, app, "restart_web", hashOf("anything"), whole},
		{"whole tool, no hash", requester, app, "restart_web", nil, whole},
		{"exact, same arguments", requester, app, "restart_db", hashOf("primary"), exact},
		{"exact, other arguments", requester, app, "restart_db", hashOf("replica"), ""},
		{"exact, no hash", requester, app, "restart_db", nil, ""},
		{"other tool", requester, app, "restart_cache", nil, ""},
		{"other app", requester, "other", "restart_web", nil, ""},
		{"other user", "bob@example.com", app, "restart_web", nil, ""},
		{"tool name differs by case", requester, app, "Restart_web", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := f.s.Check(tt.user, tt.app, []byte(tt.tool), tt.hash)
			if id != tt.wantID || ok != (tt.wantID != "") {
				t.Errorf("got %q, %v, want %q, %v", id, ok, tt.wantID, tt.wantID != "")
			}
		})
	}
}

// TestGrantExpiry: a grant covers calls strictly before its expiry.
func TestGrantExpiry(t *testing.T) {
	f := newFixture(t)
	id := f.grantFor(t, requester, "restart_pod", nil)
	g := f.s.Grants(requester, "")
	if len(g) != 1 || g[0].ID != id {
		t.Fatalf("Grants: got %+v, want %s", g, id)
	}
	expires := g[0].Expires
	if want := f.clock.Now().Add(10 * time.Minute); !expires.Equal(want) {
		t.Errorf("expires: got %v, want %v (grant_ttl after the approval)", expires, want)
	}
	f.rec.take()
	tool := []byte("restart_pod")
	f.clock.Set(expires.Add(-time.Nanosecond))
	if _, ok := f.s.Check(requester, app, tool, nil); !ok {
		t.Error("1ns before expiry: Check refused, want allowed")
	}
	if err := f.s.Sweep(); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(expires)
	if _, ok := f.s.Check(requester, app, tool, nil); ok {
		t.Error("at expiry: Check allowed, want refused (before any sweep)")
	}
	if got := f.s.Grants("", ""); len(got) != 0 {
		t.Errorf("Grants at expiry: got %d, want 0", len(got))
	}
	if err := f.s.Revoke(id, "admin"); !errors.Is(err, ErrUnknownGrant) {
		t.Errorf("Revoke at expiry: got %v, want %v", err, ErrUnknownGrant)
	}
	for range 2 {
		if err := f.s.Sweep(); err != nil {
			t.Fatal(err)
		}
	}
	got := f.rec.take()
	if len(got) != 1 || got[0].Kind != EventGrantExpired || got[0].GrantID != id || !got[0].Time.Equal(expires) {
		t.Errorf("events: got %+v, want one grant_expired for %s at %v", got, id, expires)
	}
	// Then access must be requested again.
	if _, created, err := f.s.RequestFor(requester, app, ruleOne, "restart_pod", nil); err != nil || !created {
		t.Errorf("RequestFor after the grant expired: created %v err %v, want a new request", created, err)
	}
}

func TestRevoke(t *testing.T) {
	f := newFixture(t)
	id := f.grantFor(t, requester, "restart_pod", nil)
	other := f.grantFor(t, requester, "restart_web", nil)
	tool := []byte("restart_pod")
	if _, ok := f.s.Check(requester, app, tool, nil); !ok {
		t.Fatal("Check before Revoke: refused")
	}
	f.rec.take()
	if err := f.s.Revoke(id, "admin@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.s.Check(requester, app, tool, nil); ok {
		t.Error("Check right after Revoke: allowed, want refused")
	}
	if _, ok := f.s.Check(requester, app, []byte("restart_web"), nil); !ok {
		t.Error("the other grant stopped working")
	}
	if _, err := f.store.Get(grantKey(id)); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("stored grant after Revoke: got %v, want %v", err, state.ErrNotFound)
	}
	got := f.rec.take()
	if len(got) != 1 || got[0].Kind != EventRevoked || got[0].GrantID != id || got[0].Actor != "admin@example.com" {
		t.Errorf("events: got %+v, want one revoked by admin@example.com", got)
	}
	if err := f.s.Revoke(id, "admin"); !errors.Is(err, ErrUnknownGrant) {
		t.Errorf("second Revoke: got %v, want %v", err, ErrUnknownGrant)
	}
	if err := f.s.Revoke("grt_nope", "admin"); !errors.Is(err, ErrUnknownGrant) {
		t.Errorf("Revoke of an unknown id: got %v, want %v", err, ErrUnknownGrant)
	}
	if g := f.s.Grants("", ""); len(g) != 1 || g[0].ID != other {
		t.Errorf("Grants: got %+v, want only %s", g, other)
	}
}

// TestRevokeWhileChecking: Checks running on other goroutines never see a
// grant once Revoke has returned (run with -race).
func TestRevokeWhileChecking(t *testing.T) {
	f := newFixture(t)
	id := f.grantFor(t, requester, "restart_pod", nil)
	var (
		mu   sync.Mutex // guards done
		done bool
		wg   sync.WaitGroup
		late = make(chan string, 8)
	)
	for range 8 {
		wg.Go(func() {
			for {
				mu.Lock()
				after := done
				mu.Unlock()
				_, ok := f.s.Check(requester, app, []byte("restart_pod"), nil)
				if after {
					if ok {
						late <- "allowed after Revoke returned"
					}
					return
				}
			}
		})
	}
	time.Sleep(time.Millisecond)
	if err := f.s.Revoke(id, "admin"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	done = true
	mu.Unlock()
	wg.Wait()
	close(late)
	for msg := range late {
		t.Error(msg)
	}
}

// TestRestart: a request approved at level 1, then the process stops; the
// next Service on the same Pebble store finishes it and the grant works,
// and survives another restart.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	c.Set(time.Now().UTC().Truncate(time.Second)) // Pebble's ttl follows the wall clock
	open := func() (*fixture, func()) {
		store, err := state.OpenPebble(dir, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		f := newFixtureOn(t, c, store)
		return f, func() {
			f.s.Close()
			if err := store.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}

	f, stop := open()
	hash := hashOf(`{"user":"u1"}`)
	req, _, err := f.s.RequestFor(requester, app, ruleTwo, "update_user", hash)
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"sec1@example.com", "sec2@example.com"} {
		if _, err := f.s.Decide(req.ID, who, []string{"secops"}, true, ""); err != nil {
			t.Fatal(err)
		}
	}
	stop()

	f, stop = open()
	got, err := f.s.Get(req.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusPending || got.Level != 2 || len(got.Decisions) != 2 {
		t.Fatalf("after restart: got %s level %d with %d decisions, want pending level 2 with 2", got.Status, got.Level, len(got.Decisions))
	}
	if again, created, _ := f.s.RequestFor(requester, app, ruleTwo, "update_user", hash); created || again.ID != req.ID {
		t.Errorf("RequestFor after restart: got %s created %v, want the same pending request", again.ID, created)
	}
	final, err := f.s.Decide(req.ID, "cab-lead@example.com", nil, true, "")
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := f.s.Check(requester, app, []byte("update_user"), hash); !ok || id != final.GrantID {
		t.Errorf("Check: got %q, %v, want %s", id, ok, final.GrantID)
	}
	stop()

	f, stop = open()
	defer stop()
	if id, ok := f.s.Check(requester, app, []byte("update_user"), hash); !ok || id != final.GrantID {
		t.Errorf("Check after a second restart: got %q, %v, want %s", id, ok, final.GrantID)
	}
	want := []Grant{{
		ID: final.GrantID, RequestID: req.ID, App: app, User: requester, Tools: []string{"update_user"},
		ArgumentsHash: req.ArgumentsHash, Expires: c.Now().Add(30 * time.Minute),
	}}
	if diff := cmp.Diff(want, f.s.Grants(requester, app)); diff != "" {
		t.Errorf("Grants after restart (-want +got):\n%s", diff)
	}
}

// TestExpiryWhileDown: a request whose time passed while no Service ran is
// expired by New, with its event.
func TestExpiryWhileDown(t *testing.T) {
	c := newClock()
	store := state.NewMemoryWithClock(c.Now)
	f := newFixtureOn(t, c, store)
	req, _, _ := f.s.RequestFor(requester, app, ruleOne, "restart_pod", nil)
	f.grantFor(t, requester, "restart_web", nil)
	f.s.Close()
	c.Advance(2 * time.Hour)
	f = newFixtureOn(t, c, store)
	got := f.rec.take()
	if len(got) != 1 || got[0].Kind != EventExpired || got[0].RequestID != req.ID {
		t.Errorf("events of New: got %+v, want one expired for %s", got, req.ID)
	}
	if g := f.s.Grants("", ""); len(g) != 0 {
		t.Errorf("grants after their expiry: got %+v, want none", g)
	}
}

func TestCheckAllocs(t *testing.T) {
	f := newFixture(t)
	f.grantFor(t, requester, "restart_web", nil)
	f.grantFor(t, requester, "restart_db", hashOf("primary"))
	tools := [][]byte{[]byte("restart_web"), []byte("restart_db"), []byte("restart_none")}
	hash := hashOf("primary")
	allocs := testing.AllocsPerRun(1000, func() {
		for _, tool := range tools {
			f.s.Check(requester, app, tool, hash)
		}
		f.s.Check("nobody", app, tools[0], nil)
	})
	if allocs != 0 {
		t.Errorf("Check: got %v allocations per run, want 0", allocs)
	}
}

func BenchmarkCheck(b *testing.B) {
	// The wall clock, as in production: Check reads it on every call.
	s, err := New(Options{Store: state.NewMemory(), Flows: testFlows(), SweepInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := range 100 { // other users' grants in the index
		u := "user" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		req, _, _ := s.RequestFor(u, app, ruleOne, "restart_web", nil)
		s.Decide(req.ID, "boss@example.com", nil, true, "")
	}
	req, _, _ := s.RequestFor(requester, app, ruleOne, "restart_db", hashOf("primary"))
	if _, err := s.Decide(req.ID, "boss@example.com", nil, true, ""); err != nil {
		b.Fatal(err)
	}
	tool, hash, other := []byte("restart_db"), hashOf("primary"), hashOf("replica")
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := s.Check(requester, app, tool, hash); !ok {
				b.Fatal("miss")
			}
		}
	})
	b.Run("miss-arguments", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := s.Check(requester, app, tool, other); ok {
				b.Fatal("hit")
			}
		}
	})
	b.Run("miss-no-grant", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := s.Check("nobody", app, tool, hash); ok {
				b.Fatal("hit")
			}
		}
	})
	b.Run("hit-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.Check(requester, app, tool, hash)
			}
		})
	})
}

// TestApprovedRequestOutlivesKeep: the request behind a live grant stays
// readable even when Keep is shorter than the grant.
func TestApprovedRequestOutlivesKeep(t *testing.T) {
	c := newClock()
	s, err := New(Options{Store: state.NewMemoryWithClock(c.Now), Flows: testFlows(), Now: c.Now, Keep: time.Minute, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	req, _, _ := s.RequestFor(requester, app, ruleOne, "restart_pod", nil)
	if _, err := s.Decide(req.ID, "boss@example.com", nil, true, ""); err != nil {
		t.Fatal(err)
	}
	c.Advance(10*time.Minute - time.Nanosecond)
	if _, err := s.Get(req.ID); err != nil {
		t.Errorf("Get while its grant lives: %v", err)
	}
	c.Advance(time.Nanosecond)
	if _, err := s.Get(req.ID); !errors.Is(err, ErrUnknownRequest) {
		t.Errorf("Get after grant and Keep ran out: got %v, want %v", err, ErrUnknownRequest)
	}
}
