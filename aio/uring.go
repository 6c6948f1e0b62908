package aio

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

func init() { uringFactory = newUringBackend }

const (
	// uringEntries is the SQ size: the most SQEs one io_uring_enter takes.
	uringEntries = 256
	// uringCQEntries is the CQ size and the cap on ops in flight on the
	// ring, so completions never need the kernel's overflow list (cancel
	// SQEs are not capped; their CQEs may overflow, which Reap handles).
	uringCQEntries = 4 * uringEntries
	// cancelUserData marks ASYNC_CANCEL SQEs; their CQEs are swallowed.
	// Not a high bit: the loop's ids carry a 32-bit generation in the top
	// half, which sets bit 63 eventually. An op submitted under this very
	// id runs on the pool instead.
	cancelUserData = math.MaxUint64
)

// kindOpcode maps a Kind to its io_uring opcode, -1 when there is none.
var kindOpcode = func() (m [numKinds]int16) {
	for k := range m {
		m[k] = -1
	}
	m[OpNop] = IORING_OP_NOP
	m[OpRead] = IORING_OP_READ
	m[OpWrite] = IORING_OP_WRITE
	m[OpReadv] = IORING_OP_READV
	m[OpWritev] = IORING_OP_WRITEV
	m[OpFsync] = IORING_OP_FSYNC
	m[OpOpenat] = IORING_OP_OPENAT
	m[OpClose] = IORING_OP_CLOSE
	m[OpStatx] = IORING_OP_STATX
	m[OpUnlinkat] = IORING_OP_UNLINKAT
	m[OpRenameat] = IORING_OP_RENAMEAT
	m[OpMkdirat] = IORING_OP_MKDIRAT
	m[OpSymlinkat] = IORING_OP_SYMLINKAT
	m[OpLinkat] = IORING_OP_LINKAT
	m[OpFallocate] = IORING_OP_FALLOCATE
	m[OpFtruncate] = IORING_OP_FTRUNCATE
	m[OpFgetxattr] = IORING_OP_FGETXATTR
	m[OpFsetxattr] = IORING_OP_FSETXATTR
	m[OpGetxattr] = IORING_OP_GETXATTR
	m[OpSetxattr] = IORING_OP_SETXATTR
	return m
}()

// requiredKinds must be on the ring, or the backend refuses to start
// (auto then picks the pool).
var requiredKinds = []Kind{OpRead, OpWrite, OpFsync, OpOpenat, OpClose, OpStatx}

// Uring is the io_uring backend: one ring, SQEs prepared in Submit and
// handed to the kernel in one io_uring_enter per Flush, completions
// reaped from the CQ. Ops without a usable opcode, and fault-injected
// ops, run on an embedded Pool. The kernel signals an eventfd on each
// CQE; a goroutine turns that into the loop's wake.
//
// All methods except Close are loop-only; the ring has no lock.
type Uring struct {
	ring *Ring
	pool *Pool
	wake func()

	onRing      [numKinds]bool // opcode supported by the probe and not disabled
	unsupported []Kind         // kinds with an opcode the kernel lacks

	// Loop-owned state.
	backlog      []uringPending // waiting for an SQE or for CQ budget
	done         []Completion   // finished without the ring (nowait reads, cancels in backlog)
	nowait       nowait
	inflight     uint32 // op SQEs queued or in the kernel, CQE not reaped
	poolInflight int
	stats        Stats
	closed       bool

	efile      *os.File // eventfd registered with the ring
	readerDone chan struct{}

	// WaitInRing mode (uring_wait.go).
	waitInRing bool
	wakeFd     int     // eventfd Wake writes to; the ring keeps a read posted on it
	wakeBuf    [8]byte // that read's destination
	wakeArmed  bool    // the read is on the ring
}

// uringPending is an op (or a cancel of id) not yet in the SQ.
type uringPending struct {
	id     uint64
	op     *Op
	cancel bool
}

func newUringBackend(cfg Config) (Backend, error) { return newUring(cfg) }

// newUringWithout builds the backend with kinds forced onto the pool
// (a test hook: the pool must serve them with the same results).
func newUringWithout(cfg Config, kinds ...Kind) (*Uring, error) {
	return newUring(cfg, kinds...)
}

