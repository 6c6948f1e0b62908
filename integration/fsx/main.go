// Command fsx is a randomized file exerciser in the spirit of the classic
// fsx: a seeded sequence of write, read, truncate, fallocate, punch-hole,
// zero-range, mmap read/write, copy_file_range, fsync and reopen on one
// file, each checked against an in-memory model of what the file must
// hold. After every operation the size and the whole content are
// compared; every -verify ops the file's cached pages are dropped first,
// so the check reads what the file system (the daemon) actually stored.
//
// On a mismatch it prints the seed, the operation, the first differing
// offset and the last operations, and exits 1. Rerun with the same -seed
// and -ops to reproduce.
//
//	fsx -file /mnt/x [-seed N] [-ops N] [-maxlen BYTES] [-maxop BYTES]
//	    [-no-fallocate] [-no-punch] [-no-zero] [-no-copy] [-no-mmap] [-no-mapwrite]
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

type config struct {
	file                     string
	seed                     uint64
	ops                      int
	maxLen, maxOp            int
	verifyEvery              int
	history                  int
	noFallocate, noPunch     bool
	noZero, noCopy           bool
	noMmap, noMapWrite, keep bool
	verbose                  bool
}

func main() {
	var c config
	seed := flag.Int64("seed", -1, "random seed (default: from the clock; printed)")
	flag.StringVar(&c.file, "file", "", "file to exercise (created or truncated; required)")
	flag.IntVar(&c.ops, "ops", 10000, "number of operations")
	flag.IntVar(&c.maxLen, "maxlen", 256*1024, "largest file size")
	flag.IntVar(&c.maxOp, "maxop", 64*1024, "largest single read/write/copy")
	flag.IntVar(&c.verifyEvery, "verify", 8, "drop the file's cached pages before the full check every N ops (0: never)")
	flag.IntVar(&c.history, "history", 40, "operations to print on failure")
	flag.BoolVar(&c.noFallocate, "no-fallocate", false, "no fallocate (mode 0 / KEEP_SIZE)")
	flag.BoolVar(&c.noPunch, "no-punch", false, "no FALLOC_FL_PUNCH_HOLE")
	flag.BoolVar(&c.noZero, "no-zero", false, "no FALLOC_FL_ZERO_RANGE")
	flag.BoolVar(&c.noCopy, "no-copy", false, "no copy_file_range")
	flag.BoolVar(&c.noMmap, "no-mmap", false, "no mmap reads or writes")
	flag.BoolVar(&c.noMapWrite, "no-mapwrite", false, "no mmap writes")
	flag.BoolVar(&c.keep, "keep", false, "keep the file (and FILE.src) afterwards")
	flag.BoolVar(&c.verbose, "v", false, "print every operation")
	flag.Parse()
	if c.file == "" || flag.NArg() != 0 || c.maxLen < 1 || c.maxOp < 1 || c.ops < 0 {
		fmt.Fprintln(os.Stderr, "usage: fsx -file PATH [-seed N] [-ops N] [flags]; see -h")
		os.Exit(2)
	}
	c.seed = uint64(*seed)
	if *seed < 0 {
		c.seed = uint64(time.Now().UnixNano()) & (1<<62 - 1)
	}
	os.Exit(run(&c))
}

// fsx is one run: the file, its model, and the recent history.
type fsx struct {
	c       *config
	rng     *rand.Rand
	fd      int
	src     int    // source file for copy_file_range
	srcData []byte // its content
	model   []byte
	n       int      // current op number (1-based)
	log     []string // ring of recent ops
	buf     []byte
	page    int
	counts  map[string]int
}

type failure struct{ msg string }

func (f failure) Error() string { return f.msg }

func (x *fsx) failf(format string, a ...any) {
	panic(failure{fmt.Sprintf(format, a...)})
}

func run(c *config) (code int) {
	x := &fsx{c: c, rng: rand.New(rand.NewPCG(c.seed, c.seed^0x9e3779b97f4a7c15)),
		page: os.Getpagesize(), counts: map[string]int{}}
	fmt.Printf("fsx: file %s seed %d ops %d maxlen %d maxop %d\n", c.file, c.seed, c.ops, c.maxLen, c.maxOp)
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(failure)
			if !ok {
				panic(r)
			}
			x.report(f.msg)
			code = 1
		}
	}()
	x.open(unix.O_CREAT | unix.O_TRUNC)
	defer x.cleanup()
	x.setupSource()
	x.verify(true)
	for x.n = 1; x.n <= c.ops; x.n++ {
		x.step()
		x.verify(c.verifyEvery > 0 && x.n%c.verifyEvery == 0)
	}
	var names []string
	for _, k := range []string{"write", "read", "truncate", "fallocate", "punch", "zero", "mapread", "mapwrite", "copy", "fsync", "reopen"} {
		if x.counts[k] > 0 {
			names = append(names, fmt.Sprintf("%s %d", k, x.counts[k]))
		}
	}
	fmt.Printf("fsx: ok: %d ops in %v, final size %d (%s)\n", c.ops, time.Since(start).Round(time.Millisecond), len(x.model), strings.Join(names, ", "))
	return 0
}

