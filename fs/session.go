package fs

import (
	"log/slog"
	"sync"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/loop"
)

// session is evfs's own FUSE transport: the loop itself reads requests
// from /dev/fuse (non-blocking, watched by the loop's poll), runs their
// handlers, and writes each reply to /dev/fuse from the continuation that
// completes the request. No goroutine stands between the kernel and the
// handlers, so a request costs no goroutine handoff at all: the kernel
// wakes the loop thread, and the loop answers. (The go-fuse transport,
// Bridge, parks a go-fuse reader goroutine per request instead.)
//
// Owned by the loop goroutine; never touch from elsewhere — except fdMu
// and fdGone, with which notifyEntry (on the eviction goroutine) makes
// sure it never writes to the fd number after it was closed.
type session struct {
	fd     int
	fdMu   sync.RWMutex
	fdGone bool

	h    *handlers
	loop *loop.Loop
	log  *slog.Logger
	dbg  bool
	cfg  *Config

	bufSize  int
	free     [][]byte            // input buffers not in use
	reqs     []*request          // requests not in use
	inflight map[uint64]*request // by unique: INTERRUPT finds its target here
	hdr      fuse.OutHeader      // reply header scratch
	iov      [3]unix.Iovec       // reply scratch

	negotiated uint64        // INIT flags agreed with the kernel
	inited     chan struct{} // closed once INIT is answered
	ended      chan struct{} // closed when the connection is gone and every fd closed
	closed     bool
	probing    bool     // the poll probe file exists (pollprobe.go)
	readLimit  int      // requests the next drain may read (see drain)
	lastWaited int      // requests a process waits for that the last drain read
	skipBig    bool     // after a big reply the loop sleeps at once (bigReply)
	follow     follower // the loop follows its client's CPU (follow.go)
	lastTid    uint32   // the thread of the request read last

	ring *fuseRing // the "uring" transport's ring (fuseuring.go), nil otherwise
	ent  int       // the ring entry whose request is being dispatched, -1 for none
}

// Input buffer layout. Every request is read at inOff, so that a WRITE's
// data (after the 40-byte InHeader and 40-byte WriteIn) starts on a page
// boundary: backing files opened O_DIRECT need aligned buffers. READ's
// destination is the page after that; other replies with a payload
// (dirents, xattrs) use the page after that one, clear of their inputs.
const (
	pageSize     = 4096
	writeHdrSize = int(unsafe.Sizeof(fuse.WriteIn{}))
	inOff        = pageSize - writeHdrSize
	readOff      = pageSize
	payloadOff   = 2 * pageSize
	// readBatch bounds the requests read in one drain, so completions
	// and replies interleave with a flood of new requests.
	readBatch = 32
	// bigReply: after a reply this large the loop does not spin
	// (loop.SkipSpin) — when the daemon may run on more than one CPU
	// (skipBig). A spinning loop keeps its CPU, so the requester it
	// wakes runs on the other one, and a big read is far slower when the
	// two run apart (32 KiB O_DIRECT reads, free placement, 20 rounds:
	// p50 20 µs with the skip, 46 without). A daemon confined to one CPU
	// gains nothing from it and pays: the loop sleeps after every reply,
	// and a requester sharing that CPU, or one pinned to another, finds
	// it asleep (128 KiB reads on one CPU: p90 100 µs with the skip, 45
	// without, daemon CPU 42 → 29 µs/read; client on the other CPU: p50
	// 129 → 90 µs; docs/BENCHMARKS-history.md).
	bigReply = 32 << 10
)

func newSession(fd int, h *handlers, l *loop.Loop, cfg *Config) *session {
	return &session{
		fd: fd, h: h, loop: l, log: cfg.Logger, dbg: cfg.Debug, cfg: cfg,
		// The kernel refuses reads into buffers smaller than
		// max_write + headers; READ replies up to max_write go at readOff.
		bufSize:   (cfg.MaxWrite + 3*pageSize + pageSize - 1) &^ (pageSize - 1),
		inflight:  make(map[uint64]*request),
		probing:   !cfg.NoPollProbe,
		readLimit: 1,
		skipBig:   allowedCPUs() != 1,
		follow:    follower{on: !cfg.NoFollow},
		ent:       -1,
		inited:    make(chan struct{}),
		ended:     make(chan struct{}),
	}
}

// allowedCPUs is how many CPUs the calling thread may run on (its
// affinity: taskset, a cpuset), read when the session starts; 0 if
// unknown. Threads Go starts later inherit it.
func allowedCPUs() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil {
		return 0
	}
	return set.Count()
}

// getBuf returns a page-aligned input buffer. Buffers are mmapped: off the
// Go heap (never scanned, never moved), and their pages are committed only
// as far as requests actually fill them.
func (s *session) getBuf() []byte {
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free = s.free[:n-1]
		return b
	}
	b, err := unix.Mmap(-1, 0, s.bufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil
	}
	return b
}

func (s *session) putBuf(b []byte) {
	if b != nil {
		s.free = append(s.free, b)
	}
}

