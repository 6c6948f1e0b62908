package main

// evfs bench: flags, validation and the orchestration of rounds ×
// workloads × targets. See docs/BENCHMARKS.md.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// benchTargetNames lists the targets; with defaults, only the ones
// measured when --targets is not given.
func benchTargetNames(defaults bool) []string {
	var n []string
	for _, t := range benchTargetList {
		if !defaults || !t.Optional {
			n = append(n, t.Name)
		}
	}
	return n
}

func benchWorkloadNames() []string {
	var n []string
	for _, w := range benchWorkloadList {
		n = append(n, w.Name)
	}
	return n
}

func benchCommand() *cli.Command {
	var wl strings.Builder
	for _, w := range benchWorkloadList {
		fmt.Fprintf(&wl, "  %-16s %s\n", w.Name, w.Desc)
	}
	var tl strings.Builder
	for _, t := range benchTargetList {
		fmt.Fprintf(&tl, "  %-17s %s\n", t.Name, t.Desc)
	}
	return &cli.Command{
		Name:  "bench",
		Usage: "measure evfs against the backing directory and go-fuse's loopback",
		Description: "Creates a data set under --backing, copies it once per target, mounts every FUSE target\n" +
			"by running this binary as a child (evfs mount, or go-fuse's loopback), and runs each\n" +
			"workload on each target for --rounds rounds, targets interleaved. Every FUSE target gets\n" +
			"the same kernel settings: entry/attr/negative timeouts 0 (metadata reaches the daemon),\n" +
			"max_write 1 MiB, max_background 64, readdirplus on, writeback cache and directory cache off.\n" +
			"Data workloads use O_DIRECT. Prints medians over rounds; see docs/BENCHMARKS.md.\n\n" +
			"Targets:\n" + tl.String() + "\nWorkloads:\n" + wl.String(),
		OnUsageError: func(c *cli.Context, err error, isSub bool) error { return usageError{err.Error()} },
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "backing", Value: os.TempDir(), Usage: "`DIR` under which a fresh work directory (data set copies, mountpoints, daemon logs) is made and removed afterwards; its file system is the backing file system measured (/dev/shm for tmpfs)"},
			&cli.StringFlag{Name: "targets", Value: strings.Join(benchTargetNames(true), ","), Usage: "comma-separated `LIST` of targets to measure: " + strings.Join(benchTargetNames(false), ", ")},
			&cli.StringFlag{Name: "workloads", Value: "all", Usage: "comma-separated `LIST` of workloads, or all: " + strings.Join(benchWorkloadNames(), ", ")},
			&cli.IntFlag{Name: "rounds", Value: 3, Usage: "`N` rounds; each runs every workload on every target, and the report shows medians over rounds"},
			&cli.DurationFlag{Name: "duration", Value: 2 * time.Second, Usage: "measured time of one workload on one target in one round"},
			&cli.DurationFlag{Name: "warmup", Value: 250 * time.Millisecond, Usage: "untimed warm-up before each measured run"},
			&cli.Int64Flag{Name: "ops", Usage: "run a fixed number of operations (all clients together) instead of --duration"},
			&cli.StringFlag{Name: "json", Usage: "also write the results as JSON to `FILE` (schema in docs/BENCHMARKS.md)"},
			&cli.StringFlag{Name: "html", Usage: "also write a self-contained HTML report with latency CDFs to `FILE`"},
			&cli.IntFlag{Name: "workers", Value: 16, Usage: "--workers given to evfs mount (pool workers)"},
			&cli.StringFlag{Name: "baseline", Value: "passthrough", Usage: "`TARGET` the ratio columns compare against"},
			&cli.BoolFlag{Name: "keep", Usage: "keep the work directory (data sets and daemon logs) afterwards"},
			&cli.StringFlag{Name: "placement", Value: "free", Usage: "`WHERE` daemons and clients run: " + benchPlacements + "; pinned, every daemon is measured at the same placement (docs/BENCHMARKS.md)"},
			&cli.StringFlag{Name: "passthrough-hp", Usage: "`PATH` of a passthrough_hp binary (libfuse's example/passthrough_hp.cc, built by you) to measure as target passthrough_hp; given, the target joins the default --targets"},
		},
		Action: benchAction,
	}
}

