package access

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestMultiLevelFlow walks ruleTwo: two of secops, then cab-lead; the call
// works once the last level approves, and only the asked-for call.
func TestMultiLevelFlow(t *testing.T) {
	f := newFixture(t)
	hash := hashOf(`{"id":"u1"}`)
	req, _, err := f.s.RequestFor(requester, app, ruleTwo, "update_user", hash)
	if err != nil {
		t.Fatal(err)
	}
	f.rec.take()
	steps := []struct {
		who        string
		groups     []string
		wantStatus Status
		wantLevel  int
		wantEvents []EventKind
	}{
		{"sec1@example.com", []string{"eng", "secops"}, StatusPending, 1, []EventKind{EventApproved}},
		{"sec2@example.com", []string{"secops"}, StatusPending, 2, []EventKind{EventApproved}},
		{"cab-lead@example.com", nil, StatusApproved, 2, []EventKind{EventApproved, EventGranted}},
	}
	for i, st := range steps {
		if _, ok := f.s.Check(requester, app, []byte("update_user"), hash); ok {
			t.Fatalf("step %d: Check passed before the last approval", i)
		}
		f.clock.Advance(time.Minute)
		got, err := f.s.Decide(req.ID, st.who, st.groups, true, "fine")
		if err != nil {
			t.Fatalf("step %d: Decide(%s): %v", i, st.who, err)
		}
		if got.Status != st.wantStatus || got.Level != st.wantLevel {
			t.Errorf("step %d: got %s at level %d, want %s at level %d", i, got.Status, got.Level, st.wantStatus, st.wantLevel)
		}
		if diff := cmp.Diff(st.wantEvents, kinds(f.rec.take())); diff != "" {
			t.Errorf("step %d: events (-want +got):\n%s", i, diff)
		}
	}
	final, err := f.s.Get(req.ID)
	if err != nil {
		t.Fatal(err)
	}
	start := req.Created
	wantDecisions := []Decision{
		{Level: 1, Approver: "sec1@example.com", Decision: DecisionApprove, Comment: "fine", Time: start.Add(1 * time.Minute)},
		{Level: 1, Approver: "sec2@example.com", Decision: DecisionApprove, Comment: "fine", Time: start.Add(2 * time.Minute)},
		{Level: 2, Approver: "cab-lead@example.com", Decision: DecisionApprove, Comment: "fine", Time: start.Add(3 * time.Minute)},
	}
	if diff := cmp.Diff(wantDecisions, final.Decisions); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(final.GrantID, "grt_") {
		t.Fatalf("grant id: got %q, want grt_...", final.GrantID)
	}

	wantGrants := []Grant{{
		ID: final.GrantID, RequestID: req.ID, App: app, User: requester,
		Tools: []string{"update_user"}, ArgumentsHash: req.ArgumentsHash,
		Expires: start.Add(3*time.Minute + 30*time.Minute),
	}}
	if diff := cmp.Diff(wantGrants, f.s.Grants(requester, app)); diff != "" {
		t.Errorf("Grants (-want +got):\n%s", diff)
	}

	checks := []struct {
		name string
		user string
		tool string
		hash *[32]byte
		want bool
	}{
		{"the asked-for call", requester, "update_user", hash, true},
		{"other arguments", requester, "update_user", hashOf(`{"id":"u2"}`), false},
		{"no hash", requester, "update_user", nil, false},
		{"other tool", requester, "delete_user", hash, false},
		{"other user", "bob@example.com", "update_user", hash, false},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			id, ok := f.s.Check(c.user, app, []byte(c.tool), c.hash)
			if ok != c.want {
				t.Errorf("Check: got %v, want %v", ok, c.want)
			}
			if ok && id != final.GrantID {
				t.Errorf("grant id: got %s, want %s", id, final.GrantID)
			}
		})
	}
}

