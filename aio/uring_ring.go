package aio

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring is one io_uring instance: the submission and completion rings and
// the SQE array, shared with the kernel through mmap. Names follow
// liburing. A Ring has a single owner and is not safe for concurrent use;
// the uring backend touches it from the loop goroutine only.
//
// The SQ index array is identity-mapped once at setup (slot i → SQE i),
// so publishing SQEs is a single tail store.
type Ring struct {
	fd       int
	flags    uint32 // setup flags the kernel accepted
	features uint32

	sqMem, cqMem, sqeMem []byte // cqMem aliases sqMem with IORING_FEAT_SINGLE_MMAP

	// Submission side. sqHead is written by the kernel, sqTail by us.
	sqHead, sqTail, sqFlags *uint32
	cqFlags                 *uint32
	sqMask, sqEntries       uint32
	sqes                    []SQE
	sqeShift                uint32 // 1 with IORING_SETUP_SQE128: each SQE spans two SQE structs
	// sqeTail is the next SQE GetSQE hands out; sqeHead the first one
	// not yet published to the kernel (liburing's sqe_head/sqe_tail).
	sqeHead, sqeTail uint32

	// Completion side. cqTail is written by the kernel, cqHead by us.
	cqHead, cqTail    *uint32
	cqOverflow        *uint32
	cqMask, cqEntries uint32
	cqes              []CQE
}

// NewRing creates a ring with an SQ of entries slots and a CQ twice that
// (IORING_SETUP_CQSIZE). flags are extra IORING_SETUP_* flags.
func NewRing(entries, flags uint32) (*Ring, error) {
	return newRing(entries, 2*entries, flags)
}

// newRing creates a ring with an explicit CQ size (rounded up by the
// kernel to a power of two; at least entries).
func newRing(entries, cqEntries, flags uint32) (*Ring, error) {
	if cqEntries < entries {
		cqEntries = entries
	}
	p := uringParams{flags: flags | IORING_SETUP_CQSIZE, cqEntries: cqEntries}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, os.NewSyscallError("io_uring_setup", errno)
	}
	r := &Ring{fd: int(fd), flags: p.flags, features: p.features}
	if err := r.mapRings(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mapRings(p *uringParams) error {
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(CQE{})))
	single := p.features&IORING_FEAT_SINGLE_MMAP != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	const prot, mflags = unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED | unix.MAP_POPULATE
	var err error
	if r.sqMem, err = unix.Mmap(r.fd, IORING_OFF_SQ_RING, sqSize, prot, mflags); err != nil {
		return fmt.Errorf("mmap SQ ring: %w", err)
	}
	if single {
		r.cqMem = r.sqMem
	} else if r.cqMem, err = unix.Mmap(r.fd, IORING_OFF_CQ_RING, cqSize, prot, mflags); err != nil {
		return fmt.Errorf("mmap CQ ring: %w", err)
	}
	if r.flags&IORING_SETUP_SQE128 != 0 {
		r.sqeShift = 1
	}
	sqeSize := int(p.sqEntries) * int(unsafe.Sizeof(SQE{})) << r.sqeShift
	if r.sqeMem, err = unix.Mmap(r.fd, IORING_OFF_SQES, sqeSize, prot, mflags); err != nil {
		return fmt.Errorf("mmap SQEs: %w", err)
	}

	r.sqHead = u32at(r.sqMem, p.sqOff.head)
	r.sqTail = u32at(r.sqMem, p.sqOff.tail)
	r.sqFlags = u32at(r.sqMem, p.sqOff.flags)
	r.sqMask = *u32at(r.sqMem, p.sqOff.ringMask)
	r.sqEntries = *u32at(r.sqMem, p.sqOff.ringEntries)
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&r.sqeMem[0])), r.sqEntries<<r.sqeShift)
	array := unsafe.Slice(u32at(r.sqMem, p.sqOff.array), r.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.sqeHead = atomic.LoadUint32(r.sqTail)
	r.sqeTail = r.sqeHead

	r.cqHead = u32at(r.cqMem, p.cqOff.head)
	r.cqTail = u32at(r.cqMem, p.cqOff.tail)
	r.cqOverflow = u32at(r.cqMem, p.cqOff.overflow)
	r.cqFlags = u32at(r.cqMem, p.cqOff.flags)
	r.cqMask = *u32at(r.cqMem, p.cqOff.ringMask)
	r.cqEntries = *u32at(r.cqMem, p.cqOff.ringEntries)
	r.cqes = unsafe.Slice((*CQE)(unsafe.Pointer(&r.cqMem[p.cqOff.cqes])), r.cqEntries)
	return nil
}

func u32at(mem []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }

// CQEventfdToggle turns the registered eventfd's notifications on or off
// (liburing's io_uring_cq_eventfd_toggle).
func (r *Ring) CQEventfdToggle(enabled bool) {
	f := atomic.LoadUint32(r.cqFlags)
	if enabled {
		f &^= IORING_CQ_EVENTFD_DISABLED
	} else {
		f |= IORING_CQ_EVENTFD_DISABLED
	}
	atomic.StoreUint32(r.cqFlags, f)
}

// Fd is the ring's file descriptor.
func (r *Ring) Fd() int { return r.fd }

// SQEntries and CQEntries are the ring sizes the kernel chose.
func (r *Ring) SQEntries() uint32 { return r.sqEntries }
func (r *Ring) CQEntries() uint32 { return r.cqEntries }

