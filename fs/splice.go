package fs

import (
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Spliced READ replies (loop transport, memory roots).
//
// A READ answered from a buffer copies its data twice: pread copies the
// file's pages into the buffer, and the reply's write copies the buffer
// into the requester's pages. Spliced, the file's pages go into a pipe as
// references (splice from the file: aio.OpSplice) behind the reply
// header, and the whole message goes from the pipe to /dev/fuse (splice
// again), where the kernel copies it once, into the requester's pages.
// That saves a copy per read at the price of a syscall, so only reads of
// spliceMin bytes or more are spliced, and only where the splice runs on
// the spot (a memory root: markMemory), so that a pipe is held for the
// length of one loop turn, not for a trip to a worker. The header goes
// into the pipe first, written for a full read; a shorter splice (end of
// file) takes its data back out of the pipe into the request's buffer
// and finishes as a plain read.

const (
	// spliceMin: a 128 KiB read copied twice took ~55 µs here, a native
	// one (one copy) ~20 µs; below a few pages the extra syscall costs
	// about what the copy saves.
	spliceMin = 32 << 10
	// splicePipes bounds the pipes the session keeps: reads in flight
	// beyond it are copied.
	splicePipes = 8
	// pipeSize holds a header and ResidentIOMax of data in page-sized
	// pipe buffers, with room to spare.
	pipeSize = 256 << 10
)

// replyPipe is one pipe for spliced replies. Owned by the loop goroutine.
type replyPipe struct{ r, w int }

// pipeFor sets r up for a spliced reply of size bytes: a pipe holding the
// reply header of a full read. It returns the pipe's write end, or false
// when r must be copied instead (no pipe to spare). Loop-only.
func (s *session) pipeFor(r *request, size int) (int, bool) {
	if s.noSplice || s.closed || size < spliceMin || size+pageSize > pipeSize {
		return 0, false
	}
	p := s.takePipe()
	if p == nil {
		return 0, false
	}
	hdr := fuse.OutHeader{Length: uint32(int(unsafe.Sizeof(fuse.OutHeader{})) + size), Unique: r.hdr.Unique}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&hdr)), unsafe.Sizeof(hdr))
	if n, err := unix.Write(p.w, b); err != nil || n != len(b) {
		s.closePipe(p)
		return 0, false
	}
	r.pipe = p
	return p.w, true
}

// takePipe returns a free pipe, making one if fewer than splicePipes
// exist; nil if none can be had.
func (s *session) takePipe() *replyPipe {
	if n := len(s.pipes); n > 0 {
		p := s.pipes[n-1]
		s.pipes = s.pipes[:n-1]
		return p
	}
	if s.pipesOpen >= splicePipes {
		return nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil
	}
	if _, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, pipeSize); err != nil {
		// Too small for a whole reply (pipe-max-size lowered): copy.
		unix.Close(fds[0])
		unix.Close(fds[1])
		s.noSplice = true
		s.log.Info("spliced READ replies off: cannot size a pipe", "size", pipeSize, "err", err)
		return nil
	}
	s.pipesOpen++
	return &replyPipe{r: fds[0], w: fds[1]}
}

// putPipe returns an empty pipe to the free list.
func (s *session) putPipe(p *replyPipe) {
	if s.closed {
		s.closePipe(p)
		return
	}
	s.pipes = append(s.pipes, p)
}

// closePipe closes a pipe whose content is of no use.
func (s *session) closePipe(p *replyPipe) {
	unix.Close(p.r)
	unix.Close(p.w)
	s.pipesOpen--
}

// sendPipe sends r's reply, header and data (n bytes), from its pipe,
// and reports whether r is done with: false if the kernel refused the
// message and r still waits for an answer. Loop-only; send's part for
// spliced requests.
func (s *session) sendPipe(r *request, n int) bool {
	p := r.pipe
	r.pipe = nil
	if s.closed {
		s.closePipe(p)
		return true
	}
	for {
		m, err := unix.Splice(p.r, nil, s.fd, nil, n, unix.SPLICE_F_NONBLOCK)
		switch {
		case err == unix.EINTR:
			continue
		case err == nil && int(m) == n:
			s.h.spliced++
			s.putPipe(p)
			return true
		}
		// The pipe's content is of no use now.
		s.closePipe(p)
		if err == unix.ENOENT || err == unix.ENODEV {
			return true // the kernel no longer waits for this reply
		}
		s.log.Warn("splicing a FUSE reply failed; answering EIO", "errno", err, "moved", m, "want", n)
		return false
	}
}

// unsplice takes a short splice's data back: the header is discarded and
// the len(dst) bytes that follow are read into dst; false if they could
// not be. The pipe is released either way. Loop-only.
func (s *session) unsplice(r *request, dst []byte) bool {
	p := r.pipe
	r.pipe = nil
	var hdr [unsafe.Sizeof(fuse.OutHeader{})]byte
	n, err := unix.Read(p.r, hdr[:])
	ok := err == nil && n == len(hdr)
	for got := 0; ok && got < len(dst); got += n {
		n, err = unix.Read(p.r, dst[got:])
		ok = err == nil && n > 0
	}
	if ok {
		s.putPipe(p)
	} else {
		s.closePipe(p)
	}
	return ok
}

// dropPipe releases a request's pipe whose reply will not be spliced (an
// error answer).
func (s *session) dropPipe(r *request) {
	s.closePipe(r.pipe) // holds at least the header: cheaper to close than to drain
	r.pipe = nil
}

// closePipes closes the free pipes at the end of the session.
func (s *session) closePipes() {
	for _, p := range s.pipes {
		s.closePipe(p)
	}
	s.pipes = nil
}

// replyPipe is pipeFor for r's transport: only the session can splice.
func (r *request) replyPipe(size int) (int, bool) {
	if r.sess == nil {
		return 0, false
	}
	return r.sess.pipeFor(r, size)
}

// unsplice is session.unsplice for r.
func (r *request) unsplice(dst []byte) bool { return r.sess.unsplice(r, dst) }