func TestDecideErrors(t *testing.T) {
	f := newFixture(t)
	req, _, err := f.s.RequestFor(requester, app, ruleTwo, "update_user", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Decide(req.ID, "sec1@example.com", []string{"secops"}, true, ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		id      string
		who     string
		groups  []string
		approve bool
		comment string
		want    error
	}{
		{"unknown id", "apr_nope", "sec2@example.com", []string{"secops"}, true, "", ErrUnknownRequest},
		{"requester in the approver group", req.ID, requester, []string{"secops"}, true, "", ErrSelfApproval},
		{"requester denies", req.ID, requester, []string{"secops"}, false, "", ErrSelfApproval},
		{"not in the group", req.ID, "eve@example.com", []string{"eng"}, true, "", ErrNotApprover},
		{"approver of a later level", req.ID, "cab-lead@example.com", nil, true, "", ErrNotApprover},
		{"no approver name", req.ID, "", []string{"secops"}, true, "", ErrNotApprover},
		{"same approver twice", req.ID, "sec1@example.com", []string{"secops"}, true, "", ErrAlreadyDecided},
		{"comment too long", req.ID, "sec2@example.com", []string{"secops"}, true, strings.Repeat("c", MaxTextLen+1), ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.s.Decide(tt.id, tt.who, tt.groups, tt.approve, tt.comment)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("request: got %+v, want nil with an error", got)
			}
		})
	}
	// None of the refusals changed the request.
	now, err := f.s.Get(req.ID)
	if err != nil {
		t.Fatal(err)
	}
	if now.Status != StatusPending || now.Level != 1 || len(now.Decisions) != 1 {
		t.Errorf("got %s level %d with %d decisions, want pending level 1 with 1", now.Status, now.Level, len(now.Decisions))
	}
}

