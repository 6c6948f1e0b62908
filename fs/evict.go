package fs

import (
	"math"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/backing"
)

// evfs holds an O_PATH fd for every inode the kernel knows, and the
// kernel forgets inodes only under memory pressure. A tree larger than
// the fd limit (RLIMIT_NOFILE, 20 000 here and not raisable) would end in
// EMFILE. So the node table has a budget: past it, the oldest nodes'
// names are invalidated in the kernel (FUSE_NOTIFY_INVAL_ENTRY); unused
// dentries then go, the kernel sends FORGET, and Forget closes the fds.
// Nodes in use (open files, cwd) stay. A stale name (renamed since) only
// drops some other cache entry: harmless.

// nodeBudgetFor derives the budget from the fd limit: three quarters for
// nodes, the rest for open files and the daemon itself.
func nodeBudgetFor(maxNodes int) int {
	if maxNodes > 0 {
		return maxNodes
	}
	return fdLimit() / 4 * 3
}

// fdLimit is the process's fd limit (RLIMIT_NOFILE), at least 1024.
func fdLimit() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 1024 {
		return 1024
	}
	return int(min(lim.Cur, math.MaxInt32))
}

// named wraps done so the node remembers the name it was reached by.
func (h *handlers) named(parent uint64, name string, done func(*backing.Node)) func(*backing.Node) {
	return func(n *backing.Node) {
		n.Parent, n.Name = parent, name
		done(n)
	}
}

// maybeEvict starts one invalidation batch when the table is over budget.
// The notifications are written to /dev/fuse from their own goroutine:
// the kernel may wait on a directory lock held by a request the loop has
// yet to answer.
func (h *handlers) maybeEvict() {
	if h.notify == nil || h.evicting || h.nodes.Fds() <= h.nodeBudget {
		return
	}
	victims := h.nodes.Oldest(max(h.nodeBudget/8, 1))
	type entry struct {
		parent uint64
		name   string
	}
	var entries []entry
	for _, n := range victims {
		if n.Name != "" {
			entries = append(entries, entry{n.Parent, n.Name})
		}
	}
	if len(entries) == 0 {
		return
	}
	h.evicting = true
	h.evictions++
	notify := h.notify
	go func() {
		for _, e := range entries {
			notify(e.parent, e.name)
		}
		h.loop.Post("evicted", func() { h.evicting = false })
	}()
}

// Init is go-fuse's hand-over of the server, before the first request.
func (b *Bridge) Init(s *fuse.Server) {
	done := make(chan struct{})
	b.loop.Post("INIT", func() {
		b.h.notify = func(parent uint64, name string) { s.EntryNotify(parent, name) }
		close(done)
	})
	<-done
}
