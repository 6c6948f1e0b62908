// Package integration runs real programs (coreutils, git, tar, sqlite3,
// go, flock, an fsx-style exerciser) against evfs mounts and prints a
// table of script × target.
//
// The scripts (*.sh beside this file, each `script MOUNT BACKING`) can be
// run by hand against any mount with run.sh. This runner builds bin/evfs,
// the go-fuse loopback reference (loopback/) and fsx (fsx/), and for each
// target mounts a fresh backing directory, runs every script as a
// subtest, and unmounts:
//
//	uring, pool, sync  evfs mount --backend NAME (uring: SKIP when the
//	                   backend is not available yet)
//	uring-tmpfs        evfs mount --backend uring with a tmpfs as the
//	                   backing directory (a memory root: almost every op
//	                   runs on the loop itself)
//	uring-furing       evfs mount --backend uring --transport uring (FUSE
//	                   over io_uring; the runner turns on the fuse module's
//	                   enable_uring for the target and restores it after)
//	uring-gofuse       evfs mount --backend uring --transport gofuse (the
//	                   other transport: go-fuse's readers feed the loop)
//	pool-share         evfs mount --backend pool --share-fds-above 1: every
//	                   open file shares its node's fd (by default only
//	                   near the fd limit); pool workers run node ops
//	                   concurrently with the moves
//	dir                the plain directory, MOUNT == BACKING (control)
//	loopback           go-fuse's fs.NewLoopbackRoot (reference: its
//	                   failures show in the table but do not fail the test)
//
// By default it runs the evfs backends and the plain directory, two
// targets at a time, with a 256 MiB big file: about 6.5 minutes here (11
// one at a time), so that the README's test command fits its 19-minute
// timeout on a fresh machine with room to spare. Every target
// and a 1 GiB file take longer than go test's default timeout:
//
//	EVFS_IT_TARGETS=all EVFS_IT_BIG_MB=1024 go test -timeout 90m -v ./integration/...
//
// Scripts that no longer fit before the deadline are reported as SKIP
// and the test fails, saying so.
// Environment:
//
//	EVFS_IT_TARGETS  comma list of targets, or "all" (default: uring,pool,sync,uring-tmpfs,pool-share,uring-furing,dir)
//	EVFS_IT_SCRIPTS  comma list of scripts, with or without .sh (default: all)
//	EVFS_IT_BIG_MB   size of files.sh's big file in MiB (default 256)
//	EVFS_IT_TIMEOUT  per-script timeout in seconds (default 300)
//	EVFS_IT_PARALLEL targets run at once (default 2; 1 runs them in turn)
//	EVFS_IT_REPORT   also write the results table to this file
package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"evfs/fs/fstest"
)

var allTargets = []string{"uring", "pool", "sync", "uring-tmpfs", "pool-share", "uring-furing", "uring-gofuse", "dir", referenceTarget}

// defaultTargets leave out the go-fuse transport (the fs tests run go-fuse's
// POSIX suite through it) and go-fuse's loopback reference (its flock
// script alone can take minutes): with them the suite no longer fits the
// README command's timeout.
var defaultTargets = []string{"uring", "pool", "sync", "uring-tmpfs", "pool-share", "uring-furing", "dir"}

// defaultBigMB is files.sh's big file size unless EVFS_IT_BIG_MB says.
const defaultBigMB = "256"

// referenceTarget is go-fuse's loopback: its failures are shown in the
// table (they say what a mature Go FUSE server gets wrong too) but do
// not fail the test.
const referenceTarget = "loopback"

type result struct {
	status string // PASS, FAIL, SKIP
	secs   float64
	note   string
}

type results struct {
	mu sync.Mutex
	m  map[[2]string]result // {script, target}
}

func (r *results) set(script, target string, res result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[[2]string{script, target}] = res
}

func (r *results) get(script, target string) (result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res, ok := r.m[[2]string{script, target}]
	return res, ok
}

// unmountRow is the table row for the daemon's clean exit on SIGTERM.
const unmountRow = "(unmount)"

func TestIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration tests mount file systems and take minutes; skipped with -short")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	scripts := selectScripts(t)
	targets := selectTargets(t)
	bins := buildBinaries(t, root)
	res := &results{m: map[[2]string]result{}}
	start := time.Now()
	defer func() {
		table := formatTable(res, scripts, targets, time.Since(start))
		fmt.Print(table)
		t.Log("\n" + table)
		if p := os.Getenv("EVFS_IT_REPORT"); p != "" {
			if err := os.WriteFile(p, []byte(table), 0o644); err != nil {
				t.Errorf("writing EVFS_IT_REPORT %s: %v", p, err)
			}
		}
	}()
	// Targets are independent (each its own daemon, backing and mount
	// point) and mostly wait on round trips: running two at a time keeps
	// both CPUs busy and roughly halves the suite's wall time.
	slots := make(chan struct{}, parallelTargets(t))
	t.Run("targets", func(t *testing.T) {
		for _, target := range targets {
			t.Run(target, func(t *testing.T) {
				t.Parallel()
				slots <- struct{}{}
				defer func() { <-slots }()
				runTarget(t, target, bins, scripts, res)
			})
		}
	})
	if n := res.count(noTimeLeft); n > 0 {
		t.Errorf("%d script runs were skipped because go test's -timeout was too short; run with -timeout 90m", n)
	}
}

const noTimeLeft = "no time left before go test's -timeout"

func (r *results) count(note string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, res := range r.m {
		if res.note == note {
			n++
		}
	}
	return n
}

// parallelTargets is how many targets run at once: EVFS_IT_PARALLEL, or 2.
func parallelTargets(t *testing.T) int {
	v := os.Getenv("EVFS_IT_PARALLEL")
	if v == "" {
		return 2
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("EVFS_IT_PARALLEL=%q: want a positive number of targets", v)
	}
	return n
}

func selectScripts(t *testing.T) []string {
	files, err := filepath.Glob("*.sh")
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, f := range files {
		if f == "run.sh" || strings.HasPrefix(f, "_") {
			continue
		}
		all = append(all, strings.TrimSuffix(f, ".sh"))
	}
	env := os.Getenv("EVFS_IT_SCRIPTS")
	if env == "" {
		return all
	}
	var sel []string
	for _, s := range strings.Split(env, ",") {
		s = strings.TrimSuffix(strings.TrimSpace(s), ".sh")
		if s == "" {
			continue
		}
		if !slices.Contains(all, s) {
			t.Fatalf("EVFS_IT_SCRIPTS: no script %q (have %s)", s, strings.Join(all, ", "))
		}
		sel = append(sel, s)
	}
	return sel
}

func selectTargets(t *testing.T) []string {
	env := os.Getenv("EVFS_IT_TARGETS")
	switch env {
	case "":
		return defaultTargets
	case "all":
		return allTargets
	}
	var sel []string
	for _, s := range strings.Split(env, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allTargets, s) {
			t.Fatalf("EVFS_IT_TARGETS: no target %q (have %s)", s, strings.Join(allTargets, ", "))
		}
		sel = append(sel, s)
	}
	return sel
}

type binaries struct{ evfs, loopback, fsx string }

// buildBinaries builds evfs, the loopback reference and fsx from the
// module root into a temporary directory.
func buildBinaries(t *testing.T, root string) binaries {
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "./cmd/evfs", "./integration/loopback", "./integration/fsx")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build in %s: %v\n%s", root, err, out)
	}
	return binaries{
		evfs:     filepath.Join(dir, "evfs"),
		loopback: filepath.Join(dir, "loopback"),
		fsx:      filepath.Join(dir, "fsx"),
	}
}

// daemon is a mount process: evfs or the loopback reference.
type daemon struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

