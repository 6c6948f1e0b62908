package fs

import (
	"log/slog"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/loop"
)

// Bridge implements go-fuse's RawFileSystem. Each method runs on one of
// go-fuse's reader goroutines: it posts the request to the loop as an
// event, parks until the loop's handler replies, and returns. Methods
// return only after their operation completed, because go-fuse reuses
// the request's buffers as soon as a method returns.
type Bridge struct {
	fuse.RawFileSystem // ENOSYS for the ops evfs does not serve (ioctl, …)

	loop *loop.Loop
	h    *handlers
	log  *slog.Logger
	dbg  bool
}

// newBridge builds the handlers (rooted at rootFd) and the bridge in
// front of them, for loop l.
func newBridge(l *loop.Loop, rootFd int, root *unix.Statx_t, opts Options) *Bridge {
	h := newHandlers(l, rootFd, root, opts)
	return &Bridge{RawFileSystem: fuse.NewDefaultRawFileSystem(), loop: l, h: h, log: opts.Logger, dbg: opts.Debug}
}

// call posts fn as the loop event for r and waits for its reply. If the
// kernel interrupts the request, the loop is told so (and cancels the
// op in flight), but the method still waits for the reply: the buffers
// stay in use until the operation is finished (invariant 5).
func (b *Bridge) call(cancel <-chan struct{}, r *request, fn func(*request)) fuse.Status {
	if b.dbg {
		b.log.Debug("rx", "op", r.op.String(), "node", r.hdr.NodeId, "unique", r.hdr.Unique)
	}
	b.loop.Post(opNames[r.op], func() { fn(r) })
	select {
	case <-r.done:
	case <-cancel:
		b.loop.Post("INTERRUPT", func() { b.h.interrupt(r) })
		<-r.done
		// The interrupt event may still hold r: do not recycle it.
		st := r.status
		b.debugReply(r, st)
		return st
	}
	st := r.status
	b.debugReply(r, st)
	requestPool.Put(r)
	return st
}

func (b *Bridge) debugReply(r *request, st fuse.Status) {
	if b.dbg {
		b.log.Debug("tx", "op", r.op.String(), "unique", r.hdr.Unique, "status", st.String(), "took", loop.Mono()-r.start)
	}
}

// req starts a request for op o.
func (b *Bridge) req(o op, hdr *fuse.InHeader) *request {
	return newRequest(o, hdr, &b.h.stats)
}

// post runs fn on the loop without waiting: for requests with no reply.
func (b *Bridge) post(name string, fn func()) { b.loop.Post(name, fn) }

func (b *Bridge) String() string { return "evfs" }

func (b *Bridge) SetDebug(bool) {}

func (b *Bridge) Lookup(c <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	return b.call(c, b.req(opLookup, h), func(r *request) { b.h.Lookup(r, name, out) })
}

func (b *Bridge) Forget(nodeid, nlookup uint64) {
	b.post("FORGET", func() { b.h.Forget(nodeid, nlookup) })
}

func (b *Bridge) GetAttr(c <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	return b.call(c, b.req(opGetAttr, &in.InHeader), func(r *request) { b.h.GetAttr(r, in, out) })
}

func (b *Bridge) SetAttr(c <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	return b.call(c, b.req(opSetAttr, &in.InHeader), func(r *request) { b.h.SetAttr(r, in, out) })
}

func (b *Bridge) Access(c <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	return b.call(c, b.req(opAccess, &in.InHeader), func(r *request) { b.h.Access(r, in) })
}

func (b *Bridge) Mknod(c <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	return b.call(c, b.req(opMknod, &in.InHeader), func(r *request) { b.h.Mknod(r, in, name, out) })
}

func (b *Bridge) Mkdir(c <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	return b.call(c, b.req(opMkdir, &in.InHeader), func(r *request) { b.h.Mkdir(r, in, name, out) })
}

func (b *Bridge) Unlink(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return b.call(c, b.req(opUnlink, h), func(r *request) { b.h.Unlink(r, name) })
}

func (b *Bridge) Rmdir(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return b.call(c, b.req(opRmdir, h), func(r *request) { b.h.Rmdir(r, name) })
}

func (b *Bridge) Rename(c <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	return b.call(c, b.req(opRename, &in.InHeader), func(r *request) { b.h.Rename(r, in, oldName, newName) })
}

func (b *Bridge) Link(c <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	return b.call(c, b.req(opLink, &in.InHeader), func(r *request) { b.h.Link(r, in, name, out) })
}

func (b *Bridge) Symlink(c <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	return b.call(c, b.req(opSymlink, h), func(r *request) { b.h.Symlink(r, target, name, out) })
}

func (b *Bridge) Readlink(c <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	var target []byte
	st := b.call(c, b.req(opReadlink, h), func(r *request) { b.h.Readlink(r, &target) })
	return target, st
}

