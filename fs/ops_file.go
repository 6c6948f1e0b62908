package fs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/aio"
	"evfs/backing"
)

// openFlags turns the kernel's open flags into the backing open's.
// O_NOFOLLOW is dropped: the kernel has already resolved the last
// component to this node (a symlink node is refused with ELOOP), and the
// reopen goes through /proc/self/fd/N, a magic link O_NOFOLLOW refuses.
func (h *handlers) openFlags(flags uint32) int {
	f := int(flags) &^ (unix.O_CREAT | unix.O_EXCL | unix.O_NOCTTY | unix.O_NOFOLLOW)
	if h.opts.Writeback {
		// With writeback caching the kernel positions appends itself and
		// may read pages of a file opened write-only.
		f &^= unix.O_APPEND
		if f&unix.O_ACCMODE == unix.O_WRONLY {
			f = f&^unix.O_ACCMODE | unix.O_RDWR
		}
	}
	return f
}

// directIO is the FOPEN_ flag for a file opened with these kernel open
// flags. An O_DIRECT open is answered FOPEN_DIRECT_IO. Its reads never
// use the page cache anyway, but on the cached path the kernel first
// revalidates the attributes (auto_inval_data, which keeps cached pages
// of other opens coherent with the backing file): with attr_timeout 0
// that was a GETATTR round trip before every O_DIRECT read (1 000 4 KiB
// reads, 1 000 GETATTRs). FUSE_DIRECT_IO_ALLOW_MMAP is negotiated at INIT,
// so such a file can still be mapped shared, and the kernel still writes
// back and invalidates cached pages around each direct I/O.
func directIO(flags uint32) uint32 {
	if flags&unix.O_DIRECT != 0 {
		return fuse.FOPEN_DIRECT_IO
	}
	return 0
}

// Open: open the node's inode (openNode) → register handle.
func (h *handlers) Open(r *request, in *fuse.OpenIn, out *fuse.OpenOut) {
	n := h.node(r, in.NodeId)
	if n == nil {
		return
	}
	switch {
	case n.Mode == unix.S_IFLNK:
		r.errno(unix.ELOOP)
		return
	case n.Mode == unix.S_IFDIR && in.Flags&unix.O_ACCMODE != unix.O_RDONLY:
		r.errno(unix.EISDIR)
		return
	case h.opts.ReadOnly && (in.Flags&unix.O_ACCMODE != unix.O_RDONLY || in.Flags&unix.O_TRUNC != 0):
		r.errno(unix.EROFS)
		return
	}
	if n.Mode != unix.S_IFREG && n.Mode != unix.S_IFDIR {
		// The kernel serves fifos and devices itself and sends no OPEN
		// for them; should one come, its open may wait (a fifo for its
		// other end): never on the loop (markMemory).
		r.offRoot = true
	}
	h.openNode(r, n, h.openFlags(in.Flags), func(fd int64) {
		hd := h.addHandle(int(fd), n, in.Flags)
		out.Fh, out.OpenFlags = hd.ID, directIO(in.Flags)
		h.lend(r, n, hd, func() {
			if in.Mode&fuse.OPEN_KILL_SUIDGID != 0 && in.Flags&unix.O_TRUNC != 0 {
				h.killSuidgid(r, hd.Fd, func() { r.reply(fuse.OK) })
				return
			}
			r.reply(fuse.OK)
		})
	})
}

// Create: openat(parent, name, O_CREAT|O_NOFOLLOW…) (openName) → an O_PATH fd of
// the new inode (pathOf) → newNode (owned by the caller) → register
// handle.
func (h *handlers) Create(r *request, in *fuse.CreateIn, name string, out *fuse.CreateOut) {
	parent := h.dirAndName(r, name)
	if parent == nil || !h.writable(r) {
		return
	}
	flags := h.openFlags(in.Flags) | unix.O_CREAT | unix.O_NOFOLLOW | int(in.Flags)&unix.O_EXCL
	h.openName(r, parent, name, flags, in.Mode, func(res int64) {
		if res < 0 {
			r.fail(res)
			return
		}
		fd := int(res)
		// Whichever later step fails, the open file is closed.
		r.undo = func() { h.closeFd(fd) }
		h.pathOf(r, parent, name, fd, func(pathFd int, st *unix.Statx_t) {
			done := h.named(parent.ID, name, func(n *backing.Node) {
				r.undo = nil // the handle owns fd now
				hd := h.addHandle(fd, n, in.Flags)
				out.OpenOut.Fh, out.OpenOut.OpenFlags = hd.ID, directIO(in.Flags)
				h.lend(r, n, hd, func() { r.reply(fuse.OK) })
			})
			if st != nil {
				h.adoptNew(r, parent, pathFd, st, in.Mode, &out.EntryOut, done)
				return
			}
			h.newNode(r, parent, pathFd, in.Mode, &out.EntryOut, done)
		})
	})
}

