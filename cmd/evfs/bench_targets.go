package main

// The targets of evfs bench and how each is mounted: every FUSE target is
// a child process running this same binary (evfs mount, or the hidden
// serve-loopback subcommand for go-fuse's loopback baseline), so each
// daemon's CPU time can be read from /proc and a crash cannot take the
// bench with it.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// benchTargetInfo describes one target name.
type benchTargetInfo struct {
	Name        string
	Kind        string   // "native", "loopback", "evfs" or "external"
	Backend     string   // evfs: the --backend
	Passthrough bool     // loopback: kernel FUSE passthrough allowed
	Extra       []string // evfs: more mount flags
	Env         []string // more environment for the child (NAME=value)
	Desc        string
	Optional    bool   // not in the default --targets
	Exe         string // external: the program to run (from a flag)
}

// benchTargetList is every target, in the default order.
var benchTargetList = []benchTargetInfo{
	{Name: "native", Kind: "native", Desc: "the backing directory itself, no FUSE"},
	{Name: "passthrough", Kind: "loopback", Desc: "go-fuse fs.NewLoopbackRoot, kernel passthrough disabled (the baseline: every op reaches the daemon)"},
	{Name: "kpassthrough", Kind: "loopback", Passthrough: true, Desc: "go-fuse fs.NewLoopbackRoot with kernel FUSE passthrough (reads/writes bypass the daemon)"},
	{Name: "evfs-uring", Kind: "evfs", Backend: "uring", Extra: []string{"--transport=loop"}, Desc: "evfs mount --backend uring --transport loop"},
	{Name: "evfs-pool", Kind: "evfs", Backend: "pool", Extra: []string{"--transport=loop"}, Desc: "evfs mount --backend pool --transport loop"},
	{Name: "evfs-sync", Kind: "evfs", Backend: "sync", Extra: []string{"--transport=loop"}, Desc: "evfs mount --backend sync --transport loop"},
	{Name: "evfs-uring-gofuse", Kind: "evfs", Backend: "uring", Extra: []string{"--transport=gofuse"}, Optional: true,
		Desc: "evfs mount --backend uring --transport gofuse (go-fuse's reader goroutines hand requests to the loop)"},
	{Name: "evfs-pool-gofuse", Kind: "evfs", Backend: "pool", Extra: []string{"--transport=gofuse"}, Optional: true,
		Desc: "evfs mount --backend pool --transport gofuse"},
	{Name: "evfs-uring-furing", Kind: "evfs", Backend: "uring", Extra: []string{"--transport=uring"}, Optional: true,
		Desc: "evfs mount --backend uring --transport uring (FUSE over io_uring; needs the fuse module's enable_uring=Y)"},
	{Name: "evfs-uring-furing-locked", Kind: "evfs", Backend: "uring", Extra: []string{"--transport=uring", "--lock-thread"}, Optional: true,
		Desc: "evfs mount --backend uring --transport uring --lock-thread (every ring command from one thread)"},
	{Name: "evfs-uring-locked", Kind: "evfs", Backend: "uring", Extra: []string{"--transport=loop", "--lock-thread"}, Optional: true,
		Desc: "evfs mount --backend uring --lock-thread (loop pinned to its OS thread)"},
	{Name: "evfs-uring-spin", Kind: "evfs", Backend: "uring", Extra: []string{"--transport=loop", "--spin=100us"}, Optional: true,
		Desc: "evfs mount --backend uring --spin 100us (the loop polls 100 µs before sleeping)"},
	{Name: "evfs-uring-nospin", Kind: "evfs", Backend: "uring", Extra: []string{"--transport=loop", "--spin=0"}, Optional: true,
		Desc: "evfs mount --backend uring --spin 0 (the loop sleeps as soon as it runs out of work)"},
	{Name: "evfs-uring-longspin", Kind: "evfs", Backend: "uring", Extra: []string{"--transport=loop", "--short-spin=false"}, Optional: true,
		Desc: "evfs mount --backend uring --short-spin=false (the loop spins the whole --spin even for requests that come one at a time)"},
	{Name: "evfs-uring-nofollow", Kind: "evfs", Backend: "uring", Extra: []string{"--transport=loop", "--follow-client=false"}, Optional: true,
		Desc: "evfs mount --backend uring --follow-client=false (the loop stays where the scheduler puts it)"},
	{Name: "evfs-pool-spin", Kind: "evfs", Backend: "pool", Extra: []string{"--transport=loop", "--spin=100us"}, Optional: true,
		Desc: "evfs mount --backend pool --spin 100us"},
	{Name: "evfs-sync-spin", Kind: "evfs", Backend: "sync", Extra: []string{"--transport=loop", "--spin=100us"}, Optional: true,
		Desc: "evfs mount --backend sync --spin 100us"},
	{Name: "evfs-uring-p1", Kind: "evfs", Backend: "uring", Extra: []string{"--transport=loop"}, Env: []string{"GOMAXPROCS=1"}, Optional: true,
		Desc: "evfs mount --backend uring with GOMAXPROCS=1 (one P: no idle P for the Go scheduler to wake)"},
	{Name: "evfs-pool-p1", Kind: "evfs", Backend: "pool", Extra: []string{"--transport=loop"}, Env: []string{"GOMAXPROCS=1"}, Optional: true,
		Desc: "evfs mount --backend pool with GOMAXPROCS=1"},
	{Name: "evfs-uring-p2", Kind: "evfs", Backend: "uring", Extra: []string{"--transport=loop"}, Env: []string{"GOMAXPROCS=2"}, Optional: true,
		Desc: "evfs mount --backend uring with GOMAXPROCS=2 (two Ps even when --placement pins the daemon to one CPU, where Go would choose one)"},
	{Name: "evfs-uring-noresident", Kind: "evfs", Backend: "uring", Extra: []string{"--transport=loop", "--resident-stat=false"}, Optional: true,
		Desc: "evfs mount --backend uring --resident-stat=false (every statx and open goes to the backend)"},
	{Name: "evfs-uring-nodata", Kind: "evfs", Backend: "uring", Extra: []string{"--transport=loop", "--resident-data=false"}, Optional: true,
		Desc: "evfs mount --backend uring --resident-data=false (on a memory root, only the statx of open inodes is done on the loop)"},
	{Name: "evfs-uring-nofloor", Kind: "evfs", Backend: "uring", Extra: []string{"--transport=loop", "--gc-floor-mib=0"}, Optional: true,
		Desc: "evfs mount --backend uring --gc-floor-mib 0 (Go's default heap pacing: a collection every ~4 MiB allocated)"},
	{Name: "passthrough_hp", Kind: "external", Optional: true,
		Desc: "libfuse's example/passthrough_hp.cc, built by you, run as PATH --foreground --nocache (needs --passthrough-hp PATH; it sets its own kernel options: timeouts 0, splice, default_permissions)"},
}

