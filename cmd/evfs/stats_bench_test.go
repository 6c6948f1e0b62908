package main

// The cost of statistics. Per request, the hot path pays a time.Now()
// when the bridge receives it, a time.Since() and a Histogram.Record plus
// two counters when the loop answers, and the loop times every event it
// runs (another time.Now/time.Since pair, for the longest run and the
// stall detector). Reading them is one loop event per snapshot.
//
//	go test -run '^$' -bench . -benchtime 2s ./cmd/evfs/

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"evfs/fs"
	"evfs/loop"
)

var sinkDur time.Duration

func BenchmarkHistogramRecord(b *testing.B) {
	var h loop.Histogram
	durs := [...]time.Duration{3 * time.Microsecond, 40 * time.Microsecond, 90 * time.Microsecond,
		700 * time.Microsecond, 25 * time.Microsecond, 2 * time.Millisecond, 130 * time.Microsecond, 11 * time.Microsecond}
	for i := 0; b.Loop(); i++ {
		h.Record(durs[i&7])
	}
	sinkDur = h.Max
}

// BenchmarkRequestTiming is everything statistics add to one request:
// the clock read at arrival, the one at the reply, the record.
func BenchmarkRequestTiming(b *testing.B) {
	var h loop.Histogram
	var count, errs uint64
	for i := 0; b.Loop(); i++ {
		t0 := loop.Mono()
		count++
		if i&15 == 0 {
			errs++
		}
		h.Record(loop.Mono() - t0)
	}
	sinkDur = h.Max + time.Duration(count+errs)
}

// statsBenchMount mounts an empty directory with the pool backend.
func statsBenchMount(b *testing.B) *fs.Mount {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("mounting needs root")
	}
	d := b.TempDir()
	back, mnt := filepath.Join(d, "back"), filepath.Join(d, "mnt")
	os.Mkdir(back, 0o755)
	os.Mkdir(mnt, 0o755)
	m, err := fs.NewMount(back, mnt, fs.Config{Backend: "pool", Workers: 4, Options: fs.Options{Logger: discardLogger()}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		m.Unmount()
		m.Wait()
	})
	// Some ops, so the snapshot copies a realistic table.
	for i := range 20 {
		p := filepath.Join(mnt, string(rune('a'+i)))
		os.WriteFile(p, []byte("x"), 0o644)
		os.ReadFile(p)
		os.Stat(p)
	}
	return m
}

// loopBusyPerOp reports the loop time each snapshot cost (the time other
// requests wait behind it), from the loop's own busy counter.
func loopBusyPerOp(b *testing.B, m *fs.Mount, before loop.Stats) {
	after := m.Loop.Snapshot()
	b.ReportMetric(float64(after.Busy-before.Busy)/float64(b.N), "loop-ns/op")
}

// BenchmarkMountSnapshot is one fs.Mount.Snapshot round trip through a
// live mount's loop (post, wake, copy, reply).
func BenchmarkMountSnapshot(b *testing.B) {
	m := statsBenchMount(b)
	ctx := context.Background()
	before := m.Loop.Snapshot()
	for b.Loop() {
		if _, err := m.Snapshot(ctx); err != nil {
			b.Fatal(err)
		}
	}
	loopBusyPerOp(b, m, before)
}

// BenchmarkStatsDocument is what the control socket does per request:
// snapshot and encode the JSON document.
func BenchmarkStatsDocument(b *testing.B) {
	m := statsBenchMount(b)
	ctx := context.Background()
	meta := statsMeta{Mountpoint: m.Mountpoint, Backend: m.Loop.Backend(), Started: time.Now()}
	var buf bytes.Buffer
	for b.Loop() {
		s, err := m.Snapshot(ctx)
		if err != nil {
			b.Fatal(err)
		}
		buf.Reset()
		json.NewEncoder(&buf).Encode(newStatsDoc(meta, s))
	}
	b.ReportMetric(float64(buf.Len()), "doc-bytes")
}

// BenchmarkMetricsGather is one Prometheus scrape of the evfs collector
// (without the HTTP and text encoding).
func BenchmarkMetricsGather(b *testing.B) {
	m := statsBenchMount(b)
	reg := prometheus.NewRegistry()
	reg.MustRegister(&metricsCollector{snap: m.Snapshot, meta: statsMeta{Backend: m.Loop.Backend()}})
	before := m.Loop.Snapshot()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
	loopBusyPerOp(b, m, before)
}
