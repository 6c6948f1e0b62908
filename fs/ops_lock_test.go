package fs_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"evfs/fs/fstest"
)

// Lock contenders run in a subprocess (the test binary re-executed): the
// process serving the mount must not be the one that waits on a lock,
// and POSIX locks only conflict between processes.

func init() {
	fstest.RegisterHelper("lock", helperLock)
	fstest.RegisterHelper("flock", helperFlock)
}

// helperLock: lock PATH setlk|setlkw|getlk r|w START LEN. Prints "ok",
// "err ERRNO", or for getlk "TYPE START LEN PID"; setlkw first prints
// "waiting" and then "ok MILLISECONDS".
func helperLock(args []string) error {
	if len(args) != 5 {
		return fmt.Errorf("lock: want PATH CMD TYPE START LEN, got %q", args)
	}
	fd, err := unix.Open(args[0], unix.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	if args[2] == "r" {
		lk.Type = unix.F_RDLCK
	}
	lk.Start, _ = strconv.ParseInt(args[3], 10, 64)
	lk.Len, _ = strconv.ParseInt(args[4], 10, 64)
	switch args[1] {
	case "setlk":
		err = unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk)
	case "getlk":
		if err = unix.FcntlFlock(uintptr(fd), unix.F_GETLK, &lk); err == nil {
			fmt.Printf("%d %d %d %d\n", lk.Type, lk.Start, lk.Len, lk.Pid)
			return nil
		}
	case "setlkw":
		fmt.Println("waiting")
		t0 := time.Now()
		if err = unix.FcntlFlock(uintptr(fd), unix.F_SETLKW, &lk); err == nil {
			fmt.Printf("ok %d\n", time.Since(t0).Milliseconds())
			return nil
		}
	default:
		return fmt.Errorf("lock: unknown command %q", args[1])
	}
	printResult(err)
	return nil
}

// helperFlock: flock PATH ex|sh|ex-nb|sh-nb, printing like helperLock.
func helperFlock(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("flock: want PATH HOW, got %q", args)
	}
	fd, err := unix.Open(args[0], unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	how := map[string]int{"ex": unix.LOCK_EX, "sh": unix.LOCK_SH,
		"ex-nb": unix.LOCK_EX | unix.LOCK_NB, "sh-nb": unix.LOCK_SH | unix.LOCK_NB}[args[1]]
	if how&unix.LOCK_NB == 0 {
		fmt.Println("waiting")
		t0 := time.Now()
		if err = unix.Flock(fd, how); err == nil {
			fmt.Printf("ok %d\n", time.Since(t0).Milliseconds())
			return nil
		}
	} else {
		err = unix.Flock(fd, how)
	}
	printResult(err)
	return nil
}

func printResult(err error) {
	if err != nil {
		fmt.Printf("err %d\n", int(errnoOf(err)))
		return
	}
	fmt.Println("ok")
}

// contend runs a non-blocking helper and returns its errno (0: granted).
func contend(t *testing.T, action string, args ...string) unix.Errno {
	t.Helper()
	out := fstest.RunHelper(t, fstest.Helper(action, args...))
	if out == "ok" {
		return 0
	}
	var e int
	if _, err := fmt.Sscanf(out, "err %d", &e); err != nil {
		t.Fatalf("helper %s %v printed %q", action, args, out)
	}
	return unix.Errno(e)
}

// waiter is a helper blocked on a lock.
type waiter struct {
	t    *testing.T
	out  *bufio.Scanner
	done chan string
}