func benchTargetByName(name string) (benchTargetInfo, bool) {
	for _, t := range benchTargetList {
		if t.Name == name {
			return t, true
		}
	}
	return benchTargetInfo{}, false
}

// benchKernel is the kernel-facing configuration every FUSE target gets,
// passed explicitly to evfs mount and serve-loopback alike.
type benchKernel struct {
	EntryTimeout    time.Duration
	AttrTimeout     time.Duration
	NegativeTimeout time.Duration
	MaxWrite        int
	MaxBackground   int
	ReadDirPlus     bool
	WritebackCache  bool
	DirCache        bool // FOPEN_CACHE_DIR; go-fuse's loopback never sets it
}

// benchDefaultKernel: timeouts 0 so every metadata operation reaches the
// daemon, no caching the loopback baseline cannot also do.
var benchDefaultKernel = benchKernel{
	MaxWrite:      1 << 20,
	MaxBackground: 64,
	ReadDirPlus:   true,
}

func (k benchKernel) String() string {
	onoff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	return fmt.Sprintf("entry_timeout=%v attr_timeout=%v negative_timeout=%v max_write=%d max_background=%d readdirplus=%s writeback_cache=%s dir_cache=%s",
		k.EntryTimeout, k.AttrTimeout, k.NegativeTimeout, k.MaxWrite, k.MaxBackground,
		onoff(k.ReadDirPlus), onoff(k.WritebackCache), onoff(k.DirCache))
}

