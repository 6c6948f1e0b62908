package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/stats.golden.json")

// statsSocket is where the daemon serving mnt puts its control socket
// (the daemon runs as root, so under /run/evfs).
func statsSocket(t *testing.T, mnt string) string {
	t.Helper()
	mp, err := canonicalMountpoint(mnt)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(controlRunDir, controlName(mp))
}

// mountForStats serves a fresh backing directory (serve from cli_test.go)
// and makes sure its control socket is gone after the test, even if the
// daemon was killed.
func mountForStats(t *testing.T, extra ...string) (backing, mnt string, cmd *exec.Cmd) {
	t.Helper()
	backing, mnt = mkdirs(t)
	return backing, mnt, serveForStats(t, backing, mnt, extra...)
}

func serveForStats(t *testing.T, backing, mnt string, extra ...string) (cmd *exec.Cmd) {
	t.Helper()
	sock := statsSocket(t, mnt)
	t.Cleanup(func() { os.Remove(sock) }) // runs after serve's cleanup killed the daemon
	cmd = serve(t, backing, mnt, extra...)
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("control socket missing once the mount is visible: %v", err)
	}
	return cmd
}

// stopDaemon unmounts with SIGTERM and returns the daemon's stderr.
func stopDaemon(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		stderr := cmd.Stderr.(*bytes.Buffer).String() // the copier is done after Wait
		if err != nil {
			t.Fatalf("daemon exit: %v\n%s", err, stderr)
		}
		return stderr
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("daemon did not exit after SIGTERM")
		return ""
	}
}

// evfsOut runs the binary and returns exit code, stdout and stderr.
func evfsOut(t *testing.T, cred *syscall.Credential, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, evfsBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatalf("evfs %v: %v", args, err)
	}
	return 0, stdout.String(), stderr.String()
}

// statsJSON is `evfs stats --json mnt`, raw and decoded.
func statsJSON(t *testing.T, mnt string) ([]byte, *statsDoc) {
	t.Helper()
	code, stdout, stderr := evfsOut(t, nil, "stats", "--json", mnt)
	if code != 0 {
		t.Fatalf("evfs stats --json: exit %d: %s", code, stderr)
	}
	var doc statsDoc
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("stats --json is not the document: %v\n%s", err, stdout)
	}
	return []byte(stdout), &doc
}

func opCount(doc *statsDoc, op string) uint64 {
	for _, o := range doc.Ops {
		if o.Op == op {
			return o.Count
		}
	}
	return 0
}

