package aio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// nowait is the non-blocking first attempt at a read. A read the kernel
// can serve without waiting — a page-cache hit on a file system with
// RWF_NOWAIT support (ext4, xfs, btrfs) — is done on the spot with
// preadv2(RWF_NOWAIT). That is the very attempt io_uring makes inline on
// the submitting thread, without the ring round trip, and it cannot block:
// a read that would (data not cached, a lock held) fails with EAGAIN and
// goes to the backend proper. Only whole reads are taken; a short one may
// be a partial cache hit and is redone by the backend.
//
// File systems without RWF_NOWAIT (tmpfs) answer EOPNOTSUPP before doing
// anything; their fds are remembered until closed, so the attempt costs
// one syscall per open file there. io_uring cannot read such files inline
// either: it punts every read to an io-wq thread, so the uring backend
// sends them to its pool, which is cheaper here (docs/URING.md).
//
// Owned by the loop goroutine, like the backend that embeds it.
type nowait struct {
	off         bool         // Config.NoNowait
	unsupported map[int]bool // fds whose file system refuses RWF_NOWAIT
	hits        uint64
}

// try attempts op without blocking; done reports whether res is its
// result. Only plain reads at an offset are tried; fault-injected ops
// never are.
func (n *nowait) try(op *Op) (res int64, done bool) {
	if n.off || op.Kind != OpRead || op.Off < 0 || len(op.Buf) == 0 || op.Delay != 0 || op.Fail != 0 || n.unsupported[op.Fd] {
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
	n.hits++
	return int64(r), true
}

// blocksOn reports whether reads of fd are known to be unable to go
// without blocking (the file system refused RWF_NOWAIT).
func (n *nowait) blocksOn(fd int) bool { return n.unsupported[fd] }

// forget drops what is known of fd; call it when fd is closed (the number
// will be reused).
func (n *nowait) forget(op *Op) {
	if op.Kind == OpClose && n.unsupported != nil {
		delete(n.unsupported, op.Fd)
	}
}
