package fs

import (
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/loop"
)

// request is one FUSE request on its way through the loop. The go-fuse
// goroutine that received it parks on done; the loop fills in status and
// signals done exactly once (invariant 4).
type request struct {
	op    op
	hdr   *fuse.InHeader
	start time.Duration // when it arrived (loop.Mono)
	stats *opStats      // the loop-owned table its reply is counted in
	done  chan struct{}

	status fuse.Status

	// Owned by the loop goroutine.
	opID        uint64 // the operation in flight for this request, 0 if none
	interrupted bool
	progressed  bool // a step of its chain has succeeded
	offRoot     bool // an op may have left the root's file system, or may wait: no later op runs on the spot (resident.go)
	replied     bool
	// undo, if set, runs when the request is answered with an error: it
	// releases what earlier steps of the chain acquired (CREATE's open
	// file), whichever later step failed.
	undo func()
	// atReply, if set, runs when the request is answered, whatever the
	// status: it ends the request's I/O spans (ioorder.go).
	atReply func()
	// k is the continuation of the op started with r.cont (handlers.start),
	// failFast whether a failure answers the request before k would run.
	// cont is r.opDone, made once and kept when the request is reused.
	k        func(res int64)
	failFast bool
	cont     loop.Continuation

	// Requests read by evfs's own transport (session.go) are answered by
	// writing to /dev/fuse instead of waking a go-fuse goroutine: sess is
	// set, buf is the input buffer the request was read into (owned until
	// the reply: names, WRITE data and READ's destination live in it),
	// out holds the opcode's reply struct (outSize bytes of it are sent on
	// success) and payload the variable part (READ data, dirents, …).
	sess    *session
	buf     []byte
	ent     int // the ring entry it came from ("uring" transport), -1 for /dev/fuse
	out     outStruct
	outSize int
	payload []byte
	// What handlers report besides the status, for payloadOf.
	count      int                // READ: bytes read
	dirList    *fuse.DirEntryList // READDIR(PLUS): the entries
	xattrN     uint32             // GETXATTR/LISTXATTR: value size
	xattrProbe bool               // GETXATTR/LISTXATTR with size 0
}

// outStruct is room for the largest reply struct (CreateOut, 144 bytes),
// 8-byte aligned so go-fuse's structs can be laid over it.
type outStruct [24]uint64

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

func newRequest(o op, hdr *fuse.InHeader, stats *opStats) *request {
	r := requestPool.Get().(*request)
	r.op, r.hdr, r.stats, r.start = o, hdr, stats, loop.Mono()
	r.status, r.opID, r.interrupted, r.progressed, r.replied, r.offRoot = fuse.OK, 0, false, false, false, false
	r.undo, r.atReply, r.k = nil, nil, nil
	return r
}

// opDone is the continuation of the op started with r.cont. Loop-only.
func (r *request) opDone(res int64) {
	k := r.k
	r.k = nil // free for the next op of the chain, which k may start
	r.finishOp(res, k, r.failFast)
}

// finishOp records a completed op of r's chain and passes its result
// to k; with failFast, a failure answers the request instead.
func (r *request) finishOp(res int64, k func(int64), failFast bool) {
	r.opID = 0
	if res == -int64(unix.ECANCELED) && r.interrupted {
		res = -int64(unix.EINTR)
	}
	if res < 0 && failFast {
		r.fail(res)
		return
	}
	if res >= 0 {
		r.progressed = true
	}
	k(res)
}

// reply answers the request. Loop-only.
func (r *request) reply(st fuse.Status) {
	if r.replied {
		panic("evfs: request " + r.op.String() + " answered twice")
	}
	r.replied = true
	r.status = st
	if undo := r.undo; undo != nil {
		r.undo = nil
		if st != fuse.OK {
			undo()
		}
	}
	if atReply := r.atReply; atReply != nil {
		r.atReply = nil
		atReply()
	}
	r.stats.record(r.op, st == fuse.OK, loop.Mono()-r.start)
	if r.sess != nil {
		r.sess.send(r)
		return
	}
	r.done <- struct{}{}
}

// fail answers with the errno carried by a negative completion value.
func (r *request) fail(res int64) { r.reply(fuse.Status(-res)) }

// errno answers with an errno.
func (r *request) errno(e unix.Errno) { r.reply(fuse.Status(e)) }

// caller returns the uid and gid from the request header.
func (r *request) caller() (uint32, uint32) { return r.hdr.Caller.Uid, r.hdr.Caller.Gid }
