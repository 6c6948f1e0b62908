package loop

import (
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	var h Histogram
	for i := 0; i < 90; i++ {
		h.Record(3 * time.Microsecond) // bucket [2,4)
	}
	for i := 0; i < 10; i++ {
		h.Record(700 * time.Microsecond) // bucket [512,1024)
	}
	h.Record(0)
	if got := h.Total(); got != 101 {
		t.Fatalf("total %d", got)
	}
	if q := h.Quantile(0.5); q != 4*time.Microsecond {
		t.Fatalf("p50 %v, want 4µs", q)
	}
	if q := h.Quantile(0.99); q != 700*time.Microsecond {
		t.Fatalf("p99 %v, want 700µs (capped at max)", q)
	}
	if h.Counts[0] != 1 || h.Counts[2] != 90 || h.Counts[10] != 10 {
		t.Fatalf("buckets %v", h.Counts)
	}
	h.Record(time.Hour)
	if h.Counts[HistBuckets-1] != 1 || h.Max != time.Hour {
		t.Fatalf("overflow bucket %v max %v", h.Counts[HistBuckets-1], h.Max)
	}
}
