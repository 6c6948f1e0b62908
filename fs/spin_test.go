package fs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

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

// TestLoopFollowsClient: with the daemon free to run on any CPU and one
// client making requests one at a time, the loop moves its thread to the
// client's CPU (fs/follow.go, loop/follow.go). The client's thread is
// pinned to one CPU, and every 100 ms the loop's thread is pushed onto
// another; the loop must come back (Stats.Moves) — and never move with
// NoFollow. Every stat's answer is checked.
func TestLoopFollowsClient(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatalf("sched_getaffinity: %v", err)
	}
	var cpus []int
	for c := 0; c < 1024 && len(cpus) < 2; c++ {
		if all.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < 2 {
		t.Skip("one CPU allowed: nowhere to follow a client to")
	}
	away, client := cpus[0], cpus[1]
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		for _, follow := range []bool{true, false} {
			name := "follow"
			if !follow {
				name = "nofollow"
			}
			t.Run(name, func(t *testing.T) {
				m, mnt, backing := memoryRoot(t, backend, true, func(c *fs.Config) {
					c.Spin = fs.DefaultSpin
					c.NoFollow = !follow
				})
				mustWriteFile(t, filepath.Join(backing, "f"), []byte("12345"), 0o644)
				path := filepath.Join(mnt, "f")

				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var one unix.CPUSet
				one.Set(client)
				if err := unix.SchedSetaffinity(0, &one); err != nil {
					t.Fatalf("pinning the client: %v", err)
				}
				defer unix.SchedSetaffinity(0, &all)

				push := func() { // the loop's current thread onto the other CPU, then free
					m.Loop.Post("push", func() {
						var to unix.CPUSet
						to.Set(away)
						unix.SchedSetaffinity(0, &to)
						unix.SchedSetaffinity(0, &all)
					})
				}
				const want = 3
				start := time.Now()
				pushes, moves := 0, uint64(0)
				for time.Since(start) < 2*time.Second && (!follow || moves < want) {
					if time.Since(start) > time.Duration(pushes)*100*time.Millisecond {
						push()
						pushes++
					}
					var st unix.Stat_t
					if err := unix.Stat(path, &st); err != nil || st.Size != 5 {
						t.Fatalf("stat through the mount: size %d, err %v", st.Size, err)
					}
					moves = snapshot(t, m).Loop.Moves
				}
				t.Logf("%d moves after %d pushes in %v", moves, pushes, time.Since(start).Round(time.Millisecond))
				if follow && moves < want {
					t.Errorf("the loop moved to its client's CPU %d times in 2 s, pushed away %d times; want at least %d", moves, pushes, want)
				}
				if !follow && moves != 0 {
					t.Errorf("NoFollow: the loop moved %d times, want 0", moves)
				}
			})
		}
	})
}
