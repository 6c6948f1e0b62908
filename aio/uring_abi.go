package aio

import "unsafe"

// The io_uring kernel ABI (include/uapi/linux/io_uring.h). x/sys has the
// syscall numbers only, so the structs and constants are declared here,
// with the kernel's names in Go case.

// SQE is struct io_uring_sqe (64 bytes). Unions are flattened to the
// field name of their first use; the Prep helpers document the mapping.
type SQE struct {
	Opcode      uint8
	Flags       uint8 // IOSQE_*
	Ioprio      uint16
	Fd          int32
	Off         uint64 // off / addr2
	Addr        uint64 // addr / splice_off_in
	Len         uint32
	OpFlags     uint32 // rw_flags, fsync_flags, open_flags, statx_flags, cancel_flags, rename_flags, ...
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	FileIndex   uint32 // splice_fd_in / file_index
	Addr3       uint64
	_           uint64
}

// CQE is struct io_uring_cqe (16 bytes; rings are never set up with CQE32).
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// uringParams is struct io_uring_params (120 bytes).
type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

// Compile-time size checks against the kernel layout.
var (
	_ [64 - unsafe.Sizeof(SQE{})]byte
	_ [unsafe.Sizeof(SQE{}) - 64]byte
	_ [16 - unsafe.Sizeof(CQE{})]byte
	_ [unsafe.Sizeof(CQE{}) - 16]byte
	_ [120 - unsafe.Sizeof(uringParams{})]byte
	_ [unsafe.Sizeof(uringParams{}) - 120]byte
)

// io_uring_setup flags.
const (
	IORING_SETUP_IOPOLL        = 1 << 0
	IORING_SETUP_SQPOLL        = 1 << 1
	IORING_SETUP_CQSIZE        = 1 << 3
	IORING_SETUP_CLAMP         = 1 << 4
	IORING_SETUP_SUBMIT_ALL    = 1 << 7
	IORING_SETUP_SQE128        = 1 << 10
	IORING_SETUP_COOP_TASKRUN  = 1 << 8
	IORING_SETUP_SINGLE_ISSUER = 1 << 12
	IORING_SETUP_DEFER_TASKRUN = 1 << 13
)

// Opcodes (enum io_uring_op).
const (
	IORING_OP_NOP          = 0
	IORING_OP_READV        = 1
	IORING_OP_WRITEV       = 2
	IORING_OP_FSYNC        = 3
	IORING_OP_ASYNC_CANCEL = 14
	IORING_OP_FALLOCATE    = 17
	IORING_OP_OPENAT       = 18
	IORING_OP_CLOSE        = 19
	IORING_OP_STATX        = 21
	IORING_OP_READ         = 22
	IORING_OP_WRITE        = 23
	IORING_OP_OPENAT2      = 28
	IORING_OP_RENAMEAT     = 35
	IORING_OP_UNLINKAT     = 36
	IORING_OP_MKDIRAT      = 37
	IORING_OP_SYMLINKAT    = 38
	IORING_OP_LINKAT       = 39
	IORING_OP_FSETXATTR    = 41
	IORING_OP_SETXATTR     = 42
	IORING_OP_FGETXATTR    = 43
	IORING_OP_GETXATTR     = 44
	IORING_OP_URING_CMD    = 46
	IORING_OP_FTRUNCATE    = 55
)

// SQE flags.
const (
	IOSQE_FIXED_FILE       = 1 << 0
	IOSQE_IO_DRAIN         = 1 << 1
	IOSQE_IO_LINK          = 1 << 2
	IOSQE_ASYNC            = 1 << 4
	IOSQE_CQE_SKIP_SUCCESS = 1 << 6
)

// Per-opcode flags.
const (
	IORING_FSYNC_DATASYNC        = 1 << 0
	IORING_ASYNC_CANCEL_ALL      = 1 << 0
	IORING_ASYNC_CANCEL_FD       = 1 << 1
	IORING_ASYNC_CANCEL_ANY      = 1 << 2
	IORING_ASYNC_CANCEL_USERDATA = 1 << 4
)

// sq_ring->flags, set by the kernel.
const (
	IORING_SQ_NEED_WAKEUP = 1 << 0
	IORING_SQ_CQ_OVERFLOW = 1 << 1
	IORING_SQ_TASKRUN     = 1 << 2
)

// io_uring_enter flags.
const (
	IORING_ENTER_GETEVENTS = 1 << 0
)

// Features reported by io_uring_setup.
const (
	IORING_FEAT_SINGLE_MMAP = 1 << 0
	IORING_FEAT_NODROP      = 1 << 1
)

// mmap offsets.
const (
	IORING_OFF_SQ_RING = 0
	IORING_OFF_CQ_RING = 0x8000000
	IORING_OFF_SQES    = 0x10000000
)

// io_uring_register opcodes.
const (
	IORING_REGISTER_EVENTFD   = 4
	IORING_UNREGISTER_EVENTFD = 5

	IORING_CQ_EVENTFD_DISABLED = 1 // in the CQ ring's flags
	IORING_REGISTER_PROBE      = 8
)

// IO_URING_OP_SUPPORTED is io_uring_probe_op.flags' "supported" bit.
const IO_URING_OP_SUPPORTED = 1 << 0
