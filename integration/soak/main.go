// Command soak runs many concurrent clients against a directory (on a
// mount) for a while and watches the daemon serving it.
//
// Each client owns one subtree and mixes every common operation — create,
// write, append+fsync, pwrite, read, stat, truncate, rename, unlink,
// mkdir, rmdir, readdir, setxattr/getxattr — checking each result against
// an in-memory model of its subtree, so any error or wrong answer is
// unexpected. (EINTR, which a FUSE daemon may answer to a caller that was
// signalled — Go's preemption signals are enough — is retried and
// counted, as careful programs do.) A watchdog fails the run when a single operation takes
// longer than -max-op. Every second the daemon's open descriptors
// (/proc/PID/fd), threads and RSS (/proc/PID/status) are sampled; the run
// fails when, after the warm-up, descriptors vary by more than -fd-bound
// or the RSS peak of the second half of the samples exceeds the first
// half's by more than -rss-growth. (The stats socket has no goroutine
// count; threads stand in for it.) The daemon is -pid, or the
// process whose command line names the mountpoint and that holds
// /dev/fuse (none found: sampling is off, e.g. for a plain directory).
// With -evfs, `evfs stats --once --json` must show no operation in flight
// once the clients stopped.
//
//	soak -dir MOUNT/work [-mount MOUNT] [-duration 60s] [-clients 64]
//	     [-pid N] [-evfs PATH] [-max-op 10s] [-fd-bound 64] [-rss-growth 0.5]
//
// Exit status 0 when everything held, 1 otherwise, 2 for bad usage.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

type config struct {
	dir, mount, evfs   string
	backing            string
	duration, maxOp    time.Duration
	warmup             time.Duration
	clients, pid       int
	fdBound            int
	rssGrowth          float64
	seed               uint64
	keep, verbose      bool
	maxErrorsPrinted   int
	samplePeriod       time.Duration
	idleInFlightWithin time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.dir, "dir", "", "working directory (created; each client works in DIR/cN)")
	flag.StringVar(&c.mount, "mount", "", "mountpoint, to find the daemon (default: -dir's mountpoint)")
	flag.StringVar(&c.backing, "backing", "", "the directory -dir is on the backing side, for error reports")
	flag.StringVar(&c.evfs, "evfs", "", "evfs binary: check `evfs stats --once --json MOUNT` shows nothing in flight at the end")
	flag.DurationVar(&c.duration, "duration", 60*time.Second, "how long the clients run")
	flag.DurationVar(&c.warmup, "warmup", 0, "samples before this are not held to the bounds (default: half of -duration, at most 10s)")
	flag.DurationVar(&c.maxOp, "max-op", 10*time.Second, "fail when a single operation takes longer")
	flag.IntVar(&c.clients, "clients", 64, "concurrent clients")
	flag.IntVar(&c.pid, "pid", 0, "daemon pid to sample (default: found from the mount)")
	flag.IntVar(&c.fdBound, "fd-bound", 64, "after the warm-up, the daemon's open fds may grow by at most this much")
	flag.Float64Var(&c.rssGrowth, "rss-growth", 0.5, "after the warm-up, the daemon's RSS may grow by at most this fraction")
	flag.Uint64Var(&c.seed, "seed", 0, "random seed (default: from the clock)")
	flag.BoolVar(&c.keep, "keep", false, "keep the working directory")
	flag.BoolVar(&c.verbose, "v", false, "print every sample")
	flag.Parse()
	if c.dir == "" || flag.NArg() != 0 || c.clients < 1 || c.duration <= 0 {
		fmt.Fprintln(os.Stderr, "usage: soak -dir DIR [-mount MOUNT] [-duration D] [-clients N] [-pid PID] [-evfs PATH] ...")
		os.Exit(2)
	}
	if c.warmup == 0 {
		c.warmup = min(c.duration/2, 10*time.Second)
	}
	if c.seed == 0 {
		c.seed = uint64(time.Now().UnixNano())
	}
	c.maxErrorsPrinted = 20
	c.samplePeriod = time.Second
	c.idleInFlightWithin = 10 * time.Second
	os.Exit(run(&c))
}

