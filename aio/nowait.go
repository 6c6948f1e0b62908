package aio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// nowait is the non-blocking first attempt. Some ops the kernel can do
// without ever waiting; those are done on the spot, in Submit, with no
// trip to a worker or the ring — the very attempt io_uring makes inline
// on the submitting thread before it punts an op to its io-wq threads.
// Each attempt either completes the op or gives up before doing
// anything, and the op then goes to the backend proper:
//
//   - reads, with preadv2(RWF_NOWAIT): a page-cache hit on a file system
//     with RWF_NOWAIT support (ext4, xfs, btrfs). A read that would wait
//     (data not cached, a lock held) fails with EAGAIN. Only whole reads
//     are taken; a short one may be a partial cache hit and is redone.
//     File systems without RWF_NOWAIT (tmpfs) answer EOPNOTSUPP at once;
//     their fds are remembered until closed, so the attempt costs one
//     syscall per open file there. (io_uring cannot read such files
//     inline either: it punts every read to io-wq, so the uring backend
//     sends them to its pool, which is cheaper here: docs/URING.md.)
//   - O_PATH opens, with openat2(RESOLVE_CACHED): the name must resolve
//     from the dentry cache alone, or the kernel answers EAGAIN before
//     doing anything; an O_PATH open calls no file system open method.
//     (io_uring's inline openat uses the same LOOKUP_CACHED mode.)
//   - any op the submitter vouches touches only memory (Op.Resident),
//     when its work is bounded (boundedWork); an open among them with
//     O_NONBLOCK, so that it never waits for another process
//     (resident). The fs package knows what io_uring cannot: the
//     backing file system's type. A statx of an open inode on a local
//     file system copies fields of the in-memory inode (io_uring always
//     punts STATX); the close of a spare O_PATH fd whose inode another
//     fd holds frees nothing; an open by handle of a held inode walks
//     no path; and on a memory file system with no swap (tmpfs, ramfs)
//     every op short of truncation works on pages already in memory.
//
// Owned by the loop goroutine, like the backend that embeds it.
type nowait struct {
	off         bool         // Config.NoNowait
	unsupported map[int]bool // fds whose file system refuses RWF_NOWAIT
	noOpenat2   bool         // the kernel has no openat2 (before 5.6)
	hits        uint64       // ops completed on the spot
}

// try attempts op without blocking; done reports whether res is its
// result. Fault-injected ops are never tried.
func (n *nowait) try(op *Op) (res int64, done bool) {
	if n.off || op.Delay != 0 || op.Fail != 0 {
		return 0, false
	}
	switch op.Kind {
	case OpRead:
		res, done = n.read(op)
	case OpOpenat:
		res, done = n.openCached(op)
	}
	if !done && op.Resident && boundedWork(op) {
		res, done = n.resident(op)
	}
	if done {
		n.hits++
	}
	return res, done
}

// read is the RWF_NOWAIT attempt at a plain read at an offset.
func (n *nowait) read(op *Op) (int64, bool) {
	if op.Off < 0 || len(op.Buf) == 0 || op.Direct || op.NoNowait || n.unsupported[op.Fd] {
		return 0, false
	}
	iov := unix.Iovec{Base: &op.Buf[0]}
	iov.SetLen(len(op.Buf))
	r, _, e := unix.Syscall6(unix.SYS_PREADV2, uintptr(op.Fd), uintptr(unsafe.Pointer(&iov)), 1,
		uintptr(op.Off), uintptr(op.Off>>32), unix.RWF_NOWAIT)
	switch {
	case e == unix.EOPNOTSUPP:
		if n.unsupported == nil {
			n.unsupported = make(map[int]bool)
		}
		n.unsupported[op.Fd] = true
		return 0, false
	case e != 0 || int(r) != len(op.Buf):
		return 0, false // would block, or short: the backend does it
	}
	return int64(r), true
}

// resolveCached is RESOLVE_CACHED from linux/openat2.h (5.12+; x/sys
// lacks the name).
const resolveCached = 0x20

