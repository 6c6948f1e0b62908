package fs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"evfs/fs/fstest"
)

// TestXattr: user.* attributes set, read, listed and removed through the
// mount are the backing file's; ERANGE for a short buffer, ENODATA for a
// missing name, EEXIST/ENODATA for XATTR_CREATE/XATTR_REPLACE.
func TestXattr(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		if err := unix.Setxattr(back, "user.probe", []byte("1"), 0); err != nil {
			t.Skipf("the backing fs does not support user xattrs: %v", err)
		}
		unix.Removexattr(back, "user.probe")
		mustWriteFile(t, filepath.Join(mnt, "f"), []byte("x"), 0o644)
		if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"f", "d"} {
			p, bp := filepath.Join(mnt, name), filepath.Join(back, name)
			value := []byte("value of " + name + "\x00with a NUL")
			if err := unix.Setxattr(p, "user.one", value, 0); err != nil {
				t.Fatalf("setxattr %s: %v", name, err)
			}
			if err := unix.Setxattr(p, "user.two", nil, 0); err != nil {
				t.Fatalf("setxattr empty value %s: %v", name, err)
			}
			buf := make([]byte, 256)
			n, err := unix.Getxattr(bp, "user.one", buf)
			if err != nil || !bytes.Equal(buf[:n], value) {
				t.Errorf("backing %s user.one = %q, %v", name, buf[:n], err)
			}
			n, err = unix.Getxattr(p, "user.one", buf)
			if err != nil || !bytes.Equal(buf[:n], value) {
				t.Errorf("%s user.one through the mount = %q, %v", name, buf[:n], err)
			}
			if n, err := unix.Getxattr(p, "user.one", nil); err != nil || n != len(value) {
				t.Errorf("size query: %d, %v; want %d", n, err, len(value))
			}
			if n, err := unix.Getxattr(p, "user.two", buf); err != nil || n != 0 {
				t.Errorf("empty value: %d, %v", n, err)
			}
			_, err = unix.Getxattr(p, "user.one", make([]byte, 3))
			wantErrno(t, "getxattr small buffer", err, unix.ERANGE)
			_, err = unix.Getxattr(p, "user.missing", buf)
			wantErrno(t, "getxattr missing", err, unix.ENODATA)

			// Listing.
			n, err = unix.Listxattr(p, buf)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00")
			sort.Strings(got)
			bn, _ := unix.Listxattr(bp, buf)
			want := strings.Split(strings.TrimSuffix(string(buf[:bn]), "\x00"), "\x00")
			sort.Strings(want)
			if strings.Join(got, ",") != strings.Join(want, ",") || !contains(got, "user.one") || !contains(got, "user.two") {
				t.Errorf("listxattr %s = %q, backing %q", name, got, want)
			}
			if sz, err := unix.Listxattr(p, nil); err != nil || sz != n {
				t.Errorf("listxattr size query: %d, %v; want %d", sz, err, n)
			}
			_, err = unix.Listxattr(p, make([]byte, 3))
			wantErrno(t, "listxattr small buffer", err, unix.ERANGE)

			// Flags.
			wantErrno(t, "XATTR_CREATE existing", unix.Setxattr(p, "user.one", []byte("v"), unix.XATTR_CREATE), unix.EEXIST)
			wantErrno(t, "XATTR_REPLACE missing", unix.Setxattr(p, "user.three", []byte("v"), unix.XATTR_REPLACE), unix.ENODATA)
			if err := unix.Setxattr(p, "user.one", []byte("replaced"), unix.XATTR_REPLACE); err != nil {
				t.Errorf("XATTR_REPLACE: %v", err)
			}
			if n, _ := unix.Getxattr(bp, "user.one", buf); string(buf[:n]) != "replaced" {
				t.Errorf("after replace: %q", buf[:n])
			}
			// Large value (fits in one ext4 block).
			large := bytes.Repeat([]byte("0123456789abcdef"), 200)
			if err := unix.Setxattr(p, "user.large", large, 0); err != nil {
				t.Errorf("3200-byte value: %v", err)
			} else if n, err := unix.Getxattr(p, "user.large", make([]byte, 4096)); err != nil || n != len(large) {
				t.Errorf("3200-byte value read back: %d, %v", n, err)
			}

			// Removal.
			if err := unix.Removexattr(p, "user.one"); err != nil {
				t.Errorf("removexattr: %v", err)
			}
			_, err = unix.Getxattr(bp, "user.one", buf)
			wantErrno(t, "backing getxattr after remove", err, unix.ENODATA)
			wantErrno(t, "removexattr missing", unix.Removexattr(p, "user.one"), unix.ENODATA)
			// Through an fd too.
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Fsetxattr(int(f.Fd()), "user.fd", []byte("via fd"), 0); err != nil {
				t.Errorf("fsetxattr: %v", err)
			}
			if n, err := unix.Fgetxattr(int(f.Fd()), "user.fd", buf); err != nil || string(buf[:n]) != "via fd" {
				t.Errorf("fgetxattr: %q, %v", buf[:n], err)
			}
			f.Close()
		}
		// A name outside the known namespaces is refused as natively.
		native := nativeDir(t)
		mustWriteFile(t, filepath.Join(native, "f"), nil, 0o644)
		werr := unix.Setxattr(filepath.Join(native, "f"), "bogus.name", []byte("v"), 0)
		wantErrno(t, "setxattr bogus namespace", unix.Setxattr(filepath.Join(mnt, "f"), "bogus.name", []byte("v"), 0), errnoOf(werr))
		// user.* on a symlink is refused (EPERM), as natively.
		if err := os.Symlink("f", filepath.Join(mnt, "l")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("f", filepath.Join(native, "l")); err != nil {
			t.Fatal(err)
		}
		werr = unix.Lsetxattr(filepath.Join(native, "l"), "user.x", []byte("v"), 0)
		wantErrno(t, "lsetxattr user.* on symlink", unix.Lsetxattr(filepath.Join(mnt, "l"), "user.x", []byte("v"), 0), errnoOf(werr))
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
