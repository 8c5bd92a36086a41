package identity

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	b := newTokenBucket(30, 3) // one token every 2 s
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i := range 3 {
		if ok, _ := b.allow(t0); !ok {
			t.Fatalf("take %d of the burst: refused", i+1)
		}
	}
	ok, wait := b.allow(t0)
	if ok || wait != 2*time.Second {
		t.Fatalf("past the burst: got %v, wait %v; want refused, 2s", ok, wait)
	}
	if ok, _ := b.allow(t0.Add(time.Second)); ok {
		t.Error("half a token later: allowed")
	}
	if ok, _ := b.allow(t0.Add(2 * time.Second)); !ok {
		t.Error("a token later: refused")
	}
	if ok, _ := b.allow(t0.Add(time.Hour)); !ok {
		t.Error("an hour later: refused")
	}
	for i := range 2 {
		if ok, _ := b.allow(t0.Add(time.Hour)); !ok {
			t.Errorf("an hour later, take %d: refused (the bucket refills to its burst)", i+2)
		}
	}
	if ok, _ := b.allow(t0.Add(time.Hour)); ok {
		t.Error("an hour later, past the burst: allowed (the bucket must not hold more than its burst)")
	}
	if ok, _ := b.allow(t0); ok {
		t.Error("a clock that went back: allowed a token it did not earn")
	}
}

// A loop of registrations is answered 429 with Retry-After once the burst
// is spent, and registering works again after the wait.
func TestRegistrationRateLimit(t *testing.T) {
	e := newASEnv(t)
	body := `{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`
	post := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/oauth/register", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		return e.do(r)
	}
	for i := range registrationBurst {
		if w := post(); w.Code != http.StatusCreated {
			t.Fatalf("registration %d: got %d %s, want 201", i+1, w.Code, w.Body)
		}
	}
	w := post()
	var oe struct {
		Error string `json:"error"`
	}
	if w.Code != http.StatusTooManyRequests || json.Unmarshal(w.Body.Bytes(), &oe) != nil || oe.Error != "temporarily_unavailable" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("past the burst: got %d %q %s, want 429 temporarily_unavailable with Retry-After", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	e.clock.ns.Add(int64(time.Minute / registrationsPerMinute))
	if w := post(); w.Code != http.StatusCreated {
		t.Errorf("after the wait: got %d %s, want 201", w.Code, w.Body)
	}
}
