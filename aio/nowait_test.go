package aio

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nowaitOf returns the backend's non-blocking-attempt state.
func nowaitOf(b Backend) *nowait {
	switch b := b.(type) {
	case *Pool:
		return &b.nowait
	case *Uring:
		return &b.nowait
	}
	return nil
}

// isTmpfs reports whether dir is on tmpfs, which has no RWF_NOWAIT.
func isTmpfs(t *testing.T, dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Type == unix.TMPFS_MAGIC
}

// TestNowaitReads checks the non-blocking first attempt on a page-cache
// file system (served in Submit, no worker, no ring) and on tmpfs (refused
// once, remembered per fd, served by the backend), with the same bytes
// either way; a short read is left to the backend; closing the fd forgets.
func TestNowaitReads(t *testing.T) {
	dirs := map[string]string{"tempdir": t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "evfs-nowait-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dirs["shm"] = d
	}
	for _, kind := range []string{"pool", "uring"} {
		for name, dir := range dirs {
			t.Run(kind+"/"+name, func(t *testing.T) {
				h := newHarness(t, kind)
				nw := nowaitOf(h.b)
				const size = 6000 // one whole block, then a short one
				data := bytes.Repeat([]byte("evfs-nowait!"), size/12)
				path := filepath.Join(dir, "f")
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				fd := openFile(t, path, unix.O_RDONLY) // just written: in the page cache
				whole := Pread(fd, make([]byte, 4096), 0)
				short := Pread(fd, make([]byte, 4096), 4096)
				res := h.run(whole, short)
				if res[0] != 4096 || !bytes.Equal(whole.Buf, data[:4096]) {
					t.Fatalf("whole read: res %d, data %q…", res[0], whole.Buf[:16])
				}
				if res[1] != size-4096 || !bytes.Equal(short.Buf[:size-4096], data[4096:]) {
					t.Fatalf("short read: res %d, want %d", res[1], size-4096)
				}
				if isTmpfs(t, dir) {
					if nw.hits != 0 || !nw.unsupported[fd] {
						t.Fatalf("tmpfs: hits %d, blocksOn %v; want 0, true", nw.hits, nw.unsupported[fd])
					}
				} else if nw.hits != 1 || nw.unsupported[fd] {
					// The whole read is served in Submit; the short one is
					// not taken (it may be a partial cache hit).
					t.Fatalf("page cache: hits %d, blocksOn %v; want 1, false", nw.hits, nw.unsupported[fd])
				}
				dup, err := unix.Dup(fd)
				if err != nil {
					t.Fatal(err)
				}
				nw.unsupported = map[int]bool{dup: true}
				if r := h.run(Close(dup)); r[0] != 0 || nw.unsupported[dup] {
					t.Fatalf("close: res %d, still remembered: %v", r[0], nw.unsupported[dup])
				}
			})
		}
	}
}

// TestNowaitOff: with Config.NoNowait every read reaches the backend.
func TestNowaitOff(t *testing.T) {
	b, err := New(Config{Kind: "pool", Workers: 2, NoNowait: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, make([]byte, 4096), 0o644)
	fd := openFile(t, path, unix.O_RDONLY)
	if _, ok := nowaitOf(b).try(Pread(fd, make([]byte, 4096), 0)); ok {
		t.Fatal("NoNowait: the read was served in Submit")
	}
}

// TestNowaitResident: a statx of an fd marked Resident, and the close of
// a spare fd, are done in Submit on pool and uring alike, with the same
// result as the syscall; an unmarked statx is not.
func TestNowaitResident(t *testing.T) {
	for _, kind := range []string{"pool", "uring"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			nw := nowaitOf(h.b)
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, make([]byte, 12345), 0o640); err != nil {
				t.Fatal(err)
			}
			fd := openFile(t, path, unix.O_PATH)
			var want unix.Stat_t
			if err := unix.Fstat(fd, &want); err != nil {
				t.Fatal(err)
			}
			plain := Statx(fd, "", unix.AT_EMPTY_PATH)
			if r := h.run(plain); r[0] != 0 || nw.hits != 0 {
				t.Fatalf("plain statx: res %d, inline hits %d; want 0, 0", r[0], nw.hits)
			}
			res := StatxResident(fd, unix.AT_SYMLINK_NOFOLLOW)
			if r := h.run(res); r[0] != 0 || nw.hits != 1 {
				t.Fatalf("resident statx: res %d, inline hits %d; want 0, 1", r[0], nw.hits)
			}
			for _, op := range []*Op{plain, res} {
				if op.Stat.Size != 12345 || op.Stat.Ino != want.Ino || op.Stat.Mode != uint16(want.Mode) {
					t.Fatalf("statx: size %d ino %d mode %o; want 12345, %d, %o", op.Stat.Size, op.Stat.Ino, op.Stat.Mode, want.Ino, want.Mode)
				}
			}
			if h.b.Stats().Inline != 1 {
				t.Fatalf("Stats().Inline = %d, want 1", h.b.Stats().Inline)
			}
			spare, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if r := h.run(CloseSpare(spare)); r[0] != 0 || nw.hits != 2 {
				t.Fatalf("spare close: res %d, inline hits %d; want 0, 2", r[0], nw.hits)
			}
			if _, err := unix.FcntlInt(uintptr(spare), unix.F_GETFD, 0); err != unix.EBADF {
				t.Fatalf("spare fd still open after CloseSpare: %v", err)
			}
		})
	}
}

