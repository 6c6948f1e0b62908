package fstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Subprocesses: tests that need another process (a lock contender, a
// caller with another uid) re-execute the test binary. TestMain calls
// HelperMain first; when the binary was started as a helper it runs the
// named action with the remaining arguments and exits.

const helperEnv = "EVFS_TEST_HELPER"

var helpers = map[string]func(args []string) error{}

// RegisterHelper makes fn runnable in a subprocess as action name.
func RegisterHelper(name string, fn func(args []string) error) {
	if _, dup := helpers[name]; dup {
		panic("fstest: helper " + name + " registered twice")
	}
	helpers[name] = fn
}

// HelperMain runs the helper action if this process is a helper, and
// then exits; otherwise it returns at once. Call it first in TestMain.
func HelperMain() {
	name := os.Getenv(helperEnv)
	if name == "" {
		return
	}
	fn := helpers[name]
	if fn == nil {
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
		os.Exit(2)
	}
	if err := fn(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if e, ok := err.(ExitError); ok {
			os.Exit(int(e))
		}
		os.Exit(1)
	}
	os.Exit(0)
}

// ExitError is a helper result that exits with the given status and no
// further complaint (for example the errno of a failed call).
type ExitError int

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Helper returns a command that runs helper action name with args in a
// new process of the test binary.
func Helper(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	// A race-enabled binary sleeps 1 s at exit by default; helpers are
	// short-lived and many.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), helperEnv+"="+name, "GORACE="+gorace)
	cmd.Stderr = os.Stderr
	return cmd
}

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// HelperAs is Helper for a process running as uid and gid (with no
// supplementary groups). The test binary usually lives in a directory
// only root may enter, so it is first copied, once per process, to a
// world-readable temporary directory (removed by CleanupHelpers).
func HelperAs(t testing.TB, uid, gid uint32, name string, args ...string) *exec.Cmd {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "evfs-helper-")
		if binErr != nil {
			return
		}
		if binErr = os.Chmod(binDir, 0o755); binErr != nil {
			return
		}
		var data []byte
		if data, binErr = os.ReadFile(os.Args[0]); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, filepath.Base(os.Args[0]))
		binErr = os.WriteFile(binPath, data, 0o755)
	})
	if binErr != nil {
		t.Fatalf("copy test binary for uid %d: %v", uid, binErr)
	}
	cmd := Helper(name, args...)
	cmd.Path = binPath
	cmd.Args[0] = binPath
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}},
	}
	return cmd
}

// CleanupHelpers removes the copy HelperAs made; call it at the end of
// TestMain.
func CleanupHelpers() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// RunHelper runs helper action name to completion and returns its
// trimmed standard output; a non-zero exit fails t.
func RunHelper(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %v: %v (stdout %q)", cmd.Args, err, out)
	}
	return strings.TrimSpace(string(out))
}
