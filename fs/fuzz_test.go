package fs

// FuzzOps decodes its input as a sequence of file-system operations over
// small alphabets of paths, sizes and offsets, applies it through the
// Bridge (no kernel: see bridgeHarness) on one backing directory per
// backend and natively (unix.* syscalls) on another directory, and
// compares every step's errno and bytes, then the two trees. It also
// checks that the daemon's tables drain (every node forgotten, every
// handle released) and that nothing stays in flight.
//
// The client side plays the kernel's part the way a no-symlink-following
// caller would: paths are walked with LOOKUP one component at a time, a
// symlink in the middle of a path is ELOOP (natively: openat2 with
// RESOLVE_NO_SYMLINKS), files are opened O_NOFOLLOW, and every node a
// reply hands out is forgotten after the step.
//
//	go test -run FuzzOps ./fs/                          # the seed corpus
//	go test -run '^$' -fuzz FuzzOps -fuzztime 30s ./fs/ # fuzzing

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/backing"
)

var (
	fzPaths    = []string{"a", "b", "c", "a/b", "a/c", "b/a", "a/b/c", "c/a"}
	fzTargets  = []string{"a", "../b", "/etc", "missing", "a/b", ".", ""}
	fzModes    = []uint32{0o644, 0o600, 0o755, 0o2755}
	fzOffsets  = []uint64{0, 1, 100, 4095, 4096, 65535, 1 << 62, math.MaxInt64 - 2, 1 << 63, math.MaxUint64}
	fzSizes    = []int{0, 1, 7, 512, 4096, 5000}
	fzTruncs   = []uint64{0, 1, 100, 4096, 5000, 65536, 1 << 44, 1 << 63, math.MaxUint64}
	fzLens     = []uint64{0, 1, 4096, 10000, 1 << 20, 1 << 63}
	fzFallocs  = []uint32{0, unix.FALLOC_FL_KEEP_SIZE, unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE, unix.FALLOC_FL_ZERO_RANGE}
	fzXNames   = []string{"user.a", "user.b"}
	fzXSizes   = []int{0, 3, 100, 4000, 65536, 65537}
	fzXFlags   = []int{0, unix.XATTR_CREATE, unix.XATTR_REPLACE}
	fzBufSizes = []int{0, 2, 100, 65536}
	fzRenames  = []uint32{0, unix.RENAME_NOREPLACE, unix.RENAME_EXCHANGE}
	fzNodTypes = []uint32{unix.S_IFREG, unix.S_IFSOCK}
)

const (
	fzMkdir = iota
	fzCreate
	fzWrite
	fzRead
	fzTruncate
	fzRename
	fzUnlink
	fzRmdir
	fzSymlink
	fzLink
	fzSetxattr
	fzGetxattr
	fzFallocate
	fzStat
	fzReaddir
	fzReadlink
	fzRemovexattr
	fzListxattr
	fzMknod
	fzNumOps
)

// fzOp is one decoded step: its kind and four argument bytes, each taken
// modulo the size of the alphabet it indexes.
type fzOp struct{ kind, p1, p2, x, y byte }

const fzMaxOps = 64

// fzXattrSizeMax is the kernel's XATTR_SIZE_MAX.
const fzXattrSizeMax = 64 << 10

func fzDecode(data []byte) []fzOp {
	var ops []fzOp
	for len(data) >= 5 && len(ops) < fzMaxOps {
		ops = append(ops, fzOp{data[0] % fzNumOps, data[1], data[2], data[3], data[4]})
		data = data[5:]
	}
	return ops
}

func pick[T any](alphabet []T, b byte) T { return alphabet[int(b)%len(alphabet)] }

func (o fzOp) path1() string { return pick(fzPaths, o.p1) }
func (o fzOp) path2() string { return pick(fzPaths, o.p2) }

// fzData is the content step i writes: distinct per step.
func fzData(i, size int) []byte {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(j*31 + i*7 + 1)
	}
	return b
}

