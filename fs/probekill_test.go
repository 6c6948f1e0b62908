package fs_test

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"evfs/fs"
	"evfs/fs/fstest"
)

func init() { fstest.RegisterHelper("probekill", helperProbeKill) }

// TestKillDuringPollProbe: a process SIGKILLed while NewMount's poll
// probe holds a file of its own mount still exits. Closing that file used
// to send FLUSH to the dead daemon and wait for the answer forever: the
// process stayed unkillable (state D) and its mount hung until the
// connection was aborted by hand. CI once hung 19 minutes on it (the evfs
// binary probed too then). Without the writeback cache, where the kernel
// honours FOPEN_NOFLUSH (pollprobe.go).
func TestKillDuringPollProbe(t *testing.T) {
	mnt, backing := helperDirs(t)
	cmd := fstest.Helper("probekill", backing, mnt)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	said := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		said <- strings.TrimSpace(line)
	}()
	select {
	case s := <-said:
		if s != "probing" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper said %q, want probing", s)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("helper never reached the probe (%s)", abortMount(mnt))
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Errorf("the helper, SIGKILLed during the probe, had not exited after 10 s; %s", abortMount(mnt))
		<-done
	}
}

// helperProbeKill mounts backing at mnt and, while the poll probe file is
// open, says "probing" and waits to be killed.
func helperProbeKill(args []string) error {
	backing, mnt := args[0], args[1]
	fs.SetProbeHeld(func() {
		fmt.Println("probing")
		time.Sleep(time.Minute)
	})
	if _, err := fs.NewMount(backing, mnt, fs.Config{Backend: "pool", StallThreshold: -1}); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "the probe hook returned: not killed")
	return nil
}
