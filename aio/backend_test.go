package aio

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var backendNames = []string{"pool", "sync", "uring"}

// harness drives a Backend the way the loop does: Submit, Flush, Reap,
// and wait on a coalescing wake channel when nothing is ready.
type harness struct {
	t     testing.TB
	b     Backend
	wake  chan struct{}
	next  uint64
	comps []Completion
	kinds [numKinds]bool // kinds run, for the coverage check
	// ops a uring backend should have sent to its pool
	wantFallbacks uint64
}

func newHarness(t testing.TB, kind string) *harness {
	t.Helper()
	return newHarnessConfig(t, Config{Kind: kind, Workers: 4, RingAll: true})
}

// newHarnessConfig is newHarness with a backend built from cfg.
func newHarnessConfig(t testing.TB, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, wake: make(chan struct{}, 1)}
	kind := cfg.Kind
	cfg.Wake = h.signal
	b, err := New(cfg, nil)
	if err != nil {
		if kind == "uring" {
			t.Skipf("uring backend unavailable: %v", err)
		}
		t.Fatal(err)
	}
	if b.Name() != kind {
		t.Fatalf("New(%q) built %q", kind, b.Name())
	}
	h.b = b
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

func (h *harness) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// run submits ops in one batch and returns their results in order.
func (h *harness) run(ops ...*Op) []int64 {
	h.t.Helper()
	idx := make(map[uint64]int, len(ops))
	for i, op := range ops {
		h.next++
		idx[h.next] = i
		h.kinds[op.Kind] = true
		h.b.Submit(h.next, op)
		// After Submit: a read's first attempt may have learnt that its
		// file system has no non-blocking reads (nowait.go).
		if u, ok := h.b.(*Uring); ok && wantPool(u, op) {
			h.wantFallbacks++
		}
	}
	res := make([]int64, len(ops))
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for got := 0; got < len(ops); {
		h.b.Flush()
		h.comps = h.b.Reap(h.comps[:0])
		for _, c := range h.comps {
			i, ok := idx[c.ID]
			if !ok {
				h.t.Fatalf("completion for unknown or repeated id %#x (res %d)", c.ID, c.Res)
			}
			delete(idx, c.ID)
			res[i] = c.Res
			got++
		}
		if len(h.comps) == 0 && got < len(ops) {
			select {
			case <-h.wake:
			case <-deadline.C:
				h.t.Fatalf("%s: %d of %d ops still outstanding", h.b.Name(), len(ops)-got, len(ops))
			}
		}
	}
	return res
}

// wantPool states when the uring backend must use its pool: no usable
// opcode, fault injection, or arguments the ring would read differently.
func wantPool(u *Uring, op *Op) bool {
	switch {
	case !u.OnRing(op.Kind), op.Delay != 0, op.Fail != 0:
		return true
	case strings.ContainsRune(op.Path+op.Path2, 0):
		return true
	case op.Off < 0 && (op.Kind == OpRead || op.Kind == OpWrite || op.Kind == OpReadv || op.Kind == OpWritev):
		return true
	case (op.Kind == OpRead || op.Kind == OpWrite) && u.nowait.blocksOn(op):
		return true
	}
	return false
}

func (h *harness) do(op *Op) int64 { h.t.Helper(); return h.run(op)[0] }

// want runs op and checks its result.
func (h *harness) want(what string, op *Op, want int64) *Op {
	h.t.Helper()
	if got := h.do(op); got != want {
		h.t.Fatalf("%s (%v): res = %d (%v), want %d (%v)", what, op.Kind, got, resErr(got), want, resErr(want))
	}
	return op
}

func (h *harness) wantErr(what string, op *Op, e unix.Errno) {
	h.t.Helper()
	h.want(what, op, -int64(e))
}

func resErr(res int64) error {
	if res < 0 {
		return unix.Errno(-res)
	}
	return nil
}

// env is a fresh directory for one case.
type env struct {
	*harness
	t   *testing.T
	dir string
	dfd int
}

func (e *env) path(name string) string { return filepath.Join(e.dir, name) }

