package fs_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"evfs/fs/fstest"
)

type dirent struct {
	ino uint64
	typ uint8
}

// listDir reads a whole directory with getdents64 into a buffer of bufSize
// bytes, so small sizes force many READDIR round trips.
func listDir(t testing.TB, dir string, bufSize int) map[string]dirent {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ents := map[string]dirent{}
	buf := make([]byte, bufSize)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			t.Fatalf("getdents %s: %v", dir, err)
		}
		if n == 0 {
			return ents
		}
		for b := buf[:n]; len(b) > 0; {
			reclen := int(binary.NativeEndian.Uint16(b[16:]))
			name := b[19:reclen]
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
			if _, dup := ents[string(name)]; dup {
				t.Fatalf("%s listed twice", name)
			}
			ents[string(name)] = dirent{ino: binary.NativeEndian.Uint64(b), typ: b[18]}
			b = b[reclen:]
		}
	}
}

// TestReadDir lists a 10 000-entry directory completely, with READDIR and
// with READDIRPLUS, and every name, inode number and type matches the
// backing directory. The directory is made once and served by every
// mount (each mount only reads it).
func TestReadDir(t *testing.T) {
	const n = 10_000
	back := t.TempDir()
	big := filepath.Join(back, "big")
	if err := os.Mkdir(big, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		// Names of varying length, so records straddle buffers.
		name := filepath.Join(big, fmt.Sprintf("entry-%05d-%s", i, string(repeat('n', i%97))))
		var err error
		switch i % 10 {
		case 0:
			err = os.Mkdir(name, 0o755)
		case 1:
			err = os.Symlink("target", name)
		case 2:
			err = unix.Mkfifo(name, 0o644)
		default:
			var fd int
			fd, err = unix.Open(name, unix.O_CREAT|unix.O_WRONLY, 0o644)
			unix.Close(fd)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	want := listDir(t, big, 1<<16)
	if len(want) != n+2 {
		t.Fatalf("backing dir lists %d entries, want %d", len(want), n+2)
	}
	names := make([]string, 0, len(want))
	for name := range want {
		if name != "." && name != ".." {
			names = append(names, name)
		}
	}
	sort.Strings(names)

	for _, plus := range []bool{false, true} {
		mode := "readdir"
		var opts []fstest.Option
		if plus {
			mode = "readdirplus"
			opts = append(opts, fstest.ReadDirPlus)
		}
		t.Run(mode, func(t *testing.T) {
			fstest.ForEachBackend(t, func(t *testing.T, backend string) {
				mnt, _ := fstest.Dirs(t)
				m := fstest.MountAt(t, backend, back, mnt, opts...)
				// A small getdents buffer makes the kernel resume at many
				// offsets; with READDIRPLUS each resumption repeats the
				// lookups of a whole reply, so there it is one page.
				small := 600
				if plus {
					small = 4096
				}
				for _, bufSize := range []int{1 << 16, small} {
					got := listDir(t, filepath.Join(mnt, "big"), bufSize)
					if len(got) != len(want) {
						t.Errorf("buffer %d: %d entries through the mount, %d on the backing dir", bufSize, len(got), len(want))
					}
					for name, w := range want {
						g, ok := got[name]
						switch {
						case !ok:
							t.Errorf("buffer %d: %q missing from the mount's listing", bufSize, name)
						case name == "..":
							// The parent of the mount's directory is the mount root.
						case g != w:
							t.Errorf("buffer %d: %q is ino %d type %d through the mount, ino %d type %d on the backing dir", bufSize, name, g.ino, g.typ, w.ino, w.typ)
						}
					}
				}
				plusCount, plainCount := opCount(m, "READDIRPLUS"), opCount(m, "READDIR")
				if plus && plusCount == 0 || !plus && (plusCount != 0 || plainCount == 0) {
					t.Errorf("the listings were served by %d READDIR and %d READDIRPLUS requests", plainCount, plusCount)
				}
				// os.ReadDir (sorted names) agrees too, and entries stat alike.
				ents, err := os.ReadDir(filepath.Join(mnt, "big"))
				if err != nil {
					t.Fatal(err)
				}
				if len(ents) != len(names) {
					t.Fatalf("os.ReadDir: %d entries, want %d", len(ents), len(names))
				}
				for i, e := range ents {
					if e.Name() != names[i] {
						t.Fatalf("os.ReadDir entry %d is %q, want %q", i, e.Name(), names[i])
					}
					if i%500 == 0 {
						sameAttrs(t, e.Name(), lstat(t, filepath.Join(mnt, "big", e.Name())), lstat(t, filepath.Join(big, e.Name())))
					}
				}
			})
		})
	}
	// An empty directory lists "." and ".." only.
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, _ := fstest.Mount(t, backend, fstest.ReadDirPlus)
		if err := os.Mkdir(filepath.Join(mnt, "empty"), 0o755); err != nil {
			t.Fatal(err)
		}
		if got := listDir(t, filepath.Join(mnt, "empty"), 4096); len(got) != 2 {
			t.Errorf("empty directory lists %v", got)
		}
	})
}

