package fs_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"evfs/fs/fstest"
)

// TestLookupGetattr: every kind of inode stats the same through the mount
// as on the backing fs, and missing names are ENOENT.
func TestLookupGetattr(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		mustWriteFile(t, filepath.Join(back, "file"), []byte("hello, world"), 0o640)
		if err := os.Mkdir(filepath.Join(back, "dir"), 0o751); err != nil {
			t.Fatal(err)
		}
		mustWriteFile(t, filepath.Join(back, "dir", "nested"), make([]byte, 100_000), 0o600)
		if err := os.Symlink("file", filepath.Join(back, "link")); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkfifo(filepath.Join(back, "fifo"), 0o620); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(filepath.Join(back, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(back, "file"), filepath.Join(back, "hardlink")); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(back, "file"), 4321, 8765); err != nil {
			t.Fatal(err)
		}
		past := time.Unix(1_234_567_890, 123_456_789)
		if err := os.Chtimes(filepath.Join(back, "dir", "nested"), past, past.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{".", "file", "dir", "dir/nested", "link", "fifo", "null", "hardlink"} {
			want := lstat(t, filepath.Join(back, name))
			got := lstat(t, filepath.Join(mnt, name))
			sameAttrs(t, name, got, want)
		}
		// fstat of an open file goes through GETATTR with a handle.
		f, err := os.Open(filepath.Join(mnt, "dir", "nested"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var got unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &got); err != nil {
			t.Fatal(err)
		}
		sameAttrs(t, "fstat dir/nested", got, lstat(t, filepath.Join(back, "dir", "nested")))

		var st unix.Stat_t
		wantErrno(t, "lstat missing", unix.Lstat(filepath.Join(mnt, "missing"), &st), unix.ENOENT)
		wantErrno(t, "lstat file/x", unix.Lstat(filepath.Join(mnt, "file", "x"), &st), unix.ENOTDIR)
		// A change on the backing fs shows at once (timeouts are 0).
		mustWriteFile(t, filepath.Join(back, "file"), []byte("longer content now"), 0o640)
		sameAttrs(t, "file after backing write", lstat(t, filepath.Join(mnt, "file")), lstat(t, filepath.Join(back, "file")))
		if err := os.Remove(filepath.Join(back, "fifo")); err != nil {
			t.Fatal(err)
		}
		mustNotExist(t, filepath.Join(mnt, "fifo"))
	})
}

// TestSetattr: chmod, chown, truncate (path and fd) and utimes through
// the mount change the backing inode, and stat agrees.
func TestSetattr(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		p, bp := filepath.Join(mnt, "f"), filepath.Join(back, "f")
		mustWriteFile(t, p, []byte("0123456789"), 0o644)
		check := func(what string) {
			t.Helper()
			sameAttrs(t, what, lstat(t, p), lstat(t, bp))
		}

		t.Run("chmod", func(t *testing.T) {
			for _, mode := range []uint32{0o600, 0o4755, 0o2711, 0o1777, 0o000, 0o644} {
				if err := unix.Chmod(p, mode); err != nil {
					t.Fatal(err)
				}
				if got := lstat(t, bp).Mode & 0o7777; got != mode {
					t.Errorf("backing mode %#o after chmod %#o", got, mode)
				}
				check("chmod")
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := unix.Fchmod(int(f.Fd()), 0o640); err != nil {
				t.Fatal(err)
			}
			if got := lstat(t, bp).Mode & 0o7777; got != 0o640 {
				t.Errorf("backing mode %#o after fchmod 0640", got)
			}
		})
		t.Run("chown", func(t *testing.T) {
			for _, c := range []struct{ uid, gid int }{{1000, 1000}, {-1, 2000}, {3000, -1}, {0, 0}} {
				before := lstat(t, bp)
				if err := os.Lchown(p, c.uid, c.gid); err != nil {
					t.Fatal(err)
				}
				st := lstat(t, bp)
				wantUID, wantGID := uint32(c.uid), uint32(c.gid)
				if c.uid < 0 {
					wantUID = before.Uid
				}
				if c.gid < 0 {
					wantGID = before.Gid
				}
				if st.Uid != wantUID || st.Gid != wantGID {
					t.Errorf("chown(%d, %d): backing owner %d:%d, want %d:%d", c.uid, c.gid, st.Uid, st.Gid, wantUID, wantGID)
				}
				check("chown")
			}
		})
		t.Run("truncate path", func(t *testing.T) {
			for _, size := range []int64{4, 0, 100_000, 10} {
				if err := unix.Truncate(p, size); err != nil {
					t.Fatal(err)
				}
				if got := lstat(t, bp).Size; got != size {
					t.Errorf("backing size %d after truncate(%d)", got, size)
				}
				check("truncate")
			}
			wantErrno(t, "truncate dir", unix.Truncate(mnt, 0), unix.EISDIR)
		})
		t.Run("truncate fd", func(t *testing.T) {
			mustWriteFile(t, p, []byte("0123456789"), 0)
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(3); err != nil {
				t.Fatal(err)
			}
			if got := string(mustReadFile(t, bp)); got != "012" {
				t.Errorf("backing content %q after ftruncate(3)", got)
			}
			if err := f.Truncate(5); err != nil {
				t.Fatal(err)
			}
			if got := string(mustReadFile(t, bp)); got != "012\x00\x00" {
				t.Errorf("backing content %q after ftruncate(5)", got)
			}
			ro, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			// Natively ftruncate of a read-only fd is EINVAL.
			wantErrno(t, "ftruncate read-only fd", ro.Truncate(0), unix.EINVAL)
		})
		t.Run("utimes", func(t *testing.T) {
			ts := []unix.Timespec{{Sec: 1_000_000_000, Nsec: 111}, {Sec: 1_100_000_000, Nsec: 222_222_222}}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, 0); err != nil {
				t.Fatal(err)
			}
			st := lstat(t, bp)
			if st.Atim != ts[0] || st.Mtim != ts[1] {
				t.Errorf("backing times %v %v, want %v %v", st.Atim, st.Mtim, ts[0], ts[1])
			}
			check("utimes")

			// UTIME_OMIT keeps atime; UTIME_NOW sets mtime to now.
			before := time.Now().Add(-time.Second)
			omitNow := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_NOW}}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, omitNow, 0); err != nil {
				t.Fatal(err)
			}
			st = lstat(t, bp)
			if st.Atim != ts[0] {
				t.Errorf("UTIME_OMIT: atime %v, want unchanged %v", st.Atim, ts[0])
			}
			if m := time.Unix(st.Mtim.Unix()); m.Before(before) || m.After(time.Now().Add(time.Second)) {
				t.Errorf("UTIME_NOW: mtime %v, want about now", m)
			}
			check("UTIME_NOW mtime")

			// And the other way round.
			nowOmit := []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_OMIT}}
			mtime := st.Mtim
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, nowOmit, 0); err != nil {
				t.Fatal(err)
			}
			st = lstat(t, bp)
			if st.Mtim != mtime {
				t.Errorf("UTIME_OMIT: mtime %v, want unchanged %v", st.Mtim, mtime)
			}
			if a := time.Unix(st.Atim.Unix()); a.Before(before) {
				t.Errorf("UTIME_NOW: atime %v, want about now", a)
			}
			check("UTIME_NOW atime")

			// Times through an fd (futimens).
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ts2 := []unix.Timespec{{Sec: 42, Nsec: 1}, {Sec: 43, Nsec: 2}}
			if err := unix.UtimesNanoAt(int(f.Fd()), "", ts2, unix.AT_EMPTY_PATH); err != nil {
				t.Fatal(err)
			}
			st = lstat(t, bp)
			if st.Atim != ts2[0] || st.Mtim != ts2[1] {
				t.Errorf("futimens: backing times %v %v, want %v", st.Atim, st.Mtim, ts2)
			}
		})
	})
}

