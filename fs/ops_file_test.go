package fs_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"evfs/fs/fstest"
)

// TestOpenModes: each access mode allows exactly what it should, and the
// data lands in the backing file.
func TestOpenModes(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		p := filepath.Join(mnt, "f")
		mustWriteFile(t, p, []byte("initial"), 0o644)
		buf := make([]byte, 16)

		ro, err := unix.Open(p, unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		n, err := unix.Pread(ro, buf, 0)
		if err != nil || string(buf[:n]) != "initial" {
			t.Errorf("O_RDONLY read: %q, %v", buf[:n], err)
		}
		_, err = unix.Pwrite(ro, []byte("x"), 0)
		wantErrno(t, "write on O_RDONLY", err, unix.EBADF)
		unix.Close(ro)

		wo, err := unix.Open(p, unix.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Pwrite(wo, []byte("WR"), 0); err != nil {
			t.Errorf("O_WRONLY write: %v", err)
		}
		_, err = unix.Pread(wo, buf, 0)
		wantErrno(t, "read on O_WRONLY", err, unix.EBADF)
		unix.Close(wo)
		if got := string(mustReadFile(t, filepath.Join(back, "f"))); got != "WRitial" {
			t.Errorf("backing content after O_WRONLY write: %q", got)
		}

		rw, err := unix.Open(p, unix.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Pwrite(rw, []byte("rw"), 5); err != nil {
			t.Errorf("O_RDWR write: %v", err)
		}
		n, err = unix.Pread(rw, buf, 0)
		if err != nil || string(buf[:n]) != "WRitirw" {
			t.Errorf("O_RDWR read back: %q, %v", buf[:n], err)
		}
		unix.Close(rw)

		// O_PATH never reaches the file system's open.
		pfd, err := unix.Open(p, unix.O_PATH, 0)
		if err != nil {
			t.Errorf("O_PATH: %v", err)
		} else {
			unix.Close(pfd)
		}
		// O_NOFOLLOW only concerns a symlink in the last component.
		nf, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			t.Errorf("O_NOFOLLOW on a regular file: %v", err)
		} else {
			unix.Close(nf)
		}
		for _, fl := range []int{unix.O_NOATIME, unix.O_SYNC, unix.O_DSYNC, unix.O_NONBLOCK, unix.O_CLOEXEC} {
			fd, err := unix.Open(p, unix.O_RDWR|fl, 0)
			if err != nil {
				t.Errorf("open with flag %#o: %v", fl, err)
				continue
			}
			if _, err := unix.Pwrite(fd, []byte("W"), 0); err != nil {
				t.Errorf("write with flag %#o: %v", fl, err)
			}
			unix.Close(fd)
		}
		_, err = unix.Open(mnt, unix.O_WRONLY, 0)
		wantErrno(t, "open dir O_WRONLY", err, unix.EISDIR)
		_, err = unix.Open(filepath.Join(mnt, "missing"), unix.O_RDONLY, 0)
		wantErrno(t, "open missing", err, unix.ENOENT)
		_, err = unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		wantErrno(t, "open file O_DIRECTORY", err, unix.ENOTDIR)
	})
}

