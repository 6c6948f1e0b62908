package aio

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

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
					if nw.hits != 0 || !nw.blocksOn(fd) {
						t.Fatalf("tmpfs: hits %d, blocksOn %v; want 0, true", nw.hits, nw.blocksOn(fd))
					}
				} else if nw.hits != 1 || nw.blocksOn(fd) {
					// The whole read is served in Submit; the short one is
					// not taken (it may be a partial cache hit).
					t.Fatalf("page cache: hits %d, blocksOn %v; want 1, false", nw.hits, nw.blocksOn(fd))
				}
				dup, err := unix.Dup(fd)
				if err != nil {
					t.Fatal(err)
				}
				nw.unsupported = map[int]bool{dup: true}
				if r := h.run(Close(dup)); r[0] != 0 || nw.blocksOn(dup) {
					t.Fatalf("close: res %d, still remembered: %v", r[0], nw.blocksOn(dup))
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
