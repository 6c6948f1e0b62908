// Command loopback mounts go-fuse's reference loopback file system
// (fs.NewLoopbackRoot) of BACKING at MOUNTPOINT and serves it in the
// foreground until SIGINT/SIGTERM, when it unmounts and exits 0. The
// integration runner uses it as the reference target next to evfs.
//
//	loopback BACKING MOUNTPOINT
//
// As root, go-fuse hands the kernel the backing fd of every open file
// (FUSE passthrough), so reads and writes do not reach this daemon.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: loopback BACKING MOUNTPOINT")
		os.Exit(2)
	}
	backing, mountpoint := os.Args[1], os.Args[2]
	// The kernel has already applied the caller's umask; the mode bits
	// in a request must reach the backing fs unchanged (as in evfs).
	syscall.Umask(0)

	root, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loopback: %s: %v\n", backing, err)
		os.Exit(1)
	}
	sec := time.Second
	opts := &fs.Options{
		AttrTimeout:     &sec, // the same defaults as evfs
		EntryTimeout:    &sec,
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			FsName:            backing,
			Name:              "loopback",
			DirectMountStrict: true,
			MaxBackground:     64,
			EnableLocks:       true,
		},
	}
	server, err := fs.Mount(mountpoint, root, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loopback: mount %s: %v\n", mountpoint, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "loopback: serving %s at %s\n", backing, mountpoint)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "loopback: %v: unmounting\n", sig)
		if err := server.Unmount(); err != nil {
			fmt.Fprintf(os.Stderr, "loopback: unmount: %v; detaching\n", err)
			syscall.Unmount(mountpoint, syscall.MNT_DETACH)
		}
	}()
	server.Wait()
	fmt.Fprintln(os.Stderr, "loopback: unmounted")
}