// benchOptions are the validated flags.
type benchOptions struct {
	backing   string
	targets   []benchTargetInfo
	workloads []benchWorkload
	rounds    int
	run       benchRunConfig
	jsonPath  string
	htmlPath  string
	workers   int
	baseline  string
	keep      bool
	placement benchPlacement
}

// benchParseList splits a comma-separated list, dropping blanks and
// repeats, and checks every name against known ("all" allowed if
// allowAll). what names the flag in errors.
func benchParseList(what, list string, known []string, allowAll bool) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" || slices.Contains(out, f) {
			continue
		}
		if allowAll && f == "all" {
			return known, nil
		}
		if !slices.Contains(known, f) {
			return nil, usagef("unknown %s %q in --%ss (known: %s)", what, f, what, strings.Join(known, ", "))
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, usagef("--%ss is empty (known: %s)", what, strings.Join(known, ", "))
	}
	return out, nil
}

func benchParseFlags(c *cli.Context) (benchOptions, error) {
	var o benchOptions
	if c.NArg() != 0 {
		return o, usagef("bench takes no arguments (got %q); see evfs bench --help", c.Args().Slice())
	}
	targets := c.String("targets")
	hp := c.String("passthrough-hp")
	if hp != "" && !c.IsSet("targets") {
		targets += ",passthrough_hp"
	}
	tn, err := benchParseList("target", targets, benchTargetNames(false), false)
	if err != nil {
		return o, err
	}
	for _, n := range tn {
		t, _ := benchTargetByName(n)
		if t.Kind == "external" {
			if hp == "" {
				return o, usagef("target %s needs --passthrough-hp PATH (build libfuse's example/passthrough_hp.cc)", t.Name)
			}
			if t.Exe, err = exec.LookPath(hp); err != nil {
				return o, usagef("--passthrough-hp %s: %v", hp, err)
			}
		}
		o.targets = append(o.targets, t)
	}
	wn, err := benchParseList("workload", c.String("workloads"), benchWorkloadNames(), true)
	if err != nil {
		return o, err
	}
	for _, n := range wn {
		w, _ := benchWorkloadByName(n)
		o.workloads = append(o.workloads, w)
	}
	o.baseline = c.String("baseline")
	if _, ok := benchTargetByName(o.baseline); !ok {
		return o, usagef("unknown --baseline target %q (known: %s)", o.baseline, strings.Join(benchTargetNames(false), ", "))
	}
	o.rounds = c.Int("rounds")
	if o.rounds < 1 {
		return o, usagef("--rounds must be at least 1")
	}
	if o.placement, err = benchParsePlacement(c.String("placement")); err != nil {
		return o, err
	}
	o.run = benchRunConfig{Warmup: c.Duration("warmup"), Duration: c.Duration("duration"), Ops: c.Int64("ops"), Pin: o.placement.pinClient}
	switch {
	case o.run.Ops < 0:
		return o, usagef("--ops must not be negative")
	case o.run.Ops == 0 && o.run.Duration <= 0:
		return o, usagef("--duration must be positive (or give --ops)")
	case o.run.Warmup < 0:
		return o, usagef("--warmup must not be negative")
	}
	o.workers = c.Int("workers")
	if o.workers < 1 {
		return o, usagef("--workers must be at least 1")
	}
	o.backing, err = checkDir("--backing directory", c.String("backing"))
	if err != nil {
		return o, err
	}
	for _, f := range []struct{ flag, path string }{{"json", c.String("json")}, {"html", c.String("html")}} {
		if f.path == "" {
			continue
		}
		dir := filepath.Dir(f.path)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return o, usagef("--%s %s: directory %s does not exist", f.flag, f.path, dir)
		}
	}
	o.jsonPath, o.htmlPath = c.String("json"), c.String("html")
	o.keep = c.Bool("keep")
	for _, t := range o.targets {
		if t.Kind == "native" {
			continue
		}
		if _, err := os.Stat("/dev/fuse"); err != nil {
			return o, usagef("target %s needs /dev/fuse: load the fuse module (modprobe fuse)", t.Name)
		}
		if os.Geteuid() != 0 {
			return o, usagef("target %s needs root: evfs mounts without fusermount", t.Name)
		}
	}
	return o, nil
}

