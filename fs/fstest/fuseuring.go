package fstest

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// FuseURingParam is the fuse module parameter that allows FUSE over
// io_uring (evfs mount --transport uring); the kernel reads it at each
// mount's INIT.
const FuseURingParam = "/sys/module/fuse/parameters/enable_uring"

// EnableFuseURing turns FuseURingParam on for the rest of the test (root
// only) and puts the old value back in cleanup; an error says why the
// transport cannot run here. Mounts made meanwhile keep their ring. It
// writes only when the parameter is off: .ci/run turns it on first, so
// that packages tested side by side never see it switched off under
// them.
func EnableFuseURing(t testing.TB) error {
	t.Helper()
	old, err := os.ReadFile(FuseURingParam)
	if err != nil {
		return fmt.Errorf("this kernel has no FUSE over io_uring (%w)", err)
	}
	if strings.TrimSpace(string(old)) == "Y" {
		return nil
	}
	if err := os.WriteFile(FuseURingParam, []byte("Y"), 0o644); err != nil {
		return fmt.Errorf("enable FUSE over io_uring: %w", err)
	}
	t.Cleanup(func() { os.WriteFile(FuseURingParam, old, 0o644) })
	return nil
}
