package aio

import (
	"errors"
	"fmt"
)

// Completion is one finished op: the id it was submitted under and its
// result (>= 0 on success, -errno on failure, -ECANCELED if cancelled
// before it ran).
type Completion struct {
	ID  uint64
	Res int64
}

// Backend runs Ops asynchronously. All methods except Close are called only
// from the loop goroutine; a backend signals finished work by calling the
// wake function it was created with (from any goroutine), after which the
// loop calls Reap.
type Backend interface {
	// Name is "pool", "sync" or "uring".
	Name() string
	// Submit queues op under id. It never blocks on backing I/O (except in
	// the sync backend, by design). The op stays owned by the backend until
	// its completion has been reaped.
	Submit(id uint64, op *Op)
	// Flush hands everything queued since the last Flush to the workers or
	// the kernel: one batch per loop turn.
	Flush()
	// Reap appends finished completions to dst and returns it.
	Reap(dst []Completion) []Completion
	// Cancel asks that op (submitted under id) not run. A completion for id
	// still arrives: -ECANCELED if the cancel won, the real result if not.
	Cancel(id uint64, op *Op)
	// OnWorkers is the number of ops in flight on worker threads (the
	// pool's goroutines). Ops the kernel runs for an io_uring wait on a
	// device, not on a thread of ours, and are not counted. The loop does
	// not spin while workers have work: they need the CPU (loop/spin.go).
	OnWorkers() int
	// Close stops the backend once it is idle.
	Close() error
	// Stats reports counters; safe from the loop goroutine only.
	Stats() Stats
}

// Stats are a backend's counters.
type Stats struct {
	Submitted uint64
	Completed uint64
	Fallbacks uint64 // ops a uring backend sent to its pool
	Inline    uint64 // ops completed on the spot, in Submit (nowait.go)
	RingFull  uint64 // times the submission queue was full
}

// Config selects and sizes a backend.
type Config struct {
	Kind    string // "auto", "uring", "pool" or "sync"
	Workers int    // pool worker goroutines (also the uring fallback pool)
	// Wake is called, from any goroutine, when completions are ready to
	// reap. The loop coalesces repeated calls.
	Wake func()
	// RingAll sends every op with an io_uring opcode to the ring, even the
	// ones the kernel always hands to an io-wq worker thread (see
	// uringPunted). Off by default: those are faster on the pool.
	RingAll bool
	// WaitInRing makes the uring backend a Waiter: the loop sleeps inside
	// io_uring_enter, and wakes arrive as a completion of a read on an
	// eventfd. Otherwise a goroutine watches the ring's eventfd and calls
	// Wake.
	WaitInRing bool
	// NotifyFd, if > 0, is an eventfd the loop polls itself: the uring
	// backend registers it with the ring (the kernel signals it when
	// CQEs are posted) instead of running a goroutine that turns its own
	// eventfd into Wake calls. The other backends use Wake.
	NotifyFd int
	// NoNowait turns off the non-blocking first attempt at reads
	// (nowait.go): every op then goes to the pool or the ring. For tests
	// of those paths, and for measuring what the attempt saves.
	NoNowait bool
}

// Waiter is implemented by a backend that can be the loop's one wait
// point. Sleep is loop-only and returns when a completion is ready or
// Wake was called; Wake is safe from any goroutine.
type Waiter interface {
	Sleep()
	Wake()
}

// ErrUnknownBackend is returned for a Kind that is not one of the names.
var ErrUnknownBackend = errors.New("unknown backend")

// uringFactory is set by the uring backend's file when it is built in;
// it keeps New free of a hard dependency while that backend is developed.
var uringFactory func(Config) (Backend, error)

// New builds the backend named by cfg.Kind. "auto" picks uring when the
// kernel allows it and falls back to pool otherwise; notice (may be nil)
// receives a one-line explanation of the choice.
func New(cfg Config, notice func(string)) (Backend, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if notice == nil {
		notice = func(string) {}
	}
	switch cfg.Kind {
	case "pool":
		return newPoolBackend(cfg), nil
	case "sync":
		return NewSync(cfg.Wake), nil
	case "uring":
		if uringFactory == nil {
			return nil, errors.New("io_uring backend is not available in this build")
		}
		b, err := uringFactory(cfg)
		if err != nil {
			return nil, fmt.Errorf("io_uring backend: %w", err)
		}
		return b, nil
	case "auto", "":
		if uringFactory != nil {
			b, err := uringFactory(cfg)
			if err == nil {
				return b, nil
			}
			notice(fmt.Sprintf("io_uring unavailable (%v); using the pool backend", err))
		}
		return newPoolBackend(cfg), nil
	}
	return nil, fmt.Errorf("%w %q (want auto, uring, pool or sync)", ErrUnknownBackend, cfg.Kind)
}

// DefaultWorkers is the pool size when none is given.
const DefaultWorkers = 16
