package fs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"evfs/fs/fstest"
)

// The unprivileged caller of these tests, and a group it is not in.
const (
	userID   = 1234
	groupID  = 1234
	otherGID = 5678
)

func init() {
	fstest.RegisterHelper("do", helperDo)
}

// helperDo runs one file-system call per argument group and prints "ok"
// or "err ERRNO" for each, one per line. Calls:
//
//	create PATH MODE | mkdir PATH MODE | mkfifo PATH MODE | symlink TARGET PATH
//	chmod PATH MODE | chown PATH UID GID | unlink PATH | rename OLD NEW
//	openw PATH | write PATH | truncate PATH SIZE
func helperDo(args []string) error {
	num := func(s string) uint32 {
		n, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			panic(err)
		}
		return uint32(n)
	}
	for len(args) > 0 {
		var err error
		n := 3
		switch args[0] {
		case "create":
			var fd int
			if fd, err = unix.Open(args[1], unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, num(args[2])); err == nil {
				unix.Close(fd)
			}
		case "mkdir":
			err = unix.Mkdir(args[1], num(args[2]))
		case "mkfifo":
			err = unix.Mkfifo(args[1], num(args[2]))
		case "symlink":
			err = unix.Symlink(args[1], args[2])
		case "chmod":
			err = unix.Chmod(args[1], num(args[2]))
		case "chown":
			err = unix.Lchown(args[1], int(int32(num(args[2]))), int(int32(num(args[3]))))
			n = 4
		case "unlink":
			err = unix.Unlink(args[1])
			n = 2
		case "rename":
			err = unix.Rename(args[1], args[2])
		case "openw":
			var fd int
			if fd, err = unix.Open(args[1], unix.O_WRONLY, 0); err == nil {
				unix.Close(fd)
			}
			n = 2
		case "write":
			var fd int
			if fd, err = unix.Open(args[1], unix.O_WRONLY, 0); err == nil {
				_, err = unix.Write(fd, []byte("x"))
				unix.Close(fd)
			}
			n = 2
		case "truncate":
			err = unix.Truncate(args[1], int64(num(args[2])))
		default:
			return fmt.Errorf("do: unknown call %q", args[0])
		}
		printResult(err)
		args = args[n:]
	}
	return nil
}

// doAs runs helperDo's calls as uid:gid and returns one errno per call.
func doAs(t *testing.T, uid, gid uint32, calls ...string) []unix.Errno {
	t.Helper()
	out := fstest.RunHelper(t, fstest.HelperAs(t, uid, gid, "do", calls...))
	var errs []unix.Errno
	for _, line := range strings.Split(out, "\n") {
		if line == "ok" {
			errs = append(errs, 0)
			continue
		}
		var e int
		if _, err := fmt.Sscanf(line, "err %d", &e); err != nil {
			t.Fatalf("helper printed %q", out)
		}
		errs = append(errs, unix.Errno(e))
	}
	return errs
}

// nativeShared is a plain directory other users can reach.
func nativeShared(t *testing.T) string {
	t.Helper()
	_, d := fstest.Dirs(t)
	return d
}