func (o fzOp) String() string {
	p1, p2 := o.path1(), o.path2()
	switch o.kind {
	case fzMkdir:
		return fmt.Sprintf("mkdir %s %#o", p1, pick(fzModes, o.x))
	case fzCreate:
		return fmt.Sprintf("create %s %#o excl=%v trunc=%v", p1, pick(fzModes, o.x), o.y&1 != 0, o.y&2 != 0)
	case fzWrite:
		return fmt.Sprintf("write %s off=%d size=%d", p1, pick(fzOffsets, o.x), pick(fzSizes, o.y))
	case fzRead:
		return fmt.Sprintf("read %s off=%d size=%d", p1, pick(fzOffsets, o.x), pick(fzSizes, o.y))
	case fzTruncate:
		return fmt.Sprintf("truncate %s %d", p1, pick(fzTruncs, o.x))
	case fzRename:
		return fmt.Sprintf("rename %s %s flags=%d", p1, p2, pick(fzRenames, o.y))
	case fzUnlink:
		return "unlink " + p1
	case fzRmdir:
		return "rmdir " + p1
	case fzSymlink:
		return fmt.Sprintf("symlink %q %s", pick(fzTargets, o.x), p1)
	case fzLink:
		return fmt.Sprintf("link %s %s", p1, p2)
	case fzSetxattr:
		return fmt.Sprintf("setxattr %s %s size=%d flags=%d", p1, pick(fzXNames, o.x), pick(fzXSizes, o.x>>1), pick(fzXFlags, o.y))
	case fzGetxattr:
		return fmt.Sprintf("getxattr %s %s buf=%d", p1, pick(fzXNames, o.x), pick(fzBufSizes, o.y))
	case fzFallocate:
		return fmt.Sprintf("fallocate %s mode=%#x off=%d len=%d", p1, pick(fzFallocs, o.x), pick(fzOffsets, o.y), pick(fzLens, o.x>>2))
	case fzStat:
		return "stat " + p1
	case fzReaddir:
		return fmt.Sprintf("readdir %s plus=%v", p1, o.y&1 != 0)
	case fzReadlink:
		return "readlink " + p1
	case fzRemovexattr:
		return fmt.Sprintf("removexattr %s %s", p1, pick(fzXNames, o.x))
	case fzListxattr:
		return fmt.Sprintf("listxattr %s buf=%d", p1, pick(fzBufSizes, o.y))
	case fzMknod:
		return fmt.Sprintf("mknod %s type=%#o", p1, pick(fzNodTypes, o.x))
	}
	return fmt.Sprintf("op%d", o.kind)
}

// fzResult is what one step returned: an errno, a count, bytes.
type fzResult struct {
	errno unix.Errno
	n     int64
	data  string
}

func (r fzResult) String() string {
	s := errnoName(r.errno)
	if r.errno == 0 {
		s += fmt.Sprintf(" n=%d", r.n)
		if r.data != "" {
			s += fmt.Sprintf(" data=%.80q", r.data)
		}
	}
	return s
}

func fzErr(err error) fzResult { return fzResult{errno: errnoOfErr(err)} }

// fzNative applies steps with plain syscalls below root.
type fzNative struct {
	root int
	fds  []int
}

func splitPath(p string) (dir, name string) {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return "", p
}

// walk opens the parent of p without following any symlink.
func (n *fzNative) walk(p string) (int, string, unix.Errno) {
	dir, name := splitPath(p)
	if dir == "" {
		return n.root, name, 0
	}
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH}
	fd, err := unix.Openat2(n.root, dir, &how)
	if err != nil {
		return -1, "", errnoOfErr(err)
	}
	n.fds = append(n.fds, fd)
	return fd, name, 0
}

func (n *fzNative) closeAll() {
	for _, fd := range n.fds {
		unix.Close(fd)
	}
	n.fds = n.fds[:0]
}

func procPath(fd int, name string) string { return fmt.Sprintf("/proc/self/fd/%d/%s", fd, name) }

// open opens p (never following a final symlink) with flags.
func (n *fzNative) open(p string, flags int) (int, unix.Errno) {
	pfd, name, e := n.walk(p)
	if e != 0 {
		return -1, e
	}
	fd, err := unix.Openat(pfd, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, errnoOfErr(err)
	}
	return fd, 0
}