// pathOf gives k an O_PATH fd of the inode open at fd, just created as
// parent/name, and its statx if it has one. The race-free way is a
// reopen through /proc/self/fd/N, which always leaves the loop (a magic
// link never resolves from the dentry cache alone); k then gets st nil.
// On a resident parent the name itself is opened first, usually on the
// spot (openat2 RESOLVE_NO_XDEV, see resolve), and kept if a statx of
// each fd shows the same inode: nobody replaced the name in between.
// That second statx is the new node's (newNode need not ask again).
func (h *handlers) pathOf(r *request, parent *backing.Node, name string, fd int, k func(pathFd int, st *unix.Statx_t)) {
	viaProc := func() {
		h.then(r, aio.Openat(unix.AT_FDCWD, backing.ProcPath(fd), unix.O_PATH, 0), func(res int64) { k(int(res), nil) })
	}
	if !h.resident(parent) || r.offRoot {
		viaProc()
		return
	}
	opened := aio.StatxResident(fd, statFlags)
	h.then(r, opened, func(int64) {
		key := backing.KeyOf(&opened.Stat) // copied: opened is recycled when this returns
		h.submit(r, aio.Openat2(parent.Fd, name, unix.O_PATH|unix.O_NOFOLLOW, 0, unix.RESOLVE_NO_XDEV), func(res int64) {
			if res < 0 {
				viaProc()
				return
			}
			named := aio.StatxResident(int(res), statFlags)
			h.submit(r, named, func(st int64) {
				if st == 0 && backing.KeyOf(&named.Stat) == key {
					k(int(res), &named.Stat) // named is recycled only when this returns
					return
				}
				h.closeFd(int(res))
				viaProc()
			})
		})
	})
}

// Read: pread(handle, buf, off). buf is go-fuse's output buffer; the
// bridge returns (and go-fuse reuses it) only after this completes.
func (h *handlers) Read(r *request, in *fuse.ReadIn, buf []byte, n *int) {
	hd := h.handle(r, in.Fh)
	if hd == nil {
		return
	}
	if int64(in.Offset) < 0 {
		r.errno(unix.EINVAL)
		return
	}
	if directCleared(hd, in.Flags) {
		h.clearDirect(r, hd, in.Flags, func() { h.Read(r, in, buf, n) })
		return
	}
	size := min(int(in.Size), len(buf))
	span, ready := h.io.begin(hd.NodeID, false, in.Offset, uint64(size))
	if !ready {
		h.io.wait(hd.NodeID, span, func() { h.read(r, hd, in, buf[:size], n, span) })
		return
	}
	h.read(r, hd, in, buf[:size], n, span)
}

// read is READ's pread, once no earlier overlapping WRITE is in flight.
func (h *handlers) read(r *request, hd *backing.Handle, in *fuse.ReadIn, buf []byte, n *int, span uint64) {
	op := ioOp(aio.Pread(hd.Fd, buf, int64(in.Offset)), hd)
	if hd.DelayReads {
		op.Delay = h.opts.TestDelay
	}
	h.submit(r, op, func(res int64) {
		h.io.end(hd.NodeID, span)
		if res < 0 {
			r.fail(res)
			return
		}
		*n = int(res)
		r.reply(fuse.OK)
	})
}

// Write: pwritev(handle, data, off).
func (h *handlers) Write(r *request, in *fuse.WriteIn, data [][]byte, n *uint32) {
	hd := h.handle(r, in.Fh)
	if hd == nil {
		return
	}
	if int64(in.Offset) < 0 {
		// pwrite(2)'s answer; the check also keeps uring from taking
		// offset -1 as "the current position".
		r.errno(unix.EINVAL)
		return
	}
	if directCleared(hd, in.Flags) {
		h.clearDirect(r, hd, in.Flags, func() { h.Write(r, in, data, n) })
		return
	}
	span, ready := h.io.begin(hd.NodeID, true, in.Offset, uint64(in.Size))
	switch {
	case in.WriteFlags&fuse.WRITE_KILL_SUIDGID != 0:
		killThenWrite := func() {
			r.undo = func() { h.io.end(hd.NodeID, span) } // the statx or chmod failed
			h.killSuidgid(r, hd.Fd, func() { r.undo = nil; h.write(r, hd, in, data, n, span) })
		}
		if !ready {
			h.io.wait(hd.NodeID, span, killThenWrite)
			return
		}
		killThenWrite()
	case !ready:
		h.io.wait(hd.NodeID, span, func() { h.write(r, hd, in, data, n, span) })
	default:
		h.write(r, hd, in, data, n, span)
	}
}

