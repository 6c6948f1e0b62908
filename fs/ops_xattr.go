package fs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/aio"
	"evfs/backing"
)

// Extended attributes go through the node's /proc/self/fd path, because
// the f*xattr calls refuse O_PATH fds. A symlink node has no race-free
// path that would not follow it, so symlinks report no attributes and
// refuse changes (as Linux does for user.* on symlinks).

// xattrNode resolves the node; for a symlink it answers with ifLink.
func (h *handlers) xattrNode(r *request, ifLink unix.Errno) *backing.Node {
	n := h.node(r, r.hdr.NodeId)
	if n != nil && n.Mode == unix.S_IFLNK {
		r.errno(ifLink)
		return nil
	}
	return n
}

// GetXAttr: getxattr(/proc/self/fd/N, name, dest).
func (h *handlers) GetXAttr(r *request, attr string, dest []byte, n *uint32) {
	nd := h.xattrNode(r, unix.ENODATA)
	if nd == nil {
		return
	}
	h.then(r, aio.Getxattr(backing.ProcPath(nd.Fd), attr, dest), func(res int64) {
		*n = uint32(res)
		r.reply(fuse.OK)
	})
}

// ListXAttr: listxattr(/proc/self/fd/N, dest).
func (h *handlers) ListXAttr(r *request, dest []byte, n *uint32) {
	nd := h.node(r, r.hdr.NodeId)
	if nd == nil {
		return
	}
	if nd.Mode == unix.S_IFLNK {
		*n = 0
		r.reply(fuse.OK)
		return
	}
	h.then(r, aio.Listxattr(backing.ProcPath(nd.Fd), dest), func(res int64) {
		*n = uint32(res)
		r.reply(fuse.OK)
	})
}

// SetXAttr: setxattr(/proc/self/fd/N, name, data, flags).
func (h *handlers) SetXAttr(r *request, in *fuse.SetXAttrIn, attr string, data []byte) {
	nd := h.xattrNode(r, unix.EPERM)
	if nd == nil || !h.writable(r) {
		return
	}
	h.then(r, aio.Setxattr(backing.ProcPath(nd.Fd), attr, data, int(in.Flags)), func(int64) {
		r.reply(fuse.OK)
	})
}

// RemoveXAttr: removexattr(/proc/self/fd/N, name).
func (h *handlers) RemoveXAttr(r *request, attr string) {
	nd := h.xattrNode(r, unix.EPERM)
	if nd == nil || !h.writable(r) {
		return
	}
	h.then(r, aio.Removexattr(backing.ProcPath(nd.Fd), attr), func(int64) {
		r.reply(fuse.OK)
	})
}
