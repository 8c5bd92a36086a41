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

// Every request of a session writes its shard of openedSessions (the read
// lock, the hit count): with 64 bytes or more of padding after its fields,
// no two shards' fields share a cache line however the array is aligned.
func TestSessionShardPadding(t *testing.T) {
	var sh sessionShard
	fields := unsafe.Offsetof(sh.misses) + unsafe.Sizeof(sh.misses)
	if pad := unsafe.Sizeof(sh) - fields; pad < 64 {
		t.Errorf("sessionShard has %d bytes of padding after %d of fields, want at least 64", pad, fields)
	}
}
