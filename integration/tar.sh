#!/usr/bin/env bash
# tar.sh MOUNT BACKING — tar a generated tree on the mount, unpack it
# elsewhere on the mount, and compare (diff -r and metadata).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
it_setup tar "tar c of a generated tree on the mount, tar x elsewhere on the mount (plain, gzip, sparse); diff -r and metadata equal" "$@"
need tar gzip diff find

S=$W/src
mkdir -p "$S"/{a/b/c,empty,"with space",ütf}
for i in $(seq 1 300); do printf 'small %d\n' "$i" >"$S/a/s$i"; done
for sz in 0 1 4095 4096 4097 65536 131073 1048577; do head -c "$sz" /dev/urandom >"$S/a/b/r$sz"; done
head -c 5000000 /dev/urandom >"$S/a/b/c/big"
echo spaced >"$S/with space/file name"
echo utf >"$S/ütf/файл"
truncate -s 20M "$S/sparse"
printf 'tail' | dd of="$S/sparse" bs=1 seek=$((10 * 1024 * 1024)) conv=notrunc status=none
ln -s a/b/r4096 "$S/link"
ln -s /nonexistent "$S/dangling"
ln "$S/a/s1" "$S/hard1"
ln "$S/a/s1" "$S/a/b/hard2"
mkfifo "$S/fifo"
chmod 600 "$S/a/s2"
chmod 755 "$S/a/s3"
chmod 700 "$S/a/b/c"
touch -d '2001-02-03 04:05:06' "$S/a/s4" "$S/a/b"
touch -h -d '2002-02-02 02:02:02' "$S/link"
touch -d '2003-03-03 03:03:03' "$S/empty"

# meta DIR: one line per entry (type, mode, size of files, links, mtime, target)
meta() {
	(cd "$1" && find . -mindepth 1 \( -type f -printf '%y %m %s %n %T@ %p\n' \) -o \( -type d -printf '%y %m %T@ %p\n' \) -o -printf '%y %m %T@ %p -> %l\n' | LC_ALL=C sort)
}
meta "$S" >"$IT_TMP/meta.src"
[[ -s $IT_TMP/meta.src ]] || fail "listing the source tree gave nothing"

# compare DIR WHAT
compare() {
	diff -r --no-dereference -x fifo "$S" "$1" >"$IT_TMP/diff" 2>&1 || fail "$2: diff -r differs: $(head -10 "$IT_TMP/diff")"
	meta "$1" >"$IT_TMP/meta.dst"
	cmp -s "$IT_TMP/meta.src" "$IT_TMP/meta.dst" || fail "$2: metadata differs (< source, > unpacked): $(diff "$IT_TMP/meta.src" "$IT_TMP/meta.dst" | head -10)"
	expect "$2: link count of an unpacked hard link" 3 "$(stat -c %h "$1/hard1")"
	expect "$2: inode of the unpacked hard links" "$(stat -c %i "$1/hard1")" "$(stat -c %i "$1/a/b/hard2")"
}

tar -C "$S" --format=posix --sort=name -cf "$W/plain.tar" .
mkdir "$W/dst1"
tar -C "$W/dst1" -xpf "$W/plain.tar"
compare "$W/dst1" "plain tar"
# the archive made on the mount lists the same as one made from the backing dir
tar -C "$B/src" --format=posix --sort=name -cf - . | tar -tvf - >"$IT_TMP/list.b"
tar -tvf "$W/plain.tar" >"$IT_TMP/list.m"
cmp -s "$IT_TMP/list.m" "$IT_TMP/list.b" || fail "tar -tv of the archive made on the mount differs from one made in the backing dir: $(diff "$IT_TMP/list.m" "$IT_TMP/list.b" | head)"
expect "archive in the backing dir" "$(sha "$W/plain.tar")" "$(sha "$B/plain.tar")"

# gzip through a pipe, unpacked by a second tar reading the mount
tar -C "$S" --format=posix -czf - . >"$W/c.tgz"
mkdir "$W/dst2"
tar -C "$W/dst2" -xpzf "$W/c.tgz"
compare "$W/dst2" "tar.gz"

# sparse-aware archive; the unpacked sparse file has holes again
tar -C "$S" --format=posix --sparse -cf "$W/sparse.tar" .
mkdir "$W/dst3"
tar -C "$W/dst3" -xpf "$W/sparse.tar"
compare "$W/dst3" "sparse tar"
used=$(du -k "$W/dst3/sparse" | cut -f1)
((used <= 256)) || fail "a 20 MiB sparse file unpacked with tar --sparse uses ${used} KiB"
expect "sparse archive is small" 1 "$(($(stat -c %s "$W/sparse.tar") < 20000000))"

# unpack over an existing tree (tar replaces files in place)
tar -C "$W/dst1" -xpf "$W/plain.tar"
compare "$W/dst1" "unpacking again over the same tree"
same_tree "unpacked tree" dst1
