#!/usr/bin/env bash
# sqlitewal.sh MOUNT BACKING — two sqlite WAL writer/reader pairs at once,
# EVFS_IT_WAL_ROUNDS rounds each (default 60; 20 transactions of 100 rows
# per round): each reader process's `SELECT count(*)` never fails and
# never goes down while its writer commits, and the final count is exact.
#
# A stress test for the order of overlapping I/O: before evfs made a READ
# wait for an overlapping WRITE in flight (fs/ioorder.go) about 5 rounds
# in 1 000 failed on the pool and uring backends ("database disk image is
# malformed", or a count going from 1 800 back to 0), never on sync or a
# plain directory. EVFS_IT_WAL_ROUNDS=1000 reproduces that reliably.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
rounds=${EVFS_IT_WAL_ROUNDS:-60}
it_setup sqlitewal "two WAL writer/reader pairs at once, $rounds rounds each: reader counts never fail or go down, final counts exact" "$@"
need sqlite3

{
	echo '.timeout 20000'
	for tx in $(seq 1 20); do
		echo 'BEGIN;'
		for r in $(seq 1 100); do echo "INSERT INTO t(tx, v) VALUES($tx, 'row $r of transaction $tx');"; done
		echo 'COMMIT;'
	done
} >"$IT_TMP/insert.sql"

# pair N: the rounds of pair N in W/pairN; prints one line per bad round
# and exits 1 if there was one.
pair() {
	local d=$W/pair$1 bad=0 round db prev c
	mkdir "$d"
	for round in $(seq 1 "$rounds"); do
		db=$d/wal$round.db
		sqlite3 "$db" 'PRAGMA journal_mode=WAL;' >/dev/null
		sqlite3 "$db" 'CREATE TABLE t(id INTEGER PRIMARY KEY, tx INTEGER, v TEXT);'
		rm -f "$IT_TMP/done$1"
		(while [[ ! -e $IT_TMP/done$1 ]]; do sqlite3 -cmd '.timeout 20000' "$db" 'SELECT count(*) FROM t;' 2>&1 || true; done) >"$IT_TMP/reads$1" &
		local reader=$!
		if ! sqlite3 -bail "$db" <"$IT_TMP/insert.sql" >"$IT_TMP/writer$1" 2>&1; then
			echo "pair $1 round $round: the writer failed: $(tail -3 "$IT_TMP/writer$1")"
			bad=$((bad + 1))
		fi
		touch "$IT_TMP/done$1"
		wait "$reader"
		prev=0
		while read -r c; do
			if [[ ! $c =~ ^[0-9]+$ ]]; then
				echo "pair $1 round $round: a reader got: $c"
				bad=$((bad + 1))
			elif ((c < prev)); then
				echo "pair $1 round $round: a reader's count went backwards: $prev then $c"
				bad=$((bad + 1))
			else
				prev=$c
			fi
		done <"$IT_TMP/reads$1"
		c=$(sqlite3 "$db" 'SELECT count(*) FROM t;')
		if [[ $c != 2000 ]]; then
			echo "pair $1 round $round: final count $c, want 2000"
			bad=$((bad + 1))
		fi
		rm -f "$db" "$db-wal" "$db-shm"
	done
	((bad == 0))
}

pair 1 >"$IT_TMP/pair1.out" &
p1=$!
rc=0
pair 2 >"$IT_TMP/pair2.out" || rc=1
wait "$p1" || rc=1
if ((rc != 0)); then
	fail "$(cat "$IT_TMP/pair1.out" "$IT_TMP/pair2.out" | head -5 | tr '\n' ';')"
fi
echo "sqlitewal: 2 × $rounds rounds of 2 000 rows, every reader count whole and rising"
