package loop

import (
	"sync"
	"sync/atomic"
)

// Event is one unit of work for the loop: a FUSE request, a timer firing,
// a shutdown request. Name is what statistics and --debug call it.
type Event struct {
	Name string
	Run  func()
}

// queue is the one way into the loop from other goroutines. Posting
// appends under a short lock and wakes the loop only if it is asleep:
// however many posts (and backend completions) arrive while the loop is
// awake or already being woken, they cost one wakeup.
type queue struct {
	mu       sync.Mutex
	pending  []Event
	sleeping atomic.Bool // the loop announced it is about to sleep
	waiter   waiter
	wakes    atomic.Uint64 // wakeups actually delivered
	posts    atomic.Uint64
}

// waiter is where the loop sleeps: a channel (chanWaiter) or, with the
// ring-wait design, inside io_uring_enter (aio.Waiter).
type waiter interface {
	Sleep()
	Wake()
}

// chanWaiter sleeps on a channel holding at most one token.
type chanWaiter chan struct{}

func (c chanWaiter) Sleep() { <-c }

func (c chanWaiter) Wake() {
	select {
	case c <- struct{}{}:
	default:
	}
}

func newQueue(w waiter) *queue { return &queue{waiter: w} }

func (q *queue) post(ev Event) {
	q.mu.Lock()
	q.pending = append(q.pending, ev)
	q.mu.Unlock()
	q.posts.Add(1)
	q.signal()
}

// signal wakes the loop if it is asleep and nobody woke it yet. Safe
// from any goroutine.
func (q *queue) signal() {
	if q.sleeping.Load() && q.sleeping.CompareAndSwap(true, false) {
		q.wakes.Add(1)
		q.waiter.Wake()
	}
}

// swap hands the pending events to the loop and gives it back the slice
// it finished with, so steady state allocates nothing.
func (q *queue) swap(spare []Event) []Event {
	q.mu.Lock()
	evs := q.pending
	q.pending = spare[:0]
	q.mu.Unlock()
	return evs
}

func (q *queue) depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}
