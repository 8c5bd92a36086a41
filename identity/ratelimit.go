package identity

import (
	"sync"
	"time"
)

// Dynamic client registration is open to anyone who can reach the
// gateway (RFC 7591, as MCP clients expect), and each registration is a
// record in the state store: without a bound, a loop of registrations
// fills the disk. Legitimate clients register once per installation, so
// the gateway accepts registrations at a sustained rate of
// registrationsPerMinute, in bursts of up to registrationBurst, and
// answers 429 beyond that.
const (
	registrationsPerMinute = 30
	registrationBurst      = 30
)

// tokenBucket is a token-bucket rate limiter. It is safe for concurrent
// use.
type tokenBucket struct {
	rate  float64 // tokens added per second
	burst float64

	mu     sync.Mutex // guards the fields below
	tokens float64
	last   time.Time
	logged time.Time // when a refusal was last logged
}

// shouldLog reports whether a refusal at now should be logged: at most
// once a minute, so that a flood of refused requests is one line, not a
// flood of lines.
func (b *tokenBucket) shouldLog(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.logged.IsZero() && now.Sub(b.logged) < time.Minute {
		return false
	}
	b.logged = now
	return true
}

func newTokenBucket(perMinute, burst int) *tokenBucket {
	return &tokenBucket{rate: float64(perMinute) / 60, burst: float64(burst), tokens: float64(burst)}
}

// allow takes a token if one is there at now; when none is, it returns
// false and how long until the next one.
func (b *tokenBucket) allow(now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	return false, wait
}
