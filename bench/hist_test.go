package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// nearestRank is the reference quantile of a sorted slice.
func nearestRank(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// within reports whether got is the reference want up to the histogram's
// precision: never below it, and above it by less than a bucket's width.
func within(got, want int64) bool {
	return got >= want && float64(got-want) <= float64(want)/histSub
}

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for v := int64(0); v < 1<<20; v++ {
		i := histBucket(v)
		if i != prev && i != prev+1 {
			t.Fatalf("bucket of %d is %d after %d: not contiguous", v, i, prev)
		}
		if up := histUpper(i); v > up {
			t.Fatalf("value %d above its bucket's upper bound %d", v, up)
		}
		if i > 0 && v <= histUpper(i-1) {
			t.Fatalf("value %d not above the previous bucket's upper bound %d", v, histUpper(i-1))
		}
		prev = i
	}
	for _, v := range []int64{60e6, 1 << 37, 1<<38 - 1} {
		i := histBucket(v)
		if i >= histBuckets-1 && v < 1<<38-1 {
			t.Errorf("%d µs lands in the overflow bucket", v)
		}
		if up := histUpper(i); !within(up, v) {
			t.Errorf("%d µs: bucket upper %d, beyond 1/%d", v, up, histSub)
		}
	}
	if i := histBucket(math.MaxInt64); i != histBuckets-1 {
		t.Errorf("MaxInt64 in bucket %d, want the last", i)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []int64
	}{
		{"one", []int64{42}},
		{"exact range", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"two modes", []int64{100, 100, 100, 100, 100, 100, 100, 100, 100, 5000}},
		{"wide", []int64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 60000000}},
		{"zero", []int64{0, 0, 0}},
		{"same", []int64{777777, 777777, 777777, 777777}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkQuantiles(t, tc.values)
		})
	}
}

func TestHistogramQuantilesRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		n := 1 + rng.IntN(5000)
		values := make([]int64, n)
		for i := range values {
			switch round % 3 {
			case 0: // log-uniform from 1 µs to about 60 s
				values[i] = int64(math.Exp(rng.Float64() * math.Log(60e6)))
			case 1: // a latency-like body with a long tail
				values[i] = int64(200 + rng.ExpFloat64()*300)
				if rng.IntN(100) == 0 {
					values[i] *= 50
				}
			default:
				values[i] = rng.Int64N(1 << 30)
			}
		}
		checkQuantiles(t, values)
	}
}

func checkQuantiles(t *testing.T, values []int64) {
	t.Helper()
	var h Histogram
	for _, v := range values {
		h.Record(v)
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	if h.Count() != int64(len(values)) {
		t.Fatalf("got count %d, want %d", h.Count(), len(values))
	}
	if h.Max() != sorted[len(sorted)-1] {
		t.Errorf("got max %d, want %d", h.Max(), sorted[len(sorted)-1])
	}
	for _, q := range []float64{0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1} {
		if got, want := h.Quantile(q), nearestRank(sorted, q); !within(got, want) {
			t.Errorf("n=%d q=%v: got %d, want %d (within 1/%d)", len(values), q, got, want, histSub)
		}
	}
	var sum int64
	for _, b := range h.Buckets() {
		sum += b[1]
	}
	if sum != int64(len(values)) {
		t.Errorf("buckets hold %d values, want %d", sum, len(values))
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for v := int64(1); v <= 10000; v++ {
		if v%3 == 0 {
			a.Record(v * 7)
		} else {
			b.Record(v * 7)
		}
		all.Record(v * 7)
	}
	a.Merge(&b)
	if a != all {
		t.Errorf("merged histogram differs from the one that saw every value")
	}
	a.Reset()
	if a.Count() != 0 || a.Quantile(0.5) != 0 || a.Buckets() != nil {
		t.Errorf("Reset left count %d", a.Count())
	}
}

func TestHistogramRecordDoesNotAllocate(t *testing.T) {
	var h Histogram
	v := int64(1)
	if n := testing.AllocsPerRun(1000, func() { h.Record(v); v = v*3 + 1 }); n != 0 {
		t.Errorf("got %v allocs per Record, want 0", n)
	}
}
