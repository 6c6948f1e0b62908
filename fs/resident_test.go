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
					if err := unix.Mount("evfs-test", backing, "tmpfs", 0, "size=8m"); err != nil {
						t.Fatalf("mount tmpfs as the backing dir: %v", err)
					}
					t.Cleanup(func() { unix.Unmount(backing, unix.MNT_DETACH) })
				}
				sub := filepath.Join(backing, "sub")
				if err := os.Mkdir(sub, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := unix.Mount("evfs-test", sub, "tmpfs", 0, "size=1m"); err != nil {
					t.Fatalf("mount tmpfs inside the backing dir: %v", err)
				}
				// Registered before the FUSE mount: cleanups run last-in first-out.
				t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
				mustWriteFile(t, filepath.Join(sub, "inner"), []byte("inside the nested tmpfs"), 0o644)
				mustWriteFile(t, filepath.Join(backing, "top"), []byte("0123456789"), 0o600)

				m := fstest.MountAt(t, backend, backing, mnt, func(c *fs.Config) { c.NoResident, c.NoResidentData = !resident, !resident })

				top := lstat(t, filepath.Join(mnt, "top")) // the first lookup registers the node
				before := inlineOps(t, m)
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
