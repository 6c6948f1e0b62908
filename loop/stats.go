package loop

import (
	"time"

	"evfs/aio"
)

// Stats describe the loop's work so far.
type Stats struct {
	Events      uint64        // events run (requests, timers, stop…)
	Submitted   uint64        // operations handed to the backend
	Completed   uint64        // continuations run
	Unknown     uint64        // completions with no continuation (bugs)
	InFlight    int           // operations submitted and not completed
	Waits       uint64        // times the loop went to sleep
	Polls       uint64        // epoll_wait calls, sleeping or not (poll waiter)
	Posts       uint64        // events posted from other goroutines
	Wakes       uint64        // wakeups actually delivered (posts coalesce)
	QueueDepth  int           // events waiting to be run
	Busy        time.Duration // time spent running events
	Waiting     time.Duration // time spent asleep
	Longest     time.Duration // longest single event or continuation run
	LongestName string        // and what it was
	Stalls      uint64        // runs longer than the stall threshold
	Spins       uint64        // times the loop spun before sleeping (spin.go)
	ShortSpins  uint64        // of those, spins of Config.ShortSpin (spin.go, spinFor)
	Moves       uint64        // times the loop moved its thread to its client's CPU (follow.go)
	Backend     aio.Stats
}

// Stats returns a snapshot. Loop-only; other goroutines use Snapshot.
func (l *Loop) Stats() Stats {
	s := l.stats
	s.InFlight = l.ops.inUse
	s.Posts = l.q.posts.Load()
	s.Wakes = l.q.wakes.Load()
	s.QueueDepth = l.q.depth()
	s.Backend = l.backend.Stats()
	if l.poller != nil {
		s.Polls = l.poller.polls
	}
	return s
}

// Snapshot fetches Stats through the loop. Safe from any goroutine; it
// blocks until the loop runs the request.
func (l *Loop) Snapshot() Stats {
	ch := make(chan Stats, 1)
	l.Post("stats", func() { ch <- l.Stats() })
	return <-ch
}
