package loop

import (
	"errors"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The poll waiter makes the loop a classic select/poll loop: its one wait
// point is epoll on an eventfd (wakeups from other goroutines, and the
// io_uring backend's completion signal) plus every file descriptor the
// loop watches (the FUSE device, when the fs package owns the transport).
// A request from the kernel then wakes the loop thread directly: no
// goroutine stands between /dev/fuse and the handler.

// source is a watched file descriptor. Owned by the loop goroutine.
type source struct {
	fd    int
	ready bool        // epoll said readable and drain has not caught up
	drain func() bool // reads what is there; true if more may be waiting
}

// pollWaiter is the loop's wait point: an epoll instance holding the
// wake eventfd and every source (level-triggered). The loop sleeps by
// parking in Go's netpoller on that epoll fd (an epoll fd is itself
// pollable: readable while one of its sources is ready), and polls it
// with epoll_wait(0) itself.
//
// Why parked and not in a blocking epoll_wait: a goroutine asleep in a
// syscall keeps its P ("in syscall"). Go's sysmon takes that P back after
// one of its ticks and starts a thread to run it; once every P is idle
// sysmon sleeps, and the next syscall anyone makes wakes it again. With
// one P (a daemon confined to one CPU: Go sets GOMAXPROCS from the
// affinity) that cost 4.5 context switches per request at one request a
// millisecond, against passthrough_hp's 2 (docs/BENCHMARKS.md, session
// 11). Parked, the loop leaves its P idle at once, and the thread that
// wakes for a request is the one that runs it.
//
// This needs what fs's poll probe ensures: no file the process registers
// with the netpoller may make the kernel ask this loop anything while it
// holds the netpoller's epoll lock (a FUSE_POLL from a file of the
// process's own mount; once told ENOSYS, the kernel never sends one).
//
// Sleep and poll are loop-only; Wake is safe from any goroutine.
type pollWaiter struct {
	efd     int
	epfd    int
	events  []unix.EpollEvent
	sources *[]*source
	epfile  *os.File        // epfd, registered with Go's netpoller
	epconn  syscall.RawConn // Sleep parks on it
}

func newPollWaiter(sources *[]*source) (*pollWaiter, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("eventfd", err)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		unix.Close(efd)
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	p := &pollWaiter{efd: efd, epfd: epfd, sources: sources, events: make([]unix.EpollEvent, 8)}
	if err := p.add(efd); err != nil {
		p.close()
		return nil, err
	}
	// Non-blocking, so that os.NewFile registers it with the netpoller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		p.close()
		return nil, os.NewSyscallError("fcntl", err)
	}
	p.epfile = os.NewFile(uintptr(epfd), "evfs-epoll")
	if p.epconn, err = p.epfile.SyscallConn(); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// add registers fd (level-triggered, tagged with its number).
func (p *pollWaiter) add(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev))
}

// Sleep waits until the eventfd or a source is readable and marks the
// readable sources ready. RawConn.Read polls first and parks only if
// nothing was ready; a readiness that arrives between the poll and the
// park is kept by the netpoller and ends the park at once.
func (p *pollWaiter) Sleep() {
	p.epconn.Read(func(uintptr) bool { return p.poll() })
}

// poll is one epoll_wait that does not wait; it marks the readable
// sources ready and reports whether anything was (an error counts as
// something: the loop turns and sleeps again). Raw syscalls, unseen by
// Go's scheduler: they cannot block, and a syscall the scheduler sees
// wakes sysmon when the process was idle (see pollWaiter).
func (p *pollWaiter) poll() bool {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.epfd),
		uintptr(unsafe.Pointer(&p.events[0])), uintptr(len(p.events)), 0, 0, 0)
	if e != 0 {
		return true
	}
	n := int(r)
	for _, ev := range p.events[:n] {
		if int(ev.Fd) == p.efd {
			var buf [8]byte // reset the counter
			unix.RawSyscall(unix.SYS_READ, uintptr(p.efd), uintptr(unsafe.Pointer(&buf[0])), 8)
			continue
		}
		for _, s := range *p.sources { // a handful at most
			if s.fd == int(ev.Fd) {
				s.ready = true
			}
		}
	}
	return n > 0
}

// Wake makes the eventfd readable.
func (p *pollWaiter) Wake() {
	one := uint64(1)
	unix.Write(p.efd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

func (p *pollWaiter) close() {
	if p.epfile != nil {
		p.epfile.Close() // also ends a parked Sleep
	} else {
		unix.Close(p.epfd)
	}
	unix.Close(p.efd)
}

// Watch makes the loop poll fd and run drain on the loop whenever fd is
// readable; drain returns true if it stopped early and should run again
// without waiting. drain reports its own work to the stall detector
// (Track): it knows what each piece of it was. Requires Config.Poll.
// Loop-only (or before Run).
func (l *Loop) Watch(fd int, drain func() (more bool)) error {
	if l.poller == nil {
		return errors.New("loop: Watch needs Config.Poll")
	}
	if err := l.poller.add(fd); err != nil {
		return err
	}
	// Ready at first: whatever arrived before the watch is not lost.
	l.sources = append(l.sources, &source{fd: fd, ready: true, drain: drain})
	return nil
}

// Unwatch stops watching fd; the caller closes it afterwards. Loop-only.
func (l *Loop) Unwatch(fd int) {
	for i, s := range l.sources {
		if s.fd == fd {
			unix.EpollCtl(l.poller.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			l.sources = append(l.sources[:i:i], l.sources[i+1:]...)
			return
		}
	}
}

// drainSources runs the drain of every ready source once; it reports
// whether any ran.
func (l *Loop) drainSources() bool {
	did := false
	for i := 0; i < len(l.sources); i++ {
		s := l.sources[i]
		if !s.ready {
			continue
		}
		did = true
		s.ready = s.drain()
	}
	return did
}
