// Command evfs mounts a directory through evfs's single-threaded event
// loop, unmounts it, and (later) benchmarks it.
//
// Exit codes: 0 success (including a clean unmount after a signal),
// 1 runtime failure, 2 bad usage or input.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

// usageError marks an error as the user's (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func newApp() *cli.App {
	return &cli.App{
		Name:    "evfs",
		Usage:   "a FUSE passthrough filesystem served by one event loop with asynchronous I/O",
		Version: version,
		Commands: []*cli.Command{
			mountCommand(),
			umountCommand(),
			versionCommand(),
			benchCommand(),
			serveLoopbackCommand(),
			statsCommand(),
		},
		OnUsageError: func(c *cli.Context, err error, isSub bool) error {
			return usageError{err.Error()}
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main decides the exit code
		HideVersion:    false,
	}
}

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	err := newApp().Run(args)
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "evfs:", err)
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the evfs version",
		Action: func(c *cli.Context) error {
			fmt.Println("evfs", version)
			return nil
		},
	}
}
