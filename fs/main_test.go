package fs_test

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"evfs/fs/fstest"
)

// TestMain runs subprocess helpers when asked to (see fstest.Helper), and
// otherwise the tests, as the daemon would run: umask 0, so modes reach
// the backing files exactly as callers asked.
func TestMain(m *testing.M) {
	unix.Umask(0)
	fstest.HelperMain()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "evfs fs tests mount FUSE file systems and must run as root")
		os.Exit(1)
	}
	code := m.Run()
	fstest.CleanupHelpers()
	os.Exit(code)
}
