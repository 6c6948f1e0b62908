package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// manyOpenFiles is DESIGN.md's memory target: RSS under 100 MiB with this
// many files open through one mount.
const manyOpenFiles = 10_000

// openMany serves a backing directory of n small files (file i holds
// "i\n") with the binary, opens every one through the mount and reads
// it back, and returns the daemon and the open files. The files are
// closed at cleanup, before the daemon is killed: a process that exits
// holding files of a mount whose daemon is gone would wait forever for
// their FLUSH.
func openMany(tb testing.TB, n int, extra ...string) (mnt string, daemon int, files []*os.File, took time.Duration) {
	tb.Helper()
	backing, mnt := mkdirs(tb)
	for i := range n {
		if err := os.WriteFile(filepath.Join(backing, fmt.Sprintf("f%05d", i)), []byte(strconv.Itoa(i)+"\n"), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	cmd := serve(tb, backing, mnt, extra...)
	tb.Cleanup(func() {
		for _, f := range files {
			f.Close()
		}
	})
	buf := make([]byte, 16)
	start := time.Now()
	for i := range n {
		f, err := os.Open(filepath.Join(mnt, fmt.Sprintf("f%05d", i)))
		if err != nil {
			tb.Fatalf("open of file %d of %d: %v", i+1, n, err)
		}
		files = append(files, f)
		k, err := f.Read(buf)
		if err != nil || string(buf[:k]) != strconv.Itoa(i)+"\n" {
			tb.Fatalf("file %d read %q, %v", i, buf[:k], err)
		}
	}
	return mnt, cmd.Process.Pid, files, time.Since(start)
}

// procFds is how many fds process pid holds.
func procFds(tb testing.TB, pid int) int {
	tb.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

// procRSS is process pid's resident set in bytes (VmRSS).
func procRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS in /proc/PID/status")
	return 0
}

// TestTenThousandOpenFiles: the daemon keeps 10 000 files open at once
// under this machine's fd limit (20 000, which two fds per open file did
// not fit), each read back through the mount. Once a quarter of the
// limit in files is open, files opened share their node's fd (fs/lend.go): `evfs stats` counts 10 000
// handles and only about 5 000 node fds of their own. Closing the last
// 100 files (which share) gives their nodes O_PATH fds of their own
// again.
func TestTenThousandOpenFiles(t *testing.T) {
	mnt, pid, files, _ := openMany(t, manyOpenFiles)
	const wantFds = 15_200 // two fds per file up to 5 000 files, then one
	if fds := procFds(t, pid); fds > wantFds {
		t.Fatalf("daemon holds %d fds for %d open files, want at most %d", fds, len(files), wantFds)
	}
	_, doc := statsJSON(t, mnt)
	tb := doc.Tables
	if tb.Handles != manyOpenFiles || tb.Nodes != manyOpenFiles+1 || tb.NodeFds > 5_100 || tb.NodeFds < 4_900 {
		t.Fatalf("stats tables with %d files open: %+v, want %d handles, %d nodes, about 5 000 node fds",
			manyOpenFiles, tb, manyOpenFiles, manyOpenFiles+1)
	}
	for _, f := range files[len(files)-100:] {
		f.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, doc = statsJSON(t, mnt)
		if doc.Tables.Handles == manyOpenFiles-100 && doc.Tables.NodeFds == tb.NodeFds+100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats tables after 100 closes: %+v, want %d handles, %d node fds", doc.Tables, manyOpenFiles-100, tb.NodeFds+100)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkOpenFiles measures the daemon with 10 000 files open through
// its mount: RSS (DESIGN.md: under 100 MiB), fds, and the time per open
// (LOOKUP + OPEN + a 4-byte READ). Each iteration mounts afresh; run with
// -benchtime=1x:
//
//	go test -run '^$' -bench OpenFiles -benchtime=1x ./cmd/evfs
func BenchmarkOpenFiles(b *testing.B) {
	for range b.N {
		_, pid, files, took := openMany(b, manyOpenFiles)
		b.ReportMetric(float64(procRSS(b, pid))/(1<<20), "rss-MiB")
		b.ReportMetric(float64(procFds(b, pid)), "daemon-fds")
		b.ReportMetric(float64(took.Microseconds())/float64(len(files)), "µs/open")
	}
}
