package main

// Reports of evfs bench: the text table on stdout, the JSON document and
// the self-contained HTML page with a latency CDF per workload.

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"strings"
	"unicode/utf8"
)

// benchSchema names the JSON document's format; bump it on incompatible
// changes.
const benchSchema = "evfs-bench/1"

// benchReport is the JSON document (docs/BENCHMARKS.md describes it).
type benchReport struct {
	Schema   string         `json:"schema"`
	Machine  benchMachine   `json:"machine"`
	Settings benchSettings  `json:"settings"`
	Results  []benchResult  `json:"results"`
	Skipped  []benchSkip    `json:"skipped,omitempty"`
	Problems []benchProblem `json:"problems,omitempty"`
	Complete bool           `json:"complete"` // false when interrupted
}

type benchMachine struct {
	Cores       int     `json:"cores"`
	CPUModel    string  `json:"cpu_model"`
	MemTotalMiB int     `json:"mem_total_mib"`
	Kernel      string  `json:"kernel"`
	GoVersion   string  `json:"go_version"`
	EvfsVersion string  `json:"evfs_version"`
	BackingDir  string  `json:"backing_dir"`
	BackingFS   string  `json:"backing_fs"`
	TmpFS       string  `json:"tmp_fs"`
	Load1Start  float64 `json:"loadavg1_start"`
	Load1End    float64 `json:"loadavg1_end"`
}

type benchSettings struct {
	Rounds        int                 `json:"rounds"`
	DurationS     float64             `json:"duration_s"`
	WarmupS       float64             `json:"warmup_s"`
	Ops           int64               `json:"ops,omitempty"`
	Order         string              `json:"order"`
	Kernel        benchKernelJSON     `json:"kernel"`
	EvfsWorkers   int                 `json:"evfs_workers"`
	Placement     string              `json:"placement"`      // free, together or apart (--placement)
	PlacementDesc string              `json:"placement_desc"` // which CPUs
	DataSet       string              `json:"data_set"`
	Targets       []benchTargetJSON   `json:"targets"`
	Workloads     []benchWorkloadJSON `json:"workloads"`
	CDFQuantiles  []float64           `json:"cdf_quantiles"`
	Baseline      string              `json:"baseline"`
	Columns       map[string]string   `json:"columns"`
}

type benchKernelJSON struct {
	EntryTimeoutS    float64 `json:"entry_timeout_s"`
	AttrTimeoutS     float64 `json:"attr_timeout_s"`
	NegativeTimeoutS float64 `json:"negative_timeout_s"`
	MaxWrite         int     `json:"max_write"`
	MaxBackground    int     `json:"max_background"`
	ReadDirPlus      bool    `json:"readdirplus"`
	WritebackCache   bool    `json:"writeback_cache"`
	DirCache         bool    `json:"dir_cache"`
}

type benchTargetJSON struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Passthrough bool   `json:"kernel_passthrough"`
	Command     string `json:"command,omitempty"`
	FSType      string `json:"fstype,omitempty"`
	SuperOpts   string `json:"super_options,omitempty"`
}

type benchWorkloadJSON struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Clients     int    `json:"clients"`
	Throughput  bool   `json:"throughput"`
}

// benchResult is one workload on one target, medians over its rounds.
type benchResult struct {
	Workload  string    `json:"workload"`
	Target    string    `json:"target"`
	P50       float64   `json:"p50_us"`
	P90       float64   `json:"p90_us"`
	P99       float64   `json:"p99_us"`
	Max       float64   `json:"max_us"`
	OpsPerSec float64   `json:"ops_per_sec"`
	CPUPerMop *float64  `json:"cpu_s_per_mop"` // null for native
	Rounds    int       `json:"rounds"`
	P50Ratio  *float64  `json:"p50_vs_baseline,omitempty"`
	OpsRatio  *float64  `json:"ops_vs_baseline,omitempty"`
	P50Rounds []float64 `json:"p50_us_rounds"`
	OpsRounds []float64 `json:"ops_per_sec_rounds"`
	Samples   int       `json:"samples"` // operations timed, all rounds
	CDF       []float64 `json:"cdf_us"`  // µs at settings.cdf_quantiles, averaged over rounds
	Errors    []string  `json:"errors,omitempty"`
}

