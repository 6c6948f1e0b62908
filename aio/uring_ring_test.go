package aio

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Every Prep helper runs on a real ring here and its effect is checked
// with ordinary syscalls.

func newTestRing(t testing.TB, entries uint32) *Ring {
	t.Helper()
	r, err := NewRing(entries, 0)
	if err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// run submits one prepared SQE and returns its result.
func run(t testing.TB, r *Ring, prep func(*SQE)) int32 {
	t.Helper()
	sqe := r.GetSQE()
	if sqe == nil {
		t.Fatal("GetSQE: ring full")
	}
	prep(sqe)
	sqe.UserData = 0xfeed
	if n, err := r.SubmitAndWait(1); err != nil || n != 1 {
		t.Fatalf("SubmitAndWait = %d, %v", n, err)
	}
	cqe, err := r.WaitCQE()
	if err != nil {
		t.Fatal(err)
	}
	if cqe.UserData != 0xfeed {
		t.Fatalf("user_data = %#x", cqe.UserData)
	}
	res := cqe.Res
	r.CQESeen(cqe)
	return res
}

func cs(t testing.TB, s string) *byte {
	t.Helper()
	p, err := unix.BytePtrFromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func openDir(t testing.TB, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func openFile(t testing.TB, path string, flags int) int {
	t.Helper()
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func wantRes(t testing.TB, what string, got int32, want int32) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: res = %d (%v), want %d (%v)", what, got, errOf(got), want, errOf(want))
	}
}

func errOf(res int32) error {
	if res < 0 {
		return unix.Errno(-res)
	}
	return nil
}

func TestRingSetup(t *testing.T) {
	r := newTestRing(t, 64)
	if r.SQEntries() != 64 || r.CQEntries() != 128 {
		t.Fatalf("entries = %d/%d, want 64/128", r.SQEntries(), r.CQEntries())
	}
	t.Logf("features %#x, flags %#x", r.Features(), r.Flags())
	for i := 0; i < 64; i++ {
		sqe := r.GetSQE()
		if sqe == nil {
			t.Fatalf("GetSQE %d: nil", i)
		}
		sqe.PrepNop()
		sqe.UserData = uint64(i)
	}
	if r.GetSQE() != nil {
		t.Fatal("GetSQE on a full SQ returned an entry")
	}
	if n, err := r.Submit(); n != 64 || err != nil {
		t.Fatalf("Submit = %d, %v", n, err)
	}
	if r.GetSQE() == nil {
		t.Fatal("GetSQE after Submit: still full")
	}
	r.sqeTail-- // hand the unused SQE back
	seen := make(map[uint64]bool)
	for len(seen) < 64 {
		cqe, err := r.WaitCQE()
		if err != nil {
			t.Fatal(err)
		}
		if cqe.Res != 0 || seen[cqe.UserData] {
			t.Fatalf("cqe %+v (dup=%v)", *cqe, seen[cqe.UserData])
		}
		seen[cqe.UserData] = true
		r.CQESeen(cqe)
	}
	if _, ok := r.PeekCQE(); ok {
		t.Fatal("extra CQE")
	}
}

func TestPrepNop(t *testing.T) {
	r := newTestRing(t, 8)
	wantRes(t, "nop", run(t, r, func(s *SQE) { s.PrepNop() }), 0)
}

func TestPrepReadWrite(t *testing.T) {
	r := newTestRing(t, 8)
	path := filepath.Join(t.TempDir(), "f")
	fd := openFile(t, path, unix.O_RDWR|unix.O_CREAT)
	data := []byte("hello, ring")
	wantRes(t, "write", run(t, r, func(s *SQE) { s.PrepWrite(fd, data, 5) }), int32(len(data)))
	got, _ := os.ReadFile(path)
	if want := append(make([]byte, 5), data...); !bytes.Equal(got, want) {
		t.Fatalf("file = %q, want %q", got, want)
	}
	buf := make([]byte, 64)
	wantRes(t, "read", run(t, r, func(s *SQE) { s.PrepRead(fd, buf, 5) }), int32(len(data)))
	if !bytes.Equal(buf[:len(data)], data) {
		t.Fatalf("read %q", buf[:len(data)])
	}
	wantRes(t, "read at EOF", run(t, r, func(s *SQE) { s.PrepRead(fd, buf, 1000) }), 0)
	wantRes(t, "read bad fd", run(t, r, func(s *SQE) { s.PrepRead(-5, buf, 0) }), -int32(unix.EBADF))
}

func TestPrepReadvWritev(t *testing.T) {
	r := newTestRing(t, 8)
	path := filepath.Join(t.TempDir(), "f")
	fd := openFile(t, path, unix.O_RDWR|unix.O_CREAT)
	a, b := []byte("abc"), []byte("defgh")
	wiov := iovecs(nil, [][]byte{a, nil, b})
	wantRes(t, "writev", run(t, r, func(s *SQE) { s.PrepWritev(fd, wiov, 2) }), 8)
	if got, _ := os.ReadFile(path); string(got) != "\x00\x00abcdefgh" {
		t.Fatalf("file = %q", got)
	}
	x, y := make([]byte, 4), make([]byte, 10)
	riov := iovecs(nil, [][]byte{x, y})
	wantRes(t, "readv", run(t, r, func(s *SQE) { s.PrepReadv(fd, riov, 3) }), 7)
	if string(x) != "bcde" || string(y[:3]) != "fgh" {
		t.Fatalf("readv %q %q", x, y[:3])
	}
}

func TestPrepFsync(t *testing.T) {
	r := newTestRing(t, 8)
	fd := openFile(t, filepath.Join(t.TempDir(), "f"), unix.O_RDWR|unix.O_CREAT)
	wantRes(t, "fsync", run(t, r, func(s *SQE) { s.PrepFsync(fd, 0) }), 0)
	wantRes(t, "fdatasync", run(t, r, func(s *SQE) { s.PrepFsync(fd, IORING_FSYNC_DATASYNC) }), 0)
	wantRes(t, "fsync bad fd", run(t, r, func(s *SQE) { s.PrepFsync(-5, 0) }), -int32(unix.EBADF))
}

func TestPrepOpenatClose(t *testing.T) {
	r := newTestRing(t, 8)
	dir := t.TempDir()
	dfd := openDir(t, dir)
	fd := run(t, r, func(s *SQE) {
		s.PrepOpenat(dfd, cs(t, "new"), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	})
	if fd < 0 {
		t.Fatalf("openat: %v", errOf(fd))
	}
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
		t.Fatalf("F_GETFD = %#x, %v", fl, err)
	}
	if st, err := os.Stat(filepath.Join(dir, "new")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat new: %v %v", st, err)
	}
	wantRes(t, "close", run(t, r, func(s *SQE) { s.PrepClose(int(fd)) }), 0)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("fd still open after close: %v", err)
	}
	wantRes(t, "close again", run(t, r, func(s *SQE) { s.PrepClose(int(fd)) }), -int32(unix.EBADF))
	wantRes(t, "openat missing", run(t, r, func(s *SQE) { s.PrepOpenat(dfd, cs(t, "nope"), unix.O_RDONLY, 0) }), -int32(unix.ENOENT))
}

func TestPrepOpenat2(t *testing.T) {
	r := newTestRing(t, 8)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	dfd := openDir(t, filepath.Join(dir))
	how := &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH}
	fd := run(t, r, func(s *SQE) { s.PrepOpenat2(dfd, cs(t, "f"), how) })
	if fd < 0 {
		t.Fatalf("openat2: %v", errOf(fd))
	}
	unix.Close(int(fd))
	wantRes(t, "openat2 escaping", run(t, r, func(s *SQE) { s.PrepOpenat2(dfd, cs(t, "../f"), how) }), -int32(unix.EXDEV))
}