func (n *fzNative) apply(i int, o fzOp) fzResult {
	defer n.closeAll()
	switch o.kind {
	case fzMkdir:
		pfd, name, e := n.walk(o.path1())
		if e != 0 {
			return fzResult{errno: e}
		}
		return fzErr(unix.Mkdirat(pfd, name, pick(fzModes, o.x)))
	case fzCreate:
		pfd, name, e := n.walk(o.path1())
		if e != 0 {
			return fzResult{errno: e}
		}
		flags := unix.O_CREAT | unix.O_RDWR | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if o.y&1 != 0 {
			flags |= unix.O_EXCL
		}
		if o.y&2 != 0 {
			flags |= unix.O_TRUNC
		}
		fd, err := unix.Openat(pfd, name, flags, pick(fzModes, o.x))
		if err == nil {
			unix.Close(fd)
		}
		return fzErr(err)
	case fzWrite, fzRead, fzTruncate, fzFallocate:
		flags := unix.O_RDWR
		switch o.kind {
		case fzRead:
			flags = unix.O_RDONLY
		case fzTruncate:
			flags = unix.O_WRONLY
		}
		fd, e := n.open(o.path1(), flags)
		if e != 0 {
			return fzResult{errno: e}
		}
		defer unix.Close(fd)
		switch o.kind {
		case fzWrite:
			c, err := unix.Pwrite(fd, fzData(i, pick(fzSizes, o.y)), int64(pick(fzOffsets, o.x)))
			if err != nil {
				return fzErr(err)
			}
			return fzResult{n: int64(c)}
		case fzRead:
			var st unix.Stat_t
			if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				// Whatever the offset: see fzBridgeSide.open.
				return fzResult{errno: unix.EISDIR}
			}
			buf := make([]byte, pick(fzSizes, o.y))
			c, err := unix.Pread(fd, buf, int64(pick(fzOffsets, o.x)))
			if err != nil {
				return fzErr(err)
			}
			return fzResult{n: int64(c), data: string(buf[:c])}
		case fzTruncate:
			return fzErr(unix.Ftruncate(fd, int64(pick(fzTruncs, o.x))))
		default:
			return fzErr(unix.Fallocate(fd, pick(fzFallocs, o.x), int64(pick(fzOffsets, o.y)), int64(pick(fzLens, o.x>>2))))
		}
	case fzRename, fzLink:
		pfd1, n1, e := n.walk(o.path1())
		if e != 0 {
			return fzResult{errno: e}
		}
		pfd2, n2, e := n.walk(o.path2())
		if e != 0 {
			return fzResult{errno: e}
		}
		if o.kind == fzLink {
			return fzErr(unix.Linkat(pfd1, n1, pfd2, n2, 0))
		}
		return fzErr(unix.Renameat2(pfd1, n1, pfd2, n2, uint(pick(fzRenames, o.y))))
	case fzUnlink, fzRmdir:
		pfd, name, e := n.walk(o.path1())
		if e != 0 {
			return fzResult{errno: e}
		}
		flags := 0
		if o.kind == fzRmdir {
			flags = unix.AT_REMOVEDIR
		}
		return fzErr(unix.Unlinkat(pfd, name, flags))
	case fzSymlink:
		pfd, name, e := n.walk(o.path1())
		if e != 0 {
			return fzResult{errno: e}
		}
		return fzErr(unix.Symlinkat(pick(fzTargets, o.x), pfd, name))
	case fzMknod:
		pfd, name, e := n.walk(o.path1())
		if e != 0 {
			return fzResult{errno: e}
		}
		return fzErr(unix.Mknodat(pfd, name, pick(fzNodTypes, o.x)|0o644, 0))
	case fzSetxattr, fzGetxattr, fzRemovexattr, fzListxattr:
		pfd, name, e := n.walk(o.path1())
		if e != 0 {
			if o.kind == fzSetxattr && pick(fzXSizes, o.x>>1) > fzXattrSizeMax {
				return fzResult{errno: unix.E2BIG} // as setxattr(2) would
			}
			return fzResult{errno: e}
		}
		p := procPath(pfd, name)
		attr := pick(fzXNames, o.x)
		switch o.kind {
		case fzSetxattr:
			return fzErr(unix.Lsetxattr(p, attr, fzData(i, pick(fzXSizes, o.x>>1)), pick(fzXFlags, o.y)))
		case fzRemovexattr:
			return fzErr(unix.Lremovexattr(p, attr))
		case fzGetxattr:
			buf := make([]byte, pick(fzBufSizes, o.y))
			c, err := unix.Lgetxattr(p, attr, buf)
			if err != nil {
				return fzErr(err)
			}
			return fzResult{n: int64(c), data: string(buf[:min(c, len(buf))])}
		default:
			buf := make([]byte, pick(fzBufSizes, o.y))
			c, err := unix.Llistxattr(p, buf)
			if err != nil {
				return fzErr(err)
			}
			return fzResult{n: int64(c), data: fzSortedList(buf[:min(c, len(buf))])}
		}
	case fzStat:
		pfd, name, e := n.walk(o.path1())
		if e != 0 {
			return fzResult{errno: e}
		}
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fzErr(err)
		}
		return fzResult{data: fzStatString(st.Mode, uint64(st.Nlink), st.Uid, st.Gid, uint64(st.Size), uint64(st.Blocks))}
	case fzReaddir:
		fd, e := n.open(o.path1(), unix.O_RDONLY|unix.O_DIRECTORY)
		if e != 0 {
			return fzResult{errno: e}
		}
		defer unix.Close(fd)
		var names []string
		buf := make([]byte, 4096)
		for {
			c, err := unix.Getdents(fd, buf)
			if err != nil {
				return fzErr(err)
			}
			if c == 0 {
				break
			}
			for b := buf[:c]; len(b) > 0; {
				var e fuse.DirEntry
				sz := e.Parse(b)
				names = append(names, fmt.Sprintf("%s:%o", e.Name, e.Mode>>12))
				b = b[sz:]
			}
		}
		slices.Sort(names)
		return fzResult{n: int64(len(names)), data: strings.Join(names, " ")}
	case fzReadlink:
		pfd, name, e := n.walk(o.path1())
		if e != 0 {
			return fzResult{errno: e}
		}
		buf := make([]byte, 4096)
		c, err := unix.Readlinkat(pfd, name, buf)
		if err != nil {
			return fzErr(err)
		}
		return fzResult{n: int64(c), data: string(buf[:c])}
	}
	panic("unknown op")
}

