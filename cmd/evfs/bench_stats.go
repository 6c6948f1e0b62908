package main

// Statistics for evfs bench: latency percentiles, medians over rounds,
// CPU time of a serving process, and a quantile sketch for the CDF plots.

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// benchClockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat.
// It is 100 on every Linux architecture Go supports (the kernel exports
// it unchanged to user space whatever CONFIG_HZ is).
const benchClockTicks = 100

// benchPercentile returns the nearest-rank q-quantile (0 ≤ q ≤ 1) of
// samples sorted ascending: the smallest sample with at least q of all
// samples at or below it. q=0 gives the minimum and q=1 the maximum.
// It returns 0 for no samples.
func benchPercentile(sorted []int64, q float64) int64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if q <= 0 {
		return sorted[0]
	}
	if q >= 1 {
		return sorted[n-1]
	}
	rank := int(math.Ceil(q * float64(n))) // 1-based
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// benchMedian returns the median of xs (the mean of the two middle values
// for an even count) without reordering xs; NaN for none.
func benchMedian(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// benchCDFQuantiles are the quantiles kept from every run for the latency
// CDF plots: every half percent, plus points in the tail.
var benchCDFQuantiles = func() []float64 {
	var qs []float64
	for i := 0; i <= 200; i++ {
		qs = append(qs, float64(i)/200)
	}
	qs = append(qs, 0.9925, 0.9975, 0.999, 0.9995, 0.9999)
	slices.Sort(qs)
	return slices.Compact(qs)
}()

// benchStats summarises the latencies of one run.
type benchStats struct {
	Samples          int
	P50, P90, P99    float64   // µs
	Max              float64   // µs
	Quantiles        []float64 // µs at benchCDFQuantiles
	OpsPerSec        float64
	CPUSeconds       float64 // of the serving process during the run
	CPUKnown         bool
	CPUSecondsPerMop float64 // CPU-seconds per million operations
}

// benchSummarise sorts lat (nanoseconds, in place) and computes the
// statistics of a run of len(lat) operations over elapsedSec seconds.
func benchSummarise(lat []int64, elapsedSec float64) benchStats {
	slices.Sort(lat)
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	s := benchStats{
		Samples: len(lat),
		P50:     us(benchPercentile(lat, 0.50)),
		P90:     us(benchPercentile(lat, 0.90)),
		P99:     us(benchPercentile(lat, 0.99)),
		Max:     us(benchPercentile(lat, 1)),
	}
	for _, q := range benchCDFQuantiles {
		s.Quantiles = append(s.Quantiles, us(benchPercentile(lat, q)))
	}
	if elapsedSec > 0 {
		s.OpsPerSec = float64(len(lat)) / elapsedSec
	}
	return s
}

// setCPU records the CPU-seconds the serving process used for ops operations.
func (s *benchStats) setCPU(cpuSec float64, ops int) {
	s.CPUSeconds, s.CPUKnown = cpuSec, true
	if ops > 0 {
		s.CPUSecondsPerMop = cpuSec / float64(ops) * 1e6
	}
}

// benchParseProcStat extracts utime and stime (fields 14 and 15, in clock
// ticks) from the contents of /proc/PID/stat. The command name (field 2)
// is in parentheses and may itself hold spaces and parentheses, so fields
// are counted from the last ')'.
func benchParseProcStat(data string) (utime, stime uint64, err error) {
	i := strings.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, errors.New("no ')' after the command name")
	}
	f := strings.Fields(data[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 15-3+1 {
		return 0, 0, fmt.Errorf("only %d fields after the command name", len(f))
	}
	if utime, err = strconv.ParseUint(f[14-3], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("utime: %w", err)
	}
	if stime, err = strconv.ParseUint(f[15-3], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("stime: %w", err)
	}
	return utime, stime, nil
}

// benchProcCPU returns the user+system CPU-seconds process pid has used
// (all its threads, including exited ones).
func benchProcCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	u, s, err := benchParseProcStat(string(b))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return float64(u+s) / benchClockTicks, nil
}

// benchParseLoadavg returns the 1-minute load average from /proc/loadavg's
// contents.
func benchParseLoadavg(data string) (float64, error) {
	f := strings.Fields(data)
	if len(f) == 0 {
		return 0, errors.New("empty /proc/loadavg")
	}
	return strconv.ParseFloat(f[0], 64)
}
