package fs

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGrowFdTable: a fresh process's fd table grows to the fd limit (or
// maxFdTable) in one call. It runs in a child process: this one's table
// has long been grown by the other tests' mounts.
func TestGrowFdTable(t *testing.T) {
	if os.Getenv("EVFS_TEST_FDTABLE_CHILD") == "1" {
		before, err := fdTableSize()
		if err != nil {
			t.Fatal(err)
		}
		top, err := growFdTable(0)
		if err != nil {
			t.Fatalf("growFdTable: %v", err)
		}
		after, err := fdTableSize()
		if err != nil {
			t.Fatal(err)
		}
		var lim unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
		want := int(min(lim.Cur, maxFdTable))
		t.Logf("FDSize %d → %d (top fd %d, limit %d)", before, after, top, lim.Cur)
		if before >= want {
			t.Fatalf("the child's table already had %d slots; cannot tell growth (want < %d)", before, want)
		}
		if after < want || top != want-1 {
			t.Fatalf("FDSize after = %d, top = %d; want ≥ %d and %d", after, top, want, want-1)
		}
		if _, err := unix.FcntlInt(uintptr(top), unix.F_GETFD, 0); err != unix.EBADF {
			t.Fatalf("fd %d left open (%v)", top, err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGrowFdTable$", "-test.v")
	cmd.Env = append(os.Environ(), "EVFS_TEST_FDTABLE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestGrowFdTable") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(string(out)))
}

// fdTableSize reads the calling process's fd table size (FDSize in
// /proc/self/status).
func fdTableSize() (int, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "FDSize:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no FDSize in /proc/self/status")
}
