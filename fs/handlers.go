package fs

import (
	"log/slog"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/aio"
	"evfs/backing"
	"evfs/loop"
)

// handlers serve FUSE operations on the loop goroutine. Each handler is a
// continuation chain: it validates the request against the tables,
// submits one aio op and names the function that runs when it completes;
// errors short-circuit to a single reply.
//
// Owned by the loop goroutine; never touch from elsewhere.
type handlers struct {
	loop    *loop.Loop
	nodes   *backing.Nodes
	handles *backing.Handles
	opts    Options
	log     *slog.Logger
	euid    uint32
	egid    uint32
	stats   opStats

	// notify asks the kernel to forget a name (evict.go); set by the
	// transport once the connection is up. Safe from any goroutine.
	notify     func(parent uint64, name string)
	nodeBudget int         // node fds to hold before asking the kernel to forget
	sharing    sharePolicy // when opened files share their node's fd (lend.go)
	evicting   bool        // an invalidation batch is in progress
	evictions  uint64      // batches started
	locks      lockTable   // POSIX locks granted through evfs (ops_lock.go)
	io         ioOrder     // READs and WRITEs in flight, by node (ioorder.go)
	queued     bool        // requests are queueing up (set by the session's drain; resident.go)
	rootDev    uint64      // device of the backing root (resident.go)
	swapOn     bool        // the machine has swap: no memory root (resident.go)

	// Scratch reused from request to request (ops_dir.go).
	dirBufs dirBufs         // getdents buffers of released directory handles
	lookups []pendingLookup // a READDIRPLUS reply's entries, until lookupAll has started them
}

// submit starts op for r and runs k with its result. The op id is kept on
// the request so an INTERRUPT can cancel it.
func (h *handlers) submit(r *request, op *aio.Op, k func(res int64)) {
	h.start(r, op, k, false)
}

// then is submit for steps whose only interest is success: on failure the
// request is answered with the errno.
func (h *handlers) then(r *request, op *aio.Op, k func(res int64)) {
	h.start(r, op, k, true)
}

// start submits op with r's own continuation (request.opDone), which
// runs k: one closure per op, k, instead of a wrapper around it as well.
// A request whose continuation is taken by another op still in flight
// (READDIRPLUS starts a LOOKUP per entry) wraps k after all.
func (h *handlers) start(r *request, op *aio.Op, k func(res int64), failFast bool) {
	h.markMemory(r, op)
	if r.k != nil {
		r.opID = h.loop.Submit(op, func(res int64) { r.finishOp(res, k, failFast) })
		return
	}
	if r.cont == nil {
		r.cont = r.opDone // made once per request object: it is reused
	}
	r.k, r.failFast = k, failFast
	r.opID = h.loop.Submit(op, r.cont)
}

// interruptGrace is how long an interrupted request's op may keep
// running before it is cancelled. Go programs are interrupted constantly
// (the runtime preempts goroutines with signals, and each signal during a
// FUSE request becomes an INTERRUPT); answering those with EINTR would
// hand EINTR to reads that were about to succeed. Only an op that is
// actually stuck is cancelled: one still in flight after a second (at 50
// ms, ops queued behind 64 busy clients were cancelled by Go's scheduler
// signals — the soak test saw EINTR from getxattr).
const interruptGrace = time.Second

// interrupt handles FUSE INTERRUPT: mark the request, and cancel its op
// if it is still in flight after interruptGrace. A cancelled op answers
// EINTR when its completion arrives; waits (SETLKW) end with EINTR.
func (h *handlers) interrupt(r *request) {
	if r.replied {
		return
	}
	r.interrupted = true
	id := r.opID
	if id == 0 {
		return
	}
	h.loop.AfterFunc(interruptGrace, "INTERRUPT grace", func() {
		// Once a step has succeeded (mkdirat done, statx pending) the
		// change has happened: finish the chain rather than report EINTR
		// for something that took effect.
		if !r.replied && r.opID == id && !r.progressed {
			h.loop.Cancel(id)
		}
	})
}

// closeFd closes a backing fd in the background; nobody waits on it.
func (h *handlers) closeFd(fd int) {
	if fd < 0 {
		return
	}
	h.loop.Submit(aio.Close(fd), func(res int64) {
		if res < 0 {
			h.log.Warn("close of backing fd failed", "fd", fd, "errno", unix.Errno(-res).Error())
		}
	})
}

// node returns the node for the request's node id, or answers ESTALE.
func (h *handlers) node(r *request, id uint64) *backing.Node {
	n := h.nodes.Get(id)
	if n == nil {
		r.errno(unix.ESTALE)
	}
	return n
}