type benchSkip struct {
	Target string `json:"target"`
	Reason string `json:"reason"`
}

// benchProblem is an error of a run, a message a daemon logged, or a
// cleanup failure.
type benchProblem struct {
	Round    int    `json:"round,omitempty"`
	Workload string `json:"workload,omitempty"`
	Target   string `json:"target,omitempty"`
	Kind     string `json:"kind"` // "error", "daemon-log", "cleanup"
	Message  string `json:"message"`
}

// benchColumns documents the result fields in the JSON itself.
var benchColumns = map[string]string{
	"p50_us, p90_us, p99_us, max_us": "latency percentiles of single operations in microseconds (nearest rank over the run), median over rounds",
	"ops_per_sec":                    "operations completed per second of wall time (all clients together), median over rounds",
	"cpu_s_per_mop":                  "user+system CPU-seconds of the serving daemon process per million operations (from /proc/PID/stat); null for native",
	"p50_vs_baseline":                "p50 divided by the baseline target's p50 for the same workload (lower is better)",
	"ops_vs_baseline":                "ops_per_sec divided by the baseline target's (higher is better)",
	"rounds":                         "rounds that completed without error and contribute to the medians",
}

// benchFmtLat formats microseconds with a unit.
func benchFmtLat(us float64) string {
	switch {
	case math.IsNaN(us):
		return "—"
	case us < 100:
		return fmt.Sprintf("%.1fµs", us)
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 1e6:
		return fmt.Sprintf("%.2fms", us/1e3)
	}
	return fmt.Sprintf("%.2fs", us/1e6)
}

// benchFmtRate formats operations per second.
func benchFmtRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e4:
		return fmt.Sprintf("%.1fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}

func benchFmtRatio(p *float64) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf("%.2f×", *p)
}

func benchFmtCPU(p *float64) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", *p)
}

