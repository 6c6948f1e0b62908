package fs

// Bad input at the protocol: the Bridge is driven directly, with no
// kernel in between, by requests the kernel would never send (unknown or
// forgotten node ids, unknown handles, names with '/' or NUL, offsets
// near 2^63, sizes that overflow). Every one must get exactly one answer
// — the errno the native syscall gives where there is one — and never a
// panic or a hang.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/aio"
	"evfs/backing"
	"evfs/loop"
)

// ptBackends are the aio backends the bridge tests run over.
var ptBackends = []string{"pool", "sync", "uring"}

// ptTimeout bounds every single bridge call: a request that is never
// answered is a hang, and fails the test instead of blocking it. (The
// fuzzing engine itself gives up on an input after 10 s.)
const ptTimeout = 4 * time.Second

// bridgeHarness is what NewMount builds — loop, handlers, Bridge — with no
// go-fuse server and no kernel: the test calls the Bridge's methods as
// go-fuse's reader goroutines would.
type bridgeHarness struct {
	t      testing.TB
	b      *Bridge
	l      *loop.Loop
	h      *handlers
	rootFd int
	dir    string
	logs   *ptLogs
	done   chan error
	closed bool
	hung   bool // a call went unanswered: do not wait for the loop again

	backend string
}

// newBridgeHarness serves dir through a fresh loop on backend. It skips
// t when the backend cannot run here (uring without io_uring).
func newBridgeHarness(t testing.TB, backend, dir string, faults ...loop.Fault) *bridgeHarness {
	t.Helper()
	hb, err := startBridge(backend, dir, faults...)
	if err != nil {
		if backend == "uring" {
			t.Skipf("uring backend not available: %v", err)
		}
		t.Fatal(err)
	}
	hb.t = t
	t.Cleanup(hb.close)
	return hb
}

// startBridge mirrors NewMount up to (not including) fuse.NewServer,
// with test-only fault injection as fs.Config.Faults gives it.
func startBridge(backend, dir string, faults ...loop.Fault) (*bridgeHarness, error) {
	rootFd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Statx_t
	if err := unix.Statx(rootFd, "", unix.AT_EMPTY_PATH, aio.StatxMask, &st); err != nil {
		unix.Close(rootFd)
		return nil, err
	}
	logs := &ptLogs{}
	logger := slog.New(logs)
	l, err := loop.New(loop.Config{Backend: backend, Workers: 4, Logger: logger, StallThreshold: -1, Faults: faults})
	if err != nil {
		unix.Close(rootFd)
		return nil, err
	}
	b := newBridge(l, rootFd, &st, Options{Logger: logger})
	h := b.h
	hb := &bridgeHarness{b: b, l: l, h: h, rootFd: rootFd, dir: dir, logs: logs, done: make(chan error, 1), backend: backend}
	go func() { hb.done <- l.Run() }()
	return hb, nil
}

// close does what unmounting does (OnUnmount closes every fd the tables
// hold), stops the loop and waits for it. Errors the daemon logged fail
// the test.
func (hb *bridgeHarness) close() {
	if hb.closed || hb.hung {
		return
	}
	hb.closed = true
	t := hb.t
	finished := make(chan struct{})
	go func() {
		hb.b.OnUnmount()
		hb.l.Stop()
		if err := <-hb.done; err != nil {
			t.Errorf("loop: %v", err)
		}
		close(finished)
	}()
	select {
	case <-finished:
		unix.Close(hb.rootFd)
	case <-time.After(ptTimeout):
		t.Errorf("loop did not stop within %v", ptTimeout)
	}
	for _, msg := range hb.logs.errors() {
		t.Errorf("evfs logged an error: %s", msg)
	}
}

// do runs one bridge call, failing t if it does not return in time.
func (hb *bridgeHarness) do(what string, fn func()) {
	hb.t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(ptTimeout):
		hb.hung = true
		var stacks strings.Builder
		pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		// Tell a lost wakeup (the loop sleeps on work it was never told
		// about: any post makes it find the work) from an operation
		// that never completes.
		inFlight := make(chan int, 1)
		hb.l.Post("diagnose", func() { inFlight <- hb.l.InFlight() })
		diag := "the loop does not run posted events either"
		select {
		case n := <-inFlight:
			diag = fmt.Sprintf("the loop ran a posted event: %d operations in flight", n)
			select {
			case <-done:
				diag += "; then the request was answered: a lost wakeup"
			case <-time.After(time.Second):
				diag += "; the request is still not answered"
			}
		case <-time.After(time.Second):
		}
		hb.t.Fatalf("%s backend: %s: no answer within %v (%s)\n%s\ngoroutines:\n%s", hb.backend, what, ptTimeout, diag, ptFdinfo(), stacks.String())
	}
}

// ptFdinfo describes this process's io_uring and eventfd descriptors
// (ring heads and tails, eventfd counters), for a hang's report.
func ptFdinfo() string {
	var b strings.Builder
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || !strings.Contains(target, "io_uring") && !strings.Contains(target, "eventfd") {
			continue
		}
		info, _ := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		lines := strings.Split(string(info), "\n")
		fmt.Fprintf(&b, "fd %s %s: %s\n", e.Name(), target, strings.Join(lines[:min(len(lines), 24)], "; "))
	}
	return b.String()
}

// onLoop runs fn on the loop goroutine and waits for it.
func (hb *bridgeHarness) onLoop(fn func()) {
	hb.t.Helper()
	hb.do("loop event", func() {
		done := make(chan struct{})
		hb.l.Post("test", func() { fn(); close(done) })
		<-done
	})
}

// tables reports the live nodes (root included), open handles and
// operations in flight.
func (hb *bridgeHarness) tables() (nodes, handles, inFlight int) {
	hb.onLoop(func() { nodes, handles, inFlight = hb.h.nodes.Len(), hb.h.handles.Len(), hb.l.InFlight() })
	return
}