func (d *daemon) running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runTarget(t *testing.T, target string, bins binaries, scripts []string, res *results) {
	skipAll := func(format string, a ...any) {
		reason := fmt.Sprintf(format, a...)
		for _, s := range scripts {
			res.set(s, target, result{status: "SKIP", note: reason})
		}
		t.Skip(reason)
	}
	failAll := func(format string, a ...any) {
		reason := fmt.Sprintf(format, a...)
		for _, s := range scripts {
			res.set(s, target, result{status: "FAIL", note: reason})
		}
		t.Fatal(reason)
	}

	base := t.TempDir()
	backing := filepath.Join(base, "backing")
	mnt := filepath.Join(base, "mnt")
	tmp := filepath.Join(base, "tmp")
	for _, d := range []string{backing, mnt, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	if strings.HasSuffix(target, "-tmpfs") {
		// A memory root: evfs runs almost every op on its loop there.
		// Registered before the daemon's cleanup, so it runs after it.
		if err := unix.Mount("evfs-it", backing, "tmpfs", 0, "size=2g,mode=0755"); err != nil {
			failAll("mount a tmpfs as the backing dir: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(backing, unix.MNT_DETACH) })
	}

	var d *daemon
	switch target {
	case "dir":
		mnt = backing
	default:
		if os.Geteuid() != 0 {
			skipAll("mounting needs root (no fusermount is used)")
		}
		if _, err := os.Stat("/dev/fuse"); err != nil {
			skipAll("/dev/fuse is missing")
		}
		var args []string
		bin := bins.evfs
		if target == "loopback" {
			bin, args = bins.loopback, []string{backing, mnt}
		} else {
			backend, variant, _ := strings.Cut(strings.TrimSuffix(target, "-tmpfs"), "-")
			args = []string{"mount", "--backend", backend}
			switch variant {
			case "share":
				args = append(args, "--share-fds-above", "1")
			case "furing":
				if err := fstest.EnableFuseURing(t); err != nil {
					skipAll("FUSE over io_uring: %v", err)
				}
				args = append(args, "--transport", "uring")
			case "":
			default:
				args = append(args, "--transport", variant)
			}
			args = append(args, backing, mnt)
		}
		d = startDaemon(t, bin, args)
		t.Cleanup(func() { stopDaemon(t, target, d, mnt, res) })
		if err := waitMounted(d, mnt, 15*time.Second); err != nil {
			out := d.out.String()
			if strings.HasPrefix(target, "uring") && !d.running() && strings.Contains(out, "io_uring") {
				skipAll("uring backend not available: %s", firstLine(lastLines(out, 1)))
			}
			failAll("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, lastLines(out, 30))
		}
		t.Logf("mounted %s at %s (%s)", backing, mnt, target)
	}

	timeout := 300 * time.Second
	if v := os.Getenv("EVFS_IT_TIMEOUT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("EVFS_IT_TIMEOUT=%q: want seconds", v)
		}
		timeout = time.Duration(n) * time.Second
	}
	env := append(os.Environ(), "EVFS_FSX_BIN="+bins.fsx, "TMPDIR="+tmp)
	if os.Getenv("EVFS_IT_BIG_MB") == "" {
		env = append(env, "EVFS_IT_BIG_MB="+defaultBigMB)
	}
	if d != nil && target != referenceTarget {
		env = append(env, "EVFS_BIN="+bins.evfs) // the mount is evfs: scripts may ask it for stats
	}

	for _, script := range scripts {
		t.Run(script, func(t *testing.T) {
			if d != nil && !d.running() {
				res.set(script, target, result{status: "FAIL", note: "the mount daemon had exited"})
				t.Fatalf("the %s daemon exited before %s: %v\n%s", target, script, d.err, lastLines(d.out.String(), 30))
			}
			to := timeout
			if dl, ok := t.Deadline(); ok {
				left := time.Until(dl) - 60*time.Second // room to unmount and print
				if left < 30*time.Second {
					res.set(script, target, result{status: "SKIP", note: noTimeLeft})
					t.Skip(noTimeLeft + " (run with -timeout 90m)")
				}
				to = min(to, left)
			}
			if diskHeavy[script] {
				diskHeavyMu.Lock()
			}
			r := runScript(t, script, mnt, backing, env, to)
			if diskHeavy[script] {
				diskHeavyMu.Unlock()
			}
			res.set(script, target, r)
			switch r.status {
			case "SKIP":
				t.Skip(r.note)
			case "FAIL":
				if target == referenceTarget {
					t.Logf("reference target, recorded but not failing the test: %s", r.note)
				} else {
					t.Error(r.note)
				}
			}
		})
	}
}

// diskHeavy scripts run one at a time across the targets running in
// parallel. files.sh writes and rereads a big file, soak.sh has 64
// clients appending and fsyncing; soak's watchdog fails an operation
// slower than 10 s, and beside another target's heavy writes the shared
// disk stalled even the plain directory that long (a native 13 KiB write:
// 11.7 s, target dir, in CI).
var (
	diskHeavy   = map[string]bool{"files": true, "soak": true}
	diskHeavyMu sync.Mutex
)

func runScript(t *testing.T, script, mnt, backing string, env []string, timeout time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script+".sh", mnt, backing)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	secs := time.Since(start).Seconds()
	if cmd.Process != nil {
		// Whatever the script left running in its process group.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	text := out.String()
	var ee *exec.ExitError
	switch {
	case err == nil:
		t.Logf("%s (%.1fs):\n%s", script, secs, text)
		return result{status: "PASS", secs: secs}
	case ctx.Err() != nil:
		return result{status: "FAIL", secs: secs, note: fmt.Sprintf("%s timed out after %v; output:\n%s", script, timeout, clip(text))}
	case errors.As(err, &ee) && ee.ExitCode() == 77:
		return result{status: "SKIP", secs: secs, note: strings.TrimSpace(lastLines(text, 1))}
	default:
		return result{status: "FAIL", secs: secs, note: fmt.Sprintf("%s: %v; output:\n%s", script, err, clip(text))}
	}
}

func startDaemon(t *testing.T, bin string, args []string) *daemon {
	d := &daemon{cmd: exec.Command(bin, args...), out: &syncBuffer{}, exited: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	// If the test binary dies (a panic, go test's -timeout), the daemon
	// gets SIGTERM and unmounts instead of leaking the mount.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	return d
}

// stopDaemon sends SIGTERM, waits for a clean exit, and makes sure the
// mount is gone (MNT_DETACH as the fallback). It records the outcome as
// the (unmount) row.
func stopDaemon(t *testing.T, target string, d *daemon, mnt string, res *results) {
	r := result{status: "PASS"}
	start := time.Now()
	if t.Skipped() && !d.running() {
		res.set(unmountRow, target, result{status: "SKIP"})
		return
	}
	if d.running() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
			if d.err != nil {
				r = result{status: "FAIL", note: fmt.Sprintf("after SIGTERM the daemon exited with %v", d.err)}
			}
		case <-time.After(20 * time.Second):
			r = result{status: "FAIL", note: "the daemon did not exit within 20 s of SIGTERM"}
			unix.Unmount(mnt, unix.MNT_DETACH)
			d.cmd.Process.Kill()
			<-d.exited
		}
	} else {
		r = result{status: "FAIL", note: fmt.Sprintf("the daemon exited before SIGTERM: %v", d.err)}
	}
	r.secs = time.Since(start).Seconds()
	if ok, _ := mounted(mnt); ok {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("lazy unmount of %s: %v", mnt, err)
		}
		if r.status == "PASS" {
			r = result{status: "FAIL", secs: r.secs, note: "the mount was still there after the daemon exited"}
		}
	}
	res.set(unmountRow, target, r)
	if r.status != "PASS" && target == referenceTarget {
		t.Logf("reference target, recorded but not failing the test: %s\ndaemon output:\n%s", r.note, lastLines(d.out.String(), 40))
	} else if r.status != "PASS" {
		t.Errorf("%s: %s\ndaemon output:\n%s", target, r.note, lastLines(d.out.String(), 40))
	} else if t.Failed() {
		t.Logf("%s daemon output (last lines):\n%s", target, lastLines(d.out.String(), 40))
	}
}

// waitMounted polls /proc/self/mountinfo until mnt is a mount point.
func waitMounted(d *daemon, mnt string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := mounted(mnt)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if !d.running() {
			return fmt.Errorf("exited before mounting: %v", d.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not mounted after %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mounted reports whether path is a mount point in /proc/self/mountinfo.
func mounted(path string) (bool, error) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == path {
			return true, nil
		}
	}
	return false, nil
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space…).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func formatTable(res *results, scripts, targets []string, total time.Duration) string {
	var b strings.Builder
	rows := append(slices.Clone(scripts), unmountRow)
	fmt.Fprintf(&b, "\nintegration results (%s)\n", total.Round(time.Second))
	fmt.Fprintf(&b, "%-12s", "script")
	for _, tg := range targets {
		fmt.Fprintf(&b, " %-13s", tg)
	}
	b.WriteString("\n")
	var notes []string
	counts := map[string]int{}
	for _, s := range rows {
		fmt.Fprintf(&b, "%-12s", s)
		for _, tg := range targets {
			r, ok := res.get(s, tg)
			cell := "-"
			switch {
			case !ok:
			case r.status == "SKIP" || r.secs == 0:
				cell = r.status
			default:
				cell = fmt.Sprintf("%s %6.1fs", r.status, r.secs)
			}
			if ok && s != unmountRow {
				counts[r.status]++
			}
			fmt.Fprintf(&b, " %-13s", cell)
			if ok && r.status != "PASS" && r.note != "" {
				notes = append(notes, fmt.Sprintf("%s/%s %s: %s", tg, s, r.status, firstLine(lastInterestingLine(r.note))))
			}
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%d PASS, %d FAIL, %d SKIP (script runs; %s is the reference: its FAILs do not fail the test)\n",
		counts["PASS"], counts["FAIL"], counts["SKIP"], referenceTarget)
	for _, n := range dedupe(notes) {
		b.WriteString("  " + n + "\n")
	}
	return b.String()
}

// lastInterestingLine picks a failure's most telling line: the last one
// saying FAIL, else the first line.
func lastInterestingLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "FAIL") || strings.Contains(lines[i], "timed out") {
			return lines[i]
		}
	}
	return lines[0]
}

func dedupe(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// clip keeps a long output readable: its head and its tail.
func clip(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	const head, tail = 15, 60
	if len(lines) <= head+tail {
		return strings.Join(lines, "\n")
	}
	return strings.Join(lines[:head], "\n") +
		fmt.Sprintf("\n… %d lines …\n", len(lines)-head-tail) +
		strings.Join(lines[len(lines)-tail:], "\n")
}
