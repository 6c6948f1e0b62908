package fs

import (
	"golang.org/x/sys/unix"

	"evfs/aio"
	"evfs/backing"
)

// Reopening a node: OPEN turns the node's O_PATH fd into a file the
// kernel's flags ask for.
//
// The general way is openat of /proc/self/fd/N. It always leaves the
// loop: a magic link never resolves from the dentry cache alone (no
// RESOLVE_CACHED), so the open goes to a worker, and on a disk file
// system that handoff costs more than the open (ext4, open+close: 86 µs
// on evfs-uring against 38 µs on evfs-sync, which opens on the loop).
//
// On the backing root's mount, when it is resident (resident.go), the
// open goes by file handle instead: name_to_handle_at of the O_PATH fd
// (once per node: the node keeps the handle), then open_by_handle_at
// through a directory fd on the same mount. No
// path is walked; the handle leads to the in-core inode the node's fd
// holds, and the open method runs as in io_uring's inline openat —
// with O_NONBLOCK (aio's nowait.resident), so that a lease another
// process holds answers EAGAIN, and the open then goes to the backend
// and waits there. The op is marked Resident: backends run it on the
// spot. A node on another mount (a bind mount of the same file system
// inside the tree, which may be read-only) answers EXDEV, and an inode
// the file system cannot find by handle ESTALE: both are reopened the
// general way.

// openHandleMount prepares opens by handle for the backing root open at
// rootFd: a directory fd (not O_PATH: open_by_handle_at refuses those)
// on the root's mount, and that mount's id. ok is false when the file
// system has no file handles or the process may not open by handle
// (CAP_DAC_READ_SEARCH). Runs in NewMount, before the loop exists.
func openHandleMount(rootFd int) (fd, mountID int, ok bool) {
	h, mnt, err := unix.NameToHandleAt(rootFd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		return -1, 0, false
	}
	fd, err = unix.Open(backing.ProcPath(rootFd), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, 0, false
	}
	probe, err := unix.OpenByHandleAt(fd, h, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		return -1, 0, false
	}
	unix.Close(probe)
	return fd, mnt, true
}

// openNode opens node n's inode with flags for request r; k gets the new
// fd (errors answer r).
func (h *handlers) openNode(r *request, n *backing.Node, flags int, k func(fd int64)) {
	h.reopen(r, n, flags, func(res int64) {
		if res < 0 {
			r.fail(res)
			return
		}
		k(res)
	})
}

// reopen is openNode for callers that handle a failure themselves: k gets
// the new fd or -errno.
func (h *handlers) reopen(r *request, n *backing.Node, flags int, k func(res int64)) {
	viaProc := func() { h.submit(r, aio.Openat(unix.AT_FDCWD, backing.ProcPath(n.Fd), flags, 0), k) }
	if !h.opts.byHandle || !h.resident(n) || r.offRoot {
		viaProc()
		return
	}
	op := aio.OpenByHandleAt(n.Fd, h.opts.handleFd, h.opts.handleMount, flags, n.FileHandle)
	op.Resident = h.onSpot(n)
	h.submit(r, op, func(res int64) {
		switch res {
		case -int64(unix.EXDEV), -int64(unix.ESTALE), -int64(unix.EOPNOTSUPP):
			viaProc()
			return
		}
		if res >= 0 {
			n.FileHandle = op.FileHandle // the inode's next open skips name_to_handle_at
		}
		k(res)
	})
}