func (e *env) file(name, content string) {
	e.t.Helper()
	if err := os.WriteFile(e.path(name), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) read(name string) string {
	e.t.Helper()
	b, err := os.ReadFile(e.path(name))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

func (e *env) open(name string, flags int) int { return openFile(e.t, e.path(name), flags) }

func (e *env) exists(name string) bool {
	_, err := os.Lstat(e.path(name))
	return err == nil
}

// backendCases exercise every Kind through the ops.go constructors and
// check real outcomes. Every backend must produce exactly these results.
var backendCases = []struct {
	name string
	fn   func(e *env)
}{
	{"nop", func(e *env) { e.want("nop", Nop(), 0) }},
	{"pread/pwrite", func(e *env) {
		fd := e.open("f", unix.O_RDWR|unix.O_CREAT)
		e.want("pwrite", Pwrite(fd, []byte("hello world"), 3), 11)
		if got := e.read("f"); got != "\x00\x00\x00hello world" {
			e.t.Fatalf("file %q", got)
		}
		buf := make([]byte, 64)
		e.want("pread", Pread(fd, buf, 3), 11)
		if string(buf[:11]) != "hello world" {
			e.t.Fatalf("pread %q", buf[:11])
		}
		e.want("pread at EOF", Pread(fd, buf, 100), 0)
		e.want("pread empty buf", Pread(fd, nil, 0), 0)
		e.wantErr("pread negative offset", Pread(fd, buf, -1), unix.EINVAL)
		e.wantErr("pread bad fd", Pread(-1, buf, 0), unix.EBADF)
		ro := e.open("f", unix.O_RDONLY)
		e.wantErr("pwrite read-only fd", Pwrite(ro, []byte("x"), 0), unix.EBADF)
	}},
	{"preadv/pwritev", func(e *env) {
		fd := e.open("f", unix.O_RDWR|unix.O_CREAT)
		e.want("pwritev", Pwritev(fd, [][]byte{[]byte("ab"), nil, []byte("cde")}, 1), 5)
		if got := e.read("f"); got != "\x00abcde" {
			e.t.Fatalf("file %q", got)
		}
		a, b := make([]byte, 2), make([]byte, 10)
		e.want("preadv", Preadv(fd, [][]byte{a, b}, 0), 6)
		if string(a) != "\x00a" || string(b[:4]) != "bcde" {
			e.t.Fatalf("preadv %q %q", a, b[:4])
		}
		e.wantErr("preadv bad fd", Preadv(-1, [][]byte{a}, 0), unix.EBADF)
	}},
	{"fsync", func(e *env) {
		fd := e.open("f", unix.O_RDWR|unix.O_CREAT)
		e.want("fsync", Fsync(fd, false), 0)
		e.want("fdatasync", Fsync(fd, true), 0)
		e.wantErr("fsync bad fd", Fsync(-1, false), unix.EBADF)
	}},
	{"openat/close", func(e *env) {
		e.wantErr("openat missing", Openat(e.dfd, "missing", unix.O_RDONLY, 0), unix.ENOENT)
		fd := int(e.do(Openat(e.dfd, "new", unix.O_CREAT|unix.O_EXCL|unix.O_RDWR, 0o640)))
		if fd < 0 {
			e.t.Fatalf("openat create: %v", resErr(int64(fd)))
		}
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
			e.t.Fatalf("new fd lacks FD_CLOEXEC: %#x %v", fl, err)
		}
		if st, err := os.Stat(e.path("new")); err != nil || st.Mode().Perm() != 0o640&^umask() {
			e.t.Fatalf("created file: %v %v", st, err)
		}
		e.wantErr("openat O_EXCL existing", Openat(e.dfd, "new", unix.O_CREAT|unix.O_EXCL|unix.O_RDWR, 0o640), unix.EEXIST)
		e.wantErr("openat NUL in name", Openat(e.dfd, "a\x00b", unix.O_RDONLY, 0), unix.EINVAL)
		e.want("close", Close(fd), 0)
		e.wantErr("close again", Close(fd), unix.EBADF)
	}},
	{"open_by_handle_at", func(e *env) {
		e.file("f", "by handle")
		_, mnt, err := unix.NameToHandleAt(e.dfd, "", unix.AT_EMPTY_PATH)
		if err != nil {
			e.t.Fatalf("name_to_handle_at: %v", err)
		}
		mountFd := e.open(".", unix.O_RDONLY|unix.O_DIRECTORY)
		pathFd := e.open("f", unix.O_PATH)
		first := OpenByHandleAt(pathFd, mountFd, mnt, unix.O_RDONLY, nil)
		fd := int(e.do(first))
		if fd < 0 {
			e.t.Fatalf("open by handle: %v", resErr(int64(fd)))
		}
		defer unix.Close(fd)
		readsBack := func(what string, fd int) {
			buf := make([]byte, 32)
			if n, err := unix.Pread(fd, buf, 0); err != nil || string(buf[:n]) != "by handle" {
				e.t.Fatalf("read through %s: %q %v", what, buf[:n], err)
			}
		}
		readsBack("the handle's fd", fd)
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
			e.t.Fatalf("new fd lacks FD_CLOEXEC: %#x %v", fl, err)
		}
		// The handle it looked up is left on the op; given back, the open
		// uses it: here with the directory's fd, to show the handle wins.
		if first.FileHandle == nil {
			e.t.Fatal("open by handle left no FileHandle on the op")
		}
		again := int(e.do(OpenByHandleAt(e.dfd, mountFd, mnt, unix.O_RDONLY, first.FileHandle)))
		if again < 0 {
			e.t.Fatalf("open by a kept handle: %v", resErr(int64(again)))
		}
		defer unix.Close(again)
		readsBack("a kept handle's fd", again)
		e.wantErr("another mount's id", OpenByHandleAt(pathFd, mountFd, mnt+1, unix.O_RDONLY, nil), unix.EXDEV)
		e.wantErr("write to a directory", OpenByHandleAt(e.dfd, mountFd, mnt, unix.O_WRONLY, nil), unix.EISDIR)
		e.wantErr("bad fd", OpenByHandleAt(-1, mountFd, mnt, unix.O_RDONLY, nil), unix.EBADF)
	}},
	{"statx", func(e *env) {
		e.file("f", "twelve bytes")
		op := e.want("statx", Statx(e.dfd, "f", unix.AT_SYMLINK_NOFOLLOW), 0)
		var st unix.Stat_t
		if err := unix.Stat(e.path("f"), &st); err != nil {
			e.t.Fatal(err)
		}
		x := op.Stat
		if x.Ino != st.Ino || int64(x.Size) != st.Size || uint32(x.Mode) != st.Mode || uint64(x.Nlink) != st.Nlink ||
			x.Mtime.Sec != st.Mtim.Sec || int64(x.Mtime.Nsec) != st.Mtim.Nsec || x.Mask&StatxMask&^unix.STATX_BTIME != StatxMask&^unix.STATX_BTIME {
			e.t.Fatalf("statx %+v\nstat %+v", x, st)
		}
		pfd := e.open("f", unix.O_PATH)
		op = e.want("statx AT_EMPTY_PATH", Statx(pfd, "", unix.AT_EMPTY_PATH), 0)
		if op.Stat.Ino != st.Ino {
			e.t.Fatal("AT_EMPTY_PATH statx: wrong inode")
		}
		e.wantErr("statx missing", Statx(e.dfd, "missing", 0), unix.ENOENT)
	}},
	{"unlinkat", func(e *env) {
		e.file("f", "")
		os.Mkdir(e.path("d"), 0o755)
		e.want("unlink", Unlinkat(e.dfd, "f", 0), 0)
		e.wantErr("unlink missing", Unlinkat(e.dfd, "f", 0), unix.ENOENT)
		e.wantErr("unlink dir", Unlinkat(e.dfd, "d", 0), unix.EISDIR)
		e.want("rmdir", Unlinkat(e.dfd, "d", unix.AT_REMOVEDIR), 0)
		if e.exists("f") || e.exists("d") {
			e.t.Fatal("still exists after unlinkat")
		}
	}},
	{"renameat", func(e *env) {
		e.file("a", "A")
		e.file("b", "B")
		e.wantErr("noreplace", Renameat(e.dfd, "a", e.dfd, "b", unix.RENAME_NOREPLACE), unix.EEXIST)
		e.want("exchange", Renameat(e.dfd, "a", e.dfd, "b", unix.RENAME_EXCHANGE), 0)
		if e.read("a") != "B" || e.read("b") != "A" {
			e.t.Fatal("exchange did not swap")
		}
		e.want("rename", Renameat(e.dfd, "a", e.dfd, "c", 0), 0)
		if e.exists("a") || e.read("c") != "B" {
			e.t.Fatal("rename did not move")
		}
		e.wantErr("rename missing", Renameat(e.dfd, "a", e.dfd, "z", 0), unix.ENOENT)
	}},
	{"mkdirat", func(e *env) {
		e.want("mkdirat", Mkdirat(e.dfd, "d", 0o750), 0)
		if st, err := os.Stat(e.path("d")); err != nil || !st.IsDir() || st.Mode().Perm() != 0o750&^umask() {
			e.t.Fatalf("mkdirat result: %v %v", st, err)
		}
		e.wantErr("mkdirat exists", Mkdirat(e.dfd, "d", 0o750), unix.EEXIST)
	}},
	{"symlinkat", func(e *env) {
		e.want("symlinkat", Symlinkat("../some/target", e.dfd, "l"), 0)
		if got, err := os.Readlink(e.path("l")); err != nil || got != "../some/target" {
			e.t.Fatalf("readlink %q %v", got, err)
		}
		e.wantErr("symlinkat exists", Symlinkat("x", e.dfd, "l"), unix.EEXIST)
	}},
	{"linkat", func(e *env) {
		e.file("f", "x")
		e.want("linkat", Linkat(e.dfd, "f", e.dfd, "g", 0), 0)
		var a, b unix.Stat_t
		unix.Stat(e.path("f"), &a)
		unix.Stat(e.path("g"), &b)
		if a.Ino != b.Ino || b.Nlink != 2 {
			e.t.Fatalf("link: ino %d/%d nlink %d", a.Ino, b.Ino, b.Nlink)
		}
		e.wantErr("linkat exists", Linkat(e.dfd, "f", e.dfd, "g", 0), unix.EEXIST)
		e.wantErr("linkat missing", Linkat(e.dfd, "nope", e.dfd, "h", 0), unix.ENOENT)
	}},
	{"fallocate", func(e *env) {
		e.file("f", strings.Repeat("x", 16384))
		fd := e.open("f", unix.O_RDWR)
		e.want("punch hole", Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 4096, 8192), 0)
		want := bytes.Repeat([]byte("x"), 16384)
		clear(want[4096:12288])
		if e.read("f") != string(want) {
			e.t.Fatal("punched range not zeroed")
		}
		e.want("allocate", Fallocate(fd, 0, 0, 1<<20), 0)
		if st, _ := os.Stat(e.path("f")); st.Size() != 1<<20 {
			e.t.Fatalf("size %d after fallocate", st.Size())
		}
		e.wantErr("fallocate zero length", Fallocate(fd, 0, 0, 0), unix.EINVAL)
	}},
	{"ftruncate", func(e *env) {
		e.file("f", "0123456789")
		fd := e.open("f", unix.O_RDWR)
		e.want("ftruncate", Ftruncate(fd, 4), 0)
		if e.read("f") != "0123" {
			e.t.Fatal("ftruncate did not shrink")
		}
		e.wantErr("ftruncate negative", Ftruncate(fd, -1), unix.EINVAL)
		ro := e.open("f", unix.O_RDONLY)
		e.wantErr("ftruncate read-only", Ftruncate(ro, 0), unix.EINVAL)
	}},
	{"xattrs", func(e *env) {
		e.file("f", "")
		if err := unix.Setxattr(e.path("f"), "user.probe", []byte("1"), 0); err != nil {
			e.t.Skipf("no user xattrs here: %v", err)
		}
		fd := e.open("f", unix.O_RDWR)
		e.want("fsetxattr", Fsetxattr(fd, "user.evfs", []byte("value"), 0), 0)
		e.wantErr("fsetxattr create existing", Fsetxattr(fd, "user.evfs", []byte("v"), unix.XATTR_CREATE), unix.EEXIST)
		e.want("fsetxattr empty value", Fsetxattr(fd, "user.empty", nil, 0), 0)
		e.want("fgetxattr size", Fgetxattr(fd, "user.evfs", nil), 5)
		buf := make([]byte, 32)
		e.want("fgetxattr", Fgetxattr(fd, "user.evfs", buf), 5)
		if string(buf[:5]) != "value" {
			e.t.Fatalf("fgetxattr %q", buf[:5])
		}
		e.want("fgetxattr empty value", Fgetxattr(fd, "user.empty", buf), 0)
		e.wantErr("fgetxattr small buffer", Fgetxattr(fd, "user.evfs", buf[:2]), unix.ERANGE)
		e.wantErr("fgetxattr missing", Fgetxattr(fd, "user.none", buf), unix.ENODATA)
		list := make([]byte, 256)
		n := e.do(Flistxattr(fd, list))
		names := strings.Split(strings.TrimSuffix(string(list[:max(n, 0)]), "\x00"), "\x00")
		slices.Sort(names)
		if !slices.Equal(names, []string{"user.empty", "user.evfs", "user.probe"}) {
			e.t.Fatalf("flistxattr = %q (%d)", names, n)
		}
		e.want("fremovexattr", Fremovexattr(fd, "user.evfs"), 0)
		e.wantErr("fremovexattr again", Fremovexattr(fd, "user.evfs"), unix.ENODATA)
	}},
	{"path xattrs", func(e *env) {
		e.file("f", "")
		if err := unix.Setxattr(e.path("f"), "user.probe", []byte("1"), 0); err != nil {
			e.t.Skipf("no user xattrs here: %v", err)
		}
		os.Symlink("f", e.path("l"))
		// Through a symlink and through /proc/self/fd, as evfs reaches nodes.
		pfd := e.open("f", unix.O_PATH)
		proc := fmt.Sprintf("/proc/self/fd/%d", pfd)
		e.want("setxattr", Setxattr(e.path("l"), "user.evfs", []byte("val"), 0), 0)
		e.wantErr("setxattr create existing", Setxattr(proc, "user.evfs", []byte("v"), unix.XATTR_CREATE), unix.EEXIST)
		e.want("getxattr size", Getxattr(proc, "user.evfs", nil), 3)
		buf := make([]byte, 16)
		e.want("getxattr", Getxattr(proc, "user.evfs", buf), 3)
		if string(buf[:3]) != "val" {
			e.t.Fatalf("getxattr %q", buf[:3])
		}
		e.wantErr("getxattr missing", Getxattr(proc, "user.none", buf), unix.ENODATA)
		e.wantErr("getxattr missing file", Getxattr(e.path("nope"), "user.evfs", buf), unix.ENOENT)
		e.wantErr("getxattr NUL in name", Getxattr(proc, "user.a\x00b", buf), unix.EINVAL)
		list := make([]byte, 64)
		n := e.do(Listxattr(proc, list))
		if got := string(list[:max(n, 0)]); got != "user.probe\x00user.evfs\x00" && got != "user.evfs\x00user.probe\x00" {
			e.t.Fatalf("listxattr %q", got)
		}
		e.want("removexattr", Removexattr(proc, "user.evfs"), 0)
		e.wantErr("removexattr again", Removexattr(proc, "user.evfs"), unix.ENODATA)
	}},
	{"mknodat", func(e *env) {
		e.want("mknod fifo", Mknodat(e.dfd, "p", unix.S_IFIFO|0o600, 0), 0)
		if st, err := os.Lstat(e.path("p")); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
			e.t.Fatalf("mknod: %v %v", st, err)
		}
		e.wantErr("mknod exists", Mknodat(e.dfd, "p", unix.S_IFIFO|0o600, 0), unix.EEXIST)
	}},
	{"readlinkat", func(e *env) {
		os.Symlink("tgt/x", e.path("l"))
		e.file("f", "")
		buf := make([]byte, 64)
		e.want("readlinkat", Readlinkat(e.dfd, "l", buf), 5)
		if string(buf[:5]) != "tgt/x" {
			e.t.Fatalf("readlinkat %q", buf[:5])
		}
		e.wantErr("readlinkat regular", Readlinkat(e.dfd, "f", buf), unix.EINVAL)
	}},
	{"fchmodat", func(e *env) {
		e.file("f", "")
		e.want("fchmodat", Fchmodat(e.dfd, "f", 0o604, 0), 0)
		if st, _ := os.Stat(e.path("f")); st.Mode().Perm() != 0o604 {
			e.t.Fatalf("mode %v", st.Mode())
		}
	}},
	{"fchownat", func(e *env) {
		e.file("f", "")
		if os.Geteuid() != 0 {
			e.wantErr("fchownat unprivileged", Fchownat(e.dfd, "f", 1234, 5678, 0), unix.EPERM)
			return
		}
		e.want("fchownat", Fchownat(e.dfd, "f", 1234, 5678, 0), 0)
		e.want("fchownat keep uid", Fchownat(e.dfd, "f", ^uint32(0), 42, 0), 0)
		var st unix.Stat_t
		unix.Stat(e.path("f"), &st)
		if st.Uid != 1234 || st.Gid != 42 {
			e.t.Fatalf("owner %d:%d", st.Uid, st.Gid)
		}
	}},
	{"utimensat", func(e *env) {
		e.file("f", "")
		ts := [2]unix.Timespec{{Sec: 1000, Nsec: 5}, {Sec: 2000, Nsec: 7}}
		e.want("utimensat", Utimensat(e.dfd, "f", ts, 0), 0)
		var st unix.Stat_t
		unix.Stat(e.path("f"), &st)
		if st.Atim != ts[0] || st.Mtim != ts[1] {
			e.t.Fatalf("times %v %v", st.Atim, st.Mtim)
		}
	}},
	{"truncate", func(e *env) {
		e.file("f", "0123456789")
		e.want("truncate", Truncate(e.path("f"), 3), 0)
		if e.read("f") != "012" {
			e.t.Fatal("truncate")
		}
		e.wantErr("truncate missing", Truncate(e.path("nope"), 0), unix.ENOENT)
	}},
	{"getdents", func(e *env) {
		for _, n := range []string{"a", "b", "c"} {
			e.file(n, "")
		}
		buf := make([]byte, 4096)
		n := e.do(Getdents(e.dfd, buf))
		if n <= 0 {
			e.t.Fatalf("getdents: %d", n)
		}
		_, _, names := unix.ParseDirent(buf[:n], -1, nil)
		slices.Sort(names)
		if !slices.Equal(names, []string{"a", "b", "c"}) {
			e.t.Fatalf("getdents names %q", names)
		}
		e.want("getdents at end", Getdents(e.dfd, buf), 0)
	}},
	{"lseek", func(e *env) {
		e.file("f", "0123456789")
		fd := e.open("f", unix.O_RDONLY)
		e.want("lseek end", Lseek(fd, -2, unix.SEEK_END), 8)
		e.wantErr("lseek data past end", Lseek(fd, 20, unix.SEEK_DATA), unix.ENXIO)
	}},
	{"copy_file_range", func(e *env) {
		e.file("src", "0123456789")
		in, out := e.open("src", unix.O_RDONLY), e.open("dst", unix.O_RDWR|unix.O_CREAT)
		e.want("copy_file_range", CopyFileRange(in, 2, out, 1, 5, 0), 5)
		if e.read("dst") != "\x0023456" {
			e.t.Fatalf("dst %q", e.read("dst"))
		}
	}},
	{"fstatfs", func(e *env) {
		op := e.want("fstatfs", Fstatfs(e.dfd), 0)
		var want unix.Statfs_t
		unix.Statfs(e.dir, &want)
		if op.Statfs.Type != want.Type || op.Statfs.Bsize != want.Bsize {
			e.t.Fatalf("statfs type %#x/%#x", op.Statfs.Type, want.Type)
		}
	}},
	{"faccessat", func(e *env) {
		e.file("f", "")
		e.want("faccessat", Faccessat(e.dfd, "f", unix.R_OK|unix.W_OK, 0), 0)
		e.wantErr("faccessat missing", Faccessat(e.dfd, "nope", unix.F_OK, 0), unix.ENOENT)
	}},
	{"fcntl ofd lock", func(e *env) {
		e.file("f", "")
		a, b := e.open("f", unix.O_RDWR), e.open("f", unix.O_RDWR)
		e.want("setlk", FcntlLock(a, unix.F_OFD_SETLK, unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 10}), 0)
		e.wantErr("conflicting setlk", FcntlLock(b, unix.F_OFD_SETLK, unix.Flock_t{Type: unix.F_WRLCK, Len: 10}), unix.EAGAIN)
		op := e.want("getlk", FcntlLock(b, unix.F_OFD_GETLK, unix.Flock_t{Type: unix.F_RDLCK, Len: 1}), 0)
		if op.Lock.Type != unix.F_WRLCK || op.Lock.Len != 10 {
			e.t.Fatalf("getlk %+v", op.Lock)
		}
	}},
	{"move fd", func(e *env) {
		e.file("a", "a")
		e.file("b", "b")
		a, b := e.open("a", unix.O_RDONLY), e.open("b", unix.O_PATH)
		e.want("move", MoveFd(a, b), 0)
		buf := make([]byte, 1)
		if n, err := unix.Pread(b, buf, 0); err != nil || n != 1 || buf[0] != 'a' {
			e.t.Fatalf("after MoveFd(a, b), b reads %q (%v), want a's data", buf[:n], err)
		}
		if _, err := unix.FcntlInt(uintptr(a), unix.F_GETFD, 0); err != unix.EBADF {
			e.t.Fatalf("after MoveFd the source fd is still open (%v)", err)
		}
		if fl, _ := unix.FcntlInt(uintptr(b), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
			e.t.Fatal("moved fd lost FD_CLOEXEC")
		}
		e.wantErr("move from a closed fd", MoveFd(a, b), unix.EBADF)
	}},
	{"setfl", func(e *env) {
		e.file("f", "data")
		fd := e.open("f", unix.O_RDONLY)
		e.want("setfl", SetFl(fd, unix.O_APPEND|unix.O_NONBLOCK), 0)
		if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); fl&(unix.O_APPEND|unix.O_NONBLOCK) != unix.O_APPEND|unix.O_NONBLOCK {
			e.t.Fatalf("after SetFl(O_APPEND|O_NONBLOCK) the flags are %#o", fl)
		}
		e.want("setfl back", SetFl(fd, 0), 0)
		if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); fl&(unix.O_APPEND|unix.O_NONBLOCK) != 0 {
			e.t.Fatalf("after SetFl(0) the flags are %#o", fl)
		}
		e.wantErr("setfl on a closed fd", SetFl(-1, 0), unix.EBADF)
	}},
	{"flock", func(e *env) {
		e.file("f", "")
		a, b := e.open("f", unix.O_RDONLY), e.open("f", unix.O_RDONLY)
		e.want("flock", Flock(a, unix.LOCK_EX), 0)
		e.wantErr("flock contended", Flock(b, unix.LOCK_EX|unix.LOCK_NB), unix.EWOULDBLOCK)
	}},
	{"fault injection", func(e *env) {
		e.wantErr("Fail", &Op{Kind: OpOpenat, Fd: e.dfd, Path: "x", Fail: unix.EIO}, unix.EIO)
		t0 := time.Now()
		e.want("Delay", &Op{Kind: OpNop, Delay: 20 * time.Millisecond}, 0)
		if time.Since(t0) < 20*time.Millisecond {
			e.t.Fatal("Delay not applied")
		}
	}},
	{"batch", func(e *env) {
		// Mixed kinds in one batch; results land on the right ids.
		e.file("f", "abcdef")
		fd := e.open("f", unix.O_RDONLY)
		bufs := [][]byte{make([]byte, 1), make([]byte, 1), make([]byte, 1)}
		res := e.run(Pread(fd, bufs[0], 0), Statx(e.dfd, "missing", 0), Pread(fd, bufs[1], 3), Fchmodat(e.dfd, "nope", 0, 0), Pread(fd, bufs[2], 5))
		want := []int64{1, -int64(unix.ENOENT), 1, -int64(unix.ENOENT), 1}
		if !slices.Equal(res, want) || string(bytes.Join(bufs, nil)) != "adf" {
			e.t.Fatalf("batch = %v %q, want %v \"adf\"", res, bytes.Join(bufs, nil), want)
		}
	}},
}