// drain waits (a while) for the operations in flight to finish — the
// closes a FORGET or RELEASE starts are not waited for by anyone — and
// then reports the tables as tables does.
func (hb *bridgeHarness) drain() (nodes, handles, inFlight int) {
	deadline := time.Now().Add(ptTimeout)
	for {
		nodes, handles, inFlight = hb.tables()
		if inFlight == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// hdr is a request header from root for node.
func hdr(node uint64) fuse.InHeader {
	return fuse.InHeader{NodeId: node, Caller: fuse.Caller{Owner: fuse.Owner{Uid: 0, Gid: 0}, Pid: 1}}
}

func (hb *bridgeHarness) lookup(parent uint64, name string) (fuse.EntryOut, unix.Errno) {
	hb.t.Helper()
	var out fuse.EntryOut
	var st fuse.Status
	h := hdr(parent)
	hb.do("LOOKUP "+name, func() { st = hb.b.Lookup(nil, &h, name, &out) })
	return out, unix.Errno(st)
}

// mustLookup looks name up in parent and fails t if that fails.
func (hb *bridgeHarness) mustLookup(parent uint64, name string) fuse.EntryOut {
	hb.t.Helper()
	out, e := hb.lookup(parent, name)
	if e != 0 {
		hb.t.Fatalf("LOOKUP %s: %v", name, e)
	}
	return out
}

func (hb *bridgeHarness) forget(node uint64, n uint64) {
	hb.do("FORGET", func() { hb.b.Forget(node, n) })
}

func (hb *bridgeHarness) open(node uint64, flags uint32) (uint64, unix.Errno) {
	hb.t.Helper()
	in := fuse.OpenIn{InHeader: hdr(node), Flags: flags}
	var out fuse.OpenOut
	var st fuse.Status
	hb.do("OPEN", func() { st = hb.b.Open(nil, &in, &out) })
	return out.Fh, unix.Errno(st)
}

func (hb *bridgeHarness) mustOpen(node uint64, flags uint32) uint64 {
	hb.t.Helper()
	fh, e := hb.open(node, flags)
	if e != 0 {
		hb.t.Fatalf("OPEN node %d: %v", node, e)
	}
	return fh
}

func (hb *bridgeHarness) release(node, fh uint64) {
	hb.t.Helper()
	in := fuse.ReleaseIn{InHeader: hdr(node), Fh: fh}
	hb.do("RELEASE", func() { hb.b.Release(nil, &in) })
}

func (hb *bridgeHarness) create(parent uint64, name string, flags, mode uint32) (fuse.CreateOut, unix.Errno) {
	hb.t.Helper()
	in := fuse.CreateIn{InHeader: hdr(parent), Flags: flags, Mode: mode}
	var out fuse.CreateOut
	var st fuse.Status
	hb.do("CREATE "+name, func() { st = hb.b.Create(nil, &in, name, &out) })
	return out, unix.Errno(st)
}

func (hb *bridgeHarness) read(node, fh, off uint64, size int) ([]byte, unix.Errno) {
	hb.t.Helper()
	in := fuse.ReadIn{InHeader: hdr(node), Fh: fh, Offset: off, Size: uint32(size)}
	buf := make([]byte, size)
	var res fuse.ReadResult
	var st fuse.Status
	hb.do("READ", func() { res, st = hb.b.Read(nil, &in, buf) })
	if !st.Ok() {
		return nil, unix.Errno(st)
	}
	data, st := res.Bytes(nil)
	return bytes.Clone(data), unix.Errno(st)
}

func (hb *bridgeHarness) write(node, fh, off uint64, data []byte) (uint32, unix.Errno) {
	hb.t.Helper()
	in := fuse.WriteIn{InHeader: hdr(node), Fh: fh, Offset: off, Size: uint32(len(data))}
	var n uint32
	var st fuse.Status
	hb.do("WRITE", func() { n, st = hb.b.Write(nil, &in, data) })
	return n, unix.Errno(st)
}

func (hb *bridgeHarness) setattr(in *fuse.SetAttrIn) (fuse.AttrOut, unix.Errno) {
	hb.t.Helper()
	var out fuse.AttrOut
	var st fuse.Status
	hb.do("SETATTR", func() { st = hb.b.SetAttr(nil, in, &out) })
	return out, unix.Errno(st)
}

func (hb *bridgeHarness) getattr(node uint64) (fuse.AttrOut, unix.Errno) {
	hb.t.Helper()
	in := fuse.GetAttrIn{InHeader: hdr(node)}
	var out fuse.AttrOut
	var st fuse.Status
	hb.do("GETATTR", func() { st = hb.b.GetAttr(nil, &in, &out) })
	return out, unix.Errno(st)
}

// ptLogs is the harness's slog handler: it keeps Error records, which
// fail the test (a BUG line from the loop, a malformed record, …).
type ptLogs struct {
	mu   sync.Mutex
	errs []string
}

func (p *ptLogs) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (p *ptLogs) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	p.mu.Lock()
	p.errs = append(p.errs, b.String())
	p.mu.Unlock()
	return nil
}
func (p *ptLogs) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *ptLogs) WithGroup(string) slog.Handler      { return p }
func (p *ptLogs) errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.errs)
}

// errnoOfErr is the errno inside err, 0 for nil.
func errnoOfErr(err error) unix.Errno {
	if err == nil {
		return 0
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	panic(fmt.Sprintf("no errno in %v", err))
}

// forEachBridge runs fn once per available backend, each with a fresh
// backing directory filled by setup and its own harness.
func forEachBridge(t *testing.T, setup func(t *testing.T, dir string), fn func(t *testing.T, hb *bridgeHarness)) {
	for _, backend := range ptBackends {
		t.Run(backend, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "backing")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if setup != nil {
				setup(t, dir)
			}
			hb := newBridgeHarness(t, backend, dir)
			fn(t, hb)
			// Whatever the test did, nothing may be left in flight.
			if _, _, inFlight := hb.drain(); inFlight != 0 {
				t.Errorf("%d operations still in flight", inFlight)
			}
		})
	}
}

func ptWriteFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func wantE(t *testing.T, what string, got, want unix.Errno) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v (%d), want %v (%d)", what, errnoName(got), int(got), errnoName(want), int(want))
	}
}

func errnoName(e unix.Errno) string {
	if e == 0 {
		return "OK"
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return e.Error()
}

// TestProtocolStaleNodes: a node id the daemon never gave out, or one the
// kernel forgot, is ESTALE for every request that names a node.
func TestProtocolStaleNodes(t *testing.T) {
	setup := func(t *testing.T, dir string) {
		ptWriteFile(t, filepath.Join(dir, "file"), "data", 0o644)
		os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	}
	forEachBridge(t, setup, func(t *testing.T, hb *bridgeHarness) {
		b := hb.b
		// A node looked up twice and forgotten twice is gone.
		f := hb.mustLookup(backing.RootID, "file")
		if again := hb.mustLookup(backing.RootID, "file"); again.NodeId != f.NodeId {
			t.Fatalf("second lookup of file: node %d, first %d", again.NodeId, f.NodeId)
		}
		hb.forget(f.NodeId, 1)
		if _, e := hb.getattr(f.NodeId); e != 0 {
			t.Fatalf("GETATTR after forgetting 1 of 2 lookups: %v", e)
		}
		hb.forget(f.NodeId, 1)
		// Forgets of unknown nodes, of too many lookups and of the root
		// are ignored.
		hb.forget(f.NodeId, 1)
		hb.forget(987654, 3)
		hb.forget(0, 1)
		hb.forget(backing.RootID, math.MaxUint64)
		if _, e := hb.getattr(backing.RootID); e != 0 {
			t.Fatalf("root after FORGET of the root: %v", e)
		}

		for _, id := range []uint64{f.NodeId, 0, 987654, math.MaxUint64} {
			t.Run(fmt.Sprint(id), func(t *testing.T) {
				h := hdr(id)
				var st fuse.Status
				check := func(op string, call func() fuse.Status) {
					t.Helper()
					hb.do(op, func() { st = call() })
					wantE(t, op, unix.Errno(st), unix.ESTALE)
				}
				check("LOOKUP", func() fuse.Status { return b.Lookup(nil, &h, "file", &fuse.EntryOut{}) })
				check("GETATTR", func() fuse.Status {
					return b.GetAttr(nil, &fuse.GetAttrIn{InHeader: h}, &fuse.AttrOut{})
				})
				check("GETATTR unknown fh", func() fuse.Status {
					return b.GetAttr(nil, &fuse.GetAttrIn{InHeader: h, Flags_: fuse.FUSE_GETATTR_FH, Fh_: 4242}, &fuse.AttrOut{})
				})
				check("SETATTR", func() fuse.Status {
					in := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{InHeader: h, Valid: fuse.FATTR_MODE, Mode: 0o600}}
					return b.SetAttr(nil, in, &fuse.AttrOut{})
				})
				check("ACCESS", func() fuse.Status { return b.Access(nil, &fuse.AccessIn{InHeader: h, Mask: unix.R_OK}) })
				check("MKNOD", func() fuse.Status {
					return b.Mknod(nil, &fuse.MknodIn{InHeader: h, Mode: unix.S_IFIFO | 0o644}, "n", &fuse.EntryOut{})
				})
				check("MKDIR", func() fuse.Status {
					return b.Mkdir(nil, &fuse.MkdirIn{InHeader: h, Mode: 0o755}, "d", &fuse.EntryOut{})
				})
				check("UNLINK", func() fuse.Status { return b.Unlink(nil, &h, "file") })
				check("RMDIR", func() fuse.Status { return b.Rmdir(nil, &h, "sub") })
				check("RENAME from", func() fuse.Status {
					return b.Rename(nil, &fuse.RenameIn{InHeader: h, Newdir: backing.RootID}, "file", "x")
				})
				check("RENAME to", func() fuse.Status {
					rh := hdr(backing.RootID)
					return b.Rename(nil, &fuse.RenameIn{InHeader: rh, Newdir: id}, "file", "x")
				})
				check("LINK parent", func() fuse.Status {
					return b.Link(nil, &fuse.LinkIn{InHeader: h, Oldnodeid: backing.RootID}, "l", &fuse.EntryOut{})
				})
				check("LINK target", func() fuse.Status {
					return b.Link(nil, &fuse.LinkIn{InHeader: hdr(backing.RootID), Oldnodeid: id}, "l", &fuse.EntryOut{})
				})
				check("SYMLINK", func() fuse.Status { return b.Symlink(nil, &h, "t", "s", &fuse.EntryOut{}) })
				check("READLINK", func() fuse.Status { _, st := b.Readlink(nil, &h); return st })
				check("GETXATTR", func() fuse.Status { _, st := b.GetXAttr(nil, &h, "user.x", make([]byte, 10)); return st })
				check("LISTXATTR", func() fuse.Status { _, st := b.ListXAttr(nil, &h, make([]byte, 10)); return st })
				check("SETXATTR", func() fuse.Status {
					return b.SetXAttr(nil, &fuse.SetXAttrIn{InHeader: h, Size: 1}, "user.x", []byte("v"))
				})
				check("REMOVEXATTR", func() fuse.Status { return b.RemoveXAttr(nil, &h, "user.x") })
				check("CREATE", func() fuse.Status {
					return b.Create(nil, &fuse.CreateIn{InHeader: h, Flags: unix.O_RDWR | unix.O_CREAT, Mode: 0o644}, "c", &fuse.CreateOut{})
				})
				check("OPEN", func() fuse.Status { return b.Open(nil, &fuse.OpenIn{InHeader: h}, &fuse.OpenOut{}) })
				check("OPENDIR", func() fuse.Status { return b.OpenDir(nil, &fuse.OpenIn{InHeader: h}, &fuse.OpenOut{}) })
				check("STATFS", func() fuse.Status { return b.StatFs(nil, &h, &fuse.StatfsOut{}) })
			})
		}
		// Nothing was created anywhere by the refused requests.
		names := ptList(t, hb.dir)
		if !slices.Equal(names, []string{"file", "sub"}) {
			t.Errorf("backing directory now holds %v", names)
		}
	})
}