// drain reads and dispatches the requests waiting on /dev/fuse, at most
// readLimit of them; found if it got any, more if it stopped with more
// possibly waiting.
//
// The limit adapts. At queue depth 1 each wake brings one request, and the
// read after it can only say EAGAIN: done before the backend is flushed,
// that read would sit on the request's critical path. So a drain that
// found at most one request reads just one next time, returning to the
// loop, which flushes the backend (and, for an op that completes at once,
// replies) before the next drain's read. A drain that stopped at its limit
// doubles it, up to readBatch, so a flood is still read in batches.
func (s *session) drain() (found, more bool) {
	// The last drain found more than one request that a process waits
	// for: they are queueing, and their calls are better shared with the
	// pool's workers than done one by one on the loop (resident.go). At
	// queue depth 1 a drain never finds two.
	s.h.queued = s.lastWaited > 1
	got, waited, more := s.readRequests(s.readLimit)
	s.lastWaited = waited
	if waited == 1 {
		s.ask(s.lastTid) // one client: the loop may follow it (follow.go)
	}
	if waited > 1 {
		s.loop.Queueing() // several clients: the long spin (loop.Loop.spinFor)
	}
	switch {
	case more:
		s.readLimit = min(2*s.readLimit, readBatch)
	case got <= 1:
		s.readLimit = 1
	}
	return got > 0, more
}

// readRequests reads and dispatches up to limit requests, of which
// waited are ones a process waits for (waitedFor); more is true if it
// stopped at the limit.
func (s *session) readRequests(limit int) (got, waited int, more bool) {
	for ; got < limit; got++ {
		if s.closed {
			return got, waited, false
		}
		buf := s.getBuf()
		if buf == nil {
			// Out of memory: the device stays readable, so the loop
			// comes back here after its next wait.
			s.log.Error("cannot allocate a request buffer", "size", s.bufSize)
			return got, waited, false
		}
		// The transport, not the backing fs: the device is non-blocking
		// (devmount.go), so this read answers at once, EAGAIN when empty.
		n, err := unix.Read(s.fd, buf[inOff:])
		if err == nil && n == 0 {
			err = unix.ENODEV // end of file: /dev/fuse says ENODEV, a socket (tests) EOF
		}
		switch err {
		case nil:
			if s.dispatch(buf, buf[inOff:inOff+n]) {
				waited++
			}
		case unix.EAGAIN:
			s.putBuf(buf)
			return got, waited, false
		case unix.EINTR, unix.ENOENT: // ENOENT: interrupted before we read it
			s.putBuf(buf)
		default: // ENODEV: unmounted or aborted
			s.putBuf(buf)
			s.end(err)
			return got, waited, false
		}
	}
	return got, waited, true
}

// newRequest takes a request from the free list for the input in buf.
func (s *session) newRequest(o op, buf []byte, hdr *fuse.InHeader) *request {
	var r *request
	if n := len(s.reqs); n > 0 {
		r = s.reqs[n-1]
		s.reqs = s.reqs[:n-1]
	} else {
		r = &request{}
	}
	*r = request{op: o, hdr: hdr, start: loop.Mono(), stats: &s.h.stats, status: fuse.OK,
		sess: s, buf: buf, ent: s.ent, cont: r.cont}
	s.inflight[hdr.Unique] = r
	s.lastTid = hdr.Pid
	if s.dbg {
		s.log.Debug("rx", "op", fuseOpName(hdr.Opcode), "node", hdr.NodeId, "unique", hdr.Unique, "pid", hdr.Pid)
	}
	return r
}

// readDest is where a READ's data goes: the page after its input, or,
// for a request the ring delivered, straight into its entry's payload
// buffer (page-aligned, as O_DIRECT wants), from which the commit sends
// it without a copy.
func (s *session) readDest(r *request) []byte {
	if r.ent >= 0 && s.ring != nil {
		return s.ring.ents[r.ent].payload
	}
	return r.buf[readOff:]
}

// send writes r's reply — to /dev/fuse, or through the ring entry the
// request came from — and recycles r. Called by request.reply, exactly
// once per request.
func (s *session) send(r *request) {
	st := s.payloadOf(r)
	switch {
	case r.ent < 0:
		s.writeDev(r, st)
	case s.ring != nil && !s.closed:
		s.sendEnt(r, st)
	}
	if s.dbg {
		s.log.Debug("tx", "op", fuseOpName(r.hdr.Opcode), "unique", r.hdr.Unique, "status", st.String(), "took", loop.Mono()-r.start)
	}
	s.finish(r)
}