// TestNowaitResidentData: on pool and uring, Resident reads, writes,
// opens and name ops of bounded work are done in Submit with the
// syscall's results; a read over ResidentIOMax, an O_TRUNC open and a
// fallocate, though marked, go to the backend, and so does an unmarked
// write.
func TestNowaitResidentData(t *testing.T) {
	for _, kind := range []string{"pool", "uring"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			nw := nowaitOf(h.b)
			dir := t.TempDir()
			dirFd := openFile(t, dir, unix.O_PATH|unix.O_DIRECTORY)
			mark := func(op *Op) *Op { op.Resident = true; return op }
			inline := func(want uint64, what string, ops ...*Op) []int64 {
				t.Helper()
				before := nw.hits
				res := h.run(ops...)
				if got := nw.hits - before; got != want {
					t.Fatalf("%s: %d ops done in Submit, want %d (results %v)", what, got, want, res)
				}
				return res
			}

			res := inline(1, "resident create", mark(Openat(dirFd, "f", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)))
			if res[0] < 0 {
				t.Fatalf("create: %v", unix.Errno(-res[0]))
			}
			fd := int(res[0])
			t.Cleanup(func() { unix.Close(fd) })
			data := bytes.Repeat([]byte("resident"), ResidentIOMax/8)
			if r := inline(1, "resident 128 KiB write", mark(Pwrite(fd, data, 0))); r[0] != int64(len(data)) {
				t.Fatalf("write: res %d, want %d", r[0], len(data))
			}
			if r := inline(0, "unmarked write", Pwrite(fd, data[:4096], int64(len(data)))); r[0] != 4096 {
				t.Fatalf("unmarked write: res %d", r[0])
			}
			small := mark(Pread(fd, make([]byte, 4096), 8))
			if r := inline(1, "resident 4 KiB read", small); r[0] != 4096 || !bytes.Equal(small.Buf, data[8:8+4096]) {
				t.Fatalf("read: res %d, bytes differ: %v", r[0], !bytes.Equal(small.Buf, data[8:8+4096]))
			}
			big := mark(Pread(fd, make([]byte, ResidentIOMax+4096), 0))
			big.NoNowait = true // not the RWF_NOWAIT attempt either (TempDir may be ext4)
			if r := inline(0, "resident read over ResidentIOMax", big); r[0] != int64(len(data)+4096) || !bytes.Equal(big.Buf[:len(data)], data) {
				t.Fatalf("big read: res %d", r[0])
			}
			inline(0, "resident fallocate", mark(Fallocate(fd, 0, 0, 1<<20)))
			inline(0, "resident O_TRUNC open", mark(Openat(dirFd, "f", unix.O_WRONLY|unix.O_TRUNC, 0)))
			if r := inline(2, "resident mkdir + rename", mark(Mkdirat(dirFd, "d", 0o700)), mark(Renameat(dirFd, "d", dirFd, "e", 0))); r[0] != 0 || r[1] != 0 {
				t.Fatalf("mkdir, rename: %v", r)
			}
			if _, err := os.Stat(filepath.Join(dir, "e")); err != nil {
				t.Fatalf("rename done in Submit did not happen: %v", err)
			}
		})
	}
}

