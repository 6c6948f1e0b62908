package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Checks run before anything is mounted, so a refused mount touches
// neither the backing directory nor the mountpoint.

// checkBacking insists on a readable, searchable directory.
func checkBacking(path string) (string, error) {
	abs, err := checkDir("backing directory", path)
	if err != nil {
		return "", err
	}
	if err := unix.Access(abs, unix.R_OK|unix.X_OK); err != nil {
		return "", usagef("backing directory %s is not readable: %v", path, err)
	}
	return abs, nil
}

// checkMountpoint insists on an empty directory that is not mounted
// already. A stale evfs mount (its daemon killed) is cleaned up first.
func checkMountpoint(path string, nonempty bool, notice func(string)) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", usagef("mountpoint %s: %v", path, err)
	}
	if stale, err := cleanStale(abs); err != nil {
		return "", err
	} else if stale {
		notice(fmt.Sprintf("cleaned up a stale mount at %s (its daemon had died)", abs))
	}
	abs, err = checkDir("mountpoint", abs)
	if err != nil {
		return "", err
	}
	if mounted, err := isMountpoint(abs); err != nil {
		return "", fmt.Errorf("read mount table: %w", err)
	} else if mounted {
		return "", usagef("mountpoint %s is already mounted (evfs umount %s first)", path, path)
	}
	if !nonempty {
		names, err := readNames(abs, 1)
		if err != nil {
			return "", usagef("mountpoint %s is not readable: %v", path, err)
		}
		if len(names) > 0 {
			return "", usagef("mountpoint %s is not empty (use --nonempty to mount over it anyway)", path)
		}
	}
	return abs, nil
}

// checkFuse reports a missing /dev/fuse or missing privilege.
func checkFuse() error {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return usagef("/dev/fuse is missing: load the fuse module (modprobe fuse)")
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		return usagef("cannot open /dev/fuse: permission denied (evfs mounts directly and must run as root)")
	case err != nil:
		return usagef("cannot open /dev/fuse: %v", err)
	}
	unix.Close(fd)
	if os.Geteuid() != 0 {
		return usagef("evfs mount must run as root (it mounts without fusermount)")
	}
	return nil
}

// cleanStale detects a FUSE mount whose daemon is gone ("transport
// endpoint is not connected") and detaches it.
func cleanStale(path string) (bool, error) {
	// statfs always reaches the daemon (stat may be answered from cache).
	var st unix.Statfs_t
	err := unix.Statfs(path, &st)
	if !errors.Is(err, unix.ENOTCONN) {
		return false, nil
	}
	abortConnection(path)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		return true, fmt.Errorf("clean up stale mount %s: %w", path, err)
	}
	return true, nil
}

// abortConnection aborts the FUSE connection behind a mountpoint through
// /sys/fs/fuse/connections, so processes blocked on it get ENOTCONN
// instead of hanging. Best effort.
func abortConnection(path string) {
	if dev, ok := mountDev(path); ok {
		abortDev(dev)
	}
}

// abortDev aborts the FUSE connection of the mount with device dev.
func abortDev(dev uint64) {
	if dev == 0 {
		return
	}
	ensureFusectl()
	f, err := os.OpenFile(fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", unix.Minor(dev)), os.O_WRONLY, 0)
	if err != nil {
		return
	}
	f.WriteString("1")
	f.Close()
}

// isMountpoint reports whether path is listed in /proc/self/mountinfo.
func isMountpoint(path string) (bool, error) {
	_, ok, err := mountinfo(path)
	return ok, err
}

// mountDev returns the device number of the mount at path.
func mountDev(path string) (uint64, bool) {
	dev, ok, _ := mountinfo(path)
	return dev, ok
}

func mountinfo(path string) (uint64, bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	var dev uint64
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint …
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || unescapeMount(fields[4]) != path {
			continue
		}
		maj, min, _ := strings.Cut(fields[2], ":")
		a, _ := strconv.ParseUint(maj, 10, 32)
		b, _ := strconv.ParseUint(min, 10, 32)
		dev, found = unix.Mkdev(uint32(a), uint32(b)), true // the last one is on top
	}
	return dev, found, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space, …).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func readNames(dir string, n int) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(n)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return names, nil
}

// holders lists the processes using something under mountpoint (cwd,
// root or an open fd), as "pid (command)", for the busy-unmount message.
func holders(mountpoint string) []string {
	procs, _ := os.ReadDir("/proc")
	var out []string
	under := func(p string) bool { return p == mountpoint || strings.HasPrefix(p, mountpoint+"/") }
	self := strconv.Itoa(os.Getpid())
	for _, p := range procs {
		pid := p.Name()
		if pid == self || pid[0] < '0' || pid[0] > '9' {
			continue
		}
		uses := false
		for _, l := range []string{"cwd", "root"} {
			if t, err := os.Readlink("/proc/" + pid + "/" + l); err == nil && under(t) {
				uses = true
			}
		}
		if !uses {
			fds, _ := os.ReadDir("/proc/" + pid + "/fd")
			for _, fd := range fds {
				if t, err := os.Readlink("/proc/" + pid + "/fd/" + fd.Name()); err == nil && under(t) {
					uses = true
					break
				}
			}
		}
		if uses {
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			out = append(out, pid+" ("+strings.TrimSpace(string(comm))+")")
		}
	}
	return out
}

// ensureFusectl mounts the FUSE control filesystem if nothing has yet
// (minimal systems leave /sys/fs/fuse/connections empty).
func ensureFusectl() {
	const dir = "/sys/fs/fuse/connections"
	if ok, _ := isMountpoint(dir); ok {
		return
	}
	unix.Mount("fusectl", dir, "fusectl", 0, "")
}
