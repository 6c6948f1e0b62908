// Package fstest mounts real evfs file systems for tests: a backing
// directory and a mountpoint under the test's temporary directory,
// served in-process by the backend under test and always unmounted when
// the test ends, even when it fails.
package fstest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"evfs/aio"
	"evfs/fs"
)

// Backends are the aio backends every test runs over.
var Backends = []string{"pool", "sync", "uring"}

var (
	uringOnce sync.Once
	uringErr  error
)

// UringAvailable reports why the uring backend cannot be built in this
// binary or on this kernel (nil if it can). Checked once per process.
func UringAvailable() error {
	uringOnce.Do(func() {
		b, err := aio.New(aio.Config{Kind: "uring", Wake: func() {}}, nil)
		if err != nil {
			uringErr = err
			return
		}
		uringErr = b.Close()
	})
	return uringErr
}

// SkipUnavailable skips t when backend cannot run here.
func SkipUnavailable(t testing.TB, backend string) {
	t.Helper()
	if backend == "uring" {
		if err := UringAvailable(); err != nil {
			t.Skipf("uring backend not available in this build/kernel: %v", err)
		}
	}
}

// ForEachBackend runs fn as one subtest per backend, skipping the ones
// that are not available.
func ForEachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	t.Helper()
	for _, b := range Backends {
		t.Run(b, func(t *testing.T) {
			SkipUnavailable(t, b)
			fn(t, b)
		})
	}
}

// Option adjusts the configuration of a test mount.
type Option func(*fs.Config)

// WithTimeouts sets the kernel's entry and attribute cache timeouts (the
// default for test mounts is 0 for both, so every stat reaches evfs).
func WithTimeouts(entry, attr time.Duration) Option {
	return func(c *fs.Config) { c.EntryTimeout, c.AttrTimeout = entry, attr }
}

// AllowOther lets other users use the mount (implies default_permissions).
func AllowOther(c *fs.Config) { c.AllowOther = true }

// Transport picks how requests reach the loop ("loop", the default, or
// "gofuse").
func Transport(name string) Option { return func(c *fs.Config) { c.Transport = name } }

// ReadDirPlus turns READDIRPLUS on.
func ReadDirPlus(c *fs.Config) { c.ReadDirPlus = true }

// DefaultSharing: open files share their node's fd only past the
// default thresholds (a quarter of the fd limit in open files, three
// quarters in fds), as in the binary.
func DefaultSharing(c *fs.Config) { c.ShareFdsAbove = 0 }

// Mount serves a fresh, empty backing directory at a fresh mountpoint with
// the given backend, and returns both paths. Both live in one directory
// of mode 0755 (as are its parents under TMPDIR), so other uids can reach
// them. The mount is unmounted in t.Cleanup, lazily if a normal unmount
// fails; errors evfs logs while serving fail the test.
func Mount(t testing.TB, backend string, opts ...Option) (mnt, backing string) {
	t.Helper()
	mnt, backing = Dirs(t)
	MountAt(t, backend, backing, mnt, opts...)
	return mnt, backing
}

// MountAt is Mount with the directories chosen by the caller.
func MountAt(t testing.TB, backend, backing, mnt string, opts ...Option) *fs.Mount {
	t.Helper()
	SkipUnavailable(t, backend)
	openPath(t, mnt)
	logs := newCaptureHandler()
	cfg := fs.Config{
		Options: fs.Options{
			EntryTimeout: 0,
			AttrTimeout:  0,
			Logger:       slog.New(logs),
			// Every open file shares its node's fd (fs/lend.go), so every
			// test runs that path; the binary's default (only near the fd
			// limit) is what DefaultSharing restores.
			ShareFdsAbove: 1,
		},
		Backend: backend,
		Workers: 8,
		// Stalls of the loop are a performance matter (and routine for the
		// sync backend and on a loaded machine), not a test failure.
		StallThreshold: -1,
	}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := fs.NewMount(backing, mnt, cfg)
	if err != nil {
		t.Fatalf("mount %s backend: %v", backend, err)
	}
	wd := startWatchdog(t, mnt)
	t.Cleanup(func() {
		wd.stop(t)
		unmount(t, m, mnt, logs)
	})
	return m
}

