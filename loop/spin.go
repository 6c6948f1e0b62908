package loop

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// spinBeforeSleep polls for up to Config.Spin before the loop sleeps, and
// reports whether a turn then found work.
//
// Why: a sleeping loop thread is woken by the kernel (a FUSE request) or
// by an eventfd write (a completion), and on a virtual machine waking an
// idle vCPU costs tens to hundreds of microseconds, more than the work of
// most requests. At queue depth 1 the next request arrives a few tens of
// microseconds after the reply; a loop still polling then picks it up
// with no wakeup at all.
//
// Each round reads the sources (/dev/fuse) without an epoll_wait first:
// posted events and completions are in memory, and a read finds a request
// with one syscall where epoll_wait and a read take two; an empty device
// costs one either way.
//
// Three rules keep the price low:
//   - Each round yields the CPU (sched_yield): a process that shares it —
//     on two cores, often the very client whose next request the loop
//     waits for — runs at once, so the spin uses only time the CPU would
//     otherwise idle. Without the yield the spin made QD1 latency worse
//     here (stat p50 22 → 74 µs); with it p50 is unchanged and p99 falls
//     (docs/BENCHMARKS-history.md).
//   - It spins only while the recent idle gaps were short (idleGaps): a
//     mount used now and then, whose next request is far off, never
//     spins.
//   - It spins only while no worker thread needs the CPU: not within
//     handoffQuiet of a turn that left ops on the backend's workers
//     (Backend.OnWorkers). Where requests need workers (metadata on a
//     disk file system), spinning made them slower, not faster (ext4,
//     same run: open+close p50 70 → 152 µs, create+unlink 180 → 340 µs):
//     the workers and the spinning loop compete for the same two CPUs.
//     Ops the kernel holds on the ring (O_DIRECT reads and writes
//     waiting for a disk) occupy no thread; the spin stays, and catches
//     the completion or the client's next request without a wakeup (ext4,
//     QD1 4 KiB O_DIRECT, a Python client: read p50 145–175 → 120 µs,
//     write 164–178 → 121–159 µs; the loop slept 2.1 times per op
//     before, 0.3 after).
//
// The Gosched in each round looks removable and is not. It queues the
// loop goroutine globally and wakes Go's idle P, whose thread then spins
// on the other CPU and often takes the loop goroutine over. At queue
// depth 1 that is what lets the client and the loop share a CPU: a
// client woken while the loop's CPU is busy moves to an idle one, and
// requests between two CPUs cost a halted-vCPU wakeup each (QD1 rename,
// Python client: 24–34 µs on one CPU, 101–150 µs apart). Without the
// Gosched 32–54% of 100 ms windows ran together instead of 51–83%
// (three runs); GOMAXPROCS=1 gave 0–4%, --lock-thread 4–17%
// (docs/BENCHMARKS-history.md, "Where the bimodal rounds come from").
func (l *Loop) spinBeforeSleep() bool {
	if l.poller == nil || l.spin <= 0 {
		return false
	}
	if !l.slept { // after a wake that found nothing the idle gap goes on
		l.idleSince = Mono()
	}
	l.slept = false
	skip := l.skipSpin
	l.skipSpin = false
	if skip || !l.gaps.short(l.spin) || l.idleSince-l.handoffAt < handoffQuiet {
		return false
	}
	l.stats.Spins++
	spin := l.spinFor()
	if spin < l.spin {
		l.stats.ShortSpins++
	}
	deadline := l.idleSince + spin
	for Mono() < deadline {
		l.assumeReady()
		if l.turn() {
			l.gaps.add(Mono()-l.idleSince, l.spin)
			return true
		}
		runtime.Gosched()                           // a pool worker readied on this P runs now
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) // and any thread waiting for this CPU
	}
	l.poller.poll(0) // resets the eventfd the ring may have signalled meanwhile
	return false
}

