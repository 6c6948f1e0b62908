package fs

import "math"

// Overlapping I/O on one inode takes effect in the order it arrived.
//
// The kernel can send a READ of a range while a WRITE of that range is
// still in flight: sqlite's WAL mode on the pool and uring backends got
// "database disk image is malformed" and counts going backwards about
// once in 200 runs (docs/BENCHMARKS-history.md, session 14), and every
// failure came with a reader's READ of pages a writer's WRITE had not
// yet finished. A daemon that serves one request at a time applies them
// in arrival order; evfs runs them at once on workers or the ring, where
// the READ may run first and hand back the old bytes, which the kernel
// then caches. So a READ or WRITE that overlaps an earlier one still in
// flight, where either of the two writes, waits for it. Reads among
// themselves never wait: a read with no write in flight on its file
// costs a map lookup, nothing more. The other ops that change
// bytes take part as writes: FALLOCATE, the destination of
// COPY_FILE_RANGE (its source as a read) and a truncating SETATTR, from
// the new size on. The kernel sends an O_DIRECT READ during each of them
// too (TestOverlappingIOInArrivalOrder).

// ioSpan is the byte range of one request admitted on a node (a READ,
// a WRITE, …): running, or waiting for an earlier overlapping span
// (resume is then non-nil).
type ioSpan struct {
	id       uint64
	write    bool
	off, end uint64 // [off, end)
	resume   func()
}

func (s *ioSpan) conflicts(o *ioSpan) bool {
	return (s.write || o.write) && s.off < o.end && o.off < s.end
}

// ioQueue is a node's admitted spans in arrival order.
type ioQueue struct {
	spans  []ioSpan
	writes int // spans that write: while 0, reads need not look
}

// ioOrder tracks the spans of nodes with I/O in flight. Owned by the loop
// goroutine; never touch from elsewhere.
type ioOrder struct {
	// queues holds a queue for every node with I/O in flight, by node id,
	// and one more: the last queue to empty (idle) stays until another
	// empties, so I/O on one file at a time (QD1) finds its queue with a
	// lookup instead of an insert and a delete per request.
	queues map[uint64]*ioQueue
	idle   uint64 // node whose empty queue is kept, 0 if none
	spare  []*ioQueue
	nextID uint64
	waited uint64 // spans that had to wait (Snapshot.OrderedIO)
}

// begin admits a span of node; it returns the span's id, for end, and
// whether the caller may start the I/O now. If not, the caller passes
// the rest of its work to wait.
func (o *ioOrder) begin(node uint64, write bool, off, size uint64) (id uint64, ready bool) {
	q := o.queues[node]
	if q == nil {
		if o.queues == nil {
			o.queues = make(map[uint64]*ioQueue)
		}
		if n := len(o.spare); n > 0 {
			q, o.spare = o.spare[n-1], o.spare[:n-1]
		} else {
			q = &ioQueue{}
		}
		o.queues[node] = q
	} else if node == o.idle {
		o.idle = 0
	}
	o.nextID++
	s := ioSpan{id: o.nextID, write: write, off: off, end: off + max(size, 1)}
	if s.end < off {
		s.end = math.MaxUint64 // to the end of any file
	}
	ready = true
	if write || q.writes > 0 {
		for i := range q.spans {
			if s.conflicts(&q.spans[i]) {
				ready = false
				break
			}
		}
	}
	if write {
		q.writes++
	}
	q.spans = append(q.spans, s)
	return s.id, ready
}

// wait parks the rest of a span's work until every earlier overlapping
// span has ended. Call it right after begin said not ready.
func (o *ioOrder) wait(node, id uint64, resume func()) {
	o.waited++
	q := o.queues[node]
	for i := range q.spans {
		if q.spans[i].id == id {
			q.spans[i].resume = resume
			return
		}
	}
}

// end retires span id of node and starts the waiting spans it was
// holding back, in arrival order.
func (o *ioOrder) end(node, id uint64) {
	q := o.queues[node]
	if q == nil || len(q.spans) == 0 {
		return
	}
	for i := range q.spans {
		if q.spans[i].id == id {
			if q.spans[i].write {
				q.writes--
			}
			q.spans = append(q.spans[:i], q.spans[i+1:]...)
			break
		}
	}
	if len(q.spans) == 0 {
		if o.idle != 0 && o.idle != node {
			o.drop(o.idle)
		}
		o.idle = node
		return
	}
	// A waiting span starts once no span before it, running or waiting,
	// conflicts with it. Resumed work may begin, end or wait on this very
	// queue, so each start is followed by a fresh scan.
	for started := true; started; {
		started = false
		for i := range q.spans {
			s := &q.spans[i]
			if s.resume == nil || o.blocked(q, i) {
				continue
			}
			resume := s.resume
			s.resume = nil
			resume()
			started = true
			break
		}
		if o.queues[node] != q || len(q.spans) == 0 {
			return // the resumed work ended the last span
		}
	}
}

// drop removes node's empty queue from the map, keeping it for reuse.
func (o *ioOrder) drop(node uint64) {
	q := o.queues[node]
	delete(o.queues, node)
	q.spans = q.spans[:0]
	if len(o.spare) < 64 {
		o.spare = append(o.spare, q)
	}
}

// inOrder admits r's span of node and runs start once every earlier
// conflicting span has ended; the span ends when r is answered. For the
// rarer ops: READ and WRITE do this inline and end their span in the
// continuation, to keep closures off their path.
func (h *handlers) inOrder(r *request, node uint64, write bool, off, size uint64, start func()) {
	span, ready := h.io.begin(node, write, off, size)
	r.atReply = func() { h.io.end(node, span) }
	if !ready {
		h.io.wait(node, span, start)
		return
	}
	start()
}

// blocked reports whether span i of q conflicts with a span before it.
func (o *ioOrder) blocked(q *ioQueue, i int) bool {
	for j := 0; j < i; j++ {
		if q.spans[i].conflicts(&q.spans[j]) {
			return true
		}
	}
	return false
}