func newUring(cfg Config, disabled ...Kind) (*Uring, error) {
	wake := cfg.Wake
	if wake == nil {
		wake = func() {}
	}
	// Not SINGLE_ISSUER/DEFER_TASKRUN/COOP_TASKRUN: the loop goroutine
	// moves between threads and never waits inside io_uring_enter, so
	// completions must not depend on the submitting thread entering the
	// kernel.
	ring, err := newRing(uringEntries, uringCQEntries, IORING_SETUP_CLAMP|IORING_SETUP_SUBMIT_ALL)
	if errors.Is(err, unix.EINVAL) { // SUBMIT_ALL is 5.18+
		ring, err = newRing(uringEntries, uringCQEntries, IORING_SETUP_CLAMP)
	}
	switch {
	case errors.Is(err, unix.EPERM):
		return nil, fmt.Errorf("%w (io_uring disabled: sysctl kernel.io_uring_disabled=1 or 2, or a seccomp policy)", err)
	case errors.Is(err, unix.ENOSYS):
		return nil, fmt.Errorf("%w (kernel without io_uring, or a seccomp policy)", err)
	case err != nil:
		return nil, err
	}
	if ring.Features()&IORING_FEAT_NODROP == 0 {
		ring.Close()
		return nil, errors.New("kernel lacks IORING_FEAT_NODROP (5.5+)")
	}
	probe, err := ring.RegisterProbe()
	if err != nil {
		ring.Close()
		return nil, err
	}
	var missing []string
	for _, k := range requiredKinds {
		if !probe.Supported(uint8(kindOpcode[k])) {
			missing = append(missing, k.String())
		}
	}
	if len(missing) > 0 {
		ring.Close()
		return nil, fmt.Errorf("io_uring probe lacks required ops: %s", strings.Join(missing, ", "))
	}

	u := &Uring{ring: ring, wake: wake, readerDone: make(chan struct{}), nowait: nowait{off: cfg.NoNowait}}
	for k := range u.onRing {
		if op := kindOpcode[k]; op >= 0 {
			if !probe.Supported(uint8(op)) {
				u.unsupported = append(u.unsupported, Kind(k))
			} else {
				u.onRing[k] = true
			}
		}
	}
	if !cfg.RingAll {
		for _, k := range uringPunted {
			u.onRing[k] = false
		}
	}
	for _, k := range disabled {
		u.onRing[k] = false
	}
	if cfg.WaitInRing {
		if err := u.setupWaitInRing(); err != nil {
			ring.Close()
			return nil, err
		}
		u.pool = u.newPool(cfg.Workers)
		close(u.readerDone)
		return u, nil
	}

	if cfg.NotifyFd > 0 {
		// The loop polls this eventfd itself: no wake goroutine.
		if err := ring.RegisterEventfd(cfg.NotifyFd); err != nil {
			ring.Close()
			return nil, err
		}
		u.pool = u.newPool(cfg.Workers)
		close(u.readerDone)
		return u, nil
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		ring.Close()
		return nil, os.NewSyscallError("eventfd", err)
	}
	if err := ring.RegisterEventfd(efd); err != nil {
		unix.Close(efd)
		ring.Close()
		return nil, err
	}
	// Non-blocking, so waiting parks in the netpoller instead of holding
	// a thread; closing the file ends the wait.
	u.efile = os.NewFile(uintptr(efd), "io_uring-eventfd")
	u.pool = u.newPool(cfg.Workers)
	go u.wakeLoop()
	return u, nil
}

// wakeLoop turns eventfd signals into wakes. It never touches the ring.
//
// It never reads the eventfd: Go's netpoller registers it edge-triggered,
// and the kernel signals it again for every batch of new CQEs, so each
// signal is a fresh readiness event even while the counter stays
// non-zero. One
// RawRead call whose callback always says "not done" parks in the
// netpoller between signals without ever clearing a readiness that
// arrived while wake ran (a new Read per signal would), and saves a
// read(2) on the wake path: about 3 µs off a QD1 STATX here.
// Close ends the RawRead.
//
// The first callback wakes too: RawRead starts by resetting the fd's
// readiness, so a signal for a CQE posted after the ring was set up but
// before this goroutine first ran would otherwise be lost, leaving the
// loop asleep with a completion in the CQ. An extra wake costs one loop
// turn.
func (u *Uring) wakeLoop() {
	defer close(u.readerDone)
	rc, err := u.efile.SyscallConn()
	if err != nil {
		return
	}
	rc.Read(func(uintptr) bool {
		u.wake()
		return false
	})
}

