package loop

import (
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"evfs/aio"
)

// TestAfterInFlight: a callback runs after every op submitted before it
// and, when no other wait drains, is not held up by ops submitted after
// it; one registered while another wait drains runs after the ops
// submitted before it too (and may wait for later ones: two phases);
// with nothing in flight it runs at once. Every backend, with three delayed
// op kinds (50, 300 and 600 ms) so the order is forced.
func TestAfterInFlight(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			cfg := testConfig(b)
			cfg.Faults = []Fault{{Kind: aio.OpStatx, Delay: 50 * time.Millisecond}, {Kind: aio.OpFstatfs, Delay: 300 * time.Millisecond},
				{Kind: aio.OpFaccessat, Delay: 600 * time.Millisecond}}
			l := runLoop(t, cfg)
			var order []string // loop-owned
			note := func(s string) func(int64) { return func(int64) { order = append(order, s) } }
			done := make(chan []string, 1)
			left := 2 // grace-2 and the last op
			finish := func(s string) {
				order = append(order, s)
				if left--; left == 0 {
					done <- order
				}
			}
			l.Post("test", func() {
				now := false
				l.AfterInFlight(func() { now = true })
				if !now {
					t.Error("AfterInFlight with nothing in flight did not run at once")
				}
				l.Submit(aio.Statx(unix.AT_FDCWD, "/", 0), note("statx-before-1"))
				l.AfterInFlight(func() { order = append(order, "grace-1") })
				l.Submit(aio.Fstatfs(0), note("fstatfs-after-1"))
				l.AfterInFlight(func() { finish("grace-2") })
				l.Submit(aio.Nop(), func(int64) {
					order = append(order, "nop-after-2")
				})
				l.Submit(aio.Faccessat(unix.AT_FDCWD, "/", unix.F_OK, 0), func(int64) { finish("faccessat-after-2") })
			})
			var got []string
			select {
			case got = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("ops or callbacks never ran")
			}
			at := func(s string) int {
				i := slices.Index(got, s)
				if i < 0 {
					t.Fatalf("%s never ran: %v", s, got)
				}
				return i
			}
			if !(at("statx-before-1") < at("grace-1") && at("grace-1") < at("fstatfs-after-1")) {
				t.Errorf("grace-1 must run after the op before it and before the slow op after it: %v", got)
			}
			if !(at("fstatfs-after-1") < at("grace-2")) {
				t.Errorf("grace-2 ran before an op submitted ahead of it: %v", got)
			}
			if s := l.Snapshot(); s.InFlight != 0 {
				t.Errorf("in flight after the test: %d", s.InFlight)
			}
		})
	}
}
