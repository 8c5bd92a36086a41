package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgw/mcpgw/access"
)

// The approvals webhook (approvals.webhook): every new request and
// decision is POSTed, as one JSON object, so that chat or ticketing can
// be wired in:
//
//	{"event":"requested","request_id":"apr_…","grant_id":"","app":"…",
//	 "user":"…","tools":["…"],"arguments_hash":"…","actor":"…",
//	 "comment":"…","level":1,"time":"2026-11-26T01:02:03Z",
//	 "approval_url":"https://…/approvals/apr_…"}
//
// Delivery is best effort and never holds an approval: events wait in a
// bounded queue for one sender goroutine, which tries each up to three
// times (1 s, then 2 s apart, 10 s each) and then logs the loss; a full
// queue drops the event, counted and logged. The audit log, not the
// webhook, is the record. The URL often carries a secret and is never
// logged.

const (
	webhookQueue    = 1024
	webhookAttempts = 3
	webhookTimeout  = 10 * time.Second
)

// webhookEvent is the document POSTed for an access.Event.
type webhookEvent struct {
	Event         access.EventKind `json:"event"`
	RequestID     string           `json:"request_id"`
	GrantID       string           `json:"grant_id,omitempty"`
	App           string           `json:"app"`
	User          string           `json:"user"`
	Tools         []string         `json:"tools"`
	ArgumentsHash string           `json:"arguments_hash,omitempty"`
	Actor         string           `json:"actor,omitempty"`
	Comment       string           `json:"comment,omitempty"`
	Level         int              `json:"level,omitempty"`
	Time          time.Time        `json:"time"`
	ApprovalURL   string           `json:"approval_url,omitempty"`
}

// webhook sends events to approvals.webhook. notify is safe for
// concurrent use; close stops the sender after what is queued (bounded).
type webhook struct {
	url     string
	client  *http.Client
	log     *slog.Logger
	queue   chan []byte
	done    chan struct{}
	dropped atomic.Uint64
	mu      sync.RWMutex // guards closed and the queue's closing
	closed  bool
	backoff time.Duration // between attempts, doubled each time; tests shorten it
}

func startWebhook(url string, log *slog.Logger) *webhook {
	w := &webhook{
		url:     url,
		client:  &http.Client{Timeout: webhookTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		log:     log.With("component", "approvals-webhook"),
		queue:   make(chan []byte, webhookQueue),
		done:    make(chan struct{}),
		backoff: time.Second,
	}
	go w.run()
	return w
}

// notify queues ev; approvalURL is where approvers see the request.
func (w *webhook) notify(ev access.Event, approvalURL string) {
	body, err := json.Marshal(webhookEvent{
		Event: ev.Kind, RequestID: ev.RequestID, GrantID: ev.GrantID, App: ev.App, User: ev.User,
		Tools: ev.Tools, ArgumentsHash: ev.ArgumentsHash, Actor: ev.Actor, Comment: ev.Comment,
		Level: ev.Level, Time: ev.Time.UTC(), ApprovalURL: approvalURL,
	})
	if err != nil {
		panic("BUG: appliance: cannot encode a webhook event: " + err.Error())
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return
	}
	select {
	case w.queue <- body:
	default:
		n := w.dropped.Add(1)
		w.log.Warn("approvals webhook queue full; event dropped (the audit log has it)", "event", string(ev.Kind), "request", ev.RequestID, "dropped", n)
	}
}

func (w *webhook) run() {
	defer close(w.done)
	for body := range w.queue {
		var err error
		wait := w.backoff
		for attempt := 1; attempt <= webhookAttempts; attempt++ {
			if err = w.post(body); err == nil {
				break
			}
			if attempt < webhookAttempts {
				time.Sleep(wait)
				wait *= 2
			}
		}
		if err != nil {
			w.log.Warn("approvals webhook failed; event not delivered (the audit log has it)", "error", err.Error(), "attempts", webhookAttempts)
		}
	}
}

// post sends one event; any 2xx is success. Errors never name the URL.
func (w *webhook) post(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return errors.New("cannot build the request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mcpgw/"+Version())
	resp, err := w.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return errors.New("timed out")
		}
		return errors.New("the webhook did not answer")
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errors.New("the webhook answered HTTP " + strconv.Itoa(resp.StatusCode))
	}
	return nil
}

// close delivers what is queued, waiting at most grace.
func (w *webhook) close(grace time.Duration) {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
	case <-time.After(grace):
		w.log.Warn("approvals webhook: events still queued at shutdown were not delivered", "queued", len(w.queue))
	}
}
