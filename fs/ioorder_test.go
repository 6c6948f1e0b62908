package fs_test

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"evfs/aio"
	"evfs/fs"
	"evfs/fs/fstest"
	"evfs/loop"
)

// TestOverlappingIOInArrivalOrder: a READ that arrives while a WRITE of
// the same bytes is still in flight returns the written bytes, on every
// backend. The backend holds every write for 300 ms, and an O_DIRECT
// read (straight to evfs, no page cache) of the same page arrives
// meanwhile; run at once, the read would finish first with the old
// bytes (sqlite's WAL readers saw exactly that: fs/ioorder.go).
func TestOverlappingIOInArrivalOrder(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Dirs(t)
		old, fresh := bytes.Repeat([]byte{'a'}, 4096), bytes.Repeat([]byte{'b'}, 4096)
		mustWriteFile(t, filepath.Join(back, "f"), old, 0o644)
		m := fstest.MountAt(t, backend, back, mnt, func(c *fs.Config) {
			for _, name := range []string{"WRITE", "WRITEV"} {
				kind, _ := aio.KindByName(name)
				c.Faults = append(c.Faults, loop.Fault{Kind: kind, Delay: 300 * time.Millisecond})
			}
		})
		p := filepath.Join(mnt, "f")
		wfd, err := unix.Open(p, unix.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(wfd)
		rfd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(rfd)

		// A first write lets the kernel mark the inode as having no
		// privileges to strip (S_NOSEC): the next write sends no GETXATTR
		// of security.capability ahead of its WRITE.
		if _, err := unix.Pwrite(wfd, old, 0); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, m).Loop.InFlight
		wrote := make(chan error, 1)
		go func() {
			_, err := unix.Pwrite(wfd, fresh, 0)
			wrote <- err
		}()
		// The read must arrive after the write: wait until an op (the
		// write's: nothing else is going on) is in the backend (or the write is done, on the sync backend,
		// whose delay holds the loop itself).
		deadline := time.Now().Add(10 * time.Second)
		for snapshot(t, m).Loop.InFlight <= before && len(wrote) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the WRITE never reached the backend")
			}
			time.Sleep(time.Millisecond)
		}
		buf := alignedBuf(4096)
		n, err := unix.Pread(rfd, buf, 0)
		if err != nil || n != 4096 {
			t.Fatalf("O_DIRECT read: %d, %v", n, err)
		}
		if err := <-wrote; err != nil {
			t.Fatalf("write: %v", err)
		}
		if !bytes.Equal(buf, fresh) {
			t.Errorf("the read that arrived during the write returned %q…, want the written %q…", buf[:8], fresh[:8])
		}
		if backend != "sync" {
			if got := snapshot(t, m).OrderedIO; got != 1 {
				t.Errorf("OrderedIO = %d, want 1 (the read waited for the write)", got)
			}
		}
	})
}