func TestBackends(t *testing.T) {
	for _, name := range backendNames {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, name)
			for _, c := range backendCases {
				t.Run(c.name, func(t *testing.T) {
					dir := t.TempDir()
					e := &env{harness: h, t: t, dir: dir, dfd: openDir(t, dir)}
					h.t = t
					defer func() { h.t = t }()
					c.fn(e)
				})
			}
			h.t = t
			for k := Kind(0); k < numKinds; k++ {
				if !h.kinds[k] {
					t.Errorf("no case runs %v", k)
				}
			}
			s := h.b.Stats()
			if s.Submitted != s.Completed {
				t.Errorf("stats: submitted %d, completed %d", s.Submitted, s.Completed)
			}
			if u, ok := h.b.(*Uring); ok {
				if s.Fallbacks != h.wantFallbacks {
					t.Errorf("Fallbacks = %d, want %d", s.Fallbacks, h.wantFallbacks)
				}
				if u.inflight != 0 {
					t.Errorf("ring in flight = %d after all completions", u.inflight)
				}
				t.Logf("uring: kinds with no usable opcode on this kernel: %v", u.Unsupported())
			}
		})
	}
}

func newUringHarness(t testing.TB, disabled ...Kind) (*harness, *Uring) {
	t.Helper()
	h := &harness{t: t, wake: make(chan struct{}, 1)}
	// NoNowait: these tests are about the ring; reads served by the
	// non-blocking attempt would never reach it.
	u, err := newUringWithout(Config{Workers: 4, Wake: h.signal, RingAll: true, NoNowait: true}, disabled...)
	if err != nil {
		t.Skipf("uring backend unavailable: %v", err)
	}
	h.b = u
	t.Cleanup(func() { u.Close() })
	return h, u
}

