// Package loop is evfs's event loop: one goroutine that takes events
// (FUSE requests posted by the fs package, backend completions, timers,
// signals), runs their handlers, submits their I/O to an aio backend and
// runs each operation's continuation when its completion arrives.
//
// The loop knows nothing of FUSE. Everything it owns — the continuation
// slab, statistics, and whatever state its handlers keep — is touched only
// by the loop goroutine, so none of it has a lock. Other goroutines reach
// the loop only through Post, AfterFunc and Stop.
package loop

import (
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"evfs/aio"
)

// Config builds a Loop.
type Config struct {
	Backend string // aio backend name: auto, uring, pool, sync
	Workers int
	Logger  *slog.Logger
	// Debug logs every event and completion.
	Debug bool
	// Signals, if set, makes SIGINT and SIGTERM events: OnSignal runs on
	// the loop when one arrives.
	OnSignal func(os.Signal)
	// WaitInRing makes the loop sleep inside io_uring_enter (uring
	// backend only) instead of on a channel.
	WaitInRing bool
	// RingAll: see aio.Config.RingAll.
	RingAll bool
	// Poll makes the loop's one wait point epoll_wait on an eventfd (its
	// wakeups and the io_uring backend's completion signal) and on every
	// file descriptor given to Watch (poller.go). Without it the loop
	// sleeps on a channel and has no watched descriptors.
	Poll bool
	// LockThread pins the loop goroutine to its OS thread (Poll only).
	// io_uring runs the completion work of punted ops on the thread that
	// submitted them; a loop that stays on that thread is the one woken.
	LockThread bool
	// Spin is how long the loop polls (epoll_wait with timeout 0, and its
	// queue and backend) before each sleep (Poll only; 0: never). A loop still on-CPU when the next request or
	// completion arrives needs no wakeup (spin.go).
	Spin time.Duration
	// ShortSpin, if set, is how long the loop spins instead of Spin
	// while requests come one at a time: since Queueing was last called
	// more than queueQuiet ago (spin.go).
	ShortSpin time.Duration
	// Faults is test-only fault injection (see Fault).
	Faults []Fault
	// StallThreshold: a single event or continuation holding the loop
	// longer than this is logged as a stall. 0 means DefaultStall; < 0
	// turns the detector off.
	StallThreshold time.Duration
}

// DefaultStall is the stall detector's default threshold.
const DefaultStall = 5 * time.Millisecond

// Loop is a single-threaded event loop.
type Loop struct {
	q       *queue
	backend aio.Backend
	log     *slog.Logger
	debug   bool

	// Owned by the loop goroutine; never touch from elsewhere.
	ops       slab
	comps     []aio.Completion
	spare     []Event
	stats     Stats
	stopping  bool
	onSignal  func(os.Signal)
	stall     time.Duration
	ringWait  bool
	poller    *pollWaiter // Config.Poll
	sources   []*source   // watched descriptors (poller.go)
	lockOS    bool
	spin      time.Duration
	gaps      idleGaps            // recent idle gaps: whether to spin (spin.go)
	idleSince time.Duration       // when the loop last ran out of work (Mono; spin.go)
	slept     bool                // the loop woke from a sleep and has not yet looked for work (spin.go)
	handoffAt time.Duration       // when a turn last left ops in flight (Mono; spin.go)
	skipSpin  bool                // SkipSpin was called (spin.go)
	shortSpin time.Duration       // Config.ShortSpin
	queuedAt  time.Duration       // when Queueing was last called (Mono; spin.go)
	onPass    []func()            // OnPass hooks
	faults    map[aio.Kind]*Fault // test-only; nil in production
}

