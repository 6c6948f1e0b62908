package aio

import "golang.org/x/sys/unix"

// Constructors for the ops the filesystem uses. Each says which syscall
// it stands for; the field mapping lives here and in syscalls.go only.

// StatxMask is what evfs asks statx for.
const StatxMask = unix.STATX_BASIC_STATS | unix.STATX_BTIME

func Nop() *Op { return newOp(Op{Kind: OpNop}) }

// Pread reads len(buf) bytes at off.
func Pread(fd int, buf []byte, off int64) *Op {
	return newOp(Op{Kind: OpRead, Fd: fd, Buf: buf, Off: off})
}

// Pwrite writes buf at off.
func Pwrite(fd int, buf []byte, off int64) *Op {
	return newOp(Op{Kind: OpWrite, Fd: fd, Buf: buf, Off: off})
}

// Pwritev writes iov at off.
func Pwritev(fd int, iov [][]byte, off int64) *Op {
	return newOp(Op{Kind: OpWritev, Fd: fd, Iov: iov, Off: off})
}

// Preadv reads into iov at off.
func Preadv(fd int, iov [][]byte, off int64) *Op {
	return newOp(Op{Kind: OpReadv, Fd: fd, Iov: iov, Off: off})
}

// Fsync flushes fd; datasync selects fdatasync.
func Fsync(fd int, datasync bool) *Op {
	op := newOp(Op{Kind: OpFsync, Fd: fd})
	if datasync {
		op.Flags = FsyncDatasync
	}
	return op
}

// Openat opens name relative to dirfd; the result is the new fd.
func Openat(dirfd int, name string, flags int, mode uint32) *Op {
	return newOp(Op{Kind: OpOpenat, Fd: dirfd, Path: name, Flags: uint32(flags), Mode: mode})
}

// Openat2 is Openat with openat2 resolve flags (unix.RESOLVE_*).
func Openat2(dirfd int, name string, flags int, mode uint32, resolve uint64) *Op {
	return newOp(Op{Kind: OpOpenat, Fd: dirfd, Path: name, Flags: uint32(flags), Mode: mode, Resolve: resolve})
}

// OpenByHandleAt opens the inode of the O_PATH fd fd with flags, through
// mountFd (an fd, not O_PATH, on the mount with id mountID): the result
// is the new fd, or -EXDEV if fd is on another mount. fh is fd's file
// handle if the caller kept it from an earlier open (Op.FileHandle), or
// nil.
func OpenByHandleAt(fd, mountFd, mountID int, flags int, fh *unix.FileHandle) *Op {
	return newOp(Op{Kind: OpOpenByHandleAt, Fd: fd, Fd2: mountFd, MountID: mountID, Flags: uint32(flags), FileHandle: fh})
}

// Close closes fd.
func Close(fd int) *Op { return newOp(Op{Kind: OpClose, Fd: fd}) }

// MoveFd moves the file open at src to the number dst (dup3, O_CLOEXEC)
// and closes src; the file dst held is closed by the move.
func MoveFd(src, dst int) *Op { return newOp(Op{Kind: OpMoveFd, Fd: src, Fd2: dst}) }

// CloseSpare closes an O_PATH fd for a caller that vouches the inode
// stays open through another fd (see Op.Resident): closing it then only
// drops references, and backends may run it on the spot.
func CloseSpare(fd int) *Op { return newOp(Op{Kind: OpClose, Fd: fd, Resident: true}) }

// StatxResident is Statx of fd itself for a caller that vouches for the
// file system (see Op.Resident): backends may run it on the spot.
func StatxResident(fd int, flags int) *Op {
	op := Statx(fd, "", flags|unix.AT_EMPTY_PATH)
	op.Resident = true
	return op
}

// StatxNameResident stats name in the directory dirfd, without
// following a final symlink, triggering an automount or asking a server.
func StatxNameResident(dirfd int, name string) *Op {
	op := Statx(dirfd, name, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT|unix.AT_STATX_DONT_SYNC)
	op.Resident = true
	return op
}

