package fs

import (
	"fmt"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"

	"evfs/loop"
)

// dispatch decodes one request read into buf (in is the message) and
// starts its handler — the same handlers the go-fuse Bridge calls. A
// malformed request is answered EIO, an opcode evfs does not serve ENOSYS.
// It reports whether a process is likely waiting for the answer (see
// waitedFor).
func (s *session) dispatch(buf, in []byte) (waited bool) {
	hdr := fuseIn[fuse.InHeader](in)
	if hdr == nil {
		s.log.Warn("short FUSE request", "bytes", len(in))
		s.putBuf(buf)
		return false
	}
	t0 := loop.Mono()
	if !s.serve(buf, in, hdr) {
		s.replyNow(buf, hdr, fuse.EIO)
	}
	s.loop.Track(fuseOpName(hdr.Opcode), t0)
	return waitedFor(hdr.Opcode)
}

// waitedFor reports whether a process usually waits for a request of this
// opcode. FORGET and INTERRUPT get no answer, and the kernel sends
// RELEASE in the background after close(2) has returned: one of those
// arriving beside the next request does not mean requests are queueing
// up (drain).
func waitedFor(opcode uint32) bool {
	switch opcode {
	case fuseForget, fuseBatchForget, fuseInterrupt, fuseRelease, fuseReleaseDir:
		return false
	}
	return true
}

