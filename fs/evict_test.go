package fs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"evfs/fs"
	"evfs/fs/fstest"
)

func openFds(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestNodeBudget: a tree far larger than the node budget is created,
// listed and removed; the daemon's fds stay near the budget because the
// oldest names are invalidated and the kernel forgets them (the fd limit
// here is 20 000, which a 20 000-file tree would otherwise exhaust).
func TestNodeBudget(t *testing.T) {
	const budget, dirs, perDir = 200, 20, 100 // 2 000 files + 20 dirs
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Dirs(t)
		before := openFds(t)
		fstest.MountAt(t, backend, back, mnt, func(c *fs.Config) { c.MaxNodes = budget })
		peak := 0
		for d := 0; d < dirs; d++ {
			dir := filepath.Join(mnt, fmt.Sprintf("d%02d", d))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for f := 0; f < perDir; f++ {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), nil, 0o644); err != nil {
					t.Fatalf("create #%d in %s: %v", f, dir, err)
				}
			}
			peak = max(peak, openFds(t)-before)
		}
		// Generous slack: invalidation runs in batches and asynchronously.
		if peak > 3*budget {
			t.Errorf("fds peaked at %d over the baseline with a budget of %d nodes", peak, budget)
		}
		n := 0
		filepath.WalkDir(mnt, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			n++
			return nil
		})
		if want := 1 + dirs + dirs*perDir; n != want {
			t.Errorf("walk saw %d entries, want %d", n, want)
		}
		if err := os.RemoveAll(filepath.Join(mnt, "d00")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(back, "d00")); !os.IsNotExist(err) {
			t.Fatalf("d00 still in the backing dir: %v", err)
		}
	})
}
