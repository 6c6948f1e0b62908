package fs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"evfs/fs/fstest"
)

// fdCount is how many fds this process (test and in-process daemon) has.
func fdCount(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// settledFds waits (up to 5 s) for the fd count to reach at most want —
// RELEASE is asynchronous: close(2) returns before the daemon closes —
// and returns the last count.
func settledFds(t testing.TB, want int) int {
	t.Helper()
	n := fdCount(t)
	for deadline := time.Now().Add(5 * time.Second); n > want && time.Now().Before(deadline); n = fdCount(t) {
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// TestOneFdPerOpenFile: while a regular file is open through the mount
// the daemon holds one fd for it, not two (the handle's file sits on its
// node's fd number, fs/lend.go), and every node operation still works —
// stat, chmod, truncate, xattrs, link, rename, unlink — during the open
// and after the last close, when the node has an fd of its own again.
// Closing everything returns the fd count to where it was. On the
// default backing (TMPDIR) and on a memory root (tmpfs), whose closes
// run on the spot.
func TestOneFdPerOpenFile(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		t.Run("tmpdir", func(t *testing.T) {
			mnt, backing := fstest.Mount(t, backend)
			oneFdPerOpenFile(t, mnt, backing)
		})
		t.Run("tmpfs", func(t *testing.T) {
			_, mnt, backing := memoryRoot(t, backend, true)
			oneFdPerOpenFile(t, mnt, backing)
		})
	})
}

// TestNoSharingBelowThreshold: with the binary's default thresholds (a
// quarter of the fd limit in open files, three quarters in fds), a few
// hundred open files keep an fd of their own each: sharing costs CPU and
// is only worth it near the limit.
func TestNoSharingBelowThreshold(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, backing := fstest.Mount(t, backend, fstest.DefaultSharing)
		const n = 200
		_, base := seedAndOpen(t, mnt, backing, n, func(int) int { return os.O_RDONLY })
		// The test's n and the daemon's n handles; no node fd closed.
		if got := settledFds(t, base+2*n); got != base+2*n {
			t.Fatalf("%d open files below the threshold took %d fds, want %d", n, got-base, 2*n)
		}
	})
}

// seedAndOpen writes n files f000… of 10 bytes into backing, looks each
// up through mnt (so their nodes exist before the count), takes the
// process's fd count, then opens every file through mnt with mode(i).
// The files still open are closed at cleanup — registered after the
// mount's, so it runs before the unmount even when the test fails: this
// process must never exit holding files of its own mount (their FLUSH
// would have nobody to answer it). A caller that closes one sets its
// entry to nil.
func seedAndOpen(t *testing.T, mnt, backing string, n int, mode func(i int) int) (files []*os.File, base int) {
	t.Helper()
	for i := range n {
		mustWriteFile(t, filepath.Join(backing, fmt.Sprintf("f%03d", i)), []byte("0123456789"), 0o644)
		if _, err := os.Stat(filepath.Join(mnt, fmt.Sprintf("f%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	base = fdCount(t)
	files = make([]*os.File, n)
	t.Cleanup(func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	})
	for i := range n {
		f, err := os.OpenFile(filepath.Join(mnt, fmt.Sprintf("f%03d", i)), mode(i), 0)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = f
	}
	return files, base
}

func oneFdPerOpenFile(t *testing.T, mnt, backing string) {
	const n = 200
	files, base := seedAndOpen(t, mnt, backing, n, func(i int) int {
		if i%2 == 1 {
			return os.O_WRONLY // a write-only fd serves its node too
		}
		return os.O_RDONLY
	})
	// n fds of the test's own, n handles; the nodes' own fds closed.
	// With two daemon fds per open file this would be base+2n.
	if got := settledFds(t, base+n+10); got > base+n+10 {
		t.Fatalf("%d open files took %d fds (test and daemon), want at most %d", n, got-base, n+10)
	}

	nodeOps(t, mnt, backing, "f000", "while open")
	nodeOps(t, mnt, backing, "f001", "while open write-only")
	// Unlinked while open: the node's ops go on through the handle's
	// fd, and its O_PATH reopen at the close finds the unlinked inode.
	if err := os.Remove(filepath.Join(mnt, "f002")); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(files[2].Fd()), &st); err != nil || st.Nlink != 0 || st.Size != 10 {
		t.Fatalf("fstat of an unlinked open file: %v, nlink %d size %d", err, st.Nlink, st.Size)
	}

	for i, f := range files {
		files[i] = nil
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := settledFds(t, base); got > base {
		t.Fatalf("after closing every file the process holds %d fds more than before", got-base)
	}
	nodeOps(t, mnt, backing, "f003", "after the close")
	nodeOps(t, mnt, backing, "f000", "after the close, renamed before")
}

// nodeOps runs operations that reach the daemon as node (not handle)
// requests on mnt/name, checks each on the backing file, and renames the
// file to name+"-r" and back.
func nodeOps(t *testing.T, mnt, backing, name, when string) {
	t.Helper()
	p, bp := filepath.Join(mnt, name), filepath.Join(backing, name)
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatalf("%s: chmod: %v", when, err)
	}
	if fi, err := os.Stat(bp); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("%s: chmod did not reach the backing file: %v %v", when, fi.Mode(), err)
	}
	if err := os.Truncate(p, 4); err != nil {
		t.Fatalf("%s: truncate: %v", when, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != 4 {
		t.Fatalf("%s: size after truncate: %v %v", when, fi, err)
	}
	if err := unix.Setxattr(p, "user.evfs", []byte("lent"), 0); err != nil {
		t.Fatalf("%s: setxattr: %v", when, err)
	}
	buf := make([]byte, 16)
	if n, err := unix.Getxattr(bp, "user.evfs", buf); err != nil || string(buf[:n]) != "lent" {
		t.Fatalf("%s: xattr on the backing file: %q %v", when, buf[:n], err)
	}
	if err := os.Link(p, p+"-link"); err != nil {
		t.Fatalf("%s: link: %v", when, err)
	}
	var a, b unix.Stat_t
	if err := unix.Stat(bp, &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(bp+"-link", &b); err != nil || a.Ino != b.Ino || a.Nlink != 2 {
		t.Fatalf("%s: link: ino %d vs %d, nlink %d, %v", when, a.Ino, b.Ino, a.Nlink, err)
	}
	if err := os.Remove(p + "-link"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p, p+"-r"); err != nil {
		t.Fatalf("%s: rename: %v", when, err)
	}
	if err := os.Rename(p+"-r", p); err != nil {
		t.Fatalf("%s: rename back: %v", when, err)
	}
	if err := unix.Access(p, unix.R_OK|unix.W_OK); err != nil {
		t.Fatalf("%s: access: %v", when, err)
	}
}

// TestLendSeveralHandles: with two handles on one file, either may be
// released first — the lender (its node gets an fd of its own while the
// other stays open) or the other one — and the file's data and node ops
// stay right throughout.
func TestLendSeveralHandles(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, backing := fstest.Mount(t, backend)
		mustWriteFile(t, filepath.Join(backing, "f"), []byte("0123456789"), 0o644)
		p := filepath.Join(mnt, "f")
		for _, lenderFirst := range []bool{true, false} {
			a, err := os.OpenFile(p, os.O_RDWR, 0) // the lender
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				a.Close()
				t.Fatal(err)
			}
			first, second := b, a
			if lenderFirst {
				first, second = a, b
			}
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			nodeOps(t, mnt, backing, "f", fmt.Sprintf("one of two handles closed (lender first: %v)", lenderFirst))
			if _, err := second.WriteAt([]byte("abcd"), 0); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4)
			if _, err := second.ReadAt(buf, 0); err != nil || string(buf) != "abcd" {
				t.Fatalf("read through the remaining handle: %q %v", buf, err)
			}
			if err := second.Close(); err != nil {
				t.Fatal(err)
			}
			if got := mustReadFile(t, filepath.Join(backing, "f")); string(got) != "abcd" {
				t.Fatalf("backing file holds %q, want %q", got, "abcd") // nodeOps truncated it to 4 bytes
			}
			nodeOps(t, mnt, backing, "f", "both handles closed")
		}
	})
}