func TestPrepStatx(t *testing.T) {
	r := newTestRing(t, 8)
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	os.WriteFile(path, []byte("twelve bytes"), 0o640)
	dfd := openDir(t, dir)
	st := new(unix.Statx_t)
	wantRes(t, "statx", run(t, r, func(s *SQE) {
		s.PrepStatx(dfd, cs(t, "f"), unix.AT_SYMLINK_NOFOLLOW, StatxMask, st)
	}), 0)
	var want unix.Stat_t
	if err := unix.Stat(path, &want); err != nil {
		t.Fatal(err)
	}
	if st.Ino != want.Ino || int64(st.Size) != want.Size || uint32(st.Mode) != want.Mode ||
		uint64(st.Nlink) != want.Nlink || st.Uid != want.Uid || st.Gid != want.Gid ||
		st.Mtime.Sec != want.Mtim.Sec || int64(st.Mtime.Nsec) != want.Mtim.Nsec {
		t.Fatalf("statx %+v\nstat  %+v", st, want)
	}
	// AT_EMPTY_PATH on an fd, as evfs does on O_PATH fds.
	pfd := openFile(t, path, unix.O_PATH)
	st2 := new(unix.Statx_t)
	wantRes(t, "statx empty path", run(t, r, func(s *SQE) {
		s.PrepStatx(pfd, cs(t, ""), unix.AT_EMPTY_PATH, StatxMask, st2)
	}), 0)
	if st2.Ino != want.Ino {
		t.Fatalf("statx(AT_EMPTY_PATH) ino %d, want %d", st2.Ino, want.Ino)
	}
	wantRes(t, "statx missing", run(t, r, func(s *SQE) { s.PrepStatx(dfd, cs(t, "nope"), 0, StatxMask, st) }), -int32(unix.ENOENT))
}

