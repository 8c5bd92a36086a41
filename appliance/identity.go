package appliance

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mcpgw/mcpgw/internal/state"
)

// tokenKeyInfo is the HKDF info of the key the authorization server signs
// and seals its tokens with. It differs from every other use of the
// session key, so the two keys are independent (RFC 5869 section 3.2) and
// the session-id AES key is never used for anything else.
const tokenKeyInfo = "mcpgw oauth token key v1"

// identityRuntime is the part of identity that outlives reloads: the state
// store and the keys derived from data_dir's key material. attach builds,
// per configuration, what the proxy's Snapshot needs from it.
type identityRuntime struct {
	store    state.Store
	tokenKey []byte
	log      *slog.Logger
}

// newIdentityRuntime derives the token key from the session key with HKDF
// (SHA-256, info tokenKeyInfo).
func newIdentityRuntime(sessionKey []byte, store state.Store, log *slog.Logger) (*identityRuntime, error) {
	k, err := deriveTokenKey(sessionKey)
	if err != nil {
		return nil, err
	}
	return &identityRuntime{store: store, tokenKey: k, log: log.With("component", "identity")}, nil
}

func deriveTokenKey(sessionKey []byte) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, sessionKey, nil, tokenKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("cannot derive the token key: %w", err)
	}
	return k, nil
}

// attach sets the identity parts of comp.snap for comp.cfg. Nothing to do
// yet: dev users are compiled by compile.
func (r *identityRuntime) attach(ctx context.Context, comp *compiled) error {
	return nil
}

// describe names the identity setup for the startup log line.
func (r *identityRuntime) describe(comp *compiled) string {
	return comp.cfg.Identity.Mode
}

// readiness is what /readyz reports: the configuration is loaded and the
// state store answers.
func (r *identityRuntime) readiness(comp *compiled) readiness {
	rd := readiness{Ready: true, Checks: map[string]string{}}
	if comp == nil {
		rd.Ready = false
		rd.Checks["config"] = "not loaded"
	} else {
		rd.Checks["config"] = "loaded"
	}
	if _, err := r.store.Get("readyz"); err != nil && !errors.Is(err, state.ErrNotFound) {
		rd.Ready = false
		rd.Checks["state"] = "unavailable"
	} else {
		rd.Checks["state"] = "open"
	}
	return rd
}