// benchProgress is the one-line progress indicator on stderr (plain
// lines when stderr is not a terminal).
type benchProgress struct {
	w           io.Writer
	tty         bool
	total, done int
	line        bool // a progress line is on screen
}

func newBenchProgress(total int) *benchProgress {
	_, err := unix.IoctlGetTermios(int(os.Stderr.Fd()), unix.TCGETS)
	return &benchProgress{w: os.Stderr, tty: err == nil, total: total}
}

func (p *benchProgress) step(format string, a ...any) {
	p.done++
	msg := fmt.Sprintf("[%d/%d] ", p.done, p.total) + fmt.Sprintf(format, a...)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", msg)
		p.line = true
		return
	}
	fmt.Fprintln(p.w, msg)
}

// logf prints a message on its own line, around the progress line.
func (p *benchProgress) logf(format string, a ...any) {
	if p.line {
		fmt.Fprint(p.w, "\r\033[K")
		p.line = false
	}
	fmt.Fprintf(p.w, "bench: "+format+"\n", a...)
}

func (p *benchProgress) finish() {
	if p.line {
		fmt.Fprint(p.w, "\r\033[K")
		p.line = false
	}
}

// benchSession is one evfs bench run.
type benchSession struct {
	opts     benchOptions
	kernel   benchKernel
	exe      string
	work     string
	targets  []*benchTarget
	progress *benchProgress
	stop     atomic.Bool
	report   benchReport
	// per workload, per target: the stats of every successful round
	stats    map[[2]string][]benchStats
	errs     map[[2]string][]string
	failures map[string]int
	logs     map[[3]string]*benchLogGroup
	logOrder []*benchLogGroup
}

// benchMaxFailures is how many failed runs retire a target.
const benchMaxFailures = 4

func benchAction(c *cli.Context) error {
	opts, err := benchParseFlags(c)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the evfs binary to run the targets: %w", err)
	}
	s := &benchSession{
		opts: opts, kernel: benchDefaultKernel, exe: exe,
		stats: map[[2]string][]benchStats{}, errs: map[[2]string][]string{}, failures: map[string]int{},
		logs: map[[3]string]*benchLogGroup{},
	}
	s.progress = newBenchProgress(opts.rounds * len(opts.workloads) * len(opts.targets))

	// Ctrl-C: stop the workloads and clean up; a second one kills the
	// daemons at once (a request stuck in one then fails).
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		n := 0
		for range sigs {
			n++
			s.stop.Store(true)
			if n == 1 {
				fmt.Fprintln(os.Stderr, "\nbench: interrupted; stopping and unmounting (again to kill the daemons)")
				continue
			}
			for _, t := range s.targets {
				t.kill()
			}
		}
	}()

	s.report.Schema = benchSchema
	s.report.Machine = benchMachineInfo(opts.backing)
	if s.report.Machine.Load1Start > float64(s.report.Machine.Cores) {
		s.progress.logf("warning: load average %.2f exceeds %d cores; results will be noisy",
			s.report.Machine.Load1Start, s.report.Machine.Cores)
	}

	runErr := s.runAll()
	if cerr := s.cleanup(); cerr != nil {
		s.problem(0, "", "", "cleanup", cerr.Error())
	}
	s.flushLogs()
	s.progress.finish()
	s.report.Machine.Load1End = benchLoad1()
	s.report.Complete = runErr == nil && !s.stop.Load()
	s.aggregate()
	s.report.writeText(os.Stdout)

	var errs []error
	if runErr != nil {
		errs = append(errs, runErr)
	}
	if opts.jsonPath != "" {
		if err := s.report.writeJSON(opts.jsonPath); err != nil {
			errs = append(errs, fmt.Errorf("writing --json: %w", err))
		}
	}
	if opts.htmlPath != "" {
		if err := s.report.writeHTML(opts.htmlPath); err != nil {
			errs = append(errs, fmt.Errorf("writing --html: %w", err))
		}
	}
	if s.stop.Load() && runErr == nil {
		errs = append(errs, errors.New("interrupted"))
	}
	failed := 0
	for _, p := range s.report.Problems {
		if p.Kind == "error" {
			failed++
		}
	}
	if failed > 0 || len(s.report.Skipped) > 0 {
		errs = append(errs, fmt.Errorf("%d run(s) failed and %d target(s) were skipped; see the problems listed after the table",
			failed, len(s.report.Skipped)))
	}
	return errors.Join(errs...)
}