func (x *fsx) cleanup() {
	unix.Close(x.fd)
	if x.src > 0 {
		unix.Close(x.src)
	}
	if !x.c.keep {
		os.Remove(x.c.file + ".src")
	}
}

func (x *fsx) report(msg string) {
	fmt.Printf("fsx: FAIL at op %d (seed %d): %s\n", x.n, x.c.seed, msg)
	fmt.Printf("fsx: model size %d; reproduce with: fsx -file %s -seed %d -ops %d\n", len(x.model), x.c.file, x.c.seed, x.n)
	fmt.Printf("fsx: last %d operations:\n", len(x.log))
	for _, l := range x.log {
		fmt.Println("   ", l)
	}
}

func (x *fsx) record(format string, a ...any) {
	s := fmt.Sprintf("%6d ", x.n) + fmt.Sprintf(format, a...)
	if x.c.verbose {
		fmt.Println(s)
	}
	x.log = append(x.log, s)
	if len(x.log) > x.c.history {
		x.log = x.log[1:]
	}
}

func (x *fsx) open(extra int) {
	fd, err := unix.Open(x.c.file, unix.O_RDWR|unix.O_CLOEXEC|extra, 0o644)
	if err != nil {
		x.failf("open %s: %v", x.c.file, err)
	}
	x.fd = fd
}

func (x *fsx) setupSource() {
	if x.c.noCopy {
		return
	}
	name := x.c.file + ".src"
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		x.failf("open %s: %v", name, err)
	}
	x.src = fd
	x.srcData = x.random(x.c.maxLen)
	x.pwriteAll(fd, x.srcData, 0, "writing the copy source")
}

func (x *fsx) random(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := x.rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func (x *fsx) pwriteAll(fd int, b []byte, off int64, what string) {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err != nil {
			x.failf("%s: pwrite(off %d, len %d): %v", what, off, len(b), err)
		}
		if n == 0 {
			x.failf("%s: pwrite(off %d, len %d) wrote 0 bytes", what, off, len(b))
		}
		b, off = b[n:], off+int64(n)
	}
}

// resize sets the model's size, zero-filling growth.
func (x *fsx) resize(n int) {
	if n <= len(x.model) {
		x.model = x.model[:n]
		return
	}
	x.model = append(x.model, make([]byte, n-len(x.model))...)
}

// rangeIn picks [off, off+n) with n >= 1 and off+n <= limit (limit >= 1).
func (x *fsx) rangeIn(limit int) (int, int) {
	off := x.rng.IntN(limit)
	n := 1 + x.rng.IntN(min(x.c.maxOp, limit-off))
	return off, n
}

func (x *fsx) step() {
	type op struct {
		name   string
		weight int
		ok     bool
		f      func()
	}
	size := len(x.model)
	ops := []op{
		{"write", 20, true, x.opWrite},
		{"read", 12, true, x.opRead},
		{"truncate", 6, true, x.opTruncate},
		{"fallocate", 4, !x.c.noFallocate, x.opFallocate},
		{"punch", 4, !x.c.noPunch && size > 0, x.opPunch},
		{"zero", 3, !x.c.noZero, x.opZero},
		{"mapread", 6, !x.c.noMmap && size > 0, x.opMapRead},
		{"mapwrite", 5, !x.c.noMmap && !x.c.noMapWrite && size > 0, x.opMapWrite},
		{"copy", 6, !x.c.noCopy, x.opCopy},
		{"fsync", 1, true, x.opFsync},
		{"reopen", 1, true, x.opReopen},
	}
	total := 0
	for _, o := range ops {
		if o.ok {
			total += o.weight
		}
	}
	r := x.rng.IntN(total)
	for _, o := range ops {
		if !o.ok {
			continue
		}
		if r < o.weight {
			x.counts[o.name]++
			o.f()
			return
		}
		r -= o.weight
	}
}

func (x *fsx) opWrite() {
	off, n := x.rangeIn(x.c.maxLen)
	data := x.random(n)
	x.record("write     off %#x len %#x (size %#x -> %#x)", off, n, len(x.model), max(len(x.model), off+n))
	x.pwriteAll(x.fd, data, int64(off), "write")
	if off+n > len(x.model) {
		x.resize(off + n)
	}
	copy(x.model[off:], data)
}

