package fs_test

// Security properties of a real mount (fs.NewMount through fstest, with
// AllowOther, which always brings default_permissions): another user gets
// exactly what the modes allow; a symlink in the backing directory that
// points outside it is served as a symlink and never followed by the
// daemon; ".." at the mount root stays on the mount's side.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"evfs/fs/fstest"
)

// secNobody is the unprivileged caller: nobody/nogroup.
const secNobody = 65534

func init() {
	fstest.RegisterHelper("security", secHelper)
}

// secHelper runs calls and prints one line per call: "ok [DATA]" or
// "err ERRNO". Calls: read PATH | create PATH | mkdir PATH | stat PATH |
// write PATH (open O_WRONLY|O_TRUNC) | opennofollow PATH.
func secHelper(args []string) error {
	for len(args) >= 2 {
		call, path := args[0], args[1]
		args = args[2:]
		var err error
		data := ""
		switch call {
		case "read":
			var b []byte
			b, err = os.ReadFile(path)
			data = string(b)
		case "create":
			var fd int
			if fd, err = unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644); err == nil {
				unix.Close(fd)
			}
		case "mkdir":
			err = unix.Mkdir(path, 0o755)
		case "stat":
			var st unix.Stat_t
			err = unix.Stat(path, &st)
		case "write":
			var fd int
			if fd, err = unix.Open(path, unix.O_WRONLY|unix.O_TRUNC, 0); err == nil {
				unix.Close(fd)
			}
		case "opennofollow":
			var fd int
			if fd, err = unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW, 0); err == nil {
				unix.Close(fd)
			}
		default:
			return fmt.Errorf("security helper: unknown call %q", call)
		}
		var e unix.Errno
		switch {
		case err == nil:
			fmt.Printf("ok %s\n", data)
		case errors.As(err, &e):
			fmt.Printf("err %d\n", int(e))
		default:
			return err
		}
	}
	return nil
}

// secResult is one call of secHelper's: errno (0 for success) and data.
type secResult struct {
	errno unix.Errno
	data  string
}

// secAs runs calls (pairs of call, path) as uid:gid.
func secAs(t *testing.T, uid, gid uint32, calls ...string) []secResult {
	t.Helper()
	out := fstest.RunHelper(t, fstest.HelperAs(t, uid, gid, "security", calls...))
	var res []secResult
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "ok"); ok {
			res = append(res, secResult{data: strings.TrimPrefix(rest, " ")})
			continue
		}
		var e int
		if _, err := fmt.Sscanf(line, "err %d", &e); err != nil {
			t.Fatalf("security helper printed %q", out)
		}
		res = append(res, secResult{errno: unix.Errno(e)})
	}
	if len(res) != len(calls)/2 {
		t.Fatalf("security helper: %d results for %d calls: %q", len(res), len(calls)/2, out)
	}
	return res
}