// TestReadDirSeek: telldir/seekdir offsets returned through the mount
// resume the listing where it left off.
func TestReadDirSeek(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		for i := 0; i < 500; i++ {
			mustWriteFile(t, filepath.Join(back, fmt.Sprintf("f%03d", i)), nil, 0o644)
		}
		fd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		// Read entries one record at a time, remembering each d_off.
		type rec struct {
			name string
			off  int64
		}
		var all []rec
		buf := make([]byte, 4096)
		for {
			n, err := unix.Getdents(fd, buf)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			for b := buf[:n]; len(b) > 0; {
				reclen := int(binary.NativeEndian.Uint16(b[16:]))
				name := string(b[19:reclen])
				for i := range name {
					if name[i] == 0 {
						name = name[:i]
						break
					}
				}
				all = append(all, rec{name, int64(binary.NativeEndian.Uint64(b[8:]))})
				b = b[reclen:]
			}
		}
		if len(all) != 502 {
			t.Fatalf("listed %d entries, want 502", len(all))
		}
		for _, i := range []int{0, 1, 100, 250, 499, 500} {
			if _, err := unix.Seek(fd, all[i].off, 0); err != nil {
				t.Fatal(err)
			}
			n, err := unix.Getdents(fd, buf)
			if err != nil || n == 0 {
				t.Fatalf("getdents after seek to entry %d: %d, %v", i, n, err)
			}
			reclen := int(binary.NativeEndian.Uint16(buf[16:]))
			name := string(buf[19:reclen])
			for j := range name {
				if name[j] == 0 {
					name = name[:j]
					break
				}
			}
			if name != all[i+1].name {
				t.Errorf("after seekdir to the offset of entry %d, next is %q, want %q", i, name, all[i+1].name)
			}
		}
	})
}

// TestReadDirPlusHeldInodes: READDIRPLUS answers entries whose inodes the
// node table holds with a statx of the node's own fd, on the loop (at
// least one op done on the spot per entry on pool and uring), and the
// attributes it hands the kernel are current: files changed natively
// after they were looked up show their new size and mode through the
// mount, from the attribute cache the listing refreshed (timeouts of a
// minute, so no GETATTR is sent).
func TestReadDirPlusHeldInodes(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Dirs(t)
		const n = 20
		for i := 0; i < n; i++ {
			mustWriteFile(t, filepath.Join(back, fmt.Sprintf("f%02d", i)), []byte("x"), 0o600)
		}
		m := fstest.MountAt(t, backend, back, mnt, fstest.ReadDirPlus, fstest.WithTimeouts(time.Minute, time.Minute))
		for i := 0; i < n; i++ {
			lstat(t, filepath.Join(mnt, fmt.Sprintf("f%02d", i))) // LOOKUP: the table holds the inode
		}
		for i := 0; i < n; i++ {
			p := filepath.Join(back, fmt.Sprintf("f%02d", i))
			mustWriteFile(t, p, bytes.Repeat([]byte("y"), 100+i), 0o600)
			if err := os.Chmod(p, 0o640); err != nil {
				t.Fatal(err)
			}
		}
		before := inlineOps(t, m)
		plus := opCount(m, "READDIRPLUS")
		if got := listDir(t, mnt, 1<<16); len(got) != n+2 {
			t.Fatalf("listing: %d entries, want %d", len(got), n+2)
		}
		if opCount(m, "READDIRPLUS") == plus {
			t.Fatal("the listing sent no READDIRPLUS")
		}
		if inline := inlineOps(t, m) - before; backend != "sync" && inline < n {
			t.Errorf("%d ops done on the spot for a listing of %d held inodes, want at least %d", inline, n, n)
		}
		for i := 0; i < n; i++ {
			st := lstat(t, filepath.Join(mnt, fmt.Sprintf("f%02d", i)))
			if st.Size != int64(100+i) || st.Mode != unix.S_IFREG|0o640 {
				t.Errorf("f%02d after the listing: size %d mode %o, want %d and %o", i, st.Size, st.Mode, 100+i, unix.S_IFREG|0o640)
			}
		}
	})
}

// BenchmarkReadDirPlus1000 lists a 1 000-entry directory through the
// mount, READDIRPLUS on and every listing reaching the daemon (timeouts
// 0, no directory cache), as evfs bench's readdir-1000 does. The daemon
// runs in this process, so B/op is mostly what it allocates per listing:
// what sets how often its garbage collector runs (aio/recycle.go).
//
//	go test -run '^$' -bench ReadDirPlus1000 -benchmem ./fs
func BenchmarkReadDirPlus1000(b *testing.B) {
	for _, backend := range fstest.Backends {
		b.Run(backend, func(b *testing.B) {
			fstest.SkipUnavailable(b, backend)
			mnt, backing := fstest.Mount(b, backend, fstest.WithTimeouts(0, 0), fstest.ReadDirPlus)
			dir := filepath.Join(backing, "d")
			if err := os.Mkdir(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			for i := range 1000 {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), nil, 0o644); err != nil {
					b.Fatal(err)
				}
			}
			path := filepath.Join(mnt, "d")
			buf := make([]byte, 64<<10)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
				if err != nil {
					b.Fatal(err)
				}
				total := 0
				for {
					n, err := unix.Getdents(fd, buf)
					if err != nil {
						b.Fatal(err)
					}
					if n == 0 {
						break
					}
					total += n
				}
				unix.Close(fd)
				if total == 0 {
					b.Fatal("empty listing")
				}
			}
		})
	}
}
