package fs_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"evfs/fs"
	"evfs/fs/fstest"
)

// TestURingTransport serves a mount through FUSE over io_uring on every
// backend: data both ways (a write larger than one message, O_DIRECT
// reads into the entry's payload buffer), names, errnos, and the ring
// really carried the requests.
func TestURingTransport(t *testing.T) {
	enableFuseURing(t)
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, backing := fstest.Dirs(t)
		m := fstest.MountAt(t, backend, backing, mnt, fstest.Transport("uring"))

		data := make([]byte, 3<<20+123)
		rand.New(rand.NewSource(1)).Read(data)
		if err := os.WriteFile(filepath.Join(mnt, "big"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(backing, "big")); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("backing copy of the written file: %d bytes, err %v; want the %d bytes written", len(got), err, len(data))
		}
		fd, err := unix.Open(filepath.Join(mnt, "big"), unix.O_RDONLY|unix.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		buf := alignedBuf(256 << 10)
		n, err := unix.Pread(fd, buf, 64<<10)
		if err != nil || n != len(buf) || !bytes.Equal(buf, data[64<<10:64<<10+len(buf)]) {
			t.Fatalf("O_DIRECT pread of 256 KiB at 64 KiB: n=%d err=%v, bytes equal %v", n, err, n > 0 && bytes.Equal(buf[:n], data[64<<10:64<<10+n]))
		}

		dir := filepath.Join(mnt, "d")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := range 50 {
			name := "f" + strings.Repeat("x", i)
			want = append(want, name)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("readdir: %d names %q…, want %d", len(got), got[:min(3, len(got))], len(want))
		}
		if err := os.Rename(filepath.Join(dir, "f"), filepath.Join(mnt, "moved")); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(backing, "moved")); err != nil || string(b) != "f" {
			t.Fatalf("renamed file in the backing dir: %q, %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(mnt, "missing")); !errors.Is(err, unix.ENOENT) {
			t.Fatalf("stat of a missing name: %v, want ENOENT", err)
		}
		if err := os.Mkdir(dir, 0o755); !errors.Is(err, unix.EEXIST) {
			t.Fatalf("mkdir of an existing name: %v, want EEXIST", err)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		snap, err := m.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d requests through the ring", snap.RingRequests)
		// 50 creates alone are 100+ requests (LOOKUP, CREATE, WRITE, FLUSH, RELEASE).
		if snap.RingRequests < 200 {
			t.Fatalf("the ring delivered %d requests, want at least 200", snap.RingRequests)
		}
	})
}

// TestURingTransportDisabled: with the kernel's enable_uring off, mounting
// with the uring transport fails at once, saying how to turn it on, and
// leaves nothing mounted. The parameter is read from a file of the test's
// (the real one is shared with every other package's tests).
func TestURingTransportDisabled(t *testing.T) {
	param := filepath.Join(t.TempDir(), "enable_uring")
	if err := os.WriteFile(param, []byte("N\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := fs.SetURingEnabledPath(param)
	defer fs.SetURingEnabledPath(old)
	mnt, backing := fstest.Dirs(t)
	m, err := fs.NewMount(backing, mnt, fs.Config{Backend: "pool", Transport: "uring"})
	if err == nil {
		m.Unmount()
		t.Fatal("mounted with --transport uring while enable_uring is N")
	}
	if !strings.Contains(err.Error(), "echo Y > "+param) {
		t.Fatalf("error %q does not say how to enable FUSE over io_uring", err)
	}
	if mounts, _ := os.ReadFile("/proc/self/mounts"); bytes.Contains(mounts, []byte(" "+mnt+" ")) {
		t.Fatalf("%s is mounted after the failed mount", mnt)
	}
}
