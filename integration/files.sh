#!/usr/bin/env bash
# files.sh MOUNT BACKING — regular file contents: create, overwrite,
# append, truncate, sparse files, and one big file (EVFS_IT_BIG_MB MiB,
# default 1024) whose sha256 must match on the mount and in the backing dir.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
BIG_MB=${EVFS_IT_BIG_MB:-1024}
it_setup files "create/overwrite/append/truncate, sparse files (du), a ${BIG_MB} MiB write+read with sha256 equal to the backing file" "$@"
need sha256sum dd truncate du cmp

# content REL WANT: the file reads back as WANT on the mount and in the backing dir.
content() {
	local got
	got=$(cat "$W/$1") || fail "cat $1 on the mount failed"
	expect "$1 read on the mount" "$2" "$got"
	got=$(cat "$B/$1") || fail "cat $1 in the backing dir failed"
	expect "$1 read in the backing dir" "$2" "$got"
	same_both "size of $1" "$1" stat -c %s {}
}

# create
printf 'hello world\n' >"$W/a"
content a 'hello world'
[[ -f $W/a ]] || fail "test -f a on the mount is false after creating it"
: >"$W/empty"
same_both "size of an empty file" empty stat -c '%s %F' {}
expect "size of an empty file" "0" "$(stat -c %s "$W/empty")"

# overwrite in place (no truncation), then with truncation
printf 'HE' | dd of="$W/a" bs=1 conv=notrunc status=none
content a 'HEllo world'
printf 'X' | dd of="$W/a" bs=1 seek=6 conv=notrunc status=none
content a 'HEllo Xorld'
printf 'short\n' >"$W/a"
content a 'short'

# append
printf 'one\n' >>"$W/a"
printf 'two\n' >>"$W/a"
content a $'short\none\ntwo'
for i in $(seq 1 100); do echo "line $i"; done >>"$W/a"
expect "lines after appending 100" 103 "$(wc -l <"$W/a")"
expect "last line" "line 100" "$(tail -n1 "$W/a")"
# O_APPEND through one fd while another fd writes at offset 0
exec 7>>"$W/b" 8<>"$W/b"
printf 'AAAA' >&7
printf 'bb' >&8
printf 'CCCC' >&7
exec 7>&- 8>&-
content b 'bbAACCCC'

# truncate: shrink, grow (zero fill), to zero
printf '0123456789' >"$W/t"
truncate -s 4 "$W/t"
content t 0123
truncate -s 4100 "$W/t"
same_both "size after growing" t stat -c %s {}
expect "size after growing" 4100 "$(stat -c %s "$W/t")"
cmp -s <(head -c 4 "$W/t"; head -c 4096 /dev/zero) "$W/t" || fail "grown file t is not 0123 followed by 4096 zero bytes"
truncate -s 0 "$W/t"
expect "size after truncate -s 0" 0 "$(stat -c %s "$W/t")"
same_both "size after truncate -s 0" t stat -c %s {}
printf 'again' >>"$W/t"
content t again
# truncate while the file is open for writing, then write through the old fd
exec 7<>"$W/t"
truncate -s 2 "$W/t"
printf 'Z' >&7
exec 7>&-
content t Zg

# sparse files: truncate -s and dd seek allocate (almost) nothing
truncate -s 1G "$W/sparse1"
expect "size of truncate -s 1G" 1073741824 "$(stat -c %s "$W/sparse1")"
same_both "size of sparse1" sparse1 stat -c %s {}
used=$(du -k "$W/sparse1" | cut -f1)
((used <= 64)) || fail "du of a 1 GiB sparse file on the mount is ${used} KiB; expected (almost) 0"
dd if=/dev/urandom of="$W/sparse2" bs=4096 count=1 seek=25600 status=none
expect "size of dd seek=25600 bs=4k" $((25601 * 4096)) "$(stat -c %s "$W/sparse2")"
used=$(du -k "$W/sparse2" | cut -f1)
((used <= 64)) || fail "du of a 100 MiB file with one 4 KiB block written is ${used} KiB on the mount; expected <= 64"
bused=$(du -k "$B/sparse2" | cut -f1)
expect "du -k of sparse2 (mount vs backing)" "$bused" "$used"
cmp -s <(head -c $((25600 * 4096)) /dev/zero) <(head -c $((25600 * 4096)) "$W/sparse2") || fail "the hole before the written block of sparse2 does not read as zeros"
expect "sha256 of sparse2 (mount vs backing)" "$(sha "$B/sparse2")" "$(sha "$W/sparse2")"
# writing into the middle of a hole
printf 'middle' | dd of="$W/sparse1" bs=1 seek=$((512 * 1024 * 1024)) conv=notrunc status=none
expect "size of sparse1 after writing in the hole" 1073741824 "$(stat -c %s "$W/sparse1")"
expect "bytes written in the hole" middle "$(dd if="$W/sparse1" bs=1 skip=$((512 * 1024 * 1024)) count=6 status=none)"
used=$(du -k "$W/sparse1" | cut -f1)
((used <= 128)) || fail "du of sparse1 after one small write is ${used} KiB; expected <= 128"

# a big file: stream -> mount, hashed on the way; then read back through
# the page cache, with O_DIRECT (from the daemon, not the page cache),
# and in the backing dir.
start=$SECONDS
want=$(head -c "$((BIG_MB * 1024 * 1024))" /dev/urandom | tee "$W/big" | sha256sum | cut -d' ' -f1)
wsecs=$((SECONDS - start))
expect "size of the big file" $((BIG_MB * 1024 * 1024)) "$(stat -c %s "$W/big")"
same_both "size of the big file" big stat -c %s {}
expect "sha256 of the big file read in the backing dir" "$want" "$(sha "$B/big")"
expect "sha256 of the big file read on the mount" "$want" "$(sha "$W/big")"
if got=$(dd if="$W/big" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1); then
	expect "sha256 of the big file read on the mount with O_DIRECT" "$want" "$got"
else
	fail "reading the big file with dd iflag=direct on the mount failed"
fi
# drop the mount's cached pages of the file, then read it again
dd if="$W/big" iflag=nocache count=0 status=none
expect "sha256 of the big file after dropping its cache" "$want" "$(sha "$W/big")"
# overwrite a chunk in the middle through the mount and compare again
head -c $((3 * 1024 * 1024 + 17)) /dev/urandom >"$IT_TMP/chunk"
dd if="$IT_TMP/chunk" of="$W/big" bs=1M seek=$((BIG_MB / 2)) oflag=seek_bytes conv=notrunc status=none
cmp -s "$IT_TMP/chunk" <(dd if="$W/big" bs=1M skip=$((BIG_MB / 2)) count=$((3 * 1024 * 1024 + 17)) iflag=skip_bytes,count_bytes status=none) || fail "overwritten chunk in the big file reads back wrong on the mount"
expect "sha256 of the big file after overwriting a chunk (mount vs backing)" "$(sha "$B/big")" "$(sha "$W/big")"
rm "$W/big"
[[ ! -e $B/big ]] || fail "rm big on the mount left it in the backing dir"
echo "files: big file ${BIG_MB} MiB written in ${wsecs}s, total $((SECONDS - start))s"
