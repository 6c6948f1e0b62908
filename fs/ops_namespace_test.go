package fs_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"evfs/fs/fstest"
)

// TestMknod: regular files and fifos made with mknod exist on the backing
// fs with the requested type and mode; a fifo works through the mount.
func TestMknod(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		for _, c := range []struct {
			name string
			mode uint32
		}{
			{"reg", unix.S_IFREG | 0o640},
			{"fifo", unix.S_IFIFO | 0o604},
			{"sock", unix.S_IFSOCK | 0o755},
		} {
			if err := unix.Mknod(filepath.Join(mnt, c.name), c.mode, 0); err != nil {
				t.Fatalf("mknod %s: %v", c.name, err)
			}
			st := lstat(t, filepath.Join(back, c.name))
			if st.Mode != c.mode {
				t.Errorf("%s: backing mode %#o, want %#o", c.name, st.Mode, c.mode)
			}
			sameAttrs(t, c.name, lstat(t, filepath.Join(mnt, c.name)), st)
			wantErrno(t, "mknod existing", unix.Mknod(filepath.Join(mnt, c.name), c.mode, 0), unix.EEXIST)
		}
		// A character device (root may make one) keeps its device number.
		if err := unix.Mknod(filepath.Join(mnt, "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
			t.Fatal(err)
		}
		if st := lstat(t, filepath.Join(back, "zero")); st.Rdev != unix.Mkdev(1, 5) {
			t.Errorf("device number %#x on the backing fs, want 1,5", st.Rdev)
		}

		// The fifo carries data between a writer and a reader through the mount.
		done := make(chan error, 1)
		go func() {
			w, err := os.OpenFile(filepath.Join(mnt, "fifo"), os.O_WRONLY, 0)
			if err != nil {
				done <- err
				return
			}
			_, err = w.Write([]byte("through the pipe"))
			w.Close()
			done <- err
		}()
		r, err := os.Open(filepath.Join(mnt, "fifo"))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, _ := r.Read(buf)
		r.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if string(buf[:n]) != "through the pipe" {
			t.Errorf("fifo read %q", buf[:n])
		}
	})
}

// TestMkdirUnlinkRmdir: directories appear on and vanish from the backing
// fs; rmdir of a non-empty directory is ENOTEMPTY; unlink of a directory
// is EISDIR; rmdir of a file ENOTDIR.
func TestMkdirUnlinkRmdir(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		d := filepath.Join(mnt, "d")
		if err := unix.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
		st := lstat(t, filepath.Join(back, "d"))
		if st.Mode != unix.S_IFDIR|0o750 {
			t.Errorf("backing mode %#o, want dir 0750", st.Mode)
		}
		wantErrno(t, "mkdir existing", unix.Mkdir(d, 0o750), unix.EEXIST)
		if err := unix.Mkdir(filepath.Join(d, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
		if st := lstat(t, filepath.Join(mnt, "d")); st.Nlink != 3 {
			t.Errorf("nlink of d with one subdirectory: %d, want 3", st.Nlink)
		}
		mustWriteFile(t, filepath.Join(d, "file"), []byte("x"), 0o600)
		wantErrno(t, "rmdir non-empty", unix.Rmdir(d), unix.ENOTEMPTY)
		wantErrno(t, "unlink dir", unix.Unlink(filepath.Join(d, "sub")), unix.EISDIR)
		wantErrno(t, "rmdir file", unix.Rmdir(filepath.Join(d, "file")), unix.ENOTDIR)
		wantErrno(t, "unlink missing", unix.Unlink(filepath.Join(d, "missing")), unix.ENOENT)
		wantErrno(t, "rmdir missing", unix.Rmdir(filepath.Join(d, "missing")), unix.ENOENT)

		if err := unix.Unlink(filepath.Join(d, "file")); err != nil {
			t.Fatal(err)
		}
		mustNotExist(t, filepath.Join(back, "d", "file"))
		if err := unix.Rmdir(filepath.Join(d, "sub")); err != nil {
			t.Fatal(err)
		}
		mustNotExist(t, filepath.Join(back, "d", "sub"))
		if err := unix.Rmdir(d); err != nil {
			t.Fatal(err)
		}
		mustNotExist(t, filepath.Join(back, "d"))
		mustNotExist(t, d)

		// An unlinked file stays readable through an fd opened before.
		p := filepath.Join(mnt, "open-unlinked")
		mustWriteFile(t, p, []byte("still here"), 0o600)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 32)
		n, err := f.ReadAt(buf, 0)
		if string(buf[:n]) != "still here" {
			t.Errorf("read of unlinked open file: %q, %v", buf[:n], err)
		}
	})
}