func run(c *config) int {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	if c.mount == "" {
		c.mount = mountpointOf(c.dir)
	}
	if c.pid == 0 {
		c.pid = findDaemon(c.mount)
	}
	fmt.Printf("soak: %d clients, %v, seed %d, dir %s, daemon pid %d\n", c.clients, c.duration, c.seed, c.dir, c.pid)

	r := &report{maxPrinted: c.maxErrorsPrinted}
	clients := make([]*client, c.clients)
	for i := range clients {
		clients[i] = newClient(i, filepath.Join(c.dir, fmt.Sprintf("c%d", i)), c.seed, r)
		if c.backing != "" {
			clients[i].backing = filepath.Join(c.backing, fmt.Sprintf("c%d", i))
		}
		if err := clients[i].setup(); err != nil {
			r.errorf("client %d: setup: %v", i, err)
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl.loop(stop)
		}()
	}
	watchDone := make(chan struct{})
	go watchdog(c, clients, r, watchDone)
	var samples []sample
	var sampleMu sync.Mutex
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		if c.pid <= 0 {
			return
		}
		t := time.NewTicker(c.samplePeriod)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				s, err := takeSample(c.pid)
				if err != nil {
					r.errorf("sampling daemon pid %d: %v", c.pid, err)
					return
				}
				s.at = now.Sub(start)
				if c.verbose {
					fmt.Printf("  %6.1fs fds %d threads %d rss %.1f MiB\n", s.at.Seconds(), s.fds, s.threads, mib(s.rss))
				}
				sampleMu.Lock()
				samples = append(samples, s)
				sampleMu.Unlock()
			}
		}
	}()
	time.Sleep(c.duration)
	close(stop)
	wg.Wait()
	close(watchDone)
	<-samplerDone
	elapsed := time.Since(start)

	// Final check of every subtree against its model, then cleanup.
	for _, cl := range clients {
		cl.verifyAll()
	}
	inflight := ""
	if c.evfs != "" && c.pid > 0 {
		inflight = checkIdle(c, r)
	}
	if !c.keep {
		if err := os.RemoveAll(c.dir); err != nil {
			r.errorf("removing %s: %v", c.dir, err)
		}
	}

	// Report.
	var total, eintr uint64
	counts := map[string]uint64{}
	var slowest time.Duration
	slowestOp := ""
	for _, cl := range clients {
		for k, v := range cl.counts {
			counts[k] += v
			total += v
		}
		eintr += cl.eintr
		if cl.slowest > slowest {
			slowest, slowestOp = cl.slowest, cl.slowestOp
		}
	}
	fmt.Printf("soak: %d ops in %.1fs (%.0f/s), %d errors, slowest op %v (%s)\n",
		total, elapsed.Seconds(), float64(total)/elapsed.Seconds(), r.count(), slowest.Round(time.Microsecond), slowestOp)
	var names []string
	for k := range counts {
		names = append(names, k)
	}
	sort.Strings(names)
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	fmt.Printf("soak: ops: %s\n", strings.Join(parts, ", "))
	if eintr > 0 {
		fmt.Printf("soak: %d system calls answered EINTR (signalled callers, cancelled requests) and retried\n", eintr)
	}
	if inflight != "" {
		fmt.Printf("soak: %s\n", inflight)
	}
	checkSamples(c, samples, r)
	if n := r.count(); n > 0 {
		fmt.Printf("soak: FAIL (%d problems)\n", n)
		return 1
	}
	fmt.Println("soak: PASS")
	return 0
}

// report collects problems from every goroutine.
type report struct {
	mu         sync.Mutex
	n          int
	maxPrinted int
}

func (r *report) errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if r.n <= r.maxPrinted {
		fmt.Fprintf(os.Stderr, "soak: "+format+"\n", args...)
	} else if r.n == r.maxPrinted+1 {
		fmt.Fprintln(os.Stderr, "soak: (further problems not printed)")
	}
}

func (r *report) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// ---- the daemon's resources ----

type sample struct {
	at           time.Duration
	fds, threads int
	rss          int64 // bytes
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func takeSample(pid int) (sample, error) {
	var s sample
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(ents)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "Threads":
			s.threads = int(n)
		case "VmRSS":
			s.rss = n << 10 // kB
		}
	}
	return s, nil
}

func minMax(xs []int64) (lo, hi int64) {
	lo, hi = xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return
}