// fzSortedList turns a listxattr buffer into a sorted, comparable string
// (the order of names is the filesystem's business).
func fzSortedList(b []byte) string {
	names := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	slices.Sort(names)
	return strings.Join(names, ",")
}

func fzStatString(mode uint32, nlink uint64, uid, gid uint32, size, blocks uint64) string {
	s := fmt.Sprintf("mode=%#o nlink=%d uid=%d gid=%d", mode, nlink, uid, gid)
	if mode&unix.S_IFMT != unix.S_IFDIR {
		// A directory's size and blocks depend on its history of entries
		// in ways that are the filesystem's business, not evfs's.
		s += fmt.Sprintf(" size=%d blocks=%d", size, blocks)
	}
	return s
}

// fzBridgeSide applies steps through the Bridge, as the kernel would
// send them.
type fzBridgeSide struct {
	hb   *bridgeHarness
	refs []uint64 // nodes looked up during the step, forgotten after it
}

func (c *fzBridgeSide) lookup(parent uint64, name string) (fuse.EntryOut, unix.Errno) {
	out, e := c.hb.lookup(parent, name)
	if e == 0 {
		c.ref(out.NodeId)
	}
	return out, e
}

func (c *fzBridgeSide) ref(node uint64) { c.refs = append(c.refs, node) }

func (c *fzBridgeSide) forgetAll() {
	for _, n := range c.refs {
		c.hb.forget(n, 1)
	}
	c.refs = c.refs[:0]
}

// walk looks up every directory of p; a symlink on the way is ELOOP.
func (c *fzBridgeSide) walk(p string) (uint64, string, unix.Errno) {
	dir, name := splitPath(p)
	node := uint64(backing.RootID)
	if dir == "" {
		return node, name, 0
	}
	for _, comp := range strings.Split(dir, "/") {
		out, e := c.lookup(node, comp)
		if e != 0 {
			return 0, "", e
		}
		if out.Attr.Mode&unix.S_IFMT == unix.S_IFLNK {
			return 0, "", unix.ELOOP
		}
		node = out.NodeId
	}
	return node, name, 0
}

// open looks p up and opens it (OPEN refuses symlinks with ELOOP). A
// read(2) of a directory never reaches the daemon: the kernel opens it
// with OPENDIR and answers the read itself (EISDIR, or EINVAL for a bad
// offset); both sides of the comparison call it EISDIR.
func (c *fzBridgeSide) open(p string, flags uint32) (node, fh uint64, e unix.Errno) {
	parent, name, e := c.walk(p)
	if e != 0 {
		return 0, 0, e
	}
	out, e := c.lookup(parent, name)
	if e != 0 {
		return 0, 0, e
	}
	if out.Attr.Mode&unix.S_IFMT == unix.S_IFDIR && flags&unix.O_ACCMODE == unix.O_RDONLY {
		return 0, 0, unix.EISDIR
	}
	fh, e = c.hb.open(out.NodeId, flags)
	return out.NodeId, fh, e
}

func st2r(st fuse.Status) fzResult { return fzResult{errno: unix.Errno(st)} }

