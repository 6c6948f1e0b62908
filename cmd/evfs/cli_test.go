package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"evfs/fs/fstest"
)

var evfsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "evfs-cli-test")
	if err != nil {
		panic(err)
	}
	evfsBin = filepath.Join(dir, "evfs")
	out, err := exec.Command("go", "build", "-o", evfsBin, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runEvfs runs the binary to completion and returns exit code and stderr.
func runEvfs(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(evfsBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), stderr.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, stderr.String()
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		unix.Unmount(args[len(args)-1], unix.MNT_DETACH)
		t.Fatalf("evfs %v did not exit", args)
		return 0, ""
	}
}

// serve starts `evfs mount` in the background and waits until mounted.
func serve(t testing.TB, backing, mnt string, extra ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"mount"}, extra...)
	args = append(args, backing, mnt)
	cmd := exec.Command(evfsBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		unix.Unmount(mnt, unix.MNT_DETACH)
	})
	for i := 0; ; i++ {
		var st unix.Statfs_t
		if ok, _ := isMountpoint(mnt); ok && unix.Statfs(mnt, &st) == nil {
			// A test stuck on this mount (a daemon that stopped
			// answering, or one stuck in its exit) fails after
			// fstest.MaxMountLife instead of hanging the binary.
			fstest.Watch(t, mnt)
			return cmd
		}
		if i > 200 {
			t.Fatalf("mount did not appear: %s", stderr.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func mkdirs(t testing.TB) (backing, mnt string) {
	d := t.TempDir()
	backing, mnt = filepath.Join(d, "backing"), filepath.Join(d, "mnt")
	for _, p := range []string{backing, mnt} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return backing, mnt
}

func TestBadInputExits2WithOneLine(t *testing.T) {
	backing, mnt := mkdirs(t)
	file := filepath.Join(backing, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	full := filepath.Join(t.TempDir(), "full")
	os.MkdirAll(filepath.Join(full, "sub"), 0o755)
	inner := filepath.Join(backing, "inner")
	os.Mkdir(inner, 0o755)

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no args", []string{"mount"}, "needs BACKING and MOUNTPOINT"},
		{"backing missing", []string{"mount", "/nonexistent/x", mnt}, "backing directory /nonexistent/x does not exist"},
		{"backing is a file", []string{"mount", file, mnt}, "is not a directory"},
		{"mountpoint missing", []string{"mount", backing, "/nonexistent/y"}, "mountpoint /nonexistent/y does not exist"},
		{"mountpoint is a file", []string{"mount", backing, file}, "is not a directory"},
		{"mountpoint not empty", []string{"mount", backing, full}, "is not empty"},
		{"mountpoint inside backing", []string{"mount", backing, inner}, "contain one another"},
		{"unknown backend", []string{"mount", "--backend", "nope", backing, mnt}, "unknown --backend"},
		{"unknown transport", []string{"mount", "--transport", "nope", backing, mnt}, "unknown --transport"},
		{"unknown flag", []string{"mount", "--frobnicate", backing, mnt}, "frobnicate"},
		{"bad workers", []string{"mount", "--workers", "0", backing, mnt}, "--workers"},
		{"umount no args", []string{"umount"}, "exactly one MOUNTPOINT"},
		{"umount not mounted", []string{"umount", mnt}, "is not a mount point"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := os.ReadDir(backing)
			code, stderr := runEvfs(t, c.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr: %s", code, stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q does not mention %q", stderr, c.want)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if n := len(lines); n != 1 && !strings.Contains(c.name, "flag") {
				t.Errorf("stderr has %d lines, want 1: %q", n, stderr)
			}
			if ok, _ := isMountpoint(mnt); ok {
				t.Errorf("something got mounted at %s", mnt)
			}
			after, _ := os.ReadDir(backing)
			if len(after) != len(before) {
				t.Errorf("backing directory changed: %d → %d entries", len(before), len(after))
			}
		})
	}
}

func TestAlreadyMountedIsRefused(t *testing.T) {
	backing, mnt := mkdirs(t)
	cmd := serve(t, backing, mnt, "--backend", "pool")
	code, stderr := runEvfs(t, "mount", backing, mnt)
	if code != 2 || !strings.Contains(stderr, "already mounted") {
		t.Fatalf("second mount: exit %d, stderr %q", code, stderr)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// transports are the --transport values the lifecycle tests run over;
// uring (FUSE over io_uring) where the kernel has it.
func transports(t *testing.T) []string {
	if err := fstest.EnableFuseURing(t); err != nil {
		t.Logf("--transport uring not tested: %v", err)
		return []string{"loop"}
	}
	return []string{"loop", "uring"}
}

func TestSignalUnmountsCleanly(t *testing.T) {
	for _, tr := range transports(t) {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
			t.Run(tr+"/"+sig.String(), func(t *testing.T) { signalUnmountsCleanly(t, tr, sig) })
		}
	}
}

func signalUnmountsCleanly(t *testing.T, transport string, sig syscall.Signal) {
	backing, mnt := mkdirs(t)
	cmd := serve(t, backing, mnt, "--backend", "pool", "--transport", transport)
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(sig)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("daemon exit after %v: %v", sig, err)
	}
	if ok, _ := isMountpoint(mnt); ok {
		t.Fatal("still mounted after signal")
	}
	if b, err := os.ReadFile(filepath.Join(backing, "f")); err != nil || string(b) != "kept" {
		t.Fatalf("backing file: %q, %v", b, err)
	}
}

func TestStaleMountIsCleanedUp(t *testing.T) {
	backing, mnt := mkdirs(t)
	os.WriteFile(filepath.Join(backing, "f"), []byte("x"), 0o644)
	cmd := serve(t, backing, mnt, "--backend", "pool")
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); !errors.Is(err, unix.ENOTCONN) {
		t.Fatalf("statfs of a dead mount: %v, want ENOTCONN", err)
	}
	// mount over it: detected, cleaned, mounted.
	cmd2 := serve(t, backing, mnt, "--backend", "pool")
	if b, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || string(b) != "x" {
		t.Fatalf("read through the new mount: %q, %v", b, err)
	}
	cmd2.Process.Signal(syscall.SIGKILL)
	cmd2.Wait()
	// umount handles a stale mount too.
	if code, stderr := runEvfs(t, "umount", mnt); code != 0 {
		t.Fatalf("umount of a stale mount: exit %d: %s", code, stderr)
	}
	if ok, _ := isMountpoint(mnt); ok {
		t.Fatal("stale mount still present after umount")
	}
}

// TestKillRightAfterMount: a daemon SIGKILLed the moment its mount
// appears exits at once and leaves a stale mount `evfs umount` cleans. It
// used to probe a file of its own mount at that moment (fs/pollprobe.go);
// killed then, it hung in its exit, unkillable, flushing that file to
// itself (CI hung 19 minutes in TestStaleMountIsCleanedUp).
func TestKillRightAfterMount(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(tr, func(t *testing.T) { killRightAfterMount(t, tr) })
	}
}

