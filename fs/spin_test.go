package fs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"evfs/fs"
	"evfs/fs/fstest"
)

// TestBigReplySpinFollowsAffinity: after a reply over 32 KiB the loop
// sleeps at once instead of spinning (the requester then may run on the
// loop's CPU) — unless the mount was started confined to one CPU, where
// that only costs a wakeup per request (fs/session.go, bigReply). 200
// O_DIRECT reads of 64 KiB from a tmpfs root, every op on the loop:
// started on one CPU, nearly every idle gap starts with a spin; started
// free, almost none does. The bytes read back are checked too.
func TestBigReplySpinFollowsAffinity(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatalf("sched_getaffinity: %v", err)
	}
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		for _, pinned := range []bool{true, false} {
			name := "free"
			if pinned {
				name = "one-cpu"
			}
			t.Run(name, func(t *testing.T) {
				if !pinned && all.Count() < 2 {
					t.Skip("one CPU allowed: every mount starts confined to it")
				}
				m, mnt, backing := mountOnCPUs(t, backend, pinned, all)
				const chunk, reads = 64 << 10, 200
				data := bytes.Repeat([]byte("0123456789abcdef"), 1<<20/16)
				// Written natively: a write through the mount over
				// aio.ResidentIOMax would go to a worker, and the loop
				// does not spin for 10 ms after that (loop/spin.go).
				mustWriteFile(t, filepath.Join(backing, "big"), data, 0o644)
				f, err := os.OpenFile(filepath.Join(mnt, "big"), os.O_RDONLY|unix.O_DIRECT, 0)
				if err != nil {
					t.Fatalf("open O_DIRECT: %v", err)
				}
				t.Cleanup(func() { f.Close() })
				buf, err := unix.Mmap(-1, 0, chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
				if err != nil {
					t.Fatalf("mmap: %v", err)
				}
				defer unix.Munmap(buf)

				before := snapshot(t, m).Loop.Spins
				for i := 0; i < reads; i++ {
					off := int64(i*chunk) % int64(len(data))
					n, err := unix.Pread(int(f.Fd()), buf, off)
					if err != nil || n != chunk || !bytes.Equal(buf, data[off:off+chunk]) {
						t.Fatalf("read %d at %d: n=%d err=%v, bytes match: %v", i, off, n, err, bytes.Equal(buf[:max(n, 0)], data[off:off+int64(max(n, 0))]))
					}
				}
				spins := snapshot(t, m).Loop.Spins - before
				t.Logf("%d spins for %d reads of %d KiB", spins, reads, chunk>>10)
				if pinned && spins < reads/4 {
					t.Errorf("started on one CPU: %d spins for %d big reads, want at least %d", spins, reads, reads/4)
				}
				if !pinned && spins > reads/10 {
					t.Errorf("started free: %d spins for %d big reads, want at most %d", spins, reads, reads/10)
				}
			})
		}
	})
}

// mountOnCPUs mounts a tmpfs root with the CLI's spin, started from a
// thread confined to the first CPU of all when pinned. The thread's mask
// is restored before returning.
func mountOnCPUs(t *testing.T, backend string, pinned bool, all unix.CPUSet) (m *fs.Mount, mnt, backing string) {
	t.Helper()
	spin := func(c *fs.Config) { c.Spin = fs.DefaultSpin }
	if !pinned {
		return memoryRoot(t, backend, true, spin)
	}
	defer fs.PinFirstCPU(t, all)()
	return memoryRoot(t, backend, true, spin)
}
