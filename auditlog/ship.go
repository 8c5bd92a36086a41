package auditlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// The headers of a shipped batch besides Content-Type, Content-Encoding
// and Idempotency-Key (doc.go, "Shipping").
const (
	HeaderNode          = "Mcpgw-Node"
	HeaderBatchFirstSeq = "Mcpgw-Batch-First-Seq"
	HeaderBatchLastSeq  = "Mcpgw-Batch-Last-Seq"
	HeaderBatchPrevHash = "Mcpgw-Batch-Prev-Hash"
	HeaderBatchLastHash = "Mcpgw-Batch-Last-Hash"
)

// ErrNoShipping is NewShipper's error for a Log opened without
// Options.Shipping, whose retention would not wait for the shipper.
var ErrNoShipping = errors.New("auditlog: the log was opened without Options.Shipping")

// ShipOptions configure a Shipper. Zero fields take the defaults named.
type ShipOptions struct {
	// URL is the control plane's ingest (audit.ship.url), http or https.
	URL string
	// Batch is the most records in one POST (audit.ship.batch). Default 1000.
	Batch int
	// MaxBatchBytes bounds the uncompressed bytes of one POST; a batch has
	// at least one record whatever its size. Default 4 MiB.
	MaxBatchBytes int
	// Interval is how often an idle shipper looks for new records
	// (audit.ship.interval). Default 1s.
	Interval time.Duration
	// Client sends the batches. Nil: a client with a 30s timeout that
	// follows no redirect (a 3xx is a failure, so records are never sent
	// where the configuration does not say).
	Client *http.Client
	// Token gives the bearer token of each POST; nil sends none. The
	// Shipper keeps a token until it expires or a 401 rejects it, and then
	// asks Token for another, so Token should fetch a new one each time it
	// is asked (as ClientCredentials does; oauth2.ReuseTokenSource would
	// hand back the rejected token).
	Token oauth2.TokenSource
	// MinBackoff and MaxBackoff bound the waits between failed attempts:
	// the n-th wait is random in [0, min(MaxBackoff, MinBackoff·2ⁿ)) (full
	// jitter), or what a 429 or 503 asks with Retry-After, up to
	// MaxBackoff. Defaults 1s and 1m.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives the Shipper's messages, with component=auditlog.
	// Nil: discarded. Tokens and records are never logged.
	Logger *slog.Logger
}

// ShipStats are a Shipper's gauges and counters, for /metrics and /readyz.
type ShipStats struct {
	Shipped uint64 // the last seq the receiver acknowledged
	Lag     uint64 // records written and not yet acknowledged (head − Shipped)
	// OldestUnshipped is the age of the oldest record not acknowledged, as
	// of the Shipper's last look at the spool (at most an Interval or one
	// POST ago); 0 when Lag is 0.
	OldestUnshipped time.Duration
	Batches         uint64 // batches acknowledged since NewShipper
	Records         uint64 // records acknowledged since NewShipper
	Failures        uint64 // failed attempts since NewShipper
	// LastError describes the last failed attempt, without URL query,
	// token or response body; "" before any failure.
	LastError   string
	LastSuccess time.Time // when the last batch was acknowledged; zero before any
}

// Shipper sends a Log's records to the control plane, in seq order, in
// batches, and records in the Log what the receiver acknowledged. Run does
// the work; Stats is safe to call from any goroutine.
type Shipper struct {
	l                      *Log
	url                    string
	safeURL                string // url without user info and query, for messages
	batch, maxBytes        int
	interval               time.Duration
	minBackoff, maxBackoff time.Duration
	client                 *http.Client
	log                    *slog.Logger

	running atomic.Bool

	batches  atomic.Uint64
	records  atomic.Uint64
	failures atomic.Uint64
	oldest   atomic.Int64 // unix nanoseconds of the oldest unshipped record; 0: none

	// mu guards the fields below.
	mu       sync.Mutex
	lastErr  string
	lastOK   time.Time
	lastWarn time.Time // the last failure logged (at most one a minute)

	// Run's own.
	token  oauth2.TokenSource
	tok    *oauth2.Token
	body   bytes.Buffer
	zw     *gzip.Writer
	failed int // failed attempts since the last success
}

