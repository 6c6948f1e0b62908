package aio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Do runs op's syscall on the calling goroutine and returns its result
// (>= 0, or -errno). It blocks: the pool calls it on worker goroutines,
// the sync backend on the loop (on purpose), the uring backend never
// (it hands the ring's unsupported ops to its pool).
func Do(op *Op) int64 {
	if op.Delay > 0 {
		// A blocking syscall, not time.Sleep: like a slow disk read, it
		// holds its thread (and, until the Go scheduler takes it back,
		// its P), which is what the head-of-line tests must survive.
		ts := unix.NsecToTimespec(op.Delay.Nanoseconds())
		for unix.Nanosleep(&ts, &ts) == unix.EINTR {
		}
	}
	if op.Fail != 0 {
		return -int64(op.Fail)
	}
	return result(do(op))
}

func do(op *Op) (int64, error) {
	switch op.Kind {
	case OpNop:
		return 0, nil
	case OpRead:
		n, err := unix.Pread(op.Fd, op.Buf, op.Off)
		return int64(n), err
	case OpWrite:
		n, err := unix.Pwrite(op.Fd, op.Buf, op.Off)
		return int64(n), err
	case OpReadv:
		n, err := unix.Preadv(op.Fd, op.Iov, op.Off)
		return int64(n), err
	case OpWritev:
		n, err := unix.Pwritev(op.Fd, op.Iov, op.Off)
		return int64(n), err
	case OpFsync:
		if op.Flags&FsyncDatasync != 0 {
			return 0, unix.Fdatasync(op.Fd)
		}
		return 0, unix.Fsync(op.Fd)
	case OpOpenat:
		if op.Resolve != 0 {
			fd, err := unix.Openat2(op.Fd, op.Path, &unix.OpenHow{
				Flags: uint64(op.Flags) | unix.O_CLOEXEC, Mode: uint64(op.Mode), Resolve: op.Resolve})
			return int64(fd), err
		}
		fd, err := unix.Openat(op.Fd, op.Path, int(op.Flags)|unix.O_CLOEXEC, op.Mode)
		return int64(fd), err
	case OpClose:
		return 0, unix.Close(op.Fd)
	case OpMoveFd:
		if err := unix.Dup3(op.Fd, op.Fd2, unix.O_CLOEXEC); err != nil {
			return 0, err
		}
		unix.Close(op.Fd) // Linux frees the number whatever close reports
		return 0, nil
	case OpStatx:
		return 0, unix.Statx(op.Fd, op.Path, int(op.Flags), int(op.Mask), &op.Stat)
	case OpUnlinkat:
		return 0, unix.Unlinkat(op.Fd, op.Path, int(op.Flags))
	case OpRenameat:
		return 0, unix.Renameat2(op.Fd, op.Path, op.Fd2, op.Path2, uint(op.Flags))
	case OpMkdirat:
		return 0, unix.Mkdirat(op.Fd, op.Path, op.Mode)
	case OpSymlinkat:
		return 0, unix.Symlinkat(op.Path2, op.Fd, op.Path)
	case OpLinkat:
		return 0, unix.Linkat(op.Fd, op.Path, op.Fd2, op.Path2, int(op.Flags))
	case OpFallocate:
		return 0, unix.Fallocate(op.Fd, op.Mode, op.Off, op.Len)
	case OpFtruncate:
		return 0, unix.Ftruncate(op.Fd, op.Len)
	case OpFgetxattr:
		n, err := unix.Fgetxattr(op.Fd, op.Path, op.Buf)
		return int64(n), err
	case OpFsetxattr:
		return 0, unix.Fsetxattr(op.Fd, op.Path, op.Buf, int(op.Flags))
	case OpFlistxattr:
		n, err := unix.Flistxattr(op.Fd, op.Buf)
		return int64(n), err
	case OpFremovexattr:
		return 0, unix.Fremovexattr(op.Fd, op.Path)
	case OpMknodat:
		return 0, unix.Mknodat(op.Fd, op.Path, op.Mode, int(op.Dev))
	case OpReadlinkat:
		n, err := unix.Readlinkat(op.Fd, op.Path, op.Buf)
		return int64(n), err
	case OpFchmodat:
		return 0, fchmodat2(op.Fd, op.Path, op.Mode, int(op.Flags))
	case OpFchownat:
		return 0, unix.Fchownat(op.Fd, op.Path, int(int32(op.Uid)), int(int32(op.Gid)), int(op.Flags))
	case OpUtimensat:
		return 0, unix.UtimesNanoAt(op.Fd, op.Path, op.Times[:], int(op.Flags))
	case OpTruncate:
		return 0, unix.Truncate(op.Path, op.Len)
	case OpGetdents:
		n, err := unix.Getdents(op.Fd, op.Buf)
		return int64(n), err
	case OpLseek:
		n, err := unix.Seek(op.Fd, op.Off, int(op.Mode))
		return n, err
	case OpCopyFileRange:
		offIn, offOut := op.Off, op.Off2
		n, err := unix.CopyFileRange(op.Fd, &offIn, op.Fd2, &offOut, int(op.Len), int(op.Flags))
		return int64(n), err
	case OpFstatfs:
		return 0, unix.Fstatfs(op.Fd, &op.Statfs)
	case OpFaccessat:
		return 0, faccessat2(op.Fd, op.Path, op.Mode, int(op.Flags))
	case OpFcntlLock:
		return 0, unix.FcntlFlock(uintptr(op.Fd), int(op.Mask), &op.Lock)
	case OpFlock:
		return 0, unix.Flock(op.Fd, int(op.Mask))
	case OpSetFl:
		_, err := unix.FcntlInt(uintptr(op.Fd), unix.F_SETFL, int(op.Flags))
		return 0, err
	case OpGetxattr:
		n, err := unix.Getxattr(op.Path, op.Path2, op.Buf)
		return int64(n), err
	case OpSetxattr:
		return 0, unix.Setxattr(op.Path, op.Path2, op.Buf, int(op.Flags))
	case OpListxattr:
		n, err := unix.Listxattr(op.Path, op.Buf)
		return int64(n), err
	case OpRemovexattr:
		return 0, unix.Removexattr(op.Path, op.Path2)
	case OpOpenByHandleAt:
		if op.FileHandle == nil {
			h, mnt, err := unix.NameToHandleAt(op.Fd, "", unix.AT_EMPTY_PATH)
			if err != nil {
				return 0, err
			}
			if mnt != op.MountID {
				return 0, unix.EXDEV
			}
			op.FileHandle = &h
		}
		fd, err := unix.OpenByHandleAt(op.Fd2, *op.FileHandle, int(op.Flags)|unix.O_CLOEXEC)
		return int64(fd), err
	}
	return 0, unix.ENOSYS
}

// faccessat2 is called directly: x/sys's Faccessat emulates flags it
// thinks the kernel lacks, and we need AT_EMPTY_PATH on an O_PATH fd.
func faccessat2(dirfd int, path string, mode uint32, flags int) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_FACCESSAT2, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(mode), uintptr(flags), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// fchmodat2 (Linux 6.6+) takes AT_EMPTY_PATH|AT_SYMLINK_NOFOLLOW, so a
// node's mode changes through its O_PATH fd without following anything.
func fchmodat2(dirfd int, path string, mode uint32, flags int) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(sysFchmodat2, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(mode), uintptr(flags), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

const sysFchmodat2 = 452 // same number on every Linux architecture