// Features is the IORING_FEAT_* mask from io_uring_setup.
func (r *Ring) Features() uint32 { return r.features }

// Flags is the IORING_SETUP_* mask the ring was created with.
func (r *Ring) Flags() uint32 { return r.flags }

// GetSQE returns the next free SQE, or nil when the SQ is full (Submit
// frees slots). The SQE holds stale data until a Prep helper fills it;
// set UserData after the Prep call.
func (r *Ring) GetSQE() *SQE {
	// Acquire: the kernel has finished reading slots before head.
	head := atomic.LoadUint32(r.sqHead)
	if r.sqeTail-head >= r.sqEntries {
		return nil
	}
	sqe := &r.sqes[(r.sqeTail&r.sqMask)<<r.sqeShift]
	r.sqeTail++
	return sqe
}

// SQPending is the number of SQEs handed out by GetSQE that the kernel
// has not consumed yet (published or not).
func (r *Ring) SQPending() uint32 { return r.sqeTail - atomic.LoadUint32(r.sqHead) }

// flushSQ publishes prepared SQEs and returns how many await the kernel.
func (r *Ring) flushSQ() uint32 {
	if r.sqeHead != r.sqeTail {
		r.sqeHead = r.sqeTail
		// Release: the SQE contents are visible before the new tail.
		atomic.StoreUint32(r.sqTail, r.sqeTail)
	}
	return r.SQPending()
}

// cqNeedsEnter reports whether completions are held back in the kernel
// (CQ overflow list, or task work with TASKRUN_FLAG) and only an
// io_uring_enter with GETEVENTS will flush them into the CQ.
func (r *Ring) cqNeedsEnter() bool {
	return atomic.LoadUint32(r.sqFlags)&(IORING_SQ_CQ_OVERFLOW|IORING_SQ_TASKRUN) != 0
}

// Submit publishes prepared SQEs and tells the kernel about them. It
// returns the number the kernel consumed. EINTR is retried; EAGAIN and
// EBUSY are returned (the SQEs stay queued for the next Submit).
func (r *Ring) Submit() (int, error) { return r.submit(0) }

// SubmitAndWait is Submit plus waiting until at least n completions are
// available in the CQ.
func (r *Ring) SubmitAndWait(n uint32) (int, error) { return r.submit(n) }

func (r *Ring) submit(wait uint32) (int, error) {
	pending := r.flushSQ()
	var flags uint32
	if wait > 0 || r.cqNeedsEnter() {
		flags |= IORING_ENTER_GETEVENTS
	}
	if pending == 0 && flags == 0 {
		return 0, nil
	}
	for {
		n, err := r.enter(pending, wait, flags)
		if err != unix.EINTR {
			return n, err
		}
		pending = r.SQPending()
	}
}

func (r *Ring) enter(submit, wait, flags uint32) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(submit), uintptr(wait), uintptr(flags), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// CQReady is the number of completions waiting in the CQ.
func (r *Ring) CQReady() uint32 { return atomic.LoadUint32(r.cqTail) - *r.cqHead }

// PeekCQE returns the oldest completion without waiting. If the CQ is
// empty but the kernel holds overflowed completions, it flushes them in
// first. Mark the CQE consumed with CQESeen once its fields are read.
func (r *Ring) PeekCQE() (*CQE, bool) {
	for try := 0; ; try++ {
		head := *r.cqHead // only we write it
		// Acquire: CQE contents are visible once the tail covers them.
		if tail := atomic.LoadUint32(r.cqTail); head != tail {
			return &r.cqes[head&r.cqMask], true
		}
		if try > 0 || !r.cqNeedsEnter() {
			return nil, false
		}
		if _, err := r.enter(0, 0, IORING_ENTER_GETEVENTS); err != nil && err != unix.EINTR {
			return nil, false
		}
	}
}

// WaitCQE returns the oldest completion, blocking until there is one.
func (r *Ring) WaitCQE() (*CQE, error) {
	for {
		if cqe, ok := r.PeekCQE(); ok {
			return cqe, nil
		}
		if _, err := r.enter(0, 1, IORING_ENTER_GETEVENTS); err != nil && err != unix.EINTR {
			return nil, err
		}
	}
}

// CQESeen marks one completion (the one PeekCQE/WaitCQE returned) consumed.
func (r *Ring) CQESeen(*CQE) { r.CQAdvance(1) }

// CQAdvance marks the n oldest completions consumed.
func (r *Ring) CQAdvance(n uint32) {
	// Release: we are done reading the CQEs before the kernel may reuse them.
	atomic.StoreUint32(r.cqHead, *r.cqHead+n)
}

// CQOverflow is the kernel's count of completions it had to drop.
func (r *Ring) CQOverflow() uint32 { return atomic.LoadUint32(r.cqOverflow) }

// Close unmaps the rings and closes the ring fd. The kernel cancels
// whatever is still in flight; callers that care drain first.
func (r *Ring) Close() error {
	if r.fd < 0 {
		return nil
	}
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.cqMem != nil && len(r.sqMem) > 0 && &r.cqMem[0] != &r.sqMem[0] {
		unix.Munmap(r.cqMem)
	}
	if r.sqMem != nil {
		unix.Munmap(r.sqMem)
	}
	r.sqMem, r.cqMem, r.sqeMem, r.sqes, r.cqes = nil, nil, nil, nil, nil
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}