func TestPrepUnlinkat(t *testing.T) {
	r := newTestRing(t, 8)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	dfd := openDir(t, dir)
	wantRes(t, "unlink", run(t, r, func(s *SQE) { s.PrepUnlinkat(dfd, cs(t, "f"), 0) }), 0)
	wantRes(t, "unlink dir without flag", run(t, r, func(s *SQE) { s.PrepUnlinkat(dfd, cs(t, "d"), 0) }), -int32(unix.EISDIR))
	wantRes(t, "rmdir", run(t, r, func(s *SQE) { s.PrepUnlinkat(dfd, cs(t, "d"), unix.AT_REMOVEDIR) }), 0)
	for _, n := range []string{"f", "d"} {
		if _, err := os.Lstat(filepath.Join(dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s still exists: %v", n, err)
		}
	}
	wantRes(t, "unlink missing", run(t, r, func(s *SQE) { s.PrepUnlinkat(dfd, cs(t, "f"), 0) }), -int32(unix.ENOENT))
}

func TestPrepRenameat(t *testing.T) {
	r := newTestRing(t, 8)
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	os.WriteFile(filepath.Join(dir, "a"), []byte("A"), 0o644)
	os.WriteFile(filepath.Join(sub, "b"), []byte("B"), 0o644)
	dfd, sfd := openDir(t, dir), openDir(t, sub)

	wantRes(t, "noreplace", run(t, r, func(s *SQE) {
		s.PrepRenameat(dfd, cs(t, "a"), sfd, cs(t, "b"), unix.RENAME_NOREPLACE)
	}), -int32(unix.EEXIST))
	wantRes(t, "exchange", run(t, r, func(s *SQE) {
		s.PrepRenameat(dfd, cs(t, "a"), sfd, cs(t, "b"), unix.RENAME_EXCHANGE)
	}), 0)
	if a, _ := os.ReadFile(filepath.Join(dir, "a")); string(a) != "B" {
		t.Fatalf("after exchange a = %q", a)
	}
	if b, _ := os.ReadFile(filepath.Join(sub, "b")); string(b) != "A" {
		t.Fatalf("after exchange b = %q", b)
	}
	wantRes(t, "rename", run(t, r, func(s *SQE) { s.PrepRenameat(dfd, cs(t, "a"), sfd, cs(t, "c"), 0) }), 0)
	if c, err := os.ReadFile(filepath.Join(sub, "c")); string(c) != "B" {
		t.Fatalf("renamed file = %q, %v", c, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old name still exists: %v", err)
	}
}

func TestPrepMkdirat(t *testing.T) {
	r := newTestRing(t, 8)
	dir := t.TempDir()
	dfd := openDir(t, dir)
	wantRes(t, "mkdirat", run(t, r, func(s *SQE) { s.PrepMkdirat(dfd, cs(t, "d"), 0o750) }), 0)
	if st, err := os.Stat(filepath.Join(dir, "d")); err != nil || !st.IsDir() || st.Mode().Perm() != 0o750&^umask() {
		t.Fatalf("stat d: %v %v", st, err)
	}
	wantRes(t, "mkdirat exists", run(t, r, func(s *SQE) { s.PrepMkdirat(dfd, cs(t, "d"), 0o750) }), -int32(unix.EEXIST))
}

func umask() os.FileMode {
	m := unix.Umask(0)
	unix.Umask(m)
	return os.FileMode(m)
}

func TestPrepSymlinkat(t *testing.T) {
	r := newTestRing(t, 8)
	dir := t.TempDir()
	dfd := openDir(t, dir)
	wantRes(t, "symlinkat", run(t, r, func(s *SQE) { s.PrepSymlinkat(cs(t, "../target"), dfd, cs(t, "l")) }), 0)
	if got, err := os.Readlink(filepath.Join(dir, "l")); err != nil || got != "../target" {
		t.Fatalf("readlink = %q, %v", got, err)
	}
	wantRes(t, "symlinkat exists", run(t, r, func(s *SQE) { s.PrepSymlinkat(cs(t, "x"), dfd, cs(t, "l")) }), -int32(unix.EEXIST))
}

func TestPrepLinkat(t *testing.T) {
	r := newTestRing(t, 8)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	dfd := openDir(t, dir)
	wantRes(t, "linkat", run(t, r, func(s *SQE) { s.PrepLinkat(dfd, cs(t, "f"), dfd, cs(t, "g"), 0) }), 0)
	var a, b unix.Stat_t
	unix.Stat(filepath.Join(dir, "f"), &a)
	if err := unix.Stat(filepath.Join(dir, "g"), &b); err != nil || a.Ino != b.Ino || b.Nlink != 2 {
		t.Fatalf("link: ino %d vs %d, nlink %d, %v", a.Ino, b.Ino, b.Nlink, err)
	}
	wantRes(t, "linkat exists", run(t, r, func(s *SQE) { s.PrepLinkat(dfd, cs(t, "f"), dfd, cs(t, "g"), 0) }), -int32(unix.EEXIST))
}

func TestPrepFallocate(t *testing.T) {
	r := newTestRing(t, 8)
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, bytes.Repeat([]byte("x"), 16384), 0o644)
	fd := openFile(t, path, unix.O_RDWR)
	wantRes(t, "punch hole", run(t, r, func(s *SQE) {
		s.PrepFallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 4096, 8192)
	}), 0)
	got, _ := os.ReadFile(path)
	want := bytes.Repeat([]byte("x"), 16384)
	clear(want[4096:12288])
	if !bytes.Equal(got, want) {
		t.Fatal("punched range not zero (or size changed)")
	}
	var st unix.Stat_t
	unix.Stat(path, &st)
	if st.Blocks*512 > 8192 {
		t.Fatalf("hole not punched: %d blocks", st.Blocks)
	}
	wantRes(t, "allocate", run(t, r, func(s *SQE) { s.PrepFallocate(fd, 0, 0, 1<<20) }), 0)
	if unix.Stat(path, &st); st.Size != 1<<20 {
		t.Fatalf("size after fallocate = %d", st.Size)
	}
}