// TestCreate: O_CREAT makes the file with the requested mode; O_EXCL on
// an existing name is EEXIST; O_TRUNC empties.
func TestCreate(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		p := filepath.Join(mnt, "new")
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Write(fd, []byte("created")); err != nil {
			t.Error(err)
		}
		unix.Close(fd)
		st := lstat(t, filepath.Join(back, "new"))
		if st.Mode != unix.S_IFREG|0o640 || st.Size != 7 {
			t.Errorf("backing file: mode %#o size %d", st.Mode, st.Size)
		}
		_, err = unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR, 0o640)
		wantErrno(t, "O_CREAT|O_EXCL on existing", err, unix.EEXIST)
		// O_CREAT without O_EXCL opens the existing file.
		fd, err = unix.Open(p, unix.O_CREAT|unix.O_RDONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		if st := lstat(t, filepath.Join(back, "new")); st.Mode != unix.S_IFREG|0o640 {
			t.Errorf("O_CREAT on existing changed the mode to %#o", st.Mode)
		}
		// O_CREAT|O_EXCL through a symlink (even dangling) is EEXIST.
		if err := os.Symlink("nowhere", filepath.Join(mnt, "dangling")); err != nil {
			t.Fatal(err)
		}
		_, err = unix.Open(filepath.Join(mnt, "dangling"), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
		wantErrno(t, "O_CREAT|O_EXCL on dangling symlink", err, unix.EEXIST)

		// O_TRUNC.
		fd, err = unix.Open(p, unix.O_WRONLY|unix.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st := lstat(t, filepath.Join(back, "new")); st.Size != 0 {
			t.Errorf("size after O_TRUNC: %d", st.Size)
		}
		if _, err := unix.Write(fd, []byte("ab")); err != nil {
			t.Error(err)
		}
		unix.Close(fd)
		if got := string(mustReadFile(t, filepath.Join(back, "new"))); got != "ab" {
			t.Errorf("content after O_TRUNC + write: %q", got)
		}
		// O_CREAT|O_TRUNC on an existing file.
		fd, err = unix.Open(p, unix.O_CREAT|unix.O_TRUNC|unix.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		if st := lstat(t, filepath.Join(back, "new")); st.Size != 0 || st.Mode != unix.S_IFREG|0o640 {
			t.Errorf("after O_CREAT|O_TRUNC: size %d mode %#o", st.Size, st.Mode)
		}
	})
}

// TestAppend: two descriptors appending concurrently lose nothing.
func TestAppend(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		p := filepath.Join(mnt, "log")
		mustWriteFile(t, p, []byte("head\n"), 0o644)
		const perWriter = 200
		var wg sync.WaitGroup
		for w := 0; w < 2; w++ {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer f.Close()
				line := bytes.Repeat([]byte{byte('a' + w)}, 99)
				line = append(line, '\n')
				for i := 0; i < perWriter; i++ {
					if _, err := f.Write(line); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		data := mustReadFile(t, filepath.Join(back, "log"))
		if want := 5 + 2*perWriter*100; len(data) != want {
			t.Fatalf("appended file has %d bytes, want %d", len(data), want)
		}
		if !bytes.HasPrefix(data, []byte("head\n")) {
			t.Error("append overwrote the head")
		}
		counts := map[byte]int{}
		for _, line := range bytes.Split(bytes.TrimSuffix(data[5:], []byte("\n")), []byte("\n")) {
			if len(line) != 99 || bytes.Count(line, line[:1]) != 99 {
				t.Fatalf("interleaved or torn line %q", line)
			}
			counts[line[0]]++
		}
		if counts['a'] != perWriter || counts['b'] != perWriter {
			t.Errorf("lines per writer: %v, want %d each", counts, perWriter)
		}
		// Writes at an explicit offset still append on an O_APPEND fd.
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := unix.Pwrite(int(f.Fd()), []byte("tail"), 0); err != nil {
			t.Fatal(err)
		}
		if data := mustReadFile(t, p); !bytes.HasSuffix(data, []byte("\ntail")) || !bytes.HasPrefix(data, []byte("head\n")) {
			t.Errorf("pwrite on O_APPEND fd did not append")
		}
	})
}

// TestDirectIO: O_DIRECT I/O with aligned buffers moves the right bytes;
// where the backing fs refuses O_DIRECT, the mount refuses it the same way.
func TestDirectIO(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		native := nativeDir(t)
		nfd, nerr := unix.Open(filepath.Join(native, "f"), unix.O_CREAT|unix.O_RDWR|unix.O_DIRECT, 0o644)
		if nerr == nil {
			unix.Close(nfd)
		}
		fd, err := unix.Open(filepath.Join(mnt, "f"), unix.O_CREAT|unix.O_RDWR|unix.O_DIRECT, 0o644)
		if nerr != nil {
			wantErrno(t, "O_DIRECT open where the backing fs refuses it", err, errnoOf(nerr))
			return
		}
		if err != nil {
			t.Fatalf("O_DIRECT open: %v", err)
		}
		defer unix.Close(fd)
		const size = 1 << 20
		mem, err := unix.Mmap(-1, 0, 2*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Munmap(mem)
		out, in := mem[:size], mem[size:]
		copy(out, randomBytes(rand.New(rand.NewPCG(1, 2)), size))
		for _, off := range []int64{0, size, 4096 * 3} {
			if n, err := unix.Pwrite(fd, out, off); err != nil || n != size {
				t.Fatalf("O_DIRECT pwrite at %d: %d, %v", off, n, err)
			}
			clear(in)
			if n, err := unix.Pread(fd, in, off); err != nil || n != size {
				t.Fatalf("O_DIRECT pread at %d: %d, %v", off, n, err)
			}
			if !bytes.Equal(in, out) {
				t.Errorf("O_DIRECT round trip at %d differs", off)
			}
			onDisk := mustReadFile(t, filepath.Join(back, "f"))
			if !bytes.Equal(onDisk[off:off+size], out) {
				t.Errorf("backing file at %d differs from what was written with O_DIRECT", off)
			}
		}
		// The daemon (this process) opened the backing file O_DIRECT too.
		if !backingFdHasFlag(t, filepath.Join(back, "f"), unix.O_DIRECT) {
			t.Error("no backing descriptor of the file is open with O_DIRECT")
		}
		// A 4 KiB-aligned small write in the middle.
		if _, err := unix.Pwrite(fd, out[:4096], 8192); err != nil {
			t.Errorf("O_DIRECT 4 KiB pwrite: %v", err)
		}
	})
}