func (b *Bridge) GetXAttr(c <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	var n uint32
	st := b.call(c, b.req(opGetXAttr, h), func(r *request) { b.h.GetXAttr(r, attr, dest, &n) })
	return n, st
}

func (b *Bridge) ListXAttr(c <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	var n uint32
	st := b.call(c, b.req(opListXAttr, h), func(r *request) { b.h.ListXAttr(r, dest, &n) })
	return n, st
}

func (b *Bridge) SetXAttr(c <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	return b.call(c, b.req(opSetXAttr, &in.InHeader), func(r *request) { b.h.SetXAttr(r, in, attr, data) })
}

func (b *Bridge) RemoveXAttr(c <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	return b.call(c, b.req(opRemoveXAttr, h), func(r *request) { b.h.RemoveXAttr(r, attr) })
}

func (b *Bridge) Create(c <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	return b.call(c, b.req(opCreate, &in.InHeader), func(r *request) { b.h.Create(r, in, name, out) })
}

func (b *Bridge) Open(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return b.call(c, b.req(opOpen, &in.InHeader), func(r *request) { b.h.Open(r, in, out) })
}

func (b *Bridge) Read(c <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	var n int
	st := b.call(c, b.req(opRead, &in.InHeader), func(r *request) { b.h.Read(r, in, buf, &n) })
	if !st.Ok() {
		return nil, st
	}
	return fuse.ReadResultData(buf[:n]), st
}

func (b *Bridge) Lseek(c <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	return b.call(c, b.req(opLseek, &in.InHeader), func(r *request) { b.h.Lseek(r, in, out) })
}

func (b *Bridge) GetLk(c <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	return b.call(c, b.req(opGetLk, &in.InHeader), func(r *request) { b.h.GetLk(r, in, out) })
}

func (b *Bridge) SetLk(c <-chan struct{}, in *fuse.LkIn) fuse.Status {
	return b.call(c, b.req(opSetLk, &in.InHeader), func(r *request) { b.h.SetLk(r, in, false) })
}

func (b *Bridge) SetLkw(c <-chan struct{}, in *fuse.LkIn) fuse.Status {
	return b.call(c, b.req(opSetLkw, &in.InHeader), func(r *request) { b.h.SetLk(r, in, true) })
}

func (b *Bridge) Release(c <-chan struct{}, in *fuse.ReleaseIn) {
	b.call(c, b.req(opRelease, &in.InHeader), func(r *request) { b.h.Release(r, in) })
}

func (b *Bridge) Write(c <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	return b.Writev(c, in, [][]byte{data})
}

func (b *Bridge) Writev(c <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	var n uint32
	st := b.call(c, b.req(opWrite, &in.InHeader), func(r *request) { b.h.Write(r, in, data, &n) })
	return n, st
}

func (b *Bridge) CopyFileRange(c <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	var n uint32
	st := b.call(c, b.req(opCopyFileRange, &in.InHeader), func(r *request) { b.h.CopyFileRange(r, in, &n) })
	return n, st
}

func (b *Bridge) Flush(c <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	return b.call(c, b.req(opFlush, &in.InHeader), func(r *request) { b.h.Flush(r, in) })
}

func (b *Bridge) Fsync(c <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return b.call(c, b.req(opFsync, &in.InHeader), func(r *request) { b.h.Fsync(r, in) })
}

func (b *Bridge) Fallocate(c <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	return b.call(c, b.req(opFallocate, &in.InHeader), func(r *request) { b.h.Fallocate(r, in) })
}

func (b *Bridge) OpenDir(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return b.call(c, b.req(opOpenDir, &in.InHeader), func(r *request) { b.h.OpenDir(r, in, out) })
}

func (b *Bridge) ReadDir(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return b.call(c, b.req(opReadDir, &in.InHeader), func(r *request) { b.h.ReadDir(r, in, out, false) })
}

func (b *Bridge) ReadDirPlus(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return b.call(c, b.req(opReadDirPlus, &in.InHeader), func(r *request) { b.h.ReadDir(r, in, out, true) })
}

func (b *Bridge) ReleaseDir(in *fuse.ReleaseIn) {
	b.call(nil, b.req(opReleaseDir, &in.InHeader), func(r *request) { b.h.Release(r, in) })
}

func (b *Bridge) FsyncDir(c <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return b.call(c, b.req(opFsyncDir, &in.InHeader), func(r *request) { b.h.Fsync(r, in) })
}

func (b *Bridge) StatFs(c <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	return b.call(c, b.req(opStatFs, h), func(r *request) { b.h.StatFs(r, out) })
}

// OnUnmount runs after the last request: close every fd the tables hold.
func (b *Bridge) OnUnmount() {
	done := make(chan struct{})
	b.post("UNMOUNT", func() { b.h.closeAll(); close(done) })
	<-done
}

var _ fuse.RawFileSystem = (*Bridge)(nil)