// newPool starts the fallback pool. Its own non-blocking attempt is off:
// Submit has already made it (nowait.go) before choosing the pool.
func (u *Uring) newPool(workers int) *Pool {
	p := NewPool(workers, u.wake)
	p.nowait.off = true
	return p
}

func (u *Uring) Name() string { return "uring" }

// Unsupported lists the kinds that have an io_uring opcode this kernel
// lacks; they run on the pool.
func (u *Uring) Unsupported() []Kind { return u.unsupported }

// OnRing reports whether ops of kind k go to the ring (when not
// fault-injected).
func (u *Uring) OnRing(k Kind) bool { return k < numKinds && u.onRing[k] }

// useRing decides where op runs; Submit records it in op.onPool.
func (u *Uring) useRing(id uint64, op *Op) bool {
	if op.Kind >= numKinds || !u.onRing[op.Kind] || op.Delay != 0 || op.Fail != 0 || id == cancelUserData {
		return false
	}
	switch op.Kind {
	case OpRead, OpWrite, OpReadv, OpWritev:
		if u.nowait.blocksOn(op) {
			// The file system has no non-blocking I/O: io_uring would
			// hand the op to an io-wq thread, which costs more than
			// the pool (nowait.go).
			return false
		}
		// Negative offsets mean "file position" to io_uring but EINVAL
		// to pread; len is 32 bits in the SQE.
		return op.Off >= 0 && len(op.Buf) <= math.MaxInt32
	case OpOpenat:
		// openat2's resolve flags need IORING_OP_OPENAT2; the pool has them.
		return cstrOK(op.Path) && op.Resolve == 0
	case OpStatx, OpUnlinkat, OpMkdirat:
		return cstrOK(op.Path)
	case OpFgetxattr, OpFsetxattr:
		return cstrOK(op.Path) && len(op.Buf) <= math.MaxInt32
	case OpRenameat, OpSymlinkat, OpLinkat:
		return cstrOK(op.Path) && cstrOK(op.Path2)
	case OpGetxattr, OpSetxattr:
		return cstrOK(op.Path) && cstrOK(op.Path2) && len(op.Buf) <= math.MaxInt32
	}
	return true
}

// cstrOK: a NUL inside a name would silently cut it short on the ring;
// the pool reports EINVAL like the syscall wrappers do.
func cstrOK(s string) bool { return strings.IndexByte(s, 0) < 0 }

// Submit prepares op's SQE (or queues it on the pool). Loop-only.
func (u *Uring) Submit(id uint64, op *Op) {
	u.stats.Submitted++
	u.nowait.forget(op)
	if res, ok := u.nowait.try(op); ok {
		u.done = append(u.done, Completion{ID: id, Res: res})
		return
	}
	op.onPool = !u.useRing(id, op)
	if op.onPool {
		u.stats.Fallbacks++
		u.poolInflight++
		u.pool.Submit(id, op)
		return
	}
	if len(u.backlog) > 0 || !u.push(id, op) {
		if len(u.backlog) == 0 {
			u.stats.RingFull++
		}
		u.backlog = append(u.backlog, uringPending{id: id, op: op})
	}
}

// push puts op in the SQ; false if the ring cannot take it now.
func (u *Uring) push(id uint64, op *Op) bool {
	if u.inflight >= uringCQEntries {
		return false
	}
	sqe := u.getSQE()
	if sqe == nil {
		return false
	}
	u.fill(sqe, uringPending{id: id, op: op})
	return true
}

func (u *Uring) fill(sqe *SQE, p uringPending) {
	if p.cancel {
		sqe.PrepCancel(p.id, 0)
		sqe.UserData = cancelUserData
		return
	}
	u.prep(sqe, p.op)
	sqe.UserData = p.id
	u.inflight++
}

// getSQE returns a free SQE, submitting the full SQ once to make room.
func (u *Uring) getSQE() *SQE {
	if sqe := u.ring.GetSQE(); sqe != nil {
		return sqe
	}
	u.stats.RingFull++
	u.submit()
	return u.ring.GetSQE()
}

// submit hands every queued SQE to the kernel. On EAGAIN/EBUSY (kernel
// short of memory, or completions backed up) the SQEs stay queued and a
// wake guarantees another loop turn to retry.
func (u *Uring) submit() {
	for u.ring.SQPending() > 0 {
		n, err := u.ring.Submit()
		if err != nil || n == 0 {
			u.wake()
			return
		}
	}
}