// ptList returns the sorted names in dir.
func ptList(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestProtocolBadHandles: a file handle the daemon never gave out, or one
// already released, is EBADF for every request that names a handle.
func TestProtocolBadHandles(t *testing.T) {
	setup := func(t *testing.T, dir string) {
		ptWriteFile(t, filepath.Join(dir, "file"), "data", 0o644)
		os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	}
	forEachBridge(t, setup, func(t *testing.T, hb *bridgeHarness) {
		b := hb.b
		f := hb.mustLookup(backing.RootID, "file")
		released := hb.mustOpen(f.NodeId, unix.O_RDWR)
		hb.release(f.NodeId, released)
		good := hb.mustOpen(f.NodeId, unix.O_RDWR)

		for _, fh := range []uint64{released, 0, 987654, math.MaxUint64} {
			t.Run(fmt.Sprint(fh), func(t *testing.T) {
				h := hdr(f.NodeId)
				var st fuse.Status
				check := func(op string, call func() fuse.Status) {
					t.Helper()
					hb.do(op, func() { st = call() })
					wantE(t, op, unix.Errno(st), unix.EBADF)
				}
				check("READ", func() fuse.Status {
					_, st := b.Read(nil, &fuse.ReadIn{InHeader: h, Fh: fh, Size: 10}, make([]byte, 10))
					return st
				})
				check("WRITE", func() fuse.Status {
					_, st := b.Write(nil, &fuse.WriteIn{InHeader: h, Fh: fh, Size: 1}, []byte("x"))
					return st
				})
				check("WRITEV", func() fuse.Status {
					_, st := b.Writev(nil, &fuse.WriteIn{InHeader: h, Fh: fh, Size: 2}, [][]byte{[]byte("x"), []byte("y")})
					return st
				})
				check("FSYNC", func() fuse.Status { return b.Fsync(nil, &fuse.FsyncIn{InHeader: h, Fh: fh}) })
				check("FSYNCDIR", func() fuse.Status { return b.FsyncDir(nil, &fuse.FsyncIn{InHeader: h, Fh: fh}) })
				check("FLUSH", func() fuse.Status { return b.Flush(nil, &fuse.FlushIn{InHeader: h, Fh: fh}) })
				check("FALLOCATE", func() fuse.Status {
					return b.Fallocate(nil, &fuse.FallocateIn{InHeader: h, Fh: fh, Length: 10})
				})
				check("LSEEK", func() fuse.Status {
					return b.Lseek(nil, &fuse.LseekIn{InHeader: h, Fh: fh, Whence: unix.SEEK_DATA}, &fuse.LseekOut{})
				})
				check("COPY_FILE_RANGE in", func() fuse.Status {
					_, st := b.CopyFileRange(nil, &fuse.CopyFileRangeIn{InHeader: h, FhIn: fh, FhOut: good, Len: 1})
					return st
				})
				check("COPY_FILE_RANGE out", func() fuse.Status {
					_, st := b.CopyFileRange(nil, &fuse.CopyFileRangeIn{InHeader: h, FhIn: good, FhOut: fh, Len: 1})
					return st
				})
				check("READDIR", func() fuse.Status {
					return b.ReadDir(nil, &fuse.ReadIn{InHeader: h, Fh: fh, Size: 4096}, fuse.NewDirEntryList(make([]byte, 4096), 0))
				})
				check("READDIRPLUS", func() fuse.Status {
					return b.ReadDirPlus(nil, &fuse.ReadIn{InHeader: h, Fh: fh, Size: 4096}, fuse.NewDirEntryList(make([]byte, 4096), 0))
				})
				check("GETLK", func() fuse.Status {
					return b.GetLk(nil, &fuse.LkIn{InHeader: h, Fh: fh, Lk: fuse.FileLock{Typ: unix.F_WRLCK, End: math.MaxInt64}}, &fuse.LkOut{})
				})
				check("SETLK", func() fuse.Status {
					return b.SetLk(nil, &fuse.LkIn{InHeader: h, Fh: fh, Lk: fuse.FileLock{Typ: unix.F_WRLCK, End: math.MaxInt64}})
				})
				check("SETLKW", func() fuse.Status {
					return b.SetLkw(nil, &fuse.LkIn{InHeader: h, Fh: fh, Lk: fuse.FileLock{Typ: unix.F_WRLCK, End: math.MaxInt64}})
				})
				check("SETATTR fh", func() fuse.Status {
					in := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{InHeader: h, Valid: fuse.FATTR_FH | fuse.FATTR_SIZE, Fh: fh}}
					return b.SetAttr(nil, in, &fuse.AttrOut{})
				})
				// RELEASE has no reply status; it must simply return.
				hb.do("RELEASE", func() { b.Release(nil, &fuse.ReleaseIn{InHeader: h, Fh: fh}) })
				hb.do("RELEASEDIR", func() { b.ReleaseDir(&fuse.ReleaseIn{InHeader: h, Fh: fh}) })
				// GETATTR with an unknown handle falls back to the node.
				hb.do("GETATTR", func() {
					st = b.GetAttr(nil, &fuse.GetAttrIn{InHeader: h, Flags_: fuse.FUSE_GETATTR_FH, Fh_: fh}, &fuse.AttrOut{})
				})
				wantE(t, "GETATTR with unknown fh", unix.Errno(st), 0)
			})
		}

		// A handle of the wrong kind: a file handle to READDIR, a
		// directory handle to READ and WRITE (pread on a directory).
		sub := hb.mustLookup(backing.RootID, "sub")
		var dirOut fuse.OpenOut
		var st fuse.Status
		hb.do("OPENDIR", func() { st = b.OpenDir(nil, &fuse.OpenIn{InHeader: hdr(sub.NodeId)}, &dirOut) })
		if !st.Ok() {
			t.Fatalf("OPENDIR sub: %v", st)
		}
		hb.do("READDIR", func() {
			st = b.ReadDir(nil, &fuse.ReadIn{InHeader: hdr(f.NodeId), Fh: good, Size: 4096}, fuse.NewDirEntryList(make([]byte, 4096), 0))
		})
		wantE(t, "READDIR of a file handle", unix.Errno(st), unix.ENOTDIR)
		_, e := hb.read(sub.NodeId, dirOut.Fh, 0, 10)
		wantE(t, "READ of a directory handle", e, unix.EISDIR)
		_, e = hb.write(sub.NodeId, dirOut.Fh, 0, []byte("x"))
		wantE(t, "WRITE to a directory handle", e, unix.EBADF) // pwrite on an O_RDONLY fd
		hb.do("RELEASEDIR", func() { b.ReleaseDir(&fuse.ReleaseIn{InHeader: hdr(sub.NodeId), Fh: dirOut.Fh}) })
		hb.release(f.NodeId, good)
		hb.forget(f.NodeId, 1)
		hb.forget(sub.NodeId, 1)
		if nodes, handles, _ := hb.drain(); nodes != 1 || handles != 0 {
			t.Errorf("after releasing and forgetting everything: %d nodes, %d handles (want 1, 0)", nodes, handles)
		}
	})
}

