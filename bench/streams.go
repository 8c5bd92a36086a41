package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// StreamsConfig describes an idle-streams run: many clients that each hold
// a standalone GET stream (MCP-REQUIREMENTS.md 1.3) open and send nothing,
// the load an agent fleet puts on a gateway between calls.
type StreamsConfig struct {
	URL   string
	Token string
	// Streams is how many sessions, each with one GET stream, to open.
	Streams int
	// Parallel bounds how many are being opened at once (default 64).
	Parallel int
	// Progress, when not nil, receives a line about once a second while
	// streams open.
	Progress func(line string)
}

// StreamsResult is what an idle-streams run opened.
type StreamsResult struct {
	Opened   int           `json:"opened"`
	Failed   int           `json:"failed"`
	FirstErr string        `json:"first_error,omitempty"`
	OpenTime time.Duration `json:"open_ns"`
	// Closed counts streams the server ended while they were held.
	Closed int64 `json:"closed"`
}

// HoldStreams opens cfg.Streams legacy sessions with one GET stream each,
// calls held once they are all open (or failed), and keeps them open until
// ctx ends. Each stream is a raw connection whose response headers were
// read; what the server sends afterwards (keep-alive comments) is drained.
func HoldStreams(ctx context.Context, cfg StreamsConfig, held func(*StreamsResult)) (*StreamsResult, error) {
	if cfg.Streams <= 0 {
		return nil, errors.New("bench: Streams must be positive")
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 64
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "http" {
		return nil, errors.New("bench: idle streams need a plain http URL")
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Parallel}}
	defer hc.CloseIdleConnections()

	res := &StreamsResult{}
	var mu sync.Mutex // guards res.Opened, res.Failed, res.FirstErr and conns
	var conns []net.Conn
	var closed atomic.Int64
	var drainers sync.WaitGroup
	start := time.Now()

	jobs := make(chan struct{})
	var openers sync.WaitGroup
	for range cfg.Parallel {
		openers.Add(1)
		go func() {
			defer openers.Done()
			for range jobs {
				conn, br, err := openStream(ctx, hc, u, cfg.Token)
				mu.Lock()
				if err != nil {
					res.Failed++
					if res.FirstErr == "" {
						res.FirstErr = err.Error()
					}
					mu.Unlock()
					continue
				}
				res.Opened++
				conns = append(conns, conn)
				mu.Unlock()
				drainers.Add(1)
				go func() {
					defer drainers.Done()
					var buf [512]byte
					for {
						if _, err := br.Read(buf[:]); err != nil {
							if ctx.Err() == nil {
								closed.Add(1)
							}
							return
						}
					}
				}()
			}
		}()
	}
	stopProgress := make(chan struct{})
	if cfg.Progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					mu.Lock()
					cfg.Progress(fmt.Sprintf("%d/%d streams open, %d failed", res.Opened, cfg.Streams, res.Failed))
					mu.Unlock()
				case <-stopProgress:
					return
				}
			}
		}()
	}
send:
	for range cfg.Streams {
		select {
		case jobs <- struct{}{}:
		case <-ctx.Done():
			break send
		}
	}
	close(jobs)
	openers.Wait()
	close(stopProgress)
	res.OpenTime = time.Since(start)
	if held != nil {
		snapshot := *res
		snapshot.Closed = closed.Load()
		held(&snapshot)
	}
	<-ctx.Done()
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	drainers.Wait()
	res.Closed = closed.Load()
	return res, nil
}

// openStream initializes a session and opens its GET stream on a
// connection of its own.
func openStream(ctx context.Context, hc *http.Client, u *url.URL, token string) (net.Conn, *bufio.Reader, error) {
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},` + clientName + `}}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("initialize: %w", err)
	}
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		return nil, nil, fmt.Errorf("initialize: HTTP %d, session id %t", resp.StatusCode, sid != "")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	path := u.RequestURI()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%sMcp-Session-Id: %s\r\nMcp-Protocol-Version: 2025-11-25\r\n\r\n", path, u.Host, auth, sid)
	br := bufio.NewReaderSize(conn, 1024)
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	gr, err := http.ReadResponse(br, nil)
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("GET: %w", err)
	}
	if gr.StatusCode != http.StatusOK || !strings.HasPrefix(gr.Header.Get("Content-Type"), "text/event-stream") {
		conn.Close()
		return nil, nil, fmt.Errorf("GET: HTTP %d %q", gr.StatusCode, gr.Header.Get("Content-Type"))
	}
	return conn, br, nil
}
