package access

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpgw/mcpgw/internal/state"
)

func TestRequestForDedupes(t *testing.T) {
	f := newFixture(t)
	first, created, err := f.s.RequestFor(requester, app, ruleTwo, "update_user", hashOf("a"))
	if err != nil || !created {
		t.Fatalf("RequestFor: created %v, err %v; want a new request", created, err)
	}
	tests := []struct {
		name    string
		user    string
		tool    string
		hash    *[32]byte
		wantNew bool
	}{
		{"same call again", requester, "update_user", hashOf("a"), false},
		{"other arguments", requester, "update_user", hashOf("b"), true},
		{"whole tool", requester, "update_user", nil, true},
		{"whole tool again", requester, "update_user", nil, false},
		{"other tool", requester, "delete_user", hashOf("a"), true},
		{"other user", "bob@example.com", "update_user", hashOf("a"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, created, err := f.s.RequestFor(tt.user, app, ruleTwo, tt.tool, tt.hash)
			if err != nil {
				t.Fatalf("RequestFor: %v", err)
			}
			if created != tt.wantNew {
				t.Errorf("created: got %v, want %v", created, tt.wantNew)
			}
			if tt.name == "same call again" && req.ID != first.ID {
				t.Errorf("id: got %s, want %s", req.ID, first.ID)
			}
		})
	}
}