// TestRename: plain rename over an existing name, RENAME_NOREPLACE
// (EEXIST, nothing changed) and RENAME_EXCHANGE (contents swapped), across
// directories too.
func TestRename(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		a, b := filepath.Join(mnt, "a"), filepath.Join(mnt, "b")
		mustWriteFile(t, a, []byte("A"), 0o644)
		mustWriteFile(t, b, []byte("B"), 0o644)

		wantErrno(t, "RENAME_NOREPLACE onto existing",
			unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_NOREPLACE), unix.EEXIST)
		if string(mustReadFile(t, filepath.Join(back, "a"))) != "A" || string(mustReadFile(t, filepath.Join(back, "b"))) != "B" {
			t.Error("RENAME_NOREPLACE changed the files")
		}

		inoA, inoB := lstat(t, filepath.Join(back, "a")).Ino, lstat(t, filepath.Join(back, "b")).Ino
		if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
			t.Fatalf("RENAME_EXCHANGE: %v", err)
		}
		if got := string(mustReadFile(t, filepath.Join(back, "a"))); got != "B" {
			t.Errorf("after exchange backing a = %q, want B", got)
		}
		if got := string(mustReadFile(t, a)); got != "B" {
			t.Errorf("after exchange a = %q through the mount, want B", got)
		}
		if got := string(mustReadFile(t, b)); got != "A" {
			t.Errorf("after exchange b = %q through the mount, want A", got)
		}
		if lstat(t, a).Ino != inoB || lstat(t, b).Ino != inoA {
			t.Error("after exchange the inode numbers did not swap")
		}

		if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, filepath.Join(mnt, "c"), unix.RENAME_NOREPLACE); err != nil {
			t.Fatalf("RENAME_NOREPLACE to a new name: %v", err)
		}
		mustNotExist(t, filepath.Join(back, "a"))

		// Plain rename replaces the target.
		if err := os.Rename(filepath.Join(mnt, "c"), b); err != nil {
			t.Fatal(err)
		}
		if got := string(mustReadFile(t, filepath.Join(back, "b"))); got != "B" {
			t.Errorf("after rename over b: %q, want B", got)
		}
		mustNotExist(t, filepath.Join(mnt, "c"))

		// Across directories, and a directory with content.
		if err := os.MkdirAll(filepath.Join(mnt, "x", "y"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(mnt, "z"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(b, filepath.Join(mnt, "x", "y", "b")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(mnt, "x"), filepath.Join(mnt, "z", "x2")); err != nil {
			t.Fatal(err)
		}
		if got := string(mustReadFile(t, filepath.Join(back, "z", "x2", "y", "b"))); got != "B" {
			t.Errorf("after directory rename: %q", got)
		}
		wantErrno(t, "rename dir into itself", os.Rename(filepath.Join(mnt, "z"), filepath.Join(mnt, "z", "x2", "in")), unix.EINVAL)
		wantErrno(t, "rename missing", os.Rename(filepath.Join(mnt, "missing"), filepath.Join(mnt, "q")), unix.ENOENT)
		mustWriteFile(t, filepath.Join(mnt, "file"), nil, 0o644)
		wantErrno(t, "rename file over dir", unix.Rename(filepath.Join(mnt, "file"), filepath.Join(mnt, "z")), unix.EISDIR)
		wantErrno(t, "RENAME_EXCHANGE with missing",
			unix.Renameat2(unix.AT_FDCWD, filepath.Join(mnt, "file"), unix.AT_FDCWD, filepath.Join(mnt, "nope"), unix.RENAME_EXCHANGE), unix.ENOENT)
		// Exchange a file and a directory.
		if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(mnt, "file"), unix.AT_FDCWD, filepath.Join(mnt, "z"), unix.RENAME_EXCHANGE); err != nil {
			t.Fatalf("RENAME_EXCHANGE file/dir: %v", err)
		}
		if st := lstat(t, filepath.Join(back, "file")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Errorf("after file/dir exchange, backing 'file' has mode %#o", st.Mode)
		}
		if _, err := os.Stat(filepath.Join(mnt, "file", "x2", "y", "b")); err != nil {
			t.Errorf("after file/dir exchange: %v", err)
		}
	})
}

