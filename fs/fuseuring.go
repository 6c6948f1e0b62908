package fs

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/aio"
)

// FUSE over io_uring (Linux 6.14+, the fuse module's enable_uring
// parameter): after INIT the kernel hands requests to the daemon as
// io_uring completions instead of through read(2) on /dev/fuse, and takes
// each reply with the command that also fetches the entry's next request
// (COMMIT_AND_FETCH). The loop reaps that ring like any watched source,
// and the replies of one pass leave in one io_uring_enter (flush).
//
// The kernel keeps one queue per possible CPU and puts a request on the
// queue of the CPU its process runs on; every queue needs entries before
// the kernel uses the ring at all. Each entry is a command the daemon
// posted with two buffers: headers (the in/out header, the opcode's own
// header, and the entry's bookkeeping) and a payload buffer as large as the
// largest message. FORGET, INTERRUPT and notifications still use
// /dev/fuse.
//
// io_uring completes a command with task_work on the thread that
// submitted it: the request is copied into the entry's buffers by that
// thread, when it next enters or leaves the kernel (woken if it sleeps).
// So the loop keeps one OS thread for as long as it serves the ring
// (loop.Config.LockThread). Unpinned, a Go thread the loop had left could
// be the one a request waited for while it was itself blocked in a call
// on the mount (the poll probe, a test, any in-process client): tried, it
// deadlocked the test process in the kernel for good (a thread in D state
// waiting for the answer whose delivery was queued on it; aborting the
// connection does not end a request already given to an entry).
//
// Owned by the loop goroutine; never touch from elsewhere.
type fuseRing struct {
	ring *aio.Ring
	log  *slog.Logger
	fd   int // /dev/fuse
	ents []uringEnt
	mem  []byte // every entry's buffers, one mapping

	requests uint64 // delivered so far (Snapshot.RingRequests)
}

// uringEnt is one ring entry: its queue and buffers.
type uringEnt struct {
	qid     uint16
	hdr     []byte // struct fuse_uring_req_header
	payload []byte
	iov     [2]unix.Iovec
}

// The kernel ABI (include/uapi/linux/fuse.h).
const (
	capOverIOUring         = 1 << 41 // FUSE_OVER_IO_URING (INIT flags2)
	uringCmdRegister       = 1       // FUSE_IO_URING_CMD_REGISTER
	uringCmdCommitAndFetch = 2       // FUSE_IO_URING_CMD_COMMIT_AND_FETCH
	uringInOutSize         = 128     // fuse_uring_req_header.in_out
	uringOpInSize          = 128     // fuse_uring_req_header.op_in
	uringEntInOut          = uringInOutSize + uringOpInSize
	uringHeaderSize        = uringEntInOut + 32 // + struct fuse_uring_ent_in_out
	fuseMinReadBuffer      = 8192
)

// uringDepth is how many entries each CPU's queue gets. A queue with none
// free holds the CPU's next requests in the kernel until one is committed.
const uringDepth = 8

// uringEnabledPath is the fuse module parameter that allows the ring (a
// variable for a test).
var uringEnabledPath = "/sys/module/fuse/parameters/enable_uring"

// fuseURingAvailable says why the uring transport cannot be used, or nil.
// Called by NewMount, before the loop runs (it reads sysfs).
func fuseURingAvailable() error {
	b, err := os.ReadFile(uringEnabledPath)
	if err != nil {
		return fmt.Errorf("FUSE over io_uring needs Linux 6.14+ with CONFIG_FUSE_IO_URING (%w)", err)
	}
	if strings.TrimSpace(string(b)) != "Y" {
		return fmt.Errorf("FUSE over io_uring is disabled: as root, echo Y > %s", uringEnabledPath)
	}
	return nil
}

// possibleCPUs is the kernel's num_possible_cpus(): the number of queues.
// Called by NewMount, before the loop runs (it reads sysfs).
func possibleCPUs() (int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("parse cpu list %q: %w", b, err)
		}
		z := a
		if isRange {
			if z, err = strconv.Atoi(hi); err != nil {
				return 0, fmt.Errorf("parse cpu list %q: %w", b, err)
			}
		}
		n = max(n, z+1)
	}
	return n, nil
}

