package main

// The workloads of evfs bench, the data set they run on, and the timed
// loop that runs them. Every workload measures the daemon rather than a
// kernel cache: metadata workloads run with entry/attr timeouts of 0
// (every name is looked up and every attribute fetched again), data
// workloads use O_DIRECT. The loops call raw system calls on
// precomputed names and aligned buffers: no os.File, no allocation per
// operation.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The data set.
const (
	benchStatFiles    = 10000    // stat/f00000…: stat, open-close, stat-x32
	benchReaddirFiles = 1000     // readdir/e0000…
	benchDataSize     = 64 << 20 // data/file: the read workloads
	benchWriteSize    = 16 << 20 // write/file: the write workload
)

// benchDataSetDesc is the data set in words, for the report.
var benchDataSetDesc = fmt.Sprintf("stat/: %d empty files; readdir/: %d empty files; data/file: %d MiB random; write/file: %d MiB random; scratch/ and rename/ for the namespace workloads",
	benchStatFiles, benchReaddirFiles, benchDataSize>>20, benchWriteSize>>20)

// benchOp is one operation of one client. It must not allocate.
type benchOp func() error

// benchClients is a workload made ready on one target: one op per client
// and a cleanup.
type benchClients struct {
	ops   []benchOp
	close func()
}

// benchWorkload is one workload.
type benchWorkload struct {
	Name    string
	Desc    string
	Clients int  // concurrent clients, each with its own fds and buffers
	Thruput bool // the interesting number is ops/s rather than latency
	setup   func(root string, clients int) (benchClients, error)
}

// benchWorkloadList is every workload, in report order.
var benchWorkloadList = []benchWorkload{
	{Name: "stat", Clients: 1, Desc: "fstatat of one of 10 000 files in turn (LOOKUP + GETATTR)", setup: benchSetupStat},
	{Name: "open-close", Clients: 1, Desc: "openat O_RDONLY + close of one of 10 000 files in turn", setup: benchSetupOpenClose},
	{Name: "create-unlink", Clients: 1, Desc: "openat O_CREAT|O_EXCL + close + unlinkat", setup: benchSetupCreateUnlink},
	{Name: "mkdir-rmdir", Clients: 1, Desc: "mkdirat + unlinkat AT_REMOVEDIR", setup: benchSetupMkdirRmdir},
	{Name: "rename", Clients: 1, Desc: "renameat of a file between two names", setup: benchSetupRename},
	{Name: "readdir-1000", Clients: 1, Desc: "open a 1 000-entry directory, getdents64 to the end, close", setup: benchSetupReaddir},
	{Name: "randread-4k", Clients: 1, Desc: "4 KiB pread at a random aligned offset, O_DIRECT, QD1", setup: benchSetupRandRead},
	{Name: "randwrite-4k", Clients: 1, Desc: "4 KiB pwrite at a random aligned offset, O_DIRECT, QD1", setup: benchSetupRandWrite},
	{Name: "seqread-128k", Clients: 1, Desc: "128 KiB sequential pread, O_DIRECT, QD1", setup: benchSetupSeqRead},
	{Name: "randread-4k-x64", Clients: 64, Thruput: true, Desc: "64 goroutines, each with its own fd, 4 KiB random pread, O_DIRECT", setup: benchSetupRandRead},
	{Name: "stat-x32", Clients: 32, Thruput: true, Desc: "32 goroutines fstatat'ing the 10 000 files", setup: benchSetupStat},
}

func benchWorkloadByName(name string) (benchWorkload, bool) {
	for _, w := range benchWorkloadList {
		if w.Name == name {
			return w, true
		}
	}
	return benchWorkload{}, false
}

