//go:build race

package aio

import "unsafe"

// getOp never reuses under the race detector: whether a bad reuse shows
// would otherwise depend on which op the pool happened to hand out.
func getOp() *Op { return new(Op) }

// Recycle poisons op: every byte of its results reads 0xff and its kind
// is no kind, so code reading them after its continuation returned fails
// a test rather than passing by luck.
func Recycle(op *Op) {
	poison(&op.Stat)
	poison(&op.Statfs)
	poison(&op.Lock)
	op.Kind, op.Buf, op.Iov = numKinds, nil, nil
	op.recycled = true
}

func poison[T any](p *T) {
	b := unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
	for i := range b {
		b[i] = 0xff
	}
}
