package access

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mcpgw/mcpgw/internal/state"
)

// maxAttempts bounds the compare-and-swap loops. Each retry means another
// writer changed the same record, which happens only a few times per
// request in practice.
const maxAttempts = 64

// RequestFor returns the pending request for a call that policy refused for
// want of a grant (Effect NeedsApproval, rule = Decision.Rule): user calling
// tool of app, with the call's arguments hash, or nil to ask for the whole
// tool. created is true for the one caller that opened the request; every
// other caller, on this connection or another, gets the same request while
// it is pending. The caller chooses the hash (the proxy hashes the call's
// params.arguments); access only compares it.
func (s *Service) RequestFor(user, app, rule, tool string, argsHash *[32]byte) (req *Request, created bool, err error) {
	if err := checkNames(user, app, []string{tool}); err != nil {
		return nil, false, err
	}
	f, ok := s.flow(app, rule)
	if !ok {
		return nil, false, fmt.Errorf("%w: app %q rule %q", ErrUnknownFlow, app, rule)
	}
	return s.open(user, app, rule, f, []string{tool}, argsHash, "")
}

// Request opens a request ahead of time (POST /api/v1/approvals): user, in
// groups, asks for tools of app for the grant's lifetime, with a reason
// for the approvers. Every tool must need approval for this user under the
// same approval rule, as Options.ApprovalRule tells (else ErrNoApproval or
// ErrMixedFlows: tools under different rules need separate requests).
// Duplicate tools are dropped and the rest sorted; a pending request for
// the same user, app and tools is returned instead of a new one (created
// false, its reason unchanged).
func (s *Service) Request(user string, groups []string, app string, tools []string, reason string) (req *Request, created bool, err error) {
	tools = slices.Clone(tools)
	slices.Sort(tools)
	tools = slices.Compact(tools)
	if err := checkNames(user, app, tools); err != nil {
		return nil, false, err
	}
	if len(reason) > MaxTextLen {
		return nil, false, fmt.Errorf("%w: reason longer than %d bytes", ErrBadRequest, MaxTextLen)
	}
	if s.resolve == nil {
		return nil, false, ErrNoResolver
	}
	rule := ""
	for i, tool := range tools {
		r, ok := s.resolve(app, user, groups, tool)
		if !ok {
			return nil, false, fmt.Errorf("%w: %q", ErrNoApproval, tool)
		}
		if i > 0 && r != rule {
			return nil, false, fmt.Errorf("%w: %q (rule %q) and %q (rule %q)", ErrMixedFlows, tools[0], rule, tool, r)
		}
		rule = r
	}
	f, ok := s.flow(app, rule)
	if !ok {
		return nil, false, fmt.Errorf("%w: app %q rule %q", ErrUnknownFlow, app, rule)
	}
	return s.open(user, app, rule, f, tools, nil, reason)
}

func checkNames(user, app string, tools []string) error {
	switch {
	case user == "":
		return fmt.Errorf("%w: no user (an anonymous caller cannot ask for approval)", ErrBadRequest)
	case app == "":
		return fmt.Errorf("%w: no application", ErrBadRequest)
	case len(tools) == 0:
		return fmt.Errorf("%w: no tools", ErrBadRequest)
	case len(tools) > MaxTools:
		return fmt.Errorf("%w: more than %d tools", ErrBadRequest, MaxTools)
	case len(user) > MaxNameLen || len(app) > MaxNameLen:
		return fmt.Errorf("%w: user or application longer than %d bytes", ErrBadRequest, MaxNameLen)
	}
	for _, t := range tools {
		if t == "" || len(t) > MaxNameLen {
			return fmt.Errorf("%w: tool name empty or longer than %d bytes", ErrBadRequest, MaxNameLen)
		}
	}
	return nil
}