// startWaiter starts a blocking helper and returns once it is about to
// wait for the lock.
func startWaiter(t *testing.T, action string, args ...string) *waiter {
	t.Helper()
	cmd := fstest.Helper(action, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &waiter{t: t, out: bufio.NewScanner(stdout), done: make(chan string, 1)}
	ok := w.out.Scan() && w.out.Text() == "waiting"
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		if ok {
			w.out.Scan()
			w.done <- w.out.Text()
		}
		cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	if !ok {
		t.Fatalf("helper %s %v did not start waiting: %q", action, args, w.out.Text())
	}
	return w
}

// granted waits for the helper's lock and returns how long it waited.
func (w *waiter) granted() time.Duration {
	w.t.Helper()
	select {
	case out := <-w.done:
		var ms int64
		if _, err := fmt.Sscanf(out, "ok %d", &ms); err != nil {
			w.t.Fatalf("blocked helper ended with %q", out)
		}
		return time.Duration(ms) * time.Millisecond
	case <-time.After(10 * time.Second):
		w.t.Fatal("blocked helper never got the lock")
	}
	return 0
}

func (w *waiter) stillWaiting() bool {
	select {
	case out := <-w.done:
		w.t.Errorf("helper stopped waiting early: %q", out)
		return false
	default:
		return true
	}
}

// TestPosixLocks: fcntl record locks taken through the mount conflict
// with another process's, F_GETLK describes the holder, F_SETLKW waits
// for the release, and close releases.
func TestPosixLocks(t *testing.T) {
	native := nativeDir(t)
	mustWriteFile(t, filepath.Join(native, "f"), make([]byte, 1000), 0o644)
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, _ := fstest.Mount(t, backend)
		p := filepath.Join(mnt, "f")
		mustWriteFile(t, p, make([]byte, 1000), 0o644)
		for _, dir := range []string{native, mnt} {
			where := "mount"
			if dir == native {
				where = "native"
			}
			f := filepath.Join(dir, "f")
			fd, err := unix.Open(f, unix.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			setlk := func(typ int16, start, n int64) {
				t.Helper()
				lk := unix.Flock_t{Type: typ, Start: start, Len: n}
				if err := unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk); err != nil {
					t.Fatalf("%s: F_SETLK type %d [%d,+%d): %v", where, typ, start, n, err)
				}
			}
			setlk(unix.F_WRLCK, 0, 100)
			setlk(unix.F_RDLCK, 200, 100)

			if e := contend(t, "lock", f, "setlk", "w", "0", "100"); e != unix.EAGAIN && e != unix.EACCES {
				t.Errorf("%s: conflicting F_SETLK from another process: %v, want EAGAIN or EACCES", where, e)
			}
			if e := contend(t, "lock", f, "setlk", "r", "50", "1"); e != unix.EAGAIN && e != unix.EACCES {
				t.Errorf("%s: read lock inside a write lock: %v, want EAGAIN or EACCES", where, e)
			}
			if e := contend(t, "lock", f, "setlk", "w", "100", "100"); e != 0 {
				t.Errorf("%s: F_SETLK on the free range between: %v", where, e)
			}
			if e := contend(t, "lock", f, "setlk", "r", "200", "100"); e != 0 {
				t.Errorf("%s: shared read lock: %v", where, e)
			}
			if e := contend(t, "lock", f, "setlk", "w", "250", "1"); e != unix.EAGAIN && e != unix.EACCES {
				t.Errorf("%s: write lock inside a read lock: %v", where, e)
			}

			out := fstest.RunHelper(t, fstest.Helper("lock", f, "getlk", "w", "50", "10"))
			var typ, start, n, pid int
			if _, err := fmt.Sscanf(out, "%d %d %d %d", &typ, &start, &n, &pid); err != nil {
				t.Fatalf("getlk printed %q", out)
			}
			if typ != unix.F_WRLCK || start != 0 || n != 100 {
				t.Errorf("%s: F_GETLK reports type %d [%d,+%d), want the write lock [0,+100)", where, typ, start, n)
			}
			if pid != os.Getpid() {
				t.Errorf("%s: F_GETLK reports holder pid %d, want %d", where, pid, os.Getpid())
			}
			out = fstest.RunHelper(t, fstest.Helper("lock", f, "getlk", "w", "500", "10"))
			if !strings.HasPrefix(out, fmt.Sprintf("%d ", unix.F_UNLCK)) {
				t.Errorf("%s: F_GETLK on a free range: %q, want F_UNLCK", where, out)
			}

			// F_SETLKW waits until the holder unlocks.
			w := startWaiter(t, "lock", f, "setlkw", "w", "10", "10")
			time.Sleep(300 * time.Millisecond)
			if w.stillWaiting() {
				setlk(unix.F_UNLCK, 0, 100)
				if d := w.granted(); d < 250*time.Millisecond {
					t.Errorf("%s: F_SETLKW returned after %v, before the release", where, d)
				}
			}

			// Closing any fd of the file releases the process's locks.
			fd2, err := unix.Open(f, unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			unix.Close(fd2)
			if e := contend(t, "lock", f, "setlk", "w", "200", "100"); e != 0 {
				t.Errorf("%s: read lock still held after close of another fd of the file: %v", where, e)
			}
			unix.Close(fd)
		}
	})
}

// TestFlock: flock(2) locks through the mount exclude another process's,
// and LOCK_EX waits for the release.
func TestFlock(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, _ := fstest.Mount(t, backend)
		p := filepath.Join(mnt, "f")
		mustWriteFile(t, p, []byte("x"), 0o644)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fd := int(f.Fd())
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Fatalf("flock LOCK_EX: %v", err)
		}
		if e := contend(t, "flock", p, "ex-nb"); e != unix.EWOULDBLOCK {
			t.Errorf("LOCK_EX|LOCK_NB while held: %v, want EWOULDBLOCK", e)
		}
		if e := contend(t, "flock", p, "sh-nb"); e != unix.EWOULDBLOCK {
			t.Errorf("LOCK_SH|LOCK_NB while held exclusively: %v, want EWOULDBLOCK", e)
		}
		// Downgrade to shared: other readers get in, writers do not.
		if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
			t.Fatalf("flock downgrade: %v", err)
		}
		if e := contend(t, "flock", p, "sh-nb"); e != 0 {
			t.Errorf("LOCK_SH|LOCK_NB while shared: %v", e)
		}
		if e := contend(t, "flock", p, "ex-nb"); e != unix.EWOULDBLOCK {
			t.Errorf("LOCK_EX|LOCK_NB while shared: %v, want EWOULDBLOCK", e)
		}
		w := startWaiter(t, "flock", p, "ex")
		time.Sleep(300 * time.Millisecond)
		if w.stillWaiting() {
			if err := unix.Flock(fd, unix.LOCK_UN); err != nil {
				t.Fatal(err)
			}
			if d := w.granted(); d < 250*time.Millisecond {
				t.Errorf("blocking LOCK_EX returned after %v, before the release", d)
			}
		}
		if e := contend(t, "flock", p, "ex-nb"); e != 0 {
			t.Errorf("LOCK_EX|LOCK_NB after every holder left: %v", e)
		}
		// Closing the last fd releases a flock.
		if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if e := contend(t, "flock", p, "ex-nb"); e != 0 {
			t.Errorf("LOCK_EX|LOCK_NB after the holder closed its fd: %v", e)
		}
	})
}
