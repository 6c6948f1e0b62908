package aio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Prep helpers fill an SQE from GetSQE for one opcode, field for field
// as liburing's io_uring_prep_* do; set UserData afterwards. Each one
// overwrites the whole SQE.
//
// Memory: buffers, paths (NUL-terminated, e.g. from unix.BytePtrFromString)
// and structs passed here are read or written by the kernel until the
// CQE arrives. The caller keeps them reachable until then. The helpers
// force their pointer arguments to the heap (see keep), where Go never
// moves memory, so a stack growth cannot leave the kernel a stale address.

// PrepNop prepares IORING_OP_NOP.
func (s *SQE) PrepNop() { *s = SQE{Opcode: IORING_OP_NOP} }

// PrepRead prepares read(2) of len(buf) bytes at off (pread; off of
// ^uint64(0) uses the file position).
func (s *SQE) PrepRead(fd int, buf []byte, off uint64) {
	*s = SQE{Opcode: IORING_OP_READ, Fd: int32(fd), Addr: bufAddr(buf), Len: uint32(len(buf)), Off: off}
}

// PrepWrite prepares write(2) of buf at off.
func (s *SQE) PrepWrite(fd int, buf []byte, off uint64) {
	*s = SQE{Opcode: IORING_OP_WRITE, Fd: int32(fd), Addr: bufAddr(buf), Len: uint32(len(buf)), Off: off}
}

// PrepReadv prepares preadv(2) into iov at off.
func (s *SQE) PrepReadv(fd int, iov []unix.Iovec, off uint64) {
	*s = SQE{Opcode: IORING_OP_READV, Fd: int32(fd), Addr: iovAddr(iov), Len: uint32(len(iov)), Off: off}
}

// PrepWritev prepares pwritev(2) of iov at off.
func (s *SQE) PrepWritev(fd int, iov []unix.Iovec, off uint64) {
	*s = SQE{Opcode: IORING_OP_WRITEV, Fd: int32(fd), Addr: iovAddr(iov), Len: uint32(len(iov)), Off: off}
}

// PrepFsync prepares fsync(2); flags IORING_FSYNC_DATASYNC makes it fdatasync.
func (s *SQE) PrepFsync(fd int, flags uint32) {
	*s = SQE{Opcode: IORING_OP_FSYNC, Fd: int32(fd), OpFlags: flags}
}

// PrepOpenat prepares openat(2). Add O_CLOEXEC yourself if wanted.
func (s *SQE) PrepOpenat(dfd int, path *byte, flags int, mode uint32) {
	*s = SQE{Opcode: IORING_OP_OPENAT, Fd: int32(dfd), Addr: ptrAddr(path), Len: mode, OpFlags: uint32(flags)}
}

// PrepOpenat2 prepares openat2(2) with how.
func (s *SQE) PrepOpenat2(dfd int, path *byte, how *unix.OpenHow) {
	keep(unsafe.Pointer(how))
	*s = SQE{Opcode: IORING_OP_OPENAT2, Fd: int32(dfd), Addr: ptrAddr(path),
		Len: uint32(unsafe.Sizeof(*how)), Off: uint64(uintptr(unsafe.Pointer(how)))}
}

// PrepClose prepares close(2).
func (s *SQE) PrepClose(fd int) { *s = SQE{Opcode: IORING_OP_CLOSE, Fd: int32(fd)} }

// PrepStatx prepares statx(2) into st.
func (s *SQE) PrepStatx(dfd int, path *byte, flags int, mask uint32, st *unix.Statx_t) {
	keep(unsafe.Pointer(st))
	*s = SQE{Opcode: IORING_OP_STATX, Fd: int32(dfd), Addr: ptrAddr(path), Len: mask,
		Off: uint64(uintptr(unsafe.Pointer(st))), OpFlags: uint32(flags)}
}

// PrepUnlinkat prepares unlinkat(2) (flags: AT_REMOVEDIR).
func (s *SQE) PrepUnlinkat(dfd int, path *byte, flags int) {
	*s = SQE{Opcode: IORING_OP_UNLINKAT, Fd: int32(dfd), Addr: ptrAddr(path), OpFlags: uint32(flags)}
}

// PrepRenameat prepares renameat2(2) (flags: RENAME_NOREPLACE, RENAME_EXCHANGE, ...).
func (s *SQE) PrepRenameat(oldDfd int, oldPath *byte, newDfd int, newPath *byte, flags uint32) {
	*s = SQE{Opcode: IORING_OP_RENAMEAT, Fd: int32(oldDfd), Addr: ptrAddr(oldPath),
		Len: uint32(int32(newDfd)), Off: ptrAddr(newPath), OpFlags: flags}
}

// PrepMkdirat prepares mkdirat(2).
func (s *SQE) PrepMkdirat(dfd int, path *byte, mode uint32) {
	*s = SQE{Opcode: IORING_OP_MKDIRAT, Fd: int32(dfd), Addr: ptrAddr(path), Len: mode}
}

// PrepSymlinkat prepares symlinkat(2): newDfd/linkPath → target.
func (s *SQE) PrepSymlinkat(target *byte, newDfd int, linkPath *byte) {
	*s = SQE{Opcode: IORING_OP_SYMLINKAT, Fd: int32(newDfd), Addr: ptrAddr(target), Off: ptrAddr(linkPath)}
}