func (u *Uring) prep(sqe *SQE, op *Op) {
	switch op.Kind {
	case OpNop:
		sqe.PrepNop()
	case OpRead:
		sqe.PrepRead(op.Fd, op.Buf, uint64(op.Off))
	case OpWrite:
		sqe.PrepWrite(op.Fd, op.Buf, uint64(op.Off))
	case OpReadv:
		op.iovecs = iovecs(op.iovecs[:0], op.Iov)
		sqe.PrepReadv(op.Fd, op.iovecs, uint64(op.Off))
	case OpWritev:
		op.iovecs = iovecs(op.iovecs[:0], op.Iov)
		sqe.PrepWritev(op.Fd, op.iovecs, uint64(op.Off))
	case OpFsync:
		sqe.PrepFsync(op.Fd, op.Flags&FsyncDatasync)
	case OpOpenat:
		sqe.PrepOpenat(op.Fd, cstr(&op.pathz, op.Path), int(op.Flags)|unix.O_CLOEXEC, op.Mode)
	case OpClose:
		sqe.PrepClose(op.Fd)
	case OpStatx:
		sqe.PrepStatx(op.Fd, cstr(&op.pathz, op.Path), int(op.Flags), op.Mask, &op.Stat)
	case OpUnlinkat:
		sqe.PrepUnlinkat(op.Fd, cstr(&op.pathz, op.Path), int(op.Flags))
	case OpRenameat:
		sqe.PrepRenameat(op.Fd, cstr(&op.pathz, op.Path), op.Fd2, cstr(&op.path2z, op.Path2), op.Flags)
	case OpMkdirat:
		sqe.PrepMkdirat(op.Fd, cstr(&op.pathz, op.Path), op.Mode)
	case OpSymlinkat:
		sqe.PrepSymlinkat(cstr(&op.path2z, op.Path2), op.Fd, cstr(&op.pathz, op.Path))
	case OpLinkat:
		sqe.PrepLinkat(op.Fd, cstr(&op.pathz, op.Path), op.Fd2, cstr(&op.path2z, op.Path2), int(op.Flags))
	case OpFallocate:
		sqe.PrepFallocate(op.Fd, op.Mode, uint64(op.Off), uint64(op.Len))
	case OpFtruncate:
		sqe.PrepFtruncate(op.Fd, op.Len)
	case OpFgetxattr:
		sqe.PrepFgetxattr(op.Fd, cstr(&op.pathz, op.Path), op.Buf)
	case OpFsetxattr:
		sqe.PrepFsetxattr(op.Fd, cstr(&op.pathz, op.Path), op.Buf, int(op.Flags))
	case OpGetxattr:
		sqe.PrepGetxattr(cstr(&op.pathz, op.Path), cstr(&op.path2z, op.Path2), op.Buf)
	case OpSetxattr:
		sqe.PrepSetxattr(cstr(&op.pathz, op.Path), cstr(&op.path2z, op.Path2), op.Buf, int(op.Flags))
	default:
		panic("aio: no io_uring prep for " + op.Kind.String())
	}
}

// cstr stores s NUL-terminated in *buf (the op's scratch, reused) and
// returns a pointer to it.
func cstr(buf *[]byte, s string) *byte {
	b := append(append((*buf)[:0], s...), 0)
	*buf = b
	return &b[0]
}

func iovecs(dst []unix.Iovec, iov [][]byte) []unix.Iovec {
	for _, b := range iov {
		v := unix.Iovec{}
		if len(b) > 0 {
			v.Base = &b[0]
			v.SetLen(len(b))
		}
		dst = append(dst, v)
	}
	return dst
}

// Flush moves backlogged ops into the SQ and submits the turn's SQEs
// with one io_uring_enter; then flushes the pool. Loop-only.
func (u *Uring) Flush() {
	if len(u.backlog) > 0 {
		u.drain()
	}
	if u.ring.SQPending() > 0 {
		// Ops that complete inline during the submit need no wakeup: the
		// loop reaps right after Flush. Silence the eventfd meanwhile; a
		// CQE posted in this window is in the CQ before the Reap that
		// follows, so none is missed. (EVENTFD_ASYNC would not do: io-wq
		// completions are posted from the submitter's task_work and
		// would never signal.)
		u.ring.CQEventfdToggle(false)
		u.submit()
		u.ring.CQEventfdToggle(true)
	}
	u.pool.Flush()
}

