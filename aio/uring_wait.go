package aio

import (
	"math"
	"unsafe"

	"golang.org/x/sys/unix"
)

// uringPunted are the ops io_uring never completes inline: the kernel
// hands each to an io-wq worker thread. Measured here at QD1 (one op at a
// time), STATX took 9.8 µs p50 on the ring against 2.4 µs on the pool,
// so by default these go to the pool; reads, writes and close, which
// usually complete during io_uring_enter itself, stay on the ring.
// OPENAT is punted too, as evfs uses it: io_uring opens inline only names
// in the dentry cache without O_CREAT/O_TRUNC, and those O_PATH opens
// are already made on the spot (nowait.go); what is left — creations,
// reopens through /proc/self/fd (a magic link, never resolved from the
// cache alone) and uncached names — always goes to io-wq (open+close
// p50 149 µs on the ring, 119 µs on the pool; docs/BENCHMARKS-history.md).
var uringPunted = []Kind{
	OpOpenat, OpStatx, OpUnlinkat, OpRenameat, OpMkdirat, OpSymlinkat, OpLinkat,
	OpFsync, OpFallocate, OpFtruncate, OpFgetxattr, OpFsetxattr,
	OpGetxattr, OpSetxattr,
}

// wakeUserData marks the eventfd read that Wake completes.
const wakeUserData = math.MaxUint64 - 1

// setupWaitInRing creates the wake eventfd. Its read is posted lazily by
// Sleep, so a ring that never sleeps never has one.
func (u *Uring) setupWaitInRing() error {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return err
	}
	u.waitInRing, u.wakeFd = true, fd
	return nil
}

// Sleep submits whatever is queued and waits inside io_uring_enter until
// at least one completion is ready: an op's, or the wake read's. This is
// then the loop's only wait point. Loop-only.
func (u *Uring) Sleep() {
	if u.ring.CQReady() > 0 {
		return
	}
	if !u.wakeArmed {
		sqe := u.getSQE()
		if sqe == nil {
			return // ring full: the loop turns again and retries
		}
		sqe.PrepRead(u.wakeFd, u.wakeBuf[:], 0)
		sqe.UserData = wakeUserData
		u.wakeArmed = true
	}
	u.ring.SubmitAndWait(1)
}

// Wake completes the posted eventfd read, ending a Sleep. Safe from any
// goroutine; the loop calls it only when it is (about to be) asleep.
func (u *Uring) Wake() {
	one := uint64(1)
	unix.Write(u.wakeFd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// AsWaiter returns the backend as a Waiter if it was built WaitInRing.
func AsWaiter(b Backend) (Waiter, bool) {
	if u, ok := b.(*Uring); ok && u.waitInRing {
		return u, true
	}
	return nil, false
}
