package main

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	for us := uint64(0); us < 1<<22; us += 1 + us/97 {
		i := bucketOf(us)
		if lo, hi := lowerBound(i), lowerBound(i+1); us < lo || us >= hi {
			t.Fatalf("%d µs in bucket %d = [%d, %d)", us, i, lo, hi)
		}
	}
}

func TestHistogramQuantile(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * 10 * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}} {
		got := h.quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d > 0.02 || d < -0.02 {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
}
