package proxy

import (
	"testing"
	"unsafe"
)

// An idle stream's relay must stay in the allocator's 2 KiB size class:
// the next class is 2,304 bytes, 2.5 MiB more for the 10,000 idle streams
// of issue 3's memory target, which a 72-byte scanner field once cost.
func TestRelayFitsItsSizeClass(t *testing.T) {
	if got := unsafe.Sizeof(relay{}); got > 2048 {
		t.Errorf("relay is %d bytes, over the 2,048-byte size class", got)
	}
}