// open returns the pending request of (user, app, tools, hash), creating it
// when there is none. The request record is written first and then
// claimed by a compare-and-swap of the dedupe key (old value: the
// previous request's id, or absent); a loser deletes its record and reads
// the winner's.
func (s *Service) open(user, app, rule string, f Flow, tools []string, hash *[32]byte, reason string) (*Request, bool, error) {
	dkey := pendingKey(user, app, tools, hash)
	for range maxAttempts {
		var old []byte
		cur, err := s.store.Get(dkey)
		switch {
		case err == nil:
			old = cur
			rec, _, err := s.load(string(cur))
			if err == nil && rec.Status == StatusPending {
				return &rec.clone().Request, false, nil
			}
			if err != nil && !errors.Is(err, ErrUnknownRequest) {
				return nil, false, err
			}
		case errors.Is(err, state.ErrNotFound):
		default:
			return nil, false, fmt.Errorf("access: cannot read the pending request: %w", err)
		}

		now := s.now().UTC()
		rec := &requestRecord{
			Request: Request{
				ID:            newID("apr_"),
				App:           app,
				User:          user,
				Rule:          rule,
				Tools:         slices.Clone(tools),
				ArgumentsHash: hashHex(hash),
				Reason:        reason,
				Status:        StatusPending,
				Level:         1,
				Levels:        f.Levels,
				Decisions:     []Decision{},
				Created:       now,
				Expires:       now.Add(f.RequestTTL),
			},
			GrantTTL: f.GrantTTL,
		}
		rec = rec.clone() // own the levels: Update may swap flows, never edit them, but callers may
		key := requestKey(rec.ID)
		if err := s.store.Put(key, encodeRequest(rec), f.RequestTTL+s.keep); err != nil {
			return nil, false, fmt.Errorf("access: cannot store the request: %w", err)
		}
		err = s.store.CompareAndSwap(dkey, old, []byte(rec.ID), f.RequestTTL)
		if err != nil {
			if derr := s.store.Delete(key); derr != nil {
				s.log.Warn("cannot remove an unclaimed request", "err", derr)
			}
			if errors.Is(err, state.ErrConflict) {
				continue
			}
			return nil, false, fmt.Errorf("access: cannot claim the request: %w", err)
		}
		s.emit(Event{
			Kind: EventRequested, RequestID: rec.ID, App: app, User: user,
			Tools: rec.Tools, ArgumentsHash: rec.ArgumentsHash, Actor: user,
			Comment: reason, Time: now,
		})
		return &rec.clone().Request, true, nil
	}
	return nil, false, ErrBusy
}

// load reads request id, turning a pending request past its expiry into an
// expired one on the way (one event, by whichever reader wins the swap).
// It returns the record and its stored bytes.
func (s *Service) load(id string) (*requestRecord, []byte, error) {
	for range maxAttempts {
		raw, err := s.store.Get(requestKey(id))
		if errors.Is(err, state.ErrNotFound) {
			return nil, nil, ErrUnknownRequest
		}
		if err != nil {
			return nil, nil, fmt.Errorf("access: cannot read request: %w", err)
		}
		rec, err := decodeRequest(raw)
		if err != nil {
			return nil, nil, err
		}
		now := s.now()
		if rec.Status != StatusPending || now.Before(rec.Expires) {
			return rec, raw, nil
		}
		next := rec.clone()
		next.Status = StatusExpired
		err = s.store.CompareAndSwap(requestKey(id), raw, encodeRequest(next), s.keep)
		if errors.Is(err, state.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("access: cannot expire request: %w", err)
		}
		s.emit(Event{
			Kind: EventExpired, RequestID: id, App: rec.App, User: rec.User,
			Tools: next.Tools, ArgumentsHash: rec.ArgumentsHash, Level: rec.Level,
			Time: rec.Expires,
		})
		return next, nil, nil
	}
	return nil, nil, ErrBusy
}

// Get returns request id (ErrUnknownRequest when there is none, or it was
// decided or expired longer than Options.Keep ago).
func (s *Service) Get(id string) (*Request, error) {
	rec, _, err := s.load(id)
	if err != nil {
		return nil, err
	}
	return &rec.Request, nil
}