// benchTarget is one target during a run.
type benchTarget struct {
	benchTargetInfo
	dataDir string // this target's copy of the data set (its backing directory)
	mnt     string // mountpoint (FUSE targets)
	logPath string // the child's stderr and stdout

	cmd     *exec.Cmd
	exited  chan struct{} // closed when the child has been waited for
	waitErr error
	mounted bool
	logOff  int64 // how much of the log has been scanned for messages

	FSType  string // from mountinfo, e.g. fuse.evfs
	SuperOp string // super options from mountinfo
	dead    error  // set when the target failed; it is skipped from then on
}

// root is the directory the workloads run in.
func (t *benchTarget) root() string {
	if t.Kind == "native" {
		return t.dataDir
	}
	return t.mnt
}

// pid is the serving process, 0 for native.
func (t *benchTarget) pid() int {
	if t.cmd == nil || t.cmd.Process == nil {
		return 0
	}
	return t.cmd.Process.Pid
}

// childArgs is the command line that mounts the target.
func (t *benchTarget) childArgs(k benchKernel, workers int) []string {
	common := []string{
		"--entry-timeout=" + k.EntryTimeout.String(),
		"--attr-timeout=" + k.AttrTimeout.String(),
		"--max-write=" + strconv.Itoa(k.MaxWrite),
		"--max-background=" + strconv.Itoa(k.MaxBackground),
		"--readdirplus=" + strconv.FormatBool(k.ReadDirPlus),
		"--writeback-cache=" + strconv.FormatBool(k.WritebackCache),
	}
	switch t.Kind {
	case "evfs":
		a := []string{"mount", "--backend=" + t.Backend, "--workers=" + strconv.Itoa(workers),
			"--cache-dir=" + strconv.FormatBool(k.DirCache)}
		a = append(a, t.Extra...)
		a = append(a, common...)
		return append(a, t.dataDir, t.mnt)
	case "loopback":
		a := []string{"serve-loopback", "--passthrough=" + strconv.FormatBool(t.Passthrough),
			"--negative-timeout=" + k.NegativeTimeout.String()}
		a = append(a, common...)
		return append(a, t.dataDir, t.mnt)
	case "external":
		// passthrough_hp takes none of the common flags: --nocache gives
		// timeouts 0 and no writeback cache, like the others.
		return []string{"--foreground", "--nocache", t.dataDir, t.mnt}
	}
	return nil
}

// program is what start runs: this binary, or an external daemon.
func (t *benchTarget) program(self string) string {
	if t.Exe != "" {
		return t.Exe
	}
	return self
}

// benchChildEnv is the environment of a child: ours without evfs's
// test-only fault injection.
func benchChildEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "EVFS_TEST_") {
			env = append(env, e)
		}
	}
	return env
}