// handle returns the open handle fh, or answers EBADF.
func (h *handlers) handle(r *request, fh uint64) *backing.Handle {
	hd := h.handles.Get(fh)
	if hd == nil {
		r.errno(unix.EBADF)
	}
	return hd
}

// dirAndName resolves the request's parent directory and vets name.
func (h *handlers) dirAndName(r *request, name string) *backing.Node {
	if e := backing.CheckName(name); e != 0 {
		r.errno(e)
		return nil
	}
	return h.node(r, r.hdr.NodeId)
}

// writable answers EROFS for modifying requests on a read-only mount.
func (h *handlers) writable(r *request) bool {
	if h.opts.ReadOnly {
		r.errno(unix.EROFS)
		return false
	}
	return true
}

func (h *handlers) entryTimeouts(out *fuse.EntryOut) {
	out.SetEntryTimeout(h.opts.EntryTimeout)
	out.SetAttrTimeout(h.opts.AttrTimeout)
}

// lookupName is the LOOKUP chain for a request: resolve, with the ops
// tied to r (so an INTERRUPT can cancel them) and failures answering r.
func (h *handlers) lookupName(r *request, parent *backing.Node, name string, out *fuse.EntryOut, done func(*backing.Node)) {
	run := func(op *aio.Op, k func(int64)) { h.submit(r, op, k) }
	h.resolve(run, parent, name, out, done, r.fail)
}

// resolve maps parent/name to a node and fills out (LOOKUP, LINK). run
// submits one op; fail receives a negative result, after any fd opened
// on the way is closed.
//
// On a resident parent (resident.go) nothing leaves the loop as a rule:
//   - On a memory root (tmpfs, no swap) it stats the name first
//     (statxKnown): most lookups are of inodes the table holds (entry
//     timeouts of 0, hard links), which then cost one statx instead of
//     open, statx and close.
//   - Otherwise, and for an inode the table does not hold, it opens the
//     name, openat2(O_PATH|O_NOFOLLOW, RESOLVE_NO_XDEV), and stats the
//     new fd (openNoXdev): the open resolves from the dentry cache on the
//     spot when it can and the statx of a resident inode always does; an
//     inode the table already holds leaves a spare fd, closed on the spot
//     too.
//
// A mount point answers EXDEV (a kernel without openat2, ENOSYS) and
// takes the general path, as does every name under a parent that is not
// resident, and every lookup while requests queue up on a disk file
// system (h.queued: the pool's workers then share them out beside the
// loop).
func (h *handlers) resolve(run func(*aio.Op, func(int64)), parent *backing.Node, name string,
	out *fuse.EntryOut, done func(*backing.Node), fail func(int64)) {
	done = h.named(parent.ID, name, done)
	switch {
	case !h.resident(parent) || (h.queued && !h.memoryRootOK()):
		h.resolvePath(run, parent, name, true, out, done, fail)
	case h.memoryRootOK() && !parent.Crossed:
		h.statxKnown(run, parent, name, out, done, fail)
	default:
		h.openNoXdev(run, parent, name, out, done, fail)
	}
}

// statxKnown is resolve's first step on a memory root: statx of the name
// on the spot, which on tmpfs reads only memory. The name may be a mount
// point of another file system; the statx then reaches that file
// system's root inode, but with AT_STATX_DONT_SYNC (no server is asked:
// NFS, FUSE — even this very mount — answer from their caches) and
// AT_NO_AUTOMOUNT. The answer's device then differs from the parent's:
// it is not used, and the parent is marked Crossed, so that its names are
// opened with RESOLVE_NO_XDEV from then on (openNoXdev) and a mount point
// is reached only through the backend.
func (h *handlers) statxKnown(run func(*aio.Op, func(int64)), parent *backing.Node, name string,
	out *fuse.EntryOut, done func(*backing.Node), fail func(int64)) {
	st := aio.StatxNameResident(parent.Fd, name)
	run(st, func(res int64) {
		switch {
		case res < 0:
			fail(res)
		case backing.KeyOf(&st.Stat).Dev != parent.Key.Dev:
			parent.Crossed = true
			h.openNoXdev(run, parent, name, out, done, fail)
		case !h.known(&st.Stat, out, done):
			h.openNoXdev(run, parent, name, out, done, fail)
		}
	})
}