// drain moves what fits from the backlog into the SQ, keeping order.
// Cancels do not wait for CQ budget: they are what frees it.
func (u *Uring) drain() {
	rest := u.backlog[:0]
	for i, p := range u.backlog {
		if !p.cancel && u.inflight >= uringCQEntries {
			rest = append(rest, p)
			continue
		}
		sqe := u.getSQE()
		if sqe == nil { // the kernel took nothing (EAGAIN/EBUSY): retry next turn
			rest = append(rest, u.backlog[i:]...)
			break
		}
		u.fill(sqe, p)
	}
	clear(u.backlog[len(rest):])
	u.backlog = rest
}

// Reap appends every available completion: the CQ's (cancel CQEs
// swallowed), the pool's, and backlog cancellations. Loop-only.
func (u *Uring) Reap(dst []Completion) []Completion {
	n0 := len(dst)
	if len(u.done) > 0 {
		dst = append(dst, u.done...)
		clear(u.done)
		u.done = u.done[:0]
	}
	for {
		cqe, ok := u.ring.PeekCQE()
		if !ok {
			break
		}
		id, res := cqe.UserData, cqe.Res
		u.ring.CQESeen(cqe)
		if id == cancelUserData {
			continue
		}
		if id == wakeUserData {
			u.wakeArmed = false
			continue
		}
		u.inflight--
		dst = append(dst, Completion{ID: id, Res: int64(res)})
	}
	if u.poolInflight > 0 {
		n := len(dst)
		dst = u.pool.Reap(dst)
		u.poolInflight -= len(dst) - n
	}
	u.stats.Completed += uint64(len(dst) - n0)
	return dst
}

// Cancel asks that op not run: a backlogged op completes with -ECANCELED
// at once, a ring op gets an ASYNC_CANCEL SQE (flushed with the turn), a
// pool op is left to the pool. Loop-only.
func (u *Uring) Cancel(id uint64, op *Op) {
	op.cancel()
	if op.onPool {
		u.pool.Cancel(id, op)
		return
	}
	for i, p := range u.backlog {
		if !p.cancel && p.id == id {
			u.backlog = slices.Delete(u.backlog, i, i+1)
			u.done = append(u.done, Completion{ID: id, Res: -int64(unix.ECANCELED)})
			u.wake()
			return
		}
	}
	p := uringPending{id: id, cancel: true}
	if sqe := u.getSQE(); sqe != nil {
		u.fill(sqe, p)
	} else {
		u.backlog = append(u.backlog, p)
	}
}

// OnWorkers counts the ops sent to the fallback pool. Ring ops are not
// counted: the kernel runs them, most waiting on a device (the kinds it
// always hands to io-wq threads go to the pool, uringPunted, unless
// Config.RingAll). Loop-only.
func (u *Uring) OnWorkers() int { return u.poolInflight }

// Stats returns the counters. Loop-only.
func (u *Uring) Stats() Stats {
	s := u.stats
	s.Inline = u.nowait.hits
	return s
}

// Close cancels whatever is still on the ring and waits for it (the
// kernel may be using the ops' memory until their CQEs), then stops the
// wake goroutine and the pool and releases the ring. Call it once the
// loop has stopped using the backend.
func (u *Uring) Close() error {
	if u.closed {
		return nil
	}
	u.closed = true
	u.backlog = nil
	if u.inflight > 0 {
		if sqe := u.getSQE(); sqe != nil {
			sqe.PrepCancel(0, IORING_ASYNC_CANCEL_ALL|IORING_ASYNC_CANCEL_ANY)
			sqe.UserData = cancelUserData
		}
		u.submit()
		for u.inflight > 0 {
			cqe, err := u.ring.WaitCQE()
			if err != nil {
				break
			}
			if cqe.UserData != cancelUserData && cqe.UserData != wakeUserData {
				u.inflight--
			}
			u.ring.CQESeen(cqe)
		}
	}
	if u.efile != nil {
		u.efile.Close()
	}
	<-u.readerDone
	if u.waitInRing {
		unix.Close(u.wakeFd)
	}
	u.pool.Close()
	return u.ring.Close()
}
