package main

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestBenchPercentile(t *testing.T) {
	var s []int64
	for i := int64(1); i <= 100; i++ {
		s = append(s, i)
	}
	for _, c := range []struct {
		q    float64
		want int64
	}{{0, 1}, {0.01, 1}, {0.5, 50}, {0.9, 90}, {0.99, 99}, {0.995, 100}, {1, 100}} {
		if got := benchPercentile(s, c.q); got != c.want {
			t.Errorf("percentile(1..100, %v) = %d, want %d", c.q, got, c.want)
		}
	}
	// Nearest rank: with 10 samples p99 is the largest, p50 the fifth.
	ten := []int64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	if got := benchPercentile(ten, 0.99); got != 100 {
		t.Errorf("p99 of 10 samples = %d, want 100", got)
	}
	if got := benchPercentile(ten, 0.5); got != 50 {
		t.Errorf("p50 of 10 samples = %d, want 50", got)
	}
	if got := benchPercentile([]int64{7}, 0.5); got != 7 {
		t.Errorf("p50 of one sample = %d, want 7", got)
	}
	if got := benchPercentile(nil, 0.5); got != 0 {
		t.Errorf("p50 of none = %d, want 0", got)
	}
}

func TestBenchMedian(t *testing.T) {
	in := []float64{5, 1, 3}
	if got := benchMedian(in); got != 3 {
		t.Errorf("median(5,1,3) = %v, want 3", got)
	}
	if !slices.Equal(in, []float64{5, 1, 3}) {
		t.Errorf("median reordered its input: %v", in)
	}
	if got := benchMedian([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median(4,1,3,2) = %v, want 2.5", got)
	}
	if got := benchMedian(nil); !math.IsNaN(got) {
		t.Errorf("median of none = %v, want NaN", got)
	}
}

func TestBenchSummarise(t *testing.T) {
	// 1 000 operations of 1…1 000 µs, shuffled, over half a second.
	var lat []int64
	for i := 1000; i >= 1; i-- {
		lat = append(lat, int64(i)*1000)
	}
	s := benchSummarise(lat, 0.5)
	if s.P50 != 500 || s.P90 != 900 || s.P99 != 990 || s.Max != 1000 {
		t.Errorf("p50/p90/p99/max = %v/%v/%v/%v µs, want 500/900/990/1000", s.P50, s.P90, s.P99, s.Max)
	}
	if s.OpsPerSec != 2000 {
		t.Errorf("ops/s = %v, want 2000", s.OpsPerSec)
	}
	if len(s.Quantiles) != len(benchCDFQuantiles) || s.Quantiles[0] != 1 || s.Quantiles[len(s.Quantiles)-1] != 1000 {
		t.Errorf("CDF quantiles run %v … %v (%d points), want 1 … 1000 (%d)", s.Quantiles[0], s.Quantiles[len(s.Quantiles)-1], len(s.Quantiles), len(benchCDFQuantiles))
	}
	if !slices.IsSorted(s.Quantiles) {
		t.Error("CDF quantiles are not monotonic")
	}
	s.setCPU(0.25, 1000)
	if !s.CPUKnown || s.CPUSecondsPerMop != 250 {
		t.Errorf("0.25 CPU-s over 1 000 ops = %v s/Mop, want 250", s.CPUSecondsPerMop)
	}
}

func TestBenchParseProcStat(t *testing.T) {
	// A command name with spaces and parentheses; utime=1234, stime=567.
	line := "4242 (evfs (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 1234 567 0 0 20 0 9 0 100 2000000 500 18446744073709551615\n"
	u, s, err := benchParseProcStat(line)
	if err != nil || u != 1234 || s != 567 {
		t.Fatalf("parse = %d, %d, %v; want 1234, 567, nil", u, s, err)
	}
	for _, bad := range []string{"", "4242 evfs S 1", "4242 (evfs) S 1 2 3", "4242 (evfs) S 1 2 3 4 5 6 7 8 9 10 x 12"} {
		if _, _, err := benchParseProcStat(bad); err == nil {
			t.Errorf("parse(%q) succeeded, want an error", bad)
		}
	}
}

func TestBenchProcCPU(t *testing.T) {
	c0, err := benchProcCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until /proc shows at least 50 ms more (ticks are 10 ms).
	deadline := time.Now().Add(20 * time.Second)
	x := 0
	for {
		for i := range 1_000_000 {
			x += i ^ x
		}
		c1, err := benchProcCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if c1-c0 >= 0.05 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time went from %v to %v s while spinning for 20 s", c0, c1)
		}
	}
	_ = x
	if _, err := benchProcCPU(1 << 30); err == nil {
		t.Error("CPU of a process that does not exist: no error")
	}
}

