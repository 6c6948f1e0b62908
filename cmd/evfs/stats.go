package main

// evfs stats MOUNTPOINT: a live, top-like view of a mount's statistics,
// fetched from its daemon through the control socket (control.go).

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "show a mount's statistics live: requests, latency, loop, backend",
		ArgsUsage: "MOUNTPOINT",
		Description: "Asks the daemon serving MOUNTPOINT (through its control socket under /run/evfs;\n" +
			"root only) for its statistics and redraws them every --interval, like top: per-operation\n" +
			"counts, rates, errors and latency, loop utilisation, queue, wakes, stalls, backend\n" +
			"counters. --once prints one snapshot; --json prints the JSON document (docs/STATS.md).\n" +
			"Exit codes: 2 when MOUNTPOINT is not an evfs mount, 1 when permission is denied.",
		OnUsageError: func(c *cli.Context, err error, isSub bool) error { return usageError{err.Error()} },
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "once", Usage: "print one snapshot (totals since the mount) and exit"},
			&cli.BoolFlag{Name: "json", Usage: "print the statistics as one JSON document and exit (implies --once; schema in docs/STATS.md)"},
			&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "refresh period of the live view"},
		},
		Action: statsAction,
	}
}

func statsAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("stats needs exactly one MOUNTPOINT (got %d arguments)", c.NArg())
	}
	mp := c.Args().First()
	interval := c.Duration("interval")
	if interval <= 0 {
		return usagef("--interval must be positive")
	}
	out := c.App.Writer
	if out == nil {
		out = os.Stdout
	}
	// Resolved once: resolving stats the mountpoint, which is a request
	// to the very daemon being watched.
	sock, err := findControl(mp)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		raw, _, err := fetchStats(mp, sock)
		if err != nil {
			return err
		}
		_, err = out.Write(raw)
		return err
	}
	if c.Bool("once") {
		_, doc, err := fetchStats(mp, sock)
		if err != nil {
			return err
		}
		_, err = io.WriteString(out, renderStats(nil, doc))
		return err
	}
	return statsLive(mp, sock, interval, out, isTerminal(os.Stdout))
}

// statsLive redraws until interrupted (exit 0) or the daemon goes away.
func statsLive(mp, sock string, interval time.Duration, out io.Writer, tty bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var prev *statsDoc
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		_, doc, err := fetchStats(mp, sock)
		if err != nil {
			return err
		}
		frame := renderStats(prev, doc)
		if tty {
			frame = "\x1b[H\x1b[2J" + frame // home, clear screen
		} else {
			frame += "\n"
		}
		if _, err := io.WriteString(out, frame); err != nil {
			return err
		}
		prev = doc
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// renderStats formats doc as text. With prev (the previous refresh),
// rates, utilisation, coalescing and latency percentiles cover the time
// since prev; without it, the time since the mount. COUNT, ERRORS and MAX
// are always totals since the mount.
func renderStats(prev, doc *statsDoc) string {
	var b strings.Builder
	l := doc.Loop
	span := doc.UptimeSeconds
	window := "since mount"
	pl := statsLoop{}
	prevOps := map[string]*statsOp{}
	if prev != nil {
		span = doc.UptimeSeconds - prev.UptimeSeconds
		window = "last " + fmtDur(secondsToDuration(span))
		pl = prev.Loop
		for i := range prev.Ops {
			prevOps[prev.Ops[i].Op] = &prev.Ops[i]
		}
	}
	up := secondsToDuration(doc.UptimeSeconds).Round(time.Second)
	fmt.Fprintf(&b, "evfs %s  ← %s   backend %s   pid %d   up %s\n", doc.Mountpoint, doc.Backing, doc.Backend, doc.PID, up)

	busy, wait := l.BusySeconds-pl.BusySeconds, l.WaitSeconds-pl.WaitSeconds
	util := "-"
	if busy+wait > 0 {
		util = fmt.Sprintf("%.1f%%", 100*busy/(busy+wait))
	}
	fmt.Fprintf(&b, "loop     busy %s (%s busy, %s waiting, %s)\n", util,
		fmtDur(secondsToDuration(busy)), fmtDur(secondsToDuration(wait)), window)
	posts, wakes := l.Posts-pl.Posts, l.Wakes-pl.Wakes
	coalesce := "-"
	if wakes > 0 {
		coalesce = fmt.Sprintf("%.2f", float64(posts)/float64(wakes))
	}
	fmt.Fprintf(&b, "         in-flight %d   queue %d   events %d (%s/s)   posts %d   wakes %d   posts/wake %s\n",
		l.InFlight, l.QueueDepth, l.Events, fmtRate(l.Events-pl.Events, span), l.Posts, l.Wakes, coalesce)
	stall := "off"
	if doc.StallThreshold > 0 {
		stall = fmtDur(secondsToDuration(doc.StallThreshold))
	}
	longest := "-"
	if l.LongestRunName != "" {
		longest = fmt.Sprintf("%s (%s)", fmtDur(secondsToDuration(l.LongestRunSeconds)), l.LongestRunName)
	}
	fmt.Fprintf(&b, "         longest run %s   stalls %d (threshold %s)", longest, l.Stalls, stall)
	if l.UnknownCompletions > 0 {
		fmt.Fprintf(&b, "   UNKNOWN COMPLETIONS %d", l.UnknownCompletions)
	}
	b.WriteString("\n")
	bs := doc.BackendStats
	fmt.Fprintf(&b, "backend  %s: submitted %d   completed %d   inline %d   fallbacks %d   ring-full %d\n",
		bs.Name, bs.Submitted, bs.Completed, bs.Inline, bs.Fallbacks, bs.RingFull)
	tb := doc.Tables
	fmt.Fprintf(&b, "tables   nodes %d (own fds %d)   open handles %d   evictions %d   ordered I/O %d\n\n",
		tb.Nodes, tb.NodeFds, tb.Handles, tb.Evictions, doc.OrderedIO)

	fmt.Fprintf(&b, "%-16s %10s %10s %8s %9s %9s %9s\n", "OP", "COUNT", "RATE/s", "ERRORS", "P50", "P99", "MAX")
	if len(doc.Ops) == 0 {
		b.WriteString("(no requests yet)\n")
	}
	for i := range doc.Ops {
		o := &doc.Ops[i]
		h := o.histogram()
		n := o.Count
		if p := prevOps[o.Op]; p != nil {
			n -= p.Count
			ph := p.histogram()
			for j := range h.Counts {
				h.Counts[j] -= ph.Counts[j]
			}
		}
		p50, p99 := "-", "-"
		if n > 0 {
			p50, p99 = fmtDur(h.Quantile(0.50)), fmtDur(h.Quantile(0.99))
		}
		fmt.Fprintf(&b, "%-16s %10d %10s %8d %9s %9s %9s\n", o.Op, o.Count, fmtRate(n, span), o.Errors,
			p50, p99, fmtDur(secondsToDuration(o.Latency.MaxSeconds)))
	}
	return b.String()
}

func fmtRate(n uint64, seconds float64) string {
	if seconds <= 0 {
		return "-"
	}
	r := float64(n) / seconds
	if r >= 100 || r == 0 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.1f", r)
}

// fmtDur prints a duration with about three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmtNum(float64(d)/float64(time.Microsecond)) + "µs"
	case d < time.Second:
		return fmtNum(float64(d)/float64(time.Millisecond)) + "ms"
	default:
		return fmtNum(d.Seconds()) + "s"
	}
}

func fmtNum(v float64) string {
	var s string
	switch {
	case v < 10:
		s = fmt.Sprintf("%.2f", v)
	case v < 100:
		s = fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