// serve runs the handler for hdr's opcode; false if the input is
// malformed (too short, a name without its NUL).
func (s *session) serve(buf, in []byte, hdr *fuse.InHeader) bool {
	h := s.h
	if s.serveProbe(buf, in, hdr) {
		return true
	}
	switch hdr.Opcode {
	case fuseInit:
		return s.init(buf, in, hdr)
	case fuseDestroy:
		s.replyNow(buf, hdr, fuse.OK)
	case fuseInterrupt:
		in := fuseIn[fuse.InterruptIn](in)
		if in == nil {
			return false
		}
		s.interrupt(in.Unique)
		s.putBuf(buf)
	case fuseForget:
		in := fuseIn[fuse.ForgetIn](in)
		if in == nil {
			return false
		}
		h.Forget(hdr.NodeId, in.Nlookup)
		s.putBuf(buf)
	case fuseBatchForget:
		bf := fuseIn[struct {
			fuse.InHeader
			batchForgetIn
		}](in)
		if bf == nil {
			return false
		}
		rest := in[unsafe.Sizeof(*bf):]
		n := min(int(bf.Count), len(rest)/int(unsafe.Sizeof(forgetOne{})))
		if n > 0 {
			for _, f := range unsafe.Slice((*forgetOne)(unsafe.Pointer(&rest[0])), n) {
				h.Forget(f.NodeID, f.Nlookup)
			}
		}
		s.putBuf(buf)

	case fuseLookup:
		name, _, ok := cstring(in[unsafe.Sizeof(*hdr):])
		if !ok {
			return false
		}
		r := s.newRequest(opLookup, buf, hdr)
		h.Lookup(r, name, outOf[fuse.EntryOut](r))
	case fuseGetAttr:
		in := fuseIn[fuse.GetAttrIn](in)
		if in == nil {
			return false
		}
		r := s.newRequest(opGetAttr, buf, hdr)
		h.GetAttr(r, in, outOf[fuse.AttrOut](r))
	case fuseSetAttr:
		in := fuseIn[fuse.SetAttrIn](in)
		if in == nil {
			return false
		}
		r := s.newRequest(opSetAttr, buf, hdr)
		h.SetAttr(r, in, outOf[fuse.AttrOut](r))
	case fuseAccess:
		in := fuseIn[fuse.AccessIn](in)
		if in == nil {
			return false
		}
		h.Access(s.newRequest(opAccess, buf, hdr), in)
	case fuseStatFs:
		r := s.newRequest(opStatFs, buf, hdr)
		h.StatFs(r, outOf[fuse.StatfsOut](r))
	case fuseReadlink:
		r := s.newRequest(opReadlink, buf, hdr)
		h.Readlink(r, &r.payload)

	case fuseMknod:
		in2 := fuseIn[fuse.MknodIn](in)
		if in2 == nil {
			return false
		}
		name, _, ok := cstring(in[unsafe.Sizeof(*in2):])
		if !ok {
			return false
		}
		r := s.newRequest(opMknod, buf, hdr)
		h.Mknod(r, in2, name, outOf[fuse.EntryOut](r))
	case fuseMkdir:
		in2 := fuseIn[fuse.MkdirIn](in)
		if in2 == nil {
			return false
		}
		name, _, ok := cstring(in[unsafe.Sizeof(*in2):])
		if !ok {
			return false
		}
		r := s.newRequest(opMkdir, buf, hdr)
		h.Mkdir(r, in2, name, outOf[fuse.EntryOut](r))
	case fuseSymlink:
		name, rest, ok := cstring(in[unsafe.Sizeof(*hdr):])
		target, _, ok2 := cstring(rest)
		if !ok || !ok2 {
			return false
		}
		r := s.newRequest(opSymlink, buf, hdr)
		h.Symlink(r, target, name, outOf[fuse.EntryOut](r))
	case fuseUnlink, fuseRmdir:
		name, _, ok := cstring(in[unsafe.Sizeof(*hdr):])
		if !ok {
			return false
		}
		if hdr.Opcode == fuseUnlink {
			h.Unlink(s.newRequest(opUnlink, buf, hdr), name)
		} else {
			h.Rmdir(s.newRequest(opRmdir, buf, hdr), name)
		}
	case fuseRename, fuseRename2:
		// RENAME carries only the new directory; RENAME2 adds flags.
		size := unsafe.Sizeof(*hdr) + 8
		if hdr.Opcode == fuseRename2 {
			size = unsafe.Sizeof(fuse.RenameIn{})
		}
		if uintptr(len(in)) < size {
			return false
		}
		var rin fuse.RenameIn
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&rin)), unsafe.Sizeof(rin)), in[:size])
		oldName, rest, ok := cstring(in[size:])
		newName, _, ok2 := cstring(rest)
		if !ok || !ok2 {
			return false
		}
		h.Rename(s.newRequest(opRename, buf, hdr), &rin, oldName, newName)
	case fuseLink:
		in2 := fuseIn[fuse.LinkIn](in)
		if in2 == nil {
			return false
		}
		name, _, ok := cstring(in[unsafe.Sizeof(*in2):])
		if !ok {
			return false
		}
		r := s.newRequest(opLink, buf, hdr)
		h.Link(r, in2, name, outOf[fuse.EntryOut](r))

	case fuseGetXAttr, fuseListXAttr:
		return s.getXAttr(buf, in, hdr)
	case fuseSetXAttr:
		// Without FUSE_SETXATTR_EXT (not negotiated) the kernel sends
		// only size and flags.
		size := unsafe.Sizeof(*hdr) + 8
		if s.negotiated&fuse.CAP_SETXATTR_EXT != 0 {
			size = unsafe.Sizeof(fuse.SetXAttrIn{})
		}
		if uintptr(len(in)) < size {
			return false
		}
		var sin fuse.SetXAttrIn
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&sin)), unsafe.Sizeof(sin)), in[:size])
		attr, value, ok := cstring(in[size:])
		if !ok || uintptr(len(value)) < uintptr(sin.Size) {
			return false
		}
		h.SetXAttr(s.newRequest(opSetXAttr, buf, hdr), &sin, attr, value[:sin.Size])
	case fuseRemoveXAttr:
		name, _, ok := cstring(in[unsafe.Sizeof(*hdr):])
		if !ok {
			return false
		}
		h.RemoveXAttr(s.newRequest(opRemoveXAttr, buf, hdr), name)

	case fuseCreate:
		in2 := fuseIn[fuse.CreateIn](in)
		if in2 == nil {
			return false
		}
		name, _, ok := cstring(in[unsafe.Sizeof(*in2):])
		if !ok {
			return false
		}
		r := s.newRequest(opCreate, buf, hdr)
		h.Create(r, in2, name, outOf[fuse.CreateOut](r))
	case fuseOpen, fuseOpenDir:
		in := fuseIn[fuse.OpenIn](in)
		if in == nil {
			return false
		}
		if hdr.Opcode == fuseOpen {
			r := s.newRequest(opOpen, buf, hdr)
			h.Open(r, in, outOf[fuse.OpenOut](r))
		} else {
			r := s.newRequest(opOpenDir, buf, hdr)
			h.OpenDir(r, in, outOf[fuse.OpenOut](r))
		}
	case fuseRead:
		in := fuseIn[fuse.ReadIn](in)
		if in == nil {
			return false
		}
		r := s.newRequest(opRead, buf, hdr)
		dst := s.readDest(r)
		h.Read(r, in, dst[:min(int(in.Size), len(dst))], &r.count)
	case fuseWrite:
		in2 := fuseIn[fuse.WriteIn](in)
		if in2 == nil || uintptr(len(in))-unsafe.Sizeof(*in2) < uintptr(in2.Size) {
			return false
		}
		data := in[unsafe.Sizeof(*in2):][:in2.Size]
		r := s.newRequest(opWrite, buf, hdr)
		out := outOf[fuse.WriteOut](r)
		h.Write(r, in2, [][]byte{data}, &out.Size)
	case fuseCopyFileRange:
		in := fuseIn[fuse.CopyFileRangeIn](in)
		if in == nil {
			return false
		}
		r := s.newRequest(opCopyFileRange, buf, hdr)
		h.CopyFileRange(r, in, &outOf[fuse.WriteOut](r).Size)
	case fuseLseek:
		in := fuseIn[fuse.LseekIn](in)
		if in == nil {
			return false
		}
		r := s.newRequest(opLseek, buf, hdr)
		h.Lseek(r, in, outOf[fuse.LseekOut](r))
	case fuseFlush:
		in := fuseIn[fuse.FlushIn](in)
		if in == nil {
			return false
		}
		h.Flush(s.newRequest(opFlush, buf, hdr), in)
	case fuseFsync, fuseFsyncDir:
		in := fuseIn[fuse.FsyncIn](in)
		if in == nil {
			return false
		}
		o := opFsync
		if hdr.Opcode == fuseFsyncDir {
			o = opFsyncDir
		}
		h.Fsync(s.newRequest(o, buf, hdr), in)
	case fuseFallocate:
		in := fuseIn[fuse.FallocateIn](in)
		if in == nil {
			return false
		}
		h.Fallocate(s.newRequest(opFallocate, buf, hdr), in)
	case fuseRelease, fuseReleaseDir:
		in := fuseIn[fuse.ReleaseIn](in)
		if in == nil {
			return false
		}
		o := opRelease
		if hdr.Opcode == fuseReleaseDir {
			o = opReleaseDir
		}
		h.Release(s.newRequest(o, buf, hdr), in)
	case fuseGetLk, fuseSetLk, fuseSetLkw:
		in := fuseIn[fuse.LkIn](in)
		if in == nil {
			return false
		}
		switch hdr.Opcode {
		case fuseGetLk:
			r := s.newRequest(opGetLk, buf, hdr)
			h.GetLk(r, in, outOf[fuse.LkOut](r))
		case fuseSetLk:
			h.SetLk(s.newRequest(opSetLk, buf, hdr), in, false)
		default:
			h.SetLk(s.newRequest(opSetLkw, buf, hdr), in, true)
		}

	case fuseReadDir, fuseReadDirPlus:
		in := fuseIn[fuse.ReadIn](in)
		if in == nil {
			return false
		}
		o, plus := opReadDir, false
		if hdr.Opcode == fuseReadDirPlus {
			o, plus = opReadDirPlus, true
		}
		r := s.newRequest(o, buf, hdr)
		dst := buf[payloadOff:]
		r.dirList = fuse.NewDirEntryList(dst[:min(int(in.Size), len(dst))], uint64(in.Offset))
		h.ReadDir(r, in, r.dirList, plus)

	default:
		// IOCTL, POLL, BMAP, TMPFILE, SYNCFS, …: what go-fuse answers
		// for a RawFileSystem method left at its default.
		s.replyNow(buf, hdr, fuse.ENOSYS)
	}
	return true
}