// MaxMountLife bounds how long one test mount may live. A request the
// daemon never answers would otherwise hang the test until the binary's
// timeout, and then forever: the exiting process closes its files on the
// mount, and nobody is left to answer their FLUSH. When the bound passes
// the watchdog dumps every goroutine and aborts the FUSE connection, so
// the stuck calls fail (ENOTCONN) and the test ends with an error.
var MaxMountLife = 3 * time.Minute

// Watch starts that watchdog for a mount served by another process (an
// evfs binary the test started; MountAt watches its own mounts), and
// stops it at the test's cleanup, failing the test if it fired.
func Watch(t testing.TB, mnt string) {
	w := startWatchdog(t, mnt)
	t.Cleanup(func() { w.stop(t) })
}

type watchdog struct {
	done    chan struct{}
	aborted chan string // the reason, if the watchdog fired
}

func startWatchdog(t testing.TB, mnt string) *watchdog {
	w := &watchdog{done: make(chan struct{}), aborted: make(chan string, 1)}
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		t.Fatalf("stat %s after mount: %v", mnt, err)
	}
	abort := fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", unix.Minor(st.Dev))
	life := MaxMountLife
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok && time.Until(dl)-30*time.Second < life {
			life = max(time.Until(dl)-30*time.Second, time.Second)
		}
	}
	go func() {
		select {
		case <-w.done:
			return
		case <-time.After(life):
		}
		fmt.Fprintf(os.Stderr, "fstest: mount %s still in use after %v; aborting its FUSE connection. Goroutines:\n", mnt, life)
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		err := os.WriteFile(abort, []byte("1"), 0)
		w.aborted <- fmt.Sprintf("mount %s was still in use after %v: FUSE connection aborted (%s: %v)", mnt, life, abort, err)
	}()
	return w
}

func (w *watchdog) stop(t testing.TB) {
	close(w.done)
	select {
	case why := <-w.aborted:
		t.Error(why)
	default:
	}
}

// openPath makes every directory from dir up to the temp root
// searchable by others (t.TempDir makes them 0700).
func openPath(t testing.TB, dir string) {
	tmp := filepath.Clean(os.TempDir())
	for d := filepath.Dir(dir); strings.HasPrefix(d, tmp+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func unmount(t testing.TB, m *fs.Mount, mnt string, logs *captureHandler) {
	t.Helper()
	var err error
	for i := 0; i < 50; i++ {
		// EBUSY while a subprocess or an fd still uses the mount: retry.
		if err = m.Unmount(); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("unmount %s: %v; detaching", mnt, err)
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("lazy unmount %s: %v", mnt, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- m.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serving %s: %v", mnt, err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("serving %s: loop did not finish within 30s of unmount", mnt)
	}
	errs, warns := logs.records()
	for _, msg := range errs {
		t.Errorf("evfs logged an error: %s", msg)
	}
	if t.Failed() {
		for _, msg := range warns {
			t.Logf("evfs logged: %s", msg)
		}
	}
}

// captureHandler is the mounts' slog handler. It keeps warnings (the
// last maxWarnings) to show if the test fails, and errors, which fail it.
type captureHandler struct {
	level slog.Level
	attrs []slog.Attr

	mu    *sync.Mutex
	errs  *[]string
	warns *[]string
}

const maxWarnings = 100

func newCaptureHandler() *captureHandler {
	return &captureHandler{level: slog.LevelWarn, mu: new(sync.Mutex), errs: new([]string), warns: new([]string)}
}

func (h *captureHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", r.Time.Format("15:04:05.000"), r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Level >= slog.LevelError {
		*h.errs = append(*h.errs, b.String())
	} else {
		if len(*h.warns) == maxWarnings {
			*h.warns = (*h.warns)[1:]
		}
		*h.warns = append(*h.warns, b.String())
	}
	return nil
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *captureHandler) WithGroup(string) slog.Handler { return h }

func (h *captureHandler) records() (errs, warns []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), *h.errs...), append([]string(nil), *h.warns...)
}
