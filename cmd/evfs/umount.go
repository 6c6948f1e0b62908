package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func umountCommand() *cli.Command {
	return &cli.Command{
		Name:         "umount",
		Usage:        "unmount an evfs mount point",
		ArgsUsage:    "MOUNTPOINT",
		OnUsageError: func(c *cli.Context, err error, isSub bool) error { return usageError{err.Error()} },
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "lazy", Aliases: []string{"l"}, Usage: "detach now and clean up when no longer busy (MNT_DETACH)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("umount needs exactly one MOUNTPOINT (got %d arguments)", c.NArg())
			}
			mp := c.Args().First()
			flags := 0
			if c.Bool("lazy") {
				flags = unix.MNT_DETACH
			}
			if stale, err := cleanStale(mp); stale {
				return err // a dead daemon's mount: aborted and detached
			}
			if err := unix.Unmount(mp, flags); err != nil {
				switch err {
				case unix.EINVAL:
					return usagef("%s is not a mount point", mp)
				case unix.ENOENT:
					return usagef("%s does not exist", mp)
				case unix.EBUSY:
					return fmt.Errorf("unmount %s: busy (a process is using it); retry or use --lazy", mp)
				}
				return fmt.Errorf("unmount %s: %w", mp, err)
			}
			return nil
		},
	}
}