// TestAccess: access(2) answers as it does natively for root.
func TestAccess(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, _ := fstest.Mount(t, backend)
		native := nativeDir(t)
		for _, mode := range []uint32{0o000, 0o400, 0o644, 0o755, 0o100, 0o010, 0o001} {
			for _, dir := range []string{mnt, native} {
				p := filepath.Join(dir, "f")
				os.Remove(p)
				mustWriteFile(t, p, nil, 0o600)
				if err := os.Chmod(p, os.FileMode(mode)); err != nil {
					t.Fatal(err)
				}
			}
			for _, mask := range []uint32{unix.F_OK, unix.R_OK, unix.W_OK, unix.X_OK, unix.R_OK | unix.X_OK} {
				want := unix.Faccessat(unix.AT_FDCWD, filepath.Join(native, "f"), mask, 0)
				got := unix.Faccessat(unix.AT_FDCWD, filepath.Join(mnt, "f"), mask, 0)
				if errnoOf(got) != errnoOf(want) {
					t.Errorf("access(mode %#o, mask %d): %v through the mount, %v natively", mode, mask, got, want)
				}
			}
		}
		wantErrno(t, "access missing", unix.Access(filepath.Join(mnt, "missing"), unix.F_OK), unix.ENOENT)
	})
}

// TestStatfs: statfs through the mount reports the backing filesystem.
func TestStatfs(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		var got, want unix.Statfs_t
		if err := unix.Statfs(mnt, &got); err != nil {
			t.Fatal(err)
		}
		if err := unix.Statfs(back, &want); err != nil {
			t.Fatal(err)
		}
		if got.Type != 0x65735546 { // FUSE_SUPER_MAGIC
			t.Errorf("f_type %#x, want FUSE's", got.Type)
		}
		exact := []struct {
			name      string
			got, want int64
		}{
			{"bsize", got.Bsize, want.Bsize},
			{"frsize", got.Frsize, want.Frsize},
			{"blocks", int64(got.Blocks), int64(want.Blocks)},
			{"files", int64(got.Files), int64(want.Files)},
			{"namelen", got.Namelen, want.Namelen},
		}
		for _, f := range exact {
			if f.got != f.want {
				t.Errorf("statfs %s = %d, backing %d", f.name, f.got, f.want)
			}
		}
		// Free counts move with other activity on the machine: allow 1%.
		near := func(name string, g, w uint64) {
			d := int64(g) - int64(w)
			if d < 0 {
				d = -d
			}
			if d > int64(w/100)+16 {
				t.Errorf("statfs %s = %d, backing %d", name, g, w)
			}
		}
		near("bfree", got.Bfree, want.Bfree)
		near("bavail", got.Bavail, want.Bavail)
		near("ffree", got.Ffree, want.Ffree)
	})
}
