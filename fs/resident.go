package fs

import (
	"golang.org/x/sys/unix"

	"evfs/aio"
	"evfs/backing"
)

// Resident inodes: what the loop may stat without a trip to a worker.
//
// Every GETATTR, and every LOOKUP at entry timeout 0, ends in a statx of
// an fd the node table holds. On a local file system that statx copies
// fields of the in-memory inode and cannot wait for I/O, so the backends
// run it on the spot (aio.Op.Resident, aio/nowait.go) instead of handing
// it to a pool worker and back: on this kind of machine each handoff
// costs two thread wakeups, more than the statx itself. On a network or
// FUSE file system getattr may ask a server, so there it stays a backend
// op like any other.
//
// Which file system an fd is on is known without a syscall: a node is on
// the backing root's file system when its device number is the root's,
// and a name opened with RESOLVE_NO_XDEV is on its parent's (a mount
// point inside the backing tree answers EXDEV and takes the general
// path). The root's type is read once at mount (NewMount).

// residentFS reports whether getattr on an open inode of a file system
// of this statfs type reads only memory: the local disk and memory file
// systems, whose inodes stay in core while open.
func residentFS(fsType int64) bool {
	switch uint32(fsType) {
	case unix.TMPFS_MAGIC, unix.RAMFS_MAGIC, unix.EXT4_SUPER_MAGIC, // ext2/3/4 share the magic
		unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.F2FS_SUPER_MAGIC:
		return true
	}
	return false
}

// noNowaitFS reports whether a file system of this statfs type refuses
// RWF_NOWAIT (it has no FMODE_NOWAIT; measured: preadv2 and pwritev2 with
// RWF_NOWAIT answer EOPNOTSUPP on tmpfs). Its reads and writes are then
// neither tried on the spot nor sent to io_uring, which would hand each
// to an io-wq thread: the pool serves them (aio.Op.NoNowait). aio learns
// the same per fd from a refused read; this also covers writes and
// O_DIRECT fds, which are never tried.
func noNowaitFS(fsType int64) bool { return uint32(fsType) == unix.TMPFS_MAGIC }

// rootFS reports whether n's inode is on the backing root's file system.
// Loop-only.
func (h *handlers) rootFS(n *backing.Node) bool { return n.Key.Dev == h.rootDev }

// addHandle registers fd, opened with the kernel's flags for node n,
// with what its reads and writes may try on the spot. Loop-only.
func (h *handlers) addHandle(fd int, n *backing.Node, flags uint32) *backing.Handle {
	hd := h.handles.Add(fd, n.ID, false)
	hd.DelayReads = n.TestDelayReads
	hd.Direct = flags&unix.O_DIRECT != 0
	hd.NoNowait = h.opts.rootNoNowait && h.rootFS(n)
	return hd
}

// ioOp marks a read or write of handle hd with its handle's hints.
func ioOp(op *aio.Op, hd *backing.Handle) *aio.Op {
	op.Direct, op.NoNowait = hd.Direct, hd.NoNowait
	return op
}

// resident reports whether n's inode is on the backing root's file
// system and that file system is resident. Loop-only.
func (h *handlers) resident(n *backing.Node) bool {
	return h.opts.residentRoot && h.rootFS(n)
}

// statFd is the statx of fd (an open inode on the same file system as
// n): run on the spot when n is resident, unless requests are queueing
// up. Then the loop is the bottleneck and the statx calls go to the
// pool's workers, which run them on the other cores while the loop reads
// the next requests (32 stat clients: 30.3 k ops/s offloaded against
// 27.1 k on the loop; docs/BENCHMARKS.md).
func (h *handlers) statFd(n *backing.Node, fd int) *aio.Op {
	if n != nil && h.resident(n) && !h.queued {
		return aio.StatxResident(fd, statFlags)
	}
	return aio.Statx(fd, "", statFlags)
}
