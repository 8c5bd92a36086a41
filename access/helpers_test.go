package access

import (
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/state"
)

// clock is a fake clock that tests step by hand.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// recorder keeps the events a Service emits.
type recorder struct {
	mu     sync.Mutex // guards events
	events []Event
}

func (r *recorder) add(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// take returns the events so far and forgets them.
func (r *recorder) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// kinds returns the kinds of events.
func kinds(events []Event) []EventKind {
	var out []EventKind
	for _, e := range events {
		out = append(out, e.Kind)
	}
	return out
}

const (
	app       = "pingone-admin"
	ruleTwo   = "prod-writes" // two levels, count 2 then 1
	ruleOne   = "ops"         // one level, one approver
	requester = "alice@example.com"
)

// testFlows: ruleTwo needs two of secops, then cab-lead; ruleOne needs boss.
func testFlows() map[FlowKey]Flow {
	return map[FlowKey]Flow{
		{app, ruleTwo}: {
			Levels: []Level{
				{Groups: []string{"secops"}, Count: 2},
				{Users: []string{"cab-lead@example.com"}, Count: 1},
			},
			GrantTTL:   30 * time.Minute,
			RequestTTL: 24 * time.Hour,
		},
		{app, ruleOne}: {
			Levels:     []Level{{Users: []string{"boss@example.com"}, Groups: []string{"admins"}, Count: 1}},
			GrantTTL:   10 * time.Minute,
			RequestTTL: time.Hour,
		},
	}
}

// testResolver: update_* and delete_* need ruleTwo, restart_* ruleOne,
// everything else no approval.
func testResolver(a, user string, groups []string, tool string) (string, bool) {
	switch {
	case a != app:
		return "", false
	case len(tool) > 7 && (tool[:7] == "update_" || tool[:7] == "delete_"):
		return ruleTwo, true
	case len(tool) > 8 && tool[:8] == "restart_":
		return ruleOne, true
	}
	return "", false
}

type fixture struct {
	s     *Service
	clock *clock
	rec   *recorder
	store state.Store
}

// newFixture returns a Service over a memory store on a fake clock, with
// no sweeper goroutine (tests call Sweep).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := newClock()
	return newFixtureOn(t, c, state.NewMemoryWithClock(c.Now))
}

func newFixtureOn(t *testing.T, c *clock, store state.Store) *fixture {
	t.Helper()
	rec := &recorder{}
	s, err := New(Options{
		Store:         store,
		Flows:         testFlows(),
		ApprovalRule:  testResolver,
		OnEvent:       rec.add,
		Now:           c.Now,
		Keep:          48 * time.Hour,
		SweepInterval: -1,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return &fixture{s: s, clock: c, rec: rec, store: store}
}

func hashOf(s string) *[32]byte {
	h := sha256.Sum256([]byte(s))
	return &h
}

// approveAll drives request id through every level of ruleTwo.
func (f *fixture) approveAll(t *testing.T, id string) *Request {
	t.Helper()
	steps := []struct {
		who    string
		groups []string
	}{
		{"sec1@example.com", []string{"secops"}},
		{"sec2@example.com", []string{"secops"}},
		{"cab-lead@example.com", nil},
	}
	var req *Request
	for _, st := range steps {
		var err error
		req, err = f.s.Decide(id, st.who, st.groups, true, "ok")
		if err != nil {
			t.Fatalf("Decide(%s): %v", st.who, err)
		}
	}
	return req
}