// getXAttr serves GETXATTR and LISTXATTR, two calls in one: with size 0
// the reply is the value's size (GetXAttrOut), otherwise the value.
func (s *session) getXAttr(buf, in []byte, hdr *fuse.InHeader) bool {
	gin := fuseIn[fuse.GetXAttrIn](in)
	if gin == nil {
		return false
	}
	dst := buf[payloadOff:]
	dst = dst[:min(int(gin.Size), len(dst))]
	if hdr.Opcode == fuseGetXAttr {
		attr, _, ok := cstring(in[unsafe.Sizeof(*gin):])
		if !ok {
			return false
		}
		r := s.newRequest(opGetXAttr, buf, hdr)
		r.xattrProbe = gin.Size == 0
		s.h.GetXAttr(r, attr, dst, &r.xattrN)
	} else {
		r := s.newRequest(opListXAttr, buf, hdr)
		r.xattrProbe = gin.Size == 0
		s.h.ListXAttr(r, dst, &r.xattrN)
	}
	return true
}

// payloadOf sets the reply's variable part from what the handler left in
// the request, for the opcodes that have one, and returns the status to
// send.
func (s *session) payloadOf(r *request) fuse.Status {
	st := r.status
	switch r.op {
	case opRead:
		r.payload = s.readDest(r)[:r.count]
	case opReadDir, opReadDirPlus:
		r.payload = r.dirList.Bytes()
	case opGetXAttr, opListXAttr:
		if r.xattrProbe {
			// Asked for the size only: ERANGE from a zero-length buffer
			// is not an error here.
			if st == fuse.ERANGE {
				st = fuse.OK
			}
			outOf[fuse.GetXAttrOut](r).Size = r.xattrN
		} else {
			r.outSize = 0
			r.payload = r.buf[payloadOff:][:r.xattrN]
		}
	}
	return st
}

