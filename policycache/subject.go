package policycache

import (
	"slices"
	"strconv"
)

// Subject is who is asking: the identity behind a bearer token, or the
// anonymous subject of an `auth: none` application. Key must be
// SubjectKey(User, Groups, Anonymous), computed once per token by the
// caller; decisions are cached under it. A Subject with an empty Key is
// evaluated without the cache. Decide and Visible neither modify nor
// retain a Subject.
type Subject struct {
	User      string
	Groups    []string
	Anonymous bool
	Key       string
}

// NewSubject returns a Subject with its Key computed.
func NewSubject(user string, groups []string, anonymous bool) Subject {
	return Subject{User: user, Groups: groups, Anonymous: anonymous, Key: SubjectKey(user, groups, anonymous)}
}

// SubjectKey encodes (user, groups, anonymous) unambiguously and
// independently of group order and duplicates:
//
//	key   = anon user *group
//	anon  = "a" / "n"                ; anonymous or not
//	user  = len ":" bytes            ; len in decimal
//	group = len ":" bytes            ; sorted, duplicates removed
//
// Length prefixes make every key decode to exactly one subject, so two
// different subjects never share cached decisions.
func SubjectKey(user string, groups []string, anonymous bool) string {
	n := 2 + len(user) + 4
	for _, g := range groups {
		n += len(g) + 4
	}
	b := make([]byte, 0, n)
	if anonymous {
		b = append(b, 'a')
	} else {
		b = append(b, 'n')
	}
	b = appendLenPrefixed(b, user)
	sorted := slices.Clone(groups)
	slices.Sort(sorted)
	for i, g := range sorted {
		if i > 0 && g == sorted[i-1] {
			continue
		}
		b = appendLenPrefixed(b, g)
	}
	return string(b)
}

func appendLenPrefixed(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}
