package aio

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// probeOps is how many opcode slots RegisterProbe asks for; the kernel
// clamps it to the opcodes it knows.
const probeOps = 256

// Probe is struct io_uring_probe with room for every opcode.
type Probe struct {
	LastOp uint8 // highest opcode the kernel knows
	OpsLen uint8 // entries of Ops the kernel filled
	_      uint16
	_      [3]uint32
	Ops    [probeOps]ProbeOp
}

// ProbeOp is struct io_uring_probe_op.
type ProbeOp struct {
	Op    uint8
	_     uint8
	Flags uint16 // IO_URING_OP_SUPPORTED
	_     uint32
}

// Supported reports whether the kernel implements opcode op.
func (p *Probe) Supported(op uint8) bool {
	return op <= p.LastOp && int(op) < int(p.OpsLen) && p.Ops[op].Flags&IO_URING_OP_SUPPORTED != 0
}

// RegisterProbe asks the kernel which opcodes it supports
// (IORING_REGISTER_PROBE).
func (r *Ring) RegisterProbe() (*Probe, error) {
	p := new(Probe) // must be zeroed: the kernel rejects dirty input
	if err := r.register(IORING_REGISTER_PROBE, unsafe.Pointer(p), probeOps); err != nil {
		return nil, os.NewSyscallError("io_uring_register(PROBE)", err)
	}
	return p, nil
}

// RegisterEventfd makes the kernel signal fd whenever it posts a CQE.
func (r *Ring) RegisterEventfd(fd int) error {
	v := int32(fd)
	if err := r.register(IORING_REGISTER_EVENTFD, unsafe.Pointer(&v), 1); err != nil {
		return os.NewSyscallError("io_uring_register(EVENTFD)", err)
	}
	return nil
}

// UnregisterEventfd undoes RegisterEventfd.
func (r *Ring) UnregisterEventfd() error {
	if err := r.register(IORING_UNREGISTER_EVENTFD, nil, 0); err != nil {
		return os.NewSyscallError("io_uring_register(UNREGISTER_EVENTFD)", err)
	}
	return nil
}

func (r *Ring) register(opcode uint32, arg unsafe.Pointer, nr uint32) error {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uintptr(opcode), uintptr(arg), uintptr(nr), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}
