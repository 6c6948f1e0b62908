#!/usr/bin/env bash
# locks.sh MOUNT BACKING — flock(1) across processes: mutual exclusion
# (an exact counter), -n fails while held, shared vs exclusive, release
# when the holder dies.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
it_setup locks "flock(1) mutual exclusion (8 processes x 40 increments exact), flock -n fails while held, shared/exclusive, release on close and on kill" "$@"
need flock

cd "$W"
echo 0 >counter
N=8 K=${EVFS_IT_LOCK_ROUNDS:-40}
inc() {
	local j n
	for j in $(seq 1 "$K"); do
		{
			flock -x 9
			n=$(<counter)
			# widen the race window: without the lock, increments get lost
			echo "$((n + 1))" >counter.tmp
			mv counter.tmp counter
		} 9>>lock
	done
}
# wait_all SECONDS WHAT PID...: all must exit 0 within SECONDS; a lock that
# is never released shows up here as a clear failure instead of a hang.
wait_all() {
	local secs=$1 what=$2 p left
	shift 2
	local deadline=$((SECONDS + secs))
	while :; do
		left=()
		for p in "$@"; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
		[[ ${#left[@]} -eq 0 ]] && break
		if ((SECONDS >= deadline)); then
			local stuck
			stuck=$(ps -o pid=,wchan:24=,args= --ppid "$(echo "${left[@]}" | tr ' ' ,)" 2>/dev/null | head -3)
			# shellcheck disable=SC2046
			kill -9 "${left[@]}" $(ps -o pid= --ppid "$(echo "${left[@]}" | tr ' ' ,)" 2>/dev/null) 2>/dev/null || true
			fail "$what: ${#left[@]} process(es) still running after ${secs}s (a lock never released?); counter=$(cat counter 2>/dev/null); children: $stuck"
		fi
		sleep 0.2
	done
	for p in "$@"; do wait "$p" || fail "$what: process $p failed"; done
}

pids=()
for i in $(seq 1 $N); do
	inc &
	pids+=($!)
done
wait_all 120 "$N processes x $K increments under flock" "${pids[@]}"
expect "counter after $N x $K locked increments" $((N * K)) "$(cat counter)"
expect "counter in the backing dir" $((N * K)) "$(cat "$B/counter")"

# wait_for FILE: until a holder says it has the lock
wait_for() {
	local i
	for i in $(seq 1 200); do
		[[ -e $1 ]] && return 0
		sleep 0.05
	done
	fail "timed out waiting for $1"
}

# exclusive holder: -n and -w fail, a shared request too
flock -x lock2 -c 'touch held2; sleep 3' &
holder=$!
wait_for held2
rc=0
flock -n lock2 true || rc=$?
expect "flock -n while another process holds it (exit status)" 1 "$rc"
rc=0
flock -w 0.3 lock2 true || rc=$?
expect "flock -w 0.3 while another process holds it (exit status)" 1 "$rc"
rc=0
flock -n -s lock2 true || rc=$?
expect "flock -n -s while an exclusive lock is held (exit status)" 1 "$rc"
start=$(date +%s%N)
timeout -s KILL 30 flock -x lock2 true || fail "a blocking flock on lock2 did not get the lock within 30 s" # blocks until the holder is done
waited=$((($(date +%s%N) - start) / 1000000))
wait "$holder" || fail "the holder of lock2 failed"
((waited >= 1000)) || fail "a blocking flock returned after ${waited} ms while another process held the lock for ~3 s"
flock -n lock2 true || fail "flock -n failed after the holder exited"

# shared locks coexist; exclusive waits for all of them
flock -s lock3 -c 'touch held3a; sleep 2' &
h1=$!
flock -s lock3 -c 'touch held3b; sleep 2' &
h2=$!
wait_for held3a
wait_for held3b
flock -n -s lock3 true || fail "a third shared lock was refused while two shared locks are held"
rc=0
flock -n -x lock3 true || rc=$?
expect "flock -n -x while shared locks are held (exit status)" 1 "$rc"
wait_all 30 "two shared holders of lock3" "$h1" "$h2"
flock -n -x lock3 true || fail "flock -n -x failed after the shared holders exited"

# a lock dies with its holder (SIGKILL: released on close of the last fd)
(
	exec 9>>lock4
	flock -x 9
	touch held4
	exec sleep 60 # the sleep itself holds the locked fd
) &
h=$!
wait_for held4
rc=0
flock -n lock4 true || rc=$?
expect "flock -n while a process holds lock4" 1 "$rc"
kill -9 "$h"
wait "$h" 2>/dev/null || true
timeout -s KILL 30 flock -w 5 lock4 true || fail "lock4 was not released within 5 s after its holder was killed"

# upgrade/downgrade on one fd, and unlock with -u
exec 8>>lock5
flock -s 8
flock -x 8
rc=0
flock -n -s lock5 true || rc=$?
expect "shared request while the lock was upgraded to exclusive" 1 "$rc"
flock -u 8
flock -n -x lock5 true || fail "flock -u did not release lock5"
exec 8>&-
