package fs_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"evfs/fs/fstest"
)

// TestKillSuidgidOnUnprivilegedWrite: evfs negotiates
// FUSE_HANDLE_KILLPRIV_V2, so clearing set-id bits when an unprivileged
// caller writes or truncates is the daemon's job. The result must match
// the native file system's.
func TestKillSuidgidOnUnprivilegedWrite(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Dirs(t)
		m := fstest.MountAt(t, backend, back, mnt, fstest.AllowOther)
		native := nativeShared(t)
		cases := []struct {
			name string
			mode uint32
			call []string
		}{
			{"write suid+sgid+gx", 06775, []string{"write"}},
			{"write sgid without gx", 02764, []string{"write"}},
			{"truncate suid", 04766, []string{"truncate", "1"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				name := filepath.Base(t.Name())
				var got [2]uint32
				for i, dir := range []string{native, mnt} {
					p := filepath.Join(dir, name)
					mustWriteFile(t, p, []byte("data"), 0o644)
					if err := os.Chown(p, userID, groupID); err != nil {
						t.Fatal(err)
					}
					if err := os.Chmod(p, os.FileMode(c.mode&0o777)|modeBits(c.mode)); err != nil {
						t.Fatal(err)
					}
					call := append([]string{c.call[0], p}, c.call[1:]...)
					if errs := doAs(t, userID, groupID, call...); errs[0] != 0 {
						t.Fatalf("%s as uid %d in %s: %v", c.call[0], userID, dir, errs[0])
					}
					var st unix.Stat_t
					if dir == mnt {
						p = filepath.Join(back, name) // what reached the backing fs
					}
					if err := unix.Stat(p, &st); err != nil {
						t.Fatal(err)
					}
					got[i] = st.Mode & 07777
				}
				if got[0] != got[1] {
					t.Fatalf("mode after %s: native %#o, evfs backing %#o", c.call[0], got[0], got[1])
				}
			})
		}
		// No write costs a GETXATTR(security.capability) round trip (the
		// kernel sends one per WRITE without KILLPRIV_V2).
		before := opCount(m, "GETXATTR")
		p := filepath.Join(mnt, "rootfile")
		mustWriteFile(t, p, []byte("x"), 0o644)
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			if _, err := f.WriteAt([]byte("y"), int64(i)); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
		// Measured: 21 without KILLPRIV_V2, 2 with it (the kernel checks
		// once, then marks the inode S_NOSEC).
		if n := opCount(m, "GETXATTR") - before; n > 3 {
			t.Errorf("20 writes caused %d GETXATTR requests, want at most 3", n)
		}

	})
}

func modeBits(m uint32) os.FileMode {
	var b os.FileMode
	if m&unix.S_ISUID != 0 {
		b |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		b |= os.ModeSetgid
	}
	return b
}
