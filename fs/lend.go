package fs

import (
	"math"

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
// handles — so once many files are open (a quarter of the limit) or fds
// run short (three quarters), a regular file's first handle shares its
// node's fd: the handle's open file is moved onto the node's fd number
// (aio.MoveFd: dup3, then close of the new number), replacing the node's
// O_PATH file, and the handle uses that number too. At the handle's
// release an O_PATH file of the inode is moved back onto the number,
// which closes the handle's file.
//
// Sharing waits for those thresholds because it costs: the release
// reopens the O_PATH file (by handle: two syscalls) and moves it back,
// the open moves the handle's file (tmpfs, QD1 open+close: loop busy
// time per cycle 60.8 → 72.0 µs, p50 35 → 43 µs). Below them a second
// fd costs nothing. The count of open files, not of all fds, is the
// first trigger: node fds of files not open are reclaimed by eviction
// (evict.go), and a mount that merely knows 10 000 inodes (evfs bench's
// data set) should not pay on every open.
//
// The node's number never changes. Chains keep fd numbers across steps
// (SETATTR's steps are built up front, its final statx uses the fd it
// started with), and ops wait in backends holding only a number: had the
// node switched numbers and closed its old one, the next open could reuse
// it under them. With the number fixed, an op that names it before or
// after a move reaches the same inode either way.

// sharePolicy says when an opened file shares its node's fd: once
// `handles` files are open, or the mount holds `fds` backing fds.
type sharePolicy struct{ handles, fds int }

// sharePolicyFor derives the policy from Options.ShareFdsAbove and the
// fd limit: by default a quarter of the limit in open files or three
// quarters in fds, so that 10 000 open files take ~15 000 of 20 000.
func sharePolicyFor(above int) sharePolicy {
	switch {
	case above > 0:
		return sharePolicy{handles: math.MaxInt, fds: above}
	case above < 0:
		return sharePolicy{handles: math.MaxInt, fds: math.MaxInt}
	}
	n := fdLimit()
	return sharePolicy{handles: n / 4, fds: n / 4 * 3}
}

// share reports whether a file opened now shares its node's fd.
func (h *handlers) share() bool {
	open := h.handles.Len()
	return open >= h.sharing.handles || h.nodes.Fds()+open >= h.sharing.fds
}

// lend moves hd's open file onto n's fd number if the policy says so and
// n can take it (regular files only: a directory handle's fd has a read
// position of its own), then runs k. Loop-only.
func (h *handlers) lend(r *request, n *backing.Node, hd *backing.Handle, k func()) {
	if n.Mode != unix.S_IFREG || !h.share() || !h.nodes.CanLend(n) {
		k()
		return
	}
	h.nodes.Lend(n, hd.ID) // now, so a concurrent OPEN does not lend too
	op := aio.MoveFd(hd.Fd, n.Fd)
	// The move closes the node's O_PATH file, whose inode hd's file
	// holds, and hd's number, whose file n.Fd then holds: both only drop
	// references, so on a resident file system it runs on the spot.
	op.Resident = h.onSpot(n)
	h.submit(r, op, func(res int64) {
		if res < 0 {
			// Nothing moved: the handle keeps a number of its own.
			h.nodes.Return(n)
			k()
			return
		}
		hd.Fd = n.Fd
		k()
	})
}

// lentTo returns the node whose fd holds hd's open file, or nil: hd
// keeps a number of its own, or its node was forgotten meanwhile (the
// number is then the handle's alone).
func (h *handlers) lentTo(hd *backing.Handle) *backing.Node {
	if n := h.nodes.Get(hd.NodeID); n != nil && n.Lender() == hd.ID {
		return n
	}
	return nil
}

// giveBack is Release for a handle whose open file n's fd holds: an
// O_PATH file of the inode is moved back onto the number, which closes
// the handle's file. If no O_PATH file can be opened (EMFILE), the node
// keeps the handle's file as its own until FORGET: better an open file
// held longer than a node without its inode.
func (h *handlers) giveBack(r *request, n *backing.Node) {
	keep := func(res int64) {
		h.log.Warn("no O_PATH fd for a released file's node; its file stays open until the node is forgotten",
			"node", n.ID, "errno", unix.Errno(-res).Error())
		h.nodes.Return(n)
		r.reply(fuse.OK)
	}
	h.reopen(r, n, unix.O_PATH, func(res int64) {
		if res < 0 {
			keep(res)
			return
		}
		path := int(res)
		// Like the close it replaces, this may run the file system's
		// release of the handle's file: on the spot only on a memory
		// root (markMemory).
		h.submit(r, aio.MoveFd(path, n.Fd), func(res int64) {
			if res < 0 {
				h.closeFd(path)
				keep(res)
				return
			}
			h.nodes.Return(n)
			r.reply(fuse.OK)
		})
	})
}