// write is WRITE's pwritev, once no earlier overlapping READ or WRITE is
// in flight.
func (h *handlers) write(r *request, hd *backing.Handle, in *fuse.WriteIn, data [][]byte, n *uint32, span uint64) {
	var op *aio.Op
	if len(data) == 1 {
		op = aio.Pwrite(hd.Fd, data[0], int64(in.Offset))
	} else {
		op = aio.Pwritev(hd.Fd, data, int64(in.Offset))
	}
	h.submit(r, ioOp(op, hd), func(res int64) {
		h.io.end(hd.NodeID, span)
		if res < 0 {
			r.fail(res)
			return
		}
		*n = uint32(res)
		r.reply(fuse.OK)
	})
}

// directCleared reports whether the kernel file's O_DIRECT flag
// (fileFlags, sent with every READ and WRITE) was cleared while hd's
// backing fd still has it. A process may do that with fcntl after an
// O_DIRECT open: the file was opened FOPEN_DIRECT_IO (directIO), so its
// I/O keeps coming here at whatever size and offset the process uses,
// and the backing fd, still O_DIRECT, would refuse what is no longer
// aligned. (Setting O_DIRECT after an open needs nothing: the backing fd
// reads through its page cache, with the same bytes.)
func directCleared(hd *backing.Handle, fileFlags uint32) bool {
	return hd.Direct && fileFlags&unix.O_DIRECT == 0
}

// clearDirect clears O_DIRECT on hd's backing fd, then runs again the
// request that found it cleared (retry). Only then is a closure made:
// READ and WRITE stay free of one.
func (h *handlers) clearDirect(r *request, hd *backing.Handle, fileFlags uint32, retry func()) {
	keep := h.openFlags(fileFlags) & (unix.O_APPEND | unix.O_NOATIME | unix.O_NONBLOCK)
	h.then(r, aio.SetFl(hd.Fd, keep), func(int64) {
		hd.Direct = false
		retry()
	})
}

// killSuidgid does what the kernel's file_remove_privs would: with
// FUSE_HANDLE_KILLPRIV_V2 negotiated (which saves a GETXATTR round trip
// before every WRITE), the daemon clears set-user-ID, and set-group-ID on
// a group-executable file, when an unprivileged caller writes or
// truncates. fd may be a file or O_PATH fd. statx → [fchmodat2] → next.
func (h *handlers) killSuidgid(r *request, fd int, next func()) {
	st := aio.Statx(fd, "", statFlags)
	h.then(r, st, func(int64) {
		mode := uint32(st.Stat.Mode)
		kill := mode & unix.S_ISUID
		if mode&(unix.S_ISGID|unix.S_IXGRP) == unix.S_ISGID|unix.S_IXGRP {
			kill |= unix.S_ISGID
		}
		if kill == 0 || mode&unix.S_IFMT != unix.S_IFREG {
			next()
			return
		}
		h.then(r, aio.Fchmodat(fd, "", mode&07777&^kill, unix.AT_EMPTY_PATH), func(int64) { next() })
	})
}

// Flush: writes reach the backing fs before WRITE is answered, so the
// only work is POSIX close semantics: the closing lock owner's record
// locks on this inode are released (see releaseOwnerLocks).
func (h *handlers) Flush(r *request, in *fuse.FlushIn) {
	hd := h.handle(r, in.Fh)
	if hd == nil {
		return
	}
	h.releaseOwnerLocks(hd.NodeID, in.LockOwner, func() { r.reply(fuse.OK) })
}