// openNoXdev opens name in the resident parent with RESOLVE_NO_XDEV and
// registers the new fd (resolve); a mount point takes the general path.
func (h *handlers) openNoXdev(run func(*aio.Op, func(int64)), parent *backing.Node, name string,
	out *fuse.EntryOut, done func(*backing.Node), fail func(int64)) {
	run(aio.Openat2(parent.Fd, name, unix.O_PATH|unix.O_NOFOLLOW, 0, unix.RESOLVE_NO_XDEV), func(res int64) {
		if res == -int64(unix.EXDEV) || res == -int64(unix.ENOSYS) {
			h.resolvePath(run, parent, name, true, out, done, fail)
			return
		}
		h.statNew(run, parent, res, out, done, fail)
	})
}

// known answers a lookup from statx result st if the table holds its
// inode: takes a reference, fills out and calls done. Loop-only.
func (h *handlers) known(st *unix.Statx_t, out *fuse.EntryOut, done func(*backing.Node)) bool {
	n := h.nodes.Ref(backing.KeyOf(st), uint32(st.Mode)&unix.S_IFMT)
	if n == nil {
		return false
	}
	h.fillEntry(n, st, out)
	done(n)
	return true
}

// resolvePath is resolve through the backend: for names that may be on
// another file system, while requests queue up, and for READDIRPLUS's
// lookups (lookupQuiet). Most lookups are of inodes the kernel already
// knows (entry timeouts of 0, hard links), so with tryKnown it starts
// with statx(parent, name): a known inode needs no new fd. An unknown one
// costs openat(O_PATH|O_NOFOLLOW) → statx of that fd (race-free
// identity) → register.
func (h *handlers) resolvePath(run func(*aio.Op, func(int64)), parent *backing.Node, name string, tryKnown bool,
	out *fuse.EntryOut, done func(*backing.Node), fail func(int64)) {
	open := func() {
		run(aio.Openat(parent.Fd, name, unix.O_PATH|unix.O_NOFOLLOW, 0), func(res int64) {
			h.statNew(run, nil, res, out, done, fail)
		})
	}
	if !tryKnown {
		open()
		return
	}
	st := aio.Statx(parent.Fd, name, unix.AT_SYMLINK_NOFOLLOW)
	run(st, func(res int64) {
		if res < 0 {
			fail(res)
			return
		}
		if !h.known(&st.Stat, out, done) {
			open() // unknown, or replaced since the statx
		}
	})
}

// statNew takes the result of an O_PATH open (an fd, or -errno) and
// registers it: statx of the fd (resident when fsOf, the node whose file
// system the fd is known to be on, is) → register.
func (h *handlers) statNew(run func(*aio.Op, func(int64)), fsOf *backing.Node, res int64,
	out *fuse.EntryOut, done func(*backing.Node), fail func(int64)) {
	if res < 0 {
		fail(res)
		return
	}
	fd := int(res)
	st := h.statFd(fsOf, fd)
	run(st, func(res int64) {
		if res < 0 {
			h.closeFd(fd)
			fail(res)
			return
		}
		h.register(fsOf, fd, &st.Stat, out, done)
	})
}

// newNode registers an inode a handler just created, open at fd
// (O_PATH), and fills out: statx → [chown to the caller → restore set-id
// bits → statx] → register. The inode must belong to the requesting
// uid/gid rather than to the daemon; mode is what it was created with.
func (h *handlers) newNode(r *request, parent *backing.Node, fd int, mode uint32, out *fuse.EntryOut, done func(*backing.Node)) {
	st := h.statFd(sameFS(r, parent), fd)
	h.submit(r, st, func(res int64) {
		if res < 0 {
			h.closeFd(fd)
			r.fail(res)
			return
		}
		h.adoptNew(r, parent, fd, &st.Stat, mode, out, done)
	})
}

// adoptNew is newNode once the statx of fd is in hand (st; CREATE's
// pathOf has one already).
func (h *handlers) adoptNew(r *request, parent *backing.Node, fd int, st *unix.Statx_t, mode uint32, out *fuse.EntryOut, done func(*backing.Node)) {
	parent = sameFS(r, parent) // nil: fd may be on another file system
	uid, gid := r.caller()
	if uid == h.euid && gid == h.egid {
		h.register(parent, fd, st, out, done)
		return
	}
	h.chownNew(r, parent, fd, st, mode, out, done)
}

