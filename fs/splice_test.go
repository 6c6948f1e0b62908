package fs_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSpliceReads: on a tmpfs backing root, O_DIRECT reads of 32–128 KiB
// are answered from a pipe (Snapshot.Spliced counts them) with the
// backing file's bytes: whole reads, reads that end at the end of the
// file (a short splice, finished as a plain read), reads past it, and 16
// readers at once (more than the session's pipes: the rest are copied).
// Smaller reads, and every read with --resident-data=false, are not
// spliced.
func TestSpliceReads(t *testing.T) {
	forMemoryRoot(t, func(t *testing.T, backend string, on bool) {
		m, mnt, backing := memoryRoot(t, backend, on)
		const size = 1<<20 + 12345
		data := randomBytes(rand.New(rand.NewPCG(7, 7)), size)
		mustWriteFile(t, filepath.Join(backing, "f"), data, 0o644)
		f, err := os.OpenFile(filepath.Join(mnt, "f"), os.O_RDONLY|unix.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := alignedBuf(128 << 10)
		read := func(off int64, n int) {
			t.Helper()
			clear(buf)
			want := data[min(off, size):min(off+int64(n), size)]
			k, err := f.ReadAt(buf[:n], off)
			if k != len(want) || !bytes.Equal(buf[:k], want) || (k == n && err != nil) {
				t.Fatalf("read %d at %d: %d bytes (%v), want %d; equal %v", n, off, k, err, len(want), bytes.Equal(buf[:k], want))
			}
		}
		spliced := func() uint64 { return snapshot(t, m).Spliced }
		before := spliced()
		for i := int64(0); i < 8; i++ {
			read(i*128<<10, 128<<10) // whole reads, the last ending at 1 MiB
		}
		read(size-4096-8192, 32<<10) // ends at the end of the file
		read(size-100, 64<<10)       // the last bytes only
		read(size+4096, 128<<10)     // past the end
		big := spliced() - before
		read(0, 16<<10) // under spliceMin
		read(16<<10, 4096)
		small := spliced() - before - big
		switch {
		case on && big < 8:
			t.Errorf("%d of the 8 whole 128 KiB reads were spliced", big)
		case !on && big != 0:
			t.Errorf("--resident-data=false: %d reads spliced, want 0", big)
		case small != 0:
			t.Errorf("%d reads under 32 KiB were spliced", small)
		}

		var wg sync.WaitGroup
		errs := make(chan string, 16)
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				b := alignedBuf(64 << 10)
				for i := 0; i < 20; i++ {
					off := int64((g*20+i)%16) * 64 << 10
					if k, err := f.ReadAt(b, off); k != len(b) || err != nil || !bytes.Equal(b, data[off:off+int64(k)]) {
						errs <- "concurrent read: wrong bytes or error"
						return
					}
				}
			}(g)
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Fatal(e)
		}
	})
}