// workload creates, stats and reads n files through the mount.
func workload(t *testing.T, mnt string, n int) {
	t.Helper()
	for i := range n {
		p := filepath.Join(mnt, fmt.Sprintf("f%02d", i))
		if err := os.WriteFile(p, []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		p := filepath.Join(mnt, fmt.Sprintf("f%02d", i))
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != "hello" {
			t.Fatalf("read %s: %q %v", p, b, err)
		}
	}
}

func TestStatsCountersMove(t *testing.T) {
	for _, backend := range []string{"pool", "sync", "auto"} {
		t.Run(backend, func(t *testing.T) {
			_, mnt, cmd := mountForStats(t, "--backend", backend)
			_, before := statsJSON(t, mnt)
			workload(t, mnt, 10)
			relIdle(t, mnt) // close(2) returns before the daemon has handled the RELEASE
			_, doc := statsJSON(t, mnt)

			for _, op := range []string{"CREATE", "READ"} {
				if n := opCount(doc, op); n < 10 {
					t.Errorf("%s count %d after 10 files, want >= 10", op, n)
				}
			}
			if n := opCount(doc, "LOOKUP") + opCount(doc, "GETATTR"); n < 10 {
				t.Errorf("LOOKUP+GETATTR %d after stat of 10 files, want >= 10", n)
			}
			for _, o := range doc.Ops {
				var sum uint64
				for _, c := range o.Latency.Buckets {
					sum += c
				}
				if sum != o.Count {
					t.Errorf("%s: histogram holds %d, count %d", o.Op, sum, o.Count)
				}
				if o.Errors > o.Count || o.Latency.P50Seconds > o.Latency.P99Seconds || o.Latency.P99Seconds > o.Latency.MaxSeconds {
					t.Errorf("%s: inconsistent %+v", o.Op, o)
				}
			}
			l := doc.Loop
			if l.Events <= before.Loop.Events || l.Submitted <= before.Loop.Submitted || l.Posts <= before.Loop.Posts {
				t.Errorf("loop counters did not move: before %+v after %+v", before.Loop, l)
			}
			if l.BusySeconds <= 0 || l.WaitSeconds <= 0 || doc.UptimeSeconds <= before.UptimeSeconds {
				t.Errorf("times did not move: %+v, uptime %v", l, doc.UptimeSeconds)
			}
			if doc.BackendStats.Submitted == 0 || doc.BackendStats.Name != doc.Backend || doc.Backend == "auto" {
				t.Errorf("backend stats %+v (backend %q)", doc.BackendStats, doc.Backend)
			}
			if l.UnknownCompletions != 0 {
				t.Errorf("unknown completions: %d", l.UnknownCompletions)
			}

			// Idle: nothing in flight, nothing queued (the stats event
			// itself is being run, not queued).
			if l.InFlight != 0 || l.QueueDepth != 0 {
				t.Errorf("idle mount: in_flight %d, queue_depth %d, want 0", l.InFlight, l.QueueDepth)
			}
			if doc.Loop.Completed != doc.Loop.Submitted || doc.BackendStats.Completed != doc.BackendStats.Submitted {
				t.Errorf("idle mount: submitted %d completed %d (backend %d/%d)", l.Submitted, l.Completed,
					doc.BackendStats.Submitted, doc.BackendStats.Completed)
			}

			code, stdout, stderr := evfsOut(t, nil, "stats", "--once", mnt)
			if code != 0 {
				t.Fatalf("stats --once: exit %d: %s", code, stderr)
			}
			for _, want := range []string{"CREATE", "READ", "in-flight 0", "posts/wake", "stalls", "backend  " + doc.Backend, "open handles 0", "P99"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("stats --once output lacks %q:\n%s", want, stdout)
				}
			}
			sock := statsSocket(t, mnt)
			stopDaemon(t, cmd)
			if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("control socket still there after unmount: %v", err)
			}
		})
	}
}

func TestStatsLiveView(t *testing.T) {
	_, mnt, _ := mountForStats(t, "--backend", "pool")
	workload(t, mnt, 3)
	cmd := exec.Command(evfsBin, "stats", "--interval", "200ms", mnt)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(900 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("live view after SIGINT: %v: %s", err, stderr.String())
	}
	out := stdout.String()
	if n := strings.Count(out, "\nOP "); n < 3 {
		t.Errorf("%d frames in 900ms at 200ms, want >= 3:\n%s", n, out)
	}
	if !strings.Contains(out, "since mount") || !strings.Contains(out, "last ") {
		t.Errorf("want a first frame since mount and later ones over the last interval:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("ANSI escapes written to a pipe")
	}
}

// TestStallDetector: a read held 300ms in the backend stalls the loop
// with sync (which runs it on the loop) and not with pool.
func TestStallDetector(t *testing.T) {
	t.Setenv("EVFS_TEST_DELAY_READ", "slow:300ms")
	for _, backend := range []string{"sync", "pool"} {
		t.Run(backend, func(t *testing.T) {
			backing, mnt := mkdirs(t)
			// Before the mount: the daemon finds the file to delay at start.
			if err := os.WriteFile(filepath.Join(backing, "slow"), []byte("slow data"), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := serveForStats(t, backing, mnt, "--backend", backend, "--stall-threshold", "100ms")
			t0 := time.Now()
			if b, err := os.ReadFile(filepath.Join(mnt, "slow")); err != nil || string(b) != "slow data" {
				t.Fatalf("read: %q %v", b, err)
			}
			if took := time.Since(t0); took < 250*time.Millisecond {
				t.Fatalf("read took %v: the delay did not apply", took)
			}
			_, doc := statsJSON(t, mnt)
			if doc.StallThreshold != 0.1 {
				t.Errorf("stall_threshold_seconds %v, want 0.1", doc.StallThreshold)
			}
			stderr := stopDaemon(t, cmd)
			stalled := strings.Contains(stderr, "loop stalled")
			switch backend {
			case "sync":
				if !stalled || !strings.Contains(stderr, "event=READ") {
					t.Errorf("sync: no \"loop stalled\" naming READ in the daemon's log:\n%s", stderr)
				}
				if doc.Loop.Stalls == 0 || doc.Loop.LongestRunSeconds < 0.25 || doc.Loop.LongestRunName != "READ" {
					t.Errorf("sync: stalls %d, longest %vs (%s); want >= 1, >= 0.25s, READ",
						doc.Loop.Stalls, doc.Loop.LongestRunSeconds, doc.Loop.LongestRunName)
				}
			default:
				if stalled || doc.Loop.Stalls != 0 {
					t.Errorf("%s: the loop stalled (%d) while a read waited in the backend:\n%s", backend, doc.Loop.Stalls, stderr)
				}
			}
		})
	}
}

func TestStallThresholdOff(t *testing.T) {
	_, mnt, _ := mountForStats(t, "--backend", "pool", "--stall-threshold", "0")
	if _, doc := statsJSON(t, mnt); doc.StallThreshold != 0 {
		t.Errorf("stall_threshold_seconds %v with the detector off, want 0", doc.StallThreshold)
	}
	if code, stdout, _ := evfsOut(t, nil, "stats", "--once", mnt); code != 0 || !strings.Contains(stdout, "threshold off") {
		t.Errorf("exit %d, output:\n%s", code, stdout)
	}
}

// nobody runs the binary as uid/gid 65534.
func nobody(t *testing.T) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch user")
	}
	// The binary sits in TestMain's 0700 temporary directory.
	if err := os.Chmod(filepath.Dir(evfsBin), 0o755); err != nil {
		t.Fatal(err)
	}
	return &syscall.Credential{Uid: 65534, Gid: 65534}
}