// TestDirectReadOneRoundTrip: an O_DIRECT open is answered
// FOPEN_DIRECT_IO, so a read is one READ request, not a GETATTR (the
// kernel's auto_inval_data check, with attr_timeout 0) and a READ; the
// file stays coherent with other opens, and can still be mapped shared.
func TestDirectReadOneRoundTrip(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Dirs(t)
		m := fstest.MountAt(t, backend, back, mnt)
		want := randomBytes(rand.New(rand.NewPCG(3, 4)), 64<<10)
		mustWriteFile(t, filepath.Join(back, "f"), want, 0o644)
		p := filepath.Join(mnt, "f")
		fd, err := unix.Open(p, unix.O_RDWR|unix.O_DIRECT, 0)
		if err != nil {
			t.Skipf("O_DIRECT open: %v (the backing fs refuses it; TestDirectIO covers that)", err)
		}
		defer unix.Close(fd)
		buf := alignedBuf(8192)
		reads, getattrs := opCount(m, "READ"), opCount(m, "GETATTR")
		for i := range 50 {
			off := int64(i*3%16) * 4096
			if n, err := unix.Pread(fd, buf[:4096], off); err != nil || n != 4096 {
				t.Fatalf("O_DIRECT pread at %d: %d, %v", off, n, err)
			}
			if !bytes.Equal(buf[:4096], want[off:off+4096]) {
				t.Fatalf("O_DIRECT pread at %d: wrong bytes", off)
			}
		}
		if n := opCount(m, "READ") - reads; n != 50 {
			t.Errorf("50 O_DIRECT reads: %d READ requests, want 50", n)
		}
		if n := opCount(m, "GETATTR") - getattrs; n != 0 {
			t.Errorf("50 O_DIRECT reads: %d GETATTR requests, want 0", n)
		}

		// A direct write is seen by a cached open, and a shared mapping's
		// write by a direct read and in the backing file.
		copy(buf[:4096], bytes.Repeat([]byte("D"), 4096))
		if _, err := unix.Pwrite(fd, buf[:4096], 4096); err != nil {
			t.Fatalf("O_DIRECT pwrite: %v", err)
		}
		if got := mustReadFile(t, p); !bytes.Equal(got[4096:8192], buf[:4096]) {
			t.Error("a cached read after an O_DIRECT write returned old bytes")
		}
		mem, err := unix.Mmap(fd, 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			t.Fatalf("shared mapping of an O_DIRECT file: %v", err)
		}
		copy(mem, "mapped")
		if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
			t.Fatal(err)
		}
		unix.Munmap(mem)
		if _, err := unix.Pread(fd, buf[:4096], 0); err != nil || string(buf[:6]) != "mapped" {
			t.Errorf("O_DIRECT read after a write through a shared mapping: %q, %v", buf[:6], err)
		}
		if got := mustReadFile(t, filepath.Join(back, "f")); string(got[:6]) != "mapped" {
			t.Errorf("backing file after a write through a shared mapping: %q", got[:6])
		}

		// O_DIRECT cleared with fcntl: unaligned I/O is allowed again
		// (the backing fd follows; where the backing fs enforces O_DIRECT
		// alignment, as ext4 does, these failed with EINVAL).
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_DIRECT); err != nil {
			t.Fatal(err)
		}
		small := make([]byte, 5)
		if n, err := unix.Pread(fd, small, 1); err != nil || string(small[:n]) != "apped" {
			t.Errorf("unaligned read after clearing O_DIRECT: %q, %v", small[:max(n, 0)], err)
		}
		if _, err := unix.Pwrite(fd, []byte("XYZ"), 3); err != nil {
			t.Errorf("unaligned write after clearing O_DIRECT: %v", err)
		}
		if got := mustReadFile(t, filepath.Join(back, "f")); string(got[:6]) != "mapXYZ" {
			t.Errorf("backing file after an unaligned write: %q, want mapXYZ…", got[:6])
		}
	})
}