func (c *fzBridgeSide) apply(i int, o fzOp) fzResult {
	defer c.forgetAll()
	b, hb := c.hb.b, c.hb
	var st fuse.Status
	switch o.kind {
	case fzMkdir, fzSymlink, fzMknod:
		parent, name, e := c.walk(o.path1())
		if e != 0 {
			return fzResult{errno: e}
		}
		h := hdr(parent)
		var out fuse.EntryOut
		hb.do(o.String(), func() {
			switch o.kind {
			case fzMkdir:
				st = b.Mkdir(nil, &fuse.MkdirIn{InHeader: h, Mode: pick(fzModes, o.x)}, name, &out)
			case fzSymlink:
				st = b.Symlink(nil, &h, pick(fzTargets, o.x), name, &out)
			default:
				st = b.Mknod(nil, &fuse.MknodIn{InHeader: h, Mode: pick(fzNodTypes, o.x) | 0o644}, name, &out)
			}
		})
		if st.Ok() {
			c.ref(out.NodeId)
		}
		return st2r(st)
	case fzCreate:
		parent, name, e := c.walk(o.path1())
		if e != 0 {
			return fzResult{errno: e}
		}
		flags := uint32(unix.O_CREAT | unix.O_RDWR)
		if o.y&1 != 0 {
			flags |= unix.O_EXCL
		}
		if o.y&2 != 0 {
			flags |= unix.O_TRUNC
		}
		out, e := hb.create(parent, name, flags, pick(fzModes, o.x))
		if e == 0 {
			c.ref(out.NodeId)
			hb.release(out.NodeId, out.Fh)
		}
		return fzResult{errno: e}
	case fzWrite, fzRead, fzTruncate, fzFallocate:
		flags := uint32(unix.O_RDWR)
		switch o.kind {
		case fzRead:
			flags = unix.O_RDONLY
		case fzTruncate:
			flags = unix.O_WRONLY
		}
		node, fh, e := c.open(o.path1(), flags)
		if e != 0 {
			return fzResult{errno: e}
		}
		defer hb.release(node, fh)
		switch o.kind {
		case fzWrite:
			n, e := hb.write(node, fh, pick(fzOffsets, o.x), fzData(i, pick(fzSizes, o.y)))
			if e != 0 {
				return fzResult{errno: e}
			}
			return fzResult{n: int64(n)}
		case fzRead:
			data, e := hb.read(node, fh, pick(fzOffsets, o.x), pick(fzSizes, o.y))
			if e != 0 {
				return fzResult{errno: e}
			}
			return fzResult{n: int64(len(data)), data: string(data)}
		case fzTruncate:
			in := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{InHeader: hdr(node),
				Valid: fuse.FATTR_SIZE | fuse.FATTR_FH, Fh: fh, Size: pick(fzTruncs, o.x)}}
			_, e := hb.setattr(in)
			return fzResult{errno: e}
		default:
			hb.do(o.String(), func() {
				st = b.Fallocate(nil, &fuse.FallocateIn{InHeader: hdr(node), Fh: fh,
					Offset: pick(fzOffsets, o.y), Length: pick(fzLens, o.x>>2), Mode: pick(fzFallocs, o.x)})
			})
			return st2r(st)
		}
	case fzRename, fzLink:
		p1, n1, e := c.walk(o.path1())
		if e != 0 {
			return fzResult{errno: e}
		}
		p2, n2, e := c.walk(o.path2())
		if e != 0 {
			return fzResult{errno: e}
		}
		if o.kind == fzRename {
			if backing.CheckName(n1) != 0 || backing.CheckName(n2) != 0 {
				panic("bad name in the alphabet")
			}
			hb.do(o.String(), func() {
				st = b.Rename(nil, &fuse.RenameIn{InHeader: hdr(p1), Newdir: p2, Flags: pick(fzRenames, o.y)}, n1, n2)
			})
			return st2r(st)
		}
		old, e := c.lookup(p1, n1)
		if e != 0 {
			return fzResult{errno: e}
		}
		var out fuse.EntryOut
		hb.do(o.String(), func() {
			st = b.Link(nil, &fuse.LinkIn{InHeader: hdr(p2), Oldnodeid: old.NodeId}, n2, &out)
		})
		if st.Ok() {
			c.ref(out.NodeId)
		}
		return st2r(st)
	case fzUnlink, fzRmdir:
		parent, name, e := c.walk(o.path1())
		if e != 0 {
			return fzResult{errno: e}
		}
		h := hdr(parent)
		hb.do(o.String(), func() {
			if o.kind == fzUnlink {
				st = b.Unlink(nil, &h, name)
			} else {
				st = b.Rmdir(nil, &h, name)
			}
		})
		return st2r(st)
	case fzSetxattr, fzGetxattr, fzRemovexattr, fzListxattr, fzStat, fzReadlink:
		parent, name, e := c.walk(o.path1())
		var out fuse.EntryOut
		if e == 0 {
			out, e = c.lookup(parent, name)
		}
		if o.kind == fzSetxattr && pick(fzXSizes, o.x>>1) > fzXattrSizeMax &&
			(e != 0 || out.Attr.Mode&unix.S_IFMT == unix.S_IFLNK) {
			// The kernel copies and vets the value before it walks the
			// path; evfs answers an oversized value with E2BIG too, but
			// a symlink with EPERM first.
			return fzResult{errno: unix.E2BIG}
		}
		if e != 0 {
			return fzResult{errno: e}
		}
		h := hdr(out.NodeId)
		attr := pick(fzXNames, o.x)
		switch o.kind {
		case fzSetxattr:
			value := fzData(i, pick(fzXSizes, o.x>>1))
			hb.do(o.String(), func() {
				st = b.SetXAttr(nil, &fuse.SetXAttrIn{InHeader: h, Size: uint32(len(value)), Flags: uint32(pick(fzXFlags, o.y))}, attr, value)
			})
			return st2r(st)
		case fzRemovexattr:
			hb.do(o.String(), func() { st = b.RemoveXAttr(nil, &h, attr) })
			return st2r(st)
		case fzGetxattr, fzListxattr:
			dest := make([]byte, pick(fzBufSizes, o.y))
			var n uint32
			hb.do(o.String(), func() {
				if o.kind == fzGetxattr {
					n, st = b.GetXAttr(nil, &h, attr, dest)
				} else {
					n, st = b.ListXAttr(nil, &h, dest)
				}
			})
			if !st.Ok() {
				return st2r(st)
			}
			got := dest[:min(int(n), len(dest))]
			if o.kind == fzListxattr {
				return fzResult{n: int64(n), data: fzSortedList(got)}
			}
			return fzResult{n: int64(n), data: string(got)}
		case fzStat:
			a := out.Attr
			s := fzStatString(a.Mode, uint64(a.Nlink), a.Uid, a.Gid, a.Size, a.Blocks)
			ga, e := hb.getattr(out.NodeId)
			if e != 0 {
				return fzResult{errno: e}
			}
			a = ga.Attr
			if s2 := fzStatString(a.Mode, uint64(a.Nlink), a.Uid, a.Gid, a.Size, a.Blocks); s2 != s {
				return fzResult{data: "LOOKUP " + s + " but GETATTR " + s2}
			}
			return fzResult{data: s}
		default: // readlink
			var target []byte
			hb.do(o.String(), func() { target, st = b.Readlink(nil, &h) })
			if !st.Ok() {
				return st2r(st)
			}
			return fzResult{n: int64(len(target)), data: string(target)}
		}
	case fzReaddir:
		parent, name, e := c.walk(o.path1())
		if e != 0 {
			return fzResult{errno: e}
		}
		out, e := c.lookup(parent, name)
		if e != 0 {
			return fzResult{errno: e}
		}
		// The kernel's own check for open(O_DIRECTORY|O_NOFOLLOW): a
		// symlink is not a directory either.
		if out.Attr.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fzResult{errno: unix.ENOTDIR}
		}
		return c.readdir(out.NodeId, o.y&1 != 0)
	}
	panic("unknown op")
}

