package auditlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// receiver is a control plane ingest for tests: it checks each batch's
// headers against its lines, dedupes records by id and runs one Verifier
// over everything it accepts, anchored at the start of the chain.
type receiver struct {
	t *testing.T
	// fault, when set, may answer a request before it is read: it returns
	// a status (0: none) and how long to hang first.
	fault func(n int) (status int, hang time.Duration, header http.Header)
	// token, when set, is the only bearer token accepted.
	token atomic.Pointer[string]

	mu       sync.Mutex // guards the fields below
	requests int
	accepted []batchHeaders // the batches answered 2xx, in order
	ids      map[string]int // deliveries of each record id
	v        Verifier
	records  int // distinct records accepted
}

type batchHeaders struct {
	Key         string
	First, Last uint64
}

func newReceiver(t *testing.T) (*receiver, *httptest.Server) {
	rc := &receiver{t: t, ids: map[string]int{}}
	rc.v.Anchor(0, Hash{})
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.requests++
	n := rc.requests
	rc.mu.Unlock()
	if rc.fault != nil {
		status, hang, header := rc.fault(n)
		if hang > 0 {
			select {
			case <-time.After(hang):
			case <-r.Context().Done():
				return
			}
		}
		if status != 0 {
			for k, v := range header {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			io.WriteString(w, "upstream body that must not be logged")
			return
		}
	}
	if tok := rc.token.Load(); tok != nil && r.Header.Get("Authorization") != "Bearer "+*tok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if err := rc.accept(r); err != nil {
		rc.t.Errorf("receiver: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
}

// accept checks one batch and takes its records.
func (rc *receiver) accept(r *http.Request) error {
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-ndjson" || r.Header.Get("Content-Encoding") != "gzip" {
		return fmt.Errorf("got %s with Content-Type %q, Content-Encoding %q", r.Method, r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		return err
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return errors.New("the body is not newline-terminated lines")
	}
	lines := bytes.Split(body[:len(body)-1], []byte{'\n'})
	type member struct {
		ID       string `json:"id"`
		Seq      uint64 `json:"seq"`
		PrevHash Hash   `json:"prev_hash"`
		Hash     Hash   `json:"hash"`
	}
	first, last := new(member), new(member)
	if err := json.Unmarshal(lines[0], first); err != nil {
		return err
	}
	if err := json.Unmarshal(lines[len(lines)-1], last); err != nil {
		return err
	}
	h := r.Header
	node, _, _ := strings.Cut(first.ID, "-")
	want := map[string]string{
		"Idempotency-Key":   fmt.Sprintf("%s-%d-%d", node, first.Seq, last.Seq),
		HeaderNode:          node,
		HeaderBatchFirstSeq: strconv.FormatUint(first.Seq, 10),
		HeaderBatchLastSeq:  strconv.FormatUint(last.Seq, 10),
		HeaderBatchPrevHash: first.PrevHash.String(),
		HeaderBatchLastHash: last.Hash.String(),
	}
	got := map[string]string{}
	for k := range want {
		got[k] = h.Get(k)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		return fmt.Errorf("batch headers (-want +got):\n%s", diff)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, line := range lines {
		var m member
		if err := json.Unmarshal(line, &m); err != nil {
			return err
		}
		rc.ids[m.ID]++
		if rc.ids[m.ID] > 1 {
			continue // a resend: dedupe by id
		}
		if err := rc.v.Next(line); err != nil {
			return fmt.Errorf("record %s: %w", m.ID, err)
		}
		rc.records++
	}
	rc.accepted = append(rc.accepted, batchHeaders{h.Get("Idempotency-Key"), first.Seq, last.Seq})
	return nil
}

func (rc *receiver) snapshot() (records int, accepted []batchHeaders, ids map[string]int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	ids = map[string]int{}
	for k, v := range rc.ids {
		ids[k] = v
	}
	return rc.records, append([]batchHeaders(nil), rc.accepted...), ids
}

// runShipper runs s until the returned stop is called; stop returns Run's
// error.
func runShipper(t *testing.T, s *Shipper) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after its context ended")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// waitShipped waits until the shipper has acknowledged seq.
func waitShipped(t testing.TB, s *Shipper, seq uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("shipping through seq %d", seq), func() bool { return s.Stats().Shipped >= seq })
}

func newShipper(t testing.TB, l *Log, opts ShipOptions) *Shipper {
	t.Helper()
	s, err := NewShipper(l, opts)
	if err != nil {
		t.Fatalf("NewShipper: %v", err)
	}
	return s
}

func fastShip(url string) ShipOptions {
	return ShipOptions{URL: url, Interval: 5 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
}

// TestShipDeliversInOrder ships 2500 records in batches of 1000 and then
// 10 more: the receiver gets each once, in seq order, in batches whose
// headers match their lines, and one Verifier checks the chain across all
// of them.
func TestShipDeliversInOrder(t *testing.T) {
	for _, d := range []Durability{Sync, Async} {
		t.Run(d.String(), func(t *testing.T) {
			rc, srv := newReceiver(t)
			l := openTest(t, vfs.NewMem(), Options{Durability: d, NodeID: "gw1", Shipping: true})
			defer closeTest(t, l)
			appendConcurrently(t, l, 5, 500)
			waitFor(t, "the committer", func() bool { return l.Stats().Head == 2500 })
			opts := fastShip(srv.URL + "/ingest?tenant=x")
			opts.Batch = 1000
			s := newShipper(t, l, opts)
			if st := s.Stats(); st.Lag != 2500 || st.Shipped != 0 {
				t.Errorf("before Run: got lag %d shipped %d, want 2500 and 0", st.Lag, st.Shipped)
			}
			runShipper(t, s)
			waitShipped(t, s, 2500)
			for i := range 10 {
				l.Append(activity(i))
			}
			waitShipped(t, s, 2510)

			records, accepted, ids := rc.snapshot()
			wantBatches := []batchHeaders{{"gw1-1-1000", 1, 1000}, {"gw1-1001-2000", 1001, 2000}, {"gw1-2001-2500", 2001, 2500}}
			if diff := cmp.Diff(wantBatches, accepted[:3]); diff != "" {
				t.Errorf("batches (-want +got):\n%s", diff)
			}
			// The last ten may come in more than one batch, one after the
			// other.
			next := uint64(2501)
			for _, b := range accepted[3:] {
				if b.First != next {
					t.Errorf("batch %s: want it to start at %d", b.Key, next)
				}
				next = b.Last + 1
			}
			if records != 2510 || len(ids) != 2510 {
				t.Errorf("got %d records, %d ids, want 2510", records, len(ids))
			}
			if seq, hash := rc.v.Last(); seq != 2510 {
				t.Errorf("receiver's chain ends at %d, want 2510", seq)
			} else if _, head := l.Last(); hash != head {
				t.Errorf("receiver's last hash %v, want the head's %v", hash, head)
			}
			st := s.Stats()
			if st.Lag != 0 || st.OldestUnshipped != 0 || st.Records != 2510 || st.Failures != 0 || st.LastError != "" || st.LastSuccess.IsZero() {
				t.Errorf("got %+v, want no lag, 2510 records, no failure", st)
			}
			if got := l.Stats().Shipped; got != 2510 {
				t.Errorf("Log.Stats().Shipped: got %d, want 2510", got)
			}
		})
	}
}

// logBuffer is a slog handler's writer that tests can read while the
// shipper logs.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestShipOutage: the receiver answers 500, then hangs past the client's
// timeout, then asks to slow down with 429, while records keep coming;
// nothing is lost, the failures are counted and described without the
// URL's query, the token or the body, and the backlog drains after.
func TestShipOutage(t *testing.T) {
	rc, srv := newReceiver(t)
	var mu sync.Mutex
	outage := true
	rc.fault = func(n int) (int, time.Duration, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case !outage:
			return 0, 0, nil
		case n <= 5:
			return http.StatusInternalServerError, 0, nil
		case n <= 8:
			return 0, 200 * time.Millisecond, nil // the client gives up first
		default:
			return http.StatusTooManyRequests, 0, http.Header{"Retry-After": {"1"}}
		}
	}
	l := openTest(t, vfs.NewMem(), Options{NodeID: "gw", Shipping: true})
	defer closeTest(t, l)
	var logs logBuffer
	opts := fastShip(srv.URL + "/ingest?api_key=sekrit")
	opts.Batch = 100
	opts.Client = &http.Client{Timeout: 50 * time.Millisecond}
	opts.Token = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "tok-sekrit"})
	opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newShipper(t, l, opts)
	runShipper(t, s)
	var errs []string
	for i := range 500 {
		r := activity(i)
		r.Time = time.Time{} // the Log's clock: now
		l.Append(r)
		if i%50 == 0 {
			if e := s.Stats().LastError; e != "" && (len(errs) == 0 || errs[len(errs)-1] != e) {
				errs = append(errs, e)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rc.mu.Lock()
		n := rc.requests
		rc.mu.Unlock()
		if st := s.Stats(); st.LastError != "" && (len(errs) == 0 || errs[len(errs)-1] != st.LastError) {
			errs = append(errs, st.LastError)
		}
		if n > 12 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d requests during the outage", n)
		}
		time.Sleep(time.Millisecond)
	}
	st := s.Stats()
	if st.Shipped != 0 || st.Lag != 500 || st.Failures < 12 || st.OldestUnshipped <= 0 {
		t.Errorf("during the outage: got %+v, want nothing shipped, lag 500, 12+ failures, an age", st)
	}
	mu.Lock()
	outage = false
	mu.Unlock()
	waitShipped(t, s, 500)
	records, _, ids := rc.snapshot()
	if records != 500 || len(ids) != 500 {
		t.Errorf("got %d records, %d ids, want 500", records, len(ids))
	}
	st = s.Stats()
	t.Logf("errors seen: %q; stats %+v", errs, st)
	all := strings.Join(errs, "\n") + "\n" + st.LastError + "\n" + logs.String()
	for _, secret := range []string{"sekrit", "api_key", "must not be logged", "tool_"} {
		if strings.Contains(all, secret) {
			t.Errorf("errors or logs contain %q:\n%s", secret, all)
		}
	}
	for _, want := range []string{"ingest answered 500", "ingest answered 429", "/ingest"} {
		if !strings.Contains(all, want) {
			t.Errorf("errors and logs do not mention %q:\n%s", want, all)
		}
	}
	if !strings.Contains(logs.String(), "audit shipping resumed") {
		t.Errorf("no recovery logged:\n%s", logs.String())
	}
}

// countingSource hands out tok-1, tok-2, … one per call.
type countingSource struct {
	mu sync.Mutex
	n  int
}

func (c *countingSource) Token() (*oauth2.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return &oauth2.Token{AccessToken: "tok-" + strconv.Itoa(c.n), Expiry: time.Now().Add(time.Hour)}, nil
}

func (c *countingSource) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestShip401RefreshesToken: the receiver accepts only a token newer than
// the one the shipper holds: one 401, one new token, one retry, and the
// token is kept for the next batches.
func TestShip401RefreshesToken(t *testing.T) {
	rc, srv := newReceiver(t)
	tok2, never := "tok-2", "never"
	rc.token.Store(&tok2)
	l := openTest(t, vfs.NewMem(), Options{NodeID: "gw", Shipping: true})
	defer closeTest(t, l)
	src := &countingSource{}
	opts := fastShip(srv.URL)
	opts.Batch = 10
	opts.Token = src
	s := newShipper(t, l, opts)
	for i := range 30 {
		l.Append(activity(i))
	}
	runShipper(t, s)
	waitShipped(t, s, 30)
	if n := src.calls(); n != 2 {
		t.Errorf("got %d tokens asked for, want 2", n)
	}
	rc.mu.Lock()
	requests := rc.requests
	rc.mu.Unlock()
	if st := s.Stats(); requests != 4 || st.Batches != 3 || st.Failures != 0 {
		t.Errorf("got %d requests, %+v; want 4 requests, 3 batches, no failure", requests, st)
	}

	// A token the receiver never takes: every attempt fails and asks for
	// a new one; nothing is marked shipped.
	rc.token.Store(&never)
	l.Append(activity(30))
	waitFor(t, "failures", func() bool { return s.Stats().Failures >= 3 })
	if st := s.Stats(); st.Shipped != 30 || !strings.Contains(st.LastError, "401") {
		t.Errorf("got %+v, want shipped 30 and a 401", st)
	}
	if n := src.calls(); n < 5 {
		t.Errorf("got %d tokens asked for, want a new one per attempt", n)
	}
}

// shipSome appends 1000 records to a spool in fs and ships them in batches
// of 50 until 200 are acknowledged; shipping goes on until stop.
func shipSome(t *testing.T, fs vfs.FS) (rc *receiver, l *Log, s *Shipper, stop func() error, opts ShipOptions) {
	rc, srv := newReceiver(t)
	l = openTest(t, fs, Options{NodeID: "gw", Shipping: true})
	for i := range 1000 {
		l.Append(activity(i))
	}
	opts = fastShip(srv.URL)
	opts.Batch = 50
	s = newShipper(t, l, opts)
	stop = runShipper(t, s)
	waitShipped(t, s, 200)
	return rc, l, s, stop, opts
}

// TestShipResumesAfterRestart stops the shipper and closes the Log after
// a few batches, reopens and ships the rest: every record arrives, and no
// batch after the restart repeats a record that was acknowledged before.
func TestShipResumesAfterRestart(t *testing.T) {
	fs := vfs.NewMem()
	rc, l, s, stop, opts := shipSome(t, fs)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	acked := s.Stats().Shipped
	_, before, _ := rc.snapshot()
	closeTest(t, l)

	l = openTest(t, fs, Options{Shipping: true})
	defer closeTest(t, l)
	if got := l.Stats().Shipped; got != acked {
		t.Fatalf("after reopen: shipped %d, want %d", got, acked)
	}
	for i := range 100 {
		l.Append(activity(1000 + i))
	}
	s = newShipper(t, l, opts)
	if st := s.Stats(); st.Lag != 1100-acked {
		t.Errorf("after reopen: lag %d, want %d", st.Lag, 1100-acked)
	}
	runShipper(t, s)
	waitShipped(t, s, 1100)
	records, accepted, ids := rc.snapshot()
	if records != 1100 || len(ids) != 1100 {
		t.Errorf("got %d records, %d ids, want 1100", records, len(ids))
	}
	for _, b := range accepted[len(before):] {
		if b.First <= acked {
			t.Errorf("batch %s after the restart resends records acknowledged before it (through %d)", b.Key, acked)
		}
	}
	if accepted[len(before)].First != acked+1 {
		t.Errorf("first batch after the restart starts at %d, want %d", accepted[len(before)].First, acked+1)
	}
	if seq, _ := rc.v.Last(); seq != 1100 {
		t.Errorf("receiver's chain ends at %d, want 1100", seq)
	}
}

// TestShipResumesAfterCrash crashes the filesystem while batches are
// being shipped: the recovered spool's shipped position is at least what
// was acknowledged before the crash, shipping resumes right after it, and
// the receiver ends with every record once.
func TestShipResumesAfterCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	rc, l, s, stop, opts := shipSome(t, fs)
	acked := s.Stats().Shipped
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(9, 10))})
	stop()
	closeTest(t, l)

	l = openTest(t, crashed, Options{Shipping: true})
	defer closeTest(t, l)
	resumed := l.Stats().Shipped
	if resumed < acked || resumed > 1000 {
		t.Fatalf("after the crash: shipped %d, want %d to 1000", resumed, acked)
	}
	_, before, _ := rc.snapshot()
	s = newShipper(t, l, opts)
	runShipper(t, s)
	waitShipped(t, s, 1000)
	records, accepted, ids := rc.snapshot()
	if records != 1000 || len(ids) != 1000 {
		t.Errorf("got %d records, %d ids, want 1000", records, len(ids))
	}
	if len(accepted) > len(before) && accepted[len(before)].First != resumed+1 {
		t.Errorf("first batch after the crash starts at %d, want %d", accepted[len(before)].First, resumed+1)
	}
	if err := l.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestNewShipperChecks(t *testing.T) {
	l := openTest(t, vfs.NewMem(), Options{})
	defer closeTest(t, l)
	if _, err := NewShipper(l, ShipOptions{URL: "http://x"}); !errors.Is(err, ErrNoShipping) {
		t.Errorf("without Options.Shipping: got %v, want ErrNoShipping", err)
	}
	l2 := openTest(t, vfs.NewMem(), Options{Shipping: true})
	defer closeTest(t, l2)
	for _, bad := range []string{"", "ftp://x/y", "/relative", "http://"} {
		if _, err := NewShipper(l2, ShipOptions{URL: bad}); err == nil {
			t.Errorf("URL %q: got no error", bad)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"Thu, 26 Nov 2026 00:00:10 GMT", 10 * time.Second},
		{"Wed, 25 Nov 2026 00:00:10 GMT", 0},
		{"soon", 0},
	} {
		if got := retryAfter(tc.in, now); got != tc.want {
			t.Errorf("retryAfter(%q): got %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestDescribeHidesSecrets(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"url error", &url.Error{Op: "Post", URL: "https://u:pw@ingest.example/v1?key=sekrit", Err: context.DeadlineExceeded},
			"Post https://ingest.example/v1: context deadline exceeded"},
		{"token endpoint", &oauth2.RetrieveError{Response: &http.Response{StatusCode: 401}, Body: []byte("sekrit"), ErrorCode: "invalid_client"},
			"token endpoint answered 401 invalid_client"},
		{"long", errors.New(strings.Repeat("x", 300)), strings.Repeat("x", 200) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(tc.err); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestShipBatchBytes: a batch stops at MaxBatchBytes, but always holds a
// record.
func TestShipBatchBytes(t *testing.T) {
	rc, srv := newReceiver(t)
	l := openTest(t, vfs.NewMem(), Options{NodeID: "gw", Shipping: true})
	defer closeTest(t, l)
	for i := range 6 {
		l.Append(activity(i))
	}
	var line int
	l.ScanJSON(2, func(_ uint64, b []byte) bool { line = len(b) + 1; return false }) // seq 1 has no prev_hash
	opts := fastShip(srv.URL)
	opts.MaxBatchBytes = 2*line + 10 // two records, give or take a digit
	s := newShipper(t, l, opts)
	runShipper(t, s)
	waitShipped(t, s, 6)
	_, accepted, _ := rc.snapshot()
	want := []batchHeaders{{"gw-1-2", 1, 2}, {"gw-3-4", 3, 4}, {"gw-5-6", 5, 6}}
	if diff := cmp.Diff(want, accepted); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
}

// TestShipRefusedIsKeptAndLoggedOnce: a 400 says the request is wrong, so
// it is logged as an error, but at most once a minute, and the records
// are kept and retried until the receiver takes them.
func TestShipRefusedIsKeptAndLoggedOnce(t *testing.T) {
	rc, srv := newReceiver(t)
	var refuse atomic.Bool
	refuse.Store(true)
	rc.fault = func(int) (int, time.Duration, http.Header) {
		if refuse.Load() {
			return http.StatusBadRequest, 0, nil
		}
		return 0, 0, nil
	}
	l := openTest(t, vfs.NewMem(), Options{NodeID: "gw", Shipping: true})
	defer closeTest(t, l)
	var logs logBuffer
	opts := fastShip(srv.URL)
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := newShipper(t, l, opts)
	for i := range 20 {
		l.Append(activity(i))
	}
	runShipper(t, s)
	waitFor(t, "failures", func() bool { return s.Stats().Failures >= 10 })
	refuse.Store(false)
	waitShipped(t, s, 20)
	if records, _, _ := rc.snapshot(); records != 20 {
		t.Errorf("got %d records, want 20", records)
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("got %d errors logged, want 1:\n%s", n, logs.String())
	}
	if st := s.Stats(); !strings.Contains(st.LastError, "400 Bad Request") {
		t.Errorf("LastError: got %q, want the 400", st.LastError)
	}
}

// BenchmarkShip measures the shipper's throughput, records read, gzipped,
// posted and acknowledged, against a receiver that only decompresses.
func BenchmarkShip(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err == nil {
			io.Copy(io.Discard, zr)
		}
	}))
	defer srv.Close()
	l := openTest(b, vfs.NewMem(), Options{Durability: Async, NodeID: "gw", Shipping: true})
	defer closeTest(b, l)
	for range b.N {
		l.Append(activity(0))
	}
	var n int64
	l.ScanJSON(2, func(_ uint64, line []byte) bool { n = int64(len(line)); return false })
	b.SetBytes(n)
	s := newShipper(b, l, ShipOptions{URL: srv.URL, Interval: time.Millisecond})
	waitFor(b, "the committer", func() bool { return l.Stats().Head == uint64(b.N) })
	b.ReportAllocs()
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for s.Stats().Shipped < uint64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	cancel()
	<-done
}

// TestClientCredentials: the source asks the token endpoint on every call
// (so a token a 401 rejected is not handed back), and a refusal of the
// token endpoint reaches ShipStats without its body.
func TestClientCredentials(t *testing.T) {
	var calls atomic.Int32
	var refuse atomic.Bool
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "gw-client" || secret != "gw-secret" || r.FormValue("grant_type") != "client_credentials" {
			t.Errorf("token request: got client %q, grant %q", id, r.FormValue("grant_type"))
		}
		if refuse.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client","error_description":"sekrit detail"}`)
			return
		}
		n := calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"bearer","expires_in":3600}`, n)
	}))
	defer tokenSrv.Close()
	src := ClientCredentials(&clientcredentials.Config{ClientID: "gw-client", ClientSecret: "gw-secret", TokenURL: tokenSrv.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader}, nil)
	var got []string
	for range 2 {
		tok, err := src.Token()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tok.AccessToken)
	}
	if diff := cmp.Diff([]string{"tok-1", "tok-2"}, got); diff != "" {
		t.Errorf("tokens (-want +got):\n%s", diff)
	}

	refuse.Store(true)
	_, srv := newReceiver(t)
	l := openTest(t, vfs.NewMem(), Options{Shipping: true})
	defer closeTest(t, l)
	l.Append(activity(0))
	opts := fastShip(srv.URL)
	opts.Token = src
	s := newShipper(t, l, opts)
	runShipper(t, s)
	waitFor(t, "a failure", func() bool { return s.Stats().Failures > 0 })
	if st := s.Stats(); st.LastError != "cannot get token: token endpoint answered 401 invalid_client" {
		t.Errorf("LastError: got %q", st.LastError)
	}
}