// TestReadWrite: reads and writes at many offsets and sizes, including
// past EOF (holes) and short reads at EOF, agree with the backing file.
func TestReadWrite(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		f, err := os.OpenFile(filepath.Join(mnt, "rw"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		model := []byte{}
		rng := rand.New(rand.NewPCG(3, 4))
		for i := 0; i < 200; i++ {
			off := rng.IntN(3 << 20)
			n := rng.IntN(300_000) + 1
			chunk := randomBytes(rng, n)
			if _, err := f.WriteAt(chunk, int64(off)); err != nil {
				t.Fatal(err)
			}
			if end := off + n; end > len(model) {
				model = append(model, make([]byte, end-len(model))...)
			}
			copy(model[off:], chunk)
		}
		if got := mustReadFile(t, filepath.Join(back, "rw")); !bytes.Equal(got, model) {
			t.Fatal("backing file differs from the writes made through the mount")
		}
		for i := 0; i < 100; i++ {
			off := rng.IntN(len(model) + 1000)
			buf := make([]byte, rng.IntN(500_000)+1)
			n, err := f.ReadAt(buf, int64(off))
			var want []byte
			if off < len(model) {
				want = model[off:min(len(model), off+len(buf))]
			}
			if !bytes.Equal(buf[:n], want) {
				t.Fatalf("ReadAt(%d, %d): %d bytes differ from the model", off, len(buf), n)
			}
			if n < len(buf) && err != io.EOF {
				t.Fatalf("short read without EOF: %v", err)
			}
		}
	})
}

// TestFlushFsync: close reports success (FLUSH), fsync and fdatasync
// succeed on files (FSYNC) and on directories (FSYNCDIR), and a dup'd fd
// keeps working after the other is closed.
func TestFlushFsync(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Dirs(t)
		m := fstest.MountAt(t, backend, back, mnt)
		p := filepath.Join(mnt, "f")
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Write(fd, []byte("durable")); err != nil {
			t.Fatal(err)
		}
		if err := unix.Fsync(fd); err != nil {
			t.Errorf("fsync: %v", err)
		}
		if err := unix.Fdatasync(fd); err != nil {
			t.Errorf("fdatasync: %v", err)
		}
		if err := unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE); err != nil {
			t.Errorf("sync_file_range: %v", err)
		}
		fd2, err := unix.Dup(fd)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Close(fd); err != nil { // FLUSH, no RELEASE yet
			t.Errorf("close (flush): %v", err)
		}
		if _, err := unix.Write(fd2, []byte("!")); err != nil {
			t.Errorf("write on dup after close of the original: %v", err)
		}
		if err := unix.Close(fd2); err != nil {
			t.Errorf("close: %v", err)
		}
		if got := string(mustReadFile(t, filepath.Join(back, "f"))); got != "durable!" {
			t.Errorf("backing content %q", got)
		}

		// FSYNCDIR.
		if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
			t.Fatal(err)
		}
		dfd, err := unix.Open(filepath.Join(mnt, "d"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(dfd)
		if err := unix.Fsync(dfd); err != nil {
			t.Errorf("fsync of a directory: %v", err)
		}
		if err := unix.Fdatasync(dfd); err != nil {
			t.Errorf("fdatasync of a directory: %v", err)
		}
		for _, name := range []string{"FLUSH", "FSYNC", "FSYNCDIR"} {
			if opCount(m, name) == 0 {
				t.Errorf("no %s request reached evfs", name)
			}
		}
		unix.Sync()
		if err := unix.Syncfs(dfd); err != nil {
			t.Errorf("syncfs: %v", err)
		}
	})
}