func (s *benchSession) problem(round int, workload, target, kind, msg string) {
	p := benchProblem{Round: round, Workload: workload, Target: target, Kind: kind, Message: msg}
	s.report.Problems = append(s.report.Problems, p)
	s.progress.logf("%s", p)
}

// daemonLog files a line a daemon logged during a run. Lines alike (the
// same message and event, whatever their time and duration) are counted
// together per workload and target, so a chatty daemon cannot drown the
// report; they are listed after the run.
func (s *benchSession) daemonLog(round int, workload, target, line string) {
	key, took := benchNormaliseLog(line)
	g := s.logs[[3]string{workload, target, key}]
	if g == nil {
		g = &benchLogGroup{workload: workload, target: target, key: key, example: line}
		s.logs[[3]string{workload, target, key}] = g
		s.logOrder = append(s.logOrder, g)
	}
	g.count++
	if !slices.Contains(g.rounds, round) {
		g.rounds = append(g.rounds, round)
	}
	g.maxTook = max(g.maxTook, took)
}

// benchLogGroup is one kind of daemon log line on one workload and target.
type benchLogGroup struct {
	workload, target, key, example string
	count                          int
	rounds                         []int
	maxTook                        time.Duration
}

var (
	benchLogTime = regexp.MustCompile(`^time=\S+ |^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(\.\d+)? `)
	benchLogTook = regexp.MustCompile(`\btook=(\S+)`)
)

// benchNormaliseLog strips a log line's time stamp and duration, and
// returns the duration (slog's took=…) if there was one.
func benchNormaliseLog(line string) (string, time.Duration) {
	key := benchLogTime.ReplaceAllString(line, "")
	var took time.Duration
	if m := benchLogTook.FindStringSubmatch(key); m != nil {
		took, _ = time.ParseDuration(m[1])
		key = benchLogTook.ReplaceAllString(key, "took=…")
	}
	return key, took
}

// flushLogs turns the daemon log groups into problems.
func (s *benchSession) flushLogs() {
	// In report order: workloads, then targets, then unmount.
	rank := map[string]int{}
	for i, w := range s.opts.workloads {
		rank["w:"+w.Name] = i
	}
	rank["w:unmount"] = len(s.opts.workloads)
	for i, t := range s.opts.targets {
		rank["t:"+t.Name] = i
	}
	slices.SortStableFunc(s.logOrder, func(a, b *benchLogGroup) int {
		if d := rank["w:"+a.workload] - rank["w:"+b.workload]; d != 0 {
			return d
		}
		return rank["t:"+a.target] - rank["t:"+b.target]
	})
	for _, g := range s.logOrder {
		var rounds []string
		for _, r := range g.rounds {
			if r > 0 {
				rounds = append(rounds, fmt.Sprint(r))
			}
		}
		msg := fmt.Sprintf("%d× %s", g.count, g.key)
		if g.maxTook > 0 {
			msg += fmt.Sprintf(" (longest took=%v)", g.maxTook.Round(10*time.Microsecond))
		}
		if len(rounds) > 0 {
			msg += " in round(s) " + strings.Join(rounds, ",")
		}
		s.report.Problems = append(s.report.Problems, benchProblem{Workload: g.workload, Target: g.target, Kind: "daemon-log", Message: msg})
	}
	s.logOrder, s.logs = nil, map[[3]string]*benchLogGroup{}
}