// TestUringBackPressure keeps 8× the SQ size in flight: nothing is lost
// or duplicated, every buffer holds its own block.
func TestUringBackPressure(t *testing.T) {
	h, u := newUringHarness(t)
	const n, bs = 2048, 4096
	path := filepath.Join(t.TempDir(), "f")
	data := make([]byte, n*bs)
	for i := range n {
		copy(data[i*bs:], fmt.Appendf(nil, "block %06d", i))
	}
	os.WriteFile(path, data, 0o644)
	fd := openFile(t, path, unix.O_RDONLY)
	ops := make([]*Op, n)
	for i := range ops {
		ops[i] = Pread(fd, make([]byte, bs), int64(i*bs))
	}
	res := h.run(ops...)
	for i, r := range res {
		if r != bs || !bytes.Equal(ops[i].Buf, data[i*bs:(i+1)*bs]) {
			t.Fatalf("op %d: res %d, data %q", i, r, ops[i].Buf[:12])
		}
	}
	s := u.Stats()
	if s.RingFull == 0 || s.Fallbacks != 0 || s.Completed != n || u.inflight != 0 || len(u.backlog) != 0 {
		t.Fatalf("stats %+v, inflight %d, backlog %d", s, u.inflight, len(u.backlog))
	}
	t.Logf("stats %+v", s)
}

