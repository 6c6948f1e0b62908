package fs

import (
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/aio"
	"evfs/loop"
)

// The session (the "loop" transport) is tested here without the kernel:
// a SOCK_SEQPACKET socket pair keeps message boundaries as /dev/fuse does,
// so the test writes raw FUSE requests, hostile ones included, into one
// end and reads the session's replies from the other. Real mounts through
// the session are what the rest of the fs tests use.

type sessionHarness struct {
	t    *testing.T
	peer int // the kernel's end
	s    *session
	l    *loop.Loop
	done chan error
	uniq uint64
}

func newSessionHarness(t *testing.T, backend string) *sessionHarness {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("hello, session"), 0o644); err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fds[0], true)
	rootFd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statx_t
	unix.Statx(rootFd, "", unix.AT_EMPTY_PATH, aio.StatxMask, &st)
	logger := slog.New(slog.DiscardHandler)
	l, err := loop.New(loop.Config{Backend: backend, Workers: 2, Logger: logger, StallThreshold: -1, Poll: true})
	if err != nil {
		t.Skipf("%s backend: %v", backend, err)
	}
	cfg := &Config{Options: Options{Logger: logger}, MaxWrite: 1 << 17, MaxBackground: 16, ReadDirPlus: true}
	h := newHandlers(l, rootFd, &st, cfg.Options)
	s := newSession(fds[0], h, l, cfg)
	s.probing = false
	if err := l.Watch(fds[0], s.drain); err != nil {
		t.Fatal(err)
	}
	sh := &sessionHarness{t: t, peer: fds[1], s: s, l: l, done: make(chan error, 1)}
	go func() { sh.done <- l.Run() }()
	t.Cleanup(func() {
		// Closing the peer ends the session as an unmount would.
		unix.Close(fds[1])
		<-s.ended
		l.Stop()
		select {
		case err := <-sh.done:
			if err != nil {
				t.Errorf("loop: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("loop did not stop")
		}
		unix.Close(rootFd)
	})
	return sh
}

// call sends one request (header filled in here) and returns the reply's
// status and body.
func (sh *sessionHarness) call(opcode uint32, node uint64, body []byte) (int32, []byte) {
	sh.t.Helper()
	sh.uniq += 2
	hdr := fuse.InHeader{Opcode: opcode, NodeId: node, Unique: sh.uniq}
	hdr.Length = uint32(unsafe.Sizeof(hdr)) + uint32(len(body))
	msg := append(unsafe.Slice((*byte)(unsafe.Pointer(&hdr)), unsafe.Sizeof(hdr)), body...)
	if _, err := unix.Write(sh.peer, msg); err != nil {
		sh.t.Fatal(err)
	}
	buf := make([]byte, 1<<18)
	unix.SetsockoptTimeval(sh.peer, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
	n, err := unix.Read(sh.peer, buf)
	for err == unix.EINTR { // Go's preemption signals
		n, err = unix.Read(sh.peer, buf)
	}
	if err != nil {
		sh.t.Fatalf("no reply to opcode %d: %v", opcode, err)
	}
	var out fuse.OutHeader
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&out)), unsafe.Sizeof(out)), buf[:n])
	if out.Unique != sh.uniq || int(out.Length) != n {
		sh.t.Fatalf("reply header %+v for unique %d, %d bytes", out, sh.uniq, n)
	}
	return out.Status, buf[unsafe.Sizeof(out):n]
}

