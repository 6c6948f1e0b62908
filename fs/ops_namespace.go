package fs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/aio"
	"evfs/backing"
)

// makeEntry is the tail every creating handler shares: after the create
// op succeeded, open the new name O_PATH and register it as the caller's.
func (h *handlers) makeEntry(r *request, parent *backing.Node, name string, mode uint32, out *fuse.EntryOut) {
	h.openName(r, parent, name, unix.O_PATH|unix.O_NOFOLLOW, 0, func(fd int64) {
		if fd < 0 {
			r.fail(fd)
			return
		}
		h.newNode(r, parent, int(fd), mode, out, h.named(parent.ID, name, func(*backing.Node) { r.reply(fuse.OK) }))
	})
}

// Mknod: mknodat → makeEntry. Regular files, fifos, sockets and (for
// callers the kernel let through) device nodes.
func (h *handlers) Mknod(r *request, in *fuse.MknodIn, name string, out *fuse.EntryOut) {
	parent := h.dirAndName(r, name)
	if parent == nil || !h.writable(r) {
		return
	}
	h.then(r, aio.Mknodat(parent.Fd, name, in.Mode, backing.DecodeDev(in.Rdev)), func(int64) {
		h.makeEntry(r, parent, name, in.Mode, out)
	})
}

// Mkdir: mkdirat → makeEntry.
func (h *handlers) Mkdir(r *request, in *fuse.MkdirIn, name string, out *fuse.EntryOut) {
	parent := h.dirAndName(r, name)
	if parent == nil || !h.writable(r) {
		return
	}
	h.then(r, aio.Mkdirat(parent.Fd, name, in.Mode), func(int64) {
		h.makeEntry(r, parent, name, in.Mode|unix.S_IFDIR, out)
	})
}

// Symlink: symlinkat → makeEntry.
func (h *handlers) Symlink(r *request, target, name string, out *fuse.EntryOut) {
	parent := h.dirAndName(r, name)
	if parent == nil || !h.writable(r) {
		return
	}
	h.then(r, aio.Symlinkat(target, parent.Fd, name), func(int64) {
		h.makeEntry(r, parent, name, unix.S_IFLNK|0o777, out)
	})
}

// Unlink: unlinkat(parent, name, 0).
func (h *handlers) Unlink(r *request, name string) { h.remove(r, name, 0) }

// Rmdir: unlinkat(parent, name, AT_REMOVEDIR).
func (h *handlers) Rmdir(r *request, name string) { h.remove(r, name, unix.AT_REMOVEDIR) }

func (h *handlers) remove(r *request, name string, flags int) {
	parent := h.dirAndName(r, name)
	if parent == nil || !h.writable(r) {
		return
	}
	h.then(r, aio.Unlinkat(parent.Fd, name, flags), func(int64) { r.reply(fuse.OK) })
}

// Rename: renameat2 with the request's flags (RENAME_NOREPLACE,
// RENAME_EXCHANGE, RENAME_WHITEOUT pass through to the backing fs).
func (h *handlers) Rename(r *request, in *fuse.RenameIn, oldName, newName string) {
	oldDir := h.dirAndName(r, oldName)
	if oldDir == nil || !h.writable(r) {
		return
	}
	if e := backing.CheckName(newName); e != 0 {
		r.errno(e)
		return
	}
	newDir := h.node(r, in.Newdir)
	if newDir == nil {
		return
	}
	h.then(r, aio.Renameat(oldDir.Fd, oldName, newDir.Fd, newName, in.Flags), func(int64) {
		r.reply(fuse.OK)
	})
}

// Link: linkat(node, "", newparent, name, AT_EMPTY_PATH) → lookup. The
// node table maps the new name to the existing node.
func (h *handlers) Link(r *request, in *fuse.LinkIn, name string, out *fuse.EntryOut) {
	parent := h.dirAndName(r, name)
	if parent == nil || !h.writable(r) {
		return
	}
	target := h.node(r, in.Oldnodeid)
	if target == nil {
		return
	}
	h.then(r, aio.Linkat(target.Fd, "", parent.Fd, name, unix.AT_EMPTY_PATH), func(int64) {
		h.lookupName(r, parent, name, out, func(*backing.Node) { r.reply(fuse.OK) })
	})
}
