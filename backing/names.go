package backing

import (
	"strings"

	"golang.org/x/sys/unix"
)

// MaxName is the longest name component the kernel accepts.
const MaxName = 255

// CheckName vets one name component from a FUSE request before it is
// used relative to a directory fd. The kernel never sends these, but a
// name with '/', NUL, "." or ".." would let a request escape its parent,
// so they never reach the backing filesystem.
func CheckName(name string) unix.Errno {
	switch {
	case name == "" || name == "." || name == "..":
		return unix.EINVAL
	case len(name) > MaxName:
		return unix.ENAMETOOLONG
	case strings.ContainsAny(name, "/\x00"):
		return unix.EINVAL
	}
	return 0
}

// ProcPath is the /proc/self/fd path of fd: it lets calls with no *at
// form (truncate, chmod of an O_PATH fd, reopening) reach the inode
// without a pathname walk of the backing tree.
func ProcPath(fd int) string {
	return "/proc/self/fd/" + itoa(fd)
}

// IsProcPath reports whether path is a ProcPath.
func IsProcPath(path string) bool {
	rest, ok := strings.CutPrefix(path, "/proc/self/fd/")
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