// TestLink: hard links share the inode and count in st_nlink on both
// sides; unlinking one name leaves the other.
func TestLink(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		orig := filepath.Join(mnt, "orig")
		mustWriteFile(t, orig, []byte("shared"), 0o644)
		for i, name := range []string{"l1", "l2", "l3"} {
			if err := os.Link(orig, filepath.Join(mnt, name)); err != nil {
				t.Fatal(err)
			}
			want := uint64(i + 2)
			for _, p := range []string{orig, filepath.Join(mnt, name), filepath.Join(back, name)} {
				if n := lstat(t, p).Nlink; n != want {
					t.Errorf("nlink of %s after %d links: %d, want %d", p, i+1, n, want)
				}
			}
		}
		if lstat(t, filepath.Join(mnt, "l3")).Ino != lstat(t, orig).Ino {
			t.Error("link has another inode number")
		}
		wantErrno(t, "link onto existing", os.Link(orig, filepath.Join(mnt, "l1")), unix.EEXIST)
		wantErrno(t, "link of missing", os.Link(filepath.Join(mnt, "missing"), filepath.Join(mnt, "l4")), unix.ENOENT)
		if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
			t.Fatal(err)
		}
		wantErrno(t, "link of a directory", os.Link(filepath.Join(mnt, "d"), filepath.Join(mnt, "dl")), unix.EPERM)

		if err := os.Remove(orig); err != nil {
			t.Fatal(err)
		}
		if n := lstat(t, filepath.Join(mnt, "l1")).Nlink; n != 3 {
			t.Errorf("nlink after one unlink: %d, want 3", n)
		}
		// Writing through one name shows through the others.
		mustWriteFile(t, filepath.Join(mnt, "l1"), []byte("changed"), 0)
		if got := string(mustReadFile(t, filepath.Join(mnt, "l2"))); got != "changed" {
			t.Errorf("l2 = %q after writing l1", got)
		}
		sameAttrs(t, "l2", lstat(t, filepath.Join(mnt, "l2")), lstat(t, filepath.Join(back, "l2")))
	})
}

// TestSymlink: relative, absolute and dangling symlinks are stored
// verbatim, read back with readlink, and followed by the kernel.
func TestSymlink(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		mustWriteFile(t, filepath.Join(mnt, "target"), []byte("T"), 0o644)
		if err := os.Mkdir(filepath.Join(mnt, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		abs := filepath.Join(mnt, "target")
		cases := []struct{ name, target, content string }{
			{"rel", "target", "T"},
			{"sub/up", "../target", "T"},
			{"abs", abs, "T"},
			{"dangling", "no/such/file", ""},
			{"long", filepath.Join("a", string(repeat('x', 200)), string(repeat('y', 200))), ""},
		}
		for _, c := range cases {
			p := filepath.Join(mnt, c.name)
			if err := os.Symlink(c.target, p); err != nil {
				t.Fatalf("symlink %s: %v", c.name, err)
			}
			for _, q := range []string{p, filepath.Join(back, c.name)} {
				got, err := os.Readlink(q)
				if err != nil || got != c.target {
					t.Errorf("readlink %s = %q, %v; want %q", q, got, err, c.target)
				}
			}
			st := lstat(t, p)
			if st.Mode != unix.S_IFLNK|0o777 || st.Size != int64(len(c.target)) {
				t.Errorf("lstat %s: mode %#o size %d", c.name, st.Mode, st.Size)
			}
			sameAttrs(t, c.name, st, lstat(t, filepath.Join(back, c.name)))
			data, err := os.ReadFile(p)
			if c.content != "" {
				if err != nil || string(data) != c.content {
					t.Errorf("read through %s: %q, %v", c.name, data, err)
				}
			} else {
				wantErrno(t, "read through dangling "+c.name, err, unix.ENOENT)
			}
		}
		wantErrno(t, "symlink over existing", os.Symlink("x", filepath.Join(mnt, "rel")), unix.EEXIST)
		_, err := os.Readlink(filepath.Join(mnt, "target"))
		wantErrno(t, "readlink of a file", err, unix.EINVAL)
		// O_NOFOLLOW on a symlink is ELOOP.
		_, err = unix.Open(filepath.Join(mnt, "rel"), unix.O_RDONLY|unix.O_NOFOLLOW, 0)
		wantErrno(t, "open O_NOFOLLOW symlink", err, unix.ELOOP)
	})
}

func repeat(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

// TestInodeNumberReuse: a removed inode the kernel still holds (an open
// directory fd) must not lend its node to a new file that the backing fs
// gave the same inode number (ext4 reuses them at once): the new file
// is a regular file with its own content.
func TestInodeNumberReuse(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, _ := fstest.Mount(t, backend)
		reused := 0
		for i := 0; i < 200; i++ {
			d := filepath.Join(mnt, "d")
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			var dst unix.Stat_t
			dfd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			unix.Fstat(dfd, &dst)
			if err := os.Remove(d); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(mnt, "f")
			if err := os.WriteFile(f, []byte("file"), 0o644); err != nil {
				t.Fatal(err)
			}
			var fst unix.Stat_t
			if err := unix.Stat(f, &fst); err != nil {
				t.Fatal(err)
			}
			if fst.Ino == dst.Ino {
				reused++
			}
			if fst.Mode&unix.S_IFMT != unix.S_IFREG {
				t.Fatalf("round %d: new file has mode %o (inode %d reused: %v)", i, fst.Mode, fst.Ino, fst.Ino == dst.Ino)
			}
			if b, err := os.ReadFile(f); err != nil || string(b) != "file" {
				t.Fatalf("round %d: read %q, %v", i, b, err)
			}
			unix.Close(dfd)
			os.Remove(f)
		}
		t.Logf("inode number reused in %d of 200 rounds", reused)
	})
}