func secWrite(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func secErrno(err error) unix.Errno {
	var e unix.Errno
	if err == nil {
		return 0
	}
	if errors.As(err, &e) {
		return e
	}
	return ^unix.Errno(0)
}

// TestSecurityOtherUser: with allow_other (and so default_permissions) a
// user other than the daemon's gets what the modes give it and nothing
// more, although the daemon runs as root.
func TestSecurityOtherUser(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Dirs(t)
		secWrite(t, filepath.Join(back, "secret"), "root only", 0o600)
		secWrite(t, filepath.Join(back, "public"), "for everyone", 0o644)
		if err := os.Mkdir(filepath.Join(back, "rootdir"), 0o755); err != nil {
			t.Fatal(err)
		}
		secWrite(t, filepath.Join(back, "rootdir", "inner"), "inner", 0o644)
		fstest.MountAt(t, backend, back, mnt, fstest.AllowOther)

		res := secAs(t, secNobody, secNobody,
			"read", filepath.Join(mnt, "secret"),
			"write", filepath.Join(mnt, "secret"),
			"read", filepath.Join(mnt, "public"),
			"write", filepath.Join(mnt, "public"),
			"create", filepath.Join(mnt, "rootdir", "new"),
			"mkdir", filepath.Join(mnt, "rootdir", "newdir"),
			"create", filepath.Join(mnt, "new"),
			"read", filepath.Join(mnt, "rootdir", "inner"),
			"stat", filepath.Join(mnt, "rootdir", "inner"),
		)
		want := []secResult{
			{errno: unix.EACCES},
			{errno: unix.EACCES},
			{data: "for everyone"},
			{errno: unix.EACCES},
			{errno: unix.EACCES},
			{errno: unix.EACCES},
			{errno: unix.EACCES},
			{data: "inner"},
			{},
		}
		for i, w := range want {
			if res[i] != w {
				t.Errorf("call %d as uid %d: got %+v, want %+v", i, secNobody, res[i], w)
			}
		}
		// Nothing was created or truncated on the backing side.
		for _, p := range []string{"rootdir/new", "rootdir/newdir", "new"} {
			if _, err := os.Lstat(filepath.Join(back, p)); !os.IsNotExist(err) {
				t.Errorf("backing %s: %v, want it absent", p, err)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(back, "secret")); string(b) != "root only" {
			t.Errorf("backing secret now holds %q", b)
		}
		if b, _ := os.ReadFile(filepath.Join(back, "public")); string(b) != "for everyone" {
			t.Errorf("backing public now holds %q", b)
		}
		// Root still can.
		if b, err := os.ReadFile(filepath.Join(mnt, "secret")); err != nil || string(b) != "root only" {
			t.Errorf("root reading secret: %q, %v", b, err)
		}
	})
}