// startRing sets up the ring once INIT is answered: every queue gets its
// entries (REGISTER commands), and the ring joins the loop's sources.
// maxPayload is the kernel's largest message (max_write, max_pages).
//
// It runs on the loop, once, while the kernel holds every request: the
// calls here are mount-time setup (io_uring_setup, an anonymous mmap, the
// REGISTER submission, which the kernel queues without waiting).
func (s *session) startRing(maxPayload int) error {
	n := s.cfg.uringQueues * uringDepth
	ring, err := aio.NewRing(uint32(n), aio.IORING_SETUP_SQE128|aio.IORING_SETUP_CLAMP)
	if err != nil {
		return fmt.Errorf("io_uring for FUSE: %w", err)
	}
	payload := (max(maxPayload, fuseMinReadBuffer) + pageSize - 1) &^ (pageSize - 1)
	per := pageSize + payload // the headers' page, then the payload
	mem, err := unix.Mmap(-1, 0, n*per, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		ring.Close()
		return fmt.Errorf("ring buffers: %w", err)
	}
	fr := &fuseRing{ring: ring, log: s.log, fd: s.fd, ents: make([]uringEnt, n), mem: mem}
	for i := range fr.ents {
		e := &fr.ents[i]
		b := mem[i*per : (i+1)*per]
		e.qid, e.hdr, e.payload = uint16(i/uringDepth), b[:uringHeaderSize], b[pageSize:]
		e.iov[0] = unix.Iovec{Base: &e.hdr[0]}
		e.iov[0].SetLen(len(e.hdr))
		e.iov[1] = unix.Iovec{Base: &e.payload[0]}
		e.iov[1].SetLen(len(e.payload))
		fr.post(i, uringCmdRegister, 0)
	}
	if _, err := ring.Submit(); err != nil {
		fr.close()
		return fmt.Errorf("register FUSE ring entries: %w", err)
	}
	// A REGISTER the kernel refused completes at once: report it now.
	if cqe, ok := ring.PeekCQE(); ok && cqe.Res < 0 {
		err := unix.Errno(-cqe.Res)
		fr.close()
		return fmt.Errorf("register FUSE ring entries: %w", err)
	}
	if err := s.loop.Watch(ring.Fd(), s.drainRing); err != nil {
		fr.close()
		return err
	}
	s.ring = fr
	s.loop.OnPass(fr.flush)
	return nil
}

// post queues entry i's next command; flush submits.
func (fr *fuseRing) post(i int, cmd uint32, commitID uint64) {
	e := &fr.ents[i]
	// The SQ has a slot per entry and an entry one command at a time, so
	// a slot is free unless a Submit failed; then submit first.
	sqe := fr.ring.GetSQE()
	if sqe == nil {
		fr.ring.Submit()
		if sqe = fr.ring.GetSQE(); sqe == nil {
			fr.log.Error("FUSE ring: no submission slot; entry lost", "queue", e.qid)
			return
		}
	}
	sqe.PrepURingCmd(fr.fd, cmd, unsafe.Pointer(&e.iov[0]), 2)
	c := sqe.Cmd()
	binary.NativeEndian.PutUint64(c[8:], commitID) // fuse_uring_cmd_req: flags, commit_id, qid
	binary.NativeEndian.PutUint16(c[16:], e.qid)
	sqe.UserData = uint64(i)
}

// flush submits the commands the pass queued (the pass's replies, each
// with its entry's next fetch): one io_uring_enter per pass. The kernel
// runs a COMMIT_AND_FETCH within the call and never waits in it: it
// copies the reply, ends the request, and parks the entry or hands it
// the next queued request.
func (fr *fuseRing) flush() {
	if fr.ring != nil && fr.ring.SQPending() > 0 {
		fr.ring.Submit()
	}
}

