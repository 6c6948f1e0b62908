#!/usr/bin/env bash
# Reproducer for the known bug of the experimental --transport loop (not
# run by the test suite). Mount a fresh directory with
#   evfs mount --backend sync --transport loop --entry-timeout 0 --attr-timeout 0 BACKING MNT
# and run: integration/repro/loop_transport_mv.sh MNT
# Eight shells race mkdir/rmdir of d0..d9, create/unlink of f0..f9 and
# mv between f names. Through the loop transport, mv now and then reports
# "cannot overwrite directory '.../fN' with non-directory" (about one run
# in two); with --transport gofuse too, less often (2 runs in 8, also on
# the first session's build). The daemon's replies were logged and are
# consistent (every node keeps one file type; every RENAME succeeds): the
# cause is still open (docs/DESIGN.md).
set -u
W=${1:?usage: $0 MOUNTPOINT}/loop-mv-repro.$$
mkdir -p "$W"
worker() {
	local k=$1 n
	for n in $(seq 1 300); do
		mkdir "$W/d$((RANDOM % 10))" 2>/dev/null
		rmdir "$W/d$((RANDOM % 10))" 2>/dev/null
		echo "$k" >"$W/f$((RANDOM % 10))" 2>/dev/null
		rm -f "$W/f$((RANDOM % 10))" 2>/dev/null
		mv "$W/f$((RANDOM % 10))" "$W/f$((RANDOM % 10))" 2>&1 | grep -v -e 'No such' -e 'same file'
	done
}
for k in 1 2 3 4 5 6 7 8; do worker "$k" & done
wait
rm -rf "$W"