func TestStatsRefusesNonRoot(t *testing.T) {
	cred := nobody(t)
	t.Run("socket mode", func(t *testing.T) {
		_, mnt, _ := mountForStats(t, "--backend", "pool")
		st, err := os.Lstat(statsSocket(t, mnt))
		if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
			t.Fatalf("control socket: %v, %v; want a 0600 socket", st.Mode(), err)
		}
		code, stdout, stderr := evfsOut(t, cred, "stats", "--once", mnt)
		if code != 1 || !strings.Contains(stderr, "permission denied") || stdout != "" {
			t.Fatalf("as uid 65534: exit %d, stderr %q, stdout %q; want exit 1, permission denied", code, stderr, stdout)
		}
		if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
			t.Errorf("want one line of error, got %q", stderr)
		}
	})
	t.Run("peer credentials", func(t *testing.T) {
		// A socket anyone may connect to: only SO_PEERCRED stands in the way.
		mnt := fmt.Sprintf("/evfs-test-no-such-mount-%d", os.Getpid())
		if err := controlDirOK(controlRunDir); err != nil {
			t.Fatal(err)
		}
		s, err := bindControl(controlRunDir, controlName(mnt))
		if err != nil {
			t.Fatal(err)
		}
		s.log = discardLogger()
		served := false
		s.serve(func(context.Context) ([]byte, error) { served = true; return []byte("{}\n"), nil })
		defer s.Close()
		if err := os.Chmod(s.path, 0o666); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := evfsOut(t, cred, "stats", "--once", mnt)
		if code != 1 || !strings.Contains(stderr, "permission denied") || !strings.Contains(stderr, "uid 65534") || stdout != "" {
			t.Fatalf("as uid 65534: exit %d, stderr %q; want exit 1 and the daemon's refusal", code, stderr)
		}
		s.Close()
		if served {
			t.Error("statistics were computed for a refused client")
		}
		if _, err := os.Lstat(s.path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Close left the socket: %v", err)
		}
	})
}

