#!/usr/bin/env bash
# concurrency.sh MOUNT BACKING — many processes at once: 8 writers and
# 8 readers on distinct files, 8 writers on disjoint ranges of one file,
# and parallel mkdir/rmdir and create/unlink of the same names.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
it_setup concurrency "8 writers + 8 readers with checksums, 8 writers into one file, parallel mkdir/rmdir and create/unlink/rename of the same names (only EEXIST/ENOENT)" "$@"
need sha256sum dd perl

N=8
MB=${EVFS_IT_CONC_MB:-8}
mkdir "$W/w" "$W/r"
for i in $(seq 1 $N); do
	head -c $((MB * 1024 * 1024)) /dev/urandom >"$IT_TMP/src$i"
	sha "$IT_TMP/src$i" >"$IT_TMP/src$i.sum"
	cp "$IT_TMP/src$i" "$W/r/f$i" # files for the readers
done

# writers: different block sizes, one with fsync per block; readers:
# repeated full reads, half of them with O_DIRECT (served by the daemon)
pids=()
for i in $(seq 1 $N); do
	bs=$((4096 << (i % 5))) # 4k .. 64k
	flags=()
	((i == 3)) && flags=(oflag=dsync)
	((i == 5)) && flags=(oflag=direct)
	dd if="$IT_TMP/src$i" of="$W/w/f$i" bs=$bs "${flags[@]}" status=none 2>"$IT_TMP/w$i.err" &
	pids+=($!)
	(
		for round in 1 2 3 4; do
			if ((i % 2)); then
				got=$(dd if="$W/r/f$i" bs=64k iflag=direct status=none | sha256sum | cut -d' ' -f1)
			else
				got=$(sha "$W/r/f$i")
			fi
			[[ $got == "$(cat "$IT_TMP/src$i.sum")" ]] || {
				echo "reader $i round $round: sha256 $got, want $(cat "$IT_TMP/src$i.sum")"
				exit 1
			}
		done
	) >"$IT_TMP/r$i.err" 2>&1 &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a writer or reader failed: $(cat "$IT_TMP"/w*.err "$IT_TMP"/r*.err | head -5)"
done
for i in $(seq 1 $N); do
	want=$(cat "$IT_TMP/src$i.sum")
	expect "sha256 of writer $i's file on the mount" "$want" "$(sha "$W/w/f$i")"
	expect "sha256 of writer $i's file in the backing dir" "$want" "$(sha "$B/w/f$i")"
done

# 8 writers on disjoint 1 MiB ranges of one file, in 4 KiB pieces
: >"$W/shared"
pids=()
for i in $(seq 0 $((N - 1))); do
	dd if="$IT_TMP/src$((i + 1))" of="$W/shared" bs=4096 count=256 seek=$((i * 256)) conv=notrunc status=none &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a writer into the shared file failed"; done
for i in $(seq 0 $((N - 1))); do head -c $((1024 * 1024)) "$IT_TMP/src$((i + 1))"; done >"$IT_TMP/shared.want"
expect "size of the shared file" $((N * 1024 * 1024)) "$(stat -c %s "$W/shared")"
expect "sha256 of the shared file (mount)" "$(sha "$IT_TMP/shared.want")" "$(sha "$W/shared")"
expect "sha256 of the shared file (backing)" "$(sha "$IT_TMP/shared.want")" "$(sha "$B/shared")"

# parallel mkdir/rmdir of the same 10 names, and create/unlink/rename of
# 10 more. Renames are plain rename(2) calls (perl), not mv: GNU mv 9.1
# reads an uninitialised struct stat when the destination vanishes between
# its rename(RENAME_NOREPLACE) and its lstat of the destination, and then
# now and then says "cannot overwrite directory ... with non-directory"
# about a regular file (integration/repro/coreutils_mv_vanished_dst.sh
# shows it on a plain ext4 directory, no FUSE involved).
mkdir "$W/race"
race() {
	local k=$1 n
	for n in $(seq 1 "${EVFS_IT_RACE_ROUNDS:-60}"); do
		mkdir "$W/race/d$((RANDOM % 10))" 2>>"$IT_TMP/race.$k" || true
		rmdir "$W/race/d$((RANDOM % 10))" 2>>"$IT_TMP/race.$k" || true
		echo "$k" >"$W/race/f$((RANDOM % 10))" 2>>"$IT_TMP/race.$k" || true
		rm -f "$W/race/f$((RANDOM % 10))" 2>>"$IT_TMP/race.$k" || true
		[[ -e $W/race/f$((RANDOM % 10)) ]] && { cat "$W/race/f$((RANDOM % 10))" >/dev/null 2>&1 || true; }
		perl -e 'rename($ARGV[0], $ARGV[1]) or die "rename: $!\n"' \
			"$W/race/f$((RANDOM % 10))" "$W/race/f$((RANDOM % 10))" 2>>"$IT_TMP/race.$k" || true
	done
}
pids=()
for k in $(seq 1 $N); do
	race "$k" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
cat "$IT_TMP"/race.* >"$IT_TMP/race.all" 2>/dev/null || true
bad=$(grep -v -e 'File exists' -e 'No such file or directory' "$IT_TMP/race.all" | sort | uniq -c | head -5 || true)
[[ -z $bad ]] || fail "parallel mkdir/rmdir/create/unlink/rename gave errors other than EEXIST/ENOENT: $bad"
echo "concurrency: $(wc -l <"$IT_TMP/race.all") tolerated EEXIST/ENOENT errors"
# the final state is the same on the mount and in the backing dir
expect "names in race/ (mount vs backing)" "$(ls "$B/race" | sort | tr '\n' ' ')" "$(ls "$W/race" | sort | tr '\n' ' ')"
for i in $(seq 0 9); do
	for t in d f; do
		m=missing b=missing
		[[ -e $W/race/$t$i ]] && m=$(stat -c %F "$W/race/$t$i")
		[[ -e $B/race/$t$i ]] && b=$(stat -c %F "$B/race/$t$i")
		expect "race/$t$i (mount vs backing)" "$b" "$m"
	done
done
same_tree "race/ after the storm" race
