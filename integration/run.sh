#!/usr/bin/env bash
# run.sh MOUNT BACKING [script...] — run integration scripts (default: all
# of them) against an existing mount of BACKING at MOUNT and print a
# pass/fail summary. For a plain directory pass the same path twice.
#
# Env: EVFS_IT_TIMEOUT seconds per script (default 900); the scripts' own
# knobs (EVFS_IT_BIG_MB, EVFS_FSX_BIN, EVFS_FSX_OPS, ...) pass through.
# Exit status: 0 when nothing failed.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ $# -lt 2 ]]; then
	echo "usage: $0 MOUNT BACKING [script...]" >&2
	echo "scripts: $(cd "$HERE" && ls [!_]*.sh | grep -v '^run.sh$' | sed 's/\.sh$//' | tr '\n' ' ')" >&2
	exit 2
fi
MOUNT=$1 BACKING=$2
shift 2
scripts=("$@")
if [[ ${#scripts[@]} -eq 0 ]]; then
	mapfile -t scripts < <(cd "$HERE" && ls [!_]*.sh | grep -v '^run.sh$' | sed 's/\.sh$//')
fi
TIMEOUT=${EVFS_IT_TIMEOUT:-900}
log=$(mktemp -d "${TMPDIR:-/tmp}/evfs-run.XXXXXX")
trap 'rm -rf "$log"' EXIT

pass=0 failn=0 skipn=0
results=()
for s in "${scripts[@]}"; do
	s=${s%.sh}
	if [[ ! -x $HERE/$s.sh ]]; then
		echo "no such script: $s" >&2
		exit 2
	fi
	start=$(date +%s%N)
	rc=0
	timeout -k 10 "$TIMEOUT" "$HERE/$s.sh" "$MOUNT" "$BACKING" >"$log/$s" 2>&1 || rc=$?
	ds=$((($(date +%s%N) - start) / 100000000))
	secs=$((ds / 10)).$((ds % 10))
	case $rc in
	0) status=PASS pass=$((pass + 1)) ;;
	77) status=SKIP skipn=$((skipn + 1)) ;;
	124 | 137) status=FAIL failn=$((failn + 1)) && echo "timed out after ${TIMEOUT}s" >>"$log/$s" ;;
	*) status=FAIL failn=$((failn + 1)) ;;
	esac
	printf '%-4s %-12s %7ss  %s\n' "$status" "$s" "$secs" "$(head -n1 "$log/$s" | cut -c1-100)"
	if [[ $status != PASS ]]; then
		sed 's/^/    | /' "$log/$s" | tail -n 40
	fi
	results+=("$status $s $secs")
done
echo
echo "summary for $MOUNT:"
for r in "${results[@]}"; do printf '  %-4s %-12s %7ss\n' $r; done
echo "$pass passed, $failn failed, $skipn skipped"
[[ $failn -eq 0 ]]