// TestProtocolBadNames: names the kernel never sends — empty, ".", "..",
// with '/' or NUL, longer than 255 bytes — are refused before they reach
// the backing filesystem, by every request that takes a name.
func TestProtocolBadNames(t *testing.T) {
	setup := func(t *testing.T, dir string) {
		ptWriteFile(t, filepath.Join(dir, "file"), "data", 0o644)
		os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	}
	long := strings.Repeat("n", 256)
	bad := []struct {
		name string
		want unix.Errno
	}{
		{"", unix.EINVAL},
		{".", unix.EINVAL},
		{"..", unix.EINVAL},
		{"sub/file", unix.EINVAL},
		{"/", unix.EINVAL},
		{"../file", unix.EINVAL},
		{"sub/", unix.EINVAL},
		{"a\x00b", unix.EINVAL},
		{"file\x00", unix.EINVAL},
		{long, unix.ENAMETOOLONG},
		{long + "/x", unix.ENAMETOOLONG},
	}
	forEachBridge(t, setup, func(t *testing.T, hb *bridgeHarness) {
		b := hb.b
		parentBefore := ptList(t, filepath.Dir(hb.dir))
		subNode := hb.mustLookup(backing.RootID, "sub").NodeId
		fileNode := hb.mustLookup(backing.RootID, "file").NodeId
		for _, c := range bad {
			t.Run(fmt.Sprintf("%q", c.name), func(t *testing.T) {
				root := hdr(backing.RootID)
				var st fuse.Status
				check := func(op string, call func() fuse.Status) {
					t.Helper()
					hb.do(op, func() { st = call() })
					wantE(t, op, unix.Errno(st), c.want)
				}
				for _, dir := range []uint64{backing.RootID, subNode} {
					h := hdr(dir)
					check("LOOKUP", func() fuse.Status { return b.Lookup(nil, &h, c.name, &fuse.EntryOut{}) })
					check("MKDIR", func() fuse.Status {
						return b.Mkdir(nil, &fuse.MkdirIn{InHeader: h, Mode: 0o755}, c.name, &fuse.EntryOut{})
					})
					check("MKNOD", func() fuse.Status {
						return b.Mknod(nil, &fuse.MknodIn{InHeader: h, Mode: unix.S_IFREG | 0o644}, c.name, &fuse.EntryOut{})
					})
					check("CREATE", func() fuse.Status {
						return b.Create(nil, &fuse.CreateIn{InHeader: h, Flags: unix.O_RDWR | unix.O_CREAT, Mode: 0o644}, c.name, &fuse.CreateOut{})
					})
					check("SYMLINK", func() fuse.Status { return b.Symlink(nil, &h, "target", c.name, &fuse.EntryOut{}) })
					check("UNLINK", func() fuse.Status { return b.Unlink(nil, &h, c.name) })
					check("RMDIR", func() fuse.Status { return b.Rmdir(nil, &h, c.name) })
					check("LINK", func() fuse.Status {
						return b.Link(nil, &fuse.LinkIn{InHeader: h, Oldnodeid: fileNode}, c.name, &fuse.EntryOut{})
					})
					check("RENAME old", func() fuse.Status {
						return b.Rename(nil, &fuse.RenameIn{InHeader: h, Newdir: backing.RootID}, c.name, "renamed")
					})
					check("RENAME new", func() fuse.Status {
						return b.Rename(nil, &fuse.RenameIn{InHeader: root, Newdir: dir}, "file", c.name)
					})
					check("RENAME exchange", func() fuse.Status {
						return b.Rename(nil, &fuse.RenameIn{InHeader: root, Newdir: dir, Flags: unix.RENAME_EXCHANGE}, "file", c.name)
					})
				}
			})
		}
		// A 255-byte name is fine.
		name255 := strings.Repeat("m", 255)
		out, e := hb.create(backing.RootID, name255, unix.O_RDWR|unix.O_CREAT, 0o644)
		wantE(t, "CREATE of a 255-byte name", e, 0)
		if e == 0 {
			hb.release(out.NodeId, out.Fh)
			hb.forget(out.NodeId, 1)
		}
		hb.forget(subNode, 1)
		hb.forget(fileNode, 1)

		if got := ptList(t, hb.dir); !slices.Equal(got, []string{"file", name255, "sub"}) {
			t.Errorf("backing directory holds %q", got)
		}
		if got := ptList(t, filepath.Join(hb.dir, "sub")); len(got) != 0 {
			t.Errorf("backing sub holds %q", got)
		}
		if got := ptList(t, filepath.Dir(hb.dir)); !slices.Equal(got, parentBefore) {
			t.Errorf("the backing directory's parent changed: %q → %q", parentBefore, got)
		}
		if _, err := os.Stat(filepath.Join(hb.dir, "file")); err != nil {
			t.Errorf("file: %v", err)
		}
	})
}