// outOf lays the reply struct T over r's out area and marks it sent.
func outOf[T any](r *request) *T {
	var zero T
	r.outSize = int(unsafe.Sizeof(zero))
	return (*T)(unsafe.Pointer(&r.out[0]))
}

// init answers FUSE_INIT: the protocol version and the capabilities
// evfs wants, as go-fuse's server would negotiate them for the same
// mount options (mountOptions), so both transports behave alike.
func (s *session) init(buf, in []byte, hdr *fuse.InHeader) bool {
	var iin fuse.InitIn
	if len(in) < int(unsafe.Offsetof(iin.Flags2)) {
		return false
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&iin)), unsafe.Sizeof(iin)), in)
	r := s.newRequest(opOther, buf, hdr)
	if iin.Major != fuseKernelVersion || iin.Minor < fuseMinMinor {
		s.answer(r, fuse.EIO)
		// NewMount sees the session end instead of waiting for INIT.
		s.end(fmt.Errorf("unsupported FUSE protocol %d.%d", iin.Major, iin.Minor))
		return true
	}
	kernel := iin.Flags64()
	if iin.Flags&fuse.CAP_INIT_EXT == 0 {
		kernel = uint64(iin.Flags)
	}
	want := uint64(fuse.CAP_ASYNC_READ | fuse.CAP_BIG_WRITES | fuse.CAP_FILE_OPS | fuse.CAP_PARALLEL_DIROPS |
		fuse.CAP_MAX_PAGES | fuse.CAP_NO_OPEN_SUPPORT |
		fuse.CAP_FLOCK_LOCKS | fuse.CAP_POSIX_LOCKS | fuse.CAP_AUTO_INVAL_DATA | fuse.CAP_HANDLE_KILLPRIV_V2 |
		fuse.CAP_DIRECT_IO_ALLOW_MMAP) // O_DIRECT opens are FOPEN_DIRECT_IO (directIO)
	if s.cfg.ReadDirPlus {
		// AUTO, as libfuse does by default: the kernel asks for
		// READDIRPLUS at the start of a listing and after lookups in the
		// directory (ls -l), plain READDIR otherwise (ls, find), which
		// spares a statx per entry nobody will look at.
		want |= fuse.CAP_READDIRPLUS | fuse.CAP_READDIRPLUS_AUTO
	}
	if s.cfg.Writeback {
		want |= fuse.CAP_WRITEBACK_CACHE
	}
	if s.cfg.uringQueues > 0 {
		if kernel&capOverIOUring == 0 {
			s.answer(r, fuse.EIO)
			s.end(fmt.Errorf("the kernel does not offer FUSE over io_uring (is %s Y?)", uringEnabledPath))
			return true
		}
		want |= capOverIOUring
	}
	flags := kernel & want // never CAP_PASSTHROUGH: reads and writes go through the loop
	s.negotiated = flags

	congestion := s.cfg.MaxBackground * 3 / 4
	out := outOf[fuse.InitOut](r)
	*out = fuse.InitOut{
		Major:               fuseKernelVersion,
		Minor:               min(fuseOurMinor, iin.Minor),
		MaxReadAhead:        iin.MaxReadAhead,
		MaxWrite:            uint32(s.cfg.MaxWrite),
		MaxBackground:       uint16(s.cfg.MaxBackground),
		CongestionThreshold: uint16(congestion),
		MaxPages:            uint16((s.cfg.MaxWrite-1)/pageSize + 1),
		Flags:               uint32(flags) | fuse.CAP_INIT_EXT,
		Flags2:              uint32(flags >> 32),
	}
	if out.Minor <= 22 {
		r.outSize = 24 // InitOut before TimeGran
	}
	maxPayload := int(out.MaxPages) * pageSize
	s.answer(r, fuse.OK) // recycles r: out is gone
	if flags&capOverIOUring != 0 {
		// The kernel now holds every new request until the ring's
		// queues have entries.
		if err := s.startRing(maxPayload); err != nil {
			s.end(err)
			return true
		}
	}
	close(s.inited)
	return true
}
