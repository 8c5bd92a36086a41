package identity

import "github.com/mcpgw/mcpgw/internal/subjectkey"

// Sources of a Principal: which authenticator vouched for it.
const (
	SourceDev       = "dev"       // a static dev_users bearer token
	SourceAnonymous = "anonymous" // an application with auth: none
)

// AnonymousUser is the user name of AnonymousPrincipal.
const AnonymousUser = "anonymous"

// Principal is who a request acts for: what any authenticator (dev tokens
// now, OAuth and IdP JWTs later) yields, and what policy decides on.
//
// A Principal is immutable once built and shared between goroutines and
// requests: callers must not modify it or its Groups slice.
type Principal struct {
	// User is the user name ("alice@example.com"; AnonymousUser for
	// AnonymousPrincipal).
	User string
	// Groups are the user's groups, sorted and without duplicates.
	Groups []string
	// Anonymous is true only for requests to applications with auth: none.
	Anonymous bool
	// Key identifies (User, Groups, Anonymous) without ambiguity and
	// independently of group order: PrincipalKey of the fields above,
	// computed once when the Principal was built. Two principals with the
	// same Key get the same policy decisions, so the policy cache keys on it.
	Key string
	// Source names the authenticator: SourceDev, SourceAnonymous.
	Source string
}

// AnonymousPrincipal is the principal of every request to an application
// with auth: none. It is shared and immutable.
var AnonymousPrincipal = newPrincipal(AnonymousUser, nil, true, SourceAnonymous)

// NewPrincipal returns a non-anonymous principal for user and groups, with
// its Key computed. It copies groups (sorted, duplicates removed), so the
// caller may reuse the slice.
func NewPrincipal(user string, groups []string, source string) *Principal {
	return newPrincipal(user, groups, false, source)
}

func newPrincipal(user string, groups []string, anonymous bool, source string) *Principal {
	sorted := subjectkey.Canonical(groups)
	return &Principal{
		User:      user,
		Groups:    sorted,
		Anonymous: anonymous,
		Key:       subjectkey.KeySorted(user, sorted, anonymous),
		Source:    source,
	}
}

// PrincipalKey returns the key of a principal (internal/subjectkey): equal
// for equal users, anonymity and sets of groups, different otherwise. It is
// the encoding of policycache.SubjectKey too, so a Principal's Key can be
// handed to the policy cache as it is.
func PrincipalKey(user string, groups []string, anonymous bool) string {
	return subjectkey.Key(user, groups, anonymous)
}