// spinFor is how long this idle spell may spin: Config.ShortSpin while
// requests come one at a time, else Config.Spin.
//
// Why a short spin: a loop that spins through its client's whole round
// trip never leaves its CPU, and the scheduler, seeing that CPU busy,
// wakes the client on another one — every time, so each reply wakes a
// halted vCPU and each request crosses CPUs. A short spin still catches
// what comes at once (a completion; a client on this CPU that the
// spin's sched_yield let run) and then sleeps, and a loop that sleeps
// lets the scheduler put the client on its CPU. On two vCPUs with nothing
// pinned (docs/BENCHMARKS-history.md, session 17), 10 µs against 50 µs:
// QD1 4 KiB write p50 11.6 against 25.1 µs, stat 21.4 against 61.2,
// daemon CPU per op about halved. The long spin stays where it pays:
// with several clients (64 readers: 90 k against 76 k IOPS with every
// spin short), so the fs package calls Queueing when requests queue up,
// and for a daemon confined to one CPU, where the scheduler places
// nothing (the fs package sets no ShortSpin then: clients on another
// CPU were served twice as fast with the long spin, stat 44 against
// 91 µs).
func (l *Loop) spinFor() time.Duration {
	if l.oneAtATime(l.idleSince) {
		return l.shortSpin
	}
	return l.spin
}

// oneAtATime reports whether, at now, the loop has a short spin and no
// requests have queued up (Queueing) for queueQuiet: the rule both the
// short spin and following the client (follow.go) go by.
func (l *Loop) oneAtATime(now time.Duration) bool {
	return l.shortSpin > 0 && now-l.queuedAt > queueQuiet
}

// queueQuiet is how long after requests last queued up the loop keeps
// the long spin.
const queueQuiet = 10 * time.Millisecond

// Queueing tells the loop that requests are queueing (several read at
// once): it spins the whole Config.Spin for the next queueQuiet.
// Loop-only.
func (l *Loop) Queueing() { l.queuedAt = Mono() }

// SkipSpin makes the loop's next idle spell start with a sleep: for work
// whose consumer should be free to run on this CPU at once (the
// requester of a big reply). Loop-only.
func (l *Loop) SkipSpin() { l.skipSpin = true }

// wokeTo records the idle gap that ended with a sleep, once the turn
// after the wake says whether it found work (did). A wake that found none
// (epoll_wait interrupted by a signal: Go preempts with SIGURG) does not
// end the gap: counted, such wakes made a loop that is idle for
// milliseconds at a time look busy, and spin (CI under load: 9 spins for
// 20 events 5 ms apart).
func (l *Loop) wokeTo(did bool) {
	if !l.slept || !did {
		return
	}
	l.slept = false
	if l.poller != nil && l.spin > 0 {
		l.gaps.add(Mono()-l.idleSince, l.spin)
	}
}

// handoffQuiet is how long after a turn that left ops in flight the loop
// does not spin.
const handoffQuiet = 10 * time.Millisecond

// idleGaps is a moving average of the loop's idle gaps: from the end of
// a turn with work to the next work, found by spinning or after a sleep.
// Owned by the loop goroutine.
type idleGaps struct{ avg time.Duration }

// spinGapFactor: the loop spins while idle gaps average under this many
// spins. A gap that ended in a sleep includes the wakeup (tens of
// microseconds here), so the bar sits well above the spin itself, or a
// loop that once stopped spinning could never measure its way back.
const spinGapFactor = 20

// short reports whether recent gaps were short enough to spin for.
func (g *idleGaps) short(spin time.Duration) bool { return g.avg < spinGapFactor*spin }

// add folds one gap into the average (weight 1/4). A gap counts for at
// most twice the bar, so that after an idle spell a few short gaps bring
// the spin back.
func (g *idleGaps) add(d, spin time.Duration) {
	d = min(d, 2*spinGapFactor*spin)
	g.avg += (d - g.avg) / 4
}
