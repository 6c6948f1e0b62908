package main

// The control socket: one unix socket per mount, served by the daemon,
// through which `evfs stats` fetches the statistics document. Root only:
// the socket is mode 0600 and every peer's uid is checked (SO_PEERCRED).
//
// Protocol: the client sends one line ("stats\n"); the daemon answers one
// JSON document (docs/STATS.md) and closes. A refusal or an unknown
// command is answered with {"schema_version": 1, "error": "…"}.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	controlRunDir = "/run/evfs"
	// controlTimeout bounds one control connection, on both sides. A
	// stalled loop (the sync backend in a slow read) answers late, not
	// never.
	controlTimeout = 10 * time.Second
	controlMaxLine = 256
)

// controlDirs are the directories a control socket may live in, in the
// order tried: /run/evfs, then $XDG_RUNTIME_DIR/evfs when /run is not
// writable.
func controlDirs() []string {
	dirs := []string{controlRunDir}
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && filepath.IsAbs(x) {
		dirs = append(dirs, filepath.Join(x, "evfs"))
	}
	return dirs
}

// controlName is the socket's file name for a (canonical) mountpoint: the
// path's tail made file-name-safe, for whoever reads `ls /run/evfs`, and
// a hash of the whole path, which makes it unique and keeps it short
// (a unix socket path has at most 107 bytes).
func controlName(mountpoint string) string {
	sum := sha256.Sum256([]byte(mountpoint))
	var b strings.Builder
	for _, r := range strings.Trim(mountpoint, "/") {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		case r == '/':
			b.WriteByte('-')
		default:
			b.WriteByte('_')
		}
	}
	esc := strings.TrimLeft(b.String(), ".")
	if len(esc) > 40 {
		esc = esc[len(esc)-40:]
	}
	if esc == "" {
		esc = "root"
	}
	return esc + "." + hex.EncodeToString(sum[:8]) + ".sock"
}

// canonicalMountpoint is the name both the daemon and the client hash:
// absolute, symlinks resolved where they can be. A path the mount table
// lists (its parent's symlinks resolved) is taken as it is, without a
// stat of the mount's root: that would be a request to the daemon being
// watched, and hang while its loop is stalled.
func canonicalMountpoint(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		if p := filepath.Join(dir, filepath.Base(abs)); p != "/" {
			if ok, _ := isMountpoint(p); ok {
				return p, nil
			}
		}
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return abs, nil
}

// controlDirOK creates dir (mode 0755) if needed and insists that it is
// a real directory owned by us and writable by nobody else, so no other
// user can put a socket in our place.
func controlDirOK(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%s is not a directory", dir)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s is owned by uid %d, not us", dir, st.Uid)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("%s is writable by group or others (mode %o)", dir, st.Mode&0o777)
	}
	return nil
}

// controlServer is a mount's control socket. Its methods are safe for
// concurrent use.
type controlServer struct {
	ln   *net.UnixListener
	path string
	ino  uint64
	log  *slog.Logger
	// rootUID is the only peer uid served: 0 (tests change it to see a
	// refusal without a second user).
	rootUID uint32

	stats   func(context.Context) ([]byte, error) // the encoded document
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// listenControl binds the control socket of mountpoint (canonical). A
// stale socket left by a killed daemon is replaced: the new one is bound
// under a temporary name, made 0600 and renamed over it, so no client
// ever sees a socket with wider permissions. Connections made before
// serve starts wait in the backlog.
func listenControl(mountpoint string, log *slog.Logger) (*controlServer, error) {
	name := controlName(mountpoint)
	var errs []error
	for _, dir := range controlDirs() {
		if err := controlDirOK(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		s, err := bindControl(dir, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.log = log
		sweepControl(dir, log)
		return s, nil
	}
	return nil, fmt.Errorf("no control socket: %w", errors.Join(errs...))
}

func bindControl(dir, name string) (*controlServer, error) {
	final := filepath.Join(dir, name)
	tmp := filepath.Join(dir, "."+name+"."+strconv.Itoa(os.Getpid()))
	os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false) // Close removes final, and only if still ours
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Lstat(final, &st); err != nil {
		ln.Close()
		return nil, err
	}
	return &controlServer{ln: ln, path: final, ino: st.Ino, closing: make(chan struct{})}, nil
}

// sweepControl removes the sockets in dir that no daemon listens on any
// more (their daemons were killed), so the directory does not fill with
// them. A connection refused is definitive; a live daemon just sees a
// client that hung up at once.
func sweepControl(dir string, log *slog.Logger) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Type()&os.ModeSocket == 0 || !strings.HasSuffix(e.Name(), ".sock") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		conn, err := net.DialTimeout("unix", p, 100*time.Millisecond)
		if err == nil {
			conn.Close()
			continue
		}
		if errors.Is(err, unix.ECONNREFUSED) && os.Remove(p) == nil {
			log.Debug("removed a stale control socket", "path", p)
		}
	}
}

// serve answers connections until Close; stats encodes the document.
func (s *controlServer) serve(stats func(context.Context) ([]byte, error)) {
	s.stats = stats
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := s.ln.AcceptUnix()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil { // out of file descriptors, …: try again later
				s.log.Warn("control socket: accept failed", "err", err)
				select {
				case <-s.closing:
					return
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handle(conn)
			}()
		}
	}()
}

