package fs

import (
	"context"
	"time"

	"evfs/loop"
)

// Snapshot is one consistent picture of a mount's statistics: the loop's
// counters and the per-operation table, copied by the same loop event.
type Snapshot struct {
	Taken  time.Time
	Loop   loop.Stats
	Ops    []OpStat // the operations seen so far, in a fixed order
	Tables Tables
	// RingRequests are the requests FUSE over io_uring delivered
	// (--transport uring; the others came through /dev/fuse).
	RingRequests uint64
	// OrderedIO counts READs and WRITEs that waited for an earlier
	// overlapping one to finish (ioorder.go).
	OrderedIO uint64
}

// Tables are the sizes of the node and handle tables: what the mount
// holds open on the backing file system.
type Tables struct {
	Nodes     int    // inodes the kernel knows (root included)
	NodeFds   int    // fds the nodes own (an open file's node fd holds its handle's file, owned by the handle)
	Handles   int    // open files and directories
	Evictions uint64 // batches of names the kernel was asked to forget (node fd budget)
}

// Snapshot copies the loop's and the per-op statistics in one event on
// the loop. Safe from any goroutine. It gives up with ctx's error if the
// loop does not run the event in time (busy in a stall, or already
// stopped at unmount).
func (m *Mount) Snapshot(ctx context.Context) (Snapshot, error) {
	ch := make(chan Snapshot, 1) // buffered: the loop never blocks on a caller that left
	m.Loop.Post("stats", func() {
		h := m.h
		s := Snapshot{Taken: time.Now(), Loop: m.Loop.Stats(), Tables: Tables{
			Nodes: h.nodes.Len(), NodeFds: h.nodes.Fds(), Handles: h.handles.Len(), Evictions: h.evictions}, OrderedIO: h.io.waited}
		if m.sess != nil && m.sess.ring != nil {
			s.RingRequests = m.sess.ring.requests
		}
		for i := range m.h.stats {
			if m.h.stats[i].Count > 0 {
				st := m.h.stats[i]
				st.Name = opNames[i]
				s.Ops = append(s.Ops, st)
			}
		}
		ch <- s
	})
	select {
	case s := <-ch:
		return s, nil
	case <-ctx.Done():
		return Snapshot{}, ctx.Err()
	}
}