// TestNowaitCachedOpen: an O_PATH open of a name in the dentry cache is
// done in Submit (RESOLVE_CACHED) and yields the same inode; a cached
// negative entry answers ENOENT; RESOLVE_NO_XDEV refuses a mount point
// with EXDEV whichever path runs it; opens that may call a file system's
// open method are never tried.
func TestNowaitCachedOpen(t *testing.T) {
	for _, kind := range []string{"pool", "uring"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			nw := nowaitOf(h.b)
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			var want unix.Stat_t
			if err := unix.Stat(path, &want); err != nil { // the dentry is cached now
				t.Fatal(err)
			}
			dfd := openFile(t, dir, unix.O_PATH|unix.O_DIRECTORY)
			op := Openat2(dfd, "f", unix.O_PATH|unix.O_NOFOLLOW, 0, unix.RESOLVE_NO_XDEV)
			r := h.run(op)
			if r[0] < 0 || nw.hits != 1 {
				t.Fatalf("cached open: res %d, inline hits %d; want an fd, 1", r[0], nw.hits)
			}
			var got unix.Stat_t
			if err := unix.Fstat(int(r[0]), &got); err != nil || got.Ino != want.Ino {
				t.Fatalf("cached open gave ino %d (%v), want %d", got.Ino, err, want.Ino)
			}
			unix.Close(int(r[0]))

			var st unix.Stat_t
			unix.Stat(filepath.Join(dir, "missing"), &st) // a negative dentry
			if r := h.run(Openat(dfd, "missing", unix.O_PATH|unix.O_NOFOLLOW, 0)); r[0] != -int64(unix.ENOENT) {
				t.Fatalf("missing name: res %d, want -ENOENT", r[0])
			}

			root := openFile(t, "/", unix.O_PATH|unix.O_DIRECTORY)
			if r := h.run(Openat2(root, "proc", unix.O_PATH, 0, unix.RESOLVE_NO_XDEV)); r[0] != -int64(unix.EXDEV) {
				t.Fatalf("mount point with RESOLVE_NO_XDEV: res %d, want -EXDEV", r[0])
			}

			before := nw.hits
			r = h.run(Openat(dfd, "f", unix.O_RDONLY, 0))
			if r[0] < 0 || nw.hits != before {
				t.Fatalf("O_RDONLY open: res %d, inline hits %d → %d; want an fd, not inline", r[0], before, nw.hits)
			}
			unix.Close(int(r[0]))
		})
	}
}

// TestNowaitSkips: a read of an O_DIRECT fd (a synchronous O_DIRECT read
// waits for the device, RWF_NOWAIT or not) and a read the submitter
// marks NoNowait are never tried on the spot; the uring backend sends
// NoNowait reads and writes to its pool. Both still return the data.
func TestNowaitSkips(t *testing.T) {
	for _, kind := range []string{"pool", "uring"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			nw := nowaitOf(h.b)
			path := filepath.Join(t.TempDir(), "f")
			data := bytes.Repeat([]byte("0123456789abcdef"), 256)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			fd := openFile(t, path, unix.O_RDWR) // in the page cache: a read would be a hit
			direct := Pread(fd, make([]byte, 4096), 0)
			direct.Direct = true
			marked := Pread(fd, make([]byte, 4096), 0)
			marked.NoNowait = true
			write := Pwrite(fd, data[:4096], 0)
			write.NoNowait = true
			r := h.run(direct, marked, write)
			if r[0] != 4096 || r[1] != 4096 || r[2] != 4096 || !bytes.Equal(direct.Buf, data[:4096]) || !bytes.Equal(marked.Buf, data[:4096]) {
				t.Fatalf("results %v", r)
			}
			if nw.hits != 0 {
				t.Fatalf("%d ops served on the spot, want 0", nw.hits)
			}
			if u, ok := h.b.(*Uring); ok {
				if u.useRing(1, marked) || u.useRing(1, write) {
					t.Fatal("uring puts NoNowait reads or writes on the ring")
				}
				if !u.useRing(1, direct) {
					t.Fatal("uring keeps an O_DIRECT read of a page-cache fs off the ring")
				}
			}
		})
	}
}