// checkSamples prints min/max of each series and holds the post-warm-up
// samples to the bounds.
func checkSamples(c *config, samples []sample, r *report) {
	if c.pid <= 0 {
		fmt.Println("soak: no daemon found for the mount; resource sampling was off")
		return
	}
	if len(samples) == 0 {
		r.errorf("no samples of daemon pid %d", c.pid)
		return
	}
	series := func(ss []sample, f func(sample) int64) []int64 {
		var out []int64
		for _, s := range ss {
			out = append(out, f(s))
		}
		return out
	}
	fds := func(s sample) int64 { return int64(s.fds) }
	thr := func(s sample) int64 { return int64(s.threads) }
	rss := func(s sample) int64 { return s.rss }
	var after []sample
	for _, s := range samples {
		if s.at >= c.warmup {
			after = append(after, s)
		}
	}
	fl, fh := minMax(series(samples, fds))
	tl, th := minMax(series(samples, thr))
	rl, rh := minMax(series(samples, rss))
	fmt.Printf("soak: daemon pid %d, %d samples: fds min %d max %d; threads min %d max %d; rss min %.1f MiB max %.1f MiB\n",
		c.pid, len(samples), fl, fh, tl, th, mib(rl), mib(rh))
	if len(after) < 2 {
		fmt.Printf("soak: fewer than 2 samples after the %v warm-up: bounds not checked\n", c.warmup)
		return
	}
	afl, afh := minMax(series(after, fds))
	atl, ath := minMax(series(after, thr))
	// A leak is growth. Compare the peak of the second half of the
	// post-warm-up samples with the first's: RSS saws up and down with
	// the garbage collector, and fds drop when the kernel forgets inodes
	// (it shrinks its dentry cache under memory pressure, and evfs closes
	// the nodes' descriptors) and come back as the clients look them up.
	half := len(after) / 2
	_, early := minMax(series(after[:half], rss))
	_, late := minMax(series(after[half:], rss))
	growth := float64(late-early) / float64(early)
	_, fdEarly := minMax(series(after[:half], fds))
	_, fdLate := minMax(series(after[half:], fds))
	fmt.Printf("soak: after the %v warm-up (%d samples): fds min %d max %d; threads min %d max %d; rss peak %.1f MiB then %.1f MiB (%+.0f%%)\n",
		c.warmup, len(after), afl, afh, atl, ath, mib(early), mib(late), 100*growth)
	if fdLate-fdEarly > int64(c.fdBound) {
		r.errorf("daemon fds grew by %d after the warm-up (peak %d, then %d; bound %d): a descriptor leak?", fdLate-fdEarly, fdEarly, fdLate, c.fdBound)
	}
	if growth > c.rssGrowth {
		r.errorf("daemon RSS grew by %.0f%% after the warm-up (peak %.1f → %.1f MiB; bound %.0f%%)", 100*growth, mib(early), mib(late), 100*c.rssGrowth)
	}
}