func TestPrepFtruncate(t *testing.T) {
	r := newTestRing(t, 8)
	p := probeOf(t, r)
	if !p.Supported(IORING_OP_FTRUNCATE) {
		t.Skip("kernel lacks IORING_OP_FTRUNCATE")
	}
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, make([]byte, 100), 0o644)
	fd := openFile(t, path, unix.O_RDWR)
	for _, size := range []int64{7, 12345} {
		wantRes(t, "ftruncate", run(t, r, func(s *SQE) { s.PrepFtruncate(fd, size) }), 0)
		if st, _ := os.Stat(path); st.Size() != size {
			t.Fatalf("size = %d, want %d", st.Size(), size)
		}
	}
	wantRes(t, "ftruncate negative", run(t, r, func(s *SQE) { s.PrepFtruncate(fd, -1) }), -int32(unix.EINVAL))
}

func TestPrepXattr(t *testing.T) {
	r := newTestRing(t, 8)
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, nil, 0o644)
	if err := unix.Setxattr(path, "user.probe", []byte("1"), 0); err != nil {
		t.Skipf("no user xattrs on %s: %v", filepath.Dir(path), err)
	}
	fd := openFile(t, path, unix.O_RDWR)
	name, val := cs(t, "user.evfs"), []byte("value-1")
	wantRes(t, "fsetxattr", run(t, r, func(s *SQE) { s.PrepFsetxattr(fd, name, val, 0) }), 0)
	got := make([]byte, 64)
	if n, err := unix.Getxattr(path, "user.evfs", got); err != nil || string(got[:n]) != "value-1" {
		t.Fatalf("getxattr = %q, %v", got[:n], err)
	}
	wantRes(t, "fsetxattr create existing", run(t, r, func(s *SQE) {
		s.PrepFsetxattr(fd, name, val, unix.XATTR_CREATE)
	}), -int32(unix.EEXIST))
	wantRes(t, "fgetxattr size", run(t, r, func(s *SQE) { s.PrepFgetxattr(fd, name, nil) }), int32(len(val)))
	clear(got)
	wantRes(t, "fgetxattr", run(t, r, func(s *SQE) { s.PrepFgetxattr(fd, name, got) }), int32(len(val)))
	if string(got[:len(val)]) != "value-1" {
		t.Fatalf("fgetxattr value %q", got[:len(val)])
	}
	wantRes(t, "fgetxattr small", run(t, r, func(s *SQE) { s.PrepFgetxattr(fd, name, got[:2]) }), -int32(unix.ERANGE))
	wantRes(t, "fgetxattr missing", run(t, r, func(s *SQE) { s.PrepFgetxattr(fd, cs(t, "user.none"), got) }), -int32(unix.ENODATA))
}

