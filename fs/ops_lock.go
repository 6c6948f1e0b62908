package fs

import (
	"math"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/aio"
)

// Locks are open-file-description (OFD) locks and flock()s on the
// handle's backing fd, so two opens of a file conflict as they would
// natively across processes. A blocking SETLKW is never a blocking
// syscall: it retries the non-blocking form on a timer, backing off, and
// an INTERRUPT ends the wait with EINTR.

const (
	lockRetryMin = time.Millisecond
	lockRetryMax = 50 * time.Millisecond
	offsetMax    = math.MaxInt64
)

func toFlock(lk *fuse.FileLock) unix.Flock_t {
	f := unix.Flock_t{Type: int16(lk.Typ), Whence: unix.SEEK_SET, Start: int64(lk.Start)}
	if lk.End < offsetMax {
		f.Len = int64(lk.End - lk.Start + 1)
	}
	return f
}

func fromFlock(f *unix.Flock_t, lk *fuse.FileLock) {
	lk.Typ = uint32(f.Type)
	lk.Start = uint64(f.Start)
	lk.End = offsetMax
	if f.Len > 0 {
		lk.End = uint64(f.Start + f.Len - 1)
	}
	lk.Pid = 0
	if f.Pid > 0 {
		lk.Pid = uint32(f.Pid)
	}
}

// GetLk: fcntl(F_OFD_GETLK).
func (h *handlers) GetLk(r *request, in *fuse.LkIn, out *fuse.LkOut) {
	hd := h.handle(r, in.Fh)
	if hd == nil {
		return
	}
	op := aio.FcntlLock(hd.Fd, unix.F_OFD_GETLK, toFlock(&in.Lk))
	h.then(r, op, func(int64) {
		fromFlock(&op.Lock, &out.Lk)
		r.reply(fuse.OK)
	})
}

// SetLk serves SETLK and SETLKW (wait), for POSIX locks and flock().
func (h *handlers) SetLk(r *request, in *fuse.LkIn, wait bool) {
	delay := lockRetryMin
	var attempt func()
	attempt = func() {
		hd := h.handle(r, in.Fh)
		if hd == nil {
			return
		}
		var op *aio.Op
		if in.LkFlags&fuse.FUSE_LK_FLOCK != 0 {
			how := unix.LOCK_UN
			switch in.Lk.Typ {
			case unix.F_RDLCK:
				how = unix.LOCK_SH | unix.LOCK_NB
			case unix.F_WRLCK:
				how = unix.LOCK_EX | unix.LOCK_NB
			}
			op = aio.Flock(hd.Fd, how)
		} else {
			op = aio.FcntlLock(hd.Fd, unix.F_OFD_SETLK, toFlock(&in.Lk))
		}
		h.submit(r, op, func(res int64) {
			busy := res == -int64(unix.EAGAIN) || res == -int64(unix.EACCES)
			switch {
			case res >= 0:
				r.reply(fuse.OK)
			case busy && wait && !r.interrupted:
				h.loop.AfterFunc(delay, "SETLKW retry", func() {
					if r.interrupted {
						r.errno(unix.EINTR)
						return
					}
					attempt()
				})
				delay = min(2*delay, lockRetryMax)
			default:
				r.fail(res)
			}
		})
	}
	attempt()
}