// Release (and RELEASEDIR): drop the handle, close its file (one its
// node's fd holds by moving an O_PATH file back onto that number,
// lend.go), then answer, so locks held through it are gone by the time
// the kernel hears back.
func (h *handlers) Release(r *request, in *fuse.ReleaseIn) {
	hd := h.handles.Remove(in.Fh)
	if hd == nil {
		r.errno(unix.EBADF)
		return
	}
	h.locks.dropHandle(hd.NodeID, hd.ID)
	h.dirBufs.put(hd.Dir)
	// On a memory root this close runs on the spot (markMemory) while
	// the request's node is in the table: the node's own fd keeps the
	// inode, so the close frees nothing. Once the node is forgotten the
	// close goes to the backend: it may free an unlinked file.
	if n := h.lentTo(hd); n != nil {
		h.giveBack(r, n)
		return
	}
	h.submit(r, aio.Close(hd.Fd), func(res int64) { r.reply(fuse.OK) })
}

// Fsync (and FSYNCDIR): fsync or fdatasync of the handle's fd.
func (h *handlers) Fsync(r *request, in *fuse.FsyncIn) {
	hd := h.handle(r, in.Fh)
	if hd == nil {
		return
	}
	h.then(r, aio.Fsync(hd.Fd, in.FsyncFlags&1 != 0), func(int64) { r.reply(fuse.OK) })
}

// Fallocate: fallocate(handle, mode, off, len) — including punch hole and
// keep size, which pass through as mode bits.
func (h *handlers) Fallocate(r *request, in *fuse.FallocateIn) {
	hd := h.handle(r, in.Fh)
	if hd == nil || !h.writable(r) {
		return
	}
	if int64(in.Offset) < 0 || int64(in.Length) <= 0 {
		r.errno(unix.EINVAL)
		return
	}
	h.inOrder(r, hd.NodeID, true, in.Offset, in.Length, func() {
		h.then(r, aio.Fallocate(hd.Fd, in.Mode, int64(in.Offset), int64(in.Length)), func(int64) {
			r.reply(fuse.OK)
		})
	})
}

// Lseek: lseek(handle, off, whence) for SEEK_DATA / SEEK_HOLE.
func (h *handlers) Lseek(r *request, in *fuse.LseekIn, out *fuse.LseekOut) {
	hd := h.handle(r, in.Fh)
	if hd == nil {
		return
	}
	h.then(r, aio.Lseek(hd.Fd, int64(in.Offset), int(in.Whence)), func(res int64) {
		out.Offset = uint64(res)
		r.reply(fuse.OK)
	})
}

// CopyFileRange: copy_file_range between two handles' fds.
func (h *handlers) CopyFileRange(r *request, in *fuse.CopyFileRangeIn, n *uint32) {
	src := h.handle(r, in.FhIn)
	if src == nil {
		return
	}
	dst := h.handle(r, in.FhOut)
	if dst == nil || !h.writable(r) {
		return
	}
	// Offsets go to copy_file_range as they are: it vets them itself
	// (EINVAL, EOVERFLOW, EFBIG, in its own order).
	length := min(in.Len, 1<<30) // the reply carries a uint32 count
	copyRange := func() {
		op := aio.CopyFileRange(src.Fd, int64(in.OffIn), dst.Fd, int64(in.OffOut), int64(length), int(in.Flags))
		h.then(r, op, func(res int64) {
			*n = uint32(res)
			r.reply(fuse.OK)
		})
	}
	h.copyInOrder(r, src.NodeID, in.OffIn, dst.NodeID, in.OffOut, length, copyRange)
}

// copyInOrder runs the copy once the source range may be read and the
// destination range written (ioorder.go), and ends both spans when the
// request is answered. Both spans are admitted now, at arrival, so that
// on every node a span waits only for requests that arrived before it
// (no two copies can each hold what the other waits for). A copy within
// one file takes one write span over both ranges: its own read must not
// hold back its write.
func (h *handlers) copyInOrder(r *request, srcNode, srcOff, dstNode, dstOff, length uint64, run func()) {
	if srcNode == dstNode {
		lo, hi := min(srcOff, dstOff), max(srcOff, dstOff)
		h.inOrder(r, dstNode, true, lo, hi-lo+length, run)
		return
	}
	in, inReady := h.io.begin(srcNode, false, srcOff, length)
	out, outReady := h.io.begin(dstNode, true, dstOff, length)
	r.atReply = func() { h.io.end(srcNode, in); h.io.end(dstNode, out) }
	waiting := 0
	ready := func() {
		if waiting--; waiting == 0 {
			run()
		}
	}
	if !inReady {
		waiting++
		h.io.wait(srcNode, in, ready)
	}
	if !outReady {
		waiting++
		h.io.wait(dstNode, out, ready)
	}
	if waiting == 0 {
		run()
	}
}
