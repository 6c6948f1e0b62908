//go:build !race

package aio

import "sync"

// opPool holds recycled ops. A sync.Pool, not a list owned by the loop:
// the constructors are plain functions any goroutine may call, and the
// pool's per-P caches make a Get or Put a few nanoseconds.
var opPool = sync.Pool{New: func() any { return new(Op) }}

func getOp() *Op { return opPool.Get().(*Op) }

// Recycle makes op available to a later constructor. Only its owner may
// call it — the loop, once op's continuation has returned — and nothing
// may touch op afterwards: neither the kernel, nor a worker, nor code.
func Recycle(op *Op) {
	op.Buf, op.Iov, op.Path, op.Path2 = nil, nil, "", "" // let their memory go
	op.recycled = true
	opPool.Put(op)
}
