#!/usr/bin/env bash
# soak.sh MOUNT [SECONDS] — 64 concurrent clients mixing create, write,
# append+fsync, read, stat, truncate, rename, unlink, mkdir, rmdir, readdir
# and xattrs on distinct subtrees for SECONDS (default 60), every result
# checked against a model; the daemon serving MOUNT is sampled every
# second (open fds, threads, RSS) and must stay within bounds after a
# warm-up; a watchdog fails the run if one operation takes over 10 s.
#
# The Go runner calls every script as `script MOUNT BACKING`: given a
# directory instead of SECONDS, the run lasts EVFS_SOAK_SECONDS (default
# 10). Env: EVFS_SOAK_BIN a prebuilt soak (else go build),
# EVFS_SOAK_CLIENTS (64), EVFS_SOAK_PID (default: found from the mount),
# EVFS_BIN an evfs binary for the end-of-run `evfs stats` check.
# Exit status: 0 pass, 1 fail, 2 usage, 77 skipped (no Go to build with).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ $# -lt 1 || $# -gt 2 ]]; then
	echo "usage: $0 MOUNT [SECONDS]" >&2
	exit 2
fi
MOUNT=$(cd "$1" && pwd -P) || { echo "soak: mount $1 is not a directory" >&2; exit 2; }
SECS=60
BACKING=
if [[ $# -eq 2 ]]; then
	if [[ $2 =~ ^[0-9]+$ ]]; then
		SECS=$2
	elif [[ -d $2 ]]; then
		BACKING=$(cd "$2" && pwd -P)
		SECS=${EVFS_SOAK_SECONDS:-10}
	else
		echo "soak: $2 is neither a number of seconds nor a directory" >&2
		exit 2
	fi
fi
CLIENTS=${EVFS_SOAK_CLIENTS:-64}
echo "soak: $CLIENTS clients mixing every operation on their own subtrees for ${SECS}s; daemon fds/threads/RSS sampled each second"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/evfs-soak.XXXXXX")
SUB=it-soak-$$-$RANDOM
W=$MOUNT/$SUB
cleanup() {
	rm -rf "$TMP"
	[[ -e $W ]] && rm -rf "$W"
	return 0
}
trap cleanup EXIT

SOAK=${EVFS_SOAK_BIN:-}
if [[ -z $SOAK ]]; then
	if ! command -v go >/dev/null 2>&1; then
		echo "soak: SKIP: go is not installed (set EVFS_SOAK_BIN)" >&2
		exit 77
	fi
	SOAK=$TMP/soak
	(cd "$HERE/.." && go build -o "$SOAK" ./integration/soak) || { echo "soak: FAIL: go build ./integration/soak failed" >&2; exit 1; }
fi
args=(-dir "$W" -mount "$MOUNT" -duration "${SECS}s" -clients "$CLIENTS")
[[ -n ${EVFS_SOAK_PID:-} ]] && args+=(-pid "$EVFS_SOAK_PID")
[[ -n ${EVFS_BIN:-} ]] && args+=(-evfs "$EVFS_BIN")
[[ -n $BACKING ]] && args+=(-backing "$BACKING/$SUB")
"$SOAK" "${args[@]}"