// writeDev writes r's reply to /dev/fuse: header, reply struct, payload.
func (s *session) writeDev(r *request, st fuse.Status) {
	s.hdr = fuse.OutHeader{Unique: r.hdr.Unique, Status: -int32(st)}
	iov := s.iov[:1]
	iov[0] = unix.Iovec{Base: (*byte)(unsafe.Pointer(&s.hdr))}
	iov[0].SetLen(int(unsafe.Sizeof(s.hdr)))
	n := int(unsafe.Sizeof(s.hdr))
	if st == fuse.OK {
		if r.outSize > 0 {
			v := unix.Iovec{Base: (*byte)(unsafe.Pointer(&r.out[0]))}
			v.SetLen(r.outSize)
			iov = append(iov, v)
			n += r.outSize
		}
		if len(r.payload) > 0 {
			v := unix.Iovec{Base: &r.payload[0]}
			v.SetLen(len(r.payload))
			iov = append(iov, v)
			n += len(r.payload)
		}
	}
	s.hdr.Length = uint32(n)
	s.writeReply(iov)
	if n > bigReply && s.skipBig {
		s.loop.SkipSpin()
	}
}

// writeReply writes one reply message. A reply to a request the kernel
// no longer waits for (interrupted, connection aborted) fails with
// ENOENT or ENODEV: nothing to do.
func (s *session) writeReply(iov []unix.Iovec) {
	if s.closed {
		return
	}
	for {
		_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(s.fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch e {
		case 0, unix.ENOENT, unix.ENODEV:
			return
		case unix.EINTR:
			continue
		}
		s.log.Warn("writing a FUSE reply failed", "errno", e.Error())
		return
	}
}

// finish releases what the request held. An interrupted request is not
// reused: an INTERRUPT timer may still look at it.
func (s *session) finish(r *request) {
	delete(s.inflight, r.hdr.Unique)
	if s.closed {
		unix.Munmap(r.buf)
		if len(s.inflight) == 0 {
			s.release()
		}
		return
	}
	s.putBuf(r.buf)
	if !r.interrupted {
		*r = request{cont: r.cont}
		s.reqs = append(s.reqs, r)
	}
}

// answer sends r's reply with status st without going through a handler
// (INIT, DESTROY, bad input, unserved opcodes, the poll probe): nothing is
// counted in the per-op statistics.
func (s *session) answer(r *request, st fuse.Status) {
	r.replied = true
	r.status = st
	s.send(r)
}

// replyNow answers a request that reached no handler with st.
func (s *session) replyNow(buf []byte, hdr *fuse.InHeader, st fuse.Status) {
	s.answer(s.newRequest(opOther, buf, hdr), st)
}

// interrupt handles FUSE_INTERRUPT. A request already answered needs
// nothing; the kernel expects no reply to the INTERRUPT itself.
func (s *session) interrupt(unique uint64) {
	if r := s.inflight[unique]; r != nil {
		s.h.interrupt(r)
	}
}

// end runs once the connection is gone: stop watching the device, close
// it, and close every backing fd the tables hold (go-fuse's OnUnmount).
func (s *session) end(err error) {
	if s.closed {
		return
	}
	s.closed = true
	s.stopFollowing()
	if err != unix.ENODEV {
		s.log.Warn("ending the FUSE session", "err", err)
	}
	s.loop.Unwatch(s.fd)
	if s.ring != nil {
		s.loop.Unwatch(s.ring.ring.Fd()) // closed in release: READs in flight may target its buffers
	}
	// Closed off the loop: a notification writer may hold the lock.
	go func() {
		s.fdMu.Lock()
		s.fdGone = true
		unix.Close(s.fd)
		s.fdMu.Unlock()
	}()
	for _, b := range s.free {
		unix.Munmap(b)
	}
	s.free = nil
	select {
	case <-s.inited:
	default:
		close(s.inited) // mounted, never initialised: NewMount sees ended
	}
	if len(s.inflight) == 0 {
		s.release()
	} // else the last request to finish does it
}

// release closes the FUSE ring (its buffers may be READ destinations)
// and every backing fd the tables hold, once no request is in
// flight (an op in flight may still use its fd), and announces the end.
func (s *session) release() {
	if s.ring != nil {
		s.ring.close()
	}
	s.h.closeAll()
	close(s.ended)
}

// notifyEntry asks the kernel to forget the name (FUSE_NOTIFY_INVAL_ENTRY).
// Safe from any goroutine; never call it from the loop: the kernel may
// wait for a directory lock held by a request the loop has yet to answer.
func (s *session) notifyEntry(parent uint64, name string) {
	type msg struct {
		hdr fuse.OutHeader
		out fuse.NotifyInvalEntryOut
	}
	m := msg{out: fuse.NotifyInvalEntryOut{Parent: parent, NameLen: uint32(len(name))}}
	b := make([]byte, int(unsafe.Sizeof(m))+len(name)+1)
	m.hdr = fuse.OutHeader{Length: uint32(len(b)), Status: notifyInvalEntry}
	copy(b, unsafe.Slice((*byte)(unsafe.Pointer(&m)), unsafe.Sizeof(m)))
	copy(b[unsafe.Sizeof(m):], name)
	s.fdMu.RLock()
	defer s.fdMu.RUnlock()
	if !s.fdGone {
		unix.Write(s.fd, b) // a notification to the kernel, like a reply: never waits
	}
}
