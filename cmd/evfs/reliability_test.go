package main

// Reliability of the evfs binary: a clean shutdown under a writer that
// fsyncs (every acknowledged record survives), injected backend faults
// (EVFS_TEST_FAULTS) reach callers as errno without disturbing the rest
// of the mount, a backing directory that disappears gives errors and not
// hangs, and a soak of every operation on every backend leaks nothing.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// relHelperEnv selects a helper role when the test binary is re-executed.
const relHelperEnv = "EVFS_RELIABILITY_HELPER"

func init() {
	// Runs before TestMain (which builds the evfs binary): a helper
	// process does its job and exits.
	switch os.Getenv(relHelperEnv) {
	case "":
		return
	case "writer":
		os.Exit(relWriter(os.Getenv("EVFS_RELIABILITY_FILE")))
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(relHelperEnv))
		os.Exit(2)
	}
}

// relRecord is record i: fixed-size, so the file is a sequence of them.
func relRecord(i int) string { return fmt.Sprintf("record %08d\n", i) }

// relWriter appends numbered records to path, each with write + fsync on
// one open descriptor, and prints each record's number to stdout once
// both returned success. It stops at the first failure (the mount went
// away) and exits 0.
func relWriter(path string) int {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "writer: open:", err)
		return 1
	}
	for i := 0; ; i++ {
		if _, err := f.WriteString(relRecord(i)); err != nil {
			fmt.Fprintf(os.Stderr, "writer: record %d: write: %v\n", i, err)
			return 0
		}
		if err := f.Sync(); err != nil {
			fmt.Fprintf(os.Stderr, "writer: record %d: fsync: %v\n", i, err)
			return 0
		}
		// Unbuffered: the parent sees exactly the acknowledged records.
		if _, err := os.Stdout.WriteString(strconv.Itoa(i) + "\n"); err != nil {
			return 0
		}
	}
}

// relAcked reads a writer's stdout to the end and returns the highest
// record number acknowledged (-1 for none).
func relAcked(r io.Reader) int {
	last := -1
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if n, err := strconv.Atoi(sc.Text()); err == nil {
			last = n
		}
	}
	return last
}

// relCheckRecords: records 0..acked are in the backing file, in order.
func relCheckRecords(t *testing.T, path string, acked int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("backing file: %v", err)
	}
	size := len(relRecord(0))
	if len(data) < (acked+1)*size {
		t.Fatalf("%s: %d bytes, but %d records (%d bytes) were acknowledged", path, len(data), acked+1, (acked+1)*size)
	}
	for i := 0; i <= acked; i++ {
		if got := string(data[i*size : (i+1)*size]); got != relRecord(i) {
			t.Fatalf("%s: record %d is %q, want %q", path, i, got, relRecord(i))
		}
	}
}

