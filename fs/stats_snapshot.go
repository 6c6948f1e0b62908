package fs

import (
	"context"
	"time"

	"evfs/loop"
)

// Snapshot is one consistent picture of a mount's statistics: the loop's
// counters and the per-operation table, copied by the same loop event.
type Snapshot struct {
	Taken time.Time
	Loop  loop.Stats
	Ops   []OpStat // the operations seen so far, in a fixed order
}

// Snapshot copies the loop's and the per-op statistics in one event on
// the loop. Safe from any goroutine. It gives up with ctx's error if the
// loop does not run the event in time (busy in a stall, or already
// stopped at unmount).
func (m *Mount) Snapshot(ctx context.Context) (Snapshot, error) {
	ch := make(chan Snapshot, 1) // buffered: the loop never blocks on a caller that left
	m.Loop.Post("stats", func() {
		s := Snapshot{Taken: time.Now(), Loop: m.Loop.Stats()}
		for i := range m.h.stats {
			if m.h.stats[i].Count > 0 {
				st := m.h.stats[i]
				st.Name = opNames[i]
				s.Ops = append(s.Ops, st)
			}
		}
		ch <- s
	})
	select {
	case s := <-ch:
		return s, nil
	case <-ctx.Done():
		return Snapshot{}, ctx.Err()
	}
}