// TestFallocate: plain allocation extends, KEEP_SIZE allocates without
// growing, PUNCH_HOLE|KEEP_SIZE zeroes a range and frees its blocks.
func TestFallocate(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		bp := filepath.Join(back, "f")
		f, err := os.OpenFile(filepath.Join(mnt, "f"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fd := int(f.Fd())
		if err := unix.Fallocate(fd, 0, 0, 1<<20); err != nil {
			t.Fatalf("fallocate: %v", err)
		}
		if st := lstat(t, bp); st.Size != 1<<20 || st.Blocks < (1<<20)/512 {
			t.Errorf("after fallocate 1 MiB: size %d blocks %d", st.Size, st.Blocks)
		}
		if err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 1<<20, 1<<20); err != nil {
			t.Fatalf("fallocate KEEP_SIZE: %v", err)
		}
		if st := lstat(t, bp); st.Size != 1<<20 || st.Blocks < (2<<20)/512 {
			t.Errorf("after KEEP_SIZE: size %d blocks %d, want size 1 MiB and 2 MiB allocated", st.Size, st.Blocks)
		}
		sameAttrs(t, "after KEEP_SIZE", lstat(t, filepath.Join(mnt, "f")), lstat(t, bp))

		data := bytes.Repeat([]byte{0xAB}, 1<<20)
		if _, err := f.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		before := lstat(t, bp).Blocks
		if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 64<<10, 128<<10); err != nil {
			t.Fatalf("punch hole: %v", err)
		}
		st := lstat(t, bp)
		if st.Size != 1<<20 {
			t.Errorf("punch hole changed the size to %d", st.Size)
		}
		if st.Blocks > before-(128<<10)/512 {
			t.Errorf("punch hole freed too little: blocks %d -> %d", before, st.Blocks)
		}
		want := bytes.Clone(data)
		clear(want[64<<10 : 192<<10])
		got := make([]byte, 1<<20)
		if _, err := f.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Error("content after punch hole: range not zeroed or data outside it lost")
		}
		if onDisk := mustReadFile(t, bp); !bytes.Equal(onDisk, want) {
			t.Error("backing content after punch hole differs")
		}
		wantErrno(t, "punch hole without KEEP_SIZE", unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE, 0, 4096), unix.EOPNOTSUPP)
		ro, err := os.Open(filepath.Join(mnt, "f"))
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		wantErrno(t, "fallocate on read-only fd", unix.Fallocate(int(ro.Fd()), 0, 0, 4096), unix.EBADF)
	})
}

// TestLseekDataHole: SEEK_DATA and SEEK_HOLE on a sparse file find the
// same extents through the mount as on the backing file.
func TestLseekDataHole(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		const mib = 1 << 20
		f, err := os.OpenFile(filepath.Join(mnt, "sparse"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		// data at [1 MiB, 1 MiB+64 KiB) and [4 MiB, 4 MiB+4 KiB), size 8 MiB.
		if _, err := f.WriteAt(bytes.Repeat([]byte{1}, 64<<10), mib); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(bytes.Repeat([]byte{2}, 4096), 4*mib); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(8 * mib); err != nil {
			t.Fatal(err)
		}
		bf, err := os.Open(filepath.Join(back, "sparse"))
		if err != nil {
			t.Fatal(err)
		}
		defer bf.Close()
		for _, whence := range []int{unix.SEEK_DATA, unix.SEEK_HOLE} {
			for _, off := range []int64{0, mib - 1, mib, mib + 100, 2 * mib, 4 * mib, 4*mib + 4096, 7 * mib, 8*mib - 1, 8 * mib, 9 * mib} {
				want, werr := unix.Seek(int(bf.Fd()), off, whence)
				got, gerr := unix.Seek(int(f.Fd()), off, whence)
				if got != want || errnoOf(gerr) != errnoOf(werr) {
					t.Errorf("lseek(%d, whence %d) = %d, %v through the mount; %d, %v on the backing file", off, whence, got, gerr, want, werr)
				}
			}
		}
		// The first data is where it was written.
		if off, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_DATA); err != nil || off != mib {
			t.Errorf("SEEK_DATA from 0: %d, %v; want %d", off, err, mib)
		}
		if off, err := unix.Seek(int(f.Fd()), 9*mib, unix.SEEK_DATA); errnoOf(err) != unix.ENXIO {
			t.Errorf("SEEK_DATA past EOF: %d, %v; want ENXIO", off, err)
		}
	})
}

