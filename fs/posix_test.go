package fs_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"

	"evfs/fs/fstest"
)

// posixSkips lists go-fuse posixtest cases evfs cannot pass, each with the
// principled reason. Empty: evfs passes the whole suite. (Two cases skip
// themselves when the backing filesystem lacks the feature: XAttrLarge
// needs values over one block, which ext4 without ea_inode refuses with
// ENOSPC natively too; Tmpfile needs O_TMPFILE, which evfs does not
// serve yet — no FUSE_TMPFILE handler — so the kernel answers EOPNOTSUPP.)
var posixSkips = map[string]string{}

// raceSlow are cases too slow under the race detector to run for every
// backend; with -race they run for the pool backend only.
var raceSlow = map[string]string{
	"OpenSymlinkRace": "1000 rename/symlink/open rounds take ~20 s per backend under the race detector",
}

// TestPosix runs go-fuse's POSIX conformance suite against evfs, each
// case in its own directory of one mount per backend.
func TestPosix(t *testing.T) { runPosix(t, "loop", false) }

// TestPosixGofuse runs the suite through the other transport, go-fuse's
// server handing each request to the loop (--transport gofuse): the same
// handlers, reached through Bridge.
func TestPosixGofuse(t *testing.T) { runPosix(t, "gofuse", false) }

// TestPosixURing runs the suite through FUSE over io_uring (--transport
// uring): requests arrive as ring completions, replies leave as the
// commands that fetch the next (fuseuring.go).
func TestPosixURing(t *testing.T) {
	enableFuseURing(t)
	runPosix(t, "uring", false)
}

// TestPosixMemoryRoot runs the suite with a tmpfs as the backing root,
// where almost every op runs on the loop itself (memory roots,
// resident.go): the other tests' backing directories are on whatever
// file system TMPDIR is.
func TestPosixMemoryRoot(t *testing.T) { runPosix(t, "loop", true) }

func runPosix(t *testing.T, transport string, tmpfsRoot bool) {
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		var mnt string
		if tmpfsRoot {
			_, mnt, _ = memoryRoot(t, backend, true)
		} else {
			mnt, _ = fstest.Mount(t, backend, fstest.Transport(transport))
		}
		for _, name := range names {
			t.Run(name, func(t *testing.T) {
				if why, ok := posixSkips[name]; ok {
					t.Skip(why)
				}
				if why, ok := raceSlow[name]; ok && raceEnabled && backend != "pool" {
					t.Skipf("race-enabled build: %s; run without -race to cover every backend", why)
				}
				dir := filepath.Join(mnt, name)
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				posixtest.All[name](t, dir)
			})
		}
	})
}