// TestUringCancel cancels reads that can never finish (empty pipe),
// more of them than the ring may have in flight, so some are cancelled
// in the backlog and the cancel CQEs overflow the CQ.
func TestUringCancel(t *testing.T) {
	h, u := newUringHarness(t)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])

	const n = uringCQEntries + 300
	ops := make([]*Op, n)
	ids := make(map[uint64]int)
	for i := range ops {
		ops[i] = Pread(p[0], make([]byte, 8), 0)
		h.next++
		ids[h.next] = i
		h.b.Submit(h.next, ops[i])
	}
	h.b.Flush()
	if c := h.b.Reap(nil); len(c) != 0 {
		t.Fatalf("pipe reads completed: %v", c)
	}
	if len(u.backlog) != n-uringCQEntries {
		t.Fatalf("backlog %d, want %d", len(u.backlog), n-uringCQEntries)
	}
	for id, i := range ids {
		h.b.Cancel(id, ops[i])
	}
	h.b.Flush()
	if !u.ring.cqNeedsEnter() {
		t.Fatal("expected the cancel storm to overflow the CQ")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(ids) > 0 {
		h.b.Flush()
		for _, c := range h.b.Reap(nil) {
			if _, ok := ids[c.ID]; !ok {
				t.Fatalf("unexpected completion %#x (%d)", c.ID, c.Res)
			}
			if c.Res != -int64(unix.ECANCELED) {
				t.Fatalf("cancelled read: res %d (%v)", c.Res, resErr(c.Res))
			}
			delete(ids, c.ID)
		}
		if len(ids) > 0 {
			select {
			case <-h.wake:
			case <-time.After(time.Until(deadline)):
				t.Fatalf("%d reads never completed", len(ids))
			}
		}
	}
	if u.inflight != 0 || len(u.backlog) != 0 || u.ring.CQOverflow() != 0 {
		t.Fatalf("inflight %d backlog %d dropped %d", u.inflight, len(u.backlog), u.ring.CQOverflow())
	}

	// A cancel that loses the race: the real result arrives, once.
	buf := make([]byte, 8)
	op := Pread(p[0], buf, 0)
	h.next++
	id := h.next
	h.b.Submit(id, op)
	h.b.Flush()
	unix.Write(p[1], []byte("hi"))
	waitFor(t, h, func() bool { return u.ring.CQReady() > 0 })
	h.b.Cancel(id, op)
	if res := reapID(t, h, id); res != 2 || string(buf[:2]) != "hi" {
		t.Fatalf("read after losing cancel: %d %q", res, buf[:2])
	}
	h.run(Nop()) // fails on the read's id if it were reported again
	if s := u.Stats(); s.Submitted != s.Completed {
		t.Fatalf("stats %+v", s)
	}
}

