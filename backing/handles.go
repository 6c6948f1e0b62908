package backing

// Handle is an open file or directory.
type Handle struct {
	ID     uint64
	Fd     int
	NodeID uint64
	Dir    *DirStream // non-nil for directories
	// Direct and NoNowait are what the open flags and the file system
	// say about trying this handle's reads and writes on the spot (set
	// once at open; aio.Op.Direct, aio.Op.NoNowait).
	Direct   bool
	NoNowait bool
	// DelayReads is test-only fault injection (see fs.Options.TestHooks).
	DelayReads bool
}

// DirStream is a directory handle's read position: the getdents buffer
// and where the next entry starts in it.
type DirStream struct {
	Buf     []byte // getdents output, valid up to Len
	Len     int
	Pos     int    // next unread byte in Buf
	Off     uint64 // FUSE offset of the next entry to return
	EOF     bool
	Pending bool // a getdents is in flight: Buf is the kernel's until it completes
}

// Handles maps file handle ids to open descriptors. Owned by the loop
// goroutine; never touch from elsewhere.
type Handles struct {
	byID map[uint64]*Handle
	next uint64
}

// NewHandles returns an empty table.
func NewHandles() *Handles { return &Handles{byID: map[uint64]*Handle{}, next: 1} }

// Add registers fd for node and returns the new handle.
func (t *Handles) Add(fd int, nodeID uint64, dir bool) *Handle {
	h := &Handle{ID: t.next, Fd: fd, NodeID: nodeID}
	if dir {
		h.Dir = &DirStream{}
	}
	t.next++
	t.byID[h.ID] = h
	return h
}

// Get returns the handle for id, or nil.
func (t *Handles) Get(id uint64) *Handle { return t.byID[id] }

// Remove drops the handle and returns it (nil if unknown); the caller
// closes its fd.
func (t *Handles) Remove(id uint64) *Handle {
	h := t.byID[id]
	delete(t.byID, id)
	return h
}

// Len is the number of open handles.
func (t *Handles) Len() int { return len(t.byID) }

// Detach drops every handle and returns their fds, for shutdown.
func (t *Handles) Detach() []int {
	var fds []int
	for _, h := range t.byID {
		fds = append(fds, h.Fd)
	}
	t.byID = map[uint64]*Handle{}
	return fds
}
