package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"evfs/fs"
	"evfs/loop"
)

func mountCommand() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "serve BACKING at MOUNTPOINT in the foreground until unmounted or signalled",
		ArgsUsage: "BACKING MOUNTPOINT",
		Description: "Everything done under MOUNTPOINT happens in BACKING. Each FUSE request is an event\n" +
			"on one loop goroutine; backing-filesystem syscalls run on the chosen backend.\n" +
			"SIGINT or SIGTERM unmounts cleanly (exit 0).",
		OnUsageError: func(c *cli.Context, err error, isSub bool) error { return usageError{err.Error()} },
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "backend", Value: "auto", Usage: "asynchronous I/O backend: auto (uring if the kernel allows, else pool), uring, pool, or sync (runs syscalls on the loop; for comparison only)"},
			&cli.StringFlag{Name: "transport", Value: "loop", Usage: "how FUSE requests reach the loop: loop (the loop polls /dev/fuse itself and writes the replies: no goroutine handoff) gofuse (go-fuse's server goroutines hand each request to the loop: slower, the reference design) or uring (FUSE over io_uring, Linux 6.14+ with the fuse module's enable_uring=Y: requests arrive as ring completions, each reply fetches the next; the loop stays on one thread)"},
			&cli.BoolFlag{Name: "resident-stat", Value: true, Usage: "on a local backing file system (tmpfs, ext4, xfs, btrfs, f2fs) the loop stats open inodes itself and tries dentry-cache-only opens, instead of handing each to a worker: those calls read memory and cannot wait for I/O (docs/DESIGN.md); false sends them to the backend like every other op"},
			&cli.BoolFlag{Name: "resident-data", Value: true, Usage: "on a memory backing file system (tmpfs, ramfs) with no swap, the loop runs every op of bounded work itself (reads and writes up to 128 KiB, opens, closes, namespace ops, listings, xattrs): none can wait for a device, and a handoff to a worker costs more than the op (docs/DESIGN.md); false sends them to the backend"},
			&cli.DurationFlag{Name: "spin", Value: fs.DefaultSpin, Usage: "how long the loop keeps polling for the next request or completion before it sleeps, yielding the CPU each round, while recent idle gaps were short (loop transport; 0: sleep at once). Trades otherwise idle CPU time for wakeups: p99 lower at queue depth 1 (docs/BENCHMARKS.md)"},
			&cli.BoolFlag{Name: "short-spin", Value: true, Usage: "while requests come one at a time, spin a fifth of --spin only, so that the scheduler may put the client on the loop's CPU (not for a daemon confined to one CPU, which spins all of --spin; docs/DESIGN.md, \"Spinning\"); false: always all of --spin"},
			&cli.BoolFlag{Name: "follow-client", Value: true, Usage: "while requests come one at a time from one client and the daemon may run on more than one CPU, the loop moves its thread to the CPU the client last ran on (read from /proc every 20 ms), then frees it again, so the two share a CPU instead of waking each other across CPUs (docs/DESIGN.md, \"Spinning\"); false: leave placement to the scheduler"},
			&cli.BoolFlag{Name: "lock-thread", Usage: "pin the loop goroutine to one OS thread (loop and uring transports; always on with --transport uring; an experiment with loop: on a 2-vCPU VM it made QD1 requests slower, the loop then rarely shares the client's CPU; docs/BENCHMARKS.md)"},
			&cli.IntFlag{Name: "workers", Value: 16, Usage: "worker goroutines of the pool backend (and of uring's fallback pool)"},
			&cli.BoolFlag{Name: "allow-other", Usage: "let other users use the mount; always implies default_permissions (kernel permission checks)"},
			&cli.BoolFlag{Name: "read-only", Usage: "mount read-only"},
			&cli.DurationFlag{Name: "entry-timeout", Value: fs.DefaultEntryTimeout, Usage: "how long the kernel may cache name lookups"},
			&cli.DurationFlag{Name: "attr-timeout", Value: fs.DefaultAttrTimeout, Usage: "how long the kernel may cache attributes"},
			&cli.BoolFlag{Name: "readdirplus", Value: true, Usage: "answer READDIRPLUS (names with attributes in one request); the kernel uses it at the start of a listing and when lookups follow (READDIRPLUS_AUTO)"},
			&cli.BoolFlag{Name: "cache-dir", Value: true, Usage: "let the kernel cache directory listings between opens"},
			&cli.BoolFlag{Name: "writeback-cache", Usage: "let the kernel buffer writes (faster small writes; data reaches the backing fs later)"},
			&cli.IntFlag{Name: "max-write", Value: fs.DefaultMaxWrite, Usage: "largest READ/WRITE request in bytes"},
			&cli.IntFlag{Name: "max-background", Value: fs.DefaultMaxBackground, Usage: "kernel limit of asynchronous requests (readahead, async direct I/O)"},
			&cli.BoolFlag{Name: "nonempty", Usage: "allow mounting over a non-empty mountpoint (its files are hidden while mounted)"},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 10 * time.Second, Usage: "on SIGINT/SIGTERM, how long a busy mount may keep serving open files after being detached before its connection is aborted"},
			&cli.IntFlag{Name: "share-fds-above", Usage: "once the mount holds `N` backing fds, a regular file opened shares its node's fd, one fd per open file instead of two (costs two syscalls per open and close; docs/DESIGN.md, \"One fd per open file\"). 0: once a quarter of RLIMIT_NOFILE in files is open or three quarters in fds are held; 1: every open file; -1: never"},
			&cli.BoolFlag{Name: "debug", Usage: "log every request, submission and completion"},
			&cli.IntFlag{Name: "gc-floor-mib", Value: defaultGCFloorMiB, Usage: "the Go heap may grow by at least this many MiB of garbage between collections (a ballast: address space, not memory); the daemon's live heap is a few MiB, so without it a busy mount collects every few hundred requests (0: Go's default pacing)"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a Go CPU profile of the daemon to `FILE` (for go tool pprof)"},
			&cli.StringFlag{Name: "memprofile", Usage: "write a Go allocation profile of the daemon to `FILE` at unmount (go tool pprof -sample_index=alloc_space)"},
		}, observabilityFlags()...),
		Action: mountAction,
	}
}