// Statx stats name relative to dirfd into op.Stat.
func Statx(dirfd int, name string, flags int) *Op {
	return newOp(Op{Kind: OpStatx, Fd: dirfd, Path: name, Flags: uint32(flags), Mask: StatxMask})
}

// Unlinkat removes name (flags may hold AT_REMOVEDIR).
func Unlinkat(dirfd int, name string, flags int) *Op {
	return newOp(Op{Kind: OpUnlinkat, Fd: dirfd, Path: name, Flags: uint32(flags)})
}

// Renameat renames olddir/old to newdir/new with renameat2 flags.
func Renameat(olddir int, old string, newdir int, new string, flags uint32) *Op {
	return newOp(Op{Kind: OpRenameat, Fd: olddir, Path: old, Fd2: newdir, Path2: new, Flags: flags})
}

// Mkdirat creates directory name.
func Mkdirat(dirfd int, name string, mode uint32) *Op {
	return newOp(Op{Kind: OpMkdirat, Fd: dirfd, Path: name, Mode: mode})
}

// Symlinkat creates name pointing to target.
func Symlinkat(target string, dirfd int, name string) *Op {
	return newOp(Op{Kind: OpSymlinkat, Fd: dirfd, Path: name, Path2: target})
}

// Linkat links olddir/old as newdir/new.
func Linkat(olddir int, old string, newdir int, new string, flags int) *Op {
	return newOp(Op{Kind: OpLinkat, Fd: olddir, Path: old, Fd2: newdir, Path2: new, Flags: uint32(flags)})
}

// Fallocate allocates or punches [off, off+length).
func Fallocate(fd int, mode uint32, off, length int64) *Op {
	return newOp(Op{Kind: OpFallocate, Fd: fd, Mode: mode, Off: off, Len: length})
}

// Ftruncate sets fd's size.
func Ftruncate(fd int, size int64) *Op { return newOp(Op{Kind: OpFtruncate, Fd: fd, Len: size}) }

// Fgetxattr reads attribute name of fd into buf (len 0 asks for the size).
func Fgetxattr(fd int, name string, buf []byte) *Op {
	return newOp(Op{Kind: OpFgetxattr, Fd: fd, Path: name, Buf: buf})
}

// Fsetxattr sets attribute name of fd.
func Fsetxattr(fd int, name string, value []byte, flags int) *Op {
	return newOp(Op{Kind: OpFsetxattr, Fd: fd, Path: name, Buf: value, Flags: uint32(flags)})
}

// Flistxattr lists fd's attribute names into buf.
func Flistxattr(fd int, buf []byte) *Op { return newOp(Op{Kind: OpFlistxattr, Fd: fd, Buf: buf}) }

// Fremovexattr removes attribute name of fd.
func Fremovexattr(fd int, name string) *Op {
	return newOp(Op{Kind: OpFremovexattr, Fd: fd, Path: name})
}

// Mknodat creates a node (regular file, fifo, socket, device).
func Mknodat(dirfd int, name string, mode uint32, dev uint64) *Op {
	return newOp(Op{Kind: OpMknodat, Fd: dirfd, Path: name, Mode: mode, Dev: dev})
}

// Readlinkat reads the symlink name relative to dirfd into buf.
func Readlinkat(dirfd int, name string, buf []byte) *Op {
	return newOp(Op{Kind: OpReadlinkat, Fd: dirfd, Path: name, Buf: buf})
}

// Fchmodat changes the mode of name relative to dirfd (fchmodat2, so
// AT_EMPTY_PATH works on an O_PATH fd).
func Fchmodat(dirfd int, name string, mode uint32, flags int) *Op {
	return newOp(Op{Kind: OpFchmodat, Fd: dirfd, Path: name, Mode: mode, Flags: uint32(flags)})
}