// benchMakeDataSet writes the data set into dir (which must exist).
func benchMakeDataSet(dir string) error {
	for _, d := range []string{"stat", "readdir", "data", "write", "scratch", "rename"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for i := range benchStatFiles {
		if err := os.WriteFile(filepath.Join(dir, "stat", benchStatName(i)), nil, 0o644); err != nil {
			return err
		}
	}
	for i := range benchReaddirFiles {
		if err := os.WriteFile(filepath.Join(dir, "readdir", fmt.Sprintf("e%04d", i)), nil, 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "rename", "a"), []byte("rename me\n"), 0o644); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range []struct {
		name string
		size int
	}{{"data/file", benchDataSize}, {"write/file", benchWriteSize}} {
		buf := make([]byte, f.size)
		for i := 0; i+8 <= len(buf); i += 8 {
			*(*uint64)(unsafe.Pointer(&buf[i])) = rng.Uint64()
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), buf, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func benchStatName(i int) string { return fmt.Sprintf("f%05d", i) }

// benchCStrings turns names into NUL-terminated byte pointers once, so the
// loops pass them to the kernel without converting.
func benchCStrings(names []string) ([]*byte, error) {
	out := make([]*byte, len(names))
	for i, n := range names {
		p, err := unix.BytePtrFromString(n)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// Raw system calls on precomputed names.

func benchErrno(e unix.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

func benchFstatat(dirfd int, name *byte, st *unix.Stat_t) error {
	_, _, e := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(st)), unix.AT_SYMLINK_NOFOLLOW, 0, 0)
	return benchErrno(e)
}

func benchOpenat(dirfd int, name *byte, flags int, mode uint32) (int, error) {
	fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
		uintptr(flags|unix.O_CLOEXEC), uintptr(mode), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

func benchClose(fd int) error {
	_, _, e := unix.Syscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return benchErrno(e)
}

func benchUnlinkat(dirfd int, name *byte, flags int) error {
	_, _, e := unix.Syscall(unix.SYS_UNLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)), uintptr(flags))
	return benchErrno(e)
}

func benchMkdirat(dirfd int, name *byte, mode uint32) error {
	_, _, e := unix.Syscall(unix.SYS_MKDIRAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)), uintptr(mode))
	return benchErrno(e)
}

func benchRenameat(dirfd int, from, to *byte) error {
	_, _, e := unix.Syscall6(unix.SYS_RENAMEAT, uintptr(dirfd), uintptr(unsafe.Pointer(from)),
		uintptr(dirfd), uintptr(unsafe.Pointer(to)), 0, 0)
	return benchErrno(e)
}

func benchPread(fd int, buf []byte, off int64) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_PREAD64, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(off), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func benchPwrite(fd int, buf []byte, off int64) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_PWRITE64, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(off), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func benchGetdents(fd int, buf []byte) (int, error) {
	n, _, e := unix.Syscall(unix.SYS_GETDENTS64, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// benchAligned returns page-aligned anonymous memory for O_DIRECT.
func benchAligned(size int) ([]byte, func(), error) {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %d bytes: %w", size, err)
	}
	return b, func() { _ = unix.Munmap(b) }, nil
}

// benchOpError names a failed operation; built only on failure.
type benchOpError struct {
	op   string
	name string
	off  int64
	err  error
}

func (e *benchOpError) Error() string {
	if e.name != "" {
		return fmt.Sprintf("%s %s: %v", e.op, e.name, e.err)
	}
	return fmt.Sprintf("%s at offset %d: %v", e.op, e.off, e.err)
}

func (e *benchOpError) Unwrap() error { return e.err }

func benchOpenDir(root, rel string) (int, error) {
	fd, err := unix.Open(filepath.Join(root, rel), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", filepath.Join(root, rel), err)
	}
	return fd, nil
}

// benchCleanup collects closers.
type benchCleanup []func()

func (c benchCleanup) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// benchStatSet opens the stat data set's directory and prepares its
// file names (also as C strings for the raw syscalls).
func benchStatSet(root string) (int, []string, []*byte, error) {
	dirfd, err := benchOpenDir(root, "stat")
	if err != nil {
		return -1, nil, nil, err
	}
	names := make([]string, benchStatFiles)
	for i := range names {
		names[i] = benchStatName(i)
	}
	cnames, err := benchCStrings(names)
	if err != nil {
		unix.Close(dirfd)
		return -1, nil, nil, err
	}
	return dirfd, names, cnames, nil
}

func benchSetupStat(root string, clients int) (benchClients, error) {
	dirfd, names, cnames, err := benchStatSet(root)
	if err != nil {
		return benchClients{}, err
	}
	var bc benchClients
	for c := range clients {
		i := c * benchStatFiles / clients
		var st unix.Stat_t
		bc.ops = append(bc.ops, func() error {
			i++
			if i == benchStatFiles {
				i = 0
			}
			if err := benchFstatat(dirfd, cnames[i], &st); err != nil {
				return &benchOpError{op: "fstatat", name: names[i], err: err}
			}
			return nil
		})
	}
	bc.close = func() { unix.Close(dirfd) }
	return bc, nil
}

func benchSetupOpenClose(root string, clients int) (benchClients, error) {
	dirfd, names, cnames, err := benchStatSet(root)
	if err != nil {
		return benchClients{}, err
	}
	var bc benchClients
	for c := range clients {
		i := c * benchStatFiles / clients
		bc.ops = append(bc.ops, func() error {
			i++
			if i == benchStatFiles {
				i = 0
			}
			fd, err := benchOpenat(dirfd, cnames[i], unix.O_RDONLY, 0)
			if err != nil {
				return &benchOpError{op: "openat", name: names[i], err: err}
			}
			if err := benchClose(fd); err != nil {
				return &benchOpError{op: "close", name: names[i], err: err}
			}
			return nil
		})
	}
	bc.close = func() { unix.Close(dirfd) }
	return bc, nil
}

// benchScratchNames are the names create-unlink and mkdir-rmdir cycle
// through; each is gone again before it is reused.
func benchScratchNames(prefix string, c int) ([]string, []*byte, error) {
	names := make([]string, 4096)
	for i := range names {
		names[i] = fmt.Sprintf("%s%02d-%04d", prefix, c, i)
	}
	cn, err := benchCStrings(names)
	return names, cn, err
}

func benchSetupCreateUnlink(root string, clients int) (benchClients, error) {
	dirfd, err := benchOpenDir(root, "scratch")
	if err != nil {
		return benchClients{}, err
	}
	var bc benchClients
	for c := range clients {
		names, cnames, err := benchScratchNames("c", c)
		if err != nil {
			unix.Close(dirfd)
			return benchClients{}, err
		}
		i := 0
		bc.ops = append(bc.ops, func() error {
			i = (i + 1) % len(names)
			fd, err := benchOpenat(dirfd, cnames[i], unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644)
			if err != nil {
				return &benchOpError{op: "openat O_CREAT", name: names[i], err: err}
			}
			if err := benchClose(fd); err != nil {
				return &benchOpError{op: "close", name: names[i], err: err}
			}
			if err := benchUnlinkat(dirfd, cnames[i], 0); err != nil {
				return &benchOpError{op: "unlinkat", name: names[i], err: err}
			}
			return nil
		})
	}
	bc.close = func() { unix.Close(dirfd) }
	return bc, nil
}

func benchSetupMkdirRmdir(root string, clients int) (benchClients, error) {
	dirfd, err := benchOpenDir(root, "scratch")
	if err != nil {
		return benchClients{}, err
	}
	var bc benchClients
	for c := range clients {
		names, cnames, err := benchScratchNames("d", c)
		if err != nil {
			unix.Close(dirfd)
			return benchClients{}, err
		}
		i := 0
		bc.ops = append(bc.ops, func() error {
			i = (i + 1) % len(names)
			if err := benchMkdirat(dirfd, cnames[i], 0o755); err != nil {
				return &benchOpError{op: "mkdirat", name: names[i], err: err}
			}
			if err := benchUnlinkat(dirfd, cnames[i], unix.AT_REMOVEDIR); err != nil {
				return &benchOpError{op: "rmdir", name: names[i], err: err}
			}
			return nil
		})
	}
	bc.close = func() { unix.Close(dirfd) }
	return bc, nil
}

// rename moves rename/a to rename/b and back; whichever name the file
// has when the workload starts is where it begins.
func benchSetupRename(root string, clients int) (benchClients, error) {
	if clients != 1 {
		return benchClients{}, errors.New("rename runs with one client")
	}
	dirfd, err := benchOpenDir(root, "rename")
	if err != nil {
		return benchClients{}, err
	}
	cn, err := benchCStrings([]string{"a", "b"})
	if err != nil {
		unix.Close(dirfd)
		return benchClients{}, err
	}
	var st unix.Stat_t
	cur := 0
	if benchFstatat(dirfd, cn[0], &st) != nil {
		cur = 1
	}
	names := []string{"a", "b"}
	op := func() error {
		if err := benchRenameat(dirfd, cn[cur], cn[1-cur]); err != nil {
			return &benchOpError{op: "renameat", name: names[cur] + " → " + names[1-cur], err: err}
		}
		cur = 1 - cur
		return nil
	}
	return benchClients{ops: []benchOp{op}, close: func() { unix.Close(dirfd) }}, nil
}

func benchSetupReaddir(root string, clients int) (benchClients, error) {
	dirfd, err := benchOpenDir(root, "")
	if err != nil {
		return benchClients{}, err
	}
	cn, err := benchCStrings([]string{"readdir"})
	if err != nil {
		unix.Close(dirfd)
		return benchClients{}, err
	}
	var bc benchClients
	var cleanup benchCleanup
	cleanup = append(cleanup, func() { unix.Close(dirfd) })
	for range clients {
		buf, free, err := benchAligned(64 << 10)
		if err != nil {
			cleanup.run()
			return benchClients{}, err
		}
		cleanup = append(cleanup, free)
		checked := false
		bc.ops = append(bc.ops, func() error {
			fd, err := benchOpenat(dirfd, cn[0], unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				return &benchOpError{op: "open", name: "readdir/", err: err}
			}
			entries := 0
			for {
				n, err := benchGetdents(fd, buf)
				if err != nil {
					benchClose(fd)
					return &benchOpError{op: "getdents64", name: "readdir/", err: err}
				}
				if n == 0 {
					break
				}
				if !checked {
					entries += benchCountDirents(buf[:n])
				}
			}
			if err := benchClose(fd); err != nil {
				return &benchOpError{op: "close", name: "readdir/", err: err}
			}
			if !checked {
				// Once per run: the listing must be complete.
				// . and .. are not counted: passthrough_hp leaves them out.
				if want := benchReaddirFiles; entries != want {
					return &benchOpError{op: "getdents64", name: "readdir/",
						err: fmt.Errorf("listed %d names, want %d", entries, want)}
				}
				checked = true
			}
			return nil
		})
	}
	bc.close = cleanup.run
	return bc, nil
}

// benchCountDirents counts the linux_dirent64 records in buf other than
// . and ..
func benchCountDirents(buf []byte) int {
	n := 0
	for off := 0; off+19 <= len(buf); {
		reclen := int(*(*uint16)(unsafe.Pointer(&buf[off+16])))
		if reclen == 0 || off+reclen > len(buf) {
			break
		}
		name := buf[off+19 : off+reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if s := string(name); s != "." && s != ".." {
			n++
		}
		off += reclen
	}
	return n
}

// benchSetupBlockIO opens path once per client with O_DIRECT and flags,
// with an aligned buffer of size bytes each.
func benchSetupBlockIO(root, path string, flags, clients, size int, fill bool) (fds []int, bufs [][]byte, cleanup benchCleanup, err error) {
	for range clients {
		fd, err := unix.Open(filepath.Join(root, path), flags|unix.O_DIRECT|unix.O_CLOEXEC, 0)
		if err != nil {
			cleanup.run()
			return nil, nil, nil, fmt.Errorf("open %s O_DIRECT: %w", filepath.Join(root, path), err)
		}
		cleanup = append(cleanup, func() { unix.Close(fd) })
		buf, free, err := benchAligned(size)
		if err != nil {
			cleanup.run()
			return nil, nil, nil, err
		}
		cleanup = append(cleanup, free)
		if fill {
			for i := range buf {
				buf[i] = byte(i*7 + 3)
			}
		}
		fds, bufs = append(fds, fd), append(bufs, buf)
	}
	return fds, bufs, cleanup, nil
}

func benchSetupRandRead(root string, clients int) (benchClients, error) {
	return benchSetupRandIO(root, clients, false)
}

func benchSetupRandWrite(root string, clients int) (benchClients, error) {
	return benchSetupRandIO(root, clients, true)
}

// benchSetupRandIO gives each client an O_DIRECT fd and a 4 KiB buffer
// for preads (or pwrites) at random aligned offsets.
func benchSetupRandIO(root string, clients int, write bool) (benchClients, error) {
	const bs = 4096
	path, flags, size, what := "data/file", unix.O_RDONLY, benchDataSize, "pread 4 KiB"
	io := benchPread
	if write {
		path, flags, size, what = "write/file", unix.O_WRONLY, benchWriteSize, "pwrite 4 KiB"
		io = benchPwrite
	}
	fds, bufs, cleanup, err := benchSetupBlockIO(root, path, flags, clients, bs, write)
	if err != nil {
		return benchClients{}, err
	}
	var bc benchClients
	for c := range clients {
		fd, buf := fds[c], bufs[c]
		rng := rand.New(rand.NewPCG(uint64(c)+1, uint64(time.Now().UnixNano())))
		bc.ops = append(bc.ops, func() error {
			off := int64(rng.IntN(size/bs)) * bs
			n, err := io(fd, buf, off)
			if err != nil {
				return &benchOpError{op: what, off: off, err: err}
			}
			if n != bs {
				return &benchOpError{op: what, off: off, err: fmt.Errorf("short transfer: %d bytes", n)}
			}
			return nil
		})
	}
	bc.close = cleanup.run
	return bc, nil
}

func benchSetupSeqRead(root string, clients int) (benchClients, error) {
	const bs = 128 << 10
	fds, bufs, cleanup, err := benchSetupBlockIO(root, "data/file", unix.O_RDONLY, clients, bs, false)
	if err != nil {
		return benchClients{}, err
	}
	var bc benchClients
	for c := range clients {
		fd, buf := fds[c], bufs[c]
		off := int64(c) * (benchDataSize / int64(clients)) / bs * bs
		bc.ops = append(bc.ops, func() error {
			n, err := benchPread(fd, buf, off)
			if err != nil {
				return &benchOpError{op: "pread 128 KiB", off: off, err: err}
			}
			if n != bs {
				return &benchOpError{op: "pread 128 KiB", off: off, err: fmt.Errorf("short read: %d bytes", n)}
			}
			off += bs
			if off >= benchDataSize {
				off = 0
			}
			return nil
		})
	}
	bc.close = cleanup.run
	return bc, nil
}

// benchRunConfig says how long a workload runs.
type benchRunConfig struct {
	Warmup   time.Duration
	Duration time.Duration                    // measured phase, unless Ops > 0
	Ops      int64                            // fixed operation count of the measured phase (all clients together)
	Pin      func() (unpin func(), err error) // if set, each client goroutine runs pinned by it (--placement)
}

// benchRunResult is one measured run.
type benchRunResult struct {
	Lat     []int64 // ns per operation, all clients
	Elapsed time.Duration
	CPU     float64 // CPU-seconds of the serving process in the measured phase
	CPUOK   bool
}

// benchRun runs w against root: setup, warm-up, then the measured phase
// with cpu() read before and after. stop aborts it (Ctrl-C, watchdog).
func benchRun(w benchWorkload, root string, rc benchRunConfig, cpu func() (float64, error), stop *atomic.Bool) (benchRunResult, error) {
	bc, err := w.setup(root, w.Clients)
	if err != nil {
		return benchRunResult{}, fmt.Errorf("setup: %w", err)
	}
	defer bc.close()

	if rc.Warmup > 0 {
		if _, _, err := benchPhase(bc.ops, time.Now().Add(rc.Warmup), 0, rc.Pin, stop, false); err != nil {
			return benchRunResult{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	var res benchRunResult
	var cpu0 float64
	var cpuErr error
	if cpu != nil {
		cpu0, cpuErr = cpu()
	}
	start := time.Now()
	deadline := start.Add(rc.Duration)
	if rc.Ops > 0 {
		deadline = time.Time{}
	}
	lat, end, err := benchPhase(bc.ops, deadline, rc.Ops, rc.Pin, stop, true)
	if err != nil {
		return benchRunResult{}, err
	}
	res.Lat, res.Elapsed = lat, end.Sub(start)
	if cpu != nil && cpuErr == nil {
		if cpu1, err := cpu(); err == nil {
			res.CPU, res.CPUOK = cpu1-cpu0, true
		}
	}
	return res, nil
}

// benchPhase runs every client until deadline (or, with a zero deadline,
// ops operations shared out among them), recording latencies if record.
// The first error stops every client. It returns when the last client
// finished.
func benchPhase(ops []benchOp, deadline time.Time, total int64, pin func() (func(), error), stop *atomic.Bool, record bool) ([]int64, time.Time, error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		all      []int64
		lastEnd  time.Time
		failed   atomic.Bool
	)
	per := make([]int64, len(ops))
	if deadline.IsZero() {
		for i := range per {
			per[i] = total / int64(len(ops))
			if int64(i) < total%int64(len(ops)) {
				per[i]++
			}
		}
	}
	for c, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(err error) {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				failed.Store(true)
			}
			if pin != nil {
				unpin, err := pin()
				if err != nil {
					fail(err)
					return
				}
				defer unpin()
			}
			var lat []int64
			if record {
				lat = make([]int64, 0, 1<<14)
			}
			n := int64(0)
			t := time.Now()
			for {
				if stop.Load() || failed.Load() {
					break
				}
				if deadline.IsZero() && n >= per[c] {
					break
				}
				err := op()
				t2 := time.Now()
				if err != nil {
					fail(err)
					break
				}
				if record {
					lat = append(lat, int64(t2.Sub(t)))
				}
				n++
				t = t2
				if !deadline.IsZero() && t2.After(deadline) {
					break
				}
			}
			mu.Lock()
			all = append(all, lat...)
			if t.After(lastEnd) {
				lastEnd = t
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, lastEnd, firstErr
	}
	if stop.Load() {
		return nil, lastEnd, errBenchStopped
	}
	return all, lastEnd, nil
}

var errBenchStopped = errors.New("stopped")
