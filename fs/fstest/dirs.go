package fstest

import (
	"os"
	"path/filepath"
	"testing"
)

// Dirs makes an empty backing directory and mountpoint (mode 0755, under
// one temporary directory, all reachable by other users) without
// mounting, for tests that must fill the backing directory first (mount
// them with MountAt) or want a native directory to compare with.
func Dirs(t testing.TB) (mnt, backing string) {
	t.Helper()
	base := t.TempDir()
	backing = filepath.Join(base, "backing")
	mnt = filepath.Join(base, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	openPath(t, mnt)
	return mnt, backing
}