func killRightAfterMount(t *testing.T, transport string) {
	for i := range 20 {
		backing, mnt := mkdirs(t)
		cmd := exec.Command(evfsBin, "mount", "--backend", "pool", "--transport", transport, backing, mnt)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
		// Kill at a different moment after mount(2) each time: INIT, the
		// old probe and the first requests are all within a millisecond.
		var dev uint64
		for start := time.Now(); dev == 0; {
			if dev, _ = mountDev(mnt); dev == 0 && time.Since(start) > 10*time.Second {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("kill %d: the mount did not appear", i)
			}
		}
		time.Sleep(time.Duration(i) * 100 * time.Microsecond)
		cmd.Process.Signal(syscall.SIGKILL)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			abortDev(dev) // lets it finish exiting
			<-exited
			t.Fatalf("kill %d: the daemon, SIGKILLed right after mounting, had not exited after 10 s", i)
		}
		if code, stderr := runEvfs(t, "umount", mnt); code != 0 {
			t.Fatalf("kill %d: umount of the stale mount: exit %d: %s", i, code, stderr)
		}
	}
}

func TestBusyMountIsDetachedOnSignal(t *testing.T) {
	backing, mnt := mkdirs(t)
	cmd := serve(t, backing, mnt, "--backend", "pool", "--shutdown-timeout", "1s")
	var stderr bytes.Buffer
	cmd.Stderr = nil
	f, err := os.Create(filepath.Join(mnt, "held"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon exit: %v (%s)", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not exit with a busy mount")
	}
	if ok, _ := isMountpoint(mnt); ok {
		t.Fatal("still mounted")
	}
}

