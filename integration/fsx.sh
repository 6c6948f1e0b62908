#!/usr/bin/env bash
# fsx.sh MOUNT BACKING — the randomized exerciser fsx/ (write, read,
# truncate, fallocate, punch hole, zero range, mmap, copy_file_range)
# checked against a model after every op: a fixed seed, a fresh seed, and
# a run with a large file. EVFS_FSX_BIN: a prebuilt fsx (else go build);
# EVFS_FSX_OPS: ops per run (default 4000); EVFS_FSX_SEED: the fresh seed.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/_lib.sh"
OPS=${EVFS_FSX_OPS:-4000}
it_setup fsx "randomized write/read/truncate/fallocate/punch/zero/mmap/copy_file_range vs a model (seed 1, a fresh seed, a 4 MiB file), $OPS ops each" "$@"
need fallocate cmp

FSX=${EVFS_FSX_BIN:-}
if [[ -z $FSX ]]; then
	need go
	FSX=$IT_TMP/fsx
	(cd "$HERE/.." && go build -o "$FSX" ./integration/fsx) || fail "go build ./integration/fsx failed"
fi
[[ -x $FSX ]] || fail "fsx binary $FSX is not executable"

# what the backing fs itself supports decides which ops to run
flags=()
probe="$B/.probe"
head -c 65536 /dev/zero >"$probe"
fallocate -l 131072 "$probe" 2>/dev/null || flags+=(-no-fallocate)
fallocate -p -o 4096 -l 4096 "$probe" 2>/dev/null || flags+=(-no-punch)
fallocate -z -o 4096 -l 4096 "$probe" 2>/dev/null || flags+=(-no-zero)
rm -f "$probe"
[[ ${#flags[@]} -eq 0 ]] || echo "fsx: the backing fs lacks some ops; running with ${flags[*]}"

# one RUN-NAME FSX-ARGS...
one() {
	local name=$1
	shift
	"$FSX" -file "$W/$name" -keep "${flags[@]}" "$@" >"$IT_TMP/$name.out" 2>&1 || {
		cat "$IT_TMP/$name.out" >&2
		fail "fsx run '$name' failed (output above)"
	}
	echo "$(head -n1 "$IT_TMP/$name.out") => $(tail -n1 "$IT_TMP/$name.out")"
	cmp "$W/$name" "$B/$name" >"$IT_TMP/cmp" 2>&1 || fail "after fsx run '$name' the file differs between the mount and the backing dir: $(cat "$IT_TMP/cmp")"
	rm -f "$W/$name" "$W/$name.src"
}
one seed1 -seed 1 -ops "$OPS"
one fresh -seed "${EVFS_FSX_SEED:-$(((RANDOM << 30) ^ (RANDOM << 15) ^ RANDOM))}" -ops "$OPS"
# a larger file: requests cross max_write and readahead boundaries
one large -seed 7 -ops $((OPS / 4)) -maxlen $((4 * 1024 * 1024)) -maxop $((1536 * 1024)) -verify 4
