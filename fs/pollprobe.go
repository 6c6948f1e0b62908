package fs

import (
	"fmt"
	"path/filepath"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The poll probe. The first time a process registers a file of a FUSE
// mount with epoll, the kernel asks the daemon (FUSE_POLL) whether the
// file is pollable, and waits for the answer holding the epoll instance's
// lock. Go registers every file it opens with its netpoller, from inside
// the runtime, without giving up its P (Go's processor): if the process
// serving the mount opens one of its own files (the tests do), that
// thread sits in the kernel holding a P the garbage collector waits for,
// the loop cannot get a P to answer, and everything stops. Once told
// ENOSYS, the kernel never asks again. So right after INIT, evfs polls a
// file of its own mount itself, while nothing else can: a probe file that
// exists only during mount (go-fuse's "poll hack" does the same).

const (
	pollProbeName = ".evfs-poll-probe"
	pollProbeNode = 1<<63 - 1 // never a node id of the table
)

// probeHeld, if set (tests only), runs while the probe file is open.
var probeHeld func()

// probePoll makes the kernel learn that evfs does not serve FUSE_POLL.
// It runs on NewMount's goroutine, after INIT, with the loop serving.
//
// A process SIGKILLed while it holds a file of its own mount can be left
// unkillable: its last thread closes its descriptors, a FUSE file's close
// sends FLUSH and waits for an answer nobody will read (the loop is dead,
// and /dev/fuse, whose release would abort the connection, is released
// only after every descriptor was flushed). So the probe file is opened
// with FOPEN_NOFLUSH (serveProbe), and its close sends nothing. The kernel
// ignores FOPEN_NOFLUSH when the writeback cache is on: there the hazard
// remains for the probe's few hundred microseconds, which is one reason
// the evfs binary, which never opens files of its mount, skips the probe
// (Config.NoPollProbe).
func probePoll(mountpoint string) error {
	fd, err := unix.Open(filepath.Join(mountpoint, pollProbeName), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("poll probe: %w", err)
	}
	defer unix.Close(fd)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("poll probe: %w", err)
	}
	defer unix.Close(ep)
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	// FUSE_POLL → ENOSYS; the kernel then reports regular-file readiness.
	// Either outcome of epoll_ctl is fine. Not unix.EpollCtl: that is a
	// raw syscall, which keeps this goroutine's P while the kernel waits
	// for the loop's answer; with GOMAXPROCS=1 (one CPU, or a one-CPU
	// container) the loop would never get a P to give it.
	unix.Syscall6(unix.SYS_EPOLL_CTL, uintptr(ep), unix.EPOLL_CTL_ADD, uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	if probeHeld != nil {
		probeHeld()
	}
	return nil
}

// serveProbe answers the requests for the probe file while the session
// is probing; false if hdr is not about it.
func (s *session) serveProbe(buf, in []byte, hdr *fuse.InHeader) bool {
	isLookup := hdr.Opcode == fuseLookup && hdr.NodeId == fuse.FUSE_ROOT_ID
	if isLookup {
		name, _, _ := cstring(in[unsafe.Sizeof(*hdr):])
		isLookup = name == pollProbeName && s.probing
	}
	if !isLookup && hdr.NodeId != pollProbeNode {
		return false
	}
	attr := fuse.Attr{Ino: pollProbeNode, Mode: unix.S_IFREG | 0o444, Nlink: 1}
	switch hdr.Opcode {
	case fuseForget, fuseBatchForget, fuseInterrupt:
		s.putBuf(buf) // no reply
		return true
	case fuseLookup:
		r := s.newRequest(opOther, buf, hdr)
		*outOf[fuse.EntryOut](r) = fuse.EntryOut{NodeId: pollProbeNode, Attr: attr}
		s.answer(r, fuse.OK)
	case fuseGetAttr:
		r := s.newRequest(opOther, buf, hdr)
		*outOf[fuse.AttrOut](r) = fuse.AttrOut{Attr: attr}
		s.answer(r, fuse.OK)
	case fuseOpen:
		r := s.newRequest(opOther, buf, hdr)
		outOf[fuse.OpenOut](r).OpenFlags = fuse.FOPEN_NOFLUSH // fh 0
		s.answer(r, fuse.OK)
	case fuseFlush, fuseRelease:
		s.replyNow(buf, hdr, fuse.OK)
	default: // FUSE_POLL among them
		s.replyNow(buf, hdr, fuse.ENOSYS)
	}
	return true
}
