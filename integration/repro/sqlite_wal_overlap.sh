#!/usr/bin/env bash
# sqlite_wal_overlap.sh DIR [ROUNDS] — two sqlite WAL writer/reader pairs
# at once in DIR (any directory; meant for an evfs mount), ROUNDS rounds
# each (default 500), 20 transactions of 100 rows per round. A reader
# process runs `SELECT count(*)` in a loop while the writer commits; the
# count must never go down and no query may fail. Prints each bad round
# and, at the end, "bad=N" per pair; exits 1 if any round was bad.
#
# Before evfs ordered overlapping READs and WRITEs of one inode
# (fs/ioorder.go) this failed about 5 rounds in 1 000 on the pool and
# uring backends ("database disk image is malformed", or a count going
# from 1 800 back to 0), never on sync or a plain directory: the kernel
# sent a reader's READ of pages a WRITE had not finished, and a worker
# ran the READ first. Needs sqlite3.
set -euo pipefail
dir=${1:?usage: $0 DIR [ROUNDS]}
rounds=${2:-500}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
	echo '.timeout 20000'
	for tx in $(seq 1 20); do
		echo 'BEGIN;'
		for r in $(seq 1 100); do echo "INSERT INTO t(tx, v) VALUES($tx, 'row $r of transaction $tx');"; done
		echo 'COMMIT;'
	done
} >"$tmp/insert.sql"

# pair N: ROUNDS rounds in DIR/pairN
pair() {
	local d=$dir/pair$1 bad=0 round db prev c
	mkdir -p "$d"
	for round in $(seq 1 "$rounds"); do
		db=$d/wal.db
		rm -f "$db" "$db-wal" "$db-shm" "$tmp/done$1"
		sqlite3 "$db" 'PRAGMA journal_mode=WAL;' >/dev/null
		sqlite3 "$db" 'CREATE TABLE t(id INTEGER PRIMARY KEY, tx INTEGER, v TEXT);'
		(while [[ ! -e $tmp/done$1 ]]; do sqlite3 -cmd '.timeout 20000' "$db" 'SELECT count(*) FROM t;' 2>&1 || true; done) >"$tmp/reads$1" &
		sqlite3 -bail "$db" <"$tmp/insert.sql" >/dev/null 2>&1 || { echo "pair $1 round $round: the writer failed"; bad=$((bad + 1)); }
		touch "$tmp/done$1"
		wait $!
		prev=0
		while read -r c; do
			if [[ ! $c =~ ^[0-9]+$ ]]; then
				echo "pair $1 round $round: $c"
				bad=$((bad + 1))
			elif ((c < prev)); then
				echo "pair $1 round $round: the count went backwards: $prev then $c"
				bad=$((bad + 1))
			else
				prev=$c
			fi
		done <"$tmp/reads$1"
	done
	rm -rf "$d"
	echo "pair $1: bad=$bad of $rounds rounds"
	((bad == 0))
}

pair 1 & p1=$!
rc=0
pair 2 || rc=1
wait $p1 || rc=1
exit $rc
