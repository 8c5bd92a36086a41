package access

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mcpgw/mcpgw/internal/state"
)

// liveGrant is a grant as the hot path reads it. Immutable once built.
type liveGrant struct {
	id      string
	expires int64 // unix nanoseconds; the grant covers calls strictly before
	exact   bool  // only the call whose arguments hash to hash
	hash    [32]byte
	g       Grant
}

func newLiveGrant(g Grant) *liveGrant {
	l := &liveGrant{id: g.ID, expires: g.Expires.UnixNano(), g: g}
	if g.ArgumentsHash != "" {
		l.exact = true
		hex.Decode(l.hash[:], []byte(g.ArgumentsHash)) // validated by the caller
	}
	return l
}

// grantIndex is user -> app -> tool -> grants, nested so that Check looks
// up its []byte tool without building a key (the compiler does not
// allocate for m[string(b)]). Immutable: replaced whole on every change.
type grantIndex struct {
	byUser map[string]map[string]map[string][]*liveGrant
}

// Check reports whether user holds a live grant for calling tool of app
// with arguments hashing to argsHash (nil: the caller has no hash, so only
// whole-tool grants match), and names it. A whole-tool grant covers any
// arguments; an exact grant only its own hash.
//
// Check is the proxy's hot path: it reads an immutable in-memory index,
// does not allocate, does not retain tool or argsHash, and compares each
// grant's expiry with the clock on every call, so a grant stops working at
// its expiry instant (it covers calls strictly before Grant.Expires) and a
// revocation is seen by every Check that starts after Revoke returns. It
// is safe for concurrent use.
func (s *Service) Check(user, app string, tool []byte, argsHash *[32]byte) (grantID string, ok bool) {
	grants := s.index.Load().byUser[user][app][string(tool)]
	if len(grants) == 0 {
		return "", false
	}
	now := s.now().UnixNano()
	for _, g := range grants {
		if now >= g.expires {
			continue
		}
		if g.exact && (argsHash == nil || *argsHash != g.hash) {
			continue
		}
		return g.id, true
	}
	return "", false
}

// Grants returns the live grants, filtered by user and app when they are
// not "", soonest expiry first. The values are the caller's.
func (s *Service) Grants(user, app string) []Grant {
	now := s.now().UnixNano()
	out := []Grant{}
	s.mu.Lock()
	for _, g := range s.grants {
		if now >= g.expires || (user != "" && g.g.User != user) || (app != "" && g.g.App != app) {
			continue
		}
		c := g.g
		c.Tools = slices.Clone(c.Tools)
		out = append(out, c)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Grant) int {
		if c := a.Expires.Compare(b.Expires); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Revoke ends grant id at once (DELETE /api/v1/grants/{id}); by names who
// did it, for the event. When Revoke returns, the grant is gone from the
// Store and no Check that starts afterwards accepts it. An unknown or
// expired grant is ErrUnknownGrant.
func (s *Service) Revoke(id, by string) error {
	s.mu.Lock()
	g := s.grants[id]
	if g == nil || s.now().UnixNano() >= g.expires {
		// Not known here: another node may have created it (cluster mode).
		s.mu.Unlock()
		raw, err := s.store.Get(grantKey(id))
		if errors.Is(err, state.ErrNotFound) {
			return ErrUnknownGrant
		}
		if err != nil {
			return fmt.Errorf("access: cannot read grant: %w", err)
		}
		if g, err = decodeGrant(raw); err != nil {
			return err
		}
		s.mu.Lock()
	}
	if err := s.store.Delete(grantKey(id)); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("access: cannot delete grant: %w", err)
	}
	delete(s.grants, id)
	s.rebuildLocked()
	s.mu.Unlock()
	s.emit(Event{
		Kind: EventRevoked, RequestID: g.g.RequestID, GrantID: id, App: g.g.App,
		User: g.g.User, Tools: g.g.Tools, ArgumentsHash: g.g.ArgumentsHash,
		Actor: by, Time: s.now().UTC(),
	})
	return nil
}

func (s *Service) addGrant(g *liveGrant) {
	s.mu.Lock()
	s.grants[g.id] = g
	s.rebuildLocked()
	s.mu.Unlock()
}

// loadGrants reads the live grants from the Store into memory (New).
func (s *Service) loadGrants() error {
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.store.Scan(grantPrefix, func(key string, value []byte) bool {
		g, err := decodeGrant(value)
		if err != nil {
			s.log.Warn("cannot read a stored grant", "key", key, "err", err)
			return true
		}
		if now < g.expires {
			s.grants[g.id] = g
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("access: cannot load grants: %w", err)
	}
	s.rebuildLocked()
	return nil
}

// dropExpiredGrants removes the grants past their expiry from memory (the
// Store's ttl removes their records) and emits one event for each.
func (s *Service) dropExpiredGrants() {
	now := s.now().UnixNano()
	var gone []*liveGrant
	s.mu.Lock()
	for id, g := range s.grants {
		if now >= g.expires {
			gone = append(gone, g)
			delete(s.grants, id)
		}
	}
	if len(gone) > 0 {
		s.rebuildLocked()
	}
	s.mu.Unlock()
	slices.SortFunc(gone, func(a, b *liveGrant) int { return strings.Compare(a.id, b.id) })
	for _, g := range gone {
		s.emit(Event{
			Kind: EventGrantExpired, RequestID: g.g.RequestID, GrantID: g.id, App: g.g.App,
			User: g.g.User, Tools: g.g.Tools, ArgumentsHash: g.g.ArgumentsHash,
			Time: g.g.Expires,
		})
	}
}

// rebuildLocked publishes a new index of s.grants. s.mu must be held.
func (s *Service) rebuildLocked() {
	idx := &grantIndex{byUser: make(map[string]map[string]map[string][]*liveGrant)}
	for _, g := range s.grants {
		apps := idx.byUser[g.g.User]
		if apps == nil {
			apps = make(map[string]map[string][]*liveGrant)
			idx.byUser[g.g.User] = apps
		}
		tools := apps[g.g.App]
		if tools == nil {
			tools = make(map[string][]*liveGrant)
			apps[g.g.App] = tools
		}
		for _, t := range g.g.Tools {
			tools[t] = append(tools[t], g)
		}
	}
	s.index.Store(idx)
}