// reapID waits for id's completion, failing on any other.
func reapID(t *testing.T, h *harness, id uint64) int64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.b.Flush()
		for _, c := range h.b.Reap(nil) {
			if c.ID != id {
				t.Fatalf("unexpected completion %#x", c.ID)
			}
			return c.Res
		}
		select {
		case <-h.wake:
		case <-time.After(time.Until(deadline)):
			t.Fatal("timed out")
		}
	}
}

func waitFor(t *testing.T, h *harness, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		select {
		case <-h.wake:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestUringForcedFallback disables STATX on the ring: the pool serves it
// with the same results.
func TestUringForcedFallback(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("some bytes"), 0o644)
	dfd := openDir(t, dir)

	ring, ru := newUringHarness(t)
	pool, pu := newUringHarness(t, OpStatx)
	if !ru.OnRing(OpStatx) || pu.OnRing(OpStatx) || !pu.OnRing(OpRead) {
		t.Fatal("disable hook did not apply")
	}
	a, b := Statx(dfd, "f", 0), Statx(dfd, "f", 0)
	if ra, rb := ring.do(a), pool.do(b); ra != 0 || rb != 0 {
		t.Fatalf("statx: ring %d pool %d", ra, rb)
	}
	if a.Stat != b.Stat {
		t.Fatalf("ring %+v\npool %+v", a.Stat, b.Stat)
	}
	if ra, rb := ring.do(Statx(dfd, "missing", 0)), pool.do(Statx(dfd, "missing", 0)); ra != rb || ra != -int64(unix.ENOENT) {
		t.Fatalf("statx missing: ring %d pool %d", ra, rb)
	}
	if f := ru.Stats().Fallbacks; f != 0 {
		t.Fatalf("ring backend fell back %d times", f)
	}
	if f := pu.Stats().Fallbacks; f != 2 {
		t.Fatalf("Fallbacks = %d, want 2", f)
	}
	pool.do(Pread(dfd, nil, 0)) // still on the ring
	if f := pu.Stats().Fallbacks; f != 2 {
		t.Fatalf("read fell back: Fallbacks = %d", f)
	}
}

func countFds(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestBackendFdLeak: 10 000 openat/close cycles, and the backend itself
// (ring, eventfd) closes everything it opened.
func TestBackendFdLeak(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), nil, 0o644)
	dfd := openDir(t, dir)
	for _, name := range backendNames {
		t.Run(name, func(t *testing.T) {
			// Warm up lazily created runtime fds (netpoller).
			w := newHarness(t, name)
			w.do(Nop())
			w.b.Close()

			before := countFds(t)
			h := newHarness(t, name)
			afterNew := countFds(t)
			const cycles, batch = 10000, 50
			opens := make([]*Op, batch)
			closes := make([]*Op, batch)
			for done := 0; done < cycles; done += batch {
				for i := range opens {
					opens[i] = Openat(dfd, "f", unix.O_RDONLY, 0)
				}
				for i, fd := range h.run(opens...) {
					if fd < 0 {
						t.Fatalf("openat: %v", resErr(fd))
					}
					closes[i] = Close(int(fd))
				}
				for _, r := range h.run(closes...) {
					if r != 0 {
						t.Fatalf("close: %v", resErr(r))
					}
				}
			}
			if during := countFds(t); during != afterNew {
				t.Fatalf("fds: %d before, %d after %d cycles", afterNew, during, cycles)
			}
			h.b.Close()
			if after := countFds(t); after != before {
				t.Fatalf("fds: %d before New, %d after Close", before, after)
			}
		})
	}
}

