// Package backing holds the tables that map FUSE ids to the backing
// directory: node ids to O_PATH file descriptors (with the kernel's
// lookup counts) and file handles to open descriptors. It also turns
// statx results into FUSE attributes and vets names.
//
// Nothing here performs I/O or starts goroutines: the tables are plain
// data owned by the loop goroutine, and the fs package decides which fds
// to close (through aio) when an entry goes away.
package backing

import "golang.org/x/sys/unix"

// RootID is the FUSE node id of the mount's root.
const RootID = 1

// Key identifies an inode on the backing filesystem.
type Key struct{ Dev, Ino uint64 }

// Node is one inode the kernel knows about.
type Node struct {
	ID uint64
	// Fd is the descriptor ops on the inode use, the same number for the
	// node's whole life: an O_PATH|O_NOFOLLOW file of the inode, or,
	// while a handle lends it (Lend), that handle's open file moved onto
	// this number. Either way it is open on this very inode.
	Fd      int
	Key     Key
	Mode    uint32 // file type bits (S_IFMT) as last seen
	lookups uint64
	lender  uint64 // handle whose open file Fd holds (Lend); 0: Fd is the node's own
	// TestDelayReads is test-only fault injection: reads through this
	// node's handles are delayed in the backend.
	TestDelayReads bool
	// Parent and Name are the last name the kernel looked the node up
	// by: where to aim an entry invalidation when fds run short.
	Parent uint64
	Name   string
	// FileHandle is the inode's handle for opens by handle (fs/reopen.go),
	// once the first such open has looked it up; nil before.
	FileHandle *unix.FileHandle
	// Crossed: a name in this directory led to another file system (a
	// mount point), so its names are resolved with RESOLVE_NO_XDEV only.
	Crossed bool
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
// fd a handle owns (Lend).
func (t *Nodes) Fds() int { return len(t.byID) - t.lent }

// Lending (fs/lend.go moves the files; the table keeps the ownership): an
// open file needs an fd of the mode it was opened with, and its node an
// fd of the inode. While handle h is open, n.Fd holds h's open file and
// h's fd is n.Fd: one number, owned by the handle.

// CanLend reports whether n may take a handle's open file: a live node
// other than the root that holds its own fd.
func (t *Nodes) CanLend(n *Node) bool {
	return n.lender == 0 && n.ID != RootID && t.byID[n.ID] == n
}

// Lend records that n.Fd now holds handle handleID's open file (the
// handle owns the number from now on). The caller checked CanLend.
func (t *Nodes) Lend(n *Node, handleID uint64) {
	n.lender = handleID
	t.lent++
}

// Lender returns the handle whose open file n.Fd holds, or 0.
func (n *Node) Lender() uint64 { return n.lender }

// Return records that n.Fd is the node's own again: an O_PATH file moved
// back onto the number, or the handle's file kept there when none could
// be opened.
func (t *Nodes) Return(n *Node) {
	if n.lender == 0 {
		return
	}
	n.lender = 0
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
// owns it: its release closes it); otherwise -1. The root is never
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
// for shutdown (the handles' own the rest).
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