func TestPrepPathXattr(t *testing.T) {
	r := newTestRing(t, 8)
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	os.WriteFile(path, nil, 0o644)
	if err := unix.Setxattr(path, "user.probe", []byte("1"), 0); err != nil {
		t.Skipf("no user xattrs on %s: %v", dir, err)
	}
	os.Symlink("f", filepath.Join(dir, "l"))
	link, name := cs(t, filepath.Join(dir, "l")), cs(t, "user.evfs")
	wantRes(t, "setxattr via symlink", run(t, r, func(s *SQE) { s.PrepSetxattr(link, name, []byte("abc"), 0) }), 0)
	got := make([]byte, 16)
	if n, err := unix.Getxattr(path, "user.evfs", got); err != nil || string(got[:n]) != "abc" {
		t.Fatalf("getxattr = %q, %v", got[:n], err)
	}
	wantRes(t, "setxattr replace missing", run(t, r, func(s *SQE) {
		s.PrepSetxattr(link, cs(t, "user.none"), []byte("x"), unix.XATTR_REPLACE)
	}), -int32(unix.ENODATA))
	pfd := openFile(t, path, unix.O_PATH)
	proc := cs(t, fmt.Sprintf("/proc/self/fd/%d", pfd))
	wantRes(t, "getxattr size", run(t, r, func(s *SQE) { s.PrepGetxattr(proc, name, nil) }), 3)
	clear(got)
	wantRes(t, "getxattr", run(t, r, func(s *SQE) { s.PrepGetxattr(proc, name, got) }), 3)
	if string(got[:3]) != "abc" {
		t.Fatalf("getxattr value %q", got[:3])
	}
	wantRes(t, "getxattr missing file", run(t, r, func(s *SQE) {
		s.PrepGetxattr(cs(t, filepath.Join(dir, "nope")), name, got)
	}), -int32(unix.ENOENT))
}

func TestPrepCancel(t *testing.T) {
	r := newTestRing(t, 8)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	buf := make([]byte, 16)
	sqe := r.GetSQE()
	sqe.PrepRead(p[0], buf, ^uint64(0))
	sqe.UserData = 1
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.PeekCQE(); ok {
		t.Fatal("read of an empty pipe completed")
	}
	sqe = r.GetSQE()
	sqe.PrepCancel(1, 0)
	sqe.UserData = 2
	if _, err := r.SubmitAndWait(2); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]int32{}
	for len(got) < 2 {
		cqe, err := r.WaitCQE()
		if err != nil {
			t.Fatal(err)
		}
		got[cqe.UserData] = cqe.Res
		r.CQESeen(cqe)
	}
	wantRes(t, "cancelled read", got[1], -int32(unix.ECANCELED))
	wantRes(t, "cancel", got[2], 0)
	wantRes(t, "cancel unknown", run(t, r, func(s *SQE) { s.PrepCancel(12345, 0) }), -int32(unix.ENOENT))
}