// TestShutdownKeepsFsyncedRecords: SIGTERM while writers are writing and
// fsyncing records through the mount. The busy mount is detached lazily,
// serves the open files until --shutdown-timeout and is then aborted; the
// daemon exits 0, and every record whose write and fsync returned success
// is in the backing file. One writer holds its file open; a shell loop of
// `dd conv=fsync` reopens its file for every record (its working
// directory, on the mount, keeps resolving after the lazy detach).
func TestShutdownKeepsFsyncedRecords(t *testing.T) {
	for _, backend := range []string{"pool", "uring"} {
		t.Run(backend, func(t *testing.T) {
			backing, mnt := mkdirs(t)
			cmd := serve(t, backing, mnt, "--backend", backend, "--shutdown-timeout", "1s")
			daemonErr := &bytes.Buffer{}
			if b, ok := cmd.Stderr.(*bytes.Buffer); ok {
				daemonErr = b
			}

			w := exec.Command(os.Args[0], "-test.run=^$")
			w.Env = append(os.Environ(), relHelperEnv+"=writer", "EVFS_RELIABILITY_FILE="+filepath.Join(mnt, "held.log"))
			wOut, err := w.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var wErr bytes.Buffer
			w.Stderr = &wErr
			if err := w.Start(); err != nil {
				t.Fatal(err)
			}
			defer w.Process.Kill()

			sh := exec.Command("bash", "-c", `i=0
while printf 'record %08d\n' "$i" | dd of=dd.log oflag=append conv=notrunc,fsync status=none; do
	echo "$i"
	i=$((i+1))
done`)
			sh.Dir = mnt
			shOut, err := sh.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var shErr bytes.Buffer
			sh.Stderr = &shErr
			if err := sh.Start(); err != nil {
				t.Fatal(err)
			}
			defer sh.Process.Kill()

			ackedHeld, ackedDD := make(chan int, 1), make(chan int, 1)
			go func() { ackedHeld <- relAcked(wOut) }()
			go func() { ackedDD <- relAcked(shOut) }()

			// Let them write for a while, then ask the daemon to stop.
			time.Sleep(700 * time.Millisecond)
			sigAt := time.Now()
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("daemon exit: %v; stderr:\n%s", err, daemonErr)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("daemon still running 20s after SIGTERM (--shutdown-timeout 1s)")
			}
			took := time.Since(sigAt)
			for _, c := range []*exec.Cmd{w, sh} {
				done := make(chan error, 1)
				go func() { done <- c.Wait() }()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Fatalf("writer %v still running 10s after the daemon exited", c.Args[0])
				}
			}
			held, dd := <-ackedHeld, <-ackedDD
			t.Logf("daemon exited %v after SIGTERM; acknowledged records: held fd %d, dd %d; writers said: %s %s",
				took.Round(time.Millisecond), held+1, dd+1, strings.TrimSpace(wErr.String()), strings.TrimSpace(shErr.String()))
			if held < 0 || dd < 0 {
				t.Fatalf("a writer acknowledged nothing (held %d, dd %d): %s %s", held, dd, wErr.String(), shErr.String())
			}
			if ok, _ := isMountpoint(mnt); ok {
				t.Errorf("%s still mounted", mnt)
			}
			relCheckRecords(t, filepath.Join(backing, "held.log"), held)
			relCheckRecords(t, filepath.Join(backing, "dd.log"), dd)
		})
	}
}

// relServeFaults mounts with EVFS_TEST_FAULTS set for the daemon only.
func relServeFaults(t *testing.T, faults, backing, mnt string, extra ...string) *exec.Cmd {
	t.Helper()
	t.Setenv("EVFS_TEST_FAULTS", faults)
	cmd := serve(t, backing, mnt, extra...)
	os.Unsetenv("EVFS_TEST_FAULTS") // t.Setenv restores it at the end anyway
	return cmd
}

// relStats is `evfs stats --once --json MOUNTPOINT`.
func relStats(t *testing.T, mnt string) *statsDoc {
	t.Helper()
	cmd := exec.Command(evfsBin, "stats", "--once", "--json", mnt)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("evfs stats --once --json %s: %v: %s", mnt, err, stderr.String())
	}
	var doc statsDoc
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("evfs stats: %v in %s", err, out)
	}
	return &doc
}

