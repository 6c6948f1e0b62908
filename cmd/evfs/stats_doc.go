package main

// The statistics document: what the control socket answers to "stats",
// what `evfs stats --json` prints, and what `evfs stats` renders. The
// schema is documented in docs/STATS.md; a change to a field's name or
// type is a new schema_version.

import (
	"os"
	"time"

	"evfs/fs"
	"evfs/loop"
)

// statsSchemaVersion is the document's schema_version.
const statsSchemaVersion = 1

type statsDoc struct {
	SchemaVersion  int     `json:"schema_version"`
	EvfsVersion    string  `json:"evfs_version"`
	PID            int     `json:"pid"`
	Mountpoint     string  `json:"mountpoint"`
	Backing        string  `json:"backing"`
	Backend        string  `json:"backend"`
	Time           string  `json:"time"` // RFC 3339, UTC, nanoseconds
	UptimeSeconds  float64 `json:"uptime_seconds"`
	StallThreshold float64 `json:"stall_threshold_seconds"` // 0: detector off

	Loop         statsLoop    `json:"loop"`
	BackendStats statsBackend `json:"backend_stats"`
	Tables       statsTables  `json:"tables"`
	// OrderedIO counts READs and WRITEs that waited for an earlier
	// overlapping one (fs/ioorder.go).
	OrderedIO uint64 `json:"ordered_io"`

	// LatencyBounds are the exclusive upper edges, in seconds, of the
	// latency buckets but the last, which has no upper edge: every
	// ops[].latency.buckets has one entry more than this.
	LatencyBounds []float64 `json:"latency_bucket_bounds_seconds"`
	Ops           []statsOp `json:"ops"`
}

type statsLoop struct {
	Events             uint64  `json:"events"`
	Posts              uint64  `json:"posts"`
	Wakes              uint64  `json:"wakes"`
	Waits              uint64  `json:"waits"`
	Spins              uint64  `json:"spins"`
	ShortSpins         uint64  `json:"short_spins"`
	Moves              uint64  `json:"moves"`
	Polls              uint64  `json:"polls"`
	Submitted          uint64  `json:"submitted"`
	Completed          uint64  `json:"completed"`
	UnknownCompletions uint64  `json:"unknown_completions"`
	InFlight           int     `json:"in_flight"`
	QueueDepth         int     `json:"queue_depth"`
	BusySeconds        float64 `json:"busy_seconds"`
	WaitSeconds        float64 `json:"wait_seconds"`
	LongestRunSeconds  float64 `json:"longest_run_seconds"`
	LongestRunName     string  `json:"longest_run_name"`
	Stalls             uint64  `json:"stalls"`
}

type statsBackend struct {
	Name      string `json:"name"`
	Submitted uint64 `json:"submitted"`
	Completed uint64 `json:"completed"`
	Fallbacks uint64 `json:"fallbacks"`
	Inline    uint64 `json:"inline"`
	RingFull  uint64 `json:"ring_full"`
}

type statsTables struct {
	Nodes     int    `json:"nodes"`
	NodeFds   int    `json:"node_fds"`
	Handles   int    `json:"handles"`
	Evictions uint64 `json:"evictions"`
}

type statsOp struct {
	Op      string       `json:"op"`
	Count   uint64       `json:"count"`
	Errors  uint64       `json:"errors"`
	Latency statsLatency `json:"latency"`
}

type statsLatency struct {
	SumSeconds float64  `json:"sum_seconds"`
	MaxSeconds float64  `json:"max_seconds"`
	P50Seconds float64  `json:"p50_seconds"`
	P99Seconds float64  `json:"p99_seconds"`
	Buckets    []uint64 `json:"buckets"` // non-cumulative counts, len(latency_bucket_bounds_seconds)+1
}

// statsMeta is what the document says about the daemon, beyond the
// snapshot itself.
type statsMeta struct {
	Mountpoint, Backing, Backend string
	Started                      time.Time
	Stall                        time.Duration // <= 0: off
}

// latencyBounds are the histogram's bucket edges in seconds.
var latencyBounds = func() []float64 {
	b := make([]float64, loop.HistBuckets-1)
	for i := range b {
		b[i] = loop.UpperBound(i).Seconds()
	}
	return b
}()

func newStatsDoc(meta statsMeta, s fs.Snapshot) *statsDoc {
	l := s.Loop
	d := &statsDoc{
		SchemaVersion:  statsSchemaVersion,
		EvfsVersion:    version,
		PID:            os.Getpid(),
		Mountpoint:     meta.Mountpoint,
		Backing:        meta.Backing,
		Backend:        meta.Backend,
		Time:           s.Taken.UTC().Format(time.RFC3339Nano),
		UptimeSeconds:  s.Taken.Sub(meta.Started).Seconds(),
		StallThreshold: max(meta.Stall, 0).Seconds(),
		Loop: statsLoop{
			Events:             l.Events,
			Posts:              l.Posts,
			Wakes:              l.Wakes,
			Waits:              l.Waits,
			Polls:              l.Polls,
			Submitted:          l.Submitted,
			Completed:          l.Completed,
			UnknownCompletions: l.Unknown,
			InFlight:           l.InFlight,
			QueueDepth:         l.QueueDepth,
			BusySeconds:        l.Busy.Seconds(),
			WaitSeconds:        l.Waiting.Seconds(),
			LongestRunSeconds:  l.Longest.Seconds(),
			LongestRunName:     l.LongestName,
			Stalls:             l.Stalls,
			Spins:              l.Spins,
			ShortSpins:         l.ShortSpins,
			Moves:              l.Moves,
		},
		BackendStats: statsBackend{
			Name:      meta.Backend,
			Submitted: l.Backend.Submitted,
			Completed: l.Backend.Completed,
			Fallbacks: l.Backend.Fallbacks,
			Inline:    l.Backend.Inline,
			RingFull:  l.Backend.RingFull,
		},
		Tables: statsTables{Nodes: s.Tables.Nodes, NodeFds: s.Tables.NodeFds,
			Handles: s.Tables.Handles, Evictions: s.Tables.Evictions},
		OrderedIO:     s.OrderedIO,
		LatencyBounds: latencyBounds,
		Ops:           make([]statsOp, 0, len(s.Ops)),
	}
	for i := range s.Ops {
		o := &s.Ops[i]
		d.Ops = append(d.Ops, statsOp{
			Op:     o.Name,
			Count:  o.Count,
			Errors: o.Errors,
			Latency: statsLatency{
				SumSeconds: o.Latency.Sum.Seconds(),
				MaxSeconds: o.Latency.Max.Seconds(),
				P50Seconds: o.Latency.Quantile(0.50).Seconds(),
				P99Seconds: o.Latency.Quantile(0.99).Seconds(),
				Buckets:    append([]uint64(nil), o.Latency.Counts[:]...),
			},
		})
	}
	return d
}

// histogram rebuilds an op's latency histogram from the document.
func (o *statsOp) histogram() loop.Histogram {
	var h loop.Histogram
	copy(h.Counts[:], o.Latency.Buckets)
	h.Sum = secondsToDuration(o.Latency.SumSeconds)
	h.Max = secondsToDuration(o.Latency.MaxSeconds)
	return h
}

func secondsToDuration(s float64) time.Duration {
	return time.Duration(s * float64(time.Second))
}