func structBytes[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

// inBody is the part of go-fuse's input struct T after its InHeader.
func inBody[T any](v *T) []byte { return structBytes(v)[unsafe.Sizeof(fuse.InHeader{}):] }

func TestSessionProtocol(t *testing.T) {
	for _, backend := range []string{"pool", "sync", "uring"} {
		t.Run(backend, func(t *testing.T) {
			sh := newSessionHarness(t, backend)
			eio, enosys := -int32(unix.EIO), -int32(unix.ENOSYS)

			// INIT: version and the limits configured.
			in := fuse.InitIn{Major: 7, Minor: 40, MaxReadAhead: 1 << 17,
				Flags:  uint32(fuse.CAP_ASYNC_READ | fuse.CAP_POSIX_LOCKS | fuse.CAP_INIT_EXT),
				Flags2: uint32(fuse.CAP_PASSTHROUGH >> 32)}
			st, body := sh.call(fuseInit, 0, inBody(&in))
			if st != 0 || len(body) != int(unsafe.Sizeof(fuse.InitOut{})) {
				t.Fatalf("INIT: status %d, %d bytes", st, len(body))
			}
			out := (*fuse.InitOut)(unsafe.Pointer(&body[0]))
			if out.Major != 7 || out.Minor != fuseOurMinor || out.MaxWrite != 1<<17 || out.MaxBackground != 16 {
				t.Fatalf("INIT reply %+v", *out)
			}
			if out.Flags2&uint32(fuse.CAP_PASSTHROUGH>>32) != 0 || out.Flags&uint32(fuse.CAP_POSIX_LOCKS) == 0 {
				t.Fatalf("INIT flags %#x: want POSIX_LOCKS, never PASSTHROUGH", out.Flags)
			}

			// LOOKUP, GETATTR, OPEN, READ of a real file.
			st, body = sh.call(fuseLookup, fuse.FUSE_ROOT_ID, []byte("file\x00"))
			if st != 0 {
				t.Fatalf("LOOKUP file: status %d", st)
			}
			entry := (*fuse.EntryOut)(unsafe.Pointer(&body[0]))
			if entry.NodeId == 0 || entry.Attr.Size != 14 {
				t.Fatalf("LOOKUP: %+v", *entry)
			}
			node := entry.NodeId
			st, body = sh.call(fuseOpen, node, inBody(&fuse.OpenIn{Flags: unix.O_RDONLY}))
			if st != 0 {
				t.Fatalf("OPEN: status %d", st)
			}
			fh := (*fuse.OpenOut)(unsafe.Pointer(&body[0])).Fh
			st, body = sh.call(fuseRead, node, inBody(&fuse.ReadIn{Fh: fh, Offset: 7, Size: 100}))
			if st != 0 || string(body) != "session" {
				t.Fatalf("READ: status %d, %q", st, body)
			}

			// Hostile input: every malformed request gets EIO, unknown
			// opcodes ENOSYS, unknown nodes and handles an errno, and the
			// session keeps serving.
			for _, c := range []struct {
				what   string
				opcode uint32
				node   uint64
				body   []byte
				want   int32
			}{
				{"LOOKUP without NUL", fuseLookup, 1, []byte("file"), eio},
				{"GETATTR too short", fuseGetAttr, 1, []byte{1, 2}, eio},
				{"RENAME with one name", fuseRename, 1, append(binary.LittleEndian.AppendUint64(nil, 1), "a\x00"...), eio},
				{"WRITE longer than its data", fuseWrite, node, inBody(&fuse.WriteIn{Fh: fh, Size: 4096}), eio},
				{"SETXATTR value missing", fuseSetXAttr, node, append(binary.LittleEndian.AppendUint64(nil, 100), "user.x\x00"...), eio},
				{"opcode 200", 200, 1, nil, enosys},
				{"IOCTL", 39, node, make([]byte, 32), enosys},
				{"GETATTR of an unknown node", fuseGetAttr, 123456, inBody(&fuse.GetAttrIn{}), -int32(unix.ESTALE)},
				{"READ of an unknown handle", fuseRead, node, inBody(&fuse.ReadIn{Fh: 999, Size: 10}), -int32(unix.EBADF)},
				{"LOOKUP of ..", fuseLookup, 1, []byte("..\x00"), 0},
			} {
				st, _ := sh.call(c.opcode, c.node, c.body)
				if c.want == 0 && st == 0 {
					t.Errorf("%s: answered OK", c.what)
				} else if c.want != 0 && st != c.want {
					t.Errorf("%s: status %d, want %d", c.what, st, c.want)
				}
			}

			// FORGET has no reply; the next request is answered in order.
			sh.call(fuseRelease, node, inBody(&fuse.ReleaseIn{Fh: fh}))
			hdr := fuse.InHeader{Opcode: fuseForget, NodeId: node, Length: uint32(unsafe.Sizeof(fuse.ForgetIn{}))}
			forget := fuse.ForgetIn{InHeader: hdr, Nlookup: 1}
			unix.Write(sh.peer, structBytes(&forget))
			st, body = sh.call(fuseGetAttr, fuse.FUSE_ROOT_ID, inBody(&fuse.GetAttrIn{}))
			if st != 0 || (*fuse.AttrOut)(unsafe.Pointer(&body[0])).Attr.Mode&unix.S_IFDIR == 0 {
				t.Fatalf("GETATTR root after FORGET: status %d", st)
			}
		})
	}
}

// TestDrainCountsWaitedRequests: the queueing signal (h.queued, set from
// the previous drain) counts only requests a process waits for: two
// GETATTRs in one drain set it, a GETATTR beside a FORGET, an INTERRUPT
// and a RELEASE does not. The session is driven by hand, its loop never
// run: the replies are of no interest here.
func TestDrainCountsWaitedRequests(t *testing.T) {
	dir := t.TempDir()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	unix.SetNonblock(fds[0], true)
	defer unix.Close(fds[0])
	rootFd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootFd)
	var st unix.Statx_t
	unix.Statx(rootFd, "", unix.AT_EMPTY_PATH, aio.StatxMask, &st)
	logger := slog.New(slog.DiscardHandler)
	l, err := loop.New(loop.Config{Backend: "sync", Logger: logger, StallThreshold: -1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Options: Options{Logger: logger}, MaxWrite: 1 << 17, MaxBackground: 16}
	s := newSession(fds[0], newHandlers(l, rootFd, &st, cfg.Options), l, cfg)
	s.probing = false
	send := func(opcode uint32, body []byte) {
		hdr := fuse.InHeader{Opcode: opcode, NodeId: fuse.FUSE_ROOT_ID, Unique: 2}
		hdr.Length = uint32(unsafe.Sizeof(hdr)) + uint32(len(body))
		if _, err := unix.Write(fds[1], append(structBytes(&hdr), body...)); err != nil {
			t.Fatal(err)
		}
	}
	drainAll := func() {
		s.readLimit = readBatch
		for _, more := s.drain(); more; _, more = s.drain() {
		}
	}
	getattr := inBody(&fuse.GetAttrIn{})
	for _, c := range []struct {
		what   string
		ops    []uint32
		queued bool
	}{
		{"two GETATTRs", []uint32{fuseGetAttr, fuseGetAttr}, true},
		{"GETATTR, FORGET, INTERRUPT, RELEASE", []uint32{fuseForget, fuseGetAttr, fuseInterrupt, fuseRelease}, false},
		{"one GETATTR", []uint32{fuseGetAttr}, false},
	} {
		for _, op := range c.ops {
			switch op {
			case fuseGetAttr:
				send(op, getattr)
			case fuseForget:
				send(op, inBody(&fuse.ForgetIn{Nlookup: 0}))
			case fuseInterrupt:
				send(op, inBody(&fuse.InterruptIn{Unique: 12345}))
			case fuseRelease:
				send(op, inBody(&fuse.ReleaseIn{Fh: 999}))
			}
		}
		drainAll()
		s.drain() // the next drain sets queued from the last one's count
		if s.h.queued != c.queued {
			t.Errorf("%s in one drain: queued = %v, want %v", c.what, s.h.queued, c.queued)
		}
	}
}
