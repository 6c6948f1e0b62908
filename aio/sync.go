package aio

// Sync runs every syscall on the loop goroutine, inside Submit. It exists
// to show what the other backends protect against: one slow backing call
// stalls every request behind it. Never the default.
type Sync struct {
	wake  func()
	done  []Completion
	stats Stats
}

// NewSync returns the sync backend.
func NewSync(wake func()) *Sync { return &Sync{wake: wake} }

func (s *Sync) Name() string { return "sync" }

// Submit runs op now, blocking the loop until the syscall returns.
func (s *Sync) Submit(id uint64, op *Op) {
	s.stats.Submitted++
	s.done = append(s.done, Completion{id, Do(op)})
	s.stats.Completed++
}

func (s *Sync) Flush() {}

func (s *Sync) Reap(dst []Completion) []Completion {
	dst = append(dst, s.done...)
	s.done = s.done[:0]
	return dst
}

// Cancel cannot stop anything: the op ran inside Submit.
func (s *Sync) Cancel(id uint64, op *Op) {}

func (s *Sync) Close() error { return nil }

// OnWorkers is 0: every op ran in Submit.
func (s *Sync) OnWorkers() int { return 0 }

func (s *Sync) Stats() Stats { return s.stats }
