package policycache

import "sync/atomic"

// Holder publishes the current Policy to the request path: Load is one
// atomic read, Store swaps in a new snapshot (config reload). It is safe for
// concurrent use; the zero value holds nil.
//
// A request should Load once and use that *Policy for its whole decision,
// so that it sees one consistent snapshot.
type Holder struct {
	p atomic.Pointer[Policy]
}

// Load returns the current Policy (nil before the first Store).
func (h *Holder) Load() *Policy { return h.p.Load() }

// Store makes p current and closes the previous Policy, whose decision
// cache would otherwise keep its goroutines and memory. This is safe while
// requests still use the previous Policy: Close waits for calls inside the
// cache, and later calls on a closed Policy decide correctly without it.
// The Holder owns every Policy stored in it.
func (h *Holder) Store(p *Policy) {
	if old := h.p.Swap(p); old != nil && old != p {
		old.Close()
	}
}

// Swap makes p current and returns the previous Policy without closing it;
// the caller then owns it and must Close it.
func (h *Holder) Swap(p *Policy) *Policy { return h.p.Swap(p) }