// readdir lists a directory with OPENDIR, READDIR(PLUS) until an empty
// answer, RELEASEDIR.
func (c *fzBridgeSide) readdir(node uint64, plus bool) fzResult {
	b, hb := c.hb.b, c.hb
	var oo fuse.OpenOut
	var st fuse.Status
	hb.do("OPENDIR", func() { st = b.OpenDir(nil, &fuse.OpenIn{InHeader: hdr(node)}, &oo) })
	if !st.Ok() {
		return st2r(st)
	}
	defer hb.do("RELEASEDIR", func() { b.ReleaseDir(&fuse.ReleaseIn{InHeader: hdr(node), Fh: oo.Fh}) })
	var names []string
	off := uint64(0)
	for range 10000 {
		// A small buffer, so listings take several requests.
		list := fuse.NewDirEntryList(make([]byte, 200), off)
		in := &fuse.ReadIn{InHeader: hdr(node), Fh: oo.Fh, Offset: off, Size: 200}
		hb.do("READDIR", func() {
			if plus {
				st = b.ReadDirPlus(nil, in, list)
			} else {
				st = b.ReadDir(nil, in, list)
			}
		})
		if !st.Ok() {
			return st2r(st)
		}
		if len(list.Bytes()) == 0 {
			break
		}
		if plus {
			for _, e := range ptParsePlus(list.Bytes()) {
				if e.node != 0 {
					c.ref(e.node)
				}
				names = append(names, fmt.Sprintf("%s:%o", e.name, e.typ))
			}
		} else {
			ents, err := fuse.ParseDirEntries(list.Bytes())
			if err != nil {
				return fzResult{data: "unparsable READDIR reply: " + err.Error()}
			}
			for _, e := range ents {
				names = append(names, fmt.Sprintf("%s:%o", e.Name, e.Mode>>12))
			}
		}
		off = list.Offset
	}
	slices.Sort(names)
	return fzResult{n: int64(len(names)), data: strings.Join(names, " ")}
}

// fzTree describes everything below dir that a passthrough must
// reproduce: types, permissions, sizes, link counts, contents (the
// first MiB), link targets, user xattrs.
func fzTree(t testing.TB, dir string) []string {
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %s", rel, fzStatString(st.Mode, uint64(st.Nlink), st.Uid, st.Gid, uint64(st.Size), uint64(st.Blocks)))
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			line += fmt.Sprintf(" -> %q", target)
		case unix.S_IFREG:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			head := make([]byte, 1<<20)
			n, _ := f.ReadAt(head, 0)
			f.Close()
			line += fmt.Sprintf(" data=%x", fzHash(head[:n]))
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			buf := make([]byte, 1<<16)
			n, _ := unix.Llistxattr(p, buf)
			for _, name := range strings.Split(fzSortedList(buf[:max(n, 0)]), ",") {
				if name == "" {
					continue
				}
				v := make([]byte, 1<<16)
				vn, _ := unix.Lgetxattr(p, name, v)
				line += fmt.Sprintf(" %s=%x", name, fzHash(v[:max(vn, 0)]))
			}
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	return out
}

// fzHash is FNV-1a, enough to tell contents apart.
func fzHash(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h ^ uint64(len(b))
}