// start mounts a FUSE target by running exe as a child and waits until
// the mount appears in /proc/self/mountinfo. Native targets need nothing.
func (t *benchTarget) start(exe string, k benchKernel, workers int, place benchPlacement, timeout time.Duration) error {
	if t.Kind == "native" || t.mounted {
		return nil
	}
	logf, err := os.OpenFile(t.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	if st, err := logf.Stat(); err == nil {
		t.logOff = st.Size()
	}
	cmd := exec.Command(t.program(exe), t.childArgs(k, workers)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(benchChildEnv(), t.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true, // a terminal's Ctrl-C reaches the bench only; it stops the children itself
		// If the bench dies without cleaning up, the child unmounts itself.
		Pdeathsig: syscall.SIGTERM,
	}
	if err := place.start(cmd); err != nil {
		return fmt.Errorf("start %s: %w", t.Name, err)
	}
	t.cmd = cmd
	t.exited = make(chan struct{})
	go func() { t.waitErr = cmd.Wait(); close(t.exited) }()

	deadline := time.Now().Add(timeout)
	for {
		info, ok, err := benchMountinfo(t.mnt)
		if err != nil {
			return err
		}
		if ok {
			t.mounted = true
			t.FSType, t.SuperOp = info.fsType, info.superOpts
			return nil
		}
		select {
		case <-t.exited:
			return fmt.Errorf("%s exited before mounting (%v): %s", t.Name, t.waitErr, t.logTail(5))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not mount within %v: %s", t.Name, timeout, t.logTail(5))
		}
	}
}

// alive reports whether the child is still running (always true for native).
func (t *benchTarget) alive() bool {
	if t.Kind == "native" {
		return true
	}
	if t.exited == nil {
		return false
	}
	select {
	case <-t.exited:
		return false
	default:
		return true
	}
}

// stop unmounts a FUSE target: SIGTERM (the daemon unmounts itself), then
// a lazy unmount and SIGKILL if it does not go within grace. It never
// leaves the mount behind unless even MNT_DETACH fails.
func (t *benchTarget) stop(grace time.Duration) error {
	if t.Kind == "native" || t.cmd == nil {
		return nil
	}
	var errs []error
	if t.alive() {
		_ = t.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-t.exited:
		case <-time.After(grace):
			if err := unix.Unmount(t.mnt, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
				errs = append(errs, fmt.Errorf("lazy unmount %s: %w", t.mnt, err))
			}
			_ = t.cmd.Process.Kill()
			select {
			case <-t.exited:
			case <-time.After(grace):
				errs = append(errs, fmt.Errorf("%s (pid %d) survived SIGKILL", t.Name, t.pid()))
			}
			errs = append(errs, fmt.Errorf("%s did not exit within %v of SIGTERM; detached and killed it", t.Name, grace))
		}
	}
	// The daemon is gone; a mount it failed to remove is detached here.
	if _, ok, _ := benchMountinfo(t.mnt); ok {
		if err := unix.Unmount(t.mnt, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("lazy unmount %s: %w", t.mnt, err))
		} else {
			errs = append(errs, fmt.Errorf("%s exited leaving %s mounted; detached it", t.Name, t.mnt))
		}
	}
	t.mounted = false
	t.cmd = nil
	return errors.Join(errs...)
}

// kill ends a hung daemon at once; the kernel then aborts its connection
// and requests in flight fail with ENOTCONN.
func (t *benchTarget) kill() {
	if t.cmd != nil && t.cmd.Process != nil {
		_ = t.cmd.Process.Kill()
	}
}

// newMessages returns the lines the child logged since the last call that
// are not routine (anything but slog INFO/DEBUG lines).
func (t *benchTarget) newMessages() []string {
	if t.logPath == "" {
		return nil
	}
	f, err := os.Open(t.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(t.logOff, io.SeekStart); err != nil {
		return nil
	}
	data, _ := io.ReadAll(f)
	// Only whole lines; a partial one is read next time.
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	t.logOff += int64(len(data))
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.Contains(line, " level=INFO ") || strings.Contains(line, " level=DEBUG ") {
			continue
		}
		out = append(out, line)
	}
	return out
}

// logTail returns the last n lines of the child's log, joined.
func (t *benchTarget) logTail(n int) string {
	b, err := os.ReadFile(t.logPath)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	s := strings.Join(lines, " | ")
	if s == "" {
		return "(empty log)"
	}
	return s
}

// benchMount is one line of /proc/self/mountinfo.
type benchMount struct {
	mountPoint, fsType, source, superOpts string
}

// benchParseMountinfo finds mountpoint in mountinfo's contents. Fields:
// id parent maj:min root mountpoint options [optional…] - fstype source superopts.
func benchParseMountinfo(data, mountpoint string) (benchMount, bool) {
	for line := range strings.SplitSeq(data, "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || benchUnescapeMount(f[4]) != mountpoint {
			continue
		}
		m := benchMount{mountPoint: mountpoint}
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				if i+1 < len(f) {
					m.fsType = f[i+1]
				}
				if i+2 < len(f) {
					m.source = benchUnescapeMount(f[i+2])
				}
				if i+3 < len(f) {
					m.superOpts = f[i+3]
				}
				break
			}
		}
		return m, true
	}
	return benchMount{}, false
}

// benchUnescapeMount undoes mountinfo's octal escapes (\040 for space, …).
func benchUnescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func benchMountinfo(mountpoint string) (benchMount, bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return benchMount{}, false, err
	}
	m, ok := benchParseMountinfo(string(b), mountpoint)
	return m, ok, nil
}

