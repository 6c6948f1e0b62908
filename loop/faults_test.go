package loop

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"evfs/aio"
)

func TestParseFaults(t *testing.T) {
	fs, err := ParseFaults("READ=EIO, write=ENOSPC,STATX=delay:20ms")
	if err != nil {
		t.Fatal(err)
	}
	want := []Fault{{Kind: aio.OpRead, Errno: unix.EIO}, {Kind: aio.OpWrite, Errno: unix.ENOSPC}, {Kind: aio.OpStatx, Delay: 20 * time.Millisecond}}
	if len(fs) != len(want) {
		t.Fatalf("got %+v", fs)
	}
	for i := range want {
		if fs[i] != want[i] {
			t.Errorf("fault %d = %+v, want %+v", i, fs[i], want[i])
		}
	}
	for _, bad := range []string{"READ", "NOPE=EIO", "READ=ENOTANERRNO", "READ=delay:x", "READ=delay:-1s"} {
		if _, err := ParseFaults(bad); err == nil {
			t.Errorf("ParseFaults(%q) accepted", bad)
		}
	}
}

func TestFaultsFailChosenKindOnly(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			cfg := testConfig(b)
			cfg.Workers, cfg.Faults = 2, []Fault{{Kind: aio.OpRead, Errno: unix.EIO}}
			if b == "uring-ringwait" {
				t.Skip("same injection path as uring")
			}
			l := runLoop(t, cfg)
			res := make(chan [2]int64, 1)
			l.Post("test", func() {
				var got [2]int64
				left := 2
				fin := func() {
					if left--; left == 0 {
						res <- got
					}
				}
				l.Submit(aio.Pread(-1, make([]byte, 1), 0), func(r int64) { got[0] = r; fin() })
				l.Submit(aio.Nop(), func(r int64) { got[1] = r; fin() })
			})
			got := <-res
			if got[0] != -int64(unix.EIO) || got[1] != 0 {
				t.Fatalf("read = %d (want -EIO), nop = %d (want 0)", got[0], got[1])
			}
			if s := l.Snapshot(); s.InFlight != 0 {
				t.Fatalf("in flight %d", s.InFlight)
			}
		})
	}
}
