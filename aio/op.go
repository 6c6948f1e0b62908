// Package aio performs backing-filesystem syscalls asynchronously.
//
// An Op describes one syscall. The loop hands it to a Backend under an id
// (a slab index + generation chosen by the loop) and later receives the
// id back with the syscall's result: a non-negative value on success or a
// negated errno. aio knows nothing of FUSE.
//
// Memory rule: every buffer, path and struct referenced by an Op belongs to
// the backend from Submit until its completion is reaped, even if the op
// was cancelled. The submitter keeps the Op reachable (the loop's slab does)
// and must not reuse it before then.
package aio

import (
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Kind names a syscall. The names follow the io_uring opcodes where one
// exists; the rest are the syscalls io_uring has no opcode for.
type Kind uint8

const (
	OpNop Kind = iota
	OpRead
	OpWrite
	OpReadv
	OpWritev
	OpFsync
	OpOpenat
	OpClose
	OpStatx
	OpUnlinkat
	OpRenameat
	OpMkdirat
	OpSymlinkat
	OpLinkat
	OpFallocate
	OpFtruncate
	OpFgetxattr
	OpFsetxattr
	OpFlistxattr
	OpFremovexattr
	// No io_uring opcode for the following (nor for FLISTXATTR and
	// FREMOVEXATTR above): they always run on the pool (or on the loop,
	// for the sync backend).
	OpMknodat
	OpReadlinkat
	OpFchmodat
	OpFchownat
	OpUtimensat
	OpTruncate
	OpGetdents
	OpLseek
	OpCopyFileRange
	OpFstatfs
	OpFaccessat
	OpFcntlLock
	OpFlock
	// Path-based xattr calls: fgetxattr and friends refuse O_PATH fds, so
	// node xattrs go through the node's /proc/self/fd path. GETXATTR and
	// SETXATTR have io_uring opcodes; the other two run on the pool.
	OpGetxattr
	OpSetxattr
	OpListxattr
	OpRemovexattr
	// OpOpenByHandleAt opens the inode an O_PATH fd refers to through
	// its file handle (name_to_handle_at, then open_by_handle_at): no
	// path walk, so unlike a reopen through /proc/self/fd it can run on
	// the spot when the inode is held (Op.Resident; nowait.go).
	OpOpenByHandleAt
	// OpMoveFd is dup3(Fd, Fd2) then close(Fd): the file open at Fd
	// takes over the number Fd2, and what was open at Fd2 is closed. Ops
	// that name Fd2 before and after see the same number (fs/lend.go).
	OpMoveFd
	// OpSetFl is fcntl(Fd, F_SETFL, Flags): a file's status flags
	// (O_DIRECT, O_APPEND, O_NONBLOCK…; the others are ignored).
	OpSetFl
	numKinds
)

var kindNames = [...]string{
	OpNop: "NOP", OpRead: "READ", OpWrite: "WRITE", OpReadv: "READV", OpWritev: "WRITEV",
	OpFsync: "FSYNC", OpOpenat: "OPENAT", OpClose: "CLOSE", OpStatx: "STATX",
	OpUnlinkat: "UNLINKAT", OpRenameat: "RENAMEAT", OpMkdirat: "MKDIRAT",
	OpSymlinkat: "SYMLINKAT", OpLinkat: "LINKAT", OpFallocate: "FALLOCATE",
	OpFtruncate: "FTRUNCATE", OpFgetxattr: "FGETXATTR", OpFsetxattr: "FSETXATTR",
	OpFlistxattr: "FLISTXATTR", OpFremovexattr: "FREMOVEXATTR",
	OpMknodat: "MKNODAT", OpReadlinkat: "READLINKAT", OpFchmodat: "FCHMODAT",
	OpFchownat: "FCHOWNAT", OpUtimensat: "UTIMENSAT", OpTruncate: "TRUNCATE",
	OpGetdents: "GETDENTS", OpLseek: "LSEEK", OpCopyFileRange: "COPY_FILE_RANGE",
	OpFstatfs: "FSTATFS", OpFaccessat: "FACCESSAT", OpFcntlLock: "FCNTL_LOCK",
	OpFlock: "FLOCK", OpGetxattr: "GETXATTR", OpSetxattr: "SETXATTR",
	OpListxattr: "LISTXATTR", OpRemovexattr: "REMOVEXATTR", OpOpenByHandleAt: "OPEN_BY_HANDLE_AT",
	OpMoveFd: "MOVE_FD", OpSetFl: "SETFL",
}

// KindByName returns the kind whose String is name.
func KindByName(name string) (Kind, bool) {
	for k, n := range kindNames {
		if n == name {
			return Kind(k), true
		}
	}
	return 0, false
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Op is one syscall and the memory it uses. Fields are read as the
// syscall's arguments; which ones matter depends on Kind (see the
// constructors in ops.go). Outputs land in Buf, Stat, Statfs or Lock.
type Op struct {
	Kind  Kind
	Fd    int // file descriptor, or dirfd for *at calls
	Fd2   int // second dirfd (renameat2, linkat) or output fd (copy_file_range)
	Path  string
	Path2 string // second name (renameat2, linkat) or symlink target
	Buf   []byte
	Iov   [][]byte
	Off   int64
	Off2  int64
	Len   int64
	Flags uint32
	Mode  uint32
	Mask  uint32 // statx mask, fcntl command, or flock operation
	// Resolve holds openat2 RESOLVE_* flags for OpOpenat (0: plain
	// openat semantics).
	Resolve uint64
	// Direct says Fd was opened O_DIRECT. Such a read or write is never
	// tried on the spot: RWF_NOWAIT only spares it locks and allocation,
	// and a synchronous O_DIRECT call still waits for the device.
	Direct bool
	// NoNowait says Fd's file system is known to refuse RWF_NOWAIT
	// (tmpfs): a read is not tried on the spot, and the uring backend
	// sends reads and writes to its pool, as it does for fds it has
	// learnt that of (nowait.go).
	NoNowait bool
	// Resident is the submitter's word that this op touches only
	// in-memory state and nothing it does can wait for a device: a statx
	// of an inode held open on a local file system (ext4, xfs, tmpfs…),
	// the close of a spare O_PATH fd whose inode another fd keeps open,
	// an open by handle of such an inode or an open of "." in such a
	// directory, or any op on a memory file system (tmpfs, ramfs) with
	// no swap that reaches no other file system. Backends run such an
	// op on the spot when its work is bounded (nowait.go, boundedWork):
	// not truncation, fallocate, copy_file_range, lseek (their work
	// grows with the file), nor locks (they wait for other processes),
	// nor data beyond ResidentIOMax; an open, with O_NONBLOCK.
	Resident bool
	Uid      uint32
	Gid      uint32
	Dev      uint64
	// MountID is the mount OpOpenByHandleAt's fd must be on (the id
	// name_to_handle_at reports): the open happens through the mount fd
	// Fd2, and a bind mount inside the tree has other flags (read-only).
	MountID int
	// FileHandle is OpOpenByHandleAt's handle of Fd's inode. Nil, the
	// backend looks it up (name_to_handle_at, checking MountID) and
	// leaves it here: a caller that keeps it saves that syscall on the
	// inode's next open.
	FileHandle *unix.FileHandle
	Times      [2]unix.Timespec

	Stat   unix.Statx_t
	Statfs unix.Statfs_t
	Lock   unix.Flock_t

	// Delay and Fail are test-only fault injection: a backend sleeps Delay
	// before the syscall (without holding the loop, except in sync) and,
	// when Fail is non-zero, completes with -Fail instead of running it.
	Delay time.Duration
	Fail  unix.Errno

	canceled uint32 // atomic: set by Cancel on the loop, read by a pool worker
	// Scratch for the uring backend: NUL-terminated copies of Path/Path2
	// and the iovec array, kept alive here until completion.
	pathz, path2z []byte
	iovecs        []unix.Iovec
	// onPool: the uring backend sent this op to its pool (Cancel looks
	// for it there).
	onPool bool
	// recycled: Recycle was called (recycle.go).
	recycled bool
}

// Canceled reports whether Cancel was requested for this op.
func (op *Op) Canceled() bool { return atomic.LoadUint32(&op.canceled) != 0 }

// cancel marks op canceled (the backends' Cancel).
func (op *Op) cancel() { atomic.StoreUint32(&op.canceled, 1) }

// Result decodes a completion value into (value, errno).
func Result(res int64) (int64, unix.Errno) {
	if res < 0 {
		return 0, unix.Errno(-res)
	}
	return res, 0
}