// TestProtocolSymlinkTargets: SYMLINK targets go to symlinkat unchanged,
// so bad ones get symlinkat's own errno.
func TestProtocolSymlinkTargets(t *testing.T) {
	forEachBridge(t, nil, func(t *testing.T, hb *bridgeHarness) {
		native := t.TempDir()
		for i, target := range []string{"", strings.Repeat("t", 4095), strings.Repeat("t", 4096), "/etc", "../../..", "a\x00b"} {
			name := fmt.Sprint("s", i)
			var out fuse.EntryOut
			var st fuse.Status
			h := hdr(backing.RootID)
			hb.do("SYMLINK", func() { st = hb.b.Symlink(nil, &h, target, name, &out) })
			want := errnoOfErr(unix.Symlink(target, filepath.Join(native, name)))
			wantE(t, fmt.Sprintf("SYMLINK target of %d bytes", len(target)), unix.Errno(st), want)
			if st.Ok() {
				got, err := os.Readlink(filepath.Join(hb.dir, name))
				if err != nil || got != target {
					t.Errorf("backing link %s: %q, %v; want %q", name, got, err, target)
				}
				var link []byte
				hh := hdr(out.NodeId)
				hb.do("READLINK", func() { link, st = hb.b.Readlink(nil, &hh) })
				if !st.Ok() || string(link) != target {
					t.Errorf("READLINK %s: %q, %v; want %q", name, link, st, target)
				}
				hb.forget(out.NodeId, 1)
			}
		}
	})
}

// TestProtocolXattrLimits: value and name limits are the backing fs's:
// a value over 64 KiB is E2BIG, a name over 255 bytes ERANGE, a buffer
// too small ERANGE — each as setxattr/getxattr give natively.
func TestProtocolXattrLimits(t *testing.T) {
	setup := func(t *testing.T, dir string) { ptWriteFile(t, filepath.Join(dir, "file"), "", 0o644) }
	forEachBridge(t, setup, func(t *testing.T, hb *bridgeHarness) {
		native := filepath.Join(t.TempDir(), "file")
		ptWriteFile(t, native, "", 0o644)
		f := hb.mustLookup(backing.RootID, "file")
		h := hdr(f.NodeId)
		set := func(name string, value []byte, flags uint32) unix.Errno {
			var st fuse.Status
			hb.do("SETXATTR", func() {
				st = hb.b.SetXAttr(nil, &fuse.SetXAttrIn{InHeader: h, Size: uint32(len(value)), Flags: flags}, name, value)
			})
			return unix.Errno(st)
		}
		get := func(name string, size int) ([]byte, unix.Errno) {
			dest := make([]byte, size)
			var n uint32
			var st fuse.Status
			hb.do("GETXATTR", func() { n, st = hb.b.GetXAttr(nil, &h, name, dest) })
			if !st.Ok() {
				return nil, unix.Errno(st)
			}
			if size == 0 {
				return make([]byte, n), 0 // the size only
			}
			return dest[:n], 0
		}
		for _, c := range []struct {
			name  string
			size  int
			flags int
		}{
			{"user.small", 10, 0},
			{"user.small", 10, unix.XATTR_CREATE},  // EEXIST
			{"user.absent", 1, unix.XATTR_REPLACE}, // ENODATA
			{"user.big", 65536, 0},                 // the limit: fits or ENOSPC, as the fs says
			{"user.huge", 65537, 0},                // E2BIG
			{"user.huge", 1 << 20, 0},              // E2BIG
			{"user." + strings.Repeat("x", 250), 1, 0},
			{"user." + strings.Repeat("x", 251), 1, 0}, // 256 bytes: ERANGE
			{"", 1, 0},
			{"noprefix", 1, 0},
			{"user.flags", 1, 0x100}, // unknown flag bit: EINVAL
		} {
			value := bytes.Repeat([]byte{'v'}, c.size)
			want := errnoOfErr(unix.Setxattr(native, c.name, value, c.flags))
			got := set(c.name, value, uint32(c.flags))
			wantE(t, fmt.Sprintf("SETXATTR %.20q size %d flags %#x", c.name, c.size, c.flags), got, want)
			if c.size == 65537 && got != unix.E2BIG {
				t.Errorf("SETXATTR of 65537 bytes: %v, want E2BIG", errnoName(got))
			}
		}
		for _, c := range []struct {
			name string
			size int
		}{
			{"user.small", 0}, {"user.small", 9}, {"user.small", 10}, {"user.small", 1 << 17},
			{"user.absent", 10}, {"user." + strings.Repeat("x", 251), 10}, {"", 10},
		} {
			buf := make([]byte, c.size)
			n, err := unix.Getxattr(native, c.name, buf)
			want := errnoOfErr(err)
			got, e := get(c.name, c.size)
			what := fmt.Sprintf("GETXATTR %.20q into %d bytes", c.name, c.size)
			wantE(t, what, e, want)
			if e == 0 && want == 0 && len(got) != n {
				t.Errorf("%s: %d bytes, natively %d", what, len(got), n)
			}
		}
		for _, size := range []int{0, 1, 1 << 17} {
			buf := make([]byte, size)
			n, err := unix.Listxattr(native, buf)
			var got uint32
			var st fuse.Status
			hb.do("LISTXATTR", func() { got, st = hb.b.ListXAttr(nil, &h, make([]byte, size)) })
			wantE(t, fmt.Sprintf("LISTXATTR into %d bytes", size), unix.Errno(st), errnoOfErr(err))
			if st.Ok() && err == nil && int(got) != n {
				t.Errorf("LISTXATTR into %d bytes: %d, natively %d", size, got, n)
			}
		}
		hb.forget(f.NodeId, 1)
	})
}

