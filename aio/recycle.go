package aio

// Ops are recycled. A FUSE request costs one Op or more, each about 700
// bytes (the statx, statfs and lock results live inline), and a 1 000-entry
// READDIRPLUS costs one per entry: allocated fresh, ops were 70% of the
// daemon's allocation, and the collections they brought on set the p99 of
// a 1 000-entry listing at twice its p50 (docs/BENCHMARKS-history.md,
// session 13).
//
// The rule that makes reuse safe: an Op is submitted once, and its fields
// (its results too) are read only until its continuation returns; the
// loop then hands it to Recycle. A continuation that needs a result later
// copies it out first.
//
// Under the race detector (go test -race, as CI runs the tests) no op is
// ever reused: Recycle poisons it instead (recycle_race.go), so a result
// read after the continuation returned is garbage a test sees, and the
// loop answers a second Submit with EINVAL (loop.Submit).

// newOp returns o in a recycled Op when there is one. The uring backend's
// scratch buffers (NUL-terminated names, iovecs) keep their capacity.
func newOp(o Op) *Op {
	op := getOp()
	pathz, path2z, iovecs := op.pathz[:0], op.path2z[:0], op.iovecs[:0]
	*op = o
	op.pathz, op.path2z, op.iovecs = pathz, path2z, iovecs
	return op
}

// Recycled reports whether op went through Recycle and has not been
// handed out again since. A reliable answer only in the race build, where
// ops are never reused; elsewhere a best effort.
func (op *Op) Recycled() bool { return op.recycled }