// PrepLinkat prepares linkat(2) (flags: AT_SYMLINK_FOLLOW, AT_EMPTY_PATH).
func (s *SQE) PrepLinkat(oldDfd int, oldPath *byte, newDfd int, newPath *byte, flags int) {
	*s = SQE{Opcode: IORING_OP_LINKAT, Fd: int32(oldDfd), Addr: ptrAddr(oldPath),
		Len: uint32(int32(newDfd)), Off: ptrAddr(newPath), OpFlags: uint32(flags)}
}

// PrepFallocate prepares fallocate(2). The kernel takes mode in len and
// the length in addr.
func (s *SQE) PrepFallocate(fd int, mode uint32, off, length uint64) {
	*s = SQE{Opcode: IORING_OP_FALLOCATE, Fd: int32(fd), Len: mode, Off: off, Addr: length}
}

// PrepFtruncate prepares ftruncate(2) (IORING_OP_FTRUNCATE, kernel 6.9+).
func (s *SQE) PrepFtruncate(fd int, length int64) {
	*s = SQE{Opcode: IORING_OP_FTRUNCATE, Fd: int32(fd), Off: uint64(length)}
}

// PrepFgetxattr prepares fgetxattr(2): name in addr, value buffer in
// addr2, its size in len (0 asks for the size).
func (s *SQE) PrepFgetxattr(fd int, name *byte, value []byte) {
	*s = SQE{Opcode: IORING_OP_FGETXATTR, Fd: int32(fd), Addr: ptrAddr(name),
		Off: bufAddr(value), Len: uint32(len(value))}
}

// PrepFsetxattr prepares fsetxattr(2) (flags: XATTR_CREATE, XATTR_REPLACE).
func (s *SQE) PrepFsetxattr(fd int, name *byte, value []byte, flags int) {
	*s = SQE{Opcode: IORING_OP_FSETXATTR, Fd: int32(fd), Addr: ptrAddr(name),
		Off: bufAddr(value), Len: uint32(len(value)), OpFlags: uint32(flags)}
}

// PrepGetxattr prepares getxattr(2) on path (following symlinks): name
// in addr, value in addr2, path in addr3.
func (s *SQE) PrepGetxattr(path, name *byte, value []byte) {
	*s = SQE{Opcode: IORING_OP_GETXATTR, Addr: ptrAddr(name), Off: bufAddr(value),
		Len: uint32(len(value)), Addr3: ptrAddr(path)}
}

// PrepSetxattr prepares setxattr(2) on path (flags: XATTR_CREATE, XATTR_REPLACE).
func (s *SQE) PrepSetxattr(path, name *byte, value []byte, flags int) {
	*s = SQE{Opcode: IORING_OP_SETXATTR, Addr: ptrAddr(name), Off: bufAddr(value),
		Len: uint32(len(value)), Addr3: ptrAddr(path), OpFlags: uint32(flags)}
}

// PrepCancel prepares IORING_OP_ASYNC_CANCEL of the request submitted
// with user_data target (flags: IORING_ASYNC_CANCEL_*; 0 for one match).
func (s *SQE) PrepCancel(target uint64, flags uint32) {
	*s = SQE{Opcode: IORING_OP_ASYNC_CANCEL, Fd: -1, Addr: target, OpFlags: flags}
}

func bufAddr(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	keep(unsafe.Pointer(&b[0]))
	return uint64(uintptr(unsafe.Pointer(&b[0])))
}

func iovAddr(iov []unix.Iovec) uint64 {
	if len(iov) == 0 {
		return 0
	}
	keep(unsafe.Pointer(&iov[0]))
	return uint64(uintptr(unsafe.Pointer(&iov[0])))
}

func ptrAddr(p *byte) uint64 {
	keep(unsafe.Pointer(p))
	return uint64(uintptr(unsafe.Pointer(p)))
}

// keepSink makes keep's argument escape: escape analysis sees the store,
// so whatever a Prep helper's pointer arguments point at is heap
// allocated, and the heap does not move. The store never runs.
var keepSink struct {
	on bool
	p  unsafe.Pointer
}

func keep(p unsafe.Pointer) {
	if keepSink.on {
		keepSink.p = p
	}
}

// PrepURingCmd prepares IORING_OP_URING_CMD: command cmdOp of the file
// fd's driver, with addr and n as the driver defines them. The SQE must
// come from a ring set up with IORING_SETUP_SQE128; the driver's 80-byte
// command area (Cmd) is zeroed here, for the caller to fill.
func (s *SQE) PrepURingCmd(fd int, cmdOp uint32, addr unsafe.Pointer, n uint32) {
	*s = SQE{Opcode: IORING_OP_URING_CMD, Fd: int32(fd), Off: uint64(cmdOp), Addr: uint64(uintptr(addr)), Len: n}
	*s.Cmd() = [80]byte{}
}

// Cmd is the command area of a 128-byte SQE (sqe->cmd: from byte 48 to
// the end). Only for SQEs of an IORING_SETUP_SQE128 ring.
func (s *SQE) Cmd() *[80]byte { return (*[80]byte)(unsafe.Add(unsafe.Pointer(s), 48)) }