func mountAction(c *cli.Context) error {
	if c.NArg() != 2 {
		return usagef("mount needs BACKING and MOUNTPOINT (got %d arguments); see evfs mount --help", c.NArg())
	}
	level := slog.LevelInfo
	if c.Bool("debug") {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	backingDir, err := checkBacking(c.Args().Get(0))
	if err != nil {
		return err
	}
	mountpoint, err := checkMountpoint(c.Args().Get(1), c.Bool("nonempty"), func(msg string) { logger.Warn(msg) })
	if err != nil {
		return err
	}
	if within(mountpoint, backingDir) || within(backingDir, mountpoint) {
		return usagef("mountpoint %s and backing directory %s contain one another; the mount would recurse", mountpoint, backingDir)
	}
	backend := c.String("backend")
	switch backend {
	case "auto", "uring", "pool", "sync":
	default:
		return usagef("unknown --backend %q (want auto, uring, pool or sync)", backend)
	}
	if c.Int("workers") < 1 {
		return usagef("--workers must be at least 1")
	}
	if t := c.String("transport"); !slices.Contains(fs.Transports, t) {
		return usagef("unknown --transport %q (want loop, gofuse or uring)", t)
	}
	if err := checkFuse(); err != nil {
		return err
	}
	obs, err := newObservability(c, mountpoint, backingDir, logger) // control socket, metrics
	if err != nil {
		return err
	}
	defer obs.close()

	// The caller's mode bits must reach the backing fs unchanged.
	unix.Umask(0)

	cfg := fs.Config{
		Options: fs.Options{
			EntryTimeout:   c.Duration("entry-timeout"),
			AttrTimeout:    c.Duration("attr-timeout"),
			ReadOnly:       c.Bool("read-only"),
			Writeback:      c.Bool("writeback-cache"),
			CacheDir:       c.Bool("cache-dir"),
			Logger:         logger,
			Debug:          c.Bool("debug"),
			NoResident:     !c.Bool("resident-stat"),
			NoResidentData: !c.Bool("resident-data"),
			ShareFdsAbove:  c.Int("share-fds-above"),
		},
		Backend:       backend,
		Workers:       c.Int("workers"),
		AllowOther:    c.Bool("allow-other"),
		MaxWrite:      c.Int("max-write"),
		MaxBackground: c.Int("max-background"),
		ReadDirPlus:   c.Bool("readdirplus"),
		Transport:     c.String("transport"),
		LockThread:    c.Bool("lock-thread"),
		Spin:          c.Duration("spin"),
		LongSpinOnly:  !c.Bool("short-spin"),
		NoFollow:      !c.Bool("follow-client"),
		// This process never opens files of its own mount, so it needs
		// no poll probe; without it, a SIGKILL right after mounting
		// cannot catch the daemon holding one (fs/pollprobe.go).
		NoPollProbe: true,
	}
	cfg.StallThreshold = obs.loopStall()
	if err := testHooks(&cfg); err != nil {
		return err
	}
	sigs := &signalState{timeout: c.Duration("shutdown-timeout"), logger: logger}
	cfg.OnSignal = sigs.onSignal
	if mib := c.Int("gc-floor-mib"); mib > 0 {
		floor := gcBallast(mib)
		defer runtime.KeepAlive(floor)
	} else if mib < 0 {
		return usagef("--gc-floor-mib must be 0 or more (got %d)", mib)
	}
	if path := c.String("cpuprofile"); path != "" {
		stop, err := startCPUProfile(path)
		if err != nil {
			return err
		}
		defer stop()
	}
	if path := c.String("memprofile"); path != "" {
		defer writeMemProfile(path, logger)
	}
	m, err := fs.NewMount(backingDir, mountpoint, cfg)
	if err != nil {
		return err
	}
	dev, _ := mountDev(mountpoint)
	if d, err := time.ParseDuration(os.Getenv("EVFS_TEST_MOUNTED_DELAY")); err == nil {
		time.Sleep(d) // test-only: widen the window in which a signal finds no mount yet
	}
	m.Loop.Post("mounted", func() { sigs.mounted(m, dev) })
	obs.start(m)
	logger.Info("mounted", "backing", backingDir, "mountpoint", mountpoint, "backend", m.Loop.Backend())
	if err := m.Wait(); err != nil {
		return fmt.Errorf("serving %s: %w", mountpoint, err)
	}
	logger.Info("unmounted", "mountpoint", mountpoint)
	return nil
}

// signalState turns SIGINT/SIGTERM into shutdown steps: the first
// unmounts (shutdown), a second aborts the connection at once. Owned by
// the loop goroutine: OnSignal runs there, and the mount is handed over by
// an event once NewMount has returned. A signal can come before that (the
// mount is visible and served while NewMount still probes it); it is
// acted on when the mount arrives, not dropped.
type signalState struct {
	m        *fs.Mount
	dev      uint64
	received int // signals so far
	acted    int // signals acted on
	timeout  time.Duration
	logger   *slog.Logger
}

func (s *signalState) onSignal(sig os.Signal) {
	s.received++ // the loop has logged it
	s.act()
}

func (s *signalState) mounted(m *fs.Mount, dev uint64) {
	s.m, s.dev = m, dev
	s.act()
}

func (s *signalState) act() {
	for s.m != nil && s.acted < s.received {
		// On the loop: unmounting waits for the kernel, so do it elsewhere.
		switch s.acted++; s.acted {
		case 1:
			go shutdown(s.m, s.dev, s.timeout, s.logger)
		case 2: // the user will not wait for open files
			s.logger.Warn("second signal: aborting the FUSE connection now")
			go abortDev(s.dev)
		}
	}
}

// shutdown unmounts after SIGINT/SIGTERM. A busy mount (open files, a
// shell's cwd) is detached lazily, with the culprits named; it then keeps
// serving the files already open for up to timeout, after which its
// connection is aborted so the daemon can exit.
func shutdown(m *fs.Mount, dev uint64, timeout time.Duration, logger *slog.Logger) {
	err := unix.Unmount(m.Mountpoint, 0)
	if err != nil {
		logger.Warn("mount is busy; detaching it lazily", "mountpoint", m.Mountpoint, "err", err,
			"held_by", strings.Join(holders(m.Mountpoint), ", "))
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil {
			logger.Error("lazy unmount failed", "mountpoint", m.Mountpoint, "err", err)
		}
	}
	select {
	case <-m.Served():
	case <-time.After(timeout):
		logger.Warn("still in use after the shutdown timeout; aborting the connection", "timeout", timeout)
		abortDev(dev)
	}
}

// testHooks reads test-only fault injection from the environment:
// EVFS_TEST_DELAY_READ=NAME:DURATION delays reads of backing file NAME;
// EVFS_TEST_MOUNTED_DELAY=DURATION waits that long, once mounted, before
// the signal handling gets the mount (see signalState);
// EVFS_TEST_FAULTS=KIND=ERRNO|delay:D,… fails or delays every backend op
// of a kind (loop.ParseFaults), e.g. READ=EIO,WRITE=ENOSPC,OPENAT=EACCES.
func testHooks(cfg *fs.Config) error {
	if v := os.Getenv("EVFS_TEST_FAULTS"); v != "" {
		faults, err := loop.ParseFaults(v)
		if err != nil {
			return usagef("EVFS_TEST_FAULTS: %v", err)
		}
		cfg.Faults = faults
	}
	o := &cfg.Options
	v := os.Getenv("EVFS_TEST_DELAY_READ")
	if v == "" {
		return nil
	}
	name, dur, ok := strings.Cut(v, ":")
	d, err := time.ParseDuration(dur)
	if !ok || err != nil || name == "" {
		return usagef("EVFS_TEST_DELAY_READ=%q: want NAME:DURATION", v)
	}
	o.TestDelayRead, o.TestDelay = name, d
	return nil
}

// checkDir resolves path and insists it is an existing directory.
func checkDir(what, path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", usagef("%s %s: %v", what, path, err)
	}
	st, err := os.Stat(abs)
	switch {
	case os.IsNotExist(err):
		return "", usagef("%s %s does not exist", what, path)
	case err != nil:
		return "", usagef("%s %s: %v", what, path, err)
	case !st.IsDir():
		return "", usagef("%s %s is not a directory", what, path)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return abs, nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// startCPUProfile profiles the daemon until the returned stop is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// writeMemProfile writes the allocation profile (every allocation since
// start, sampled) at the end of the run.
func writeMemProfile(path string, logger *slog.Logger) {
	f, err := os.Create(path)
	if err != nil {
		logger.Error("memory profile", "err", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		logger.Error("memory profile", "err", err)
	}
}

// defaultGCFloorMiB: readdir of 1 000 entries allocated ~240 KiB, and
// the collector ran every ~6 ms of such listings with the default 4 MiB
// heap goal; docs/BENCHMARKS-history.md (session 7) has what the floor
// changes. Since ops are recycled (session 13) a listing allocates 43 KB,
// and the floor matters less.
const defaultGCFloorMiB = 16

// gcBallast allocates mib MiB that are never touched: the heap goal
// (twice the live heap, GOGC=100) then starts above 2×mib MiB, and the
// pages, fresh from the kernel and never written, cost no memory.
// Pointer-free, so the collector never scans it.
func gcBallast(mib int) []byte { return make([]byte, mib<<20) }
