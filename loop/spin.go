package loop

import (
	"runtime"
	"time"
)

// spinBeforeSleep polls for up to Config.Spin before the loop sleeps, and
// reports whether a turn then found work.
//
// Why: a sleeping loop thread is woken by the kernel (a FUSE request) or
// by an eventfd write (a completion), and on a virtual machine waking an
// idle vCPU costs tens of microseconds, more than the work of most
// requests. At queue depth 1 the next request arrives a few tens of
// microseconds after the reply; a loop still polling then picks it up
// with no wakeup at all. The price is CPU time: at most Spin per burst
// of work, after which the loop sleeps as before.
func (l *Loop) spinBeforeSleep() bool {
	if l.poller == nil || l.spin <= 0 {
		return false
	}
	deadline := time.Now().Add(l.spin)
	for time.Now().Before(deadline) {
		l.poller.poll(0)
		if l.turn() {
			return true
		}
		runtime.Gosched() // a pool worker readied on this P runs now
	}
	return false
}
