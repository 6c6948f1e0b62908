package loop

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The poll waiter makes the loop a classic select/poll loop: its one wait
// point is poll(2) on an eventfd (wakeups from other goroutines, and the
// io_uring backend's completion signal) plus every file descriptor the
// loop watches (the FUSE device, when the fs package owns the transport).
// A request from the kernel then wakes the loop thread directly: no
// goroutine stands between /dev/fuse and the handler.

// source is a watched file descriptor. Owned by the loop goroutine.
type source struct {
	fd    int
	name  string
	ready bool        // poll said readable and drain has not caught up
	drain func() bool // reads what is there; true if more may be waiting
}

// pollWaiter sleeps in poll(2). fds[0] is the wake eventfd; fds[i+1] is
// the loop's sources[i]. Sleep is loop-only; Wake is safe anywhere.
type pollWaiter struct {
	efd     int
	fds     []unix.PollFd
	sources *[]*source
}

func newPollWaiter(sources *[]*source) (*pollWaiter, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("eventfd", err)
	}
	return &pollWaiter{efd: efd, sources: sources}, nil
}

// Sleep waits until the eventfd or a source is readable and marks the
// readable sources ready.
func (p *pollWaiter) Sleep() {
	srcs := *p.sources
	p.fds = append(p.fds[:0], unix.PollFd{Fd: int32(p.efd), Events: unix.POLLIN})
	for _, s := range srcs {
		p.fds = append(p.fds, unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN})
	}
	for {
		if _, err := unix.Poll(p.fds, -1); err != unix.EINTR {
			break
		}
	}
	if p.fds[0].Revents != 0 {
		var buf [8]byte
		unix.Read(p.efd, buf[:]) // reset the counter; EAGAIN is fine
	}
	for i, s := range srcs {
		if p.fds[i+1].Revents != 0 {
			s.ready = true
		}
	}
}

// Wake makes the eventfd readable.
func (p *pollWaiter) Wake() {
	one := uint64(1)
	unix.Write(p.efd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

func (p *pollWaiter) close() { unix.Close(p.efd) }

// Watch makes the loop poll fd and run drain on the loop whenever fd is
// readable; drain returns true if it stopped early and should run again
// without waiting. Requires Config.Poll. Loop-only (or before Run).
func (l *Loop) Watch(fd int, name string, drain func() (more bool)) {
	if l.poller == nil {
		panic("loop: Watch needs Config.Poll")
	}
	// Ready at first: whatever arrived before the watch is not lost.
	l.sources = append(l.sources, &source{fd: fd, name: name, ready: true, drain: drain})
}

// Unwatch stops watching fd; the caller closes it afterwards. Loop-only.
func (l *Loop) Unwatch(fd int) {
	for i, s := range l.sources {
		if s.fd == fd {
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
		var more bool
		l.timed(s.name, func() { more = s.drain() })
		s.ready = more
	}
	return did
}