// runAll prepares the work directory and runs every round.
func (s *benchSession) runAll() error {
	o := s.opts
	work, err := os.MkdirTemp(o.backing, "evfs-bench-")
	if err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	s.work = work
	s.report.Machine.BackingDir = work
	for _, d := range []string{"data", "mnt", "logs"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o755); err != nil {
			return err
		}
	}
	s.progress.logf("creating the data set in %s", work)
	seed := filepath.Join(work, "seed")
	if err := os.Mkdir(seed, 0o755); err != nil {
		return err
	}
	if err := benchMakeDataSet(seed); err != nil {
		return fmt.Errorf("creating the data set: %w", err)
	}
	for _, ti := range o.targets {
		t := &benchTarget{
			benchTargetInfo: ti,
			dataDir:         filepath.Join(work, "data", ti.Name),
			mnt:             filepath.Join(work, "mnt", ti.Name),
			logPath:         filepath.Join(work, "logs", ti.Name+".log"),
		}
		if s.stop.Load() {
			return nil
		}
		if err := benchCopyTree(seed, t.dataDir); err != nil {
			return fmt.Errorf("copying the data set for %s: %w", ti.Name, err)
		}
		if ti.Kind != "native" {
			if err := os.Mkdir(t.mnt, 0o755); err != nil {
				return err
			}
		}
		s.targets = append(s.targets, t)
	}
	if err := os.RemoveAll(seed); err != nil {
		return err
	}
	// Let the copies reach the disk now rather than during a measurement.
	if fd, err := unix.Open(work, unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
		_ = unix.Syncfs(fd)
		unix.Close(fd)
	}
	s.fillSettings()

	for round := 1; round <= o.rounds; round++ {
		// Targets take turns going first, so none always runs right
		// after the same neighbour.
		order := slices.Clone(s.targets)
		k := (round - 1) % len(order)
		order = append(order[k:], order[:k]...)
		for _, w := range o.workloads {
			for _, t := range order {
				if s.stop.Load() {
					return nil
				}
				s.progress.step("round %d/%d  %-16s on %s", round, o.rounds, w.Name, t.Name)
				s.runOne(round, w, t)
			}
		}
	}
	return nil
}

// runOne runs workload w on target t, mounting it first if need be.
func (s *benchSession) runOne(round int, w benchWorkload, t *benchTarget) {
	key := [2]string{w.Name, t.Name}
	if t.dead != nil {
		return
	}
	if !t.mounted || !t.alive() {
		if t.cmd != nil {
			if err := t.stop(3 * time.Second); err != nil {
				s.problem(round, w.Name, t.Name, "cleanup", err.Error())
			}
		}
		if err := t.start(s.exe, s.kernel, s.opts.workers, s.opts.placement, 15*time.Second); err != nil {
			t.dead = err
			s.report.Skipped = append(s.report.Skipped, benchSkip{Target: t.Name, Reason: err.Error()})
			s.progress.logf("skipping %s from now on: %v", t.Name, err)
			_ = t.stop(3 * time.Second)
			return
		}
		s.noteMount(t)
	}

	var cpu func() (float64, error)
	if pid := t.pid(); pid != 0 {
		cpu = func() (float64, error) { return benchProcCPU(pid) }
	}
	// A workload that makes no progress long past its time has hung in
	// the daemon: kill the daemon, so the kernel fails its requests.
	limit := s.opts.run.Warmup + s.opts.run.Duration + 30*time.Second
	if s.opts.run.Ops > 0 {
		limit = 10 * time.Minute
	}
	var hung atomic.Bool
	var watchdog *time.Timer
	if t.Kind != "native" {
		watchdog = time.AfterFunc(limit, func() { hung.Store(true); t.kill() })
	}
	res, err := benchRun(w, t.root(), s.opts.run, cpu, &s.stop)
	if watchdog != nil {
		watchdog.Stop()
	}
	for _, m := range t.newMessages() {
		s.daemonLog(round, w.Name, t.Name, m)
	}
	switch {
	case errors.Is(err, errBenchStopped):
		return
	case err != nil:
		msg := err.Error()
		if hung.Load() {
			msg = fmt.Sprintf("no completion within %v, killed the daemon: %s", limit, msg)
		}
		if t.Kind != "native" && !t.alive() && !hung.Load() {
			msg += fmt.Sprintf(" (the daemon exited: %v; log: %s)", t.waitErr, t.logTail(8))
		}
		s.errs[key] = append(s.errs[key], fmt.Sprintf("round %d: %s", round, msg))
		s.problem(round, w.Name, t.Name, "error", msg)
		s.failures[t.Name]++
		if s.failures[t.Name] >= benchMaxFailures {
			t.dead = fmt.Errorf("%d failed runs", s.failures[t.Name])
			s.report.Skipped = append(s.report.Skipped, benchSkip{Target: t.Name, Reason: fmt.Sprintf("retired after %d failed runs (round %d, %s)", s.failures[t.Name], round, w.Name)})
			if err := t.stop(3 * time.Second); err != nil {
				s.problem(round, w.Name, t.Name, "cleanup", err.Error())
			}
		}
		return
	}
	if len(res.Lat) == 0 {
		s.problem(round, w.Name, t.Name, "error", "no operation completed")
		return
	}
	st := benchSummarise(res.Lat, res.Elapsed.Seconds())
	if res.CPUOK {
		st.setCPU(res.CPU, len(res.Lat))
	}
	s.stats[key] = append(s.stats[key], st)
}

