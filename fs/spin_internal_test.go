package fs

import (
	"runtime"
	"testing"
	"time"
	"unsafe"

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

	defer pinFirstCPU(t, all)()
	if got := shortSpin(cfg); got != 0 {
		t.Errorf("confined to one CPU: short spin %v, want none (always Spin)", got)
	}
}

// firstCPU is the lowest-numbered CPU in all.
func firstCPU(all unix.CPUSet) int {
	for cpu := 0; cpu < len(all)*64; cpu++ {
		if all.IsSet(cpu) {
			return cpu
		}
	}
	return 0
}

// pinFirstCPU locks the calling goroutine to its thread and confines the
// thread to the first CPU of all; the returned func restores the mask
// and unlocks. (fs_test: PinFirstCPU.)
func pinFirstCPU(t testing.TB, all unix.CPUSet) (unpin func()) {
	t.Helper()
	var one unix.CPUSet
	one.Set(firstCPU(all))
	runtime.LockOSThread()
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("sched_setaffinity: %v", err)
	}
	return func() {
		if err := unix.SchedSetaffinity(0, &all); err != nil {
			t.Errorf("restoring the thread's CPU mask: %v", err)
		}
		runtime.UnlockOSThread()
	}
}

// TestLastCPU: lastCPU reads a thread's CPU from /proc even when its
// name holds spaces and parentheses, and says false for a thread that
// does not exist.
func TestLastCPU(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatalf("sched_getaffinity: %v", err)
	}
	defer pinFirstCPU(t, all)()
	want := firstCPU(all)
	name := []byte("a) b (c\x00")
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0); err != nil {
		t.Fatalf("naming the thread: %v", err)
	}
	if got, ok := lastCPU(uint32(unix.Gettid())); !ok || got != want {
		t.Errorf("lastCPU(this thread, pinned to %d, named %q) = %d, %v", want, name, got, ok)
	}
	if got, ok := lastCPU(1<<30 + 7); ok {
		t.Errorf("lastCPU(no such thread) = %d, true; want false", got)
	}
}
