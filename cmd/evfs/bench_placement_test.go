package main

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// allowedCPUs lists the CPUs this process may use.
func allowedCPUs(t *testing.T) []int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// onlyCPU is the one CPU in set, or -1 if set holds none or several.
func onlyCPU(set *unix.CPUSet) int {
	if set == nil || set.Count() != 1 {
		return -1
	}
	for c := 0; ; c++ {
		if set.IsSet(c) {
			return c
		}
	}
}

func TestBenchParsePlacement(t *testing.T) {
	cpus := allowedCPUs(t)
	p, err := benchParsePlacement("free")
	if err != nil || p.daemon != nil || p.client != nil {
		t.Errorf("free: %+v, %v; want nothing pinned", p, err)
	}
	p, err = benchParsePlacement("together")
	if err != nil || onlyCPU(p.daemon) != cpus[0] || onlyCPU(p.client) != cpus[0] {
		t.Errorf("together: daemon %d client %d, %v; want both on CPU %d", onlyCPU(p.daemon), onlyCPU(p.client), err, cpus[0])
	}
	p, err = benchParsePlacement("apart")
	switch {
	case len(cpus) < 2:
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("apart on one CPU: %v, want a usage error", err)
		}
	case err != nil || onlyCPU(p.daemon) != cpus[0] || onlyCPU(p.client) != cpus[1]:
		t.Errorf("apart: daemon %d client %d, %v; want %d and %d", onlyCPU(p.daemon), onlyCPU(p.client), err, cpus[0], cpus[1])
	}
	var ue usageError
	if _, err := benchParsePlacement("sideways"); !errors.As(err, &ue) || !strings.Contains(err.Error(), "free") {
		t.Errorf("sideways: %v, want a usage error naming the choices", err)
	}
}

// TestBenchPlacementPins: a daemon started under a placement runs on the
// daemon CPU, every client of a phase on the client CPU, and the threads
// go back to every CPU afterwards — alive: a daemon started with
// Pdeathsig gets its signal when the thread that forked it exits, and a
// client thread may be that very thread.
func TestBenchPlacementPins(t *testing.T) {
	name := "apart"
	if len(allowedCPUs(t)) < 2 {
		name = "together"
	}
	p, err := benchParsePlacement(name)
	if err != nil {
		t.Fatal(err)
	}
	var before unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		t.Fatal(err)
	}

	// Several children, from whatever threads the scheduler gives us.
	var kids []*exec.Cmd
	for range 4 {
		cmd := exec.Command("sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := p.start(cmd); err != nil {
			t.Fatal(err)
		}
		kids = append(kids, cmd)
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		status, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
		if err != nil {
			t.Fatal(err)
		}
		want := "Cpus_allowed_list:\t" + strconv.Itoa(onlyCPU(p.daemon)) + "\n"
		if !strings.Contains(string(status), want) {
			t.Errorf("child %d: want %q in its status:\n%s", cmd.Process.Pid, want, status)
		}
	}

	// Clients record the CPUs their thread may use, over several phases
	// (each phase's goroutines come and go, as warm-up and measurement do).
	var mu sync.Mutex
	seen := map[int]int{}
	op := func() error {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil {
			return err
		}
		mu.Lock()
		seen[onlyCPU(&set)]++
		mu.Unlock()
		return nil
	}
	var stop atomic.Bool
	for range 5 {
		if _, _, err := benchPhase([]benchOp{op, op, op, op}, time.Time{}, 40, p.pinClient, &stop, false); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 1 || seen[onlyCPU(p.client)] != 200 {
		t.Errorf("clients ran with CPU masks %v (-1: several CPUs), want all 200 ops on CPU %d", seen, onlyCPU(p.client))
	}

	// Every thread is back to the full mask: a pinned thread would
	// carry its mask to whatever goroutine runs on it next.
	tids, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		n, _ := strconv.Atoi(tid.Name())
		var set unix.CPUSet
		if unix.SchedGetaffinity(n, &set) == nil && set != before {
			t.Errorf("thread %d left with %d CPUs allowed, want %d", n, set.Count(), before.Count())
		}
	}
	time.Sleep(100 * time.Millisecond) // a Pdeathsig would have landed
	for _, k := range kids {
		if err := k.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("child %d is gone: %v", k.Process.Pid, err)
			continue
		}
		stat, _ := os.ReadFile("/proc/" + strconv.Itoa(k.Process.Pid) + "/stat")
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			t.Errorf("child %d exited (a Pdeathsig?)", k.Process.Pid)
		}
	}
}
