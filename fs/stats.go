package fs

import (
	"time"

	"evfs/loop"
)

// op numbers the FUSE operations evfs serves, for per-op statistics.
type op uint8

const (
	opLookup op = iota
	opForget
	opGetAttr
	opSetAttr
	opAccess
	opMknod
	opMkdir
	opUnlink
	opRmdir
	opRename
	opLink
	opSymlink
	opReadlink
	opGetXAttr
	opListXAttr
	opSetXAttr
	opRemoveXAttr
	opCreate
	opOpen
	opRead
	opLseek
	opGetLk
	opSetLk
	opSetLkw
	opRelease
	opWrite
	opCopyFileRange
	opFlush
	opFsync
	opFallocate
	opOpenDir
	opReadDir
	opReadDirPlus
	opReleaseDir
	opFsyncDir
	opStatFs
	numOps

	// opOther marks requests answered without a handler (INIT, bad
	// input, …): never counted, never named through op.String.
	opOther = numOps
)

var opNames = [numOps]string{
	"LOOKUP", "FORGET", "GETATTR", "SETATTR", "ACCESS", "MKNOD", "MKDIR", "UNLINK",
	"RMDIR", "RENAME", "LINK", "SYMLINK", "READLINK", "GETXATTR", "LISTXATTR",
	"SETXATTR", "REMOVEXATTR", "CREATE", "OPEN", "READ", "LSEEK", "GETLK", "SETLK",
	"SETLKW", "RELEASE", "WRITE", "COPY_FILE_RANGE", "FLUSH", "FSYNC", "FALLOCATE",
	"OPENDIR", "READDIR", "READDIRPLUS", "RELEASEDIR", "FSYNCDIR", "STATFS",
}

func (o op) String() string { return opNames[o] }

// OpStat counts one FUSE operation: requests answered, how many with an
// error, and the latency from the bridge receiving the request to the
// loop answering it.
type OpStat struct {
	Name    string
	Count   uint64
	Errors  uint64
	Latency loop.Histogram
}

// opStats is the per-op table. Owned by the loop goroutine; never touch
// from elsewhere (Snapshot copies it through the loop).
type opStats [numOps]OpStat

func (s *opStats) record(o op, ok bool, d time.Duration) {
	st := &s[o]
	st.Count++
	if !ok {
		st.Errors++
	}
	st.Latency.Record(d)
}

// OpStats returns a copy of the per-operation statistics of the ops that
// have been seen. Safe from any goroutine: the copy is made on the loop.
func (m *Mount) OpStats() []OpStat {
	ch := make(chan []OpStat, 1)
	m.Loop.Post("stats", func() {
		var out []OpStat
		for i := range m.h.stats {
			if m.h.stats[i].Count > 0 {
				s := m.h.stats[i]
				s.Name = opNames[i]
				out = append(out, s)
			}
		}
		ch <- out
	})
	return <-ch
}
