package fs

import (
	"math"
	"slices"
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

// GetLk: fcntl(F_OFD_GETLK). An OFD lock has no pid, so the holder's
// comes from the lock table.
func (h *handlers) GetLk(r *request, in *fuse.LkIn, out *fuse.LkOut) {
	hd := h.handle(r, in.Fh)
	if hd == nil {
		return
	}
	op := aio.FcntlLock(hd.Fd, unix.F_OFD_GETLK, toFlock(&in.Lk))
	h.then(r, op, func(int64) {
		fromFlock(&op.Lock, &out.Lk)
		if out.Lk.Typ != unix.F_UNLCK && out.Lk.Pid == 0 {
			out.Lk.Pid = h.locks.holder(hd.NodeID, hd.ID, &out.Lk)
		}
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
				if in.LkFlags&fuse.FUSE_LK_FLOCK == 0 {
					if h.locks == nil {
						h.locks = lockTable{}
					}
					h.locks.set(hd.NodeID, hd.ID, in.Owner, &in.Lk)
				}
				r.reply(fuse.OK)
			case busy && wait && r.interrupted:
				r.errno(unix.EINTR) // the kernel restarts or reports the wait
			case busy && wait:
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

// POSIX record locks belong to a process (the kernel's lock owner), but
// evfs takes them as OFD locks on the handle's backing fd. Two things of
// the POSIX contract need more than the fd: F_GETLK reports the holder's
// pid (an OFD lock has none), and closing any fd of a file releases the
// closing process's locks on it (the kernel leaves that to the daemon's
// FLUSH). So evfs mirrors each granted lock — handle, owner, pid, range —
// in a table per inode.

// lockRec is one granted lock range on a handle's fd.
type lockRec struct {
	fh, owner  uint64
	pid        uint32
	typ        uint32
	start, end uint64 // inclusive, as FUSE carries them
}

// lockTable maps node ids to their granted locks. Owned by the loop
// goroutine; never touch from elsewhere. A nil table is empty.
type lockTable map[uint64][]lockRec

// set records a granted SETLK on handle fh: within lk's range the
// handle's previous locks are replaced, as the fd's OFD locks are.
func (t lockTable) set(node, fh, owner uint64, lk *fuse.FileLock) {
	var kept []lockRec
	for _, l := range t[node] {
		if l.fh != fh || l.end < lk.Start || l.start > lk.End {
			kept = append(kept, l)
			continue
		}
		if l.start < lk.Start {
			left := l
			left.end = lk.Start - 1
			kept = append(kept, left)
		}
		if l.end > lk.End {
			right := l
			right.start = lk.End + 1
			kept = append(kept, right)
		}
	}
	if lk.Typ != unix.F_UNLCK {
		kept = append(kept, lockRec{fh: fh, owner: owner, pid: lk.Pid, typ: lk.Typ, start: lk.Start, end: lk.End})
	}
	if len(kept) == 0 {
		delete(t, node)
	} else {
		t[node] = kept
	}
}

// holder returns the pid of a lock on node, held through a handle other
// than fh, that matches the conflicting lock F_OFD_GETLK found; 0 if the
// lock was not taken through evfs.
func (t lockTable) holder(node, fh uint64, found *fuse.FileLock) uint32 {
	for _, l := range t[node] {
		if l.fh != fh && l.typ == found.Typ && l.start <= found.End && l.end >= found.Start {
			return l.pid
		}
	}
	return 0
}

// dropHandle forgets the locks of a handle whose fd is being closed.
func (t lockTable) dropHandle(node, fh uint64) {
	if len(t[node]) == 0 {
		return
	}
	t.set(node, fh, 0, &fuse.FileLock{Typ: unix.F_UNLCK, Start: 0, End: math.MaxUint64})
}

// releaseOwnerLocks unlocks every record lock owner holds on node (on
// whichever handles it took them through), then runs done. The unit of
// a backing OFD lock is the handle, so a handle shared by two owners
// (after fork) loses the other owner's locks too.
func (h *handlers) releaseOwnerLocks(node, owner uint64, done func()) {
	var fhs []uint64
	for _, l := range h.locks[node] {
		if l.owner == owner && !slices.Contains(fhs, l.fh) {
			fhs = append(fhs, l.fh)
		}
	}
	left := 1
	finish := func() {
		if left--; left == 0 {
			done()
		}
	}
	for _, fh := range fhs {
		hd := h.handles.Get(fh)
		if hd == nil {
			continue
		}
		unlock := unix.Flock_t{Type: unix.F_UNLCK, Whence: unix.SEEK_SET}
		left++
		h.loop.Submit(aio.FcntlLock(hd.Fd, unix.F_OFD_SETLK, unlock), func(res int64) {
			if res < 0 {
				h.log.Warn("releasing locks on close failed", "handle", fh, "errno", unix.Errno(-res).Error())
			} else {
				h.locks.dropHandle(node, fh)
			}
			finish()
		})
	}
	finish()
}