// TestProtocolOffsets: reads past EOF are 0 bytes; offsets near 2^63,
// "negative" offsets (≥ 2^63 as uint64) and sizes that overflow get the
// errno the native syscall gives on the same kind of file (or EINVAL
// where the native call cannot even express the value).
func TestProtocolOffsets(t *testing.T) {
	const content = "hello, world"
	setup := func(t *testing.T, dir string) { ptWriteFile(t, filepath.Join(dir, "file"), content, 0o644) }
	forEachBridge(t, setup, func(t *testing.T, hb *bridgeHarness) {
		nativePath := filepath.Join(t.TempDir(), "file")
		reset := func() {
			ptWriteFile(t, nativePath, content, 0o644)
			ptWriteFile(t, filepath.Join(hb.dir, "file"), content, 0o644)
		}
		reset()
		nf, err := os.OpenFile(nativePath, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer nf.Close()
		nfd := int(nf.Fd())
		f := hb.mustLookup(backing.RootID, "file")
		fh := hb.mustOpen(f.NodeId, unix.O_RDWR)
		fh2 := hb.mustOpen(f.NodeId, unix.O_RDWR)
		// compare checks that both files still have the same size.
		compare := func(what string) {
			t.Helper()
			var a, b unix.Stat_t
			unix.Fstat(nfd, &a)
			unix.Lstat(filepath.Join(hb.dir, "file"), &b)
			if a.Size != b.Size {
				t.Errorf("%s: size %d through the bridge, %d natively", what, b.Size, a.Size)
			}
		}
		offsets := []uint64{0, 5, uint64(len(content)), 1 << 20, 1 << 40, 1 << 62,
			math.MaxInt64 - 100, math.MaxInt64 - 1, math.MaxInt64, 1 << 63, math.MaxUint64 - 4095, math.MaxUint64}

		t.Run("read", func(t *testing.T) {
			for _, off := range offsets {
				for _, size := range []int{0, 1, 4096} {
					what := fmt.Sprintf("READ %d at %d", size, off)
					buf := make([]byte, size)
					n, err := unix.Pread(nfd, buf, int64(off))
					want := errnoOfErr(err)
					got, e := hb.read(f.NodeId, fh, off, size)
					wantE(t, what, e, want)
					if e == 0 && want == 0 && !bytes.Equal(got, buf[:n]) {
						t.Errorf("%s: %q, natively %q", what, got, buf[:n])
					}
					if off >= uint64(len(content)) && off < 1<<62 && e == 0 && len(got) != 0 {
						t.Errorf("%s: read past EOF gave %d bytes", what, len(got))
					}
				}
			}
		})
		t.Run("write", func(t *testing.T) {
			for _, off := range offsets {
				if off == 1<<40 {
					continue // a sparse terabyte is legal but pointless here
				}
				for _, size := range []int{0, 1, 4096} {
					reset()
					what := fmt.Sprintf("WRITE %d at %d", size, off)
					data := bytes.Repeat([]byte{'w'}, size)
					n, err := unix.Pwrite(nfd, data, int64(off))
					want := errnoOfErr(err)
					got, e := hb.write(f.NodeId, fh, off, data)
					wantE(t, what, e, want)
					if e == 0 && want == 0 && int(got) != n {
						t.Errorf("%s: wrote %d, natively %d", what, got, n)
					}
					compare(what)
				}
			}
			reset()
		})
		t.Run("setattr size", func(t *testing.T) {
			for _, size := range []uint64{0, 3, 1 << 20, 1 << 44, 1 << 62, math.MaxInt64, 1 << 63, math.MaxUint64} {
				reset()
				what := fmt.Sprintf("SETATTR size %d", size)
				want := errnoOfErr(unix.Ftruncate(nfd, int64(size)))
				in := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{InHeader: hdr(f.NodeId), Valid: fuse.FATTR_SIZE | fuse.FATTR_FH, Fh: fh, Size: size}}
				_, e := hb.setattr(in)
				wantE(t, what+" (handle)", e, want)
				compare(what)

				reset()
				want = errnoOfErr(unix.Truncate(nativePath, int64(size)))
				in = &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{InHeader: hdr(f.NodeId), Valid: fuse.FATTR_SIZE, Size: size}}
				_, e = hb.setattr(in)
				wantE(t, what+" (path)", e, want)
				compare(what)
			}
			reset()
		})
		t.Run("fallocate", func(t *testing.T) {
			lengths := []uint64{0, 1, 4096, 1 << 44, math.MaxInt64, 1 << 63, math.MaxUint64}
			for _, mode := range []uint32{0, unix.FALLOC_FL_KEEP_SIZE, unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE, 0x4000_0000} {
				for _, off := range offsets {
					for _, length := range lengths {
						if (off == 1<<40 || length == 1<<44) && mode == 0 {
							continue // would really allocate (or fail late, slowly)
						}
						reset()
						what := fmt.Sprintf("FALLOCATE mode %#x off %d len %d", mode, off, length)
						want := errnoOfErr(unix.Fallocate(nfd, mode, int64(off), int64(length)))
						var st fuse.Status
						hb.do(what, func() {
							st = hb.b.Fallocate(nil, &fuse.FallocateIn{InHeader: hdr(f.NodeId), Fh: fh, Offset: off, Length: length, Mode: mode})
						})
						wantE(t, what, unix.Errno(st), want)
						compare(what)
					}
				}
			}
			reset()
		})
		t.Run("lseek", func(t *testing.T) {
			for _, whence := range []uint32{unix.SEEK_SET, unix.SEEK_DATA, unix.SEEK_HOLE, 99} {
				for _, off := range offsets {
					what := fmt.Sprintf("LSEEK whence %d off %d", whence, off)
					n, err := unix.Seek(nfd, int64(off), int(whence))
					want := errnoOfErr(err)
					var out fuse.LseekOut
					var st fuse.Status
					hb.do(what, func() {
						st = hb.b.Lseek(nil, &fuse.LseekIn{InHeader: hdr(f.NodeId), Fh: fh, Offset: off, Whence: whence}, &out)
					})
					wantE(t, what, unix.Errno(st), want)
					if st.Ok() && want == 0 && int64(out.Offset) != n {
						t.Errorf("%s: %d, natively %d", what, out.Offset, n)
					}
				}
			}
		})
		t.Run("copy_file_range", func(t *testing.T) {
			// A second native fd, to copy between two files as the bridge
			// does between two handles; both of the same file.
			nf2, err := os.OpenFile(nativePath, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer nf2.Close()
			for _, offIn := range []uint64{0, 100, math.MaxInt64 - 5, 1 << 63, math.MaxUint64} {
				for _, offOut := range []uint64{0, 20, 4096, 1 << 62, math.MaxInt64 - 5, 1 << 63} {
					for _, length := range []uint64{0, 5, 1 << 30, 1 << 31, math.MaxUint64} {
						for _, flags := range []uint64{0, 1} {
							reset()
							what := fmt.Sprintf("COPY_FILE_RANGE %d@%d → @%d flags %d", length, offIn, offOut, flags)
							// The bridge caps a copy at 1 GiB: its reply
							// carries a uint32 count.
							nlen := min(length, 1<<30)
							oi, oo := int64(offIn), int64(offOut)
							n, err := unix.CopyFileRange(nfd, &oi, int(nf2.Fd()), &oo, int(nlen), int(flags))
							want := errnoOfErr(err)
							var got uint32
							var st fuse.Status
							hb.do(what, func() {
								got, st = hb.b.CopyFileRange(nil, &fuse.CopyFileRangeIn{InHeader: hdr(f.NodeId),
									FhIn: fh, OffIn: offIn, NodeIdOut: f.NodeId, FhOut: fh2, OffOut: offOut, Len: length, Flags: flags})
							})
							wantE(t, what, unix.Errno(st), want)
							if st.Ok() && want == 0 && int(got) != n {
								t.Errorf("%s: copied %d, natively %d", what, got, n)
							}
							compare(what)
						}
					}
				}
			}
			reset()
		})
		t.Run("readdir offsets", func(t *testing.T) {
			// Directory offsets are cookies the daemon handed out; a
			// made-up one must not break anything.
			var out fuse.OpenOut
			var st fuse.Status
			hb.do("OPENDIR", func() { st = hb.b.OpenDir(nil, &fuse.OpenIn{InHeader: hdr(backing.RootID)}, &out) })
			if !st.Ok() {
				t.Fatalf("OPENDIR: %v", st)
			}
			for _, off := range []uint64{12345, 1 << 62, math.MaxInt64, 1 << 63, math.MaxUint64, 0} {
				for _, plus := range []bool{false, true} {
					list := fuse.NewDirEntryList(make([]byte, 4096), off)
					in := &fuse.ReadIn{InHeader: hdr(backing.RootID), Fh: out.Fh, Offset: off, Size: 4096}
					hb.do("READDIR", func() {
						if plus {
							st = hb.b.ReadDirPlus(nil, in, list)
						} else {
							st = hb.b.ReadDir(nil, in, list)
						}
					})
					if plus && st.Ok() {
						ptForgetPlus(hb, list.Bytes())
					}
					if off == 0 && !st.Ok() {
						t.Errorf("READDIR at 0 after bogus offsets: %v", st)
					}
				}
			}
			hb.do("RELEASEDIR", func() { hb.b.ReleaseDir(&fuse.ReleaseIn{InHeader: hdr(backing.RootID), Fh: out.Fh}) })
		})
		hb.release(f.NodeId, fh)
		hb.release(f.NodeId, fh2)
		hb.forget(f.NodeId, 1)
		if nodes, handles, _ := hb.drain(); nodes != 1 || handles != 0 {
			t.Errorf("after releasing and forgetting everything: %d nodes, %d handles (want 1, 0)", nodes, handles)
		}
	})
}

// ptForgetPlus forgets every node a READDIRPLUS reply handed out, as the
// kernel eventually does.
func ptForgetPlus(hb *bridgeHarness, buf []byte) {
	for _, e := range ptParsePlus(buf) {
		if e.node != 0 {
			hb.forget(e.node, 1)
		}
	}
}