// New creates the loop and its backend; notice receives the backend
// choice explanation when "auto" falls back.
func New(cfg Config) (*Loop, error) {
	l := &Loop{log: cfg.Logger, debug: cfg.Debug, onSignal: cfg.OnSignal, stall: cfg.StallThreshold,
		handoffAt: -handoffQuiet, // no handoff yet: a loop started just after the process may spin at once
		queuedAt:  -queueQuiet}   // nothing queued yet: a short spin from the start
	if l.stall == 0 {
		l.stall = DefaultStall
	}
	for i := range cfg.Faults {
		if l.faults == nil {
			l.faults = map[aio.Kind]*Fault{}
		}
		l.faults[cfg.Faults[i].Kind] = &cfg.Faults[i]
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	// The queue's waiter depends on the backend, which needs the queue's
	// wake: the waiter is filled in below, before Run lets anyone sleep.
	q := newQueue(nil)
	acfg := aio.Config{Kind: cfg.Backend, Workers: cfg.Workers, Wake: q.signal,
		RingAll: cfg.RingAll, WaitInRing: cfg.WaitInRing && !cfg.Poll}
	if cfg.Poll {
		pw, err := newPollWaiter(&l.sources)
		if err != nil {
			return nil, err
		}
		l.poller, l.lockOS, l.spin, l.shortSpin = pw, cfg.LockThread, cfg.Spin, cfg.ShortSpin
		acfg.NotifyFd = pw.efd
	}
	b, err := aio.New(acfg, func(msg string) { l.log.Warn(msg) })
	if err != nil {
		if l.poller != nil {
			l.poller.close()
		}
		return nil, err
	}
	q.waiter = make(chanWaiter, 1)
	if l.poller != nil {
		q.waiter = l.poller
	} else if rw, ok := aio.AsWaiter(b); ok {
		q.waiter, l.ringWait = rw, true
	}
	l.q, l.backend = q, b
	return l, nil
}

// OnPass makes fn run at the end of every pass of a turn, after the
// pass's events and continuations: for work they queued that should leave
// in one batch (the FUSE ring's replies). Loop-only.
func (l *Loop) OnPass(fn func()) { l.onPass = append(l.onPass, fn) }

// Backend returns the backend's name.
func (l *Loop) Backend() string { return l.backend.Name() }

// Post queues fn to run on the loop. Safe from any goroutine.
func (l *Loop) Post(name string, fn func()) { l.q.post(Event{Name: name, Run: fn}) }

// AfterFunc runs fn on the loop after d. Safe from any goroutine.
func (l *Loop) AfterFunc(d time.Duration, name string, fn func()) *time.Timer {
	return time.AfterFunc(d, func() { l.Post(name, fn) })
}

// Stop asks Run to return once no operation is in flight. Safe from any
// goroutine.
func (l *Loop) Stop() { l.Post("stop", func() { l.stopping = true }) }

// Submit starts op and arranges for k to run on the loop with its result.
// It returns the op's id, usable with Cancel. Loop-only.
//
// op is the loop's until k returns, and then recycled (aio/recycle.go):
// submit an op once, and copy out any result needed after k.
func (l *Loop) Submit(op *aio.Op, k Continuation) uint64 {
	if op.Recycled() {
		l.log.Error("BUG: an op submitted again after its continuation returned", "op", op.Kind.String())
		op = aio.Nop()
		op.Fail = unix.EINVAL
	}
	if l.faults != nil {
		l.inject(op)
	}
	id := l.ops.put(op, k)
	l.stats.Submitted++
	if l.debug {
		l.log.Debug("submit", "id", id, "op", op.Kind.String(), "fd", op.Fd, "path", op.Path, "off", op.Off, "len", len(op.Buf))
	}
	l.backend.Submit(id, op)
	return id
}

// Cancel asks the backend to cancel the op with this id, if still in
// flight. Its continuation still runs, with -ECANCELED if the cancel won.
// Loop-only.
func (l *Loop) Cancel(id uint64) {
	if sl := l.ops.lookup(id); sl != nil {
		l.backend.Cancel(id, sl.op)
	}
}

// InFlight is the number of operations submitted and not yet completed.
// Loop-only.
func (l *Loop) InFlight() int { return l.ops.inUse }

// Run serves events until Stop was called and nothing is in flight, then
// closes the backend.
func (l *Loop) Run() error {
	if l.ringWait || l.lockOS {
		// io_uring runs completion work on the thread that submitted;
		// a loop that wandered to another thread would wait for it.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	if l.poller != nil {
		defer l.poller.close()
	}
	if l.onSignal != nil {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(sigs)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case s := <-sigs:
					l.Post("signal", func() {
						l.log.Info("signal received", "signal", s.String())
						l.onSignal(s)
					})
				case <-stop:
					return
				}
			}
		}()
	}
	for {
		start := Mono()
		l.wokeTo(l.turn())
		if l.stopping && l.ops.inUse == 0 && l.q.depth() == 0 {
			l.stats.Busy += Mono() - start
			break
		}
		if l.backend.OnWorkers() > 0 {
			l.handoffAt = start // work went to worker threads: no spin for a while (spin.go)
		}
		if l.yieldBeforeSleep() || l.spinBeforeSleep() {
			l.stats.Busy += Mono() - start
			continue
		}
		// Announce the sleep, then look once more: a post or completion
		// that raced with the announcement is either seen here or wakes
		// the sleep below.
		l.q.sleeping.Store(true)
		if l.turn() {
			l.q.sleeping.Store(false)
			l.stats.Busy += Mono() - start
			continue
		}
		slept := Mono()
		l.stats.Busy += slept - start
		l.stats.Waits++
		l.q.waiter.Sleep()
		l.q.sleeping.Store(false)
		l.slept = true
		l.stats.Waiting += Mono() - slept
	}
	return l.backend.Close()
}

