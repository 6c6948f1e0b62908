package backing

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCheckName(t *testing.T) {
	cases := map[string]unix.Errno{
		"ok":                     0,
		"with space":             0,
		"ünïcødé":                0,
		strings.Repeat("a", 255): 0,
		"":                       unix.EINVAL,
		".":                      unix.EINVAL,
		"..":                     unix.EINVAL,
		"a/b":                    unix.EINVAL,
		"/":                      unix.EINVAL,
		"nul\x00byte":            unix.EINVAL,
		strings.Repeat("a", 256): unix.ENAMETOOLONG,
		"...":                    0,
	}
	for name, want := range cases {
		if got := CheckName(name); got != want {
			t.Errorf("CheckName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestNodesLookupCountsAndForget(t *testing.T) {
	tab := NewNodes(100, Key{1, 2})
	if tab.Get(RootID) == nil || tab.Len() != 1 {
		t.Fatal("root missing")
	}
	n, dup := tab.Add(10, Key{1, 50}, unix.S_IFREG)
	if dup || n.ID == RootID || n.Fd != 10 {
		t.Fatalf("first Add: %+v dup=%v", n, dup)
	}
	// A second name for the same inode: same node, the new fd is redundant.
	n2, dup := tab.Add(11, Key{1, 50}, unix.S_IFREG)
	if !dup || n2 != n {
		t.Fatalf("second Add: %+v dup=%v", n2, dup)
	}
	if r := tab.Ref(Key{1, 50}, unix.S_IFREG); r != n {
		t.Fatalf("Ref = %v", r)
	}
	if tab.Ref(Key{1, 99}, unix.S_IFREG) != nil || tab.Known(Key{1, 99}) {
		t.Fatal("unknown inode reported known")
	}
	// Three lookups: forgetting two keeps the node, the third closes it.
	if fd := tab.Forget(n.ID, 2); fd != -1 || tab.Get(n.ID) == nil {
		t.Fatalf("partial forget closed fd %d", fd)
	}
	if fd := tab.Forget(n.ID, 1); fd != 10 || tab.Get(n.ID) != nil || tab.Known(Key{1, 50}) {
		t.Fatalf("final forget returned fd %d", fd)
	}
	// Unknown ids and the root are ignored.
	if tab.Forget(12345, 1) != -1 || tab.Forget(RootID, 1000) != -1 || tab.Get(RootID) == nil {
		t.Fatal("forget of unknown id or root had an effect")
	}
	// A reused inode number gets a new node id: ids are never recycled.
	n3, _ := tab.Add(12, Key{1, 50}, unix.S_IFREG)
	if n3.ID == n.ID {
		t.Fatal("node id reused")
	}
	if fds := tab.Detach(); len(fds) != 1 || fds[0] != 12 || tab.Len() != 1 {
		t.Fatalf("Detach = %v, len %d", fds, tab.Len())
	}
}

func TestHandles(t *testing.T) {
	tab := NewHandles()
	a := tab.Add(5, 2, false)
	b := tab.Add(6, 2, true)
	if a.ID == b.ID || a.Dir != nil || b.Dir == nil {
		t.Fatalf("a=%+v b=%+v", a, b)
	}
	if tab.Get(a.ID) != a || tab.Get(999) != nil {
		t.Fatal("Get")
	}
	if tab.Remove(a.ID) != a || tab.Remove(a.ID) != nil || tab.Len() != 1 {
		t.Fatal("Remove")
	}
	if fds := tab.Detach(); len(fds) != 1 || fds[0] != 6 {
		t.Fatalf("Detach = %v", fds)
	}
}

func TestDevEncoding(t *testing.T) {
	for _, d := range [][2]uint32{{0, 0}, {1, 3}, {8, 1}, {259, 70000}, {4095, 0xfffff}} {
		enc := EncodeDev(d[0], d[1])
		dev := DecodeDev(enc)
		if unix.Major(dev) != d[0] || unix.Minor(dev) != d[1] {
			t.Errorf("%d:%d → %#x → %d:%d", d[0], d[1], enc, unix.Major(dev), unix.Minor(dev))
		}
	}
}

func TestProcPath(t *testing.T) {
	for fd, want := range map[int]string{0: "/proc/self/fd/0", 7: "/proc/self/fd/7", 12345: "/proc/self/fd/12345"} {
		if got := ProcPath(fd); got != want {
			t.Errorf("ProcPath(%d) = %q", fd, got)
		}
	}
}

// TestNodesLend: a node whose fd holds a handle's file stops counting
// among the table's own fds, Forget and Detach leave its fd to the
// handle, and Return restores ownership.
func TestNodesLend(t *testing.T) {
	tab := NewNodes(3, Key{1, 1})
	a, _ := tab.Add(10, Key{1, 2}, unix.S_IFREG)
	b, _ := tab.Add(11, Key{1, 3}, unix.S_IFREG)
	if tab.Fds() != 3 {
		t.Fatalf("Fds = %d, want 3", tab.Fds())
	}
	if !tab.CanLend(a) {
		t.Fatal("a fresh node cannot take a handle's file")
	}
	tab.Lend(a, 7)
	if a.Fd != 10 || a.Lender() != 7 || tab.CanLend(a) {
		t.Fatalf("Lend: Fd %d (the number must not change), lender %d, CanLend %v", a.Fd, a.Lender(), tab.CanLend(a))
	}
	if tab.CanLend(tab.Get(RootID)) {
		t.Fatal("the root may take a handle's file")
	}
	if tab.Fds() != 2 {
		t.Fatalf("Fds with one node lent = %d, want 2", tab.Fds())
	}
	if old := tab.Oldest(5); len(old) != 1 || old[0] != b {
		t.Fatalf("Oldest offered a lent node: %v", old)
	}
	tab.Return(a)
	if a.Fd != 10 || a.Lender() != 0 || tab.Fds() != 3 {
		t.Fatalf("Return: Fd %d lender %d Fds %d", a.Fd, a.Lender(), tab.Fds())
	}
	// Forgotten while lent: the fd is the handle's to close.
	tab.Lend(b, 9)
	if fd := tab.Forget(b.ID, 1); fd != -1 {
		t.Fatalf("Forget of a lent node returned fd %d", fd)
	}
	if tab.Fds() != 2 || tab.Len() != 2 || tab.CanLend(b) {
		t.Fatalf("after Forget: Fds %d Len %d CanLend %v", tab.Fds(), tab.Len(), tab.CanLend(b))
	}
	tab.Return(b) // the release after the forget: no count goes negative
	if tab.Fds() != 2 {
		t.Fatalf("Return of a forgotten node changed Fds to %d", tab.Fds())
	}
	tab.Lend(a, 10)
	if fds := tab.Detach(); len(fds) != 0 {
		t.Fatalf("Detach returned a handle's fd: %v", fds)
	}
	if tab.Fds() != 1 {
		t.Fatalf("after Detach Fds = %d, want 1 (the root)", tab.Fds())
	}
}