type ptPlusEntry struct {
	node uint64
	name string
	typ  uint32
}

// ptParsePlus decodes READDIRPLUS output: per entry an EntryOut, then a
// fuse_dirent (ino, off, namelen, type), the name, padding to 8 bytes.
func ptParsePlus(buf []byte) []ptPlusEntry {
	entryOutSize := int(unsafe.Sizeof(fuse.EntryOut{}))
	var out []ptPlusEntry
	for len(buf) >= entryOutSize+24 {
		node := binary.NativeEndian.Uint64(buf) // EntryOut.NodeId
		d := buf[entryOutSize:]
		namelen := int(binary.NativeEndian.Uint32(d[16:]))
		typ := binary.NativeEndian.Uint32(d[20:])
		if 24+namelen > len(d) {
			break
		}
		out = append(out, ptPlusEntry{node: node, name: string(d[24 : 24+namelen]), typ: typ})
		rec := 24 + namelen
		rec += (8 - rec%8) % 8
		buf = d[min(rec, len(d)):]
	}
	return out
}

// TestProtocolSymlinkNode: a symlink in the backing directory (here
// pointing at a directory and a file outside it) is a node like any
// other: requests on or under it act on the link and never follow it.
func TestProtocolSymlinkNode(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	setup := func(t *testing.T, dir string) {
		os.Chmod(outside, 0o700)
		ptWriteFile(t, secret, "secret", 0o600)
		if err := os.Symlink(outside, filepath.Join(dir, "dlink")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(secret, filepath.Join(dir, "flink")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/etc", filepath.Join(dir, "etc")); err != nil {
			t.Fatal(err)
		}
	}
	var before [2]unix.Stat_t
	forEachBridge(t, setup, func(t *testing.T, hb *bridgeHarness) {
		b := hb.b
		unix.Stat(outside, &before[0])
		unix.Stat(secret, &before[1])
		dl := hb.mustLookup(backing.RootID, "dlink")
		fl := hb.mustLookup(backing.RootID, "flink")
		et := hb.mustLookup(backing.RootID, "etc")
		for _, n := range []fuse.EntryOut{dl, fl, et} {
			if n.Attr.Mode&unix.S_IFMT != unix.S_IFLNK {
				t.Fatalf("LOOKUP of a symlink: mode %#o", n.Attr.Mode)
			}
		}
		var st fuse.Status
		var link []byte
		eh := hdr(et.NodeId)
		hb.do("READLINK", func() { link, st = b.Readlink(nil, &eh) })
		if !st.Ok() || string(link) != "/etc" {
			t.Errorf("READLINK etc: %q, %v", link, st)
		}
		for _, n := range []fuse.EntryOut{dl, et} {
			h := hdr(n.NodeId)
			check := func(op string, want unix.Errno, call func() fuse.Status) {
				t.Helper()
				hb.do(op, func() { st = call() })
				wantE(t, op+" under a symlink node", unix.Errno(st), want)
			}
			// Under a symlink: the link is not a directory.
			check("LOOKUP", unix.ENOTDIR, func() fuse.Status { return b.Lookup(nil, &h, "passwd", &fuse.EntryOut{}) })
			check("LOOKUP", unix.ENOTDIR, func() fuse.Status { return b.Lookup(nil, &h, "secret", &fuse.EntryOut{}) })
			check("CREATE", unix.ENOTDIR, func() fuse.Status {
				return b.Create(nil, &fuse.CreateIn{InHeader: h, Flags: unix.O_CREAT | unix.O_RDWR, Mode: 0o644}, "evfs-created", &fuse.CreateOut{})
			})
			check("MKDIR", unix.ENOTDIR, func() fuse.Status {
				return b.Mkdir(nil, &fuse.MkdirIn{InHeader: h, Mode: 0o755}, "evfs-created", &fuse.EntryOut{})
			})
			check("MKNOD", unix.ENOTDIR, func() fuse.Status {
				return b.Mknod(nil, &fuse.MknodIn{InHeader: h, Mode: unix.S_IFREG | 0o644}, "evfs-created", &fuse.EntryOut{})
			})
			check("SYMLINK", unix.ENOTDIR, func() fuse.Status { return b.Symlink(nil, &h, "x", "evfs-created", &fuse.EntryOut{}) })
			check("UNLINK", unix.ENOTDIR, func() fuse.Status { return b.Unlink(nil, &h, "secret") })
			check("RMDIR", unix.ENOTDIR, func() fuse.Status { return b.Rmdir(nil, &h, "secret") })
			check("RENAME into", unix.ENOTDIR, func() fuse.Status {
				return b.Rename(nil, &fuse.RenameIn{InHeader: hdr(backing.RootID), Newdir: n.NodeId}, "flink", "moved")
			})
			check("RENAME out of", unix.ENOTDIR, func() fuse.Status {
				return b.Rename(nil, &fuse.RenameIn{InHeader: h, Newdir: backing.RootID}, "secret", "stolen")
			})
			check("LINK into", unix.ENOTDIR, func() fuse.Status {
				return b.Link(nil, &fuse.LinkIn{InHeader: h, Oldnodeid: fl.NodeId}, "evfs-created", &fuse.EntryOut{})
			})
			check("OPENDIR", unix.ENOTDIR, func() fuse.Status { return b.OpenDir(nil, &fuse.OpenIn{InHeader: h}, &fuse.OpenOut{}) })
		}
		for _, n := range []fuse.EntryOut{dl, fl, et} {
			h := hdr(n.NodeId)
			check := func(op string, want unix.Errno, call func() fuse.Status) {
				t.Helper()
				hb.do(op, func() { st = call() })
				wantE(t, op+" of a symlink node", unix.Errno(st), want)
			}
			// On the link itself: never its target.
			check("OPEN", unix.ELOOP, func() fuse.Status { return b.Open(nil, &fuse.OpenIn{InHeader: h}, &fuse.OpenOut{}) })
			check("OPEN O_WRONLY|O_TRUNC", unix.ELOOP, func() fuse.Status {
				return b.Open(nil, &fuse.OpenIn{InHeader: h, Flags: unix.O_WRONLY | unix.O_TRUNC}, &fuse.OpenOut{})
			})
			check("SETXATTR", unix.EPERM, func() fuse.Status {
				return b.SetXAttr(nil, &fuse.SetXAttrIn{InHeader: h, Size: 1}, "user.evfs-test", []byte("x"))
			})
			check("GETXATTR", unix.ENODATA, func() fuse.Status {
				_, st := b.GetXAttr(nil, &h, "user.evfs-test", make([]byte, 10))
				return st
			})
			check("REMOVEXATTR", unix.EPERM, func() fuse.Status { return b.RemoveXAttr(nil, &h, "user.evfs-test") })
			check("SETATTR size", unix.EINVAL, func() fuse.Status {
				in := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{InHeader: h, Valid: fuse.FATTR_SIZE}}
				return b.SetAttr(nil, in, &fuse.AttrOut{})
			})
			// chmod of a symlink: the native lchmod answer (EOPNOTSUPP).
			nativeLink := filepath.Join(t.TempDir(), "l")
			os.Symlink(outside, nativeLink)
			want := errnoOfErr(unix.Fchmodat(unix.AT_FDCWD, nativeLink, 0o777, unix.AT_SYMLINK_NOFOLLOW))
			check("SETATTR mode", want, func() fuse.Status {
				in := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{InHeader: h, Valid: fuse.FATTR_MODE, Mode: 0o777}}
				return b.SetAttr(nil, in, &fuse.AttrOut{})
			})
			// chown and utimes change the link, not the target.
			check("SETATTR uid", 0, func() fuse.Status {
				in := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{InHeader: h, Valid: fuse.FATTR_UID | fuse.FATTR_GID, Owner: fuse.Owner{Uid: 4321, Gid: 4321}}}
				return b.SetAttr(nil, in, &fuse.AttrOut{})
			})
			check("SETATTR times", 0, func() fuse.Status {
				in := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{InHeader: h, Valid: fuse.FATTR_ATIME | fuse.FATTR_MTIME, Atime: 1000, Mtime: 1000}}
				return b.SetAttr(nil, in, &fuse.AttrOut{})
			})
			var ao fuse.AttrOut
			hb.do("GETATTR", func() { st = b.GetAttr(nil, &fuse.GetAttrIn{InHeader: h}, &ao) })
			if !st.Ok() || ao.Attr.Mode&unix.S_IFMT != unix.S_IFLNK || ao.Attr.Uid != 4321 || ao.Attr.Mtime != 1000 {
				t.Errorf("GETATTR of the link after chown/utimes: %v, mode %#o uid %d mtime %d", st, ao.Attr.Mode, ao.Attr.Uid, ao.Attr.Mtime)
			}
			var n2 uint32
			hb.do("LISTXATTR", func() { n2, st = b.ListXAttr(nil, &h, make([]byte, 100)) })
			if !st.Ok() || n2 != 0 {
				t.Errorf("LISTXATTR of a symlink: %d, %v", n2, st)
			}
		}
		// A hard link to a symlink node is another symlink, not its target.
		var out fuse.EntryOut
		hb.do("LINK", func() {
			st = b.Link(nil, &fuse.LinkIn{InHeader: hdr(backing.RootID), Oldnodeid: fl.NodeId}, "hard", &out)
		})
		if !st.Ok() {
			t.Errorf("LINK to a symlink node: %v", st)
		} else {
			if target, err := os.Readlink(filepath.Join(hb.dir, "hard")); err != nil || target != secret {
				t.Errorf("hard link to the symlink: %q, %v", target, err)
			}
			hb.forget(out.NodeId, 1)
		}

		// Outside the backing directory, nothing changed and nothing was
		// created; /etc has no trace either.
		var after [2]unix.Stat_t
		unix.Stat(outside, &after[0])
		unix.Stat(secret, &after[1])
		for i, p := range []string{outside, secret} {
			a, b := before[i], after[i]
			if a.Mode != b.Mode || a.Uid != b.Uid || a.Size != b.Size || a.Mtim != b.Mtim || a.Ctim != b.Ctim {
				t.Errorf("%s changed: mode %#o→%#o uid %d→%d size %d→%d ctime %v→%v", p, a.Mode, b.Mode, a.Uid, b.Uid, a.Size, b.Size, a.Ctim, b.Ctim)
			}
		}
		if got := ptList(t, outside); !slices.Equal(got, []string{"secret"}) {
			t.Errorf("outside directory holds %q", got)
		}
		if _, err := unix.Getxattr(secret, "user.evfs-test", nil); err != unix.ENODATA {
			t.Errorf("getxattr of the outside file: %v, want ENODATA", err)
		}
		if _, err := os.Lstat("/etc/evfs-created"); !os.IsNotExist(err) {
			t.Errorf("/etc/evfs-created: %v", err)
		}
		if _, err := unix.Getxattr("/etc", "user.evfs-test", nil); err != unix.ENODATA && err != unix.EOPNOTSUPP {
			t.Errorf("getxattr of /etc: %v, want ENODATA", err)
		}
		for _, n := range []fuse.EntryOut{dl, fl, et} {
			hb.forget(n.NodeId, 1)
		}
		if nodes, handles, _ := hb.drain(); nodes != 1 || handles != 0 {
			t.Errorf("after forgetting everything: %d nodes, %d handles (want 1, 0)", nodes, handles)
		}
	})
}

