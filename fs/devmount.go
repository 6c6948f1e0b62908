package fs

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// openDevice opens /dev/fuse for the loop: non-blocking, so a read with
// nothing queued returns EAGAIN instead of holding the loop thread.
func openDevice() (int, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/fuse: %w", err)
	}
	return fd, nil
}

// mountDevice mounts the FUSE connection fd at mountpoint with mount(2),
// as fusermount would (the daemon is root, so no helper is needed). The
// kernel queues FUSE_INIT on fd at once; the loop answers it.
func mountDevice(fd int, backingDir, mountpoint string, cfg *Config) error {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return fmt.Errorf("stat mountpoint: %w", err)
	}
	opts := []string{
		fmt.Sprintf("fd=%d", fd),
		fmt.Sprintf("rootmode=%o", st.Mode&unix.S_IFMT),
		fmt.Sprintf("user_id=%d", os.Geteuid()),
		fmt.Sprintf("group_id=%d", os.Getegid()),
		fmt.Sprintf("max_read=%d", cfg.MaxWrite),
	}
	if cfg.AllowOther {
		// Without it any local user could read anything: the daemon is root.
		opts = append(opts, "allow_other", "default_permissions")
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
	if cfg.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(backingDir, mountpoint, "fuse.evfs", flags, strings.Join(opts, ",")); err != nil {
		return fmt.Errorf("mount(2): %w", err)
	}
	return nil
}