func TestBenchParseLoadavg(t *testing.T) {
	if v, err := benchParseLoadavg("3.25 1.00 0.50 2/300 4242\n"); err != nil || v != 3.25 {
		t.Errorf("loadavg = %v, %v; want 3.25", v, err)
	}
	if _, err := benchParseLoadavg(""); err == nil {
		t.Error("empty loadavg: no error")
	}
}

func TestBenchParseMountinfo(t *testing.T) {
	data := "22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw\n" +
		"41 26 0:38 / /tmp/a\\040b/mnt/evfs-pool rw,nosuid,nodev,relatime - fuse.evfs /tmp/a\\040b/data rw,user_id=0,group_id=0,max_read=1048576\n"
	m, ok := benchParseMountinfo(data, "/tmp/a b/mnt/evfs-pool")
	if !ok {
		t.Fatal("mount with an escaped space not found")
	}
	if m.fsType != "fuse.evfs" || m.source != "/tmp/a b/data" || m.superOpts != "rw,user_id=0,group_id=0,max_read=1048576" {
		t.Errorf("parsed %+v", m)
	}
	if _, ok := benchParseMountinfo(data, "/tmp/a b/mnt"); ok {
		t.Error("a prefix of a mountpoint matched")
	}
}

func TestBenchParseList(t *testing.T) {
	known := []string{"a", "b", "c"}
	got, err := benchParseList("target", " b, a,b,,", known, false)
	if err != nil || !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("parse = %v, %v; want [b a]", got, err)
	}
	got, err = benchParseList("workload", "all", known, true)
	if err != nil || !slices.Equal(got, known) {
		t.Errorf("all = %v, %v; want every name", got, err)
	}
	for _, bad := range []struct{ list, name string }{{"a,nope", "nope"}, {"all", "all"}, {" , ", ""}} {
		_, err := benchParseList("target", bad.list, known, false)
		var u usageError
		if !errors.As(err, &u) {
			t.Errorf("parse(%q) = %v, want a usage error", bad.list, err)
			continue
		}
		if !strings.Contains(err.Error(), "--targets") || !strings.Contains(err.Error(), bad.name) {
			t.Errorf("parse(%q) error %q names neither --targets nor %q", bad.list, err, bad.name)
		}
	}
}

// Unknown names are refused before anything is created or mounted: exit 2.
func TestBenchRejectsUnknownNames(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--targets", "native,bogus"},
		{"--workloads", "stat,nonesuch"},
		{"--baseline", "nfs"},
		{"--rounds", "0"},
		{"--duration", "0s"},
		{"--json", filepath.Join(dir, "missing", "out.json")},
		{"extra-argument"},
		{"--targets", "native,passthrough_hp"}, // no --passthrough-hp
		{"--passthrough-hp", filepath.Join(dir, "nope"), "--targets", "passthrough_hp"}, // no such program
	} {
		argv := append([]string{"evfs", "bench", "--backing", dir, "--targets", "native"}, args...)
		if code := run(argv); code != 2 {
			t.Errorf("evfs bench %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a refused bench left %d entries in --backing", len(ents))
	}
}

