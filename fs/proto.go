package fs

import "unsafe"

// FUSE kernel ABI numbers (include/uapi/linux/fuse.h) that go-fuse keeps
// unexported. The structs themselves are go-fuse's exported types.
const (
	fuseLookup        = 1
	fuseForget        = 2
	fuseGetAttr       = 3
	fuseSetAttr       = 4
	fuseReadlink      = 5
	fuseSymlink       = 6
	fuseMknod         = 8
	fuseMkdir         = 9
	fuseUnlink        = 10
	fuseRmdir         = 11
	fuseRename        = 12
	fuseLink          = 13
	fuseOpen          = 14
	fuseRead          = 15
	fuseWrite         = 16
	fuseStatFs        = 17
	fuseRelease       = 18
	fuseFsync         = 20
	fuseSetXAttr      = 21
	fuseGetXAttr      = 22
	fuseListXAttr     = 23
	fuseRemoveXAttr   = 24
	fuseFlush         = 25
	fuseInit          = 26
	fuseOpenDir       = 27
	fuseReadDir       = 28
	fuseReleaseDir    = 29
	fuseFsyncDir      = 30
	fuseGetLk         = 31
	fuseSetLk         = 32
	fuseSetLkw        = 33
	fuseAccess        = 34
	fuseCreate        = 35
	fuseInterrupt     = 36
	fuseDestroy       = 38
	fusePoll          = 40
	fuseBatchForget   = 42
	fuseFallocate     = 43
	fuseReadDirPlus   = 44
	fuseRename2       = 45
	fuseLseek         = 46
	fuseCopyFileRange = 47

	// notifyInvalEntry is FUSE_NOTIFY_INVAL_ENTRY, sent as a negative
	// error in an unsolicited reply.
	notifyInvalEntry = 3

	fuseKernelVersion = 7
	fuseMinMinor      = 12
	// fuseOurMinor is the protocol minor evfs speaks: go-fuse's, whose
	// struct layouts it uses.
	fuseOurMinor = 28
)

// Input structs that go-fuse does not export (ForgetIn is exported).
type batchForgetIn struct {
	Count uint32
	Dummy uint32
}

type forgetOne struct {
	NodeID  uint64
	Nlookup uint64
}

// fuseIn returns the fixed-size input struct T at the start of in, or nil
// if in is too short for it (a malformed request).
func fuseIn[T any](in []byte) *T {
	var zero T
	if len(in) < int(unsafe.Sizeof(zero)) {
		return nil
	}
	return (*T)(unsafe.Pointer(&in[0]))
}

// cstring returns the NUL-terminated string at the start of b, and the
// rest after the NUL; ok is false if there is no NUL.
func cstring(b []byte) (s string, rest []byte, ok bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}

// fuseOpName names an opcode for logs and the stall detector (once per
// request: an array, not a map).
func fuseOpName(opcode uint32) string {
	if opcode < uint32(len(opcodeNames)) && opcodeNames[opcode] != "" {
		return opcodeNames[opcode]
	}
	return "FUSE"
}

var opcodeNames = func() (n [fuseCopyFileRange + 1]string) {
	for opcode, o := range map[uint32]op{
		fuseLookup: opLookup, fuseGetAttr: opGetAttr, fuseSetAttr: opSetAttr, fuseReadlink: opReadlink,
		fuseSymlink: opSymlink, fuseMknod: opMknod, fuseMkdir: opMkdir, fuseUnlink: opUnlink,
		fuseRmdir: opRmdir, fuseRename: opRename, fuseRename2: opRename, fuseLink: opLink,
		fuseOpen: opOpen, fuseRead: opRead, fuseWrite: opWrite, fuseStatFs: opStatFs,
		fuseRelease: opRelease, fuseFsync: opFsync, fuseSetXAttr: opSetXAttr, fuseGetXAttr: opGetXAttr,
		fuseListXAttr: opListXAttr, fuseRemoveXAttr: opRemoveXAttr, fuseFlush: opFlush,
		fuseOpenDir: opOpenDir, fuseReadDir: opReadDir, fuseReleaseDir: opReleaseDir,
		fuseFsyncDir: opFsyncDir, fuseGetLk: opGetLk, fuseSetLk: opSetLk, fuseSetLkw: opSetLkw,
		fuseAccess: opAccess, fuseCreate: opCreate, fuseFallocate: opFallocate,
		fuseReadDirPlus: opReadDirPlus, fuseLseek: opLseek, fuseCopyFileRange: opCopyFileRange,
	} {
		n[opcode] = o.String()
	}
	n[fuseInit], n[fuseDestroy], n[fuseInterrupt], n[fusePoll] = "INIT", "DESTROY", "INTERRUPT", "POLL"
	n[fuseForget], n[fuseBatchForget] = "FORGET", "FORGET"
	return n
}()
