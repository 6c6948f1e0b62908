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
// appends under a short lock and wakes the loop; however many posts
// happen before the loop runs, it is woken once (the channel holds at
// most one token).
type queue struct {
	mu      sync.Mutex
	pending []Event
	wake    chan struct{}
	wakes   atomic.Uint64 // tokens actually sent (coalesced wakeups)
	posts   atomic.Uint64
}

func newQueue() *queue { return &queue{wake: make(chan struct{}, 1)} }

func (q *queue) post(ev Event) {
	q.mu.Lock()
	q.pending = append(q.pending, ev)
	q.mu.Unlock()
	q.posts.Add(1)
	q.signal()
}

// signal wakes the loop unless a wake is already pending. Safe from any
// goroutine.
func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
		q.wakes.Add(1)
	default:
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
