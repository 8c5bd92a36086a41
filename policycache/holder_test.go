package policycache

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// generationApps returns a policy in which "op" is allowed by a rule named
// after the generation, so a reader can tell which snapshot decided.
func generationApps(gen int) []AppSpec {
	return []AppSpec{{Name: "app", Rules: []RuleSpec{
		{Name: "gen-" + strconv.Itoa(gen), Groups: []string{"g"}, Tools: []string{"op", "op_.*", "re_[0-9]+x"}},
	}}}
}

func TestHolderSwapUnderConcurrentDecide(t *testing.T) {
	var h Holder
	if h.Load() != nil {
		t.Fatalf("zero Holder: got a Policy, want nil")
	}
	h.Store(mustCompileOwned(t, generationApps(0)))
	const readers, swaps = 4, 20
	var (
		wg      sync.WaitGroup
		stop    atomic.Bool
		lastGen atomic.Int64
	)
	for r := range readers {
		wg.Go(func() {
			s := NewSubject("u"+strconv.Itoa(r), []string{"g"}, false)
			names := [][]byte{[]byte("op"), []byte("op_x"), []byte("re_12x")}
			seen := int64(0)
			for i := 0; !stop.Load(); i++ {
				// Generations only move forward: one Load gives one
				// snapshot, never an older one than already seen.
				floor := lastGen.Load()
				d := h.Load().App("app").Decide(&s, KindTool, names[i%len(names)], nil)
				gen, err := strconv.ParseInt(d.Rule[len("gen-"):], 10, 64)
				if d.Effect != Allow || err != nil {
					t.Errorf("got %+v, want allow by a gen-N rule", d)
					return
				}
				if gen < floor || gen < seen {
					t.Errorf("got generation %d after %d", gen, max(floor, seen))
					return
				}
				seen = gen
			}
		})
	}
	for gen := 1; gen <= swaps; gen++ {
		h.Store(mustCompileOwned(t, generationApps(gen)))
		lastGen.Store(int64(gen))
	}
	stop.Store(true)
	wg.Wait()
	h.Store(h.Load()) // storing the current Policy again must not close it
	s := NewSubject("u", []string{"g"}, false)
	if got := h.Load().App("app").Decide(&s, KindTool, []byte("op"), nil); got.Rule != "gen-"+strconv.Itoa(swaps) {
		t.Errorf("got %+v, want the last generation", got)
	}
	if old := h.Swap(nil); old == nil || old.cache.closed.Load() {
		t.Errorf("Swap: got %v, want the open current Policy", old)
	} else {
		old.Close()
	}
}

// mustCompileOwned compiles a Policy whose lifetime a Holder manages.
func mustCompileOwned(t *testing.T, apps []AppSpec) *Policy {
	t.Helper()
	p, err := Compile(apps, Options{CacheEntries: 1024})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	setCaching(p, true)
	return p
}
