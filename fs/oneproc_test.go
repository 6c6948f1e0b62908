package fs_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"evfs/fs"
	"evfs/fs/fstest"
)

func init() { fstest.RegisterHelper("oneproc", helperOneProc) }

// TestOneProc: evfs serves with GOMAXPROCS=1 (a one-CPU machine, or a
// container Go sizes to one CPU). The poll probe once called epoll_ctl as
// a raw syscall, which kept the only P while the kernel waited for the
// loop to answer FUSE_POLL: the whole process hung inside NewMount, timers
// and the test binary's own deadline included. So the daemon runs in a
// helper process, watched from here.
func TestOneProc(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, backing := helperDirs(t)
		cmd := fstest.Helper("oneproc", backend, backing, mnt)
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil || strings.TrimSpace(out.String()) != "ok" {
				t.Fatalf("helper: %v, stdout %q", err, out.String())
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("evfs with GOMAXPROCS=1 hung for 60 s (killed; %s)", abortMount(mnt))
		}
		if _, err := os.Stat(filepath.Join(backing, "f")); err != nil {
			t.Errorf("the file written through the mount is not in the backing dir: %v", err)
		}
	})
}

// helperOneProc mounts backing at mnt with GOMAXPROCS=1, writes, reads
// back and lists through the mount, unmounts, and prints "ok".
func helperOneProc(args []string) error {
	backend, backing, mnt := args[0], args[1], args[2]
	runtime.GOMAXPROCS(1)
	m, err := fs.NewMount(backing, mnt, fs.Config{Backend: backend, Workers: 4, StallThreshold: -1})
	if err != nil {
		return err
	}
	defer m.Unmount()
	want := bytes.Repeat([]byte("one P "), 10000)
	p := filepath.Join(mnt, "f")
	if err := os.WriteFile(p, want, 0o644); err != nil {
		return err
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, want) {
		return fmt.Errorf("read back %d bytes (%v), want %d", len(got), err, len(want))
	}
	if ents, err := os.ReadDir(mnt); err != nil || len(ents) != 1 || ents[0].Name() != "f" {
		return fmt.Errorf("ReadDir = %v, %v; want [f]", ents, err)
	}
	if err := m.Unmount(); err != nil {
		return err
	}
	fmt.Println("ok")
	return nil
}

// helperDirs is fstest.Dirs for a mount a helper process makes: at
// cleanup, a mount the helper left behind (it failed half-way, or hung)
// has its connection aborted and is detached.
func helperDirs(t *testing.T) (mnt, backing string) {
	mnt, backing = fstest.Dirs(t)
	t.Cleanup(func() {
		if strings.Contains(abortMount(mnt), "aborted") {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	return mnt, backing
}

// abortMount aborts the FUSE connection mounted at mnt, found through
// /proc/self/mountinfo (a stat of a hung mount would hang too).
func abortMount(mnt string) string {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err.Error()
	}
	for line := range strings.Lines(string(info)) {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == mnt {
			var major, minor int
			fmt.Sscanf(f[2], "%d:%d", &major, &minor)
			abort := fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", minor)
			return fmt.Sprintf("aborted its connection (%s: %v)", abort, os.WriteFile(abort, []byte("1"), 0))
		}
	}
	return "no mount to abort"
}