// TestLendChurn: node requests of several steps (SETATTR: truncate,
// chmod, utimes, then a statx) racing with opens and closes of the same
// file, which move its open files on and off the node's fd, and with
// opens of other files, which take whatever fd numbers are free. Every
// request succeeds and reports the size it set. (With the node's fd
// switching numbers instead, the soak saw EBADF from a truncate whose
// statx named a number closed meanwhile.)
func TestLendChurn(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, _ := fstest.Mount(t, backend)
		p := filepath.Join(mnt, "f")
		mustWriteFile(t, p, []byte("x"), 0o644)
		for i := range 8 {
			mustWriteFile(t, filepath.Join(mnt, fmt.Sprintf("other%d", i)), nil, 0o644)
		}
		stop := make(chan struct{})
		errs := make(chan error, 3)
		// churn opens and closes name(i) with mode until stop.
		churn := func(name func(i int) string, mode int) {
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				f, err := os.OpenFile(filepath.Join(mnt, name(i)), mode, 0)
				if err != nil {
					errs <- err
					return
				}
				f.Close()
			}
		}
		same := func(int) string { return "f" }
		go churn(same, os.O_RDONLY)
		go churn(same, os.O_WRONLY)
		go churn(func(i int) string { return fmt.Sprintf("other%d", i%8) }, os.O_RDONLY)
		deadline := time.Now().Add(time.Second)
		for size := int64(1); time.Now().Before(deadline); size = size%4096 + 1 {
			if err := os.Truncate(p, size); err != nil {
				t.Errorf("truncate to %d: %v", size, err)
				break
			}
			if err := os.Chmod(p, os.FileMode(0o600|size&0o7)); err != nil {
				t.Errorf("chmod: %v", err)
				break
			}
			if err := os.Chtimes(p, time.Unix(size, 0), time.Unix(size, 0)); err != nil {
				t.Errorf("chtimes: %v", err)
				break
			}
			fi, err := os.Stat(p)
			if err != nil || fi.Size() != size || fi.ModTime().Unix() != size {
				t.Errorf("stat after setting size and mtime %d: %v, %v", size, fi, err)
				break
			}
		}
		close(stop)
		for range 3 {
			if err := <-errs; err != nil {
				t.Errorf("open/close churn: %v", err)
			}
		}
	})
}
