package loop

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"evfs/aio"
)

// Fault is test-only fault injection: every op of Kind fails with Errno
// instead of running, or is delayed by Delay inside the backend (the loop
// keeps serving meanwhile, except on the sync backend). Faults are set
// once at start (EVFS_TEST_FAULTS, see ParseFaults) and read only by the
// loop goroutine.
type Fault struct {
	Kind  aio.Kind
	Errno unix.Errno
	Delay time.Duration
}

// ParseFaults reads a fault list such as
// "READ=EIO,WRITE=ENOSPC,OPENAT=EACCES,STATX=delay:200ms": one entry per
// op kind (the aio kind names: READ, WRITE, WRITEV, OPENAT, STATX, …).
func ParseFaults(s string) ([]Fault, error) {
	var out []Fault
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, what, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("fault %q: want KIND=ERRNO or KIND=delay:DURATION", item)
		}
		kind, ok := aio.KindByName(strings.ToUpper(name))
		if !ok {
			return nil, fmt.Errorf("fault %q: unknown op kind %q", item, name)
		}
		f := Fault{Kind: kind}
		if d, ok := strings.CutPrefix(what, "delay:"); ok {
			dur, err := time.ParseDuration(d)
			if err != nil || dur <= 0 {
				return nil, fmt.Errorf("fault %q: bad delay %q", item, d)
			}
			f.Delay = dur
		} else {
			e := errnoByName(strings.ToUpper(what))
			if e == 0 {
				return nil, fmt.Errorf("fault %q: unknown errno %q", item, what)
			}
			f.Errno = e
		}
		out = append(out, f)
	}
	return out, nil
}

// inject applies the configured fault for op's kind, if any. Loop-only.
func (l *Loop) inject(op *aio.Op) {
	f := l.faults[op.Kind]
	if f == nil {
		return
	}
	if f.Errno != 0 {
		op.Fail = f.Errno
	}
	if f.Delay > 0 {
		op.Delay = f.Delay
	}
}

// errnoByName maps "EIO" to unix.EIO (x/sys has only the reverse).
func errnoByName(name string) unix.Errno {
	for e := unix.Errno(1); e < 4096; e++ {
		if unix.ErrnoName(e) == name {
			return e
		}
	}
	return 0
}