// TestEarlySignalIsNotDropped: a SIGTERM that arrives while the mount is
// already served but not yet handed to the signal handling (the window
// EVFS_TEST_MOUNTED_DELAY widens) still unmounts. It used to be dropped,
// and the daemon served on forever (seen once in CI).
func TestEarlySignalIsNotDropped(t *testing.T) {
	backing, mnt := mkdirs(t)
	t.Setenv("EVFS_TEST_MOUNTED_DELAY", "2s")
	cmd := serve(t, backing, mnt, "--backend", "pool")
	stopDaemon(t, cmd) // SIGTERM, then the daemon must exit cleanly
	if ok, _ := isMountpoint(mnt); ok {
		t.Error("still mounted")
	}
}

// TestSecondSignalAbortsAtOnce: a busy mount would be served for
// --shutdown-timeout after SIGTERM; a second SIGTERM aborts it at once,
// without a second unmount attempt.
func TestSecondSignalAbortsAtOnce(t *testing.T) {
	backing, mnt := mkdirs(t)
	cmd := serve(t, backing, mnt, "--backend", "pool", "--shutdown-timeout", "60s")
	f, err := os.Create(filepath.Join(mnt, "held"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		t.Fatalf("daemon exited after one SIGTERM with a file open (%v); want it serving until the timeout", err)
	case <-time.After(500 * time.Millisecond):
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("daemon still running 15 s after a second SIGTERM")
	}
	log := cmd.Stderr.(*bytes.Buffer).String()
	if !strings.Contains(log, "second signal") || strings.Contains(log, "unmount failed") {
		t.Errorf("daemon log after two signals:\n%s", log)
	}
	if ok, _ := isMountpoint(mnt); ok {
		t.Error("still mounted")
	}
}

// runEvfsAs runs the binary as an unprivileged uid.
func runEvfsAs(t *testing.T, uid uint32, args ...string) (int, string) {
	t.Helper()
	// The test binary's temp dir must be reachable by that uid.
	os.Chmod(filepath.Dir(evfsBin), 0o755)
	cmd := exec.Command(evfsBin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stderr.String()
}

func TestUnprivilegedAndUnreadable(t *testing.T) {
	backing, mnt := mkdirs(t)
	for d := filepath.Dir(backing); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // let uid 65534 reach the directories
	}
	os.Chmod(backing, 0o700)
	code, stderr := runEvfsAs(t, 65534, "mount", backing, mnt)
	if code != 2 || !strings.Contains(stderr, "is not readable") {
		t.Fatalf("unreadable backing: exit %d, %q", code, stderr)
	}
	os.Chmod(backing, 0o755)
	code, stderr = runEvfsAs(t, 65534, "mount", backing, mnt)
	if code != 2 || !strings.Contains(stderr, "/dev/fuse") {
		t.Fatalf("unprivileged mount: exit %d, %q", code, stderr)
	}
	if ok, _ := isMountpoint(mnt); ok {
		t.Fatal("mounted anyway")
	}
}

func TestMissingDevFuse(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare(1) not installed")
	}
	backing, mnt := mkdirs(t)
	// A private mount namespace whose /dev has no fuse node.
	script := `mount -t tmpfs none /dev && exec "$0" mount "$1" "$2"`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, evfsBin, backing, mnt)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "/dev/fuse is missing") {
		t.Fatalf("without /dev/fuse: %v, %q", err, stderr.String())
	}
}
