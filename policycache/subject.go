package policycache

import "github.com/mcpgw/mcpgw/internal/subjectkey"

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
// independently of group order and duplicates (internal/subjectkey), so two
// different subjects never share cached decisions.
func SubjectKey(user string, groups []string, anonymous bool) string {
	return subjectkey.Key(user, groups, anonymous)
}