func (s *controlServer) handle(conn *net.UnixConn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(controlTimeout))
	cred, err := peerCred(conn)
	if err != nil {
		s.log.Warn("control socket: cannot identify the client; refused", "err", err)
		return
	}
	// Read the request even from a client about to be refused: closing
	// with unread data would reset the connection before it reads why.
	line, rerr := bufio.NewReaderSize(io.LimitReader(conn, controlMaxLine), controlMaxLine).ReadString('\n')
	if cred.Uid != s.rootUID {
		s.log.Warn("control socket: refused a client that is not root", "uid", cred.Uid, "pid", cred.Pid)
		writeControlError(conn, fmt.Sprintf("permission denied: the control socket serves root only (client uid %d)", cred.Uid))
		return
	}
	if rerr != nil {
		writeControlError(conn, "want one line: stats")
		return
	}
	switch cmd := strings.TrimSpace(line); cmd {
	case "stats":
		ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
		defer cancel()
		go func() {
			select {
			case <-s.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		doc, err := s.stats(ctx)
		if err != nil {
			writeControlError(conn, "statistics unavailable: "+err.Error())
			return
		}
		conn.Write(doc)
	default:
		writeControlError(conn, fmt.Sprintf("unknown command %q (want stats)", cmd))
	}
}

func writeControlError(w io.Writer, msg string) {
	b, _ := json.Marshal(struct {
		SchemaVersion int    `json:"schema_version"`
		Error         string `json:"error"`
	}{statsSchemaVersion, msg})
	w.Write(append(b, '\n'))
}

// peerCred asks the kernel who is on the other end (SO_PEERCRED).
func peerCred(conn *net.UnixConn) (*unix.Ucred, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

// Close stops accepting, abandons snapshots still waiting for the loop,
// waits for the connections and removes the socket if it is still ours
// (a later daemon may have replaced it). Idempotent.
func (s *controlServer) Close() {
	s.once.Do(func() {
		close(s.closing)
		s.ln.Close()
		s.wg.Wait()
		var st unix.Stat_t
		if unix.Lstat(s.path, &st) == nil && st.Ino == s.ino {
			os.Remove(s.path)
		}
	})
}

// controlPath finds the control socket of mountpoint (canonical). A
// missing socket (or mountpoint) is the user's mistake (exit 2); a
// directory we may not search is a permission problem (exit 1).
func controlPath(mountpoint, given string) (string, error) {
	name := controlName(mountpoint)
	var denied error
	for _, dir := range controlDirs() {
		p := filepath.Join(dir, name)
		_, err := os.Lstat(p)
		switch {
		case err == nil:
			return p, nil
		case errors.Is(err, os.ErrPermission):
			denied = err
		}
	}
	if denied != nil {
		return "", permissionDenied(given, denied)
	}
	if _, err := os.Stat(mountpoint); errors.Is(err, os.ErrNotExist) {
		return "", usagef("%s does not exist", given)
	}
	if ok, err := isMountpoint(mountpoint); err == nil && !ok {
		return "", usagef("%s is not a mount point (so not an evfs mount)", given)
	}
	return "", usagef("%s is not an evfs mount: no control socket %s", given, filepath.Join(controlDirs()[0], name))
}

func permissionDenied(given string, err error) error {
	return fmt.Errorf("%s: permission denied (evfs stats must run as root): %v", given, err)
}

// findControl finds the control socket of the mount at given (as the
// user wrote it).
func findControl(given string) (string, error) {
	mp, err := canonicalMountpoint(given)
	if err != nil {
		return "", usagef("%s: %v", given, err)
	}
	return controlPath(mp, given)
}

// fetchStats asks the daemon behind the control socket at path for its
// statistics and returns the raw document and its decoding. given names
// the mount in errors.
func fetchStats(given, path string) ([]byte, *statsDoc, error) {
	conn, err := net.DialTimeout("unix", path, controlTimeout)
	switch {
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		return nil, nil, permissionDenied(given, err)
	case errors.Is(err, unix.ECONNREFUSED):
		return nil, nil, usagef("%s: no evfs daemon answers on %s (a stale socket: the daemon died)", given, path)
	case errors.Is(err, unix.ENOENT):
		return nil, nil, usagef("%s is not an evfs mount (any more): no control socket %s", given, path)
	case err != nil:
		return nil, nil, fmt.Errorf("%s: connect to %s: %w", given, path, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(controlTimeout))
	_, werr := io.WriteString(conn, "stats\n")
	raw, err := io.ReadAll(io.LimitReader(conn, 16<<20)) // an answer may explain a failed send
	if err != nil || (werr != nil && len(raw) == 0) {
		return nil, nil, fmt.Errorf("%s: talk to %s: %w", given, path, errors.Join(werr, err))
	}
	if len(raw) == 0 {
		return nil, nil, fmt.Errorf("%s: the daemon closed %s without answering", given, path)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, nil, fmt.Errorf("%s: bad answer from %s: %v", given, path, err)
	}
	if e.Error != "" {
		return nil, nil, fmt.Errorf("%s: %s", given, e.Error)
	}
	var doc statsDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, nil, fmt.Errorf("%s: bad answer from %s: %v", given, path, err)
	}
	if doc.SchemaVersion != statsSchemaVersion {
		return nil, nil, fmt.Errorf("%s: the daemon speaks stats schema %d, this evfs %d", given, doc.SchemaVersion, statsSchemaVersion)
	}
	return raw, &doc, nil
}