// relIdle waits until the daemon has no operation in flight.
func relIdle(t *testing.T, mnt string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		doc := relStats(t, mnt)
		if doc.Loop.InFlight == 0 && doc.Loop.QueueDepth <= 1 {
			if doc.Loop.UnknownCompletions != 0 {
				t.Errorf("stats: %d completions for unknown operations", doc.Loop.UnknownCompletions)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats: %d operations still in flight (queue %d) after 10s", doc.Loop.InFlight, doc.Loop.QueueDepth)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// relErrno runs fn with a deadline (a hung FUSE request would block it
// forever) and returns its errno.
func relErrno(t *testing.T, what string, fn func() error) unix.Errno {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err == nil {
			return 0
		}
		var e unix.Errno
		if errors.As(err, &e) {
			return e
		}
		t.Fatalf("%s: %v (no errno)", what, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer within 10s", what)
	}
	return 0
}

func relWant(t *testing.T, what string, got unix.Errno, want ...unix.Errno) {
	t.Helper()
	for _, w := range want {
		if got == w {
			return
		}
	}
	t.Errorf("%s: %v (%d), want one of %v", what, got, int(got), want)
}

// TestFaultInjection: EVFS_TEST_FAULTS makes every backend op of a kind
// fail (or wait); callers get that errno for the operations that need
// it, everything else keeps working, and nothing stays in flight.
func TestFaultInjection(t *testing.T) {
	t.Run("READ=EIO", func(t *testing.T) {
		for _, backend := range []string{"pool", "uring"} {
			t.Run(backend, func(t *testing.T) {
				backing, mnt := mkdirs(t)
				os.WriteFile(filepath.Join(backing, "data"), []byte("unreadable"), 0o644)
				relServeFaults(t, "READ=EIO", backing, mnt, "--backend", backend)
				out, err := exec.Command("cat", filepath.Join(mnt, "data")).CombinedOutput()
				if err == nil || !strings.Contains(string(out), "Input/output error") {
					t.Errorf("cat: %v, %q; want it to fail with EIO", err, out)
				}
				e := relErrno(t, "read", func() error { _, err := os.ReadFile(filepath.Join(mnt, "data")); return err })
				relWant(t, "read through the mount", e, unix.EIO)
				// Everything that is not a READ still works.
				e = relErrno(t, "stat", func() error { _, err := os.Stat(filepath.Join(mnt, "data")); return err })
				relWant(t, "stat", e, 0)
				if out, err := exec.Command("ls", "-l", mnt).CombinedOutput(); err != nil || !strings.Contains(string(out), "data") {
					t.Errorf("ls -l: %v, %q", err, out)
				}
				e = relErrno(t, "write", func() error { return os.WriteFile(filepath.Join(mnt, "new"), []byte("written"), 0o644) })
				relWant(t, "write of a new file", e, 0)
				if b, _ := os.ReadFile(filepath.Join(backing, "new")); string(b) != "written" {
					t.Errorf("backing new: %q", b)
				}
				relIdle(t, mnt)
			})
		}
	})
	t.Run("WRITE=ENOSPC", func(t *testing.T) {
		backing, mnt := mkdirs(t)
		relServeFaults(t, "WRITE=ENOSPC,WRITEV=ENOSPC", backing, mnt, "--backend", "pool")
		e := relErrno(t, "write", func() error { return os.WriteFile(filepath.Join(mnt, "f"), []byte("no room"), 0o644) })
		relWant(t, "write", e, unix.ENOSPC)
		out, err := exec.Command("bash", "-c", "echo x > "+filepath.Join(mnt, "g")).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "No space left on device") {
			t.Errorf("shell redirect: %v, %q; want ENOSPC", err, out)
		}
		// The files were created (OPENAT works); they are empty.
		for _, n := range []string{"f", "g"} {
			if st, err := os.Stat(filepath.Join(backing, n)); err != nil || st.Size() != 0 {
				t.Errorf("backing %s: %v, %v", n, st, err)
			}
		}
		e = relErrno(t, "mkdir", func() error { return os.Mkdir(filepath.Join(mnt, "d"), 0o755) })
		relWant(t, "mkdir", e, 0)
		relIdle(t, mnt)
	})
	t.Run("OPENAT=EACCES", func(t *testing.T) {
		backing, mnt := mkdirs(t)
		os.WriteFile(filepath.Join(backing, "f"), []byte("x"), 0o644)
		relServeFaults(t, "OPENAT=EACCES", backing, mnt, "--backend", "pool")
		// A LOOKUP of an inode evfs does not know yet opens it (O_PATH).
		e := relErrno(t, "open", func() error { _, err := os.ReadFile(filepath.Join(mnt, "f")); return err })
		relWant(t, "open of a not-yet-looked-up file", e, unix.EACCES)
		e = relErrno(t, "create", func() error { return os.WriteFile(filepath.Join(mnt, "new"), nil, 0o644) })
		relWant(t, "create", e, unix.EACCES)
		// The root needs no openat: statfs and stat of it work.
		var sfs unix.Statfs_t
		e = relErrno(t, "statfs", func() error { return unix.Statfs(mnt, &sfs) })
		relWant(t, "statfs of the root", e, 0)
		relIdle(t, mnt)
	})
	t.Run("READ=delay:2s", func(t *testing.T) {
		backing, mnt := mkdirs(t)
		os.WriteFile(filepath.Join(backing, "slow"), bytes.Repeat([]byte("s"), 4096), 0o644)
		for i := range 5 {
			os.WriteFile(filepath.Join(backing, fmt.Sprint("f", i)), []byte("x"), 0o644)
		}
		relServeFaults(t, "READ=delay:2s", backing, mnt, "--backend", "pool", "--entry-timeout", "0", "--attr-timeout", "0")
		start := time.Now()
		catDone := make(chan error, 1)
		go func() { catDone <- exec.Command("cat", filepath.Join(mnt, "slow")).Run() }()
		time.Sleep(200 * time.Millisecond) // the read is now waiting in the backend
		var worst time.Duration
		n := 0
		for time.Since(start) < 1500*time.Millisecond {
			t0 := time.Now()
			e := relErrno(t, "stat", func() error { _, err := os.Stat(filepath.Join(mnt, fmt.Sprint("f", n%5))); return err })
			relWant(t, "stat during the slow read", e, 0)
			worst = max(worst, time.Since(t0))
			n++
			time.Sleep(20 * time.Millisecond)
		}
		if err := <-catDone; err != nil {
			t.Errorf("cat of the slow file: %v", err)
		}
		catTook := time.Since(start)
		t.Logf("%d stats during a 2 s read: slowest %v; the read took %v", n, worst, catTook.Round(time.Millisecond))
		if catTook < 1900*time.Millisecond {
			t.Errorf("the delayed read took only %v: the fault was not applied", catTook)
		}
		if worst > 200*time.Millisecond {
			t.Errorf("a stat took %v while one read was delayed (pool backend): head-of-line blocking", worst)
		}
		relIdle(t, mnt)
	})
}

// TestBackingDisappears: the backing directory removed (rm -rf) or its
// filesystem detached under a live mount gives errors — ENOENT, ESTALE,
// EIO — or keeps working, and never hangs.
func TestBackingDisappears(t *testing.T) {
	t.Run("rm -rf", func(t *testing.T) {
		for _, backend := range []string{"pool", "uring", "sync"} {
			t.Run(backend, func(t *testing.T) {
				base := t.TempDir()
				backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
				os.Mkdir(backing, 0o755)
				os.Mkdir(mnt, 0o755)
				os.MkdirAll(filepath.Join(backing, "sub", "deep"), 0o755)
				os.WriteFile(filepath.Join(backing, "sub", "f"), []byte("data"), 0o644)
				cmd := serve(t, backing, mnt, "--backend", backend, "--entry-timeout", "0", "--attr-timeout", "0")
				// Known to the daemon before the removal.
				if _, err := os.Stat(filepath.Join(mnt, "sub", "f")); err != nil {
					t.Fatal(err)
				}
				held, err := os.Open(filepath.Join(mnt, "sub", "f"))
				if err != nil {
					t.Fatal(err)
				}
				defer held.Close()
				if err := os.RemoveAll(backing); err != nil {
					t.Fatal(err)
				}
				gone := []unix.Errno{unix.ENOENT, unix.ESTALE, unix.EIO}
				e := relErrno(t, "stat sub/f", func() error { _, err := os.Stat(filepath.Join(mnt, "sub", "f")); return err })
				relWant(t, "stat of a removed file", e, gone...)
				e = relErrno(t, "create", func() error { return os.WriteFile(filepath.Join(mnt, "new"), []byte("x"), 0o644) })
				relWant(t, "create in the removed root", e, gone...)
				e = relErrno(t, "mkdir", func() error { return os.Mkdir(filepath.Join(mnt, "d"), 0o755) })
				relWant(t, "mkdir in the removed root", e, gone...)
				e = relErrno(t, "readdir", func() error {
					names, err := os.ReadDir(mnt)
					if err == nil && len(names) != 0 {
						return fmt.Errorf("removed root lists %v", names)
					}
					return err
				})
				relWant(t, "readdir of the removed root", e, append(gone, 0)...)
				// The open file's inode lives on (unlinked): reading it is fine.
				e = relErrno(t, "read held", func() error {
					b := make([]byte, 10)
					n, err := held.ReadAt(b, 0)
					if err == io.EOF && string(b[:n]) == "data" {
						err = nil
					}
					return err
				})
				relWant(t, "read of a file held open", e, append(gone, 0)...)
				var sfs unix.Statfs_t
				e = relErrno(t, "statfs", func() error { return unix.Statfs(mnt, &sfs) })
				relWant(t, "statfs", e, append(gone, 0)...)
				relIdle(t, mnt)
				held.Close()
				cmd.Process.Signal(syscall.SIGTERM)
				if err := cmd.Wait(); err != nil {
					t.Errorf("daemon exit: %v", err)
				}
			})
		}
	})
	t.Run("tmpfs detached", func(t *testing.T) {
		base := t.TempDir()
		backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
		os.Mkdir(backing, 0o755)
		os.Mkdir(mnt, 0o755)
		if err := unix.Mount("evfs-test", backing, "tmpfs", 0, "size=16m"); err != nil {
			t.Skipf("mount tmpfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(backing, unix.MNT_DETACH) })
		os.WriteFile(filepath.Join(backing, "f"), []byte("on tmpfs"), 0o644)
		cmd := serve(t, backing, mnt, "--backend", "pool", "--entry-timeout", "0", "--attr-timeout", "0")
		if _, err := os.Stat(filepath.Join(mnt, "f")); err != nil {
			t.Fatal(err)
		}
		// The daemon holds the tmpfs busy: only a lazy unmount succeeds,
		// and the filesystem lives on, reachable through the daemon's fds
		// only.
		if err := unix.Unmount(backing, 0); err == nil {
			t.Fatal("unmount of the busy backing tmpfs succeeded")
		}
		if err := unix.Unmount(backing, unix.MNT_DETACH); err != nil {
			t.Fatalf("lazy unmount of the backing tmpfs: %v", err)
		}
		ok := []unix.Errno{0, unix.ENOENT, unix.ESTALE, unix.EIO}
		e := relErrno(t, "read", func() error { _, err := os.ReadFile(filepath.Join(mnt, "f")); return err })
		relWant(t, "read after the backing was detached", e, ok...)
		e = relErrno(t, "create", func() error { return os.WriteFile(filepath.Join(mnt, "g"), []byte("x"), 0o644) })
		relWant(t, "create after the backing was detached", e, ok...)
		e = relErrno(t, "readdir", func() error { _, err := os.ReadDir(mnt); return err })
		relWant(t, "readdir after the backing was detached", e, ok...)
		if _, err := os.Stat(filepath.Join(backing, "g")); err == nil {
			t.Errorf("g appeared in the directory under the detached tmpfs")
		}
		relIdle(t, mnt)
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("daemon exit: %v", err)
		}
	})
}

// TestSoak runs integration/soak (64 clients, every operation, resources
// sampled) for 10 s against evfs on each backend.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak takes 10 s per backend")
	}
	bin := filepath.Join(t.TempDir(), "soak")
	build := exec.Command("go", "build", "-o", bin, "./integration/soak")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./integration/soak: %v\n%s", err, out)
	}
	var mu sync.Mutex // the subtests run one after another; keep logs whole
	for _, backend := range []string{"pool", "sync", "uring"} {
		t.Run(backend, func(t *testing.T) {
			backing, mnt := mkdirs(t)
			cmd := serve(t, backing, mnt, "--backend", backend)
			soak := exec.Command(bin, "-dir", filepath.Join(mnt, "soak"), "-backing", filepath.Join(backing, "soak"),
				"-mount", mnt, "-duration", "10s", "-pid", strconv.Itoa(cmd.Process.Pid), "-evfs", evfsBin)
			out, err := soak.CombinedOutput()
			mu.Lock()
			t.Logf("soak on %s:\n%s", backend, out)
			mu.Unlock()
			if err != nil {
				t.Fatalf("soak on %s: %v", backend, err)
			}
			cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Errorf("daemon exit after the soak: %v", err)
			}
		})
	}
}