// fzRun applies ops natively and through a bridge per available backend,
// comparing step by step and then the trees.
func fzRun(t *testing.T, ops []fzOp) {
	base := t.TempDir()
	nativeDir := filepath.Join(base, "native")
	if err := os.Mkdir(nativeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rootFd, err := unix.Open(nativeDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootFd)
	native := &fzNative{root: rootFd}

	type side struct {
		name string
		c    *fzBridgeSide
	}
	var sides []side
	for _, backend := range ptBackends {
		dir := filepath.Join(base, backend)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		hb, err := startBridge(backend, dir)
		if err != nil {
			if backend == "uring" {
				continue // not available here
			}
			t.Fatal(err)
		}
		hb.t = t
		t.Cleanup(hb.close)
		sides = append(sides, side{backend, &fzBridgeSide{hb: hb}})
	}
	history := func(upto int) string {
		var b strings.Builder
		for j := 0; j <= upto; j++ {
			fmt.Fprintf(&b, "\n  %2d: %v", j, ops[j])
		}
		return b.String()
	}
	for i, o := range ops {
		want := native.apply(i, o)
		for _, s := range sides {
			got := s.c.apply(i, o)
			if got != want {
				t.Fatalf("%s: step %d %v: bridge %v, native %v; steps:%s", s.name, i, o, got, want, history(i))
			}
		}
	}
	wantTree := fzTree(t, nativeDir)
	for _, s := range sides {
		gotTree := fzTree(t, s.c.hb.dir)
		if !slices.Equal(gotTree, wantTree) {
			t.Fatalf("%s: trees differ after the steps:%s\nbridge:\n  %s\nnative:\n  %s", s.name, history(len(ops)-1),
				strings.Join(gotTree, "\n  "), strings.Join(wantTree, "\n  "))
		}
		nodes, handles, inFlight := s.c.hb.drain()
		if nodes != 1 || handles != 0 || inFlight != 0 {
			t.Fatalf("%s: after every step was answered and forgotten: %d nodes, %d handles, %d in flight (want 1, 0, 0); steps:%s",
				s.name, nodes, handles, inFlight, history(len(ops)-1))
		}
	}
}

// fzSeq encodes ops for the seed corpus.
func fzSeq(ops ...fzOp) []byte {
	var b []byte
	for _, o := range ops {
		b = append(b, o.kind, o.p1, o.p2, o.x, o.y)
	}
	return b
}

// Path indices into fzPaths, for readable seeds.
const (
	pA = iota
	pB
	pC
	pAB
	pAC
	pBA
	pABC
	pCA
)

func FuzzOps(f *testing.F) {
	unix.Umask(0) // TestMain's setting too: modes reach the files exactly
	seeds := [][]byte{
		// files: create, write, read back, past EOF, truncate, fallocate
		fzSeq(fzOp{fzCreate, pA, 0, 0, 1}, fzOp{fzWrite, pA, 0, 2, 4}, fzOp{fzRead, pA, 0, 0, 5},
			fzOp{fzRead, pA, 0, 5, 4}, fzOp{fzTruncate, pA, 0, 2, 0}, fzOp{fzRead, pA, 0, 1, 5},
			fzOp{fzFallocate, pA, 0, 1 | 2<<2, 3}, fzOp{fzStat, pA, 0, 0, 0}, fzOp{fzFallocate, pA, 0, 2 | 3<<2, 1},
			fzOp{fzStat, pA, 0, 0, 0}, fzOp{fzRead, pA, 0, 0, 5}),
		// huge and "negative" offsets and sizes
		fzSeq(fzOp{fzCreate, pB, 0, 0, 0}, fzOp{fzWrite, pB, 0, 6, 3}, fzOp{fzWrite, pB, 0, 7, 4},
			fzOp{fzWrite, pB, 0, 8, 1}, fzOp{fzWrite, pB, 0, 9, 0}, fzOp{fzRead, pB, 0, 7, 4}, fzOp{fzRead, pB, 0, 8, 4},
			fzOp{fzTruncate, pB, 0, 6, 0}, fzOp{fzTruncate, pB, 0, 7, 0}, fzOp{fzTruncate, pB, 0, 8, 0},
			fzOp{fzFallocate, pB, 0, 0 | 5<<2, 6}, fzOp{fzFallocate, pB, 0, 0 | 1<<2, 7}, fzOp{fzFallocate, pB, 0, 0, 0},
			fzOp{fzStat, pB, 0, 0, 0}),
		// directories: mkdir, nested create, rename over, rmdir non-empty, readdir
		fzSeq(fzOp{fzMkdir, pA, 0, 2, 0}, fzOp{fzMkdir, pAB, 0, 0, 0}, fzOp{fzCreate, pABC, 0, 1, 1},
			fzOp{fzReaddir, pA, 0, 0, 0}, fzOp{fzReaddir, pAB, 0, 0, 1}, fzOp{fzRmdir, pA, 0, 0, 0},
			fzOp{fzRename, pA, pB, 0, 0}, fzOp{fzStat, pB, 0, 0, 0}, fzOp{fzRename, pB, pBA, 0, 0},
			fzOp{fzMkdir, pC, 0, 0, 0}, fzOp{fzRename, pB, pC, 0, 2}, fzOp{fzReaddir, pC, 0, 0, 1},
			fzOp{fzUnlink, pC, 0, 0, 0}, fzOp{fzRmdir, pC, 0, 0, 0}),
		// symlinks: on the way (ELOOP), as targets of everything, readlink
		fzSeq(fzOp{fzSymlink, pA, 0, 2, 0}, fzOp{fzSymlink, pB, 0, 0, 0}, fzOp{fzReadlink, pA, 0, 0, 0},
			fzOp{fzCreate, pAB, 0, 0, 0}, fzOp{fzWrite, pA, 0, 0, 2}, fzOp{fzRead, pA, 0, 0, 2},
			fzOp{fzReaddir, pA, 0, 0, 0}, fzOp{fzSetxattr, pA, 0, 2, 0}, fzOp{fzGetxattr, pA, 0, 0, 2},
			fzOp{fzListxattr, pA, 0, 0, 2}, fzOp{fzTruncate, pA, 0, 0, 0}, fzOp{fzLink, pA, pC, 0, 0},
			fzOp{fzStat, pC, 0, 0, 0}, fzOp{fzReadlink, pC, 0, 0, 0}, fzOp{fzRmdir, pA, 0, 0, 0},
			fzOp{fzSymlink, pC, 0, 6, 0}, fzOp{fzUnlink, pA, 0, 0, 0}),
		// hard links, rename exchange and noreplace
		fzSeq(fzOp{fzCreate, pA, 0, 0, 0}, fzOp{fzLink, pA, pB, 0, 0}, fzOp{fzStat, pB, 0, 0, 0},
			fzOp{fzWrite, pB, 0, 1, 3}, fzOp{fzRead, pA, 0, 0, 5}, fzOp{fzLink, pA, pB, 0, 0},
			fzOp{fzMkdir, pC, 0, 0, 0}, fzOp{fzLink, pC, pCA, 0, 0}, fzOp{fzRename, pA, pC, 0, 2},
			fzOp{fzStat, pA, 0, 0, 0}, fzOp{fzRename, pB, pA, 0, 1}, fzOp{fzRename, pA, pA, 0, 0},
			fzOp{fzUnlink, pB, 0, 0, 0}, fzOp{fzStat, pCA, 0, 0, 0}),
		// xattrs: sizes up to and over 64 KiB, create/replace flags, list, remove
		fzSeq(fzOp{fzCreate, pA, 0, 0, 0}, fzOp{fzSetxattr, pA, 0, 0 | 1<<1, 0}, fzOp{fzSetxattr, pA, 0, 0 | 1<<1, 1},
			fzOp{fzSetxattr, pA, 0, 1 | 2<<1, 2}, fzOp{fzSetxattr, pA, 0, 0 | 4<<1, 2}, fzOp{fzSetxattr, pA, 0, 1 | 5<<1, 0},
			fzOp{fzGetxattr, pA, 0, 0, 0}, fzOp{fzGetxattr, pA, 0, 0, 1}, fzOp{fzGetxattr, pA, 0, 0, 2},
			fzOp{fzListxattr, pA, 0, 0, 0}, fzOp{fzListxattr, pA, 0, 0, 1}, fzOp{fzListxattr, pA, 0, 0, 3},
			fzOp{fzRemovexattr, pA, 0, 1, 0}, fzOp{fzRemovexattr, pA, 0, 1, 0}, fzOp{fzMkdir, pB, 0, 0, 0},
			fzOp{fzSetxattr, pB, 0, 1 | 3<<1, 0}, fzOp{fzGetxattr, pB, 0, 1, 3}),
		// special files and odd modes
		fzSeq(fzOp{fzMknod, pA, 0, 0, 0}, fzOp{fzMknod, pB, 0, 1, 0}, fzOp{fzRead, pB, 0, 0, 2},
			fzOp{fzWrite, pB, 0, 0, 2}, fzOp{fzStat, pB, 0, 0, 0}, fzOp{fzCreate, pC, 0, 3, 0},
			fzOp{fzMkdir, pA, 0, 3, 0}, fzOp{fzCreate, pA, 0, 0, 0}, fzOp{fzCreate, pA, 0, 0, 2},
			fzOp{fzReaddir, pA, 0, 0, 0}, fzOp{fzStat, pC, 0, 0, 0}),
	}
	// Found by fuzzing: an oversized value on a missing path is E2BIG
	// (the kernel vets the value first).
	seeds = append(seeds, []byte("000\"0"), []byte("\n\a 0\xf0"),
		fzSeq(fzOp{fzSymlink, pA, 0, 0, 0}, fzOp{fzSetxattr, pA, 0, 0 | 5<<1, 0}),
		// and a read of a directory is EISDIR, whatever its size
		fzSeq(fzOp{fzMkdir, pB, 0, 0, 0}, fzOp{fzRead, pB, 0, 0, 0}))
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ops := fzDecode(data)
		if len(ops) == 0 {
			return
		}
		fzRun(t, ops)
	})
}
