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
// up on a disk file system. Then the loop is the bottleneck and the
// statx calls go to the pool's workers, which run them on the other
// cores while the loop reads the next requests (32 stat clients: 30.3 k
// ops/s offloaded against 27.1 k on the loop; docs/BENCHMARKS-history.md). On a
// memory root everything stays on the loop (markMemory).
func (h *handlers) statFd(n *backing.Node, fd int) *aio.Op {
	if h.onSpot(n) {
		return aio.StatxResident(fd, statFlags)
	}
	return aio.Statx(fd, "", statFlags)
}

// onSpot reports whether an op that reaches only n's in-core inode (a
// statx, an open by handle, an open of ".") is marked Resident now: n is
// resident, and requests are not queueing up on a disk file system
// (statFd). Loop-only.
func (h *handlers) onSpot(n *backing.Node) bool {
	return n != nil && h.resident(n) && (!h.queued || h.memoryRootOK())
}

// Memory roots: what the loop may do itself on tmpfs.
//
// On a memory file system (tmpfs, ramfs) on a machine with no swap, no op
// can wait for a device: file data, directories and inodes are pages
// already in memory. There every op of bounded work (aio's boundedWork:
// not truncation, fallocate, copy_file_range, lseek or locks; data up to
// aio.ResidentIOMax) is marked Resident and runs on the spot, in Submit,
// like the sync backend would run it — without the sync backend's stall
// on a slow op, which still goes to the workers. The handoff to a worker
// and back (two thread wakeups here) costs more than such an op itself.
//
// Only the backing root's file system is trusted this way. An op is
// marked when the request's node is on the root's device and the op
// reaches no inode by name (staysOnFS): a name could be a mount point of
// another file system inside the backing tree, whose calls may wait on a
// disk or a server — or on this very mount. Once a request has sent such
// an op (a plain openat or statx of a name), none of its later ops is
// marked (request.offRoot): their fds may be on the other side. Names
// are opened with RESOLVE_NO_XDEV on a resident parent (openName), so
// this happens only for mount points. The one op by name done on the
// spot is LOOKUP's first statx (handlers.statxKnown), which asks no
// other file system's server and marks a directory where it found a
// mount point, so that the next lookups there take the way above.
//
// One wait remains possible: a write takes the backing inode's lock, so
// a process writing the backing file directly, at the same time, holds
// the loop for as long as its own write takes (--resident-data=false
// avoids even that). Unlike the resident statx on a disk file system,
// marking goes on while requests queue up (h.queued): an op on memory
// costs less than its handoff even when a worker could run it on the
// other core (64 readers, same run: 30.8 k IOPS with the ops sent to the
// workers while queueing, 40.0 k all on the loop; 32 stat clients 28.1 k
// ops/s, and 39.0 k once their lookups stayed on the loop too, against
// passthrough_hp's 29.1 k).

// memoryFS reports whether a file system of this statfs type keeps all
// of its data in memory.
func memoryFS(fsType int64) bool {
	switch uint32(fsType) {
	case unix.TMPFS_MAGIC, unix.RAMFS_MAGIC:
		return true
	}
	return false
}

// swapOn reports whether the machine has swap space: tmpfs pages may
// then be on a disk. Reads kernel counters only (sysinfo).
func swapOn() bool {
	var si unix.Sysinfo_t
	return unix.Sysinfo(&si) != nil || si.Totalswap != 0
}

// staysOnFS reports whether op reaches only the inodes of its fds, or
// names in their directories that it creates, removes or renames (a
// mount point there answers EBUSY or EXDEV before any other file system
// is asked) — never an existing inode by name, except through
// /proc/self/fd, whose magic links lead to an fd's own inode.
func staysOnFS(op *aio.Op) bool {
	switch op.Kind {
	case aio.OpOpenat:
		return op.Resolve&unix.RESOLVE_NO_XDEV != 0 || op.Path == "." || backing.IsProcPath(op.Path)
	case aio.OpStatx, aio.OpFaccessat, aio.OpReadlinkat, aio.OpFchmodat, aio.OpFchownat, aio.OpUtimensat:
		return op.Path == ""
	case aio.OpGetxattr, aio.OpSetxattr, aio.OpListxattr, aio.OpRemovexattr, aio.OpTruncate:
		return backing.IsProcPath(op.Path)
	}
	return true
}

// markMemory marks op Resident when the backing root is a memory root
// and op works on it alone (see above); on any root it notes that a
// request may have left the root's file system (sameFS, pathOf).
// Loop-only; called for every op a request submits.
func (h *handlers) markMemory(r *request, op *aio.Op) {
	if !staysOnFS(op) {
		r.offRoot = true
		return
	}
	if op.Resident || r.offRoot || !h.memoryRootOK() {
		return
	}
	if n := h.nodes.Get(r.hdr.NodeId); n != nil && h.rootFS(n) {
		op.Resident = true
	}
}

// openName opens name in parent: on a resident parent with openat2
// RESOLVE_NO_XDEV, so that the new fd is known to be on the parent's file
// system; if that is refused (EXDEV: a mount point; ENOSYS: no openat2;
// EINVAL: flags openat2 refuses and openat ignores) with a plain openat,
// after which r is off the root (markMemory). k gets the fd or -errno.
func (h *handlers) openName(r *request, parent *backing.Node, name string, flags int, mode uint32, k func(res int64)) {
	plain := func() { h.submit(r, aio.Openat(parent.Fd, name, flags, mode), k) }
	if !h.resident(parent) {
		plain()
		return
	}
	h.submit(r, aio.Openat2(parent.Fd, name, flags, mode&07777, unix.RESOLVE_NO_XDEV), func(res int64) {
		switch res {
		case -int64(unix.EXDEV), -int64(unix.ENOSYS), -int64(unix.EINVAL):
			plain()
			return
		}
		k(res)
	})
}

// sameFS returns parent if r's fds are known to be on parent's file
// system, else nil (for statFd and register: nil means no on-the-spot
// statx). Loop-only.
func sameFS(r *request, parent *backing.Node) *backing.Node {
	if r.offRoot {
		return nil
	}
	return parent
}

// memoryRootOK reports whether ops on the root's file system are marked
// Resident now (markMemory): a memory root, and no swap. Loop-only.
func (h *handlers) memoryRootOK() bool { return h.opts.memoryRoot && !h.swapOn }
