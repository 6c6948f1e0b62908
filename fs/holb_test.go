package fs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"evfs/fs"
	"evfs/fs/fstest"
)

// TestHeadOfLine is the property the design exists for: while one
// backing read is stuck (delayed 1 s inside the backend), other requests
// are served at once — except by the sync backend, whose loop runs the
// stuck syscall itself and so holds every request behind it.
func TestHeadOfLine(t *testing.T) {
	const delay = time.Second
	fstest.ForEachBackend(t, func(t *testing.T, backend string) {
		mnt, back := fstest.Dirs(t)
		content := bytes.Repeat([]byte("slow data "), 1000)
		mustWriteFile(t, filepath.Join(back, "slow"), content, 0o644)
		mustWriteFile(t, filepath.Join(back, "other"), []byte("fast"), 0o644)
		fstest.MountAt(t, backend, back, mnt, func(c *fs.Config) {
			c.TestDelayRead = "slow"
			c.TestDelay = delay
		})
		// Warm up the path to "other" once (so only its stat is timed).
		lstat(t, filepath.Join(mnt, "other"))

		f, err := os.Open(filepath.Join(mnt, "slow"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		type result struct {
			data []byte
			err  error
			took time.Duration
		}
		readDone := make(chan result, 1)
		start := time.Now()
		go func() {
			buf := make([]byte, len(content)+100)
			n, err := f.ReadAt(buf, 0)
			if n == len(content) {
				err = nil // io.EOF after a complete read
			}
			readDone <- result{buf[:n], err, time.Since(start)}
		}()
		time.Sleep(100 * time.Millisecond)

		// Entry and attribute timeouts are 0: this stat is a LOOKUP and a
		// GETATTR served by the loop.
		t0 := time.Now()
		st := lstat(t, filepath.Join(mnt, "other"))
		took := time.Since(t0)
		if st.Size != 4 {
			t.Errorf("stat of other: size %d", st.Size)
		}

		res := <-readDone
		if res.err != nil {
			t.Fatalf("slow read: %v", res.err)
		}
		if !bytes.Equal(res.data, content) {
			t.Errorf("slow read returned %d bytes that differ from the file's %d", len(res.data), len(content))
		}
		if res.took < delay*9/10 {
			t.Errorf("slow read took %v: the injected %v delay did not apply", res.took, delay)
		}
		t.Logf("%s: stat during the stuck read took %v; the read took %v", backend, took, res.took)
		if backend == "sync" {
			if took < 500*time.Millisecond {
				t.Errorf("sync: stat took %v while the loop was stuck in a read; it should have waited (> 500ms)", took)
			}
		} else if took >= 100*time.Millisecond {
			t.Errorf("%s: stat took %v while another request's read was stuck; want < 100ms", backend, took)
		}
	})
}
