package bench

import (
	"math"
	"math/bits"
)

// The histogram is log-linear, as HdrHistogram is with 2 significant
// digits: values below 2·histSub microseconds have a bucket each; above,
// every power of two is split into histSub equal buckets, so a bucket is
// never wider than 1/histSub (0.78%) of the values in it. Values up to
// 2^38 µs (76 hours) are kept; larger ones count in the last bucket (Max
// stays exact).
//
//	value (µs):  0 1 2 … 255 │ 256-257 … 510-511 │ 512-515 … 1020-1023 │ …
//	bucket:      0 1 2 … 255 │ 256     … 383     │ 384     … 511       │ …
//	             width 1     │ width 2           │ width 4             │
const (
	histSubBits  = 7
	histSub      = 1 << histSubBits
	histMaxShift = 30
	histBuckets  = (histMaxShift + 2) * histSub
)

// Histogram counts latencies in microseconds with about 1% precision from
// 1 µs to beyond 60 s, in a fixed 32 KiB array: Record never allocates. It
// is not safe for concurrent use; keep one per worker and Merge them.
type Histogram struct {
	counts [histBuckets]int64
	total  int64
	max    int64
}

// histBucket is the index of the bucket holding v.
func histBucket(v int64) int {
	if v < 2*histSub {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1
	if shift > histMaxShift {
		return histBuckets - 1
	}
	return (shift+1)*histSub + int(v>>shift) - histSub
}

// histUpper is the largest value bucket i holds.
func histUpper(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	shift := i/histSub - 1
	sub := int64(i%histSub + histSub)
	return (sub+1)<<shift - 1
}

// Record counts one latency of us microseconds (negative counts as 0).
func (h *Histogram) Record(us int64) {
	h.counts[histBucket(us)]++
	h.total++
	if us > h.max {
		h.max = us
	}
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count is the number of values recorded.
func (h *Histogram) Count() int64 { return h.total }

// Max is the largest value recorded, exactly.
func (h *Histogram) Max() int64 { return h.max }

// Quantile returns the value at quantile q (0 < q ≤ 1) by the nearest-rank
// method: the smallest recorded value v such that at least q of the values
// are ≤ v, up to the bucket's precision (the bucket's largest value, but
// never more than Max). 0 when h is empty.
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(histUpper(i), h.max)
		}
	}
	return h.max
}

// Percentiles summarizes h in microseconds.
func (h *Histogram) Percentiles() Percentiles {
	return Percentiles{
		P50:  float64(h.Quantile(0.50)),
		P90:  float64(h.Quantile(0.90)),
		P99:  float64(h.Quantile(0.99)),
		P999: float64(h.Quantile(0.999)),
		Max:  float64(h.max),
	}
}

// Buckets lists the non-empty buckets as (largest value in µs, count)
// pairs in increasing order, the form of Result.Histogram. The returned
// slice is new.
func (h *Histogram) Buckets() [][2]int64 {
	var out [][2]int64
	for i, c := range h.counts {
		if c > 0 {
			out = append(out, [2]int64{histUpper(i), c})
		}
	}
	return out
}
