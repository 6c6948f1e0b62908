package fs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"evfs/fs"
	"evfs/fs/fstest"
)

// offLoop is how many ops the mount's backend did not complete on the
// spot so far: the ones that went to a worker or the ring.
func offLoop(t *testing.T, m *fs.Mount) uint64 {
	t.Helper()
	s := snapshot(t, m)
	return s.Loop.Backend.Submitted - s.Loop.Backend.Inline
}

// memoryRoot mounts a fresh tmpfs as the backing directory and serves it
// with resident data on or off (and opts).
func memoryRoot(t *testing.T, backend string, residentData bool, opts ...fstest.Option) (m *fs.Mount, mnt, backing string) {
	t.Helper()
	mnt, backing = fstest.Dirs(t)
	mountTmpfs(t, backing, "64m")
	opts = append(opts, func(c *fs.Config) { c.NoResidentData = !residentData })
	m = fstest.MountAt(t, backend, backing, mnt, opts...)
	return m, mnt, backing
}

// forMemoryRoot runs fn on every backend with resident data on and off.
func forMemoryRoot(t *testing.T, fn func(t *testing.T, backend string, on bool)) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		for _, on := range []bool{true, false} {
			name := "resident-data"
			if !on {
				name = "no-resident-data"
			}
			t.Run(name, func(t *testing.T) { fn(t, backend, on) })
		}
	})
}

// TestMemoryRootData: on a tmpfs backing root, 4 KiB O_DIRECT writes and
// reads (and the GETATTRs the kernel sends with them) never leave the
// loop on pool and uring; a 256 KiB read does (over aio.ResidentIOMax);
// with --resident-data=false every write and read does. The bytes match
// natively both ways.
func TestMemoryRootData(t *testing.T) {
	forMemoryRoot(t, func(t *testing.T, backend string, on bool) {
		m, mnt, backing := memoryRoot(t, backend, on)
		f, err := os.OpenFile(filepath.Join(mnt, "f"), os.O_RDWR|os.O_CREATE|unix.O_DIRECT, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := alignedBuf(256 << 10)
		const n = 16
		before := offLoop(t, m)
		for i := 0; i < n; i++ {
			blk := buf[:4096]
			for j := range blk {
				blk[j] = byte(i*7 + j)
			}
			if _, err := f.WriteAt(blk, int64(i)*4096); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			clear(blk)
			if _, err := f.ReadAt(blk, int64(i)*4096); err != nil || blk[1] != byte(i*7+1) || blk[4095] != byte(i*7+4095) {
				t.Fatalf("read %d: %v, bytes %d %d", i, err, blk[1], blk[4095])
			}
		}
		left := offLoop(t, m) - before
		switch {
		case backend == "sync":
		case on && left != 0:
			t.Errorf("%d of %d writes and reads (and their GETATTRs) left the loop, want 0", left, 2*n)
		case !on && left < 2*n:
			t.Errorf("--resident-data=false: %d ops left the loop for %d writes and reads, want at least %d", left, 2*n, 2*n)
		}
		native := mustReadFile(t, filepath.Join(backing, "f"))
		if len(native) != n*4096 || native[5*4096+3] != byte(5*7+3) {
			t.Fatalf("backing file: %d bytes, byte %d", len(native), native[5*4096+3])
		}

		for i := range buf {
			buf[i] = byte(i / 4096)
		}
		mustWriteFile(t, filepath.Join(backing, "big"), buf, 0o644)
		g, err := os.OpenFile(filepath.Join(mnt, "big"), os.O_RDONLY|unix.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		got := alignedBuf(len(buf))
		before = offLoop(t, m)
		if k, err := g.ReadAt(got, 0); k != len(buf) || err != nil || !bytes.Equal(got, buf) {
			t.Fatalf("256 KiB read: %d bytes, %v, equal %v", k, err, bytes.Equal(got, buf))
		}
		if left := offLoop(t, m) - before; backend != "sync" && left == 0 {
			t.Errorf("a 256 KiB read was done on the loop (over aio.ResidentIOMax)")
		}
	})
}

// TestMemoryRootNamespace: on a tmpfs backing root, a round of namespace
// and xattr ops through the mount gives the native results, and almost
// nothing leaves the loop on pool and uring (the node fds' closes at
// FORGET do: they may free an inode); with --resident-data=false most of
// it does.
func TestMemoryRootNamespace(t *testing.T) {
	forMemoryRoot(t, func(t *testing.T, backend string, on bool) {
		m, mnt, backing := memoryRoot(t, backend, on)
		p := func(name string) string { return filepath.Join(mnt, name) }
		before := offLoop(t, m)
		if err := os.Mkdir(p("d"), 0o750); err != nil {
			t.Fatal(err)
		}
		mustWriteFile(t, p("d/f"), []byte("memory root"), 0o640)
		if err := os.Rename(p("d/f"), p("d/g")); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(p("d/g"), "user.evfs", []byte("x1"), 0); err != nil {
			t.Fatal(err)
		}
		val := make([]byte, 16)
		if k, err := unix.Getxattr(p("d/g"), "user.evfs", val); err != nil || string(val[:k]) != "x1" {
			t.Fatalf("getxattr: %q, %v", val[:max(k, 0)], err)
		}
		if err := os.Symlink("d/g", p("s")); err != nil {
			t.Fatal(err)
		}
		if target, err := os.Readlink(p("s")); err != nil || target != "d/g" {
			t.Fatalf("readlink: %q, %v", target, err)
		}
		if b := mustReadFile(t, p("s")); string(b) != "memory root" {
			t.Fatalf("read through the symlink: %q", b)
		}
		if ents, err := os.ReadDir(p("d")); err != nil || len(ents) != 1 || ents[0].Name() != "g" {
			t.Fatalf("readdir: %v, %v", ents, err)
		}
		st := lstat(t, filepath.Join(backing, "d", "g"))
		if st.Mode != unix.S_IFREG|0o640 || st.Size != 11 {
			t.Fatalf("backing file: mode %o size %d", st.Mode, st.Size)
		}
		for _, name := range []string{"s", "d/g"} {
			if err := os.Remove(p(name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Remove(p("d")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(backing, "d")); !os.IsNotExist(err) {
			t.Fatalf("rmdir through the mount: backing dir still there (%v)", err)
		}
		left := offLoop(t, m) - before
		t.Logf("%d ops left the loop", left)
		switch {
		case backend == "sync":
		case on && left > 6:
			t.Errorf("%d ops left the loop, want at most 6 (node-fd closes at FORGET)", left)
		case !on && left < 12:
			t.Errorf("--resident-data=false: %d ops left the loop, want at least 12", left)
		}
	})
}