// noteMount records what the kernel shows for a target's mount.
func (s *benchSession) noteMount(t *benchTarget) {
	for i := range s.report.Settings.Targets {
		st := &s.report.Settings.Targets[i]
		if st.Name == t.Name {
			st.FSType, st.SuperOpts = t.FSType, t.SuperOp
		}
	}
}

// cleanup stops every daemon and removes the work directory, unless a
// mount is somehow left under it or --keep was given.
func (s *benchSession) cleanup() error {
	var errs []error
	for _, t := range s.targets {
		if err := t.stop(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
		for _, m := range t.newMessages() {
			s.daemonLog(0, "unmount", t.Name, m)
		}
	}
	if s.work == "" {
		return errors.Join(errs...)
	}
	if left := benchMountsUnder(s.work); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still mounted, so %s was kept: %s", s.work, strings.Join(left, ", ")))
		return errors.Join(errs...)
	}
	if s.opts.keep {
		s.progress.logf("kept %s", s.work)
		return errors.Join(errs...)
	}
	if err := os.RemoveAll(s.work); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s *benchSession) fillSettings() {
	o, k := s.opts, s.kernel
	set := benchSettings{
		Rounds:    o.rounds,
		DurationS: o.run.Duration.Seconds(),
		WarmupS:   o.run.Warmup.Seconds(),
		Ops:       o.run.Ops,
		Order:     "for each round, for each workload, every target in turn (the first target rotates per round); daemons stay mounted between runs",
		Kernel: benchKernelJSON{
			EntryTimeoutS: k.EntryTimeout.Seconds(), AttrTimeoutS: k.AttrTimeout.Seconds(),
			NegativeTimeoutS: k.NegativeTimeout.Seconds(), MaxWrite: k.MaxWrite, MaxBackground: k.MaxBackground,
			ReadDirPlus: k.ReadDirPlus, WritebackCache: k.WritebackCache, DirCache: k.DirCache,
		},
		EvfsWorkers:   o.workers,
		Placement:     o.placement.Name,
		PlacementDesc: o.placement.String(),
		DataSet:       benchDataSetDesc,
		CDFQuantiles:  benchCDFQuantiles,
		Baseline:      o.baseline,
		Columns:       benchColumns,
	}
	for _, t := range s.targets {
		tj := benchTargetJSON{Name: t.Name, Description: t.Desc, Passthrough: t.Passthrough}
		if a := t.childArgs(k, o.workers); a != nil {
			prog := "evfs"
			if t.Exe != "" {
				prog = t.Exe
			}
			tj.Command = prog + " " + strings.Join(a, " ")
		}
		set.Targets = append(set.Targets, tj)
	}
	for _, w := range o.workloads {
		set.Workloads = append(set.Workloads, benchWorkloadJSON{Name: w.Name, Description: w.Desc, Clients: w.Clients, Throughput: w.Thruput})
	}
	s.report.Settings = set
}