func TestBenchCountDirents(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"one", "two", "a-rather-longer-name-than-the-others"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	total := 0
	for {
		n, err := benchGetdents(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += benchCountDirents(buf[:n])
	}
	if total != 3 {
		t.Errorf("counted %d names, want 3 (. and .. are not counted)", total)
	}
}

// Every workload runs on a plain directory holding the data set.
func TestBenchWorkloadsNative(t *testing.T) {
	if testing.Short() {
		t.Skip("makes an 80 MiB data set")
	}
	root := t.TempDir()
	if err := benchMakeDataSet(root); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	for _, w := range benchWorkloadList {
		res, err := benchRun(w, root, benchRunConfig{Ops: 200}, nil, &stop)
		if err != nil {
			if w.Name != "readdir-1000" && strings.Contains(err.Error(), "O_DIRECT") && errors.Is(err, unix.EINVAL) {
				t.Logf("%s: the temporary directory's file system refuses O_DIRECT: %v", w.Name, err)
				continue
			}
			t.Errorf("%s: %v", w.Name, err)
			continue
		}
		if len(res.Lat) != 200 {
			t.Errorf("%s: %d latencies, want 200", w.Name, len(res.Lat))
		}
		if res.Elapsed <= 0 {
			t.Errorf("%s: elapsed %v", w.Name, res.Elapsed)
		}
	}
	// The namespace workloads left nothing behind, and rename kept one file.
	if ents, _ := os.ReadDir(filepath.Join(root, "scratch")); len(ents) != 0 {
		t.Errorf("scratch/ holds %d entries after the runs", len(ents))
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "rename")); len(ents) != 1 {
		t.Errorf("rename/ holds %d entries, want 1", len(ents))
	}
	// A stopped run reports it.
	stop.Store(true)
	if _, err := benchRun(benchWorkloadList[0], root, benchRunConfig{Duration: time.Second}, nil, &stop); !errors.Is(err, errBenchStopped) {
		t.Errorf("stopped run: %v, want errBenchStopped", err)
	}
}

func TestBenchReports(t *testing.T) {
	one, two := 1.0, 0.5
	r := benchReport{
		Schema:   benchSchema,
		Machine:  benchMachine{Cores: 2, Kernel: "6.18", BackingFS: "tmpfs"},
		Settings: benchSettings{Rounds: 1, DurationS: 1, Baseline: "passthrough", CDFQuantiles: []float64{0, 0.5, 1}, Workloads: []benchWorkloadJSON{{Name: "stat"}}},
		Results: []benchResult{
			{Workload: "stat", Target: "passthrough", P50: 100, P90: 200, P99: 300, Max: 400, OpsPerSec: 9000, CPUPerMop: &one, Rounds: 1, P50Ratio: &one, OpsRatio: &one, CDF: []float64{50, 100, 400}},
			{Workload: "stat", Target: "evfs-pool", P50: 50, P90: 60, P99: 70, Max: 80, OpsPerSec: 18000, CPUPerMop: &two, Rounds: 1, P50Ratio: &two, CDF: []float64{40, 50, 80}},
		},
		Complete: true,
	}
	var b strings.Builder
	r.writeText(&b)
	for _, want := range []string{"100µs", "50.0µs", "0.50×", "18.0k", "p50 ×pt"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
	path := filepath.Join(t.TempDir(), "r.html")
	if err := r.writeHTML(path); err != nil {
		t.Fatal(err)
	}
	h, _ := os.ReadFile(path)
	if n := strings.Count(string(h), "<polyline"); n != 2 {
		t.Errorf("HTML has %d CDF lines, want 2", n)
	}
	for _, ext := range []string{"<script", "<link", "src=", "href=", "@import"} {
		if strings.Contains(string(h), ext) {
			t.Errorf("HTML refers to an external asset (%s)", ext)
		}
	}
}

func TestBenchNormaliseLog(t *testing.T) {
	a, da := benchNormaliseLog(`time=2026-11-23T04:05:40.725Z level=WARN msg="loop stalled" event=GETATTR took=10.107245ms threshold=5ms`)
	b, db := benchNormaliseLog(`time=2026-11-23T04:06:41.001Z level=WARN msg="loop stalled" event=GETATTR took=5.5ms threshold=5ms`)
	if a != b || a != `level=WARN msg="loop stalled" event=GETATTR took=… threshold=5ms` {
		t.Errorf("normalised %q and %q, want one key", a, b)
	}
	if da != 10107245*time.Nanosecond || db != 5500*time.Microsecond {
		t.Errorf("took %v and %v", da, db)
	}
	c, _ := benchNormaliseLog("2026/11/23 04:05:40.123456 writer: Write/Writev failed, err: 2=no such file or directory")
	if c != "writer: Write/Writev failed, err: 2=no such file or directory" {
		t.Errorf("go-fuse line normalised to %q", c)
	}
}