// benchMountsUnder lists mount points at or below dir.
func benchMountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if mp := benchUnescapeMount(f[4]); mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// serveLoopbackCommand mounts go-fuse's own loopback file system, the
// baseline evfs is measured against. Hidden: evfs bench runs it.
func serveLoopbackCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve-loopback",
		Hidden:    true,
		Usage:     "serve BACKING at MOUNTPOINT with go-fuse's fs.NewLoopbackRoot (the evfs bench baseline)",
		ArgsUsage: "BACKING MOUNTPOINT",
		Description: "go-fuse's goroutine-per-request loopback, mounted with the same kernel settings evfs bench\n" +
			"gives evfs. With --passthrough=false the kernel's FUSE passthrough is not negotiated, so every\n" +
			"read and write reaches the daemon. SIGINT or SIGTERM unmounts (exit 0).",
		OnUsageError: func(c *cli.Context, err error, isSub bool) error { return usageError{err.Error()} },
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "passthrough", Value: true, Usage: "allow kernel FUSE passthrough (go-fuse's loopback hands the kernel a backing fd per open file when root)"},
			&cli.DurationFlag{Name: "entry-timeout", Value: time.Second, Usage: "how long the kernel may cache name lookups"},
			&cli.DurationFlag{Name: "attr-timeout", Value: time.Second, Usage: "how long the kernel may cache attributes"},
			&cli.DurationFlag{Name: "negative-timeout", Value: 0, Usage: "how long the kernel may cache a failed lookup"},
			&cli.IntFlag{Name: "max-write", Value: 1 << 20, Usage: "largest READ/WRITE request in bytes"},
			&cli.IntFlag{Name: "max-background", Value: 64, Usage: "kernel limit of asynchronous requests"},
			&cli.BoolFlag{Name: "readdirplus", Value: true, Usage: "answer READDIRPLUS"},
			&cli.BoolFlag{Name: "writeback-cache", Usage: "let the kernel buffer writes"},
			&cli.BoolFlag{Name: "debug", Usage: "log every request"},
		},
		Action: serveLoopbackAction,
	}
}

func serveLoopbackAction(c *cli.Context) error {
	if c.NArg() != 2 {
		return usagef("serve-loopback needs BACKING and MOUNTPOINT (got %d arguments)", c.NArg())
	}
	backingDir, err := checkDir("backing directory", c.Args().Get(0))
	if err != nil {
		return err
	}
	mountpoint, err := checkDir("mountpoint", c.Args().Get(1))
	if err != nil {
		return err
	}
	// As evfs: the caller's mode bits reach the backing fs unchanged.
	unix.Umask(0)
	root, err := gofs.NewLoopbackRoot(backingDir)
	if err != nil {
		return err
	}
	entry, attr, neg := c.Duration("entry-timeout"), c.Duration("attr-timeout"), c.Duration("negative-timeout")
	opts := &gofs.Options{
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NegativeTimeout: &neg,
		MountOptions: fuse.MountOptions{
			FsName:             backingDir,
			Name:               "loopback",
			MaxWrite:           c.Int("max-write"),
			MaxBackground:      c.Int("max-background"),
			DisableReadDirPlus: !c.Bool("readdirplus"),
			EnableLocks:        true, // as evfs
			DirectMountStrict:  true,
			Debug:              c.Bool("debug"),
		},
	}
	if !c.Bool("passthrough") {
		opts.MountOptions.DisabledCapabilities = fuse.CAP_PASSTHROUGH
	}
	if c.Bool("writeback-cache") {
		opts.MountOptions.ExtraCapabilities |= fuse.CAP_WRITEBACK_CACHE
	}
	srv, err := gofs.Mount(mountpoint, root, opts)
	if err != nil {
		return fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		if err := srv.Unmount(); err != nil {
			fmt.Fprintf(os.Stderr, "serve-loopback: unmount %s: %v; detaching lazily\n", mountpoint, err)
			_ = unix.Unmount(mountpoint, unix.MNT_DETACH)
		}
	}()
	srv.Wait()
	return nil
}

// benchCopyTree copies the regular files and directories below src to dst
// (which must not exist), keeping modes.
func benchCopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(to, info.Mode().Perm())
		case d.Type().IsRegular():
			return benchCopyFile(path, to, info.Mode().Perm())
		}
		return fmt.Errorf("%s: unexpected file type %v", path, d.Type())
	})
}

func benchCopyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
