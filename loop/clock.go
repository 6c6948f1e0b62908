package loop

import "time"

// The loop's clock. The loop reads the time around every event and
// continuation (stall detection, busy time), and the fs package for
// every request's latency: a few dozen reads per FUSE request. time.Now
// reads two clocks, wall and monotonic (40 ns here); the monotonic one
// alone is 24 ns, and only durations are ever wanted.

// epoch anchors Mono; its monotonic reading is what Mono subtracts.
var epoch = time.Now()

// Mono returns the time since the process started, on the monotonic
// clock: one clock read. Safe from any goroutine.
func Mono() time.Duration { return time.Since(epoch) }
