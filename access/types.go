package access

import (
	"errors"
	"fmt"
	"time"
)

// Errors returned by Service. The admin API maps them to HTTP statuses as
// noted (DESIGN.md section 7).
var (
	ErrUnknownRequest = errors.New("access: unknown approval request")                         // 404
	ErrUnknownGrant   = errors.New("access: unknown grant")                                    // 404
	ErrNotApprover    = errors.New("access: not an approver of the request's current level")   // 403
	ErrSelfApproval   = errors.New("access: the requester cannot decide their own request")    // 403
	ErrAlreadyDecided = errors.New("access: this approver already approved this level")        // 409
	ErrNotPending     = errors.New("access: the request is no longer pending")                 // 409
	ErrUnknownFlow    = errors.New("access: no approval flow for this application and rule")   // 400 (404 for an unknown app)
	ErrNoApproval     = errors.New("access: the tool does not need approval for this user")    // 400
	ErrMixedFlows     = errors.New("access: the tools fall under different approval rules")    // 400
	ErrBadRequest     = errors.New("access: invalid request")                                  // 400
	ErrNoResolver     = errors.New("access: requests ahead of time need Options.ApprovalRule") // 500: wiring
	ErrBusy           = errors.New("access: too many concurrent changes to one record; retry") // 503
)

// Limits on what a caller may put into a request (the admin API reads them
// from users).
const (
	MaxTools   = 64   // tools in one request
	MaxNameLen = 256  // bytes of a tool name, user or application
	MaxTextLen = 2048 // bytes of a reason or comment
)

// Status is where an approval request stands.
type Status string

const (
	StatusPending  Status = "pending"
	StatusApproved Status = "approved"
	StatusDenied   Status = "denied"
	StatusExpired  Status = "expired"
)

// Valid reports whether s is one of the four statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusApproved, StatusDenied, StatusExpired:
		return true
	}
	return false
}

// FlowKey names an approval flow: an application and the name of one of
// its rules that has an `approval` section.
type FlowKey struct {
	App  string
	Rule string
}

// Flow is a rule's `approval` section (DESIGN.md section 3).
type Flow struct {
	Levels     []Level
	GrantTTL   time.Duration // how long a grant lasts after the final approval; > 0
	RequestTTL time.Duration // how long a request stays pending; > 0
}

// Level is one step of a flow: Count distinct approvers among Users and the
// members of Groups must approve before the next level starts.
type Level struct {
	Users  []string `json:"users,omitempty"`
	Groups []string `json:"groups,omitempty"`
	Count  int      `json:"count"` // >= 1
}

// Allows reports whether approver (in groups) is an approver of l.
func (l Level) Allows(approver string, groups []string) bool {
	for _, u := range l.Users {
		if u == approver {
			return true
		}
	}
	for _, g := range l.Groups {
		for _, have := range groups {
			if g == have {
				return true
			}
		}
	}
	return false
}

// validate returns every problem of f, each naming key.
func (f Flow) validate(key FlowKey) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("access: app %q rule %q: "+format, append([]any{key.App, key.Rule}, args...)...))
	}
	if len(f.Levels) == 0 {
		bad("approval needs at least one level")
	}
	for i, l := range f.Levels {
		if l.Count < 1 {
			bad("level %d: count %d, want at least 1", i+1, l.Count)
		}
		if len(l.Users) == 0 && len(l.Groups) == 0 {
			bad("level %d names no approvers", i+1)
		}
		if len(l.Groups) == 0 && l.Count > len(l.Users) {
			bad("level %d needs %d approvers but names %d users and no group", i+1, l.Count, len(l.Users))
		}
	}
	if f.GrantTTL <= 0 {
		bad("grant_ttl %v, want > 0", f.GrantTTL)
	}
	if f.RequestTTL <= 0 {
		bad("request_ttl %v, want > 0", f.RequestTTL)
	}
	return errs
}

// Decision is one approver's answer at one level of a request.
type Decision struct {
	Level    int       `json:"level"`
	Approver string    `json:"approver"`
	Decision string    `json:"decision"` // "approve" or "deny"
	Comment  string    `json:"comment,omitempty"`
	Time     time.Time `json:"time"`
	// WholeTool is set on an approval that agreed to grant the whole
	// tools rather than the exact call asked for (ApproveWholeTool).
	WholeTool bool `json:"whole_tool,omitempty"`
}

// Decision values.
const (
	DecisionApprove = "approve"
	DecisionDeny    = "deny"
)

// Request is an approval request as the admin API shows it (DESIGN.md
// section 7). Values returned by Service are copies the caller owns.
type Request struct {
	ID   string `json:"id"`
	App  string `json:"app"`
	User string `json:"user"`
	// Rule is the approval rule whose flow the request follows.
	Rule  string   `json:"rule"`
	Tools []string `json:"tools"`
	// ArgumentsHash is the lowercase hex of the call's arguments hash when
	// the request is for one exact call; "" for the whole tools.
	ArgumentsHash string     `json:"arguments_hash,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	Status        Status     `json:"status"`
	Level         int        `json:"level"`  // current level, from 1; the last level once decided
	Levels        []Level    `json:"levels"` // as the flow was when the request was created
	Decisions     []Decision `json:"decisions"`
	Created       time.Time  `json:"created"`
	Expires       time.Time  `json:"expires"`            // when a pending request expires
	GrantID       string     `json:"grant_id,omitempty"` // set once approved
}

// Grant lets User call Tools of App until Expires: any call when
// ArgumentsHash is "", else only the call whose arguments hash to it.
type Grant struct {
	ID            string    `json:"id"`
	RequestID     string    `json:"request_id"`
	App           string    `json:"app"`
	User          string    `json:"user"`
	Tools         []string  `json:"tools"`
	ArgumentsHash string    `json:"arguments_hash,omitempty"`
	Expires       time.Time `json:"expires"`
}

// EventKind says what happened to a request or grant.
type EventKind string

const (
	EventRequested    EventKind = "requested"     // a request was created
	EventApproved     EventKind = "approved"      // one approver approved at Level (one event per approver; the last one is followed by granted)
	EventDenied       EventKind = "denied"        // an approver denied; the request is over
	EventGranted      EventKind = "granted"       // the last level approved; GrantID is the new grant, ArgumentsHash its scope
	EventExpired      EventKind = "expired"       // a pending request reached its expiry
	EventRevoked      EventKind = "revoked"       // Actor revoked grant GrantID
	EventGrantExpired EventKind = "grant_expired" // grant GrantID reached its expiry
)

// Event is what Options.OnEvent receives. Tools is shared with other events
// of the same change: read only.
type Event struct {
	Kind          EventKind
	RequestID     string
	GrantID       string
	App           string
	User          string // the requester
	Tools         []string
	ArgumentsHash string // hex, "" for whole tools
	Actor         string // the approver or revoker; "" for expiries
	Comment       string
	Level         int // the level decided (approved, denied)
	Time          time.Time
}