// close releases the ring (the kernel cancels the commands still posted)
// and then the buffers.
func (fr *fuseRing) close() {
	if fr.ring == nil {
		return
	}
	fr.ring.Close()
	fr.ring = nil
	unix.Munmap(fr.mem)
}

// drainRing dispatches the requests the ring delivered, at most readBatch;
// found if there were any, more if more may be waiting.
func (s *session) drainRing() (found, more bool) {
	fr := s.ring
	for got := 0; got < readBatch; got++ {
		if s.closed || fr.ring == nil {
			return got > 0, false
		}
		cqe, ok := fr.ring.PeekCQE()
		if !ok {
			return got > 0, false
		}
		i, res := int(cqe.UserData), cqe.Res
		fr.ring.CQESeen(cqe)
		if i >= len(fr.ents) {
			continue
		}
		if res < 0 {
			// ENOTCONN: the connection is going away, and the /dev/fuse
			// read ends the session.
			if res != -int32(unix.ENOTCONN) {
				s.log.Warn("FUSE ring entry lost", "queue", fr.ents[i].qid, "errno", unix.Errno(-res).Error())
			}
			continue
		}
		fr.requests++
		s.dispatchEnt(i)
	}
	return true, true
}

// dispatchEnt copies entry i's request into a request buffer, laid out as
// a read from /dev/fuse would have left it, and dispatches it; its reply
// goes back through the entry (sendEnt).
func (s *session) dispatchEnt(i int) {
	e := &s.ring.ents[i]
	hdr := (*fuse.InHeader)(unsafe.Pointer(&e.hdr[0]))
	psz := int(binary.NativeEndian.Uint32(e.hdr[uringEntInOut+16:])) // ent_in_out.payload_sz
	hsz := int(hdr.Length) - int(unsafe.Sizeof(*hdr)) - psz          // the opcode's own header
	buf := s.getBuf()
	if buf == nil || hsz < 0 || hsz > uringOpInSize || psz > len(e.payload) || inOff+int(hdr.Length) > len(buf) {
		s.log.Error("malformed FUSE ring request", "opcode", hdr.Opcode, "len", hdr.Length, "payload", psz)
		s.putBuf(buf)
		s.commit(i, hdr.Unique, fuse.EIO, 0)
		return
	}
	in := buf[inOff : inOff+int(hdr.Length)]
	n := copy(in, e.hdr[:unsafe.Sizeof(*hdr)])
	n += copy(in[n:], e.hdr[uringInOutSize:uringInOutSize+hsz])
	copy(in[n:], e.payload[:psz])
	s.ent = i
	s.dispatch(buf, in)
	s.ent = -1
}

// sendEnt answers r through its ring entry: the reply struct and payload
// as the entry's payload, then the commit.
func (s *session) sendEnt(r *request, st fuse.Status) {
	e := &s.ring.ents[r.ent]
	n := 0
	if st == fuse.OK {
		if r.outSize > 0 {
			n += copy(e.payload, unsafe.Slice((*byte)(unsafe.Pointer(&r.out[0])), r.outSize))
		}
		if len(r.payload) > 0 && &r.payload[0] != &e.payload[n] { // a READ's data is there already (readDest)
			n += copy(e.payload[n:], r.payload)
		} else {
			n += len(r.payload)
		}
	}
	s.commit(r.ent, r.hdr.Unique, st, n)
}

// commit answers entry i's request unique with st and n bytes of payload
// already in the entry, and fetches the entry's next request.
func (s *session) commit(i int, unique uint64, st fuse.Status, n int) {
	e := &s.ring.ents[i]
	oh := (*fuse.OutHeader)(unsafe.Pointer(&e.hdr[0]))
	*oh = fuse.OutHeader{Length: uint32(int(unsafe.Sizeof(*oh)) + n), Status: -int32(st), Unique: unique}
	binary.NativeEndian.PutUint32(e.hdr[uringEntInOut+16:], uint32(n)) // ent_in_out.payload_sz
	s.ring.post(i, uringCmdCommitAndFetch, unique)
}
