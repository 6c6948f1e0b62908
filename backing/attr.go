package backing

import (
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// KeyOf returns the inode identity of a statx result.
func KeyOf(st *unix.Statx_t) Key {
	return Key{Dev: unix.Mkdev(st.Dev_major, st.Dev_minor), Ino: st.Ino}
}

// FillAttr converts a statx result to FUSE attributes; ino is the FUSE
// node id's inode number as userspace will see it (the backing inode).
func FillAttr(a *fuse.Attr, st *unix.Statx_t) {
	a.Ino = st.Ino
	a.Size = st.Size
	a.Blocks = st.Blocks
	a.Atime, a.Atimensec = uint64(st.Atime.Sec), st.Atime.Nsec
	a.Mtime, a.Mtimensec = uint64(st.Mtime.Sec), st.Mtime.Nsec
	a.Ctime, a.Ctimensec = uint64(st.Ctime.Sec), st.Ctime.Nsec
	a.Mode = uint32(st.Mode)
	a.Nlink = st.Nlink
	a.Owner = fuse.Owner{Uid: st.Uid, Gid: st.Gid}
	a.Rdev = EncodeDev(st.Rdev_major, st.Rdev_minor)
	a.Blksize = st.Blksize
}

// EncodeDev packs a device number the way FUSE carries it (the kernel's
// 32-bit new_encode_dev).
func EncodeDev(major, minor uint32) uint32 {
	return minor&0xff | major<<8 | (minor&^0xff)<<12
}

// DecodeDev unpacks a FUSE device number into a full dev_t.
func DecodeDev(rdev uint32) uint64 {
	major := (rdev & 0xfff00) >> 8
	minor := rdev&0xff | (rdev>>12)&0xfff00
	return unix.Mkdev(major, minor)
}
