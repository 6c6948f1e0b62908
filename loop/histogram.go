package loop

import (
	"math/bits"
	"time"
)

// Histogram counts durations in power-of-two microsecond buckets: bucket
// i holds durations in [2^(i-1), 2^i) µs, bucket 0 those under 1 µs, the
// last everything longer. Recording is a few instructions, so it can sit
// on every request. Not safe for concurrent use: each is owned by the
// goroutine that records into it (the loop).
type Histogram struct {
	Counts [HistBuckets]uint64
	Sum    time.Duration
	Max    time.Duration
}

// HistBuckets covers 1 µs … ~16 s.
const HistBuckets = 26

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	us := uint64(d / time.Microsecond)
	i := bits.Len64(us)
	if i >= HistBuckets {
		i = HistBuckets - 1
	}
	h.Counts[i]++
	h.Sum += d
	if d > h.Max {
		h.Max = d
	}
}

// Total is the number of recorded durations.
func (h *Histogram) Total() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// UpperBound is the exclusive upper edge of bucket i.
func UpperBound(i int) time.Duration {
	if i >= HistBuckets-1 {
		return time.Duration(1<<62 - 1)
	}
	return time.Duration(uint64(1)<<i) * time.Microsecond
}

// Quantile estimates the q-quantile (0 < q <= 1) as the upper edge of the
// bucket that holds it.
func (h *Histogram) Quantile(q float64) time.Duration {
	total := h.Total()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			return min(UpperBound(i), h.Max)
		}
	}
	return h.Max
}
