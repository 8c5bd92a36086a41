// Package subjectkey encodes who a request acts for, (user, groups,
// anonymous), as one string that identity computes once per principal and
// policycache uses as its cache key. It lives here because neither of those
// packages may import the other.
//
// The key is equal for equal users, anonymity and sets of groups (order and
// duplicates do not matter), and different otherwise. Each name is
// length-prefixed, so no choice of names makes two subjects collide (user
// "a,b" is not user "a" in group "b"):
//
//	key   = anon user *group
//	anon  = "a" / "n"                ; anonymous or not
//	user  = len ":" bytes            ; len: decimal byte length
//	group = len ":" bytes            ; sorted, duplicates removed
//
// User "alice" in groups "sre" and "eng" has the key "n5:alice3:eng3:sre".
// A key holds the names themselves: treat it like them.
package subjectkey

import (
	"slices"
	"strconv"
)

// Key returns the key of (user, groups, anonymous). groups is not modified.
func Key(user string, groups []string, anonymous bool) string {
	return KeySorted(user, Canonical(groups), anonymous)
}

// KeySorted is Key for groups that are already Canonical.
func KeySorted(user string, sorted []string, anonymous bool) string {
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

// Canonical returns a sorted copy of groups without duplicates, or nil when
// there are none.
func Canonical(groups []string) []string {
	if len(groups) == 0 {
		return nil
	}
	sorted := slices.Clone(groups)
	slices.Sort(sorted)
	return slices.Clip(slices.Compact(sorted))
}

func appendLengthPrefixed(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}
