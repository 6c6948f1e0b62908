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

// TestOverlappingIOInArrivalOrder: a READ that arrives while a change to
// the same bytes is still in flight returns the changed bytes, on every
// backend, for each op that changes data. The backend holds the change's
// op for 300 ms, and an O_DIRECT read (straight to evfs, no page cache)
// of the same page arrives meanwhile; run at once, the read would finish
// first with the old bytes (sqlite's WAL readers saw exactly that with
// WRITE: fs/ioorder.go).
func TestOverlappingIOInArrivalOrder(t *testing.T) {
	const page = 4096
	old, fresh := bytes.Repeat([]byte{'a'}, page), bytes.Repeat([]byte{'b'}, page)
	cases := []struct {
		name   string
		kinds  []string // aio kinds to hold in the backend
		change func(fd, src int) error
		want   []byte // what the read of page 0 returns after the change
	}{
		{"write", []string{"WRITE", "WRITEV"}, func(fd, _ int) error {
			_, err := unix.Pwrite(fd, fresh, 0)
			return err
		}, fresh},
		{"fallocate punch hole", []string{"FALLOCATE"}, func(fd, _ int) error {
			return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, page)
		}, make([]byte, page)},
		{"truncate", []string{"FTRUNCATE"}, func(fd, _ int) error {
			return unix.Ftruncate(fd, 0)
		}, nil},
		{"copy_file_range", []string{"COPY_FILE_RANGE"}, func(fd, src int) error {
			off := int64(0)
			_, err := unix.CopyFileRange(src, &off, fd, &off, page, 0)
			return err
		}, fresh},
	}
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				mnt, back := fstest.Dirs(t)
				// Two pages: the read of page 0 gets a full page back
				// until the truncate.
				mustWriteFile(t, filepath.Join(back, "f"), append(append([]byte{}, old...), old...), 0o644)
				mustWriteFile(t, filepath.Join(back, "src"), fresh, 0o644)
				m := fstest.MountAt(t, backend, back, mnt, func(cfg *fs.Config) {
					for _, name := range c.kinds {
						kind, ok := aio.KindByName(name)
						if !ok {
							t.Fatalf("no aio kind %s", name)
						}
						cfg.Faults = append(cfg.Faults, loop.Fault{Kind: kind, Delay: 300 * time.Millisecond})
					}
				})
				wfd, err := unix.Open(filepath.Join(mnt, "f"), unix.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(wfd)
				src, err := unix.Open(filepath.Join(mnt, "src"), unix.O_RDONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(src)
				rfd, err := unix.Open(filepath.Join(mnt, "f"), unix.O_RDONLY|unix.O_DIRECT, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(rfd)
				// A first write lets the kernel mark the inode as having no
				// privileges to strip (S_NOSEC): the change then sends no
				// GETXATTR of security.capability ahead of its own request.
				if _, err := unix.Pwrite(wfd, old, 0); err != nil {
					t.Fatal(err)
				}

				before := snapshot(t, m).Loop.InFlight
				changed := make(chan error, 1)
				go func() { changed <- c.change(wfd, src) }()
				// The read must arrive after the change: wait until an op
				// (the change's: nothing else is going on) is in the
				// backend, or the change is done (the sync backend's delay
				// holds the loop itself).
				deadline := time.Now().Add(10 * time.Second)
				for snapshot(t, m).Loop.InFlight <= before && len(changed) == 0 {
					if time.Now().After(deadline) {
						t.Fatal("the change never reached the backend")
					}
					time.Sleep(time.Millisecond)
				}
				buf := alignedBuf(page)
				n, err := unix.Pread(rfd, buf, 0)
				if err != nil {
					t.Fatalf("O_DIRECT read: %d, %v", n, err)
				}
				if err := <-changed; err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if !bytes.Equal(buf[:n], c.want) {
					t.Errorf("the read that arrived during the %s returned %d bytes %q…, want %d bytes %q…",
						c.name, n, buf[:min(n, 8)], len(c.want), c.want[:min(len(c.want), 8)])
				}
				if backend != "sync" {
					if got := snapshot(t, m).OrderedIO; got != 1 {
						t.Errorf("OrderedIO = %d, want 1 (the read waited for the %s)", got, c.name)
					}
				}
			})
		}
	})
}
