package loop

// Grace periods over operations in flight.
//
// Operations name file descriptors by number. Closing a descriptor while
// an op that names it still waits in a backend (a pool worker has yet to
// run it, or the ring has yet to issue it) lets the next open reuse the
// number, and that op then acts on another file. When a descriptor may be
// named by ops the closer did not start itself (an fd several tables
// share), the closer waits for a grace period: AfterInFlight runs its
// close once every op submitted before it has completed, as call_rcu
// waits for the readers that may hold a pointer.
//
// Two phases suffice. Each op is counted in the phase current when it was
// submitted. Callbacks registered during a phase wait for that phase's
// ops; registering starts the wait by flipping the phase (new ops count
// in the other one) unless an earlier wait is still draining, in which
// case they join the next flip (and so may also wait for ops submitted
// after them, until that flip). The count of a phase being waited for
// only falls, so every callback runs after a bounded number of
// completions, and none runs before an op submitted ahead of it is done.
// Two counters cost one increment per op; exact per-callback waits would
// need a counter per registration.
//
// Owned by the loop goroutine; never touch from elsewhere.
type grace struct {
	phase    uint8    // phase new ops are counted in
	inFlight [2]int   // ops in flight per phase
	waiting  []func() // registered since the last flip
	draining []func() // waiting for phase^1's ops to complete
	running  bool     // advance is running callbacks
}

// AfterInFlight runs fn on the loop once every operation submitted
// before this call has completed — at once (before returning) if none is
// in flight. Loop-only.
func (l *Loop) AfterInFlight(fn func()) {
	l.grace.waiting = append(l.grace.waiting, fn)
	l.advanceGrace()
}

// submitted counts a new op and returns the phase it belongs to.
func (g *grace) submitted() uint8 {
	g.inFlight[g.phase]++
	return g.phase
}

// completedOp uncounts an op of phase p and runs whatever waited for it.
func (l *Loop) completedOp(p uint8) {
	g := &l.grace
	g.inFlight[p]--
	if g.inFlight[p] == 0 && p != g.phase && len(g.draining) > 0 {
		l.advanceGrace()
	}
}

// advanceGrace runs the draining callbacks if their ops are done and
// starts the wait of the registered ones, until neither can progress.
func (l *Loop) advanceGrace() {
	g := &l.grace
	if g.running {
		return // the outer call picks up what fn registered
	}
	g.running = true
	defer func() { g.running = false }()
	for {
		if len(g.draining) > 0 {
			if g.inFlight[g.phase^1] > 0 {
				return
			}
			fns := g.draining
			g.draining = nil
			for _, fn := range fns {
				l.timed("after in-flight", fn)
			}
			continue
		}
		if len(g.waiting) == 0 {
			return
		}
		// Nothing drains, so the other phase has no ops: it becomes the
		// phase of new ops, and the registered callbacks wait for this
		// one's.
		g.draining, g.waiting = g.waiting, nil
		g.phase ^= 1
	}
}
