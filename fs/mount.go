package fs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"evfs/aio"
	"evfs/backing"
	"evfs/loop"
)

// Config is everything needed to mount a backing directory.
type Config struct {
	Options
	Backend    string // aio backend: auto, uring, pool, sync
	Workers    int
	AllowOther bool // implies default_permissions, always

	MaxWrite      int  // largest READ/WRITE the kernel sends
	MaxBackground int  // kernel's async request limit (readahead, …)
	ReadDirPlus   bool // answer READDIRPLUS (names + attributes)
	// OnSignal, if set, turns SIGINT/SIGTERM into loop events.
	OnSignal func(os.Signal)
	// StallThreshold is the loop's stall detector threshold
	// (loop.Config.StallThreshold: 0 means loop.DefaultStall, < 0 off).
	StallThreshold time.Duration
	// Faults is test-only fault injection (loop.Fault; EVFS_TEST_FAULTS).
	Faults []loop.Fault
	// Transport is how FUSE requests reach the loop: "loop" (the
	// default: the loop reads /dev/fuse itself, session.go) or "gofuse"
	// (go-fuse's server and reader goroutines, each request handed to
	// the loop through Bridge; slower, kept as the reference design).
	Transport string
	// LockThread pins the loop to its OS thread ("loop" transport).
	LockThread bool
	// Spin is how long the loop polls before it sleeps ("loop"
	// transport; loop.Config.Spin).
	Spin time.Duration
	// LongSpinOnly turns the short spin off: the loop spins the whole
	// Spin even while requests come one at a time (loop.Config.ShortSpin).
	LongSpinOnly bool
	// NoFollow keeps the loop where the scheduler puts it: it does not
	// move its thread to its one client's CPU (follow.go).
	NoFollow bool
	// NoPollProbe skips the poll probe ("loop" transport, pollprobe.go).
	// Only a process that never opens files of its own mount may set it
	// (the evfs binary): the probe protects such opens, and it is the one
	// time evfs itself holds a file of its mount.
	NoPollProbe bool
}

// Transports are the values of Config.Transport.
var Transports = []string{"loop", "gofuse", "uring"}

// Defaults for Config's kernel-facing fields.
const (
	DefaultMaxWrite      = 1 << 20
	DefaultMaxBackground = 64
	DefaultEntryTimeout  = time.Second
	DefaultAttrTimeout   = time.Second
	// DefaultSpin is the CLI's --spin (loop.Config.Spin): long enough to
	// catch the next request of a client at queue depth 1.
	DefaultSpin = 50 * time.Microsecond
)

// Mount is a served mount point.
type Mount struct {
	Server     *fuse.Server // "gofuse" transport only
	Loop       *loop.Loop
	Mountpoint string
	h          *handlers
	sess       *session // "loop" and "uring" transports
	loopDone   chan error
	served     chan struct{} // closed when Serve (and OnUnmount) returned
}