// TestControlPeerCheckInProcess covers the refusal without a second
// user: a server that serves only uid 4242 refuses us.
func TestControlPeerCheckInProcess(t *testing.T) {
	dir := t.TempDir()
	s, err := bindControl(dir, "x.sock")
	if err != nil {
		t.Fatal(err)
	}
	s.log, s.rootUID = discardLogger(), 4242
	s.serve(func(context.Context) ([]byte, error) { return []byte("{}\n"), nil })
	defer s.Close()
	_, _, err = fetchStats("test", s.path)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("permission denied: the control socket serves root only (client uid %d)", os.Geteuid())) {
		t.Fatalf("fetch from a server for another uid: %v", err)
	}
	var u usageError
	if errors.As(err, &u) {
		t.Errorf("a refusal is exit 1, not a usage error")
	}
	// An unknown command is answered with an error, not hung up on.
	s2, err := bindControl(dir, "y.sock")
	if err != nil {
		t.Fatal(err)
	}
	s2.log, s2.rootUID = discardLogger(), uint32(os.Geteuid())
	s2.serve(func(context.Context) ([]byte, error) { return []byte("{}\n"), nil })
	defer s2.Close()
	conn, err := net.Dial("unix", s2.path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "frobnicate\n")
	b, _ := io.ReadAll(conn)
	if !strings.Contains(string(b), `"error":"unknown command`) {
		t.Errorf("answer to an unknown command: %q", b)
	}
}

func TestStatsErrors(t *testing.T) {
	backing, mnt := mkdirs(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no args", []string{"stats"}, "exactly one MOUNTPOINT"},
		{"not a mount", []string{"stats", mnt}, "is not a mount point"},
		{"missing", []string{"stats", "/nonexistent/evfs"}, "does not exist"},
		{"other fs", []string{"stats", "--once", "/proc"}, "is not an evfs mount"},
		{"json not a mount", []string{"stats", "--json", backing}, "is not a mount point"},
		{"bad interval", []string{"stats", "--interval", "0s", mnt}, "--interval"},
		{"negative stall", []string{"mount", "--stall-threshold", "-1s", backing, mnt}, "--stall-threshold"},
		{"metrics all interfaces", []string{"mount", "--metrics-addr", "0.0.0.0:9464", backing, mnt}, "not a loopback address"},
		{"metrics no host", []string{"mount", "--metrics-addr", ":9464", backing, mnt}, "not a loopback address"},
		{"metrics hostname", []string{"mount", "--metrics-addr", "example.invalid:9464", backing, mnt}, "not a loopback address"},
		{"metrics no port", []string{"mount", "--metrics-addr", "127.0.0.1", backing, mnt}, "HOST:PORT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := evfsOut(t, nil, c.args...)
			if code != 2 || !strings.Contains(stderr, c.want) || stdout != "" {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit 2 and %q", code, stderr, stdout, c.want)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
				t.Errorf("want one line, got %q", stderr)
			}
			if ok, _ := isMountpoint(mnt); ok {
				t.Errorf("something got mounted at %s", mnt)
			}
		})
	}
}

func TestStaleControlSocketIsReplaced(t *testing.T) {
	backing, mnt := mkdirs(t)
	sock := statsSocket(t, mnt)
	t.Cleanup(func() { os.Remove(sock) })
	// A socket nobody listens on, as a killed daemon leaves it.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if code, _, stderr := evfsOut(t, nil, "stats", "--once", mnt); code != 2 || !strings.Contains(stderr, "stale") {
		t.Errorf("stats on a stale socket: exit %d, %q; want 2, stale", code, stderr)
	}
	// Another mount's, its daemon killed too: swept at the next mount.
	other := filepath.Join(controlRunDir, controlName(fmt.Sprintf("/evfs-test-dead-%d", os.Getpid())))
	t.Cleanup(func() { os.Remove(other) })
	ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: other, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	cmd := serve(t, backing, mnt, "--backend", "pool")
	if _, err := os.Lstat(other); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dead daemon's socket survived the next mount: %v", err)
	}
	if _, doc := statsJSON(t, mnt); doc.PID != cmd.Process.Pid {
		t.Errorf("answered by pid %d, want the new daemon %d", doc.PID, cmd.Process.Pid)
	}
	stopDaemon(t, cmd)
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after unmount: %v", err)
	}
}

