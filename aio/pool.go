package aio

import (
	"sync"

	"golang.org/x/sys/unix"
)

// Pool is the POSIX-AIO-style backend: Submit returns at once, a fixed
// set of worker goroutines runs each blocking syscall (aio_read's worker
// half), and finished ops are collected for the loop to Reap (aio_error /
// aio_return's half). Workers call wake once per finished op; the loop
// coalesces those wakes.
type Pool struct {
	wake func()

	// Loop-owned: batch is filled by Submit and handed over by Flush;
	// inline holds reads that nowait completed in Submit.
	batch  []job
	inline []Completion
	nowait nowait
	stats  Stats
	busy   int // ops handed to the workers and not yet reaped

	mu      sync.Mutex // guards queue, done, closed: shared with workers
	cond    *sync.Cond
	queue   []job
	done    []Completion
	closed  bool
	workers sync.WaitGroup
}

type job struct {
	id uint64
	op *Op
}

// NewPool starts n workers. wake is called after each completion.
func NewPool(n int, wake func()) *Pool {
	if n <= 0 {
		n = DefaultWorkers
	}
	p := &Pool{wake: wake}
	p.cond = sync.NewCond(&p.mu)
	p.workers.Add(n)
	for i := 0; i < n; i++ {
		go p.worker()
	}
	return p
}

// newPoolBackend is the pool as a backend of its own, with the
// non-blocking first attempt at reads unless cfg turns it off.
func newPoolBackend(cfg Config) *Pool {
	p := NewPool(cfg.Workers, cfg.Wake)
	p.nowait.off = cfg.NoNowait
	return p
}

func (p *Pool) Name() string { return "pool" }

// Submit queues op; it runs after the next Flush, unless it is a read
// the kernel can serve at once without blocking (nowait.go). Loop-only.
func (p *Pool) Submit(id uint64, op *Op) {
	p.stats.Submitted++
	p.nowait.forget(op)
	if res, ok := p.nowait.try(op); ok {
		p.inline = append(p.inline, Completion{id, res})
		return
	}
	p.batch = append(p.batch, job{id, op})
	p.busy++
}

// Flush hands the turn's batch to the workers under one lock. Loop-only.
func (p *Pool) Flush() {
	if len(p.batch) == 0 {
		return
	}
	p.mu.Lock()
	p.queue = append(p.queue, p.batch...)
	n := len(p.batch)
	p.mu.Unlock()
	if n == 1 {
		p.cond.Signal()
	} else {
		p.cond.Broadcast()
	}
	clear(p.batch)
	p.batch = p.batch[:0]
}

// Reap moves finished completions to dst. Loop-only.
func (p *Pool) Reap(dst []Completion) []Completion {
	if len(p.inline) > 0 {
		dst = append(dst, p.inline...)
		p.inline = p.inline[:0]
	}
	p.mu.Lock()
	dst = append(dst, p.done...)
	p.busy -= len(p.done)
	p.done = p.done[:0]
	p.mu.Unlock()
	return dst
}

// OnWorkers is the number of ops queued for or running on the workers.
// Loop-only.
func (p *Pool) OnWorkers() int { return p.busy }

// Cancel marks op so a worker that has not started it completes it with
// -ECANCELED. An op already running finishes normally.
func (p *Pool) Cancel(id uint64, op *Op) { op.cancel() }

func (p *Pool) Stats() Stats {
	s := p.stats
	s.Inline = p.nowait.hits
	p.mu.Lock()
	s.Completed = s.Submitted - uint64(len(p.queue)) - uint64(len(p.batch))
	p.mu.Unlock()
	return s
}

// Close stops the workers after the queue drains.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cond.Broadcast()
	p.workers.Wait()
	return nil
}

func (p *Pool) worker() {
	defer p.workers.Done()
	for {
		p.mu.Lock()
		for len(p.queue) == 0 && !p.closed {
			p.cond.Wait()
		}
		if len(p.queue) == 0 {
			p.mu.Unlock()
			return
		}
		j := p.queue[0]
		p.queue[0] = job{}
		p.queue = p.queue[1:]
		p.mu.Unlock()

		res := -int64(unix.ECANCELED)
		if !j.op.Canceled() {
			res = Do(j.op)
		}

		p.mu.Lock()
		p.done = append(p.done, Completion{j.id, res})
		p.mu.Unlock()
		p.wake()
	}
}
