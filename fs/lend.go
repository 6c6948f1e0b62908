package fs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/aio"
	"evfs/backing"
)

// One fd per open file.
//
// A node holds an O_PATH fd of its inode for as long as the kernel knows
// it, and an open file needs an fd of the mode it was opened with. Two
// fds per open file would cap a mount at ~10 000 open files under this
// machine's RLIMIT_NOFILE of 20 000 (not raisable without
// CAP_SYS_RESOURCE). Any fd of the inode serves the node's ops — statx,
// fchownat and friends with AT_EMPTY_PATH, /proc/self/fd reopens, file
// handles — so while a regular file is open its node borrows the first
// handle's fd and closes its own (backing.Nodes.Lend). When that handle
// is released the node gets an O_PATH fd again (giveBack) before the
// handle's fd is closed.
//
// An fd a node lends is named by ops the handle's owner did not start: a
// GETATTR of the node may be in flight when its lender is released. So
// the fds that change hands are closed after a grace period
// (loop.AfterInFlight), once every op submitted before has completed:
// a number closed earlier could be reused by the next open while such an
// op still waits in a backend, which would then act on another file.

// lend makes n borrow hd's fd (regular files only: a directory's handle
// fd has a read position of its own, and other files are not opened
// through evfs). Loop-only.
func (h *handlers) lend(n *backing.Node, hd *backing.Handle) {
	if n.Mode != unix.S_IFREG {
		return
	}
	own := h.nodes.Lend(n, hd.Fd, hd.ID)
	if own < 0 {
		return
	}
	hd.Lent = true
	// The inode stays open through hd's fd, or through the O_PATH fd
	// giveBack opens before that one is closed: this close only drops
	// a reference, on the spot.
	h.loop.AfterInFlight(func() { h.loop.Submit(aio.CloseSpare(own), func(int64) {}) })
}

// giveBack is Release for a handle whose fd its node may borrow: the
// node gets an O_PATH fd of its own again, then closeFd runs after a
// grace period. If no O_PATH fd can be opened (EMFILE), the node keeps
// the handle's fd as its own and it is not closed here: an open file
// kept open until FORGET is better than a node with no fd.
func (h *handlers) giveBack(r *request, hd *backing.Handle, closeFd func()) {
	n := h.nodes.Get(hd.NodeID)
	if n == nil || n.Lender() != hd.ID {
		// Forgotten already (or never lent to this node): only the
		// grace period is left to wait for.
		h.loop.AfterInFlight(closeFd)
		return
	}
	h.reopen(r, n, unix.O_PATH, func(res int64) {
		if res < 0 {
			h.log.Warn("no O_PATH fd for a released file's node; keeping the file open",
				"node", n.ID, "errno", unix.Errno(-res).Error())
			h.nodes.Return(n, hd.Fd)
			r.reply(fuse.OK)
			return
		}
		h.nodes.Return(n, int(res))
		h.loop.AfterInFlight(closeFd)
	})
}