// TestSecuritySymlinkOutside: a symlink in the backing directory that
// points outside it (at /etc, at a root-only directory and file) is
// served as a symlink — its target text, not its target — and the daemon
// never follows it: operations on the link's own path (lsetxattr, chmod
// and chown with AT_SYMLINK_NOFOLLOW, open O_NOFOLLOW, utimes, rename,
// unlink) act on the link or fail, and never touch the target.
func TestSecuritySymlinkOutside(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Dirs(t)
		outside := filepath.Join(t.TempDir(), "outside")
		if err := os.Mkdir(outside, 0o700); err != nil {
			t.Fatal(err)
		}
		secret := filepath.Join(outside, "secret")
		secWrite(t, secret, "outside secret", 0o600)
		for name, target := range map[string]string{"etc": "/etc", "out": outside, "fout": secret} {
			if err := os.Symlink(target, filepath.Join(back, name)); err != nil {
				t.Fatal(err)
			}
		}
		var etcBefore, outBefore, secretBefore unix.Stat_t
		unix.Stat("/etc", &etcBefore)
		unix.Stat(outside, &outBefore)
		unix.Stat(secret, &secretBefore)
		t.Cleanup(func() {
			// If the daemon ever followed the link, undo it.
			unix.Removexattr("/etc", "user.evfs-test")
		})
		fstest.MountAt(t, backend, back, mnt, fstest.AllowOther)

		for name, target := range map[string]string{"etc": "/etc", "out": outside, "fout": secret} {
			link := filepath.Join(mnt, name)
			st := lstat(t, link)
			if st.Mode&unix.S_IFMT != unix.S_IFLNK {
				t.Errorf("lstat %s: mode %#o, want a symlink", link, st.Mode)
			}
			if got, err := os.Readlink(link); err != nil || got != target {
				t.Errorf("readlink %s: %q, %v; want %q", link, got, err, target)
			}
			// open O_NOFOLLOW: ELOOP, for reading and for truncating.
			_, err := unix.Open(link, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
			wantErrno(t, "open O_NOFOLLOW "+name, err, unix.ELOOP)
			_, err = unix.Open(link, unix.O_WRONLY|unix.O_TRUNC|unix.O_NOFOLLOW, 0)
			wantErrno(t, "open O_WRONLY|O_TRUNC|O_NOFOLLOW "+name, err, unix.ELOOP)
			// lsetxattr of a user attribute on a symlink: EPERM, as natively.
			err = unix.Lsetxattr(link, "user.evfs-test", []byte("x"), 0)
			wantErrno(t, "lsetxattr "+name, err, unix.EPERM)
			err = unix.Lremovexattr(link, "user.evfs-test")
			if e := secErrno(err); e != unix.EPERM && e != unix.ENODATA {
				t.Errorf("lremovexattr %s: %v, want EPERM or ENODATA", name, err)
			}
			if _, err := unix.Lgetxattr(link, "user.evfs-test", make([]byte, 10)); secErrno(err) != unix.ENODATA {
				t.Errorf("lgetxattr %s: %v, want ENODATA", name, err)
			}
		}

		// chmod with AT_SYMLINK_NOFOLLOW: what the native call does to a
		// symlink (EOPNOTSUPP on Linux), never a chmod of the target.
		nativeLink := filepath.Join(t.TempDir(), "l")
		if err := os.Symlink(secret, nativeLink); err != nil {
			t.Fatal(err)
		}
		want := secErrno(unix.Fchmodat(unix.AT_FDCWD, nativeLink, 0o777, unix.AT_SYMLINK_NOFOLLOW))
		for _, name := range []string{"fout", "out"} {
			err := unix.Fchmodat(unix.AT_FDCWD, filepath.Join(mnt, name), 0o777, unix.AT_SYMLINK_NOFOLLOW)
			wantErrno(t, "fchmodat AT_SYMLINK_NOFOLLOW "+name, err, want)
		}
		// lchown and lutimes change the link.
		fout := filepath.Join(mnt, "fout")
		if err := unix.Lchown(fout, 1234, 1234); err != nil {
			t.Errorf("lchown fout: %v", err)
		}
		ts := []unix.Timespec{{Sec: 1000}, {Sec: 1000}}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, fout, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Errorf("lutimes fout: %v", err)
		}
		if st := lstat(t, filepath.Join(back, "fout")); st.Uid != 1234 || st.Mtim.Sec != 1000 {
			t.Errorf("backing link after lchown/lutimes: uid %d mtime %d", st.Uid, st.Mtim.Sec)
		}
		// Another user following the link gets the target's permissions
		// (here: none), checked by the kernel in the caller's namespace.
		res := secAs(t, secNobody, secNobody,
			"read", fout,
			"write", fout,
			"opennofollow", fout,
			"stat", filepath.Join(mnt, "out", "secret"),
		)
		for i, w := range []unix.Errno{unix.EACCES, unix.EACCES, unix.ELOOP, unix.EACCES} {
			if res[i].errno != w {
				t.Errorf("call %d as uid %d through the link: %+v, want %v", i, secNobody, res[i], w)
			}
		}
		// rename and unlink act on the link.
		if err := os.Rename(fout, filepath.Join(mnt, "fout2")); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(mnt, "fout2")); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(mnt, "out")); err != nil {
			t.Fatal(err)
		}

		// The targets are exactly as they were.
		var etcAfter, outAfter, secretAfter unix.Stat_t
		unix.Stat("/etc", &etcAfter)
		unix.Stat(outside, &outAfter)
		unix.Stat(secret, &secretAfter)
		for _, c := range []struct {
			name          string
			before, after unix.Stat_t
		}{{"/etc", etcBefore, etcAfter}, {outside, outBefore, outAfter}, {secret, secretBefore, secretAfter}} {
			b, a := c.before, c.after
			if b.Ino != a.Ino || b.Mode != a.Mode || b.Uid != a.Uid || b.Gid != a.Gid || b.Mtim != a.Mtim {
				t.Errorf("%s changed: mode %#o→%#o uid %d→%d mtime %v→%v", c.name, b.Mode, a.Mode, b.Uid, a.Uid, b.Mtim, a.Mtim)
			}
		}
		if secretAfter.Ctim != secretBefore.Ctim {
			t.Errorf("%s: ctime changed (something touched its inode)", secret)
		}
		if b, err := os.ReadFile(secret); err != nil || string(b) != "outside secret" {
			t.Errorf("%s: %q, %v", secret, b, err)
		}
		for _, p := range []string{"/etc", outside, secret} {
			if _, err := unix.Getxattr(p, "user.evfs-test", nil); secErrno(err) != unix.ENODATA && secErrno(err) != unix.EOPNOTSUPP {
				t.Errorf("%s has the attribute set through the link: %v", p, err)
			}
		}
	})
}