// TestNowaitUncachedOpen: a name the dentry cache does not hold is not
// opened on the spot (RESOLVE_CACHED says EAGAIN) but by the backend,
// with the same result. The cache is emptied with vm.drop_caches.
func TestNowaitUncachedOpen(t *testing.T) {
	for _, kind := range []string{"pool", "uring"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			nw := nowaitOf(h.b)
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			dfd := openFile(t, dir, unix.O_PATH|unix.O_DIRECTORY)
			if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
				t.Skipf("cannot empty the dentry cache: %v", err)
			}
			r := h.run(Openat(dfd, "f", unix.O_PATH|unix.O_NOFOLLOW, 0))
			if r[0] < 0 || nw.hits != 0 {
				t.Fatalf("uncached open: res %d, inline hits %d; want an fd, 0", r[0], nw.hits)
			}
			unix.Close(int(r[0]))
		})
	}
}

// TestNowaitResidentOpen: a Resident open by handle is done in Submit,
// its fd without the O_NONBLOCK of the attempt; one that would wait for
// a lease another open file holds is not: the backend opens it once the
// lease is given up. A Resident open of a FIFO with no reader (which
// would wait for one) is left to the backend too. (Default routing: with
// RingAll the FIFO open would meet io_uring's own inline attempt, which
// answers ENXIO where open(2) waits.)
func TestNowaitResidentOpen(t *testing.T) {
	for _, kind := range []string{"pool", "uring"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarnessConfig(t, Config{Kind: kind, Workers: 4})
			nw := nowaitOf(h.b)
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if err := os.WriteFile(path, []byte("leased"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, mnt, err := unix.NameToHandleAt(unix.AT_FDCWD, dir, 0)
			if err != nil {
				t.Fatal(err)
			}
			mountFd := openFile(t, dir, unix.O_RDONLY|unix.O_DIRECTORY)
			pathFd := openFile(t, path, unix.O_PATH)
			byHandle := func(flags int) *Op {
				op := OpenByHandleAt(pathFd, mountFd, mnt, flags, nil)
				op.Resident = true
				return op
			}

			fd := h.do(byHandle(unix.O_RDWR))
			if fd < 0 || nw.hits != 1 {
				t.Fatalf("resident open: res %d, inline hits %d; want an fd, 1", fd, nw.hits)
			}
			if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 || fl&unix.O_ACCMODE != unix.O_RDWR {
				t.Fatalf("flags of the new fd: %#o %v; want O_RDWR without O_NONBLOCK", fl, err)
			}
			unix.Close(int(fd))

			lessee := openFile(t, path, unix.O_RDONLY)
			if _, err := unix.FcntlInt(uintptr(lessee), unix.F_SETLEASE, unix.F_RDLCK); err != nil {
				t.Skipf("cannot take a read lease here: %v", err)
			}
			// The lessee is told to give the lease up (SIGIO, ignored
			// here); it does so a little later, as a real one would.
			go func() {
				time.Sleep(50 * time.Millisecond)
				unix.FcntlInt(uintptr(lessee), unix.F_SETLEASE, unix.F_UNLCK)
			}()
			hits := nw.hits
			start := time.Now()
			fd = h.do(byHandle(unix.O_WRONLY))
			if fd < 0 || nw.hits != hits {
				t.Fatalf("open against a lease: res %d, inline hits %d → %d; want an fd from the backend", fd, hits, nw.hits)
			}
			if waited := time.Since(start); waited < 40*time.Millisecond {
				t.Fatalf("open against a lease returned after %v, before the lease was given up", waited)
			}
			unix.Close(int(fd))

			fifo := filepath.Join(dir, "fifo")
			if err := unix.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			go func() {
				time.Sleep(50 * time.Millisecond)
				if r, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
					time.Sleep(time.Second)
					unix.Close(r)
				}
			}()
			hits = nw.hits
			op := Openat(unix.AT_FDCWD, fifo, unix.O_WRONLY, 0)
			op.Resident = true
			fd = h.do(op)
			if fd < 0 || nw.hits != hits {
				t.Fatalf("FIFO open: res %d, inline hits %d → %d; want an fd from the backend", fd, hits, nw.hits)
			}
			unix.Close(int(fd))
		})
	}
}
