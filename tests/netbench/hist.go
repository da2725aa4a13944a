package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram counts latencies in log-linear buckets: 64 sub-buckets per power
// of two of microseconds, so a percentile read from it is within 1.6 % of
// the true value, and merging rounds is adding counts.
type histogram struct {
	counts [64 * 40]uint64
	n      uint64
}

const subBuckets = 64

func bucketOf(us uint64) int {
	if us < subBuckets {
		return int(us)
	}
	exp := bits.Len64(us) - 7 // us >> exp lies in [64, 128)
	return (exp+1)*subBuckets + int(us>>uint(exp)) - subBuckets
}

// lowerBound is the smallest value of bucket i, in microseconds.
func lowerBound(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	exp := i/subBuckets - 1
	return uint64(i%subBuckets+subBuckets) << uint(exp)
}

func (h *histogram) record(d time.Duration) {
	us := uint64(max(d.Microseconds(), 0))
	i := min(bucketOf(us), len(h.counts)-1)
	h.counts[i]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the q-quantile (0 < q ≤ 1) as the middle of its bucket;
// 0 for an empty histogram.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := lowerBound(i), lowerBound(i+1)
			return time.Duration((lo+hi)/2) * time.Microsecond
		}
	}
	return 0
}