func TestDenialEnds(t *testing.T) {
	for _, level := range []int{1, 2} {
		t.Run("at level "+string(rune('0'+level)), func(t *testing.T) {
			f := newFixture(t)
			req, _, err := f.s.RequestFor(requester, app, ruleTwo, "delete_user", hashOf("x"))
			if err != nil {
				t.Fatal(err)
			}
			denier, groups := "sec1@example.com", []string{"secops"}
			if level == 2 {
				for _, who := range []string{"sec1@example.com", "sec2@example.com"} {
					if _, err := f.s.Decide(req.ID, who, groups, true, ""); err != nil {
						t.Fatal(err)
					}
				}
				denier, groups = "cab-lead@example.com", nil
			}
			f.rec.take()
			got, err := f.s.Decide(req.ID, denier, groups, false, "too risky")
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != StatusDenied || got.GrantID != "" {
				t.Errorf("got status %s grant %q, want denied without grant", got.Status, got.GrantID)
			}
			wantEvent := []Event{{
				Kind: EventDenied, RequestID: req.ID, App: app, User: requester,
				Tools: []string{"delete_user"}, ArgumentsHash: req.ArgumentsHash,
				Actor: denier, Comment: "too risky", Level: level, Time: f.clock.Now(),
			}}
			if diff := cmp.Diff(wantEvent, f.rec.take()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if _, err := f.s.Decide(req.ID, "sec2@example.com", []string{"secops"}, true, ""); !errors.Is(err, ErrNotPending) {
				t.Errorf("Decide after denial: got %v, want %v", err, ErrNotPending)
			}
			if _, ok := f.s.Check(requester, app, []byte("delete_user"), hashOf("x")); ok {
				t.Error("Check after denial: got a grant, want none")
			}
			// A new refusal opens a new request.
			again, created, err := f.s.RequestFor(requester, app, ruleTwo, "delete_user", hashOf("x"))
			if err != nil || !created || again.ID == req.ID {
				t.Errorf("RequestFor after denial: got %s created %v err %v, want a new request", again.ID, created, err)
			}
		})
	}
}

// TestRequestExpiry: a pending request expires at exactly Created+RequestTTL,
// whether it is read, decided or swept, with one event.
func TestRequestExpiry(t *testing.T) {
	f := newFixture(t)
	req, _, err := f.s.RequestFor(requester, app, ruleOne, "restart_pod", nil)
	if err != nil {
		t.Fatal(err)
	}
	f.rec.take()
	f.clock.Set(req.Expires.Add(-time.Nanosecond))
	if got, err := f.s.Get(req.ID); err != nil || got.Status != StatusPending {
		t.Fatalf("1ns before expiry: got %v, %v, want pending", got, err)
	}
	if err := f.s.Sweep(); err != nil {
		t.Fatal(err)
	}
	if got := f.rec.take(); len(got) != 0 {
		t.Fatalf("1ns before expiry: got events %v, want none", kinds(got))
	}

	f.clock.Set(req.Expires)
	if _, err := f.s.Decide(req.ID, "boss@example.com", nil, true, ""); !errors.Is(err, ErrNotPending) {
		t.Errorf("Decide at expiry: got %v, want %v", err, ErrNotPending)
	}
	got, err := f.s.Get(req.ID)
	if err != nil || got.Status != StatusExpired {
		t.Fatalf("Get at expiry: got %v, %v, want expired", got, err)
	}
	if err := f.s.Sweep(); err != nil {
		t.Fatal(err)
	}
	wantEvent := []Event{{
		Kind: EventExpired, RequestID: req.ID, App: app, User: requester,
		Tools: []string{"restart_pod"}, Level: 1, Time: req.Expires,
	}}
	if diff := cmp.Diff(wantEvent, f.rec.take()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if list, _ := f.s.Requests(StatusExpired); len(list) != 1 {
		t.Errorf("expired requests: got %d, want 1", len(list))
	}
	next, created, err := f.s.RequestFor(requester, app, ruleOne, "restart_pod", nil)
	if err != nil || !created || next.ID == req.ID {
		t.Errorf("RequestFor after expiry: got %v created %v err %v, want a new request", next, created, err)
	}

	// Decided and expired requests stay readable for Keep, then go.
	f.clock.Advance(48 * time.Hour)
	if _, err := f.s.Get(req.ID); !errors.Is(err, ErrUnknownRequest) {
		t.Errorf("Get after Keep: got %v, want %v", err, ErrUnknownRequest)
	}
}

// TestSweepExpires: the sweeper alone records an expiry nobody read.
func TestSweepExpires(t *testing.T) {
	f := newFixture(t)
	a, _, _ := f.s.RequestFor(requester, app, ruleOne, "restart_a", nil)
	b, _, _ := f.s.RequestFor(requester, app, ruleTwo, "update_b", nil)
	f.rec.take()
	f.clock.Set(a.Expires)
	if err := f.s.Sweep(); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Sweep(); err != nil {
		t.Fatal(err)
	}
	got := f.rec.take()
	if len(got) != 1 || got[0].Kind != EventExpired || got[0].RequestID != a.ID {
		t.Errorf("events: got %+v, want one expired for %s", got, a.ID)
	}
	if r, _ := f.s.Get(b.ID); r.Status != StatusPending {
		t.Errorf("the other request: got %s, want pending", r.Status)
	}
}

// TestSweeperGoroutine: the Service's own sweeper emits the expiry; Close
// stops it.
func TestSweeperGoroutine(t *testing.T) {
	c := newClock()
	rec := &recorder{}
	s, err := New(Options{
		Store: newFixture(t).store, Flows: testFlows(), OnEvent: rec.add,
		Now: c.Now, SweepInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	req, _, err := s.RequestFor(requester, app, ruleOne, "restart_pod", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Set(req.Expires)
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec.mu.Lock()
		n := len(rec.events)
		rec.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no expiry event within 5s; got %v", kinds(rec.take()))
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]EventKind{EventRequested, EventExpired}, kinds(rec.take())); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestUpdate: new flows apply to new requests only; a bad set is refused
// whole and the old flows stay.
func TestUpdate(t *testing.T) {
	f := newFixture(t)
	old, _, _ := f.s.RequestFor(requester, app, ruleOne, "restart_pod", nil)
	err := f.s.Update(map[FlowKey]Flow{
		{app, ruleOne}: {Levels: []Level{{Users: []string{"new-boss@example.com"}, Count: 1}}, GrantTTL: time.Hour, RequestTTL: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Decide(old.ID, "new-boss@example.com", nil, true, ""); !errors.Is(err, ErrNotApprover) {
		t.Errorf("new approver on an old request: got %v, want %v", err, ErrNotApprover)
	}
	if _, err := f.s.Decide(old.ID, "boss@example.com", nil, true, ""); err != nil {
		t.Errorf("old approver on an old request: %v", err)
	}
	if _, _, err := f.s.RequestFor(requester, app, ruleTwo, "update_user", nil); !errors.Is(err, ErrUnknownFlow) {
		t.Errorf("removed flow: got %v, want %v", err, ErrUnknownFlow)
	}
	fresh, _, _ := f.s.RequestFor(requester, app, ruleOne, "restart_other", nil)
	if _, err := f.s.Decide(fresh.ID, "new-boss@example.com", nil, true, ""); err != nil {
		t.Errorf("new approver on a new request: %v", err)
	}

	bad := map[FlowKey]Flow{
		{app, "a"}: {},
		{app, "b"}: {Levels: []Level{{Count: 0, Users: []string{"x"}}, {Count: 3, Users: []string{"x"}}}, GrantTTL: -1, RequestTTL: time.Hour},
	}
	err = f.s.Update(bad)
	for _, want := range []string{"at least one level", "count 0", "needs 3 approvers", "grant_ttl", "request_ttl"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Update(bad): got %v, want a problem mentioning %q", err, want)
		}
	}
	if _, ok := f.s.flow(app, ruleOne); !ok {
		t.Error("Update(bad) dropped the old flows")
	}
}

func TestJSONFields(t *testing.T) {
	f := newFixture(t)
	req, _, _ := f.s.RequestFor(requester, app, ruleOne, "restart_pod", hashOf("x"))
	got, err := f.s.Decide(req.ID, "boss@example.com", nil, true, "ok")
	if err != nil {
		t.Fatal(err)
	}
	b, err := jsonMarshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"id":"apr_`, `"app":"pingone-admin"`, `"user":"alice@example.com"`, `"tools":["restart_pod"]`,
		`"arguments_hash":"2d711642`, `"status":"approved"`, `"level":1`,
		`"levels":[{"users":["boss@example.com"],"groups":["admins"],"count":1}]`,
		`"decisions":[{"level":1,"approver":"boss@example.com","decision":"approve","comment":"ok","time":"2026-11-26T09:00:00Z"}]`,
		`"created":"2026-11-26T09:00:00Z"`, `"expires":"2026-11-26T10:00:00Z"`, `"grant_id":"grt_`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("request JSON %s: want %s", b, want)
		}
	}
	grants := f.s.Grants("", "")
	b, err = jsonMarshal(grants[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"id":"grt_`, `"request_id":"apr_`, `"app":`, `"user":`, `"tools":`, `"arguments_hash":`, `"expires":"2026-11-26T09:10:00Z"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("grant JSON %s: want %s", b, want)
		}
	}
	if strings.Contains(string(b), `"v"`) || strings.Contains(string(b), "grant_ttl") {
		t.Errorf("grant JSON %s shows storage fields", b)
	}
}

// TestStoredRecordsRoundTrip: what is stored decodes to what was returned.
func TestStoredRecordsRoundTrip(t *testing.T) {
	f := newFixture(t)
	req, _, _ := f.s.RequestFor(requester, app, ruleTwo, "update_user", hashOf("x"))
	f.approveAll(t, req.ID)
	raw, err := f.store.Get(requestKey(req.ID))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := decodeRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := f.s.Get(req.ID)
	if diff := cmp.Diff(got, &rec.Request, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("stored request (-Get +stored):\n%s", diff)
	}
	if rec.GrantTTL != 30*time.Minute {
		t.Errorf("stored grant ttl: got %v, want 30m", rec.GrantTTL)
	}
}

// TestApproveWholeTool: a request for one call is granted for the whole
// tool only when every approval agreed to that.
func TestApproveWholeTool(t *testing.T) {
	secops := []string{"secops"}
	tests := []struct {
		name      string
		wholeTool [3]bool // sec1, sec2 (level 1), cab-lead (level 2)
		wantWhole bool
	}{
		{"every approver widens", [3]bool{true, true, true}, true},
		{"the last approver keeps the call", [3]bool{true, true, false}, false},
		{"a first-level approver keeps the call", [3]bool{false, true, true}, false},
		{"nobody widens", [3]bool{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			hash := hashOf("call")
			req, _, err := f.s.RequestFor(requester, app, ruleTwo, "update_user", hash)
			if err != nil {
				t.Fatal(err)
			}
			var got *Request
			for i, who := range []string{"sec1@example.com", "sec2@example.com", "cab-lead@example.com"} {
				groups := secops
				if i == 2 {
					groups = nil
				}
				if tt.wholeTool[i] {
					got, err = f.s.ApproveWholeTool(req.ID, who, groups, "")
				} else {
					got, err = f.s.Decide(req.ID, who, groups, true, "")
				}
				if err != nil {
					t.Fatalf("approval %d: %v", i, err)
				}
				if got.Decisions[i].WholeTool != tt.wholeTool[i] {
					t.Errorf("decision %d whole_tool: got %v, want %v", i, got.Decisions[i].WholeTool, tt.wholeTool[i])
				}
			}
			_, ok := f.s.Check(requester, app, []byte("update_user"), hashOf("other call"))
			if ok != tt.wantWhole {
				t.Errorf("Check with other arguments: got %v, want %v", ok, tt.wantWhole)
			}
			if _, ok := f.s.Check(requester, app, []byte("update_user"), hash); !ok {
				t.Error("Check of the asked-for call: refused")
			}
			g := f.s.Grants(requester, app)
			if len(g) != 1 || (g[0].ArgumentsHash == "") != tt.wantWhole {
				t.Errorf("Grants: got %+v, want one with whole tool %v", g, tt.wantWhole)
			}
			events := f.rec.take()
			last := events[len(events)-1]
			if last.Kind != EventGranted || last.ArgumentsHash != g[0].ArgumentsHash {
				t.Errorf("granted event: got %+v, want the grant's hash %q", last, g[0].ArgumentsHash)
			}
		})
	}
	t.Run("request without a hash", func(t *testing.T) {
		f := newFixture(t)
		req, _, _ := f.s.RequestFor(requester, app, ruleOne, "restart_pod", nil)
		got, err := f.s.ApproveWholeTool(req.ID, "boss@example.com", nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if got.Decisions[0].WholeTool {
			t.Error("whole_tool set on a request that was for the whole tool already")
		}
		if _, ok := f.s.Check(requester, app, []byte("restart_pod"), hashOf("any")); !ok {
			t.Error("Check: refused, want the whole tool")
		}
	})
	t.Run("refusals as Decide", func(t *testing.T) {
		f := newFixture(t)
		req, _, _ := f.s.RequestFor(requester, app, ruleOne, "restart_pod", hashOf("x"))
		if _, err := f.s.ApproveWholeTool(req.ID, requester, []string{"admins"}, ""); !errors.Is(err, ErrSelfApproval) {
			t.Errorf("got %v, want %v", err, ErrSelfApproval)
		}
	})
}
