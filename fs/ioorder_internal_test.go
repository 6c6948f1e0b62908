package fs

import (
	"math"
	"slices"
	"testing"
)

// TestIOOrder: reads overlap freely; a write waits for every earlier
// overlapping span and holds back every later one; waiting spans start
// in arrival order; a node's queue goes away with its last span, but for
// the one kept idle.
func TestIOOrder(t *testing.T) {
	var o ioOrder
	var started []string
	begin := func(name string, node uint64, write bool, off, size uint64) uint64 {
		id, ready := o.begin(node, write, off, size)
		if ready {
			started = append(started, name)
		} else {
			o.wait(node, id, func() { started = append(started, name) })
		}
		return id
	}
	want := func(step string, names ...string) {
		t.Helper()
		if !slices.Equal(started, names) {
			t.Fatalf("%s: started %q, want %q", step, started, names)
		}
	}

	r1 := begin("r1", 7, false, 0, 8192)
	r2 := begin("r2", 7, false, 4096, 4096)
	want("two overlapping reads", "r1", "r2")
	w1 := begin("w1", 7, true, 4096, 4096)  // overlaps both reads
	r3 := begin("r3", 7, false, 4096, 100)  // behind w1
	r4 := begin("r4", 7, false, 8192, 4096) // touches nothing in flight
	w2 := begin("w2", 9, true, 0, 4096)     // another node
	want("w1 and r3 wait", "r1", "r2", "r4", "w2")
	if o.waited != 2 {
		t.Errorf("waited = %d, want 2", o.waited)
	}

	o.end(7, r1)
	want("r2 still holds w1", "r1", "r2", "r4", "w2")
	o.end(7, r2)
	want("w1 starts; r3 still behind it", "r1", "r2", "r4", "w2", "w1")
	o.end(7, w1)
	want("r3 starts", "r1", "r2", "r4", "w2", "w1", "r3")
	for _, id := range []uint64{r3, r4} {
		o.end(7, id)
	}
	o.end(9, w2)
	idleOnly(t, &o)
	o.end(7, r3) // an unknown span: nothing happens

	// A write, then a read and a write each overlapping the one before:
	// they run one after the other, in arrival order.
	started = nil
	a := begin("a", 1, true, 0, 10)
	b := begin("b", 1, false, 5, 10)
	c := begin("c", 1, true, 6, 1)
	want("a runs", "a")
	o.end(1, a)
	want("b after a", "a", "b")
	o.end(1, b)
	want("c after b", "a", "b", "c")
	o.end(1, c)
	idleOnly(t, &o)

	// A span running past the largest offset (a truncate's) ends there
	// instead of wrapping around to cover nothing.
	started = nil
	trunc := begin("truncate", 2, true, 100, math.MaxUint64-50)
	atEnd := begin("read at the end", 2, false, math.MaxUint64-10, 5)
	want("the read waits", "truncate")
	o.end(2, trunc)
	want("then runs", "truncate", "read at the end")
	o.end(2, atEnd)

	// The idle queue is reused by its node and dropped when another node's
	// queue empties; a stray end on it changes nothing.
	started = nil
	x := begin("x", 3, true, 0, 10)
	o.end(3, x)
	if o.idle != 3 || len(o.queues) > 2 {
		t.Fatalf("after node 3's last span: idle %d, %d queues", o.idle, len(o.queues))
	}
	o.end(3, x) // already ended
	y := begin("y", 3, true, 0, 10)
	z := begin("z", 3, false, 5, 1)
	want("node 3's queue is in use again", "x", "y")
	if o.idle == 3 {
		t.Fatal("node 3's queue still counted idle while in use")
	}
	o.end(3, y)
	want("z after y", "x", "y", "z")
	o.end(3, z)
	idleOnly(t, &o)
	if len(o.queues) != 1 {
		t.Errorf("%d queues kept, want only the idle one", len(o.queues))
	}
}

// idleOnly checks that nothing is in flight: the map holds at most the
// idle queue, and that one is empty.
func idleOnly(t *testing.T, o *ioOrder) {
	t.Helper()
	for node, q := range o.queues {
		if node != o.idle || len(q.spans) != 0 || q.writes != 0 {
			t.Errorf("queue of node %d left: %d spans, %d writes (idle node %d)", node, len(q.spans), q.writes, o.idle)
		}
	}
}