// TestNewKinds: unknown names fail; auto picks something that works.
func TestNewKinds(t *testing.T) {
	if _, err := New(Config{Kind: "bogus"}, nil); !errors.Is(err, ErrUnknownBackend) {
		t.Fatalf("bogus kind: %v", err)
	}
	b, err := New(Config{Kind: "auto", Workers: 2, Wake: func() {}}, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("auto chose %s", b.Name())
	b.Close()
}

// Benchmarks: one op at a time (QD1) through Submit → Flush → wake →
// Reap, as the loop runs it.

func benchBackends(b *testing.B, mk func(b *testing.B) *Op) {
	for _, name := range backendNames {
		b.Run(name, func(b *testing.B) {
			h := newHarness(b, name)
			op := mk(b)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.next++
				h.b.Submit(h.next, op)
				h.b.Flush()
				for {
					h.comps = h.b.Reap(h.comps[:0])
					if len(h.comps) > 0 {
						break
					}
					<-h.wake
				}
				if h.comps[0].Res < 0 {
					b.Fatalf("res %d", h.comps[0].Res)
				}
			}
		})
	}
}

func BenchmarkBackendNop(b *testing.B) {
	benchBackends(b, func(*testing.B) *Op { return Nop() })
}

func BenchmarkBackendPread4K(b *testing.B) {
	benchBackends(b, func(b *testing.B) *Op {
		path := filepath.Join(b.TempDir(), "f")
		os.WriteFile(path, bytes.Repeat([]byte("z"), 1<<20), 0o644)
		fd := openFile(b, path, unix.O_RDONLY)
		return Pread(fd, make([]byte, 4096), 8192)
	})
}

