package fs

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestShortSpinFollowsAffinity: the loop gets a short spin (a fifth of
// Spin) only when the daemon may run on more than one CPU, and not with
// LongSpinOnly or the FUSE ring transport (loop.Loop.spinFor).
func TestShortSpinFollowsAffinity(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatalf("sched_getaffinity: %v", err)
	}
	cfg := &Config{Spin: 50 * time.Microsecond}
	if all.Count() > 1 {
		if got := shortSpin(cfg); got != 10*time.Microsecond {
			t.Errorf("free: short spin %v, want 10µs", got)
		}
		ring := *cfg
		ring.uringQueues = 2
		if got := shortSpin(&ring); got != 0 {
			t.Errorf("FUSE ring transport: short spin %v, want none", got)
		}
	}
	only := *cfg
	only.LongSpinOnly = true
	if got := shortSpin(&only); got != 0 {
		t.Errorf("LongSpinOnly: short spin %v, want none", got)
	}

	var one unix.CPUSet
	for cpu := 0; cpu < 1024; cpu++ {
		if all.IsSet(cpu) {
			one.Set(cpu)
			break
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatalf("sched_setaffinity: %v", err)
	}
	defer func() {
		if err := unix.SchedSetaffinity(0, &all); err != nil {
			t.Errorf("restoring the thread's CPU mask: %v", err)
		}
	}()
	if got := shortSpin(cfg); got != 0 {
		t.Errorf("confined to one CPU: short spin %v, want none (always Spin)", got)
	}
}