func (x *fsx) opRead() {
	size := len(x.model)
	off, n := x.rangeIn(max(size, 1) + x.c.maxOp/4) // sometimes past EOF
	x.record("read      off %#x len %#x (size %#x)", off, n, size)
	buf := make([]byte, n)
	got, err := unix.Pread(x.fd, buf, int64(off))
	if err != nil {
		x.failf("pread(off %#x, len %#x): %v", off, n, err)
	}
	want := 0
	if off < size {
		want = min(n, size-off)
	}
	if got < want {
		// A short read is legal only at EOF; retry the rest once.
		more, err := unix.Pread(x.fd, buf[got:], int64(off+got))
		if err != nil {
			x.failf("pread(off %#x, len %#x): %v", off+got, n-got, err)
		}
		got += more
	}
	if got != want {
		x.failf("pread(off %#x, len %#x) returned %d bytes, want %d (size %d)", off, n, got, want, size)
	}
	x.compare("pread", buf[:got], x.model[min(off, size):min(off, size)+want], off)
}

func (x *fsx) opTruncate() {
	n := x.rng.IntN(x.c.maxLen + 1)
	x.record("truncate  to %#x (from %#x)", n, len(x.model))
	if err := unix.Ftruncate(x.fd, int64(n)); err != nil {
		x.failf("ftruncate(%#x): %v", n, err)
	}
	x.resize(n)
}

func (x *fsx) opFallocate() {
	off, n := x.rangeIn(x.c.maxLen)
	mode := uint32(0)
	name := "fallocate"
	if x.rng.IntN(2) == 0 {
		mode, name = unix.FALLOC_FL_KEEP_SIZE, "fallocate KEEP_SIZE"
	}
	x.record("%-9s off %#x len %#x (size %#x)", name, off, n, len(x.model))
	if err := unix.Fallocate(x.fd, mode, int64(off), int64(n)); err != nil {
		x.failf("%s(off %#x, len %#x): %v", name, off, n, err)
	}
	if mode == 0 && off+n > len(x.model) {
		x.resize(off + n)
	}
}

func (x *fsx) opPunch() {
	size := len(x.model)
	off, n := x.rangeIn(size)
	x.record("punch     off %#x len %#x (size %#x)", off, n, size)
	if err := unix.Fallocate(x.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(n)); err != nil {
		x.failf("fallocate(PUNCH_HOLE|KEEP_SIZE, off %#x, len %#x): %v", off, n, err)
	}
	clear(x.model[off:min(off+n, size)])
}

func (x *fsx) opZero() {
	off, n := x.rangeIn(x.c.maxLen)
	mode := uint32(unix.FALLOC_FL_ZERO_RANGE)
	name := "zero"
	if x.rng.IntN(2) == 0 {
		mode |= unix.FALLOC_FL_KEEP_SIZE
		name = "zero KEEP"
	}
	size := len(x.model)
	x.record("%-9s off %#x len %#x (size %#x)", name, off, n, size)
	if err := unix.Fallocate(x.fd, mode, int64(off), int64(n)); err != nil {
		x.failf("fallocate(%s, off %#x, len %#x): %v", name, off, n, err)
	}
	if mode&unix.FALLOC_FL_KEEP_SIZE == 0 && off+n > size {
		x.resize(off + n)
	}
	if off < len(x.model) {
		clear(x.model[off:min(off+n, len(x.model))])
	}
}

func (x *fsx) mapFile(prot int) []byte {
	m, err := unix.Mmap(x.fd, 0, len(x.model), prot, unix.MAP_SHARED)
	if err != nil {
		x.failf("mmap(len %#x): %v", len(x.model), err)
	}
	return m
}

func (x *fsx) opMapRead() {
	size := len(x.model)
	off, n := x.rangeIn(size)
	x.record("mapread   off %#x len %#x (size %#x)", off, n, size)
	m := x.mapFile(unix.PROT_READ)
	got := bytes.Clone(m[off : off+n])
	if err := unix.Munmap(m); err != nil {
		x.failf("munmap: %v", err)
	}
	x.compare("mmap read", got, x.model[off:off+n], off)
}

func (x *fsx) opMapWrite() {
	size := len(x.model)
	off, n := x.rangeIn(size)
	data := x.random(n)
	x.record("mapwrite  off %#x len %#x (size %#x)", off, n, size)
	m := x.mapFile(unix.PROT_READ | unix.PROT_WRITE)
	copy(m[off:], data)
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		x.failf("msync: %v", err)
	}
	if err := unix.Munmap(m); err != nil {
		x.failf("munmap: %v", err)
	}
	copy(x.model[off:], data)
}