// TestModeBitsExact: with umask 0 (the daemon's), the mode a caller asks
// for is the mode the backing inode gets — set-id and sticky bits
// included — and stat through the mount agrees.
func TestModeBitsExact(t *testing.T) {
	if old := unix.Umask(0); old != 0 {
		t.Fatalf("TestMain should have set umask 0, found %#o", old)
	}
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		native := nativeShared(t)
		type mk struct {
			name string
			fn   func(dir string) error
		}
		for _, c := range []mk{
			{"create-04777", func(d string) error {
				fd, err := unix.Open(filepath.Join(d, "create-04777"), unix.O_CREAT|unix.O_WRONLY, 0o4777)
				unix.Close(fd)
				return err
			}},
			{"create-0", func(d string) error {
				fd, err := unix.Open(filepath.Join(d, "create-0"), unix.O_CREAT|unix.O_WRONLY, 0)
				unix.Close(fd)
				return err
			}},
			{"create-02750", func(d string) error {
				fd, err := unix.Open(filepath.Join(d, "create-02750"), unix.O_CREAT|unix.O_WRONLY, 0o2750)
				unix.Close(fd)
				return err
			}},
			{"mknod-06777", func(d string) error {
				return unix.Mknod(filepath.Join(d, "mknod-06777"), unix.S_IFREG|0o6777, 0)
			}},
			{"mkdir-01777", func(d string) error { return unix.Mkdir(filepath.Join(d, "mkdir-01777"), 0o1777) }},
			{"mkdir-07777", func(d string) error { return unix.Mkdir(filepath.Join(d, "mkdir-07777"), 0o7777) }},
			{"mkdir-0", func(d string) error { return unix.Mkdir(filepath.Join(d, "mkdir-0"), 0) }},
			{"fifo-0", func(d string) error { return unix.Mkfifo(filepath.Join(d, "fifo-0"), 0) }},
		} {
			if err := c.fn(native); err != nil {
				t.Fatalf("native %s: %v", c.name, err)
			}
			if err := c.fn(mnt); err != nil {
				t.Fatalf("%s through the mount: %v", c.name, err)
			}
			want := lstat(t, filepath.Join(native, c.name)).Mode
			if got := lstat(t, filepath.Join(back, c.name)).Mode; got != want {
				t.Errorf("%s: backing mode %#o, native %#o", c.name, got, want)
			}
			if got := lstat(t, filepath.Join(mnt, c.name)).Mode; got != want {
				t.Errorf("%s: mode through the mount %#o, native %#o", c.name, got, want)
			}
		}
		if m := lstat(t, filepath.Join(back, "create-04777")).Mode; m != unix.S_IFREG|0o4777 {
			t.Errorf("create 04777: backing mode %#o", m)
		}
		if m := lstat(t, filepath.Join(mnt, "create-0")).Mode; m != unix.S_IFREG {
			t.Errorf("create 0: mode through the mount %#o", m)
		}
	})
}

// TestCallerOwnsWhatItCreates: files, directories, nodes and symlinks
// made by an unprivileged caller belong to that caller on the backing fs
// (the daemon is root), with the modes native creation would give.
func TestCallerOwnsWhatItCreates(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend, fstest.AllowOther)
		native := nativeShared(t)
		for _, d := range []string{filepath.Join(back, "u"), filepath.Join(native, "u")} {
			if err := os.Mkdir(d, 0o777); err != nil {
				t.Fatal(err)
			}
		}
		calls := func(dir string) []string {
			j := func(n string) string { return filepath.Join(dir, "u", n) }
			return []string{
				"create", j("file"), "0640",
				"create", j("setid"), "06755",
				"mkdir", j("dir"), "0750",
				"mkdir", j("dir-sgid"), "02775",
				"mkfifo", j("fifo"), "0600",
				"symlink", "file", j("link"),
			}
		}
		wantOK := func(where string, errs []unix.Errno) {
			for i, e := range errs {
				if e != 0 {
					t.Fatalf("%s: call %d failed: %v", where, i, e)
				}
			}
		}
		wantOK("native", doAs(t, userID, groupID, calls(native)...))
		wantOK("mount", doAs(t, userID, groupID, calls(mnt)...))
		for _, name := range []string{"file", "setid", "dir", "dir-sgid", "fifo", "link"} {
			st := lstat(t, filepath.Join(back, "u", name))
			if st.Uid != userID || st.Gid != groupID {
				t.Errorf("%s: backing owner %d:%d, want %d:%d", name, st.Uid, st.Gid, userID, groupID)
			}
			nst := lstat(t, filepath.Join(native, "u", name))
			if st.Mode != nst.Mode {
				t.Errorf("%s: backing mode %#o, native %#o", name, st.Mode, nst.Mode)
			}
			sameAttrs(t, name, lstat(t, filepath.Join(mnt, "u", name)), st)
		}

		// In a set-group-ID directory of another group the new inode
		// takes the directory's group, as natively.
		for _, d := range []string{filepath.Join(back, "g"), filepath.Join(native, "g")} {
			if err := os.Mkdir(d, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(d, 0, otherGID); err != nil {
				t.Fatal(err)
			}
			if err := unix.Chmod(d, 0o2777); err != nil {
				t.Fatal(err)
			}
		}
		gcalls := func(dir string) []string {
			return []string{"create", filepath.Join(dir, "g", "f"), "0644", "mkdir", filepath.Join(dir, "g", "d"), "0755"}
		}
		wantOK("native sgid dir", doAs(t, userID, groupID, gcalls(native)...))
		wantOK("mount sgid dir", doAs(t, userID, groupID, gcalls(mnt)...))
		for _, name := range []string{"f", "d"} {
			st, nst := lstat(t, filepath.Join(back, "g", name)), lstat(t, filepath.Join(native, "g", name))
			if st.Uid != nst.Uid || st.Gid != nst.Gid || st.Mode != nst.Mode {
				t.Errorf("g/%s: backing %d:%d %#o, native %d:%d %#o", name, st.Uid, st.Gid, st.Mode, nst.Uid, nst.Gid, nst.Mode)
			}
		}
	})
}

