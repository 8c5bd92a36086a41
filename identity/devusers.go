package identity

import (
	"crypto/sha256"
	"errors"
	"fmt"
)

// DevUser is one static bearer token of the identity.dev_users config, for
// quickstarts and tests.
type DevUser struct {
	Token  string
	User   string
	Groups []string
}

// DevUsers maps dev bearer tokens to their principals.
//
// It is immutable after NewDevUsers and safe for concurrent use. The map is
// keyed by the SHA-256 of each token, so the token bytes are not kept as map
// keys and the time a lookup takes says nothing about how much of a
// presented token matches a real one (only about its hash, which an attacker
// cannot steer). A nil *DevUsers holds no users.
type DevUsers struct {
	byHash map[[sha256.Size]byte]*Principal
}

// NewDevUsers builds the token table. Each user gets a Principal with Source
// SourceDev. Entries with an empty token are skipped, and a token that
// appears more than once authenticates nobody: it is ambiguous, and failing
// closed is safer than picking one of its users. ValidateDevUsers reports
// both, for config validation.
func NewDevUsers(users []DevUser) *DevUsers {
	d := &DevUsers{byHash: make(map[[sha256.Size]byte]*Principal, len(users))}
	ambiguous := make(map[[sha256.Size]byte]bool)
	for _, u := range users {
		if u.Token == "" {
			continue
		}
		h := sha256.Sum256([]byte(u.Token))
		if _, dup := d.byHash[h]; dup || ambiguous[h] {
			delete(d.byHash, h)
			ambiguous[h] = true
			continue
		}
		d.byHash[h] = NewPrincipal(u.User, u.Groups, SourceDev)
	}
	return d
}

// Lookup returns the principal whose token is token. It does not allocate.
// The returned Principal is shared and immutable.
func (d *DevUsers) Lookup(token []byte) (*Principal, bool) {
	if d == nil || len(token) == 0 {
		return nil, false
	}
	p, ok := d.byHash[sha256.Sum256(token)]
	return p, ok
}

// Len returns how many tokens authenticate a user.
func (d *DevUsers) Len() int {
	if d == nil {
		return 0
	}
	return len(d.byHash)
}

// ValidateDevUsers reports every problem with users at once, each naming the
// entry by its index (dev_users[i]) and never showing a token: an empty
// token or user, a token that cannot be sent as a bearer token (RFC 6750
// b64token), and a token used by more than one entry. It returns nil when
// all entries are usable.
func ValidateDevUsers(users []DevUser) error {
	var errs []error
	first := make(map[string]int, len(users))
	for i, u := range users {
		switch {
		case u.Token == "":
			errs = append(errs, fmt.Errorf("identity.dev_users[%d]: token is empty", i))
		case !isB64Token([]byte(u.Token)):
			errs = append(errs, fmt.Errorf("identity.dev_users[%d]: token has characters a bearer token cannot carry (allowed: letters, digits, -._~+/ and trailing =)", i))
		}
		if u.User == "" {
			errs = append(errs, fmt.Errorf("identity.dev_users[%d]: user is empty", i))
		}
		if u.Token == "" {
			continue
		}
		if j, dup := first[u.Token]; dup {
			errs = append(errs, fmt.Errorf("identity.dev_users[%d]: token is the same as identity.dev_users[%d]'s", i, j))
			continue
		}
		first[u.Token] = i
	}
	return errors.Join(errs...)
}
