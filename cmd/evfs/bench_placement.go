package main

// --placement: where the daemons and the bench's clients run.
//
// On a small virtual machine one request-reply at queue depth 1 costs a
// few microseconds when the client and the daemon share a CPU and tens
// more when they do not (the reply wakes a halted vCPU). Left to the
// scheduler, a run keeps whichever placement it happens to start with,
// so its rounds come out bimodal (docs/BENCHMARKS-history.md, "Where the bimodal
// rounds come from"). Pinning both sides measures the daemons at equal
// placement, each placement on its own.

import (
	"fmt"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// benchPlacement says where daemons and clients run. A nil set leaves
// that side to the scheduler.
type benchPlacement struct {
	Name   string
	daemon *unix.CPUSet
	client *unix.CPUSet
	desc   string
}

// benchPlacements names the --placement choices.
const benchPlacements = "free (the scheduler decides), together (every daemon and client on the first CPU this process may use), or apart (daemons on the first, clients on the second)"

// benchParsePlacement resolves a --placement value against the CPUs this
// process may run on.
func benchParsePlacement(name string) (benchPlacement, error) {
	p := benchPlacement{Name: name, desc: "free: the scheduler places daemons and clients"}
	if name == "free" {
		return p, nil
	}
	if name != "together" && name != "apart" {
		return p, usagef("unknown --placement %q: want %s", name, benchPlacements)
	}
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return p, fmt.Errorf("--placement %s: reading this process's CPUs: %w", name, err)
	}
	var cpus []int
	for c := 0; c < len(allowed)*64 && len(cpus) < 2; c++ {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	one := func(c int) *unix.CPUSet {
		var s unix.CPUSet
		s.Set(c)
		return &s
	}
	switch {
	case name == "together":
		p.daemon, p.client = one(cpus[0]), one(cpus[0])
		p.desc = fmt.Sprintf("together: every daemon and client on CPU %d", cpus[0])
	case len(cpus) < 2:
		return p, usagef("--placement apart needs two CPUs; this process may use only CPU %d", cpus[0])
	default:
		p.daemon, p.client = one(cpus[0]), one(cpus[1])
		p.desc = fmt.Sprintf("apart: daemons on CPU %d, clients on CPU %d", cpus[0], cpus[1])
	}
	return p, nil
}

// String is the placement as the report prints it.
func (p benchPlacement) String() string { return p.desc }

// start starts cmd so that the child, and every thread it makes, may run
// only on the daemon CPU: the fork happens on a thread pinned for the
// purpose, and a child inherits its parent thread's CPU mask.
func (p benchPlacement) start(cmd *exec.Cmd) error {
	if p.daemon == nil {
		return cmd.Start()
	}
	unpin, err := pinThread(p.daemon)
	if err != nil {
		return fmt.Errorf("pinning %s: %w", cmd.Path, err)
	}
	defer unpin()
	return cmd.Start()
}

// pinClient pins the calling goroutine to the client CPU until it calls
// the returned unpin.
func (p benchPlacement) pinClient() (unpin func(), err error) {
	if p.client == nil {
		return func() {}, nil
	}
	if unpin, err = pinThread(p.client); err != nil {
		return nil, fmt.Errorf("pinning a client: %w", err)
	}
	return unpin, nil
}

// pinThread locks the calling goroutine to its thread and lets the
// thread run only on set; unpin restores the thread's mask and unlocks
// it. The thread is never ended (as Go ends a thread whose goroutine
// exits locked): it may be the one that forked a daemon, and a child
// started with Pdeathsig is signalled when that thread exits. If the
// mask cannot be restored the thread stays locked, so no other
// goroutine runs pinned.
func pinThread(set *unix.CPUSet) (unpin func(), err error) {
	runtime.LockOSThread()
	var before unix.CPUSet
	if err = unix.SchedGetaffinity(0, &before); err == nil {
		err = unix.SchedSetaffinity(0, set)
	}
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	return func() {
		if unix.SchedSetaffinity(0, &before) == nil {
			runtime.UnlockOSThread()
		}
	}, nil
}
