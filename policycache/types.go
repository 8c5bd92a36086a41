package policycache

import "strconv"

// Kind is the kind of MCP object a decision is about.
type Kind uint8

const (
	KindTool Kind = iota
	KindPrompt
	KindResource
	numKinds
)

// Effect is the outcome of a decision.
type Effect uint8

const (
	Deny          Effect = iota // default: not allowed (or denied by a deny_* pattern)
	Allow                       // allowed by a rule
	NeedsApproval               // allowed only through a rule with approval: callable with a grant
)

// Reason says why a decision came out as it did.
type Reason uint8

const (
	ReasonDefaultDeny       Reason = iota // no rule naming the subject matches the name
	ReasonDeniedByRule                    // a deny_* pattern of a rule naming the subject matched
	ReasonAllowedByRule                   // an allow pattern matched and its constraints held
	ReasonApprovalRequired                // only approval rules allow it
	ReasonArgumentsMismatch               // an allow pattern matched but its argument constraints did not hold
	ReasonUnknownApp                      // the application has no policy
)

// Decision is the result of evaluating policy for one subject and one name.
// A denial is a Decision, not an error.
type Decision struct {
	Effect Effect
	Reason Reason
	// Rule is the name of the rule that decided ("" for default deny).
	Rule string
	// Shadow is set when an audit-mode rule's result differs from Effect:
	// enforcement of that rule would have decided ShadowEffect. Audit-mode
	// rules never block.
	Shadow       bool
	ShadowEffect Effect
	ShadowRule   string
}

// Args gives the argument constraints access to the call's arguments.
// Lookup returns the value at a JSON pointer (RFC 6901) into
// params.arguments: the decoded string for a JSON string, the literal text
// for numbers, booleans and null; ok is false when the value is absent, is an
// object or array, or cannot be read with certainty.
type Args interface {
	Lookup(pointer string) (value []byte, ok bool)
}

// String returns the kind as configuration names it: tool, prompt, resource.
func (k Kind) String() string {
	switch k {
	case KindTool:
		return "tool"
	case KindPrompt:
		return "prompt"
	case KindResource:
		return "resource"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// String returns the effect as audit records spell it (DESIGN.md section 6):
// deny, allow, approval_required.
func (e Effect) String() string {
	switch e {
	case Deny:
		return "deny"
	case Allow:
		return "allow"
	case NeedsApproval:
		return "approval_required"
	}
	return "effect(" + strconv.Itoa(int(e)) + ")"
}

// String returns the reason in lower snake case, as audit records and
// `mcpgw explain` print it.
func (r Reason) String() string {
	switch r {
	case ReasonDefaultDeny:
		return "default_deny"
	case ReasonDeniedByRule:
		return "denied_by_rule"
	case ReasonAllowedByRule:
		return "allowed_by_rule"
	case ReasonApprovalRequired:
		return "approval_required"
	case ReasonArgumentsMismatch:
		return "arguments_mismatch"
	case ReasonUnknownApp:
		return "unknown_app"
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}
