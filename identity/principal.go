package identity

import (
	"slices"
	"strconv"
)

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
	sorted := canonicalGroups(groups)
	return &Principal{
		User:      user,
		Groups:    sorted,
		Anonymous: anonymous,
		Key:       principalKey(user, sorted, anonymous),
		Source:    source,
	}
}

// PrincipalKey returns the key of a principal: equal for equal users,
// anonymity and sets of groups (order and duplicates do not matter), and
// different otherwise. Each name is length-prefixed, so no choice of names
// makes two different principals collide (user "a,b" is not user "a" in
// group "b"):
//
//	key   = ("a" | "n") len ":" user *(len ":" group)   ; a: anonymous, n: not
//	len   = decimal byte length of the name that follows
//
// For example user "alice" in groups "sre" and "eng" has the key
// "n5:alice3:eng3:sre". This is the encoding of policycache.SubjectKey too,
// so a Principal's Key can be handed to the policy cache as it is. The key holds the names themselves: treat it like
// them (it may be logged where a user name may be).
func PrincipalKey(user string, groups []string, anonymous bool) string {
	return principalKey(user, canonicalGroups(groups), anonymous)
}

// principalKey is PrincipalKey for groups that are already canonical.
func principalKey(user string, sorted []string, anonymous bool) string {
	n := 1 + len(user) + 4
	for _, g := range sorted {
		n += len(g) + 4
	}
	b := make([]byte, 0, n)
	if anonymous {
		b = append(b, 'a')
	} else {
		b = append(b, 'n')
	}
	b = appendLengthPrefixed(b, user)
	for _, g := range sorted {
		b = appendLengthPrefixed(b, g)
	}
	return string(b)
}

func appendLengthPrefixed(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// canonicalGroups returns a sorted copy of groups without duplicates, or nil
// when there are none.
func canonicalGroups(groups []string) []string {
	if len(groups) == 0 {
		return nil
	}
	sorted := slices.Clone(groups)
	slices.Sort(sorted)
	return slices.Clip(slices.Compact(sorted))
}
