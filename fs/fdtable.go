package fs

import "golang.org/x/sys/unix"

// maxFdTable caps growFdTable: 2^17 slots are 1 MiB of kernel memory for
// the table's pointers. A process allowed more fds (the node budget is
// three quarters of RLIMIT_NOFILE) grows past it the usual way, one
// doubling at a time, if it ever gets there.
const maxFdTable = 1 << 17

// growFdTable makes the process's fd table as large as the fd limit
// (up to maxFdTable), once, before the loop runs, and returns the
// highest fd number it made room for (0 if it did nothing).
//
// The kernel starts a process with a small table and doubles it when an
// fd number past its end is allocated; each doubling waits for an RCU
// grace period (expand_fdtable → synchronize_rcu), several milliseconds
// on this kind of machine, inside whatever open needed the new number.
// On the loop that is a stall of every request: the first pass over
// 10 000 files showed "loop stalled" LOOKUPs of 7–14 ms, one per
// doubling. dup3 onto the highest number the limit allows grows the
// table in one step, here, where nothing waits for it.
func growFdTable(fd int) (int, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	top := int(min(lim.Cur, maxFdTable)) - 1
	if top <= fd {
		return 0, nil
	}
	// dup3 would silently close an fd already open at that number.
	if _, err := unix.FcntlInt(uintptr(top), unix.F_GETFD, 0); err != unix.EBADF {
		return 0, nil
	}
	if err := unix.Dup3(fd, top, unix.O_CLOEXEC); err != nil {
		return 0, err
	}
	return top, unix.Close(top)
}