// TestSecurityDotDotAtRoot: ".." at the mount root is the mountpoint's
// parent — the kernel's business, never a request the daemon could
// answer with the backing directory's parent.
func TestSecurityDotDotAtRoot(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		base := t.TempDir()
		// The backing directory and the mountpoint have different parents.
		back := filepath.Join(base, "b-side", "backing")
		mnt := filepath.Join(base, "m-side", "mnt")
		for _, d := range []string{back, mnt} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Mkdir(filepath.Join(back, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		secWrite(t, filepath.Join(base, "b-side", "beside-backing"), "b", 0o644)
		fstest.MountAt(t, backend, back, mnt, fstest.AllowOther)

		mParent := lstat(t, filepath.Join(base, "m-side"))
		bParent := lstat(t, filepath.Join(base, "b-side"))
		same := func(a, b unix.Stat_t) bool { return a.Dev == b.Dev && a.Ino == b.Ino }
		for _, p := range []string{mnt + "/..", mnt + "/sub/../..", mnt + "/./.."} {
			var st unix.Stat_t
			if err := unix.Stat(p, &st); err != nil {
				t.Errorf("stat %s: %v", p, err)
				continue
			}
			if !same(st, mParent) || same(st, bParent) {
				t.Errorf("stat %s: dev %d ino %d; want the mountpoint's parent (dev %d ino %d), not the backing's (ino %d)",
					p, st.Dev, st.Ino, mParent.Dev, mParent.Ino, bParent.Ino)
			}
		}
		// openat(root of the mount, "..") and deeper.
		rootFd, err := unix.Open(mnt, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(rootFd)
		for _, rel := range []string{"..", "sub/../..", "../mnt/.."} {
			fd, err := unix.Openat(rootFd, rel, unix.O_PATH|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Errorf("openat(mount root, %q): %v", rel, err)
				continue
			}
			var st unix.Stat_t
			unix.Fstat(fd, &st)
			unix.Close(fd)
			if !same(st, mParent) {
				t.Errorf("openat(mount root, %q) is dev %d ino %d, want the mountpoint's parent", rel, st.Dev, st.Ino)
			}
		}
		// A name next to the backing directory is not reachable.
		_, err = unix.Openat(rootFd, "../beside-backing", unix.O_RDONLY, 0)
		wantErrno(t, "openat(mount root, ../beside-backing)", err, unix.ENOENT)
		// RESOLVE_BENEATH from the mount root refuses to climb at all.
		how := unix.OpenHow{Flags: unix.O_PATH, Resolve: unix.RESOLVE_BENEATH}
		_, err = unix.Openat2(rootFd, "..", &how)
		wantErrno(t, "openat2(mount root, .., RESOLVE_BENEATH)", err, unix.EXDEV)
		// The mount's own ".." entry, as readdir lists it, names nothing
		// a lookup could reach: it is not served as a child.
		names, err := os.ReadDir(mnt)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range names {
			if e.Name() == ".." || e.Name() == "beside-backing" {
				t.Errorf("readdir of the mount root lists %q", e.Name())
			}
		}
	})
}