// TestNearPathMax: a tree whose path under the mount approaches PATH_MAX
// works, although the backing directory's prefix plus that path exceeds
// PATH_MAX (evfs never builds full backing paths).
func TestNearPathMax(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		component := strings.Repeat("d", 202)
		const depth = 20 // 20 × 203 bytes = 4060 bytes below the mount
		walk := func(root string, create bool) int {
			fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < depth; i++ {
				if create {
					if err := unix.Mkdirat(fd, component, 0o755); err != nil {
						t.Fatalf("mkdirat at depth %d: %v", i, err)
					}
				}
				next, err := unix.Openat(fd, component, unix.O_RDONLY|unix.O_DIRECTORY, 0)
				unix.Close(fd)
				if err != nil {
					t.Fatalf("openat at depth %d: %v", i, err)
				}
				fd = next
			}
			return fd
		}
		if n := len(back) + depth*(len(component)+1) + len("/deepest"); n <= unix.PathMax {
			t.Fatalf("backing path would be only %d bytes; the test needs > PATH_MAX", n)
		}
		dfd := walk(mnt, true)
		defer unix.Close(dfd)
		f, err := unix.Openat(dfd, "deepest", unix.O_CREAT|unix.O_RDWR, 0o644)
		if err != nil {
			t.Fatalf("create the deepest file: %v", err)
		}
		data := []byte("at the bottom of a very long path")
		if _, err := unix.Pwrite(f, data, 0); err != nil {
			t.Fatal(err)
		}
		unix.Close(f)
		f, err = unix.Openat(dfd, "deepest", unix.O_RDONLY, 0)
		if err != nil {
			t.Fatalf("reopen the deepest file: %v", err)
		}
		buf := make([]byte, 100)
		n, err := unix.Pread(f, buf, 0)
		unix.Close(f)
		if err != nil || string(buf[:n]) != string(data) {
			t.Errorf("read back %q, %v", buf[:n], err)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, "deepest", &st, 0); err != nil || st.Size != int64(len(data)) {
			t.Errorf("fstatat: size %d, %v", st.Size, err)
		}
		if err := unix.Renameat(dfd, "deepest", dfd, "renamed"); err != nil {
			t.Errorf("renameat deep: %v", err)
		}
		if err := unix.Symlinkat("renamed", dfd, "link"); err != nil {
			t.Errorf("symlinkat deep: %v", err)
		}
		// The same bytes are on the backing fs, at the same place.
		bfd := walk(back, false)
		defer unix.Close(bfd)
		bf, err := unix.Openat(bfd, "renamed", unix.O_RDONLY, 0)
		if err != nil {
			t.Fatalf("backing file: %v", err)
		}
		n, _ = unix.Pread(bf, buf, 0)
		unix.Close(bf)
		if string(buf[:n]) != string(data) {
			t.Errorf("backing file holds %q", buf[:n])
		}
		// A full path that long is refused by the kernel, as natively.
		full := mnt + strings.Repeat("/"+component, depth) + "/renamed"
		_, err = os.Stat(full)
		wantErrno(t, "stat of a path over PATH_MAX", err, unix.ENAMETOOLONG)
	})
}

