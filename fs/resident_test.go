package fs_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"evfs/fs"
	"evfs/fs/fstest"
)

// inlineOps is the backend's count of ops completed on the spot.
func inlineOps(t *testing.T, m *fs.Mount) uint64 {
	t.Helper()
	return snapshot(t, m).Loop.Backend.Inline
}

// TestResidentStat: on a local backing file system, LOOKUP and GETATTR of
// known inodes are served on the loop (the backend's inline count grows
// by at least two per stat on pool and uring; with --resident-stat=false
// not at all), with the same answers; a tmpfs mounted inside the backing
// tree is crossed by the general path (RESOLVE_NO_XDEV says EXDEV), so
// its root and files show their own inode numbers and contents. The
// backing root is the test's temporary directory, and a tmpfs (a memory
// root, where every op is done on the loop unless it crosses).
func TestResidentStat(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		for _, c := range []struct {
			resident bool
			root     string
		}{{true, "tempdir"}, {false, "tempdir"}, {true, "tmpfs"}} {
			resident := c.resident
			name := c.root + "/resident"
			if !resident {
				name = c.root + "/no-resident"
			}
			t.Run(name, func(t *testing.T) {
				mnt, backing := fstest.Dirs(t)
				if c.root == "tmpfs" {
					mountTmpfs(t, backing, "8m")
				}
				sub := filepath.Join(backing, "sub")
				if err := os.Mkdir(sub, 0o755); err != nil {
					t.Fatal(err)
				}
				mountTmpfs(t, sub, "1m")
				mustWriteFile(t, filepath.Join(sub, "inner"), []byte("inside the nested tmpfs"), 0o644)
				mustWriteFile(t, filepath.Join(backing, "top"), []byte("0123456789"), 0o600)

				m := fstest.MountAt(t, backend, backing, mnt, func(c *fs.Config) { c.NoResident, c.NoResidentData = !resident, !resident })

				top := lstat(t, filepath.Join(mnt, "top")) // the first lookup registers the node
				before := inlineOps(t, m)
				submitted := snapshot(t, m).Loop.Backend.Submitted
				const n = 20
				for i := 0; i < n; i++ {
					st := lstat(t, filepath.Join(mnt, "top"))
					if st.Ino != top.Ino || st.Size != 10 || st.Mode != unix.S_IFREG|0o600 {
						t.Fatalf("stat %d: ino %d size %d mode %o; want %d, 10, %o", i, st.Ino, st.Size, st.Mode, top.Ino, unix.S_IFREG|0o600)
					}
				}
				delta := inlineOps(t, m) - before
				switch {
				case backend == "sync":
					// Runs everything on the loop anyway; no first attempts to count.
				case resident && delta < 2*n:
					t.Errorf("resident: %d ops inline for %d stats, want at least %d (LOOKUP and GETATTR)", delta, n, 2*n)
				case !resident && delta != 0:
					t.Errorf("--resident-stat=false: %d ops inline for %d stats of a known inode, want 0", delta, n)
				}
				// On a memory root a known inode's LOOKUP is one statx of
				// the name (statxKnown), GETATTR one of its fd: two ops per
				// stat, where opening the name took four.
				if ops := snapshot(t, m).Loop.Backend.Submitted - submitted; c.root == "tmpfs" && (ops < n || ops > 2*n) {
					t.Errorf("memory root: %d backend ops for %d stats of a known inode, want %d to %d", ops, n, n, 2*n)
				}

				if got, want := lstat(t, filepath.Join(mnt, "sub")).Ino, lstat(t, sub).Ino; got != want {
					t.Errorf("nested mount root: ino %d through evfs, %d natively", got, want)
				}
				inner := filepath.Join(mnt, "sub", "inner")
				if got, want := lstat(t, inner).Ino, lstat(t, filepath.Join(sub, "inner")).Ino; got != want {
					t.Errorf("file in the nested mount: ino %d through evfs, %d natively", got, want)
				}
				if b := mustReadFile(t, inner); string(b) != "inside the nested tmpfs" {
					t.Errorf("file in the nested mount reads %q", b)
				}
				mustWriteFile(t, filepath.Join(mnt, "sub", "new"), []byte("made through evfs"), 0o644)
				if b := mustReadFile(t, filepath.Join(sub, "new")); string(b) != "made through evfs" {
					t.Errorf("file created in the nested mount reads %q natively", b)
				}
			})
		}
	})
}