// Fchownat changes ownership; -1 (as ^uint32(0)) leaves an id unchanged.
func Fchownat(dirfd int, name string, uid, gid uint32, flags int) *Op {
	return newOp(Op{Kind: OpFchownat, Fd: dirfd, Path: name, Uid: uid, Gid: gid, Flags: uint32(flags)})
}

// Utimensat sets atime and mtime (UTIME_NOW / UTIME_OMIT allowed).
func Utimensat(dirfd int, name string, times [2]unix.Timespec, flags int) *Op {
	return newOp(Op{Kind: OpUtimensat, Fd: dirfd, Path: name, Times: times, Flags: uint32(flags)})
}

// Truncate sets the size of the file at path.
func Truncate(path string, size int64) *Op { return newOp(Op{Kind: OpTruncate, Path: path, Len: size}) }

// Getdents reads directory entries of fd into buf.
func Getdents(fd int, buf []byte) *Op { return newOp(Op{Kind: OpGetdents, Fd: fd, Buf: buf}) }

// Lseek repositions fd (whence SEEK_SET/SEEK_DATA/SEEK_HOLE…).
func Lseek(fd int, off int64, whence int) *Op {
	return newOp(Op{Kind: OpLseek, Fd: fd, Off: off, Mode: uint32(whence)})
}

// CopyFileRange copies length bytes from fdIn@offIn to fdOut@offOut.
func CopyFileRange(fdIn int, offIn int64, fdOut int, offOut int64, length int64, flags int) *Op {
	return newOp(Op{Kind: OpCopyFileRange, Fd: fdIn, Off: offIn, Fd2: fdOut, Off2: offOut, Len: length, Flags: uint32(flags)})
}

// Fstatfs reads filesystem statistics of fd into op.Statfs.
func Fstatfs(fd int) *Op { return newOp(Op{Kind: OpFstatfs, Fd: fd}) }

// Faccessat checks access to name relative to dirfd.
func Faccessat(dirfd int, name string, mode uint32, flags int) *Op {
	return newOp(Op{Kind: OpFaccessat, Fd: dirfd, Path: name, Mode: mode, Flags: uint32(flags)})
}

// FcntlLock runs fcntl(fd, cmd, &lk) for an OFD lock command; the lock
// (updated by F_OFD_GETLK) is in op.Lock.
func FcntlLock(fd int, cmd int, lk unix.Flock_t) *Op {
	return newOp(Op{Kind: OpFcntlLock, Fd: fd, Mask: uint32(cmd), Lock: lk})
}

// SetFl sets fd's file status flags: fcntl(fd, F_SETFL, flags).
func SetFl(fd, flags int) *Op { return newOp(Op{Kind: OpSetFl, Fd: fd, Flags: uint32(flags)}) }

// Flock runs flock(fd, how).
func Flock(fd int, how int) *Op { return newOp(Op{Kind: OpFlock, Fd: fd, Mask: uint32(how)}) }

// FsyncDatasync in Op.Flags selects fdatasync (same value as io_uring's
// IORING_FSYNC_DATASYNC, so the uring backend passes Flags through).
const FsyncDatasync = 1

// Getxattr reads attribute name of the file at path (following it) into
// buf; len(buf) == 0 asks for the size.
func Getxattr(path, name string, buf []byte) *Op {
	return newOp(Op{Kind: OpGetxattr, Path: path, Path2: name, Buf: buf})
}

// Setxattr sets attribute name of the file at path.
func Setxattr(path, name string, value []byte, flags int) *Op {
	return newOp(Op{Kind: OpSetxattr, Path: path, Path2: name, Buf: value, Flags: uint32(flags)})
}

// Listxattr lists the attribute names of the file at path into buf.
func Listxattr(path string, buf []byte) *Op {
	return newOp(Op{Kind: OpListxattr, Path: path, Buf: buf})
}

// Removexattr removes attribute name of the file at path.
func Removexattr(path, name string) *Op {
	return newOp(Op{Kind: OpRemovexattr, Path: path, Path2: name})
}