// openCached is the dentry-cache-only attempt at an O_PATH open. Any
// answer but EAGAIN is the open's result: a cached negative dentry gives
// ENOENT as surely as the slow path would.
func (n *nowait) openCached(op *Op) (int64, bool) {
	const creates = unix.O_CREAT | unix.O_TRUNC | unix.O_TMPFILE
	if n.noOpenat2 || op.Flags&unix.O_PATH == 0 || op.Flags&creates != 0 {
		return 0, false
	}
	fd, err := unix.Openat2(op.Fd, op.Path, &unix.OpenHow{
		Flags: uint64(op.Flags) | unix.O_CLOEXEC, Resolve: op.Resolve | resolveCached})
	switch err {
	case unix.EAGAIN:
		return 0, false
	case unix.ENOSYS, unix.EINVAL: // no openat2, or no RESOLVE_CACHED (5.6–5.11)
		n.noOpenat2 = true
		return 0, false
	}
	return result(int64(fd), err), true
}

// resident runs an op the submitter vouches touches only memory. An open
// (not O_PATH) also calls the file system's open method and may wait for
// another process: for a lease it holds to be broken, or for the other
// end of a FIFO. So it is tried with O_NONBLOCK, as io_uring's inline
// openat does, and given up on EAGAIN (a lease) or ENXIO (a FIFO with no
// reader): the backend then opens with the caller's flags and waits.
// The new fd loses the O_NONBLOCK the caller did not ask for. O_PATH and
// O_DIRECTORY opens call no such method (or only a directory's), and
// need none of this.
func (n *nowait) resident(op *Op) (int64, bool) {
	opens := op.Kind == OpOpenat || op.Kind == OpOpenByHandleAt
	if !opens || op.Flags&(unix.O_PATH|unix.O_DIRECTORY|unix.O_NONBLOCK) != 0 {
		return result(do(op)), true
	}
	op.Flags |= unix.O_NONBLOCK
	fd, err := do(op)
	op.Flags &^= unix.O_NONBLOCK
	switch err {
	case nil:
	case unix.EAGAIN, unix.ENXIO:
		return 0, false
	default:
		return result(fd, err), true
	}
	// The status flags F_SETFL sets are the open's own, less O_NONBLOCK
	// (and O_ASYNC, which open(2) ignores but F_SETFL would honour).
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, int(op.Flags)&^(unix.O_NONBLOCK|unix.O_ASYNC)); err != nil {
		unix.Close(int(fd))
		return 0, false
	}
	return fd, true
}

// ResidentIOMax is the largest read or write run on the spot for a
// resident op: at memory speed 128 KiB is a few tens of microseconds,
// about what a handoff to a worker costs; a bigger transfer would hold
// the loop for longer than it saves.
const ResidentIOMax = 128 << 10

// boundedWork reports whether op, if it touches only memory, does an
// amount of work that does not grow with the file it acts on and waits
// for nobody: the condition for running a resident op on the spot.
func boundedWork(op *Op) bool {
	switch op.Kind {
	case OpFallocate, OpFtruncate, OpTruncate, OpCopyFileRange, OpLseek:
		return false // work grows with the file (pages to free, holes to walk)
	case OpFcntlLock, OpFlock:
		return false // may wait for another process's lock
	case OpOpenat, OpOpenByHandleAt:
		return op.Flags&unix.O_TRUNC == 0
	case OpRead, OpWrite, OpGetdents:
		return len(op.Buf) <= ResidentIOMax
	case OpReadv, OpWritev:
		n := 0
		for _, b := range op.Iov {
			n += len(b)
		}
		return n <= ResidentIOMax
	}
	return true
}

// result turns a syscall's (value, error) into an op result.
func result(v int64, err error) int64 {
	if err == nil {
		return v
	}
	if e, ok := err.(unix.Errno); ok {
		return -int64(e)
	}
	return -int64(unix.EIO)
}

// blocksOn reports whether op's fd is known to be unable to do I/O
// without blocking (its file system refused RWF_NOWAIT, or the submitter
// says it would).
func (n *nowait) blocksOn(op *Op) bool { return op.NoNowait || n.unsupported[op.Fd] }

// forget drops what is known of fd; call it when fd is closed (the number
// will be reused).
func (n *nowait) forget(op *Op) {
	if n.unsupported == nil {
		return
	}
	switch op.Kind {
	case OpClose:
		delete(n.unsupported, op.Fd)
	case OpMoveFd:
		delete(n.unsupported, op.Fd)
		delete(n.unsupported, op.Fd2)
	}
}
