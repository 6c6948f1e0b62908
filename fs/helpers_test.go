package fs_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"evfs/fs"
	"evfs/fs/fstest"
)

// errnoOf returns the errno inside err (0 for nil, EIO-like -1 if err
// carries no errno, so it never equals a real one by accident).
func errnoOf(err error) unix.Errno {
	if err == nil {
		return 0
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return ^unix.Errno(0)
}

// wantErrno fails t unless err carries want (0: success).
func wantErrno(t testing.TB, what string, err error, want unix.Errno) {
	t.Helper()
	if got := errnoOf(err); got != want {
		t.Errorf("%s: got %v (%v), want %v (%d)", what, err, got, want.Error(), int(want))
	}
}

func mustWriteFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

func mustReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func lstat(t testing.TB, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatalf("lstat %s: %v", path, err)
	}
	return st
}

func mustNotExist(t testing.TB, path string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); !errors.Is(err, unix.ENOENT) {
		t.Errorf("lstat %s: got %v, want ENOENT", path, err)
	}
}

// nativeDir is a plain directory on the same backing filesystem as the
// test mounts, to compare evfs's answers with the kernel's own.
func nativeDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "native")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// sameAttrs compares everything stat(2) reports that a passthrough must
// reproduce from the backing inode (st_dev belongs to the FUSE mount).
func sameAttrs(t testing.TB, what string, got, want unix.Stat_t) {
	t.Helper()
	type field struct {
		name      string
		got, want int64
	}
	for _, f := range []field{
		{"ino", int64(got.Ino), int64(want.Ino)},
		{"mode", int64(got.Mode), int64(want.Mode)},
		{"nlink", int64(got.Nlink), int64(want.Nlink)},
		{"uid", int64(got.Uid), int64(want.Uid)},
		{"gid", int64(got.Gid), int64(want.Gid)},
		{"rdev", int64(got.Rdev), int64(want.Rdev)},
		{"size", got.Size, want.Size},
		{"blocks", got.Blocks, want.Blocks},
		{"blksize", int64(got.Blksize), int64(want.Blksize)},
		{"atime.sec", got.Atim.Sec, want.Atim.Sec},
		{"atime.nsec", got.Atim.Nsec, want.Atim.Nsec},
		{"mtime.sec", got.Mtim.Sec, want.Mtim.Sec},
		{"mtime.nsec", got.Mtim.Nsec, want.Mtim.Nsec},
		{"ctime.sec", got.Ctim.Sec, want.Ctim.Sec},
		{"ctime.nsec", got.Ctim.Nsec, want.Ctim.Nsec},
	} {
		if f.got != f.want {
			t.Errorf("%s: %s = %d (%#o) through the mount, %d (%#o) on the backing fs", what, f.name, f.got, f.got, f.want, f.want)
		}
	}
}

// randomPool is 8 MiB of pseudo-random bytes, made once per process.
var randomPool = sync.OnceValue(func() []byte {
	b := make([]byte, 8<<20)
	rng := rand.New(rand.NewPCG(0x5eed, 0xf00d))
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b
})

// randomBytes returns n (at most 8 MiB) pseudo-random bytes starting at
// a position chosen by rng. The slice is shared: never write into it.
func randomBytes(rng *rand.Rand, n int) []byte {
	p := randomPool()
	if n > len(p) {
		panic("randomBytes: too many")
	}
	off := rng.IntN(len(p) - n + 1)
	return p[off : off+n : off+n]
}

// opCount is how many requests of the FUSE operation name (LOOKUP,
// READDIRPLUS, …) the mount has answered.
func opCount(m *fs.Mount, name string) uint64 {
	for _, s := range m.OpStats() {
		if s.Name == name {
			return s.Count
		}
	}
	return 0
}

// snapshot is the mount's statistics, taken through its loop.
func snapshot(t testing.TB, m *fs.Mount) fs.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := m.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// alignedBuf is a page-aligned buffer of n bytes (O_DIRECT I/O), freed
// with the test binary.
func alignedBuf(n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		panic(err)
	}
	return b
}

// enableFuseURing turns on FUSE over io_uring for the test, or skips it
// where the kernel has none.
func enableFuseURing(t *testing.T) {
	t.Helper()
	if err := fstest.EnableFuseURing(t); err != nil {
		t.Skip(err)
	}
}

// mountTmpfs mounts a fresh tmpfs of size (a tmpfs size= option) on dir,
// detached again at cleanup. Called before the FUSE mount over a backing
// dir, its cleanup runs after the FUSE mount's (last-in first-out).
func mountTmpfs(t testing.TB, dir, size string) {
	t.Helper()
	if err := unix.Mount("evfs-test", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}
