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