// NewMount mounts backingDir at mountpoint and starts serving it.
func NewMount(backingDir, mountpoint string, cfg Config) (*Mount, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxWrite == 0 {
		cfg.MaxWrite = DefaultMaxWrite
	}
	if cfg.MaxBackground == 0 {
		cfg.MaxBackground = DefaultMaxBackground
	}
	// Deliberate exception to "every backing syscall goes through aio":
	// these (open the root, stat it, statfs it, prepare opens by handle,
	// resolve the test hook's file, grow the fd table) run in NewMount
	// before the loop goroutine exists, so they cannot hold up any
	// request.
	rootFd, err := unix.Open(backingDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open backing directory %s: %w", backingDir, err)
	}
	var st unix.Statx_t
	if err := unix.Statx(rootFd, "", unix.AT_EMPTY_PATH, aio.StatxMask, &st); err != nil {
		cfg.closeStartFds(rootFd)
		return nil, fmt.Errorf("stat backing directory %s: %w", backingDir, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(rootFd, &sfs); err == nil {
		cfg.residentRoot = residentFS(sfs.Type) && !cfg.NoResident
		cfg.rootNoNowait = noNowaitFS(sfs.Type)
		cfg.memoryRoot = memoryFS(sfs.Type) && !cfg.NoResidentData
	}
	if cfg.residentRoot {
		cfg.handleFd, cfg.handleMount, cfg.byHandle = openHandleMount(rootFd)
	}
	if _, err := growFdTable(rootFd); err != nil {
		cfg.Logger.Warn("cannot grow the fd table at mount; opens may stall the loop while it grows", "err", err)
	}
	if cfg.TestDelayRead != "" {
		var dst unix.Stat_t
		if err := unix.Fstatat(rootFd, cfg.TestDelayRead, &dst, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			cfg.testDelayIno = dst.Ino
		}
	}

	switch cfg.Transport {
	case "", "loop":
		return mountLoop(backingDir, mountpoint, rootFd, &st, &cfg)
	case "uring":
		if err := fuseURingAvailable(); err != nil {
			cfg.closeStartFds(rootFd)
			return nil, err
		}
		n, err := possibleCPUs()
		if err != nil {
			cfg.closeStartFds(rootFd)
			return nil, fmt.Errorf("FUSE over io_uring: %w", err)
		}
		cfg.uringQueues = n
		return mountLoop(backingDir, mountpoint, rootFd, &st, &cfg)
	case "gofuse":
	default:
		cfg.closeStartFds(rootFd)
		return nil, fmt.Errorf("unknown transport %q (want loop, gofuse or uring)", cfg.Transport)
	}
	l, err := loop.New(loopConfig(&cfg, false))
	if err != nil {
		cfg.closeStartFds(rootFd)
		return nil, err
	}
	bridge := newBridge(l, rootFd, &st, cfg.Options)
	h := bridge.h

	m := &Mount{Loop: l, h: h, Mountpoint: mountpoint, loopDone: make(chan error, 1), served: make(chan struct{})}
	go func() { m.loopDone <- l.Run() }()

	srv, err := fuse.NewServer(bridge, mountpoint, mountOptions(backingDir, &cfg))
	if err != nil {
		l.Stop()
		<-m.loopDone
		cfg.closeStartFds(rootFd)
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	m.Server = srv
	go func() { srv.Serve(); close(m.served) }()
	if err := srv.WaitMount(); err != nil {
		srv.Unmount()
		m.Wait()
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	m.watchSwap()
	return m, nil
}

// mountLoop mounts with the "loop" transport: the loop polls /dev/fuse
// itself. It returns once the kernel's INIT has been answered.
func mountLoop(backingDir, mountpoint string, rootFd int, root *unix.Statx_t, cfg *Config) (*Mount, error) {
	fd, err := openDevice()
	if err != nil {
		cfg.closeStartFds(rootFd)
		return nil, err
	}
	l, err := loop.New(loopConfig(cfg, true))
	if err != nil {
		unix.Close(fd)
		cfg.closeStartFds(rootFd)
		return nil, err
	}
	h := newHandlers(l, rootFd, root, cfg.Options)
	s := newSession(fd, h, l, cfg)
	h.notify = s.notifyEntry
	m := &Mount{Loop: l, h: h, sess: s, Mountpoint: mountpoint, loopDone: make(chan error, 1), served: s.ended}
	// abandon undoes a start that failed before the loop ran: this
	// goroutine still owns the loop.
	abandon := func(err error) (*Mount, error) {
		unix.Close(fd)
		h.closeAll()
		l.Stop()
		l.Run() // runs the closes, then returns and closes the backend
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	// Mount before the loop watches the device: until mount(2) succeeds,
	// reading it fails (EPERM) and would end the session, and polling it
	// says "error" without registering for later readiness.
	if err := mountDevice(fd, backingDir, mountpoint, cfg); err != nil {
		return abandon(err)
	}
	if err := l.Watch(fd, s.drain); err != nil {
		unix.Unmount(mountpoint, unix.MNT_DETACH)
		return abandon(err)
	}
	go func() { m.loopDone <- l.Run() }()

	fail := func(err error) (*Mount, error) {
		// A lazy unmount ends the connection: the loop's next read fails
		// with ENODEV, the session closes its fds, and the loop stops.
		unix.Unmount(mountpoint, unix.MNT_DETACH)
		m.Wait()
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	select {
	case <-s.inited:
	case <-time.After(30 * time.Second):
		return fail(errors.New("the kernel sent no FUSE_INIT within 30s"))
	}
	select {
	case <-s.ended:
		return fail(errors.New("FUSE_INIT failed"))
	default:
	}
	if !cfg.NoPollProbe {
		if err := probePoll(mountpoint); err != nil {
			return fail(err)
		}
		done := make(chan struct{})
		l.Post("poll probe done", func() { s.probing = false; close(done) })
		<-done
	}
	m.watchSwap()
	return m, nil
}

// loopConfig is the loop's configuration for a mount; poll is set for the
// "loop" transport.
func loopConfig(cfg *Config, poll bool) loop.Config {
	return loop.Config{Backend: cfg.Backend, Workers: cfg.Workers, Logger: cfg.Logger,
		Debug: cfg.Debug, OnSignal: cfg.OnSignal, StallThreshold: cfg.StallThreshold, Faults: cfg.Faults,
		Poll: poll, LockThread: poll && (cfg.LockThread || cfg.uringQueues > 0), Spin: cfg.Spin,
		ShortSpin: shortSpin(cfg)}
}

// shortSpin is the loop's spin while requests come one at a time
// (loop.Loop.spinFor says why): a fifth of Spin, or none (always Spin)
// for a daemon confined to one CPU, where the scheduler has no choice of
// CPU to make, with LongSpinOnly, and with the FUSE ring transport (its
// loop keeps one thread; the short spin is unmeasured there).
func shortSpin(cfg *Config) time.Duration {
	if cfg.LongSpinOnly || cfg.uringQueues > 0 || allowedCPUs() == 1 {
		return 0
	}
	return cfg.Spin / 5
}

// newHandlers builds the handlers (owning the tables, rooted at rootFd)
// for loop l.
func newHandlers(l *loop.Loop, rootFd int, root *unix.Statx_t, opts Options) *handlers {
	return &handlers{
		loop:       l,
		nodes:      backing.NewNodes(rootFd, backing.KeyOf(root)),
		handles:    backing.NewHandles(),
		opts:       opts,
		log:        opts.Logger,
		euid:       uint32(os.Geteuid()),
		egid:       uint32(os.Getegid()),
		nodeBudget: nodeBudgetFor(opts.MaxNodes),
		sharing:    sharePolicyFor(opts.ShareFdsAbove),
		rootDev:    backing.KeyOf(root).Dev,
		swapOn:     opts.memoryRoot && swapOn(),
	}
}

// watchSwap keeps the loop's swapOn current while the mount is served
// on a memory root: swap turned on makes tmpfs pages wait for a disk.
// sysinfo once a second, here, off the loop; the first reading and each
// change are posted.
func (m *Mount) watchSwap() {
	if !m.h.opts.memoryRoot {
		return
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for first, last := true, false; ; first = false {
			if on := swapOn(); first || on != last {
				last = on
				m.Loop.Post("swap changed", func() { m.h.swapOn = on })
			}
			select {
			case <-m.served:
				return
			case <-t.C:
			}
		}
	}()
}

func mountOptions(backingDir string, cfg *Config) *fuse.MountOptions {
	o := &fuse.MountOptions{
		FsName:             backingDir,
		Name:               "evfs",
		AllowOther:         cfg.AllowOther,
		MaxWrite:           cfg.MaxWrite,
		MaxBackground:      cfg.MaxBackground,
		EnableLocks:        true,
		DisableReadDirPlus: !cfg.ReadDirPlus,
		DirectMountStrict:  true,
		// Kernel passthrough would send reads and writes around the loop.
		DisabledCapabilities: fuse.CAP_PASSTHROUGH,
		Logger:               slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	if cfg.AllowOther {
		// Without it any local user could read anything: the daemon is root.
		o.Options = append(o.Options, "default_permissions")
	}
	// The daemon clears set-id bits itself (killSuidgid), so the kernel
	// stops sending GETXATTR(security.capability) before every WRITE.
	o.ExtraCapabilities |= fuse.CAP_HANDLE_KILLPRIV_V2
	// O_DIRECT opens are FOPEN_DIRECT_IO (directIO) and may still be mapped.
	o.ExtraCapabilities |= fuse.CAP_DIRECT_IO_ALLOW_MMAP
	if cfg.Writeback {
		o.ExtraCapabilities |= fuse.CAP_WRITEBACK_CACHE
	}
	if cfg.ReadOnly {
		o.DirectMountFlags = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_RDONLY
	}
	return o
}

// Wait blocks until the file system is unmounted and the loop has
// finished every operation in flight.
func (m *Mount) Wait() error {
	<-m.served
	m.Loop.Stop()
	return <-m.loopDone
}

// Served is closed when the kernel connection has ended (after unmount
// or abort) and the file system's OnUnmount ran.
func (m *Mount) Served() <-chan struct{} { return m.served }

// Unmount asks the kernel to unmount; Wait then returns.
func (m *Mount) Unmount() error {
	if m.Server != nil {
		return m.Server.Unmount()
	}
	if err := unix.Unmount(m.Mountpoint, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", m.Mountpoint, err)
	}
	return nil
}

// closeStartFds closes what NewMount opened for the handlers when a
// mount fails before they own it: the backing root's fd and the fd for
// opens by handle.
func (c *Config) closeStartFds(rootFd int) {
	unix.Close(rootFd)
	if c.byHandle {
		unix.Close(c.handleFd)
	}
}