// checkIdle asks evfs for the daemon's statistics until nothing is in
// flight (the clients have stopped).
func checkIdle(c *config, r *report) string {
	deadline := time.Now().Add(c.idleInFlightWithin)
	for {
		out, err := exec.Command(c.evfs, "stats", "--once", "--json", c.mount).Output()
		if err != nil {
			r.errorf("evfs stats --once --json %s: %v", c.mount, err)
			return ""
		}
		var doc struct {
			PID  int `json:"pid"`
			Loop struct {
				InFlight   int    `json:"in_flight"`
				QueueDepth int    `json:"queue_depth"`
				Unknown    uint64 `json:"unknown_completions"`
				Stalls     uint64 `json:"stalls"`
				Submitted  uint64 `json:"submitted"`
				Completed  uint64 `json:"completed"`
			} `json:"loop"`
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			r.errorf("evfs stats: %v", err)
			return ""
		}
		l := doc.Loop
		if l.Unknown != 0 {
			r.errorf("evfs stats: %d completions for unknown operations", l.Unknown)
		}
		if l.InFlight == 0 {
			return fmt.Sprintf("evfs stats after the run: in_flight 0, submitted %d, completed %d, stalls %d", l.Submitted, l.Completed, l.Stalls)
		}
		if time.Now().After(deadline) {
			r.errorf("evfs stats: %d operations still in flight %v after the clients stopped", l.InFlight, c.idleInFlightWithin)
			return ""
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mountpointOf is the mount point holding path (from /proc/self/mountinfo).
func mountpointOf(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return abs
	}
	best := "/"
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescape(f[4])
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	return best
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// findDaemon returns the pid of the process serving mount: one whose
// command line names the mountpoint and that holds /dev/fuse open.
func findDaemon(mount string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		named := false
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			if arg == "" {
				continue
			}
			if a, err := filepath.Abs(arg); err == nil && (a == mount || evalEq(a, mount)) {
				named = true
				break
			}
		}
		if !named {
			continue
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && target == "/dev/fuse" {
				return pid
			}
		}
	}
	return 0
}

func evalEq(a, b string) bool {
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

// ---- the watchdog ----

// watchdog fails the run when an operation has been running longer
// than -max-op; a stuck syscall cannot be cancelled, so it exits.
func watchdog(c *config, clients []*client, r *report, done <-chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		now := time.Now().UnixNano()
		for _, cl := range clients {
			st := cl.opStart.Load()
			if st == 0 {
				continue
			}
			if d := time.Duration(now - st); d > c.maxOp {
				r.errorf("watchdog: client %d: %s has been running for %v (limit %v)", cl.id, cl.currentOp(), d.Round(time.Millisecond), c.maxOp)
				fmt.Println("soak: FAIL (an operation hung)")
				os.Exit(1)
			}
		}
	}
}

// ---- the clients ----

// A client's subtree: file slots f0..f7 at its top and in the
// directories d0 and d1, all created at setup and kept filled (an unlink
// or a rename is followed by re-creating the name), so the daemon's
// working set — one descriptor per known inode — stays steady and a leak
// stands out; plus a directory slot d2 that comes and goes (mkdir/rmdir).
var (
	fileSlots = []string{"f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"}
	dirSlots  = []string{"d0", "d1"}
	xattrKeys = []string{"user.soak.a", "user.soak.b"}
)

// spareDir is the directory slot that comes and goes.
const spareDir = "d2"

const maxWrite = 16 << 10

type file struct {
	data   []byte
	xattrs map[string]string
}

type client struct {
	id   int
	root string
	rng  *rand.Rand
	r    *report

	files map[string]*file // by relative path
	dirs  map[string]bool  // d0, d1 present

	opStart atomic.Int64 // UnixNano of the operation in progress, 0 if none
	opMu    sync.Mutex
	opName  string

	counts    map[string]uint64
	slowest   time.Duration
	slowestOp string
	buf       []byte
	eintr     uint64   // system calls retried after EINTR
	history   []string // the last operations, for error reports
	backing   string   // the subtree in the backing directory, if known
}

const historyLen = 24

func newClient(id int, root string, seed uint64, r *report) *client {
	return &client{id: id, root: root, rng: rand.New(rand.NewPCG(seed, uint64(id))), r: r,
		files: map[string]*file{}, dirs: map[string]bool{}, counts: map[string]uint64{}, buf: make([]byte, 4*maxWrite)}
}

// setup creates the subtree with every slot filled.
func (c *client) setup() error {
	if err := os.Mkdir(c.root, 0o755); err != nil {
		return err
	}
	for _, d := range dirSlots {
		if err := os.Mkdir(c.path(d), 0o755); err != nil {
			return err
		}
		c.dirs[d] = true
	}
	for _, d := range append([]string{""}, dirSlots...) {
		for _, f := range fileSlots {
			rel := filepath.Join(d, f)
			data := c.data(c.rng.IntN(maxWrite))
			if err := os.WriteFile(c.path(rel), data, 0o644); err != nil {
				return err
			}
			c.files[rel] = &file{data: data, xattrs: map[string]string{}}
		}
	}
	return nil
}

// recreate fills the slot rel again after an unlink or a rename.
func (c *client) recreate(rel string) {
	data := c.data(c.rng.IntN(maxWrite))
	c.begin(fmt.Sprintf("create %s %d bytes", rel, len(data)))
	var fd int
	err := c.sys(func() (err error) {
		fd, err = unix.Open(c.path(rel), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		return
	})
	if err == nil {
		err = c.sys(func() (err error) { _, err = unix.Write(fd, data); return })
		unix.Close(fd)
	}
	c.end("create")
	if c.expect("create "+rel, err, 0) {
		c.files[rel] = &file{data: data, xattrs: map[string]string{}}
	}
}

func (c *client) currentOp() string {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	return c.opName
}

// begin/end time one operation for the watchdog and the report.
func (c *client) begin(name string) {
	c.opMu.Lock()
	c.opName = name
	c.opMu.Unlock()
	c.opStart.Store(time.Now().UnixNano())
}

func (c *client) end(kind string) {
	d := time.Duration(time.Now().UnixNano() - c.opStart.Load())
	c.opStart.Store(0)
	if len(c.history) == historyLen {
		c.history = c.history[1:]
	}
	c.history = append(c.history, c.currentOp())
	c.counts[kind]++
	if d > c.slowest {
		c.slowest, c.slowestOp = d, c.currentOp()
	}
}

// sys runs one system call, again when it failed with EINTR. A FUSE
// daemon may answer a request whose caller was signalled (here: the Go
// runtime's preemption signals) with EINTR; evfs does so for an
// operation it cancelled before it took effect, so retrying is what a
// careful program does. The retries are counted and reported.
func (c *client) sys(call func() error) error {
	for range 1000 {
		err := call()
		if !errors.Is(err, unix.EINTR) {
			return err
		}
		c.eintr++
	}
	return unix.EINTR
}

func (c *client) errorf(format string, args ...any) {
	c.r.errorf("client %d: "+format, append([]any{c.id}, args...)...)
}

func errnoOf(err error) unix.Errno {
	if err == nil {
		return 0
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return ^unix.Errno(0)
}

// expect reports a result that differs from the model's prediction.
func (c *client) expect(what string, err error, want unix.Errno) bool {
	if got := errnoOf(err); got != want {
		if want == 0 {
			c.errorf("%s: unexpected error %v", what, err)
		} else {
			c.errorf("%s: got %v, want %v", what, err, want)
		}
		return false
	}
	return true
}

func (c *client) path(rel string) string { return filepath.Join(c.root, rel) }

// pickFile chooses a file slot, at the top or in one of the dirs.
func (c *client) pickFile() string {
	f := fileSlots[c.rng.IntN(len(fileSlots))]
	if n := c.rng.IntN(len(dirSlots) + 2); n < len(dirSlots) {
		return dirSlots[n] + "/" + f
	}
	return f
}

// parentOK says whether rel's directory exists in the model.
func (c *client) parentOK(rel string) bool {
	d, _, nested := strings.Cut(rel, "/")
	return !nested || c.dirs[d]
}

func (c *client) data(n int) []byte {
	b := c.buf[:n]
	off := c.rng.IntN(len(b) + 1)
	for i := range b {
		b[i] = byte(off + i*7 + c.id)
	}
	return slices.Clone(b)
}

func (c *client) loop(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		c.step()
	}
}

// step runs one operation, chosen at random with a mix that keeps most
// slots filled (so the daemon's descriptors stay steady).
func (c *client) step() {
	rel := c.pickFile()
	p := c.path(rel)
	f := c.files[rel]
	want := unix.Errno(0)
	if !c.parentOK(rel) {
		want = unix.ENOENT
	}
	switch n := c.rng.IntN(100); {
	case n < 12: // create + write
		data := c.data(c.rng.IntN(maxWrite))
		c.begin(fmt.Sprintf("write %s %d bytes", rel, len(data)))
		err := os.WriteFile(p, data, 0o644)
		c.end("write")
		if c.expect("write "+rel, err, want) && want == 0 {
			if f == nil {
				f = &file{xattrs: map[string]string{}}
				c.files[rel] = f
			}
			f.data = data
		}
	case n < 20: // append + fsync
		if f == nil {
			want = unix.ENOENT
		}
		data := c.data(c.rng.IntN(4096))
		c.begin(fmt.Sprintf("append+fsync %s %d bytes", rel, len(data)))
		var fd int
		err := c.sys(func() (err error) { fd, err = unix.Open(p, unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0); return })
		if err == nil {
			err = c.sys(func() (err error) { _, err = unix.Write(fd, data); return })
			if err == nil {
				err = c.sys(func() error { return unix.Fsync(fd) })
			}
			unix.Close(fd)
		}
		c.end("append+fsync")
		if c.expect("append+fsync "+rel, err, want) && want == 0 {
			f.data = append(f.data, data...)
		}
	case n < 26: // pwrite inside or past the end
		if f == nil {
			want = unix.ENOENT
		}
		var off int
		if f != nil {
			off = c.rng.IntN(len(f.data) + 4096)
		}
		data := c.data(c.rng.IntN(8192))
		c.begin(fmt.Sprintf("pwrite %s %d bytes at %d", rel, len(data), off))
		var fd int
		err := c.sys(func() (err error) { fd, err = unix.Open(p, unix.O_RDWR|unix.O_CLOEXEC, 0); return })
		if err == nil {
			err = c.sys(func() (err error) { _, err = unix.Pwrite(fd, data, int64(off)); return })
			unix.Close(fd)
		}
		c.end("pwrite")
		if c.expect("pwrite "+rel, err, want) && want == 0 && len(data) > 0 { // writing nothing extends nothing
			if end := off + len(data); end > len(f.data) {
				f.data = append(f.data, make([]byte, end-len(f.data))...)
			}
			copy(f.data[off:], data)
		}
	case n < 44: // read and compare
		if f == nil {
			want = unix.ENOENT
		}
		c.begin("read " + rel)
		got, err := os.ReadFile(p)
		c.end("read")
		if c.expect("read "+rel, err, want) && want == 0 && !bytes.Equal(got, f.data) {
			c.mismatch(rel, got, f.data)
		}
	case n < 56: // stat
		if f == nil {
			want = unix.ENOENT
		}
		var st unix.Stat_t
		c.begin("stat " + rel)
		err := c.sys(func() error { return unix.Lstat(p, &st) })
		c.end("stat")
		if c.expect("stat "+rel, err, want) && want == 0 && (st.Size != int64(len(f.data)) || st.Mode&unix.S_IFMT != unix.S_IFREG) {
			c.errorf("stat %s: size %d mode %#o, want %d, a regular file", rel, st.Size, st.Mode, len(f.data))
		}
	case n < 62: // truncate
		if f == nil {
			want = unix.ENOENT
		}
		size := c.rng.IntN(maxWrite)
		c.begin(fmt.Sprintf("truncate %s %d", rel, size))
		err := c.sys(func() error { return unix.Truncate(p, int64(size)) })
		c.end("truncate")
		if c.expect("truncate "+rel, err, want) && want == 0 {
			if size > len(f.data) {
				f.data = append(f.data, make([]byte, size-len(f.data))...)
			}
			f.data = f.data[:size]
		}
	case n < 70: // rename onto another slot
		dst := c.pickFile()
		switch {
		case f == nil:
			want = unix.ENOENT
		case !c.parentOK(dst):
			want = unix.ENOENT
		}
		c.begin("rename " + rel + " " + dst)
		err := os.Rename(p, c.path(dst))
		c.end("rename")
		if c.expect("rename "+rel+" "+dst, err, want) && want == 0 && dst != rel {
			c.files[dst] = f
			delete(c.files, rel)
			c.recreate(rel)
		}
	case n < 74: // unlink
		if f == nil {
			want = unix.ENOENT
		}
		c.begin("unlink " + rel)
		err := c.sys(func() error { return unix.Unlink(p) })
		c.end("unlink")
		if c.expect("unlink "+rel, err, want) && want == 0 {
			delete(c.files, rel)
			c.recreate(rel)
		}
	case n < 78: // mkdir or rmdir of the spare directory
		d := spareDir
		if !c.dirs[d] {
			c.begin("mkdir " + d)
			err := c.sys(func() error { return unix.Mkdir(c.path(d), 0o755) })
			c.end("mkdir")
			if c.expect("mkdir "+d, err, 0) {
				c.dirs[d] = true
			}
			return
		}
		c.begin("rmdir " + d)
		err := c.sys(func() error { return unix.Rmdir(c.path(d)) })
		c.end("rmdir")
		if c.expect("rmdir "+d, err, 0) {
			delete(c.dirs, d)
		}
		// A full directory refuses.
		full := dirSlots[c.rng.IntN(len(dirSlots))]
		c.begin("rmdir " + full)
		err = c.sys(func() error { return unix.Rmdir(c.path(full)) })
		c.end("rmdir")
		c.expect("rmdir "+full, err, unix.ENOTEMPTY)
	case n < 86: // readdir
		dir := ""
		if n := c.rng.IntN(len(dirSlots) + 2); n < len(dirSlots) {
			dir = dirSlots[n]
		} else if n == len(dirSlots) {
			dir = spareDir
		}
		want := unix.Errno(0)
		if dir != "" && !c.dirs[dir] {
			want = unix.ENOENT
		}
		c.begin("readdir " + dir)
		ents, err := os.ReadDir(c.path(dir))
		c.end("readdir")
		if c.expect("readdir "+dir, err, want) && want == 0 {
			var got, exp []string
			for _, e := range ents {
				got = append(got, e.Name())
			}
			for rel := range c.files {
				d, name, nested := strings.Cut(rel, "/")
				if dir == "" && !nested {
					exp = append(exp, d)
				} else if nested && d == dir {
					exp = append(exp, name)
				}
			}
			if dir == "" {
				for d := range c.dirs {
					exp = append(exp, d)
				}
			}
			sort.Strings(got)
			sort.Strings(exp)
			if !slices.Equal(got, exp) {
				c.errorf("readdir %q: %v, want %v", dir, got, exp)
			}
		}
	default: // xattr set + get
		if f == nil {
			want = unix.ENOENT
		}
		key := xattrKeys[c.rng.IntN(len(xattrKeys))]
		val := fmt.Sprintf("v%d-%d", c.id, c.rng.IntN(1000000))
		c.begin("setxattr " + rel)
		err := c.sys(func() error { return unix.Setxattr(p, key, []byte(val), 0) })
		c.end("setxattr")
		if !c.expect("setxattr "+rel, err, want) || want != 0 {
			return
		}
		f.xattrs[key] = val
		other := xattrKeys[c.rng.IntN(len(xattrKeys))]
		buf := make([]byte, 256)
		c.begin("getxattr " + rel)
		var n int
		err = c.sys(func() (err error) { n, err = unix.Getxattr(p, other, buf); return })
		c.end("getxattr")
		v, ok := f.xattrs[other]
		if !ok {
			c.expect("getxattr "+rel+" "+other, err, unix.ENODATA)
			return
		}
		if c.expect("getxattr "+rel+" "+other, err, 0) && string(buf[:n]) != v {
			c.errorf("getxattr %s %s: %q, want %q", rel, other, buf[:n], v)
		}
	}
}

// mismatch reports a read that differs from the model, with what the
// kernel and the backing file say and the client's last operations.
func (c *client) mismatch(rel string, got, want []byte) {
	first := 0
	for first < len(got) && first < len(want) && got[first] == want[first] {
		first++
	}
	var st unix.Stat_t
	unix.Lstat(c.path(rel), &st)
	again, err := os.ReadFile(c.path(rel))
	msg := fmt.Sprintf("read %s: %d bytes, want %d, first difference at %d; stat size %d; read again: %d bytes (%v, equal to the model: %v)",
		rel, len(got), len(want), first, st.Size, len(again), err, bytes.Equal(again, want))
	if c.backing != "" {
		b, err := os.ReadFile(filepath.Join(c.backing, rel))
		msg += fmt.Sprintf("; backing file: %d bytes (%v, equal to the model: %v, to what was read: %v)", len(b), err, bytes.Equal(b, want), bytes.Equal(b, got))
	}
	c.errorf("%s; last operations:\n    %s", msg, strings.Join(c.history, "\n    "))
}

// verifyAll compares the whole subtree with the model.
func (c *client) verifyAll() {
	var got []string
	filepath.Walk(c.root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			c.errorf("final walk: %v", err)
			return nil
		}
		rel, _ := filepath.Rel(c.root, p)
		if rel != "." {
			got = append(got, rel)
		}
		return nil
	})
	var exp []string
	for rel, f := range c.files {
		exp = append(exp, rel)
		data, err := os.ReadFile(c.path(rel))
		if err != nil {
			c.errorf("final read %s: %v", rel, err)
		} else if !bytes.Equal(data, f.data) {
			c.errorf("final read %s: %d bytes differ from the model's %d", rel, len(data), len(f.data))
		}
	}
	for d := range c.dirs {
		exp = append(exp, d)
	}
	sort.Strings(got)
	sort.Strings(exp)
	if !slices.Equal(got, exp) {
		c.errorf("final tree %v, want %v", got, exp)
	}
}