// aggregate turns the rounds into results: medians, ratios, CDFs.
func (s *benchSession) aggregate() {
	if s.report.Settings.Targets == nil {
		s.fillSettings()
	}
	for _, w := range s.opts.workloads {
		var base *benchResult
		var rows []benchResult
		for _, ti := range s.opts.targets {
			key := [2]string{w.Name, ti.Name}
			rounds := s.stats[key]
			r := benchResult{Workload: w.Name, Target: ti.Name, Rounds: len(rounds), Errors: s.errs[key]}
			if len(rounds) > 0 {
				col := func(f func(benchStats) float64) []float64 {
					var v []float64
					for _, st := range rounds {
						v = append(v, f(st))
					}
					return v
				}
				r.P50Rounds = col(func(st benchStats) float64 { return st.P50 })
				r.OpsRounds = col(func(st benchStats) float64 { return st.OpsPerSec })
				r.P50 = benchMedian(r.P50Rounds)
				r.P90 = benchMedian(col(func(st benchStats) float64 { return st.P90 }))
				r.P99 = benchMedian(col(func(st benchStats) float64 { return st.P99 }))
				r.Max = benchMedian(col(func(st benchStats) float64 { return st.Max }))
				r.OpsPerSec = benchMedian(r.OpsRounds)
				cpuKnown := true
				for _, st := range rounds {
					cpuKnown = cpuKnown && st.CPUKnown
					r.Samples += st.Samples
				}
				if cpuKnown {
					v := benchMedian(col(func(st benchStats) float64 { return st.CPUSecondsPerMop }))
					r.CPUPerMop = &v
				}
				r.CDF = make([]float64, len(benchCDFQuantiles))
				for _, st := range rounds {
					for i, v := range st.Quantiles {
						r.CDF[i] += v / float64(len(rounds))
					}
				}
				for i, v := range r.CDF {
					r.CDF[i] = math.Round(v*1000) / 1000 // to the nanosecond
				}
			}
			rows = append(rows, r)
		}
		for i := range rows {
			if rows[i].Target == s.opts.baseline && rows[i].Rounds > 0 {
				base = &rows[i]
			}
		}
		for i := range rows {
			r := &rows[i]
			if base == nil || r.Rounds == 0 {
				continue
			}
			if base.P50 > 0 {
				v := r.P50 / base.P50
				r.P50Ratio = &v
			}
			if base.OpsPerSec > 0 {
				v := r.OpsPerSec / base.OpsPerSec
				r.OpsRatio = &v
			}
		}
		s.report.Results = append(s.report.Results, rows...)
	}
}

// Machine information.

// benchFSMagic names statfs f_type values.
var benchFSMagic = map[int64]string{
	0xEF53:     "ext2/ext3/ext4",
	0x01021994: "tmpfs",
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x794C7630: "overlayfs",
	0x65735546: "fuse",
	0x2FC12FC1: "zfs",
	0x6969:     "nfs",
	0xF2F52010: "f2fs",
	0x858458F6: "ramfs",
	0x01021997: "v9fs",
	0x73717368: "squashfs",
	0x5346544E: "ntfs",
	0x4D44:     "vfat",
	0xCA451A4E: "bcachefs",
}

func benchFSType(path string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	if n, ok := benchFSMagic[int64(st.Type)]; ok {
		return n
	}
	return fmt.Sprintf("magic 0x%x", st.Type)
}

func benchLoad1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	v, err := benchParseLoadavg(string(b))
	if err != nil {
		return -1
	}
	return v
}

func benchMachineInfo(backing string) benchMachine {
	m := benchMachine{
		Cores:       runtime.NumCPU(),
		GoVersion:   runtime.Version(),
		EvfsVersion: version,
		BackingDir:  backing,
		BackingFS:   benchFSType(backing),
		TmpFS:       benchFSType(os.TempDir()),
		Load1Start:  benchLoad1(),
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kb int
			if n, _ := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); n == 1 {
				m.MemTotalMiB = kb >> 10
				break
			}
		}
		f.Close()
	}
	return m
}