// shipBatch is the batch being sent: kept, with its body, until a 2xx.
type shipBatch struct {
	first, last    uint64
	prev, lastHash Hash
	n, raw         int
	full           bool // more records may be waiting
	key            string
}

// NewShipper returns a Shipper of l's records to opts.URL. l must be
// opened with Options.Shipping, so that retention keeps what is not
// shipped (ErrNoShipping otherwise).
func NewShipper(l *Log, opts ShipOptions) (*Shipper, error) {
	if !l.shipping {
		return nil, ErrNoShipping
	}
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("auditlog: the ship url must be an absolute http or https URL")
	}
	safe := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	s := &Shipper{
		l:          l,
		url:        opts.URL,
		safeURL:    safe.String(),
		batch:      cmpOr(opts.Batch, 1000),
		maxBytes:   cmpOr(opts.MaxBatchBytes, 4<<20),
		interval:   cmpOr(opts.Interval, time.Second),
		minBackoff: cmpOr(opts.MinBackoff, time.Second),
		maxBackoff: cmpOr(opts.MaxBackoff, time.Minute),
		client:     client,
		log:        log.With("component", "auditlog"),
		token:      opts.Token,
	}
	s.zw, _ = gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return s, nil
}

// cmpOr is cmp.Or for the positive options: v when above zero, else def.
func cmpOr[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Run ships until ctx ends (it returns nil then) or the Log is closed
// (ErrClosed). Failures are retried forever, with backoff: no record is
// dropped. One Run at a time; the caller owns the goroutine and should end
// it before closing the Log.
func (s *Shipper) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("auditlog: Shipper.Run is already running")
	}
	defer s.running.Store(false)
	var b *shipBatch
	for ctx.Err() == nil {
		var err error
		if b == nil {
			b, err = s.nextBatch()
			if errors.Is(err, ErrClosed) {
				return err
			}
			if err == nil && b == nil {
				sleep(ctx, s.interval)
				continue
			}
		}
		var wait time.Duration
		if err == nil {
			wait, err = s.post(ctx, b)
		}
		if err == nil {
			err = s.l.markShipped(b.last)
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrClosed) {
			return err
		}
		if err != nil {
			s.fail(err)
			if wait == 0 {
				wait = s.backoff()
			}
			sleep(ctx, wait)
			continue
		}
		s.succeed(b)
		if !b.full {
			s.oldest.Store(0) // caught up with the head it read
			sleep(ctx, s.interval)
		}
		b = nil
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// backoff returns the wait after the failed-th failure in a row: capped
// exponential with full jitter.
func (s *Shipper) backoff() time.Duration {
	ceiling := s.minBackoff
	for i := 1; i < s.failed && ceiling < s.maxBackoff; i++ {
		ceiling *= 2
	}
	return rand.N(min(ceiling, s.maxBackoff)) + 1
}

// nextBatch reads the records after the shipped position into s.body,
// gzipped, or returns nil when there are none.
func (s *Shipper) nextBatch() (*shipBatch, error) {
	from := s.l.shipped.Load() + 1
	head, err := s.l.durableHead(from)
	if err != nil {
		return nil, err
	}
	if from > head {
		s.oldest.Store(0)
		return nil, nil
	}
	s.body.Reset()
	s.zw.Reset(&s.body)
	b := &shipBatch{}
	var werr error
	err = s.l.ScanJSON(from, func(seq uint64, line []byte) bool {
		if seq > head {
			return false
		}
		if b.n > 0 && b.raw+len(line)+1 > s.maxBytes {
			b.full = true
			return false
		}
		if b.n == 0 {
			b.first = seq
			b.prev, _ = recordPrevHash(line)
			if t, ok := recordTime(line); ok {
				s.oldest.Store(t.UnixNano())
			}
		}
		if _, werr = s.zw.Write(line); werr == nil {
			_, werr = s.zw.Write(newline)
		}
		b.last, b.n, b.raw = seq, b.n+1, b.raw+len(line)+1
		b.lastHash, _ = recordHash(line)
		if b.n == s.batch {
			b.full = true
			return false
		}
		return werr == nil
	})
	if cerr := s.zw.Close(); werr == nil {
		werr = cerr
	}
	if err != nil {
		return nil, err
	}
	if werr != nil {
		return nil, fmt.Errorf("auditlog: cannot compress a batch: %w", werr)
	}
	if b.n == 0 {
		return nil, nil
	}
	b.key = s.l.node + "-" + strconv.FormatUint(b.first, 10) + "-" + strconv.FormatUint(b.last, 10)
	return b, nil
}

var newline = []byte{'\n'}

// recordPrevHash returns the prev_hash member of a stored record (the zero
// hash when it has none: the first record of the chain).
func recordPrevHash(line []byte) (Hash, bool) {
	const member = `,"prev_hash":"`
	h, ok := hexMember(line, member)
	if !ok && !bytes.Contains(line, []byte(member)) {
		return Hash{}, true
	}
	return h, ok
}

// post sends b, once more with a new token after a 401. It returns how
// long the receiver asked to wait (Retry-After), if it did.
func (s *Shipper) post(ctx context.Context, b *shipBatch) (time.Duration, error) {
	for try := 0; ; try++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(s.body.Bytes()))
		if err != nil {
			return 0, errors.New("cannot build request")
		}
		h := req.Header
		h.Set("Content-Type", "application/x-ndjson")
		h.Set("Content-Encoding", "gzip")
		h.Set("Idempotency-Key", b.key)
		h.Set(HeaderNode, s.l.node)
		h.Set(HeaderBatchFirstSeq, strconv.FormatUint(b.first, 10))
		h.Set(HeaderBatchLastSeq, strconv.FormatUint(b.last, 10))
		h.Set(HeaderBatchPrevHash, b.prev.String())
		h.Set(HeaderBatchLastHash, b.lastHash.String())
		if s.token != nil {
			if !s.tok.Valid() {
				t, err := s.token.Token()
				if err != nil {
					return 0, errors.New("cannot get token: " + describe(err))
				}
				s.tok = t
			}
			s.tok.SetAuthHeader(req)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return 0, errors.New(describe(err))
		}
		// Drain a little, so the connection can be reused; never log it.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		code := resp.StatusCode
		if code >= 200 && code < 300 {
			return 0, nil
		}
		if code == http.StatusUnauthorized && s.token != nil {
			s.tok = nil // rejected: the next attempt asks for a new one
			if try == 0 {
				continue
			}
		}
		var wait time.Duration
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			wait = min(retryAfter(resp.Header.Get("Retry-After"), time.Now()), s.maxBackoff)
		}
		return wait, &statusError{code: code}
	}
}

