package fs

import (
	"math"
	"syscall"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/aio"
	"evfs/backing"
)

// Lookup: openat(parent, name, O_PATH|O_NOFOLLOW) → statx → register.
func (h *handlers) Lookup(r *request, name string, out *fuse.EntryOut) {
	parent := h.dirAndName(r, name)
	if parent == nil {
		return
	}
	h.lookupName(r, parent, name, out, func(*backing.Node) { r.reply(fuse.OK) })
}

// Forget drops kernel references; the last one closes the node's fd.
func (h *handlers) Forget(id, nlookup uint64) {
	h.closeFd(h.nodes.Forget(id, nlookup))
}

const statFlags = unix.AT_EMPTY_PATH | unix.AT_SYMLINK_NOFOLLOW

// GetAttr: statx on the handle's fd if one is given, else the node's.
func (h *handlers) GetAttr(r *request, in *fuse.GetAttrIn, out *fuse.AttrOut) {
	n := h.node(r, in.NodeId)
	if n == nil {
		return
	}
	fd := n.Fd
	if in.Flags()&fuse.FUSE_GETATTR_FH != 0 {
		if hd := h.handles.Get(in.Fh()); hd != nil {
			fd = hd.Fd
		}
	}
	h.statInto(r, n, fd, out)
}

// statInto: statx(fd, an open inode of node n) → AttrOut → reply.
func (h *handlers) statInto(r *request, n *backing.Node, fd int, out *fuse.AttrOut) {
	st := h.statFd(n, fd)
	h.then(r, st, func(int64) {
		backing.FillAttr(&out.Attr, &st.Stat)
		out.SetTimeout(h.opts.AttrTimeout)
		r.reply(fuse.OK)
	})
}

// SetAttr applies each requested change as one step, in the order the
// native calls would need: owner first (chown clears set-id bits), then
// mode, size, and times last (truncate updates mtime); then statx.
func (h *handlers) SetAttr(r *request, in *fuse.SetAttrIn, out *fuse.AttrOut) {
	n := h.node(r, in.NodeId)
	if n == nil || !h.writable(r) {
		return
	}
	var hd *backing.Handle
	if fh, ok := in.GetFh(); ok {
		if hd = h.handle(r, fh); hd == nil {
			return
		}
	}
	var steps []*aio.Op
	if uid, ok := in.GetUID(); ok {
		steps = append(steps, aio.Fchownat(n.Fd, "", uid, ^uint32(0), statFlags))
	}
	if gid, ok := in.GetGID(); ok {
		if len(steps) > 0 {
			steps[0].Gid = gid
		} else {
			steps = append(steps, aio.Fchownat(n.Fd, "", ^uint32(0), gid, statFlags))
		}
	}
	if mode, ok := in.GetMode(); ok {
		steps = append(steps, aio.Fchmodat(n.Fd, "", mode&07777, statFlags))
	}
	if size, ok := in.GetSize(); ok {
		switch {
		case hd != nil:
			steps = append(steps, aio.Ftruncate(hd.Fd, int64(size)))
		case n.Mode == unix.S_IFDIR:
			r.errno(unix.EISDIR)
			return
		case n.Mode != unix.S_IFREG:
			r.errno(unix.EINVAL)
			return
		default:
			steps = append(steps, aio.Truncate(backing.ProcPath(n.Fd), int64(size)))
		}
	}
	if times, ok := setattrTimes(in); ok {
		steps = append(steps, aio.Utimensat(n.Fd, "", times, statFlags))
	}
	fd := n.Fd
	if hd != nil {
		fd = hd.Fd
	}
	_, modeSet := in.GetMode()
	run := func() { h.sequence(r, steps, func() { h.statInto(r, n, fd, out) }) }
	if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 && !modeSet {
		// An unprivileged truncate (see killSuidgid).
		run = func() { h.sequence(r, steps, func() { h.killSuidgid(r, fd, func() { h.statInto(r, n, fd, out) }) }) }
	}
	if size, ok := in.GetSize(); ok {
		// A truncate rewrites the file from size on (ioorder.go).
		h.inOrder(r, n.ID, true, size, math.MaxUint64-size, run)
		return
	}
	run()
}

// setattrTimes turns SETATTR's time fields into utimensat's argument.
func setattrTimes(in *fuse.SetAttrIn) ([2]unix.Timespec, bool) {
	omit := unix.Timespec{Nsec: unix.UTIME_OMIT}
	now := unix.Timespec{Nsec: unix.UTIME_NOW}
	ts := [2]unix.Timespec{omit, omit}
	v := in.Valid
	if v&fuse.FATTR_ATIME != 0 {
		ts[0] = unix.Timespec{Sec: int64(in.Atime), Nsec: int64(in.Atimensec)}
		if v&fuse.FATTR_ATIME_NOW != 0 {
			ts[0] = now
		}
	}
	if v&fuse.FATTR_MTIME != 0 {
		ts[1] = unix.Timespec{Sec: int64(in.Mtime), Nsec: int64(in.Mtimensec)}
		if v&fuse.FATTR_MTIME_NOW != 0 {
			ts[1] = now
		}
	}
	return ts, v&(fuse.FATTR_ATIME|fuse.FATTR_MTIME) != 0
}

// sequence runs ops one after another, stopping at the first failure.
func (h *handlers) sequence(r *request, ops []*aio.Op, done func()) {
	if len(ops) == 0 {
		done()
		return
	}
	h.then(r, ops[0], func(int64) { h.sequence(r, ops[1:], done) })
}

// Access: faccessat2(node, "", mask, AT_EMPTY_PATH|AT_EACCESS).
func (h *handlers) Access(r *request, in *fuse.AccessIn) {
	n := h.node(r, in.NodeId)
	if n == nil {
		return
	}
	if in.Mask&unix.W_OK != 0 && h.opts.ReadOnly {
		r.errno(unix.EROFS)
		return
	}
	h.then(r, aio.Faccessat(n.Fd, "", in.Mask, unix.AT_EMPTY_PATH|unix.AT_EACCESS), func(int64) {
		r.reply(fuse.OK)
	})
}

// StatFs: fstatfs of the node's fd.
func (h *handlers) StatFs(r *request, out *fuse.StatfsOut) {
	n := h.node(r, r.hdr.NodeId)
	if n == nil {
		return
	}
	op := aio.Fstatfs(n.Fd)
	h.then(r, op, func(int64) {
		out.FromStatfsT((*syscall.Statfs_t)(unsafe.Pointer(&op.Statfs)))
		r.reply(fuse.OK)
	})
}

// Readlink: readlinkat(node, "") into a PATH_MAX buffer.
func (h *handlers) Readlink(r *request, target *[]byte) {
	n := h.node(r, r.hdr.NodeId)
	if n == nil {
		return
	}
	if n.Mode != unix.S_IFLNK {
		r.errno(unix.EINVAL)
		return
	}
	buf := make([]byte, unix.PathMax)
	h.then(r, aio.Readlinkat(n.Fd, "", buf), func(res int64) {
		*target = buf[:res]
		r.reply(fuse.OK)
	})
}