// TestProtocolInterrupted: a request interrupted before, during or after
// its operation still gets exactly one answer (go-fuse's cancel channel
// closed at once), for every kind of request above.
func TestProtocolInterrupted(t *testing.T) {
	setup := func(t *testing.T, dir string) { ptWriteFile(t, filepath.Join(dir, "file"), "data", 0o644) }
	forEachBridge(t, setup, func(t *testing.T, hb *bridgeHarness) {
		cancel := make(chan struct{})
		close(cancel)
		f := hb.mustLookup(backing.RootID, "file")
		fh := hb.mustOpen(f.NodeId, unix.O_RDWR)
		for i := 0; i < 50; i++ {
			h := hdr(f.NodeId)
			var st fuse.Status
			hb.do("interrupted READ", func() {
				_, st = hb.b.Read(cancel, &fuse.ReadIn{InHeader: h, Fh: fh, Size: 4}, make([]byte, 4))
			})
			if st != fuse.OK && st != fuse.EINTR {
				t.Fatalf("interrupted READ: %v", st)
			}
			hb.do("interrupted GETATTR", func() { st = hb.b.GetAttr(cancel, &fuse.GetAttrIn{InHeader: h}, &fuse.AttrOut{}) })
			if st != fuse.OK && st != fuse.EINTR {
				t.Fatalf("interrupted GETATTR: %v", st)
			}
			hb.do("interrupted READ, bad handle", func() {
				_, st = hb.b.Read(cancel, &fuse.ReadIn{InHeader: h, Fh: 999, Size: 4}, make([]byte, 4))
			})
			if st != fuse.EBADF {
				t.Fatalf("interrupted READ of a bad handle: %v", st)
			}
		}
		hb.release(f.NodeId, fh)
		hb.forget(f.NodeId, 1)
	})
}

// ptOpenFdsOf lists this process's descriptors open on path.
func ptOpenFdsOf(path string) []string {
	var fds []string
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == path {
			fds = append(fds, e.Name())
		}
	}
	return fds
}

// TestProtocolFailedCreateReleases: when a step after CREATE's open fails
// (the statx of the new inode, giving it to the caller), the request
// fails and every descriptor the chain opened is closed again.
func TestProtocolFailedCreateReleases(t *testing.T) {
	for _, c := range []struct {
		name  string
		fault loop.Fault
		uid   uint32
	}{
		{"STATX=EIO", loop.Fault{Kind: aio.OpStatx, Errno: unix.EIO}, 0},
		{"FCHOWNAT=EPERM", loop.Fault{Kind: aio.OpFchownat, Errno: unix.EPERM}, 1234},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, backend := range ptBackends {
				t.Run(backend, func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "backing")
					if err := os.Mkdir(dir, 0o755); err != nil {
						t.Fatal(err)
					}
					hb := newBridgeHarness(t, backend, dir, c.fault)
					in := fuse.CreateIn{InHeader: hdr(backing.RootID), Flags: unix.O_CREAT | unix.O_RDWR, Mode: 0o644}
					in.Caller.Uid, in.Caller.Gid = c.uid, c.uid
					var out fuse.CreateOut
					var st fuse.Status
					hb.do("CREATE", func() { st = hb.b.Create(nil, &in, "new", &out) })
					wantE(t, "CREATE", unix.Errno(st), c.fault.Errno)
					if _, _, inFlight := hb.drain(); inFlight != 0 {
						t.Fatalf("%d operations in flight", inFlight)
					}
					if fds := ptOpenFdsOf(filepath.Join(dir, "new")); len(fds) != 0 {
						t.Errorf("the failed CREATE left descriptors %v open on the new file", fds)
					}
					if nodes, handles, _ := hb.tables(); nodes != 1 || handles != 0 {
						t.Errorf("after the failed CREATE: %d nodes, %d handles (want 1, 0)", nodes, handles)
					}
				})
			}
		})
	}
}
