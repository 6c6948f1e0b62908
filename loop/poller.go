package loop

import (
	"errors"
	"os"
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
	ready bool                      // may be readable: epoll said so, or the spin assumes it
	drain func() (found, more bool) // reads what is there (see Watch)
}

// pollWaiter is the loop's wait point: an epoll instance holding the
// wake eventfd and every source (level-triggered), waited on with a
// plain blocking epoll_wait. Not through Go's netpoller: a process that
// serves FUSE and also uses its own mount (the tests do) would deadlock
// there — registering a file of the mount with the netpoller sends the
// daemon a FUSE_POLL while holding the netpoller's epoll lock, and a loop
// parked in that netpoller could never wake to answer it.
//
// Sleep is loop-only; Wake is safe from any goroutine.
type pollWaiter struct {
	efd     int
	epfd    int
	events  []unix.EpollEvent
	sources *[]*source
	polls   uint64 // epoll_wait calls (Stats.Polls); loop-only
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
	return p, nil
}

// add registers fd (level-triggered, tagged with its number).
func (p *pollWaiter) add(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev))
}

// Sleep waits until the eventfd or a source is readable and marks the
// readable sources ready.
func (p *pollWaiter) Sleep() { p.poll(-1) }

// poll is one epoll_wait (timeout in ms, -1: forever); it marks the
// readable sources ready.
func (p *pollWaiter) poll(timeout int) {
	p.polls++
	n, err := unix.EpollWait(p.epfd, p.events, timeout)
	if err != nil {
		return // EINTR: the loop turns and sleeps again
	}
	for _, ev := range p.events[:n] {
		if int(ev.Fd) == p.efd {
			var buf [8]byte
			unix.Read(p.efd, buf[:]) // reset the counter (non-blocking eventfd)
			continue
		}
		for _, s := range *p.sources { // a handful at most
			if s.fd == int(ev.Fd) {
				s.ready = true
			}
		}
	}
}

// Wake makes the eventfd readable.
func (p *pollWaiter) Wake() {
	one := uint64(1)
	unix.Write(p.efd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

func (p *pollWaiter) close() {
	unix.Close(p.epfd)
	unix.Close(p.efd)
}

// Watch makes the loop poll fd and run drain on the loop whenever fd may
// be readable; drain reports whether it found anything (a spinning loop
// runs it without asking epoll first: spinBeforeSleep) and whether it
// stopped early and should run again without waiting. drain reports its
// own work to the stall detector (Track): it knows what each piece of it
// was. Requires Config.Poll. Loop-only (or before Run).
func (l *Loop) Watch(fd int, drain func() (found, more bool)) error {
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
		found, more := s.drain()
		s.ready = more
		did = did || found
	}
	return did
}

// assumeReady marks every source ready without asking epoll (spin.go).
func (l *Loop) assumeReady() {
	for _, s := range l.sources {
		s.ready = true
	}
}
