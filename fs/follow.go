package fs

import (
	"bytes"
	"os"
	"strconv"
	"time"

	"evfs/loop"
)

// The loop follows its client between CPUs (loop/follow.go says why).
// The session knows the client: a request's header carries the calling
// thread's id. At most every followEvery, after a drain that read one
// request, the session hands that id to its follower goroutine, which
// reads where the thread last ran from /proc (off the loop: a file read,
// however quick) and posts the CPU back for the loop to move to.

// followEvery bounds how often the loop asks where its client runs.
const followEvery = 20 * time.Millisecond

// follower is the session's side of following. Owned by the loop
// goroutine, except the channel's far end.
type follower struct {
	on   bool          // Config.NoFollow unset (the loop decides the rest: Following)
	tids chan uint32   // to the goroutine; nil until the first ask
	at   time.Duration // loop.Mono of the last ask
}

// ask sends tid to the follower goroutine if it is time to. Loop-only.
func (s *session) ask(tid uint32) {
	f := &s.follow
	now := loop.Mono()
	if !f.on || tid == 0 || s.closed || now-f.at < followEvery || !s.loop.Following() {
		return
	}
	f.at = now
	if f.tids == nil {
		f.tids = make(chan uint32, 1)
		go s.follower(f.tids)
	}
	select {
	case f.tids <- tid:
	default: // the last ask is not done yet
	}
}

// follower reads each thread's last CPU and posts the move to the loop,
// until the session ends (stopFollowing).
func (s *session) follower(tids <-chan uint32) {
	for tid := range tids {
		if cpu, ok := lastCPU(tid); ok {
			s.loop.Post("follow", func() { s.loop.MoveToCPU(cpu) })
		}
	}
}

// stopFollowing ends the follower goroutine. Loop-only.
func (s *session) stopFollowing() {
	if s.follow.tids != nil {
		close(s.follow.tids)
		s.follow.tids = nil
	}
	s.follow.on = false
}

// lastCPU is the CPU thread tid last ran on: field 39 of
// /proc/TID/stat. False if the thread is gone or in another pid
// namespace than this process's /proc. A file read: it runs on the
// follower goroutine, never on the loop.
func lastCPU(tid uint32) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(tid), 10) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses itself: count fields after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	const processor = 39 - 3 // fields 1 and 2 are before the ')'; f[0] is field 3
	if len(f) <= processor {
		return 0, false
	}
	cpu, err := strconv.Atoi(string(f[processor]))
	return cpu, err == nil
}
