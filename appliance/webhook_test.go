package appliance

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/access"
)

func TestWebhookDeliversAndRetries(t *testing.T) {
	var mu sync.Mutex
	var got []webhookEvent
	fails := 2 // the first event fails twice, then goes through
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var ev webhookEvent
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &ev) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		got = append(got, ev)
	}))
	defer srv.Close()
	var logs strings.Builder
	w := startWebhook(srv.URL+"/hook?secret=s3cr3t", slog.New(slog.NewTextHandler(&logs, nil)))
	w.backoff = time.Millisecond
	at := time.Date(2026, 11, 26, 1, 2, 3, 0, time.UTC)
	w.notify(access.Event{Kind: access.EventRequested, RequestID: "apr_1", App: "ops", User: "alice", Tools: []string{"delete_items"}, Time: at}, "https://gw/approvals/apr_1")
	w.notify(access.Event{Kind: access.EventApproved, RequestID: "apr_1", App: "ops", User: "alice", Actor: "sam", Level: 1, Time: at}, "")
	w.close(5 * time.Second)
	w.notify(access.Event{Kind: access.EventDenied}, "") // after close: dropped, no panic

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Event != access.EventRequested || got[0].ApprovalURL != "https://gw/approvals/apr_1" ||
		got[1].Actor != "sam" || got[1].Level != 1 || !got[0].Time.Equal(at) {
		t.Errorf("delivered: got %+v", got)
	}
	if strings.Contains(logs.String(), "s3cr3t") {
		t.Errorf("the webhook URL reached the log:\n%s", logs.String())
	}
}

func TestWebhookGivesUpAndSaysSo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer srv.Close()
	var logs strings.Builder
	w := startWebhook(srv.URL+"/token-in-path-XYZ", slog.New(slog.NewTextHandler(&logs, nil)))
	w.backoff = time.Millisecond
	w.notify(access.Event{Kind: access.EventRequested, RequestID: "apr_2"}, "")
	w.close(5 * time.Second)
	if !strings.Contains(logs.String(), "HTTP 500") || !strings.Contains(logs.String(), "not delivered") {
		t.Errorf("log: got\n%s\nwant the failure after the attempts", logs.String())
	}
	if strings.Contains(logs.String(), "XYZ") {
		t.Errorf("the webhook URL reached the log:\n%s", logs.String())
	}
}
