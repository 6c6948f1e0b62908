package fs

import (
	"encoding/binary"
	"strings"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/aio"
	"evfs/backing"
)

// direntBufSize is the getdents buffer of one open directory.
const direntBufSize = 32 << 10

// spareDirBufs is how many getdents buffers of released handles are kept
// for later OPENDIRs: a program listing a directory opens it each time,
// and a fresh 32 KiB buffer per open was a quarter of what a 1 000-entry
// listing allocated (docs/BENCHMARKS-history.md, session 13).
const spareDirBufs = 16

// dirBufs holds the spare getdents buffers. Owned by the loop goroutine.
type dirBufs [][]byte

func (b *dirBufs) get() []byte {
	if n := len(*b); n > 0 {
		buf := (*b)[n-1]
		*b = (*b)[:n-1]
		return buf
	}
	return make([]byte, direntBufSize)
}

// put keeps the buffer of a released handle, unless a getdents may
// still write into it.
func (b *dirBufs) put(ds *backing.DirStream) {
	if ds == nil || ds.Buf == nil || ds.Pending || len(*b) >= spareDirBufs {
		return
	}
	*b = append(*b, ds.Buf)
	ds.Buf = nil
}

// OpenDir: openat(node, ".", O_RDONLY|O_DIRECTORY) → register handle.
func (h *handlers) OpenDir(r *request, in *fuse.OpenIn, out *fuse.OpenOut) {
	n := h.node(r, in.NodeId)
	if n == nil {
		return
	}
	if n.Mode != unix.S_IFDIR {
		r.errno(unix.ENOTDIR)
		return
	}
	// Opening "." walks no name: on a resident file system it reads
	// only the in-core inode, and O_DIRECTORY rules out the waits of
	// other opens (leases, FIFOs).
	op := aio.Openat(n.Fd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	op.Resident = h.onSpot(n)
	h.then(r, op, func(fd int64) {
		hd := h.handles.Add(int(fd), n.ID, true)
		out.Fh = hd.ID
		if h.opts.CacheDir {
			// Let the kernel keep listings: repeated readdirs of an
			// unchanged directory never reach the daemon.
			out.OpenFlags |= fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
		}
		r.reply(fuse.OK)
	})
}

// ReadDir serves READDIR and READDIRPLUS from the handle's getdents
// buffer, refilling it as needed. Offsets are the backing fs's d_off
// cookies, so a seekdir from the kernel becomes one lseek.
func (h *handlers) ReadDir(r *request, in *fuse.ReadIn, out *fuse.DirEntryList, plus bool) {
	hd := h.handle(r, in.Fh)
	if hd == nil {
		return
	}
	ds := hd.Dir
	if ds == nil {
		r.errno(unix.ENOTDIR)
		return
	}
	if in.Offset == ds.Off {
		h.fillDir(r, hd, out, plus)
		return
	}
	h.then(r, aio.Lseek(hd.Fd, int64(in.Offset), unix.SEEK_SET), func(int64) {
		ds.Off, ds.Pos, ds.Len, ds.EOF = in.Offset, 0, 0, false
		h.fillDir(r, hd, out, plus)
	})
}

// dirent is one parsed linux_dirent64.
type dirent struct {
	ino  uint64
	off  uint64
	typ  uint8
	name string
	size int
}

// parseDirent reads the record at the start of b. The name aliases b:
// copied into the reply as it is, it costs no allocation, but whatever
// keeps it (a READDIRPLUS lookup, a node's name) must clone it first,
// since the getdents buffer is refilled and reused.
func parseDirent(b []byte) (dirent, bool) {
	const hdr = 19 // ino 8, off 8, reclen 2, type 1
	if len(b) < hdr {
		return dirent{}, false
	}
	reclen := int(binary.NativeEndian.Uint16(b[16:]))
	if reclen < hdr || reclen > len(b) {
		return dirent{}, false
	}
	name := b[hdr:reclen]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	return dirent{
		ino:  binary.NativeEndian.Uint64(b[0:]),
		off:  binary.NativeEndian.Uint64(b[8:]),
		typ:  b[18],
		name: unsafe.String(unsafe.SliceData(name), len(name)),
		size: reclen,
	}, true
}

// fillDir copies buffered entries into out until it is full or the
// directory ends, refilling the buffer with getdents when it runs dry.
func (h *handlers) fillDir(r *request, hd *backing.Handle, out *fuse.DirEntryList, plus bool) {
	ds := hd.Dir
	lookups := h.lookups[:0] // lookupAll is done with it before fillDir returns
	for {
		if ds.Pos >= ds.Len {
			if ds.EOF {
				break
			}
			if len(lookups) > 0 {
				break // answer what we have; its lookups must finish first
			}
			if ds.Buf == nil {
				ds.Buf = h.dirBufs.get()
			}
			ds.Pending = true
			h.submit(r, aio.Getdents(hd.Fd, ds.Buf), func(n int64) {
				ds.Pending = false
				if n < 0 {
					r.fail(n)
					return
				}
				ds.Len, ds.Pos, ds.EOF = int(n), 0, n == 0
				h.fillDir(r, hd, out, plus)
			})
			return
		}
		e, ok := parseDirent(ds.Buf[ds.Pos:ds.Len])
		if !ok {
			h.log.Error("malformed getdents record", "handle", hd.ID)
			ds.Pos = ds.Len
			continue
		}
		de := fuse.DirEntry{Name: e.name, Ino: e.ino, Off: e.off, Mode: uint32(e.typ) << 12}
		if !plus {
			if !out.AddDirEntry(de) {
				break
			}
		} else {
			eo := out.AddDirLookupEntry(de)
			if eo == nil {
				break
			}
			if e.name != "." && e.name != ".." {
				lookups = append(lookups, pendingLookup{strings.Clone(e.name), e.ino, uint32(e.typ) << 12, eo})
			}
		}
		ds.Pos += e.size
		ds.Off = e.off
	}
	if len(lookups) == 0 {
		r.reply(fuse.OK)
		return
	}
	h.lookupAll(r, hd.NodeID, lookups)
	clear(lookups) // its names and outputs belong to the request
	h.lookups = lookups[:0]
}

type pendingLookup struct {
	name string
	ino  uint64 // d_ino: tells whether the inode is probably known
	mode uint32 // d_type as S_IFMT bits (0: unknown)
	out  *fuse.EntryOut
}

// lookupAll runs the READDIRPLUS lookups in parallel and answers when
// all are done. An entry whose lookup fails keeps node id 0: the kernel
// then lists the name without caching attributes for it.
func (h *handlers) lookupAll(r *request, dirID uint64, lookups []pendingLookup) {
	dir := h.nodes.Get(dirID)
	if dir == nil {
		r.reply(fuse.OK)
		return
	}
	left := len(lookups)
	finish := func() {
		left--
		if left == 0 {
			r.reply(fuse.OK)
		}
	}
	for _, l := range lookups {
		key := backing.Key{Dev: dir.Key.Dev, Ino: l.ino}
		if h.lookupHeld(dir, key, l, finish) {
			continue
		}
		h.lookupQuiet(dir, l.name, h.nodes.Known(key), l.out, finish)
	}
}

// lookupHeld answers a READDIRPLUS entry whose inode the table holds with
// a statx of the node's own fd — on the spot on a resident file system
// (statFd) — instead of a statx of the name on a worker; false if it does
// not apply. The table's fd keeps the inode, so its number cannot have
// been reused: the name led to this very inode when getdents read it.
// Directories take the name path: one may be a mount point, whose name
// leads to another file system's root, not to its d_ino.
func (h *handlers) lookupHeld(dir *backing.Node, key backing.Key, l pendingLookup, done func()) bool {
	if !h.resident(dir) || l.mode == 0 || l.mode == unix.S_IFDIR {
		return false
	}
	n := h.nodes.Ref(key, l.mode)
	if n == nil {
		return false
	}
	st := h.statFd(n, n.Fd)
	h.loop.Submit(st, func(res int64) {
		if res < 0 {
			h.closeFd(h.nodes.Forget(n.ID, 1)) // the kernel will not hear of this lookup
		} else {
			h.named(dir.ID, l.name, func(n *backing.Node) { h.fillEntry(n, &st.Stat, l.out) })(n)
		}
		done()
	})
	return true
}

// lookupQuiet is resolve for one READDIRPLUS entry, which has no request
// of its own: a failure just leaves out untouched (node id 0, so the
// kernel lists the name without caching attributes). known says the
// inode is probably in the table (its d_ino is). It always takes the
// path through the backend, never resolve's on-the-spot one: a listing's
// entries are many lookups at once, which the pool's workers share out
// over the cores (1 000 entries: 4.8 ms, against 7.7 ms one after another
// on the loop; docs/BENCHMARKS-history.md).
func (h *handlers) lookupQuiet(dir *backing.Node, name string, known bool, out *fuse.EntryOut, done func()) {
	run := func(op *aio.Op, k func(int64)) { h.loop.Submit(op, k) }
	h.resolvePath(run, dir, name, known, out, h.named(dir.ID, name, func(*backing.Node) { done() }), func(int64) { done() })
}