func probeOf(t testing.TB, r *Ring) *Probe {
	t.Helper()
	p, err := r.RegisterProbe()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRegisterProbe(t *testing.T) {
	r := newTestRing(t, 8)
	p := probeOf(t, r)
	if p.Supported(255) {
		t.Fatal("opcode 255 reported supported")
	}
	for _, k := range requiredKinds {
		if !p.Supported(uint8(kindOpcode[k])) {
			t.Errorf("required %v unsupported", k)
		}
	}
	var missing []string
	for k, op := range kindOpcode {
		if op >= 0 && !p.Supported(uint8(op)) {
			missing = append(missing, Kind(k).String())
		}
	}
	t.Logf("last_op %d, ops_len %d; evfs kinds unsupported: %v", p.LastOp, p.OpsLen, missing)
}

func TestRegisterEventfd(t *testing.T) {
	r := newTestRing(t, 8)
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if err := r.RegisterEventfd(efd); err != nil {
		t.Fatal(err)
	}
	var b [8]byte
	if _, err := unix.Read(efd, b[:]); err != unix.EAGAIN {
		t.Fatalf("eventfd signalled before any CQE: %v", err)
	}
	run(t, r, func(s *SQE) { s.PrepNop() })
	if n, err := unix.Read(efd, b[:]); err != nil || n != 8 {
		t.Fatalf("eventfd not signalled: %d, %v", n, err)
	}
	if err := r.UnregisterEventfd(); err != nil {
		t.Fatal(err)
	}
	run(t, r, func(s *SQE) { s.PrepNop() })
	if _, err := unix.Read(efd, b[:]); err != unix.EAGAIN {
		t.Fatalf("eventfd signalled after unregister: %v", err)
	}
}

// TestCQOverflow posts more completions than the CQ holds: the kernel
// keeps the extra ones (FEAT_NODROP) and PeekCQE flushes them in.
func TestCQOverflow(t *testing.T) {
	r := newTestRing(t, 8) // CQ 16
	const total = 100
	sent := 0
	for sent < total {
		for i := 0; i < 8 && sent < total; i++ {
			sqe := r.GetSQE()
			sqe.PrepNop()
			sqe.UserData = uint64(sent)
			sent++
		}
		if _, err := r.Submit(); err != nil {
			t.Fatalf("Submit after %d: %v", sent, err)
		}
	}
	if !r.cqNeedsEnter() {
		t.Fatal("IORING_SQ_CQ_OVERFLOW not set after overflowing the CQ")
	}
	seen := make([]bool, total)
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; n < total; {
		cqe, ok := r.PeekCQE()
		if !ok {
			if time.Now().After(deadline) {
				t.Fatalf("only %d of %d completions", n, total)
			}
			continue
		}
		if seen[cqe.UserData] {
			t.Fatalf("duplicate %d", cqe.UserData)
		}
		seen[cqe.UserData] = true
		r.CQESeen(cqe)
		n++
	}
	if r.CQOverflow() != 0 {
		t.Fatalf("kernel dropped %d CQEs", r.CQOverflow())
	}
	if r.cqNeedsEnter() {
		t.Fatal("overflow flag still set after draining")
	}
}

// BenchmarkRingNop is the raw ring round trip: prep, io_uring_enter,
// reap, with no backend or wake machinery.
func BenchmarkRingNop(b *testing.B) {
	r := newTestRing(b, 8)
	for i := 0; i < b.N; i++ {
		r.GetSQE().PrepNop()
		if _, err := r.Submit(); err != nil {
			b.Fatal(err)
		}
		cqe, err := r.WaitCQE()
		if err != nil {
			b.Fatal(err)
		}
		r.CQESeen(cqe)
	}
}
