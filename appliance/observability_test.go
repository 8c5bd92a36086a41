package appliance

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestProfilingUploads points startProfiling at a local server standing in
// for pyroscope's ingest endpoint and waits for profiles to arrive, tagged,
// with the address's credentials sent as basic auth and logged nowhere.
func TestProfilingUploads(t *testing.T) {
	type upload struct {
		path, name, user, password string
	}
	var mu sync.Mutex
	var uploads []upload
	ingest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, password, _ := r.BasicAuth()
		mu.Lock()
		uploads = append(uploads, upload{r.URL.Path, r.URL.Query().Get("name"), user, password})
		mu.Unlock()
	}))
	defer ingest.Close()

	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	addr := strings.Replace(ingest.URL, "http://", "http://profiler:s3cret-pass@", 1) + "/pyro"
	stop, err := startProfilingEvery(ObservabilityConfig{Pyroscope: PyroscopeConfig{ServerAddress: addr, ApplicationName: "mcpgw-test"}},
		log, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var got []upload
	for {
		mu.Lock()
		got = append(got[:0], uploads...)
		mu.Unlock()
		if len(got) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if len(got) == 0 {
		t.Fatalf("no profile uploaded within 10 s; log:\n%s", logs.String())
	}
	for _, u := range got {
		if u.path != "/pyro/ingest" {
			t.Errorf("uploaded to %q, want /pyro/ingest", u.path)
		}
		if !strings.HasPrefix(u.name, "mcpgw-test{") || !strings.Contains(u.name, "node=") || !strings.Contains(u.name, "version=") {
			t.Errorf("profile name %q lacks the application, node or version", u.name)
		}
		if u.user != "profiler" || u.password != "s3cret-pass" {
			t.Errorf("basic auth %q:%q, want the address's credentials", u.user, u.password)
		}
	}
	if text := logs.String(); strings.Contains(text, "s3cret-pass") || strings.Contains(text, "profiler:") {
		t.Errorf("the log shows the address's credentials:\n%s", text)
	} else if !strings.Contains(text, "continuous profiling on") {
		t.Errorf("no start line in the log:\n%s", text)
	}
}

func TestProfilingOffAndBadAddress(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	stop, err := startProfiling(ObservabilityConfig{}, log)
	if err != nil || stop == nil {
		t.Fatalf("no server address: got %v, want a no-op stop", err)
	}
	stop()
	_, err = startProfiling(ObservabilityConfig{Pyroscope: PyroscopeConfig{ServerAddress: "ftp://user:hunter2-pw@host/"}}, log)
	if err == nil {
		t.Fatal("an ftp address was accepted")
	}
	if strings.Contains(err.Error(), "hunter2-pw") {
		t.Errorf("the error shows the address's password: %v", err)
	}
}

// lockedBuffer is a bytes.Buffer that goroutines may write at once.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