// TestPermissionsAllowOther: on an allow_other mount (default_permissions)
// an unprivileged caller gets the errors it would get natively: EPERM for
// chmod/chown of root's file, EACCES writing it, set-group-ID dropped when
// it chmods g+s a file whose group it is not in, and no unlinking of
// another user's file in a sticky directory.
func TestPermissionsAllowOther(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend, fstest.AllowOther)
		native := nativeShared(t)
		setup := func(dir string) {
			mustWriteFile(t, filepath.Join(dir, "rootfile"), []byte("r"), 0o644)
			mustWriteFile(t, filepath.Join(dir, "userfile"), []byte("u"), 0o644)
			if err := os.Chown(filepath.Join(dir, "userfile"), userID, otherGID); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mkdir(filepath.Join(dir, "sticky"), 0o1777); err != nil {
				t.Fatal(err)
			}
			mustWriteFile(t, filepath.Join(dir, "sticky", "rootowned"), []byte("r"), 0o666)
			mustWriteFile(t, filepath.Join(dir, "sticky", "other"), []byte("o"), 0o666)
			if err := os.Chown(filepath.Join(dir, "sticky", "other"), 4321, 4321); err != nil {
				t.Fatal(err)
			}
		}
		setup(native)
		setup(back)
		calls := func(dir string) []string {
			j := func(n string) string { return filepath.Join(dir, n) }
			return []string{
				"chmod", j("rootfile"), "0666",
				"chown", j("rootfile"), strconv.Itoa(userID), "-1",
				"chown", j("userfile"), "-1", strconv.Itoa(otherGID), // no-op group: allowed
				"chown", j("userfile"), "-1", "0", // a group it is not in
				"chown", j("userfile"), "0", "-1", // giving it away
				"openw", j("rootfile"),
				"chmod", j("userfile"), "02755", // SGID silently dropped
				"unlink", j("sticky/rootowned"),
				"unlink", j("sticky/other"),
				"rename", j("sticky/other"), j("sticky/mine"),
				"create", j("sticky/own"), "0644",
				"unlink", j("sticky/own"), // own file: allowed
				"unlink", j("rootfile"), // parent not writable
			}
		}
		want := doAs(t, userID, groupID, calls(native)...)
		got := doAs(t, userID, groupID, calls(mnt)...)
		names := calls("")
		for i, j := 0, 0; i < len(want) && j < len(names); i++ {
			n := 3
			switch names[j] {
			case "chown":
				n = 4
			case "unlink", "openw":
				n = 2
			}
			if i >= len(got) || got[i] != want[i] {
				t.Errorf("%v: %v through the mount, %v natively", names[j:j+n], got[min(i, len(got)-1)], want[i])
			}
			j += n
		}
		if want[0] != unix.EPERM || want[1] != unix.EPERM || want[7] != unix.EPERM && want[7] != unix.EACCES {
			t.Errorf("native reference results unexpected: %v", want)
		}
		for _, dir := range []string{native, back} {
			st := lstat(t, filepath.Join(dir, "userfile"))
			if st.Mode != unix.S_IFREG|0o755 {
				t.Errorf("%s: userfile mode %#o after a non-member chmod 02755, want 0755", dir, st.Mode)
			}
			if _, err := os.Lstat(filepath.Join(dir, "sticky", "rootowned")); err != nil {
				t.Errorf("%s: sticky dir lost another user's file: %v", dir, err)
			}
			if st := lstat(t, filepath.Join(dir, "rootfile")); st.Mode != unix.S_IFREG|0o644 || st.Uid != 0 {
				t.Errorf("%s: rootfile changed: mode %#o uid %d", dir, st.Mode, st.Uid)
			}
		}
	})
}