// Requests returns the stored requests with status ("" for all), oldest
// first. Pending requests past their expiry are expired on the way.
func (s *Service) Requests(status Status) ([]Request, error) {
	var ids []string
	err := s.store.Scan(requestPrefix, func(key string, _ []byte) bool {
		ids = append(ids, strings.TrimPrefix(key, requestPrefix))
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("access: cannot list requests: %w", err)
	}
	out := []Request{}
	for _, id := range ids {
		rec, _, err := s.load(id)
		if errors.Is(err, ErrUnknownRequest) {
			continue // gone since the scan
		}
		if err != nil {
			return nil, err
		}
		if status == "" || rec.Status == status {
			out = append(out, rec.Request)
		}
	}
	slices.SortFunc(out, func(a, b Request) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Decide records approver's answer on request id at its current level.
// approverGroups are the approver's groups, matched against the level's
// approver groups. A denial ends the request; an approval counts toward
// the level's Count of distinct approvers, after which the next level
// starts or, after the last level, a grant is created for the flow's
// grant TTL (Request.GrantID names it). It returns the request as it now
// stands.
//
// A request for one exact call (with an arguments hash) is granted for
// that call only; see ApproveWholeTool for the wider grant.
//
// Errors: ErrUnknownRequest, ErrNotPending (decided or expired),
// ErrSelfApproval (the requester), ErrNotApprover (not an approver of the
// current level), ErrAlreadyDecided (approved this level already),
// ErrBadRequest (comment too long).
func (s *Service) Decide(id, approver string, approverGroups []string, approve bool, comment string) (*Request, error) {
	return s.decide(id, approver, approverGroups, approve, false, comment)
}

// ApproveWholeTool is Decide's approval by an approver who agrees to grant
// the request's tools for the grant's lifetime, whatever their arguments,
// rather than only the exact call asked for (issue 6: "an approver can
// grant exactly the call that was asked for, or the tool for the grant's
// lifetime"). The narrowest scope wins: the grant covers the whole tools
// only when every approval of the request, at every level, was given this
// way. On a request without an arguments hash it is the same as Decide.
func (s *Service) ApproveWholeTool(id, approver string, approverGroups []string, comment string) (*Request, error) {
	return s.decide(id, approver, approverGroups, true, true, comment)
}

func (s *Service) decide(id, approver string, approverGroups []string, approve, wholeTool bool, comment string) (*Request, error) {
	if len(comment) > MaxTextLen {
		return nil, fmt.Errorf("%w: comment longer than %d bytes", ErrBadRequest, MaxTextLen)
	}
	if approver == "" {
		return nil, ErrNotApprover
	}
	for range maxAttempts {
		rec, raw, err := s.load(id)
		if err != nil {
			return nil, err
		}
		if rec.Status != StatusPending {
			return nil, ErrNotPending
		}
		if approver == rec.User {
			return nil, ErrSelfApproval
		}
		level := rec.Levels[rec.Level-1]
		if !level.Allows(approver, approverGroups) {
			return nil, ErrNotApprover
		}
		approvals := 0
		for _, d := range rec.Decisions {
			if d.Level != rec.Level || d.Decision != DecisionApprove {
				continue
			}
			if d.Approver == approver {
				return nil, ErrAlreadyDecided
			}
			approvals++
		}

		now := s.now().UTC()
		next := rec.clone()
		d := Decision{Level: rec.Level, Approver: approver, Decision: DecisionDeny, Comment: comment, Time: now}
		if approve && wholeTool && rec.ArgumentsHash != "" {
			d.WholeTool = true
		}
		var grant *liveGrant
		switch {
		case !approve:
			next.Status = StatusDenied
		case approvals+1 < level.Count:
			d.Decision = DecisionApprove
		case rec.Level < len(rec.Levels):
			d.Decision = DecisionApprove
			next.Level++
		default:
			d.Decision = DecisionApprove
			next.Status = StatusApproved
			next.GrantID = newID("grt_")
			grant = newLiveGrant(Grant{
				ID: next.GrantID, RequestID: id, App: rec.App, User: rec.User,
				Tools: next.Tools, ArgumentsHash: grantHash(rec, d),
				Expires: now.Add(rec.GrantTTL),
			})
		}
		next.Decisions = append(next.Decisions, d)

		ttl := s.keep
		switch next.Status {
		case StatusPending:
			ttl = rec.Expires.Sub(now) + s.keep
		case StatusApproved:
			ttl = max(s.keep, rec.GrantTTL) // the grant's request_id stays readable
		}
		if grant != nil {
			if err := s.store.Put(grantKey(grant.id), encodeGrant(&grant.g), rec.GrantTTL); err != nil {
				return nil, fmt.Errorf("access: cannot store the grant: %w", err)
			}
		}
		err = s.store.CompareAndSwap(requestKey(id), raw, encodeRequest(next), ttl)
		if err != nil {
			if grant != nil {
				if derr := s.store.Delete(grantKey(grant.id)); derr != nil {
					s.log.Warn("cannot remove an unclaimed grant", "err", derr)
				}
			}
			if errors.Is(err, state.ErrConflict) {
				continue
			}
			return nil, fmt.Errorf("access: cannot store the decision: %w", err)
		}
		if grant != nil {
			s.addGrant(grant)
		}

		ev := Event{
			Kind: EventApproved, RequestID: id, App: rec.App, User: rec.User,
			Tools: next.Tools, ArgumentsHash: rec.ArgumentsHash, Actor: approver,
			Comment: comment, Level: rec.Level, Time: now,
		}
		if !approve {
			ev.Kind = EventDenied
		}
		s.emit(ev)
		if grant != nil {
			ev.Kind, ev.GrantID, ev.Comment = EventGranted, grant.id, ""
			ev.ArgumentsHash = grant.g.ArgumentsHash
			s.emit(ev)
		}
		return &next.clone().Request, nil
	}
	return nil, ErrBusy
}

// grantHash is the arguments hash the grant of rec is bound to, last being
// the final approval: rec's own, unless every approval (last included)
// agreed to the whole tools.
func grantHash(rec *requestRecord, last Decision) string {
	if !last.WholeTool {
		return rec.ArgumentsHash
	}
	for _, d := range rec.Decisions {
		if d.Decision == DecisionApprove && !d.WholeTool {
			return rec.ArgumentsHash
		}
	}
	return ""
}