func TestRequestForFields(t *testing.T) {
	f := newFixture(t)
	req, _, err := f.s.RequestFor(requester, app, ruleTwo, "update_user", hashOf("a"))
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	want := &Request{
		ID: req.ID, App: app, User: requester, Rule: ruleTwo, Tools: []string{"update_user"},
		ArgumentsHash: "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
		Status:        StatusPending, Level: 1, Levels: testFlows()[FlowKey{app, ruleTwo}].Levels,
		Decisions: []Decision{}, Created: now, Expires: now.Add(24 * time.Hour),
	}
	if diff := cmp.Diff(want, req); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(req.ID, "apr_") || len(req.ID) != 4+26 {
		t.Errorf("id: got %q, want apr_ and 26 base32 characters", req.ID)
	}
	got, err := f.s.Get(req.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	wantEvent := []Event{{
		Kind: EventRequested, RequestID: req.ID, App: app, User: requester,
		Tools: []string{"update_user"}, ArgumentsHash: want.ArgumentsHash,
		Actor: requester, Time: now,
	}}
	if diff := cmp.Diff(wantEvent, f.rec.take()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestRequestForErrors(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name            string
		user, app, rule string
		tool            string
		want            error
	}{
		{"unknown rule", requester, app, "nope", "update_user", ErrUnknownFlow},
		{"unknown app", requester, "other", ruleTwo, "update_user", ErrUnknownFlow},
		{"anonymous", "", app, ruleTwo, "update_user", ErrBadRequest},
		{"no tool", requester, app, ruleTwo, "", ErrBadRequest},
		{"long tool", requester, app, ruleTwo, strings.Repeat("x", MaxNameLen+1), ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.s.RequestFor(tt.user, tt.app, tt.rule, tt.tool, nil)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestRequestForConcurrent: many connections of one user refused at once
// open exactly one request, on either Store.
func TestRequestForConcurrent(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testRequestForConcurrent(t, newFixture(t)) })
	t.Run("pebble", func(t *testing.T) {
		store, err := state.OpenPebble(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		c := newClock()
		c.Set(time.Now().UTC())
		testRequestForConcurrent(t, newFixtureOn(t, c, store))
	})
}

func testRequestForConcurrent(t *testing.T, f *fixture) {
	const n = 50
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		ids     = make([]string, n)
		created = make([]bool, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			req, c, err := f.s.RequestFor(requester, app, ruleTwo, "update_user", hashOf("same"))
			if err == nil {
				ids[i], created[i] = req.ID, c
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	nCreated := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if created[i] {
			nCreated++
		}
		if ids[i] != ids[0] {
			t.Errorf("goroutine %d: got id %s, want %s", i, ids[i], ids[0])
		}
	}
	if nCreated != 1 {
		t.Errorf("created: got %d, want 1", nCreated)
	}
	if got := kinds(f.rec.take()); !cmp.Equal(got, []EventKind{EventRequested}) {
		t.Errorf("events: got %v, want one requested", got)
	}
	all, err := f.s.Requests("")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Errorf("stored requests: got %d, want 1 (losers must remove theirs)", len(all))
	}
}

func TestRequestAheadOfTime(t *testing.T) {
	f := newFixture(t)
	req, created, err := f.s.Request(requester, []string{"sre"}, app, []string{"update_user", "delete_user", "update_user"}, "change 42")
	if err != nil || !created {
		t.Fatalf("Request: created %v, err %v", created, err)
	}
	if diff := cmp.Diff([]string{"delete_user", "update_user"}, req.Tools); diff != "" {
		t.Errorf("tools (-want +got):\n%s", diff)
	}
	if req.Rule != ruleTwo || req.Reason != "change 42" || req.ArgumentsHash != "" {
		t.Errorf("got rule %q reason %q hash %q, want %q, %q, none", req.Rule, req.Reason, req.ArgumentsHash, ruleTwo, "change 42")
	}
	again, created, err := f.s.Request(requester, nil, app, []string{"delete_user", "update_user"}, "again")
	if err != nil || created || again.ID != req.ID {
		t.Errorf("same tools again: got id %s created %v err %v, want %s, false, nil", again.ID, created, err, req.ID)
	}
	// A refused call of the whole tool meets the request made ahead of time.
	one, _, err := f.s.Request(requester, nil, app, []string{"restart_pod"}, "")
	if err != nil {
		t.Fatal(err)
	}
	viaProxy, created, err := f.s.RequestFor(requester, app, ruleOne, "restart_pod", nil)
	if err != nil || created || viaProxy.ID != one.ID {
		t.Errorf("RequestFor after Request: got %s created %v err %v, want %s", viaProxy.ID, created, err, one.ID)
	}

	tests := []struct {
		name  string
		app   string
		tools []string
		want  error
	}{
		{"tool without approval", app, []string{"list_users"}, ErrNoApproval},
		{"one tool without approval", app, []string{"update_user", "list_users"}, ErrNoApproval},
		{"two rules", app, []string{"update_user", "restart_pod"}, ErrMixedFlows},
		{"unknown app", "other", []string{"update_user"}, ErrNoApproval},
		{"no tools", app, nil, ErrBadRequest},
		{"too many tools", app, make([]string, MaxTools+1), ErrBadRequest},
	}
	for i := range tests[5].tools {
		tests[5].tools[i] = "update_" + strings.Repeat("x", i+1)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.s.Request(requester, nil, tt.app, tt.tools, "")
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("long reason", func(t *testing.T) {
		_, _, err := f.s.Request(requester, nil, app, []string{"update_user"}, strings.Repeat("r", MaxTextLen+1))
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("got %v, want %v", err, ErrBadRequest)
		}
	})
	t.Run("no resolver", func(t *testing.T) {
		f.s.resolve = nil
		defer func() { f.s.resolve = testResolver }()
		_, _, err := f.s.Request(requester, nil, app, []string{"update_user"}, "")
		if !errors.Is(err, ErrNoResolver) {
			t.Errorf("got %v, want %v", err, ErrNoResolver)
		}
	})
}

func TestRequestsByStatus(t *testing.T) {
	f := newFixture(t)
	pending, _, _ := f.s.RequestFor(requester, app, ruleOne, "restart_a", nil)
	f.clock.Advance(time.Second)
	denied, _, _ := f.s.RequestFor(requester, app, ruleOne, "restart_b", nil)
	if _, err := f.s.Decide(denied.ID, "boss@example.com", nil, false, "no"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	approved, _, _ := f.s.RequestFor(requester, app, ruleOne, "restart_c", nil)
	if _, err := f.s.Decide(approved.ID, "boss@example.com", nil, true, ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		status Status
		want   []string
	}{
		{"", []string{pending.ID, denied.ID, approved.ID}},
		{StatusPending, []string{pending.ID}},
		{StatusDenied, []string{denied.ID}},
		{StatusApproved, []string{approved.ID}},
		{StatusExpired, nil},
	}
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			got, err := f.s.Requests(tt.status)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ID)
			}
			if diff := cmp.Diff(tt.want, ids); diff != "" {
				t.Errorf("ids, oldest first (-want +got):\n%s", diff)
			}
		})
	}
}