// TestUringCancelOnPool: an op routed to the pool is cancelled there.
func TestUringCancelOnPool(t *testing.T) {
	h, u := newUringHarness(t)
	op := &Op{Kind: OpNop, Delay: time.Millisecond}
	h.next++
	h.b.Submit(h.next, op)
	h.b.Cancel(h.next, op) // before Flush: no worker has it yet
	if res := reapID(t, h, h.next); res != -int64(unix.ECANCELED) {
		t.Fatalf("res %d", res)
	}
	if u.Stats().Fallbacks != 1 {
		t.Fatalf("stats %+v", u.Stats())
	}
}

// TestUringCloseInflight: Close with reads still pending on the ring
// cancels them, waits for the kernel to let go, and releases every fd.
func TestUringCloseInflight(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	_, w := newUringHarness(t) // warm up lazily created runtime fds
	w.Close()
	before := countFds(t)
	h, u := newUringHarness(t)
	for range 10 {
		h.next++
		h.b.Submit(h.next, Pread(p[0], make([]byte, 8), 0))
	}
	h.b.Flush()
	done := make(chan error)
	go func() { done <- u.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung with ops in flight")
	}
	if u.inflight != 0 {
		t.Fatalf("inflight %d after Close", u.inflight)
	}
	if after := countFds(t); after != before {
		t.Fatalf("fds %d before, %d after Close", before, after)
	}
}

// BenchmarkBackendStatx: the kernel always punts STATX to an io-wq
// worker, so this measures the uring backend's async completion path
// (worker → CQE → eventfd → wake) against the pool's.
func BenchmarkBackendStatx(b *testing.B) {
	benchBackends(b, func(b *testing.B) *Op {
		dir := b.TempDir()
		os.WriteFile(filepath.Join(dir, "f"), nil, 0o644)
		return Statx(openDir(b, dir), "f", unix.AT_SYMLINK_NOFOLLOW)
	})
}

// TestUringWakeStress: thousands of completions that arrive only through
// the eventfd (STATX always runs on an io-wq worker), each awaited on the
// wake channel. A lost wake stalls run() until its deadline.
func TestUringWakeStress(t *testing.T) {
	h, _ := newUringHarness(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), nil, 0o644)
	dfd := openDir(t, dir)
	for i := 0; i < 3000; i++ {
		n := 1 + i%4
		ops := make([]*Op, n)
		for j := range ops {
			ops[j] = Statx(dfd, "f", 0)
		}
		for _, r := range h.run(ops...) {
			if r != 0 {
				t.Fatalf("statx: %v", resErr(r))
			}
		}
	}
}

// TestUringDefaultRouting: without RingAll, the ops io_uring always
// punts to io-wq run on the pool, and the inline-capable ones stay on the
// ring.
func TestUringDefaultRouting(t *testing.T) {
	u, err := newUring(Config{Workers: 2, Wake: func() {}})
	if err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	defer u.Close()
	for _, k := range uringPunted {
		if u.OnRing(k) {
			t.Errorf("%v is on the ring by default", k)
		}
	}
	for _, k := range []Kind{OpRead, OpWrite, OpReadv, OpWritev, OpClose, OpNop} {
		if !u.OnRing(k) {
			t.Errorf("%v is not on the ring", k)
		}
	}
}

// TestOnWorkers: a backend counts the ops its worker threads hold until
// they are reaped; an op the kernel holds on the ring (a pipe read that
// waits for data) is not one; the sync backend never holds any.
func TestOnWorkers(t *testing.T) {
	for _, kind := range []string{"pool", "uring", "sync"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarnessConfig(t, Config{Kind: kind, Workers: 2})
			delayed := Nop()
			delayed.Delay = 20 * time.Millisecond
			h.next++
			h.b.Submit(h.next, delayed)
			want := 1
			if kind == "sync" {
				want = 0 // ran in Submit
			}
			if got := h.b.OnWorkers(); got != want {
				t.Errorf("a submitted delayed op: OnWorkers %d, want %d", got, want)
			}
			reapID(t, h, h.next)
			if got := h.b.OnWorkers(); got != 0 {
				t.Errorf("after its completion was reaped: OnWorkers %d, want 0", got)
			}
			if kind != "uring" {
				return
			}
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			defer unix.Close(p[0])
			defer unix.Close(p[1])
			h.next++
			h.b.Submit(h.next, &Op{Kind: OpRead, Fd: p[0], Buf: make([]byte, 1), Direct: true})
			h.b.Flush()
			if got := h.b.OnWorkers(); got != 0 {
				t.Errorf("a pipe read waiting on the ring: OnWorkers %d, want 0", got)
			}
			unix.Write(p[1], []byte{'x'})
			if res := reapID(t, h, h.next); res != 1 {
				t.Errorf("the pipe read: %d, want 1", res)
			}
		})
	}
}
