#!/usr/bin/env bash
# sqlite.sh MOUNT BACKING — SQLite on the mount: 10 000 inserts in
# transactions while another process keeps reading (POSIX locks),
# integrity_check ok, exact count; then the same briefly in WAL mode
# (shared mmap of the -shm file).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
it_setup sqlite "10000 inserts in 100 transactions with a concurrent reader (rollback journal), then WAL; integrity_check ok, count exact" "$@"
need sqlite3

# run DB WHAT N_TX ROWS_PER_TX: writer + concurrent reader; reader sees only whole transactions
run() {
	local db=$1 what=$2 ntx=$3 per=$4 mode=$5
	sqlite3 "$db" "PRAGMA journal_mode=$mode;" >/dev/null
	sqlite3 "$db" "CREATE TABLE t(id INTEGER PRIMARY KEY, tx INTEGER, v TEXT);"
	: >"$IT_TMP/done.$what"
	rm -f "$IT_TMP/done.$what"
	(
		while [[ ! -e $IT_TMP/done.$what ]]; do
			if ! out=$(sqlite3 -cmd '.timeout 20000' "$db" 'SELECT count(*) FROM t;' 2>&1); then
				echo "reader error: $out"
			else
				echo "$out"
			fi
		done
	) >"$IT_TMP/reads.$what" &
	local reader=$!
	{
		echo '.timeout 20000'
		for tx in $(seq 1 "$ntx"); do
			echo 'BEGIN;'
			for r in $(seq 1 "$per"); do
				echo "INSERT INTO t(tx, v) VALUES($tx, '$what row $r of transaction $tx');"
			done
			echo 'COMMIT;'
		done
	} >"$IT_TMP/insert.sql"
	sqlite3 -bail "$db" <"$IT_TMP/insert.sql" >"$IT_TMP/writer.$what" 2>&1 || fail "$what: the writer failed: $(tail -5 "$IT_TMP/writer.$what")"
	touch "$IT_TMP/done.$what"
	wait "$reader" || fail "$what: the reader loop failed"
	local errs
	errs=$(grep -v '^[0-9][0-9]*$' "$IT_TMP/reads.$what" | sort | uniq -c | head -5 || true)
	[[ -z $errs ]] || fail "$what: the concurrent reader got errors: $errs"
	local nreads prev=0 c
	nreads=$(wc -l <"$IT_TMP/reads.$what")
	((nreads > 0)) || fail "$what: the reader never completed a query"
	while read -r c; do
		((c % per == 0)) || fail "$what: the reader saw $c rows: part of a transaction (rows come $per per transaction)"
		((c >= prev)) || fail "$what: the reader's count went backwards: $prev then $c"
		prev=$c
	done <"$IT_TMP/reads.$what"
	expect "$what: final count" "$((ntx * per))" "$(sqlite3 "$db" 'SELECT count(*) FROM t;')"
	expect "$what: PRAGMA integrity_check" ok "$(sqlite3 "$db" 'PRAGMA integrity_check;')"
	expect "$what: transactions with all their rows" "$ntx" "$(sqlite3 "$db" "SELECT count(*) FROM (SELECT tx FROM t GROUP BY tx HAVING count(*) = $per);")"
	echo "sqlite: $what: $((ntx * per)) rows; the reader ran $nreads queries concurrently"
}

run "$W/rollback.db" rollback 100 100 DELETE
[[ ! -e $W/rollback.db-journal ]] || fail "rollback: the -journal file was left behind"
expect "rollback: integrity_check of the file in the backing dir" ok "$(sqlite3 "file:$B/rollback.db?immutable=1" 'PRAGMA integrity_check;')"
expect "rollback: the database file (mount vs backing)" "$(sha "$B/rollback.db")" "$(sha "$W/rollback.db")"
# a second connection updating everything while the first reads
sqlite3 "$W/rollback.db" 'UPDATE t SET v = upper(v); VACUUM;'
expect "rollback: rows after UPDATE + VACUUM" 10000 "$(sqlite3 "$W/rollback.db" "SELECT count(*) FROM t WHERE v GLOB 'ROLLBACK ROW *';")"
expect "rollback: integrity_check after VACUUM" ok "$(sqlite3 "$W/rollback.db" 'PRAGMA integrity_check;')"

run "$W/wal.db" wal 20 100 WAL
sqlite3 "$W/wal.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
expect "wal: integrity_check of the file in the backing dir" ok "$(sqlite3 "file:$B/wal.db?immutable=1" 'PRAGMA integrity_check;')"
