package access

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgw/mcpgw/internal/state"
)

// Defaults of Options.
const (
	DefaultKeep          = 7 * 24 * time.Hour
	DefaultSweepInterval = 30 * time.Second
)

// ApprovalRuleFunc tells which approval rule makes user (in groups) need
// approval for tool of app: policycache's Decide giving NeedsApproval, with
// Decision.Rule as rule. ok is false when the tool is allowed outright,
// denied, or unknown: such tools cannot be requested.
type ApprovalRuleFunc func(app, user string, groups []string, tool string) (rule string, ok bool)

// Options configure a Service.
type Options struct {
	// Store keeps requests and grants (required). The Service does not
	// close it.
	Store state.Store
	// Flows are the approval flows at start; Update replaces them.
	Flows map[FlowKey]Flow
	// ApprovalRule resolves the rule of each tool of a request made ahead
	// of time (Service.Request). The appliance passes a function over the
	// current policy snapshot; without it Request fails with ErrNoResolver.
	ApprovalRule ApprovalRuleFunc
	// OnEvent, when set, is called for every change (see Event). It is
	// called synchronously, after the change is durable in Store and
	// visible to Check, without any lock of the Service held, on the
	// goroutine that made the change (a caller of RequestFor, Decide,
	// Revoke, a reader that found an expired request, or the sweeper). It
	// must be fast: hand the event to a queue (audit append, webhook
	// worker) and return. It may call the Service's methods.
	OnEvent func(Event)
	// Now is the clock (default time.Now). Tests step a fake one.
	Now func() time.Time
	// Keep is how long a decided or expired request stays readable
	// (default DefaultKeep). A pending request is kept RequestTTL + Keep.
	Keep time.Duration
	// SweepInterval is how often the sweeper expires pending requests and
	// drops expired grants (default DefaultSweepInterval; negative: no
	// sweeper goroutine, expiry only on read and on Sweep).
	SweepInterval time.Duration
	// Log receives store failures the sweeper meets (default: discard).
	Log *slog.Logger
}

// Service runs approval flows and answers grant checks. It is safe for
// concurrent use. Close stops its sweeper.
type Service struct {
	store   state.Store
	resolve ApprovalRuleFunc
	onEvent func(Event)
	now     func() time.Time
	keep    time.Duration
	log     *slog.Logger

	flows atomic.Pointer[map[FlowKey]Flow] // immutable; swapped by Update

	// index is the hot path's immutable view of grants (see Check),
	// rebuilt from grants on every change.
	index atomic.Pointer[grantIndex]

	mu     sync.Mutex            // guards grants and the order of index swaps
	grants map[string]*liveGrant // grant id -> grant

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// New returns a Service over opts.Store: it loads the live grants, expires
// the pending requests whose time passed while no Service ran (emitting
// their events), and starts the sweeper.
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("access: Options.Store is required")
	}
	s := &Service{
		store:   opts.Store,
		resolve: opts.ApprovalRule,
		onEvent: opts.OnEvent,
		now:     opts.Now,
		keep:    opts.Keep,
		log:     opts.Log,
		grants:  make(map[string]*liveGrant),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.keep <= 0 {
		s.keep = DefaultKeep
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "access")
	if err := s.Update(opts.Flows); err != nil {
		return nil, err
	}
	s.index.Store(&grantIndex{})
	if err := s.loadGrants(); err != nil {
		return nil, err
	}
	if err := s.Sweep(); err != nil {
		return nil, err
	}
	interval := opts.SweepInterval
	if interval == 0 {
		interval = DefaultSweepInterval
	}
	if interval < 0 {
		close(s.done)
		return s, nil
	}
	go s.sweeper(interval)
	return s, nil
}

// Update replaces the approval flows (a config reload). It checks every
// flow and, on any problem, keeps the old ones and returns all problems.
// Requests already open keep the levels and grant TTL they were created
// with.
func (s *Service) Update(flows map[FlowKey]Flow) error {
	var errs []error
	for key, f := range flows {
		errs = append(errs, f.validate(key)...)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	cp := maps.Clone(flows)
	if cp == nil {
		cp = map[FlowKey]Flow{}
	}
	s.flows.Store(&cp)
	return nil
}

func (s *Service) flow(app, rule string) (Flow, bool) {
	f, ok := (*s.flows.Load())[FlowKey{app, rule}]
	return f, ok
}

// Close stops the sweeper and waits for it. It does not close the Store;
// methods called after Close still work as long as the Store does.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
	})
	return nil
}

func (s *Service) sweeper(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.Sweep(); err != nil {
				s.log.Warn("cannot sweep approval requests", "err", err)
			}
		}
	}
}

// Sweep expires every pending request whose time has passed and drops the
// expired grants from memory, emitting one event for each. The sweeper
// calls it every SweepInterval; tests call it after stepping the clock.
func (s *Service) Sweep() error {
	s.dropExpiredGrants()
	var due []string
	now := s.now()
	err := s.store.Scan(requestPrefix, func(key string, value []byte) bool {
		rec, err := decodeRequest(value)
		if err != nil {
			s.log.Warn("cannot read a stored approval request", "key", key, "err", err)
			return true
		}
		if rec.Status == StatusPending && !now.Before(rec.Expires) {
			due = append(due, rec.ID)
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("access: cannot scan requests: %w", err)
	}
	for _, id := range due {
		if _, _, err := s.load(id); err != nil && !errors.Is(err, ErrUnknownRequest) {
			return err
		}
	}
	return nil
}

func (s *Service) emit(e Event) {
	if s.onEvent != nil {
		s.onEvent(e)
	}
}

// newID returns prefix and 128 random bits in lowercase base32.
func newID(prefix string) string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	return prefix + idEncoding.EncodeToString(b[:])
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
