// Package backing holds the tables that map FUSE ids to the backing
// directory: node ids to O_PATH file descriptors (with the kernel's
// lookup counts) and file handles to open descriptors. It also turns
// statx results into FUSE attributes and vets names.
//
// Nothing here performs I/O or starts goroutines: the tables are plain
// data owned by the loop goroutine, and the fs package decides which fds
// to close (through aio) when an entry goes away.
package backing

// RootID is the FUSE node id of the mount's root.
const RootID = 1

// Key identifies an inode on the backing filesystem.
type Key struct{ Dev, Ino uint64 }

// Node is one inode the kernel knows about.
type Node struct {
	ID uint64
	// Fd is the descriptor ops on the inode use: the node's own
	// O_PATH|O_NOFOLLOW fd, or, while the file is open, an open handle's
	// fd lent to it (Lend). Either way it is open on this very inode.
	Fd      int
	Key     Key
	Mode    uint32 // file type bits (S_IFMT) as last seen
	lookups uint64
	lender  uint64 // handle whose fd Fd is (Lend); 0: the node owns Fd
	// TestDelayReads is test-only fault injection: reads through this
	// node's handles are delayed in the backend.
	TestDelayReads bool
	// Parent and Name are the last name the kernel looked the node up
	// by: where to aim an entry invalidation when fds run short.
	Parent uint64
	Name   string
}

// Nodes maps node ids to nodes. Owned by the loop goroutine; never touch
// from elsewhere.
type Nodes struct {
	byID  map[uint64]*Node
	byKey map[Key]*Node
	next  uint64
	order []uint64 // node ids in creation order, for Oldest; may hold dead ids
	lent  int      // live nodes whose Fd a handle lends
}

// NewNodes creates the table with the root directory's O_PATH fd.
func NewNodes(rootFd int, rootKey Key) *Nodes {
	t := &Nodes{byID: map[uint64]*Node{}, byKey: map[Key]*Node{}, next: RootID + 1}
	root := &Node{ID: RootID, Fd: rootFd, Key: rootKey, Mode: 0o040000, lookups: 1}
	t.byID[RootID] = root
	t.byKey[rootKey] = root
	return t
}

// Get returns the node for id, or nil if the kernel never had it or
// forgot it.
func (t *Nodes) Get(id uint64) *Node { return t.byID[id] }

// Len is the number of live nodes (root included).
func (t *Nodes) Len() int { return len(t.byID) }

// Fds is the number of fds the table owns: live nodes less those whose
// fd a handle lends.
func (t *Nodes) Fds() int { return len(t.byID) - t.lent }

// Lending: an open file needs an fd of the mode it was opened with (the
// handle's), and its node an fd of the inode (O_PATH). Two fds per open
// file halve how many files fit under RLIMIT_NOFILE (20 000 here, not
// raisable: 10 000 open files would not fit). Any fd of the inode serves
// the node's ops (statx, fchownat, *at relative to it, /proc/self/fd
// reopens), so while a handle is open the node uses the handle's fd and
// closes its own; when that handle is released the node gets an O_PATH
// fd again before the handle's fd is closed.

// Lend makes fd, the open fd of handle handleID on n's inode, n's fd, and
// returns the node's own fd, which the caller closes — after a grace
// period: ops in flight may name it. It returns -1 and changes nothing if
// n already borrows, is the root, or has left the table.
func (t *Nodes) Lend(n *Node, fd int, handleID uint64) (own int) {
	if n.lender != 0 || n.ID == RootID || t.byID[n.ID] != n {
		return -1
	}
	own = n.Fd
	n.Fd, n.lender = fd, handleID
	t.lent++
	return own
}

// Lender returns the handle whose fd n borrows, or 0 if n owns its fd.
func (n *Node) Lender() uint64 { return n.lender }

// Return gives n its own fd again, fd: an O_PATH reopen of its inode, or
// the borrowed fd itself when none could be opened (the handle then must
// not close it). The lender's fd is the caller's to close, again after a
// grace period.
func (t *Nodes) Return(n *Node, fd int) {
	if n.lender == 0 {
		return
	}
	n.Fd, n.lender = fd, 0
	if t.byID[n.ID] == n {
		t.lent--
	}
}

// Add records one kernel lookup of the inode open at fd. If the inode is
// already known (another name, a repeated lookup) the existing node is
// returned and dupFd reports that fd is redundant: the caller closes it.
func (t *Nodes) Add(fd int, key Key, mode uint32) (n *Node, dupFd bool) {
	if n = t.byKey[key]; n != nil {
		n.lookups++
		n.Mode = mode
		return n, true
	}
	n = &Node{ID: t.next, Fd: fd, Key: key, Mode: mode, lookups: 1}
	t.next++
	t.order = append(t.order, n.ID)
	t.byID[n.ID] = n
	t.byKey[key] = n
	return n, false
}

// Ref records one kernel lookup of an inode the table already holds and
// returns its node, or nil if the inode is unknown (the caller then opens
// it and calls Add).
func (t *Nodes) Ref(key Key, mode uint32) *Node {
	n := t.byKey[key]
	if n != nil {
		n.lookups++
		n.Mode = mode
	}
	return n
}

// Oldest returns up to k live nodes that own their fd (never the root),
// oldest first: the candidates for eviction when the fd budget runs out.
func (t *Nodes) Oldest(k int) []*Node {
	var out []*Node
	live := t.order[:0]
	for _, id := range t.order {
		if n := t.byID[id]; n != nil {
			live = append(live, id)
			if len(out) < k && n.lender == 0 {
				out = append(out, n)
			}
		}
	}
	t.order = live
	return out
}

// Known reports whether the table holds the inode.
func (t *Nodes) Known(key Key) bool { return t.byKey[key] != nil }

// Forget drops nlookup references. When none remain the node leaves the
// table and its fd is returned for the caller to close (-1 if a handle
// lends it: the handle closes it); otherwise -1. The root is never
// forgotten.
func (t *Nodes) Forget(id, nlookup uint64) (closeFd int) {
	n := t.byID[id]
	if n == nil || id == RootID {
		return -1
	}
	if nlookup >= n.lookups {
		delete(t.byID, id)
		if t.byKey[n.Key] == n {
			delete(t.byKey, n.Key)
		}
		if n.lender != 0 {
			t.lent--
			return -1
		}
		return n.Fd
	}
	n.lookups -= nlookup
	return -1
}

// Detach drops every node except the root and returns the fds they own,
// for shutdown (lent fds are the handles').
func (t *Nodes) Detach() []int {
	var fds []int
	for id, n := range t.byID {
		if id != RootID && n.lender == 0 {
			fds = append(fds, n.Fd)
		}
	}
	t.lent = 0
	root := t.byID[RootID]
	t.byID = map[uint64]*Node{RootID: root}
	t.byKey = map[Key]*Node{root.Key: root}
	return fds
}
