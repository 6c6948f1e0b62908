package fs

// SetProbeHeld sets the hook that runs while the poll probe file is open
// (pollprobe.go), for the fs_test helpers.
func SetProbeHeld(f func()) { probeHeld = f }

// SetURingEnabledPath points the uring transport's check of the fuse
// module parameter at another file, for a test; it returns the old path.
func SetURingEnabledPath(p string) string {
	old := uringEnabledPath
	uringEnabledPath = p
	return old
}

// PinFirstCPU confines the calling goroutine's thread to the first CPU of
// all until the returned func runs (spin_internal_test.go).
var PinFirstCPU = pinFirstCPU