// TestLookupSeesBackingChanges: a name changed in the backing directory
// itself, not through evfs, is looked up afresh (entry timeout 0): a file
// replaced by rename shows the new inode and contents, a hard link made
// beside it the same inode as its other name, a removed name ENOENT, and
// a name whose inode evfs already knows under another name the known
// inode — on a disk root and on a memory root, where LOOKUP starts with
// a statx of the name.
func TestLookupSeesBackingChanges(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		for _, root := range []string{"tempdir", "tmpfs"} {
			t.Run(root, func(t *testing.T) {
				mnt, backing := fstest.Dirs(t)
				if root == "tmpfs" {
					mountTmpfs(t, backing, "8m")
				}
				mustWriteFile(t, filepath.Join(backing, "a"), []byte("old"), 0o644)
				fstest.MountAt(t, backend, backing, mnt)

				a := filepath.Join(mnt, "a")
				old := lstat(t, a)
				if b := mustReadFile(t, a); string(b) != "old" {
					t.Fatalf("a reads %q, want %q", b, "old")
				}

				// Replaced behind evfs's back: a new inode under the same name.
				mustWriteFile(t, filepath.Join(backing, "b"), []byte("new contents"), 0o600)
				if err := os.Rename(filepath.Join(backing, "b"), filepath.Join(backing, "a")); err != nil {
					t.Fatal(err)
				}
				st := lstat(t, a)
				if native := lstat(t, filepath.Join(backing, "a")); st.Ino != native.Ino || st.Ino == old.Ino {
					t.Errorf("replaced a: ino %d through evfs, %d natively (old %d)", st.Ino, native.Ino, old.Ino)
				}
				if st.Size != 12 || st.Mode != unix.S_IFREG|0o600 {
					t.Errorf("replaced a: size %d mode %o, want 12, %o", st.Size, st.Mode, unix.S_IFREG|0o600)
				}
				if b := mustReadFile(t, a); string(b) != "new contents" {
					t.Errorf("replaced a reads %q", b)
				}

				// A hard link made natively: the inode evfs knows, two links.
				if err := os.Link(filepath.Join(backing, "a"), filepath.Join(backing, "c")); err != nil {
					t.Fatal(err)
				}
				c := lstat(t, filepath.Join(mnt, "c"))
				if c.Ino != st.Ino || c.Nlink != 2 {
					t.Errorf("hard link c: ino %d nlink %d, want %d, 2", c.Ino, c.Nlink, st.Ino)
				}

				// Removed natively: ENOENT, and the other name still works.
				if err := os.Remove(filepath.Join(backing, "a")); err != nil {
					t.Fatal(err)
				}
				_, err := os.Lstat(a)
				wantErrno(t, "lstat of a name removed in the backing dir", err, unix.ENOENT)
				if c := lstat(t, filepath.Join(mnt, "c")); c.Nlink != 1 {
					t.Errorf("c after a's removal: nlink %d, want 1", c.Nlink)
				}

				// A directory put where a file was.
				if err := os.Rename(filepath.Join(backing, "c"), filepath.Join(backing, "d")); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(filepath.Join(backing, "c"), 0o755); err != nil {
					t.Fatal(err)
				}
				if st := lstat(t, filepath.Join(mnt, "c")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
					t.Errorf("c is now a directory; evfs says mode %o", st.Mode)
				}
				mustWriteFile(t, filepath.Join(mnt, "c", "inside"), []byte("x"), 0o644)
				if b := mustReadFile(t, filepath.Join(backing, "c", "inside")); string(b) != "x" {
					t.Errorf("file made in the new directory reads %q natively", b)
				}
			})
		}
	})
}
