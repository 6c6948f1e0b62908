package fs

// SetProbeHeld sets the hook that runs while the poll probe file is open
// (pollprobe.go), for the fs_test helpers.
func SetProbeHeld(f func()) { probeHeld = f }