// statusError is a non-2xx answer.
type statusError struct{ code int }

func (e *statusError) Error() string {
	return "ingest answered " + strconv.Itoa(e.code) + " " + http.StatusText(e.code)
}

// permanent reports whether the status says the request itself is wrong:
// retrying will not help without a change at either end, so it is logged
// as an error (the records are kept and retried all the same).
func (e *statusError) permanent() bool {
	switch e.code {
	case http.StatusUnauthorized, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return e.code >= 300 && e.code < 500
}

// retryAfter parses a Retry-After header (RFC 9110 10.2.3): seconds or an
// HTTP date. It returns 0 when there is none.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// describe renders an error of the HTTP client or the token source
// without what must not be logged: a URL's query and user info (in a
// *url.Error) or a token endpoint's response body (in an
// *oauth2.RetrieveError). Its length is bounded.
func describe(err error) string {
	var msg string
	var re *oauth2.RetrieveError
	var ue *url.Error
	switch {
	case errors.As(err, &re):
		msg = "token endpoint answered"
		if re.Response != nil {
			msg += " " + strconv.Itoa(re.Response.StatusCode)
		}
		if re.ErrorCode != "" {
			msg += " " + re.ErrorCode
		}
	case errors.As(err, &ue):
		u, perr := url.Parse(ue.URL)
		where := "the URL"
		if perr == nil {
			where = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
		}
		msg = ue.Op + " " + where + ": " + describe(ue.Err)
	default:
		msg = err.Error()
	}
	const max = 200
	if len(msg) > max {
		msg = msg[:max] + "…"
	}
	return msg
}

// fail counts and logs a failed attempt: the first of a run of failures
// at once, then at most one a minute.
func (s *Shipper) fail(err error) {
	s.failed++
	s.failures.Add(1)
	msg := err.Error()
	now := time.Now()
	s.mu.Lock()
	s.lastErr = msg
	logIt := s.failed == 1 || now.Sub(s.lastWarn) >= time.Minute
	if logIt {
		s.lastWarn = now
	}
	s.mu.Unlock()
	if !logIt {
		return
	}
	var se *statusError
	if errors.As(err, &se) && se.permanent() {
		s.log.Error("audit shipping refused; records are kept and retried", "url", s.safeURL, "err", msg, "failures", s.failed)
		return
	}
	s.log.Warn("audit shipping failed; will retry", "url", s.safeURL, "err", msg, "failures", s.failed)
}

func (s *Shipper) succeed(b *shipBatch) {
	s.batches.Add(1)
	s.records.Add(uint64(b.n))
	if s.failed > 0 {
		s.log.Info("audit shipping resumed", "url", s.safeURL, "after_failures", s.failed)
		s.failed = 0
	}
	s.mu.Lock()
	s.lastOK = time.Now()
	s.mu.Unlock()
}

// Stats returns the Shipper's gauges and counters. It takes no I/O.
func (s *Shipper) Stats() ShipStats {
	head, _ := s.l.Last()
	st := ShipStats{
		Shipped:  s.l.shipped.Load(),
		Batches:  s.batches.Load(),
		Records:  s.records.Load(),
		Failures: s.failures.Load(),
	}
	if head > st.Shipped {
		st.Lag = head - st.Shipped
		if t := s.oldest.Load(); t != 0 {
			st.OldestUnshipped = max(0, time.Since(time.Unix(0, t)))
		}
	}
	s.mu.Lock()
	st.LastError, st.LastSuccess = s.lastErr, s.lastOK
	s.mu.Unlock()
	return st
}

// durableHead returns the last record that may be shipped: the head, once
// it is durable. In Async mode it syncs the write-ahead log first (when
// there is something from from on to ship): a record shipped and then lost
// in a crash would have its seq, and its id, given to another record,
// which the receiver would drop as a duplicate.
func (l *Log) durableHead(from uint64) (uint64, error) {
	head, _ := l.Last()
	if l.sync || head < from {
		return head, nil
	}
	if err := l.withDB(func(db, _ *pebble.DB) error { return db.LogData(nil, pebble.Sync) }); err != nil {
		return 0, fmt.Errorf("auditlog: cannot sync the spool: %w", err)
	}
	return head, nil
}

// ClientCredentials returns a token source for ShipOptions.Token that
// fetches a new token with the OAuth 2.0 client credentials grant (RFC 6749
// section 4.4) each time it is asked, through client (nil: a client with
// a 30s timeout). The appliance fills cfg from the env file's
// OIDC_TOKEN_URL, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET.
func ClientCredentials(cfg *clientcredentials.Config, client *http.Client) oauth2.TokenSource {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &clientCredentials{cfg: cfg, client: client}
}

type clientCredentials struct {
	cfg    *clientcredentials.Config
	client *http.Client
}

func (c *clientCredentials) Token() (*oauth2.Token, error) {
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, c.client)
	return c.cfg.Token(ctx)
}
