package loop

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Following the client between CPUs.
//
// With nothing pinned, a loop and its one client settle into spells: on
// one CPU, where a request and its reply cost no wakeup, or on two,
// where each costs a halted vCPU's wakeup on both sides, and the short
// spin (spinFor) that helps the first makes the second worse. The
// scheduler ends a spell apart only by chance, since each side's
// wakeup finds its previous CPU idle and stays there. So the fs
// package, which knows the client's thread, asks now and then where it
// last ran, and the loop moves its own thread there (MoveToCPU): its
// affinity set to that CPU alone, which migrates it at once, then given
// back whole, so nothing stays pinned and the scheduler is free again
// (free placement, 5 rounds, docs/BENCHMARKS-history.md session 18).

// Following reports whether the loop follows its client now: it may
// run on more than one CPU and requests come one at a time (the short
// spin applies; with several clients there is no one CPU to follow).
// Loop-only.
func (l *Loop) Following() bool { return !l.lockOS && l.oneAtATime(Mono()) }

// MoveToCPU moves the loop's thread to cpu if it is elsewhere and the
// loop follows its client (Following), and reports whether it moved.
// Loop-only: it moves the calling thread. No backing file system is
// touched; the one wait is the migration itself (sched_setaffinity
// returns once the thread runs on cpu), microseconds on an idle CPU, a
// scheduler time slice on a busy one (9.4 ms once at a load average of
// 12.7; docs/BENCHMARKS-history.md, session 18).
func (l *Loop) MoveToCPU(cpu int) bool {
	if !l.Following() || cpu < 0 || cpu == currentCPU() {
		return false
	}
	var all, one unix.CPUSet
	if unix.SchedGetaffinity(0, &all) != nil || !all.IsSet(cpu) {
		return false
	}
	one.Set(cpu)
	if unix.SchedSetaffinity(0, &one) != nil {
		return false
	}
	unix.SchedSetaffinity(0, &all) // free again: the move was a nudge, not a pin
	l.stats.Moves++
	return true
}

// currentCPU is the CPU the calling thread runs on (getcpu), -1 if
// unknown.
func currentCPU() int {
	var cpu uint32
	if _, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), 0, 0); e != 0 {
		return -1
	}
	return int(cpu)
}