// TestCopyFileRange copies between two files of the mount, at offsets,
// and the destination holds the source's bytes.
func TestCopyFileRange(t *testing.T) {
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		src := randomBytes(rand.New(rand.NewPCG(5, 6)), 3<<20+123)
		mustWriteFile(t, filepath.Join(mnt, "src"), src, 0o644)
		in, err := os.Open(filepath.Join(mnt, "src"))
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		out, err := os.OpenFile(filepath.Join(mnt, "dst"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		copyRange := func(offIn, offOut int64, n int) {
			t.Helper()
			for n > 0 {
				c, err := unix.CopyFileRange(int(in.Fd()), &offIn, int(out.Fd()), &offOut, n, 0)
				if err != nil {
					t.Fatalf("copy_file_range: %v", err)
				}
				if c == 0 {
					t.Fatalf("copy_file_range: 0 bytes with %d left", n)
				}
				n -= c
			}
		}
		copyRange(0, 0, len(src))
		copyRange(1000, int64(len(src))+5000, 70_000)
		want := append(bytes.Clone(src), make([]byte, 5000)...)
		want = append(want, src[1000:71_000]...)
		if got := mustReadFile(t, filepath.Join(back, "dst")); !bytes.Equal(got, want) {
			t.Errorf("destination (%d bytes) differs from the copied source ranges (%d bytes)", len(got), len(want))
		}
		if got := mustReadFile(t, filepath.Join(mnt, "dst")); !bytes.Equal(got, want) {
			t.Error("destination read through the mount differs")
		}
		// Copying from EOF copies nothing.
		offIn, offOut := int64(len(src)), int64(0)
		if n, err := unix.CopyFileRange(int(in.Fd()), &offIn, int(out.Fd()), &offOut, 100, 0); n != 0 || err != nil {
			t.Errorf("copy_file_range at EOF: %d, %v", n, err)
		}
	})
}

// TestLargeFile writes a large file through the mount and reads it back:
// both the mount and the backing file must have the written sha256.
func TestLargeFile(t *testing.T) {
	size := 256 << 20
	if raceEnabled {
		// The race detector slows the copy loops ~10x: 64 MiB still
		// crosses every max_write and readahead boundary many times.
		size = 64 << 20
	}
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Mount(t, backend)
		f, err := os.OpenFile(filepath.Join(mnt, "big"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		const chunk = 1<<20 + 4096 + 7 // odd size: writes straddle requests
		rng := rand.New(rand.NewPCG(7, 8))
		for left := size; left > 0; {
			data := randomBytes(rng, min(left, chunk))
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			h.Write(data)
			left -= len(data)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		want := h.Sum(nil)
		for _, p := range []string{filepath.Join(mnt, "big"), filepath.Join(back, "big")} {
			if got := sha256File(t, p); !bytes.Equal(got, want) {
				t.Errorf("sha256 of %s is %x, want %x", p, got, want)
			}
		}
		if st := lstat(t, filepath.Join(back, "big")); st.Size != int64(size) {
			t.Errorf("backing size %d, want %d", st.Size, size)
		}
	})
}

// backingFdHasFlag reports whether this process (the daemon) holds an fd
// open on path whose open flags include flag.
func backingFdHasFlag(t testing.TB, path string, flag int) bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || target != path {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		var pos, flags int
		if _, err := fmt.Sscanf(string(info), "pos:\t%d\nflags:\t%o", &pos, &flags); err == nil && flags&flag != 0 {
			return true
		}
	}
	return false
}

func sha256File(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	return h.Sum(nil)
}