// yieldSpins is how many times the loop yields its thread, with operations
// in flight, before it sleeps.
// Yielding for longer (up to 20 µs and 60 µs, measured) changed nothing.
const yieldSpins = 3

// yieldBeforeSleep gives the goroutines the loop just woke (pool workers)
// its thread before it sleeps, and reports whether a turn then found work.
// Go queues a woken goroutine on the waker's P; a loop that went straight
// into epoll_wait would keep that P until sysmon took it back (tens of
// microseconds or more), and the worker would wait that long to start.
// Yielding runs the worker at once on this thread; at low load its
// completion is then reaped with nobody sleeping. Poll waiter only: a
// loop sleeping on a channel leaves its P anyway.
func (l *Loop) yieldBeforeSleep() bool {
	if l.poller == nil {
		return false
	}
	for i := 0; i < yieldSpins && l.ops.inUse > 0; i++ {
		runtime.Gosched()
		if l.turn() {
			return true
		}
	}
	return false
}

// turn is one getEvents → processEvent pass, repeated until a pass finds
// neither events nor completions: run every posted event, hand the I/O
// they queued to the backend in one batch, then run the continuations of
// everything that completed. It reports whether it did anything.
func (l *Loop) turn() bool {
	did := false
	for {
		srcs := len(l.sources) > 0 && l.drainSources()
		evs := l.q.swap(l.spare)
		var t time.Duration
		if len(evs) > 0 {
			t = Mono()
		}
		for i := range evs {
			evs[i].Run()
			t = l.track(evs[i].Name, t)
			evs[i] = Event{}
		}
		l.stats.Events += uint64(len(evs))
		l.spare = evs[:0]

		l.backend.Flush()
		l.comps = l.backend.Reap(l.comps[:0])
		if len(l.comps) > 0 {
			t = Mono()
		}
		for _, c := range l.comps {
			t = l.complete(c, t)
		}
		for _, fn := range l.onPass {
			fn()
		}
		if !srcs && len(evs) == 0 && len(l.comps) == 0 {
			return did
		}
		did = true
	}
}

// complete runs c's continuation, which started at t (Mono), then
// recycles its op; it returns the time it finished.
func (l *Loop) complete(c aio.Completion, t time.Duration) time.Duration {
	op, k := l.ops.take(c.ID)
	if k == nil {
		// Invariant 3: every completion has exactly one continuation.
		l.stats.Unknown++
		l.log.Error("BUG: completion for unknown operation id", "id", c.ID, "res", c.Res)
		return t
	}
	l.stats.Completed++
	if l.debug {
		l.log.Debug("complete", "id", c.ID, "res", c.Res)
	}
	k(c.Res)
	aio.Recycle(op) // nothing refers to op now: k has returned
	return l.track("completion", t)
}

// Track records that work named name ran on the loop from t0 (Mono)
// until now, for work the caller measured itself. Loop-only.
func (l *Loop) Track(name string, t0 time.Duration) { l.track(name, t0) }

// track keeps the longest single run and reports stalls: a handler that
// holds the loop holds every request behind it. It returns now (Mono),
// the start of whatever runs next.
func (l *Loop) track(name string, t0 time.Duration) time.Duration {
	now := Mono()
	d := now - t0
	if d > l.stats.Longest {
		l.stats.Longest, l.stats.LongestName = d, name
	}
	if l.stall > 0 && d > l.stall {
		l.stats.Stalls++
		l.log.Warn("loop stalled", "event", name, "took", d, "threshold", l.stall)
	}
	return now
}