// writeText prints the header and the table.
func (r *benchReport) writeText(w io.Writer) {
	m, s := r.Machine, r.Settings
	fmt.Fprintf(w, "evfs bench %s — %d cores (%s), %d MiB, Linux %s, %s\n",
		m.EvfsVersion, m.Cores, m.CPUModel, m.MemTotalMiB, m.Kernel, m.GoVersion)
	fmt.Fprintf(w, "backing: %s (%s); /tmp is %s; load average %.2f at start, %.2f at end\n",
		m.BackingDir, m.BackingFS, m.TmpFS, m.Load1Start, m.Load1End)
	k := s.Kernel
	fmt.Fprintf(w, "FUSE kernel settings, every FUSE target: entry_timeout=%gs attr_timeout=%gs negative_timeout=%gs max_write=%d max_background=%d readdirplus=%s writeback_cache=%s dir_cache=%s; kernel passthrough only on kpassthrough\n",
		k.EntryTimeoutS, k.AttrTimeoutS, k.NegativeTimeoutS, k.MaxWrite, k.MaxBackground,
		benchOnOff(k.ReadDirPlus), benchOnOff(k.WritebackCache), benchOnOff(k.DirCache))
	for _, t := range s.Targets {
		if t.Name == "passthrough_hp" {
			fmt.Fprintf(w, "  except passthrough_hp, which sets its own (libfuse defaults with --nocache: timeouts 0, no writeback cache): %s\n", t.Command)
		}
	}
	phase := fmt.Sprintf("%gs", s.DurationS)
	if s.Ops > 0 {
		phase = fmt.Sprintf("%d ops", s.Ops)
	}
	fmt.Fprintf(w, "rounds: %d × %s per workload and target (warm-up %gs), %s; evfs --workers=%d\n",
		s.Rounds, phase, s.WarmupS, s.Order, s.EvfsWorkers)
	if s.PlacementDesc != "" {
		fmt.Fprintf(w, "CPU placement: %s\n", s.PlacementDesc)
	}
	fmt.Fprintf(w, "medians over rounds; ×%s = ratio to %s (p50: lower is better, ops/s: higher is better); CPU = daemon CPU-seconds per million ops\n",
		abbrevBaseline(s.Baseline), s.Baseline)
	if !r.Complete {
		fmt.Fprintln(w, "INTERRUPTED: partial results")
	}
	fmt.Fprintln(w)

	b := abbrevBaseline(s.Baseline)
	rows := [][]string{{"workload", "target", "p50", "p90", "p99", "max", "ops/s", "CPU s/Mop", "p50 ×" + b, "ops ×" + b, "rounds"}}
	prev := ""
	for _, res := range r.Results {
		wl := res.Workload
		if wl == prev {
			wl = ""
		} else if prev != "" {
			rows = append(rows, nil) // a blank line between workloads
		}
		prev = res.Workload
		if res.Rounds == 0 {
			rows = append(rows, []string{wl, res.Target, "—", "—", "—", "—", "—", "—", "—", "—", "0"})
			continue
		}
		rows = append(rows, []string{wl, res.Target,
			benchFmtLat(res.P50), benchFmtLat(res.P90), benchFmtLat(res.P99), benchFmtLat(res.Max),
			benchFmtRate(res.OpsPerSec), benchFmtCPU(res.CPUPerMop),
			benchFmtRatio(res.P50Ratio), benchFmtRatio(res.OpsRatio), fmt.Sprint(res.Rounds)})
	}
	benchWriteTable(w, rows, 2)

	if len(r.Skipped) > 0 {
		fmt.Fprintln(w)
		for _, sk := range r.Skipped {
			fmt.Fprintf(w, "skipped %s: %s\n", sk.Target, sk.Reason)
		}
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "\n%d problem(s):\n", len(r.Problems))
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}

func (p benchProblem) String() string {
	var where []string
	if p.Round > 0 {
		where = append(where, fmt.Sprintf("round %d", p.Round))
	}
	if p.Workload != "" {
		where = append(where, p.Workload)
	}
	if p.Target != "" {
		where = append(where, "on "+p.Target)
	}
	loc := strings.Join(where, " ")
	if loc != "" {
		loc += ": "
	}
	return fmt.Sprintf("[%s] %s%s", p.Kind, loc, p.Message)
}

func abbrevBaseline(b string) string {
	if b == "passthrough" {
		return "pt"
	}
	return b
}

func benchOnOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func (r *benchReport) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// benchWriteTable prints rows in columns separated by two spaces: the
// first left columns aligned left, the others right. A nil row is a
// blank line.
func benchWriteTable(w io.Writer, rows [][]string, left int) {
	var width []int
	for _, row := range rows {
		for i, cell := range row {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	for _, row := range rows {
		var line strings.Builder
		for i, cell := range row {
			if i > 0 {
				line.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			if i < left {
				line.WriteString(cell + pad)
			} else {
				line.WriteString(pad + cell)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(line.String(), " "))
	}
}

// benchColors gives every target a fixed color in the plots.
var benchColors = map[string]string{
	"native":       "#6b6b6b",
	"passthrough":  "#1f5fbf",
	"kpassthrough": "#79a6e8",
	"evfs-uring":   "#1a9850",
	"evfs-pool":    "#e08214",
	"evfs-sync":    "#d7191c",
}

func (r *benchReport) writeHTML(path string) error {
	var b strings.Builder
	e := html.EscapeString
	b.WriteString(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>evfs bench</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1100px}
table{border-collapse:collapse;font-size:0.85em}
th,td{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
tr.first td{border-top:2px solid #999}
.meta{font-size:0.85em;color:#444}
.plot{display:inline-block;margin:0.5em 1em 1em 0;vertical-align:top}
.plot h3{margin:0.2em 0;font-size:1em}
.plot p{margin:0;font-size:0.8em;color:#555;max-width:600px}
svg text{font-family:system-ui,sans-serif}
.problems{font-size:0.8em;font-family:monospace;white-space:pre-wrap}
</style></head><body>
`)
	m, s := r.Machine, r.Settings
	fmt.Fprintf(&b, "<h1>evfs bench</h1>\n<div class=\"meta\"><p>%d cores (%s), %d MiB, Linux %s, %s, evfs %s<br>\n",
		m.Cores, e(m.CPUModel), m.MemTotalMiB, e(m.Kernel), e(m.GoVersion), e(m.EvfsVersion))
	fmt.Fprintf(&b, "backing %s (%s); /tmp is %s; load average %.2f at start, %.2f at end<br>\n",
		e(m.BackingDir), e(m.BackingFS), e(m.TmpFS), m.Load1Start, m.Load1End)
	k := s.Kernel
	fmt.Fprintf(&b, "FUSE kernel settings (all FUSE targets): entry_timeout=%gs attr_timeout=%gs negative_timeout=%gs max_write=%d max_background=%d readdirplus=%s writeback_cache=%s dir_cache=%s<br>\n",
		k.EntryTimeoutS, k.AttrTimeoutS, k.NegativeTimeoutS, k.MaxWrite, k.MaxBackground,
		benchOnOff(k.ReadDirPlus), benchOnOff(k.WritebackCache), benchOnOff(k.DirCache))
	fmt.Fprintf(&b, "%d rounds × %gs (warm-up %gs), %s; CPU placement %s. Medians over rounds; ratios against %s.</p>\n",
		s.Rounds, s.DurationS, s.WarmupS, e(s.Order), e(s.PlacementDesc), e(s.Baseline))
	if !r.Complete {
		b.WriteString("<p><strong>Interrupted: partial results.</strong></p>\n")
	}
	b.WriteString("<ul>\n")
	for _, t := range s.Targets {
		fmt.Fprintf(&b, "<li><span style=\"color:%s\">■</span> <b>%s</b>: %s</li>\n", benchColors[t.Name], e(t.Name), e(t.Description))
	}
	b.WriteString("</ul></div>\n")

	// The table.
	fmt.Fprintf(&b, "<table><tr><th>workload</th><th>target</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>ops/s</th><th>CPU s/Mop</th><th>p50 vs %s</th><th>ops/s vs %s</th><th>rounds</th></tr>\n",
		e(s.Baseline), e(s.Baseline))
	prev := ""
	for _, res := range r.Results {
		cls := ""
		if res.Workload != prev {
			cls = ` class="first"`
		}
		prev = res.Workload
		fmt.Fprintf(&b, "<tr%s><td>%s</td><td style=\"color:%s\">%s</td>", cls, e(res.Workload), benchColors[res.Target], e(res.Target))
		if res.Rounds == 0 {
			b.WriteString(strings.Repeat("<td>—</td>", 8) + "<td>0</td></tr>\n")
			continue
		}
		for _, v := range []string{benchFmtLat(res.P50), benchFmtLat(res.P90), benchFmtLat(res.P99), benchFmtLat(res.Max),
			benchFmtRate(res.OpsPerSec), benchFmtCPU(res.CPUPerMop), benchFmtRatio(res.P50Ratio), benchFmtRatio(res.OpsRatio)} {
			fmt.Fprintf(&b, "<td>%s</td>", e(v))
		}
		fmt.Fprintf(&b, "<td>%d</td></tr>\n", res.Rounds)
	}
	b.WriteString("</table>\n<h2>Latency CDFs</h2>\n")

	for _, wl := range s.Workloads {
		var rs []benchResult
		for _, res := range r.Results {
			if res.Workload == wl.Name && res.Rounds > 0 && len(res.CDF) == len(s.CDFQuantiles) {
				rs = append(rs, res)
			}
		}
		fmt.Fprintf(&b, "<div class=\"plot\"><h3>%s</h3><p>%s</p>\n", e(wl.Name), e(wl.Description))
		b.WriteString(benchCDFSVG(rs, s.CDFQuantiles))
		b.WriteString("</div>\n")
	}

	if len(r.Skipped) > 0 || len(r.Problems) > 0 {
		b.WriteString("<h2>Problems</h2><div class=\"problems\">")
		for _, sk := range r.Skipped {
			fmt.Fprintf(&b, "skipped %s: %s\n", e(sk.Target), e(sk.Reason))
		}
		for _, p := range r.Problems {
			b.WriteString(e(p.String()) + "\n")
		}
		b.WriteString("</div>\n")
	}
	b.WriteString("</body></html>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// benchCDFSVG draws one latency CDF: x is latency on a log scale, y the
// fraction of operations at or below it; one line per target.
func benchCDFSVG(rs []benchResult, qs []float64) string {
	const (
		W, H           = 560, 300
		left, right    = 52, 120
		top, bottom    = 10, 36
		plotW, plotH   = W - left - right, H - top - bottom
		minDecadeSpanX = 1
	)
	if len(rs) == 0 {
		return `<svg xmlns="http://www.w3.org/2000/svg" width="560" height="40"><text x="10" y="25" font-size="12">no results</text></svg>`
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rs {
		for _, v := range r.CDF {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 0) {
		lo, hi = 1, 10
	}
	x0, x1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if x1-x0 < minDecadeSpanX {
		x1 = x0 + minDecadeSpanX
	}
	xp := func(us float64) float64 {
		if us <= 0 {
			us = math.Pow(10, x0)
		}
		return left + (math.Log10(us)-x0)/(x1-x0)*plotW
	}
	yp := func(q float64) float64 { return top + (1-q)*plotH }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-size="11">`, W, H, W, H)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#fafafa" stroke="#999"/>`, left, top, plotW, plotH)
	// Decades, with minor ticks at 2 and 5.
	for d := x0; d <= x1; d++ {
		x := xp(math.Pow(10, d))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ccc"/>`, x, top, x, top+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x, top+plotH+14, benchFmtDecade(d))
		if d < x1 {
			for _, mnr := range []float64{2, 5} {
				xm := xp(mnr * math.Pow(10, d))
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`, xm, top, xm, top+plotH)
			}
		}
	}
	for _, q := range []float64{0, 0.25, 0.5, 0.75, 0.9, 0.99, 1} {
		y := yp(q)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`, left, y, left+plotW, y)
		if q != 0.99 { // too close to 1 to label legibly
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%g</text>`, left-4, y+4, q)
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">latency (log scale)</text>`, left+plotW/2, H-4)
	fmt.Fprintf(&b, `<text transform="translate(12,%d) rotate(-90)" text-anchor="middle">fraction ≤ latency</text>`, top+plotH/2)
	for i, r := range rs {
		color := benchColors[r.Target]
		if color == "" {
			color = "#000"
		}
		var pts []string
		for j, v := range r.CDF {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xp(v), yp(qs[j])))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"><title>%s p50 %s p99 %s</title></polyline>`,
			color, strings.Join(pts, " "), html.EscapeString(r.Target), benchFmtLat(r.P50), benchFmtLat(r.P99))
		ly := top + 12 + i*16
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`, left+plotW+8, ly-4, left+plotW+24, ly-4, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`, left+plotW+28, ly, html.EscapeString(r.Target))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// benchFmtDecade labels 10^d microseconds.
func benchFmtDecade(d float64) string {
	us := math.Pow(10, d)
	switch {
	case us < 1:
		return fmt.Sprintf("%gns", us*1e3)
	case us < 1e3:
		return fmt.Sprintf("%gµs", us)
	case us < 1e6:
		return fmt.Sprintf("%gms", us/1e3)
	}
	return fmt.Sprintf("%gs", us/1e6)
}
