package loop

import "evfs/aio"

// Continuation is what runs on the loop when an operation completes. It
// receives the syscall's result (>= 0, or -errno).
type Continuation func(res int64)

// slab holds one entry per operation in flight, indexed by the low 32 bits
// of its id; the high 32 bits are the slot's generation, so a stale or
// forged id never matches a reused slot. Ids are numbers, never Go
// pointers, because they travel through the kernel as io_uring user_data.
//
// Owned by the loop goroutine; never touch from elsewhere.
type slab struct {
	slots []slot
	free  []uint32
	inUse int
}

type slot struct {
	gen  uint32
	op   *aio.Op // kept reachable until completion: the kernel may use its memory
	k    Continuation
	live bool
}

func (s *slab) put(op *aio.Op, k Continuation) uint64 {
	var idx uint32
	if n := len(s.free); n > 0 {
		idx = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		idx = uint32(len(s.slots))
		s.slots = append(s.slots, slot{})
	}
	sl := &s.slots[idx]
	sl.gen++
	sl.op, sl.k, sl.live = op, k, true
	s.inUse++
	return uint64(sl.gen)<<32 | uint64(idx)
}

// lookup returns the live slot for id, or nil.
func (s *slab) lookup(id uint64) *slot {
	idx, gen := uint32(id), uint32(id>>32)
	if int(idx) >= len(s.slots) {
		return nil
	}
	sl := &s.slots[idx]
	if !sl.live || sl.gen != gen {
		return nil
	}
	return sl
}

// take removes id and returns its op and continuation (nil if unknown).
func (s *slab) take(id uint64) (*aio.Op, Continuation) {
	sl := s.lookup(id)
	if sl == nil {
		return nil, nil
	}
	op, k := sl.op, sl.k
	sl.op, sl.k, sl.live = nil, nil, false
	s.free = append(s.free, uint32(id))
	s.inUse--
	return op, k
}