// normalizeJSON replaces every value by its JSON type and every array by
// its first element's shape, leaving the document's structure. Numbers
// are "integer" or "number": a field named *_seconds (or an array of
// them) is a number; any other must be written as an integer.
func normalizeJSON(t *testing.T, key string, v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = normalizeJSON(t, k, e)
		}
		return out
	case []any:
		if len(v) == 0 {
			return []any{}
		}
		return []any{normalizeJSON(t, key, v[0])}
	case string:
		return "string"
	case json.Number:
		if strings.HasSuffix(key, "_seconds") {
			return "number"
		}
		if _, err := v.Int64(); err != nil {
			t.Errorf("%s = %s, want an integer", key, v)
		}
		return "integer"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	t.Fatalf("unexpected JSON value %T", v)
	return nil
}

// TestStatsJSONGolden pins schema_version 1: field names and types.
// Run with -update after an intended change (and bump the version if a
// field changed or went away).
func TestStatsJSONGolden(t *testing.T) {
	_, mnt, _ := mountForStats(t, "--backend", "pool")
	workload(t, mnt, 2)
	raw, doc := statsJSON(t, mnt)
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	got, _ := json.MarshalIndent(normalizeJSON(t, "", v), "", "  ")
	got = append(got, '\n')
	golden := filepath.Join("testdata", "stats.golden.json")
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the stats document's schema changed (bump schema_version and document it in docs/STATS.md, then -update):\ngot:\n%s\nwant:\n%s", got, want)
	}
	if doc.SchemaVersion != 1 {
		t.Errorf("schema_version %d", doc.SchemaVersion)
	}
	if len(doc.LatencyBounds) != 25 || doc.LatencyBounds[0] != 1e-6 || doc.LatencyBounds[24] != 16.777216 {
		t.Errorf("bucket bounds %v", doc.LatencyBounds)
	}
	for _, o := range doc.Ops {
		if len(o.Latency.Buckets) != len(doc.LatencyBounds)+1 {
			t.Errorf("%s: %d buckets, want %d", o.Op, len(o.Latency.Buckets), len(doc.LatencyBounds)+1)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, doc.Time); err != nil {
		t.Errorf("time: %v", err)
	}
	// Every field of the document is in the docs.
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "STATS.md"))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if !bytes.Contains(docs, []byte("`"+k+"`")) {
					t.Errorf("docs/STATS.md does not describe `%s` (%s%s)", k, prefix, k)
				}
				walk(prefix+k+".", e)
			}
		case []any:
			if len(v) > 0 {
				walk(prefix, v[0])
			}
		}
	}
	walk("", v)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestMetricsEndpoint(t *testing.T) {
	addr := freePort(t)
	_, mnt, cmd := mountForStats(t, "--backend", "pool", "--metrics-addr", addr)
	workload(t, mnt, 5)
	// close(2) returns before the daemon has handled the RELEASE.
	relIdle(t, mnt)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	text := string(body)
	for _, want := range []string{
		`evfs_requests_total{op="CREATE"} 5`,
		`evfs_request_errors_total{op="LOOKUP"}`,
		`evfs_request_duration_seconds_bucket{op="READ",le="+Inf"} `,
		`evfs_request_duration_seconds_bucket{op="READ",le="1.6e-05"} `,
		`evfs_request_duration_seconds_count{op="READ"} `,
		"evfs_inflight_ops 0",
		"evfs_queue_depth ",
		"evfs_loop_busy_seconds_total ",
		"evfs_loop_wait_seconds_total ",
		"evfs_loop_longest_handler_seconds ",
		"evfs_loop_stalls_total ",
		"evfs_loop_spins_total ",
		"evfs_open_handles 0",
		"evfs_nodes ",
		"evfs_node_fds ",
		"evfs_node_evictions_total 0",
		`evfs_backend_submitted_total{backend="pool"} `,
		`evfs_backend_completed_total{backend="pool"} `,
		`evfs_backend_fallbacks_total{backend="pool"} 0`,
		`evfs_backend_ring_full_total{backend="pool"} 0`,
		"# TYPE evfs_request_duration_seconds histogram",
		"# TYPE evfs_requests_total counter",
		"go_goroutines ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
	stopDaemon(t, cmd)
	if _, err := client.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("metrics still served after unmount")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