// chownNew gives a just-created inode to the caller. A group inherited
// from a set-group-ID directory is kept, as the native fs would.
func (h *handlers) chownNew(r *request, parent *backing.Node, fd int, st *unix.Statx_t, mode uint32, out *fuse.EntryOut, done func(*backing.Node)) {
	uid, gid := r.caller()
	if st.Gid != h.egid {
		gid = ^uint32(0)
	}
	isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
	fail := func(res int64) { h.closeFd(fd); r.fail(res) }
	h.submit(r, aio.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW), func(res int64) {
		if res < 0 {
			fail(res)
			return
		}
		restat := func() {
			st2 := h.statFd(parent, fd)
			h.submit(r, st2, func(res int64) {
				if res < 0 {
					fail(res)
					return
				}
				h.register(parent, fd, &st2.Stat, out, done)
			})
		}
		// chown clears set-id bits; put back the ones the caller asked for.
		if isLink || mode&(unix.S_ISUID|unix.S_ISGID) == 0 {
			restat()
			return
		}
		h.submit(r, aio.Fchmodat(fd, "", mode&07777, unix.AT_EMPTY_PATH), func(res int64) {
			if res < 0 {
				fail(res)
				return
			}
			restat()
		})
	})
}

func (h *handlers) register(fsOf *backing.Node, fd int, st *unix.Statx_t, out *fuse.EntryOut, done func(*backing.Node)) {
	n, dup := h.nodes.Add(fd, backing.KeyOf(st), uint32(st.Mode)&unix.S_IFMT)
	switch {
	case dup && fsOf != nil && h.resident(fsOf):
		// The node's own fd keeps the inode open (resident.go).
		h.loop.Submit(aio.CloseSpare(fd), func(int64) {})
	case dup:
		h.closeFd(fd)
	default:
		h.maybeEvict()
	}
	h.fillEntry(n, st, out)
	done(n)
}

// fillEntry answers a lookup of n with attributes st.
func (h *handlers) fillEntry(n *backing.Node, st *unix.Statx_t, out *fuse.EntryOut) {
	out.NodeId = n.ID
	out.Generation = 0
	backing.FillAttr(&out.Attr, st)
	h.entryTimeouts(out)
	if h.opts.TestDelayRead != "" && out.Attr.Ino == h.opts.testDelayIno {
		n.TestDelayReads = true
	}
}

// closeAll drops both tables at unmount and closes their fds.
func (h *handlers) closeAll() {
	for _, fd := range h.handles.Detach() {
		h.closeFd(fd)
	}
	for _, fd := range h.nodes.Detach() {
		h.closeFd(fd)
	}
	if h.opts.byHandle {
		h.closeFd(h.opts.handleFd)
		h.opts.byHandle = false
	}
}

// Options are the kernel-facing and test settings of a mount.
type Options struct {
	EntryTimeout time.Duration
	AttrTimeout  time.Duration
	ReadOnly     bool
	Writeback    bool // kernel writeback cache negotiated
	CacheDir     bool // let the kernel cache directory listings
	Logger       *slog.Logger
	Debug        bool

	// MaxNodes is the node-fd budget (0: three quarters of RLIMIT_NOFILE).
	MaxNodes int
	// ShareFdsAbove: once the mount holds this many backing fds, a
	// regular file opened next shares its node's fd number (lend.go;
	// 0: once a quarter of RLIMIT_NOFILE in files is open or three
	// quarters in fds are held; < 0: never).
	ShareFdsAbove int

	// TestDelayRead is test-only fault injection: reads of the backing
	// file at this path (relative to the backing root) are delayed by
	// TestDelay inside the backend. Set from EVFS_TEST_DELAY_READ.
	TestDelayRead string
	TestDelay     time.Duration
	testDelayIno  uint64

	// NoResident sends every statx to the backend even on a resident
	// file system (resident.go): for measuring what the inline statx
	// saves, and for tests of the general path.
	NoResident bool

	// NoResidentData keeps every op but the resident statx on the
	// backend even on a memory root (resident.go).
	NoResidentData bool

	// residentRoot: the backing root's file system is resident
	// (resident.go). Set by NewMount.
	residentRoot bool
	// memoryRoot: the backing root is on a memory file system and
	// NoResidentData is off (resident.go). Set by NewMount.
	memoryRoot bool
	// rootNoNowait: the backing root's file system refuses RWF_NOWAIT
	// (resident.go). Set by NewMount.
	rootNoNowait bool
	// uringQueues: with the "uring" transport (fuseuring.go), its ring's
	// queues (the kernel's possible CPUs); 0 otherwise. Set by NewMount.
	uringQueues int
	// byHandle: OPEN goes by file handle (reopen.go) through handleFd,
	// a directory fd (not O_PATH) on the backing root's mount, whose id
	// is handleMount. Set by NewMount; handleFd is closed with the
	// tables.
	byHandle    bool
	handleFd    int
	handleMount int
}
