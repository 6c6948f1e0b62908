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

// TestOpenByHandle: on a resident backing root that is not a memory root
// (tmpfs served with --resident-data=false: what a disk file system
// gets), OPEN and OPENDIR reopen the node by file handle on the spot: of
// each open+close round only the two closes leave the loop (through
// /proc the opens would too; the sync backend counts no ops on the
// spot). Files opened for reading and for writing give the native
// bytes. Where a handle cannot serve, the open still works the general
// way: a file under a bind mount inside the tree (same
// device, another mount: EXDEV; opened for writing once that mount is
// read-only, EROFS); and a deleted file reopened through /proc/self/fd
// gives its bytes.
func TestOpenByHandle(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		m, mnt, backing := memoryRoot(t, backend, false)
		p := func(name string) string { return filepath.Join(mnt, name) }
		mustWriteFile(t, filepath.Join(backing, "f"), []byte("opened by handle"), 0o644)
		for _, d := range []string{"d", "src", "bind"} {
			if err := os.Mkdir(filepath.Join(backing, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		mustWriteFile(t, filepath.Join(backing, "src", "g"), []byte("under a bind mount"), 0o644)
		if err := unix.Mount(filepath.Join(backing, "src"), filepath.Join(backing, "bind"), "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind mount: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(filepath.Join(backing, "bind"), unix.MNT_DETACH) })

		const n = 16
		before := offLoop(t, m)
		for i := 0; i < n; i++ {
			f, err := os.Open(p("f"))
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			d, err := os.Open(p("d"))
			if err != nil {
				t.Fatal(err)
			}
			d.Close()
		}
		if left := offLoop(t, m) - before; backend != "sync" && left > 2*n {
			t.Errorf("%d ops left the loop in %d rounds of open+close and opendir+close, want at most %d (the closes)", left, n, 2*n)
		}

		if b := mustReadFile(t, p("f")); string(b) != "opened by handle" {
			t.Fatalf("read: %q", b)
		}
		w, err := os.OpenFile(p("f"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt([]byte("reopen "), 0); err != nil {
			t.Fatal(err)
		}
		if fl, err := unix.FcntlInt(w.Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
			t.Fatalf("flags of the mount's file: %#o %v", fl, err)
		}
		w.Close()
		if b := mustReadFile(t, filepath.Join(backing, "f")); string(b) != "reopen by handle" {
			t.Fatalf("backing file after a write: %q", b)
		}

		if b := mustReadFile(t, p("bind/g")); string(b) != "under a bind mount" {
			t.Fatalf("read under the bind mount: %q", b)
		}
		wantErrno(t, "open for writing under a read-only bind mount", func() error {
			if err := unix.Mount("", filepath.Join(backing, "bind"), "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
				t.Fatalf("remount read-only: %v", err)
			}
			f, err := os.OpenFile(p("bind/g"), os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
			return err
		}(), unix.EROFS)

		f, err := os.Open(p("f"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := os.Remove(p("f")); err != nil {
			t.Fatal(err)
		}
		again, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
		if err != nil {
			t.Fatalf("reopen of a deleted file: %v", err)
		}
		defer again.Close()
		buf := make([]byte, 64)
		if k, err := again.ReadAt(buf, 0); string(buf[:k]) != "reopen by handle" {
			t.Fatalf("read of the deleted file reopened: %q, %v", buf[:k], err)
		}
	})
}

// TestOpenWaitsOffLoop: an OPEN for writing of a file another open file
// holds a read lease on must wait until the lease is given up. On the
// resident roots, where OPEN runs on the spot, it waits on a worker: the
// loop serves other requests meanwhile. (The sync backend waits on the
// loop, by design, and is not asked to.)
func TestOpenWaitsOffLoop(t *testing.T) {
	forMemoryRoot(t, func(t *testing.T, backend string, on bool) {
		_, mnt, backing := memoryRoot(t, backend, on)
		mustWriteFile(t, filepath.Join(backing, "f"), []byte("leased"), 0o644)
		mustWriteFile(t, filepath.Join(backing, "other"), nil, 0o644)
		lessee, err := os.Open(filepath.Join(backing, "f"))
		if err != nil {
			t.Fatal(err)
		}
		defer lessee.Close()
		if _, err := unix.FcntlInt(lessee.Fd(), unix.F_SETLEASE, unix.F_RDLCK); err != nil {
			t.Fatalf("take a read lease: %v", err)
		}
		release := func() { unix.FcntlInt(lessee.Fd(), unix.F_SETLEASE, unix.F_UNLCK) }
		defer release()

		opened := make(chan error, 1)
		go func() {
			f, err := os.OpenFile(filepath.Join(mnt, "f"), os.O_WRONLY, 0)
			if err == nil {
				_, err = f.WriteAt([]byte("L"), 0)
				f.Close()
			}
			opened <- err
		}()
		time.Sleep(100 * time.Millisecond)
		select {
		case err := <-opened:
			t.Fatalf("the open returned (%v) while the lease was held", err)
		default:
		}
		if backend != "sync" {
			served := make(chan error, 1)
			go func() {
				for i := 0; i < 20; i++ {
					if _, err := os.Stat(filepath.Join(mnt, "other")); err != nil {
						served <- err
						return
					}
				}
				served <- nil
			}()
			select {
			case err := <-served:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("stats through the mount stalled while an OPEN waited for a lease")
			}
		}
		release()
		select {
		case err := <-opened:
			if err != nil {
				t.Fatalf("open after the lease was given up: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the open did not finish after the lease was given up")
		}
		if b := mustReadFile(t, filepath.Join(backing, "f")); string(b) != "Leased" {
			t.Fatalf("backing file: %q", b)
		}
	})
}
