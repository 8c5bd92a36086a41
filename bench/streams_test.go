package bench

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestHoldStreams(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := make(chan net.Addr, 1)
	go func() {
		_ = Serve(ctx, BackendConfig{Listen: "127.0.0.1:0", Tools: 1, Sessions: true}, func(a net.Addr) { addr <- a })
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a.String() + "/mcp"
	case <-time.After(5 * time.Second):
		t.Fatal("backend did not start")
	}

	holdCtx, stop := context.WithCancel(ctx)
	var held *StreamsResult
	res, err := HoldStreams(holdCtx, StreamsConfig{URL: url, Streams: 20, Parallel: 4}, func(r *StreamsResult) {
		held = r
		time.AfterFunc(200*time.Millisecond, stop)
	})
	if err != nil {
		t.Fatal(err)
	}
	if held == nil || held.Opened != 20 || held.Failed != 0 {
		t.Fatalf("when held: got %+v, want 20 open, 0 failed", held)
	}
	if res.Closed != 0 {
		t.Errorf("the backend closed %d streams while they were held, want 0", res.Closed)
	}

	// An unreachable gateway: every stream fails, with the first error kept.
	res, err = HoldStreams(ctx, StreamsConfig{URL: "http://127.0.0.1:1/mcp", Streams: 2}, func(*StreamsResult) { cancel() })
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 2 || res.FirstErr == "" {
		t.Errorf("unreachable URL: got %+v, want 2 failed with an error", res)
	}
}
