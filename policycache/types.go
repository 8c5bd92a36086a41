package policycache

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