func (x *fsx) opCopy() {
	// From the source file, or within the file itself (non-overlapping).
	// Offsets and length are drawn for the file they are read from: a
	// self-copy with no room past its source falls back to the source file
	// with a range of its own (a range drawn for the file itself could run
	// past the source's end and come back short).
	size := len(x.model)
	if size > 0 && x.rng.IntN(3) == 0 {
		soff, n := x.rangeIn(size)
		doff := x.copyTarget(n)
		if doff < soff+n && soff < doff+n {
			// Overlapping ranges of one file are EINVAL: move the target past the source.
			doff = soff + n
		}
		if doff+n <= x.c.maxLen {
			x.copyRange(x.fd, bytes.Clone(x.model), "self", soff, doff, n)
			return
		}
	}
	soff, n := x.rangeIn(len(x.srcData))
	x.copyRange(x.src, x.srcData, "src", soff, x.copyTarget(n), n)
}

// copyTarget draws a target offset for an n-byte copy inside maxLen.
func (x *fsx) copyTarget(n int) int {
	return x.rng.IntN(x.c.maxLen - min(n, x.c.maxLen-1))
}

// copyRange copies n bytes at soff of srcFd (whose contents are srcData) to
// doff of the file under test and updates the model.
func (x *fsx) copyRange(srcFd int, srcData []byte, from string, soff, doff, n int) {
	size := len(x.model)
	x.record("copy      %s off %#x -> off %#x len %#x (size %#x)", from, soff, doff, n, size)
	so, do := int64(soff), int64(doff)
	done := 0
	for done < n {
		c, err := unix.CopyFileRange(srcFd, &so, x.fd, &do, n-done, 0)
		if err != nil {
			x.failf("copy_file_range(%s off %#x -> off %#x, len %#x): %v", from, so, do, n-done, err)
		}
		if c == 0 {
			break
		}
		done += c
	}
	if done != n {
		x.failf("copy_file_range copied %d of %d bytes (source has %d)", done, n, len(srcData))
	}
	if doff+n > len(x.model) {
		x.resize(doff + n)
	}
	copy(x.model[doff:], srcData[soff:soff+n])
}

func (x *fsx) opFsync() {
	x.record("fsync")
	if err := unix.Fsync(x.fd); err != nil {
		x.failf("fsync: %v", err)
	}
}

func (x *fsx) opReopen() {
	x.record("reopen")
	if err := unix.Close(x.fd); err != nil {
		x.failf("close: %v", err)
	}
	x.open(0)
}

// verify checks size and content; with drop it first evicts the file's
// cached pages so the reads reach the file system.
func (x *fsx) verify(drop bool) {
	var st unix.Stat_t
	if err := unix.Fstat(x.fd, &st); err != nil {
		x.failf("fstat: %v", err)
	}
	if st.Size != int64(len(x.model)) {
		x.failf("fstat size %d (%#x), model says %d (%#x)", st.Size, st.Size, len(x.model), len(x.model))
	}
	if drop {
		if err := unix.Fadvise(x.fd, 0, 0, unix.FADV_DONTNEED); err != nil {
			x.failf("fadvise(DONTNEED): %v", err)
		}
	}
	if cap(x.buf) < len(x.model)+1 {
		x.buf = make([]byte, x.c.maxLen+1+x.c.maxOp)
	}
	buf := x.buf[:len(x.model)+1]
	got := 0
	for got < len(buf) {
		n, err := unix.Pread(x.fd, buf[got:], int64(got))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			x.failf("full read at %#x: %v", got, err)
		}
		if n == 0 {
			break
		}
		got += n
	}
	what := "full read"
	if drop {
		what = "full read after dropping the cache"
	}
	if got != len(x.model) {
		x.failf("%s returned %d bytes, model size %d", what, got, len(x.model))
	}
	x.compare(what, buf[:got], x.model, 0)
}

func (x *fsx) compare(what string, got, want []byte, base int) {
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	j := i
	for j < len(got) && j < len(want) && got[j] != want[j] {
		j++
	}
	lo := max(0, i-8)
	hi := min(i+24, len(got), len(want))
	x.failf("%s: %d bytes differ from the model, first at file offset %#x (differing run of %#x bytes)\n  want %x\n  got  %x",
		what, countDiff(got, want), base+i, j-i, want[lo:hi], got[lo:hi])
}

func countDiff(a, b []byte) int {
	n := 0
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			n++
		}
	}
	return n + max(len(a), len(b)) - min(len(a), len(b))
}
