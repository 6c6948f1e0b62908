#!/usr/bin/env bash
# names.sh MOUNT BACKING — the namespace: rename storms, hard links,
# symlinks, odd names (spaces, UTF-8, 255 bytes; 256 → ENAMETOOLONG).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
it_setup names "rename storms, hard link counts, relative/absolute/dangling symlinks, spaces/UTF-8/255-byte names, 256 bytes -> ENAMETOOLONG" "$@"
need mv ln readlink stat

### rename storm: 4 workers each cycle their own 50 files a -> b -> c -> a,
### while 4 more fight over 10 shared files (ENOENT is the only allowed error)
R=$W/r
mkdir -p "$R"/{a,b,c}
for i in $(seq -w 0 199); do printf 'f%s\n' "$i" >"$R/a/f$i"; done
for i in $(seq 0 9); do printf 'c%s\n' "$i" >"$R/a/c$i"; done

cycle() { # own files f$1* (50 of them), 30 rounds
	local k=$1 round from to
	local files=() i
	for i in $(seq $((k * 50)) $((k * 50 + 49))); do files+=("$(printf 'f%03d' "$i")"); done
	for round in $(seq 1 30); do
		for pair in a:b b:c c:a; do
			from=${pair%:*} to=${pair#*:}
			(cd "$R/$from" && mv -- "${files[@]}" "$R/$to/") || return 1
		done
	done
}
fight() { # move shared files to random dirs; a file another worker moved first is ENOENT
	local n dirs=(a b c) i f from to
	for n in $(seq 1 60); do
		i=$((RANDOM % 10))
		for from in a b c; do
			if [[ -e $R/$from/c$i ]]; then
				to=${dirs[RANDOM % 3]}
				[[ $to == "$from" ]] && continue
				mv -T "$R/$from/c$i" "$R/$to/c$i" 2>>"$IT_TMP/fight.err" || true
				break
			fi
		done
	done
}
pids=()
for k in 0 1 2 3; do
	cycle "$k" >"$IT_TMP/cycle.$k" 2>&1 &
	pids+=($!)
	fight &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a rename worker failed: $(cat "$IT_TMP"/cycle.* | head -5)"
done
if [[ -s $IT_TMP/fight.err ]]; then
	other=$(grep -v 'No such file or directory' "$IT_TMP/fight.err" || true)
	[[ -z $other ]] || fail "contended renames failed with something other than ENOENT: $(head -5 <<<"$other")"
fi
for i in $(seq -w 0 199); do
	[[ -f $R/a/f$i ]] || fail "after 30 rename cycles f$i is not back in a/ (a: $(ls "$R/a" | wc -l) b: $(ls "$R/b" | wc -l) c: $(ls "$R/c" | wc -l) entries)"
	expect "content of f$i after the storm" "f$i" "$(cat "$R/a/f$i")"
done
for i in $(seq 0 9); do
	found=$( (ls -d "$R"/{a,b,c}/c$i 2>/dev/null || true) | wc -l)
	expect "copies of the contended file c$i" 1 "$found"
	expect "content of c$i" "c$i" "$(cat "$R"/{a,b,c}/c$i 2>/dev/null || true)"
done
same_tree "tree after the rename storm" r

### rename corner cases
cd "$W"
echo new >x
echo old >y
mv x y
[[ ! -e x && ! -e $B/x ]] || fail "rename x over y left x behind"
expect "y after renaming x over it" new "$(cat y)"
expect "y in the backing dir" new "$(cat "$B/y")"
mkdir -p d1/inner d2 d3/full
echo deep >d1/inner/file
touch d3/full/f
mv -T d1 d2 # a dir over an empty dir
[[ ! -e d1 && -f d2/inner/file ]] || fail "mv -T d1 d2 (over an empty dir) did not move the tree"
expect "file inside a renamed dir" deep "$(cat d2/inner/file)"
msg=$(errmsg mv -T d2 d3)
[[ $msg == *"Directory not empty"* || $msg == *"File exists"* ]] || fail "rename over a non-empty dir: want ENOTEMPTY, got: $msg"
msg=$(errmsg mv -T y d3)
[[ $msg == *"cannot overwrite directory"* || $msg == *"Is a directory"* ]] || fail "rename of a file over a dir: want EISDIR, got: $msg"
echo keep >z
msg=$(mv -n z y 2>&1 || true)
expect "y after mv -n z y (no replace)" new "$(cat y)"
expect "z after mv -n z y (no replace)" keep "$(cat z)"
mv d2/inner d3/full/moved # across directories, dir with content
expect "file in a dir moved across dirs" deep "$(cat d3/full/moved/file)"
expect "the same in the backing dir" deep "$(cat "$B/d3/full/moved/file")"
msg=$(errmsg mv d3 d3/full/moved/)
[[ $msg == *"subdirectory of itself"* || $msg == *"Invalid argument"* ]] || fail "moving a dir into itself: want EINVAL, got: $msg"
# a file renamed while open stays readable and writable through its fd
echo before >open1
exec 7<>open1
mv open1 open2
printf 'AFTER' >&7
exec 7>&-
expect "file written through an fd after rename" "AFTERe" "$(cat open2)"
expect "... in the backing dir" "AFTERe" "$(cat "$B/open2")"
rm -rf x y z d2 d3 open2

### hard links
mkdir h h/sub
echo data >h/f
ln h/f h/l1
ln h/f h/sub/l2
for p in h/f h/l1 h/sub/l2; do
	expect "link count of $p (mount)" 3 "$(stat -c %h "$p")"
	expect "link count of $p (backing)" 3 "$(stat -c %h "$B/$p")"
done
expect "inode of two links (mount)" "$(stat -c %i h/f)" "$(stat -c %i h/sub/l2)"
echo more >>h/l1
expect "content through another link" $'data\nmore' "$(cat h/sub/l2)"
rm h/f
expect "link count after rm of one link" 2 "$(stat -c %h h/l1)"
same_both "link count after rm" h/sub/l2 stat -c %h {}
mv h/l1 h/sub/l3
expect "link count after renaming a link" 2 "$(stat -c %h h/sub/l3)"
expect "link count of the other link" 2 "$(stat -c %h h/sub/l2)"
msg=$(errmsg ln h/sub h/subl)
[[ $msg == *"not allowed for directory"* || $msg == *"Operation not permitted"* ]] || fail "hard link to a dir: want EPERM, got: $msg"
rm h/sub/l3
expect "link count of the last link" 1 "$(stat -c %h h/sub/l2)"
same_both "link count of the last link" h/sub/l2 stat -c %h {}
mkdir h/dir
expect "link count of a new dir" 2 "$(stat -c %h h/dir)"
mkdir h/dir/a h/dir/b
expect "link count of a dir with 2 subdirs" 4 "$(stat -c %h h/dir)"
same_both "dir link count" h/dir stat -c %h {}
rm -rf h

### symlinks
mkdir -p s/dir
echo tgt >s/dir/target
ln -s dir/target s/rel
ln -s "$W/s/dir/target" s/abs
ln -s /nonexistent/evfs/nowhere s/dangling
ln -s dir s/dirlink
ln -s ../dir/target s/dir/up
long=$(printf 'l%.0s' $(seq 1 1000))
ln -s "$long" s/long
for l in rel:dir/target abs:"$W/s/dir/target" dangling:/nonexistent/evfs/nowhere dirlink:dir dir/up:../dir/target long:"$long"; do
	name=${l%%:*} want=${l#*:}
	[[ -L s/$name ]] || fail "test -L s/$name is false"
	expect "readlink s/$name" "$want" "$(readlink "s/$name")"
	expect "readlink s/$name in the backing dir" "$want" "$(readlink "$B/s/$name")"
	expect "stat -c %F of s/$name" "symbolic link" "$(stat -c %F "s/$name")"
	expect "lstat size of s/$name" "${#want}" "$(stat -c %s "s/$name")"
done
expect "cat through a relative symlink" tgt "$(cat s/rel)"
expect "cat through an absolute symlink" tgt "$(cat s/abs)"
expect "cat through a symlink going up" tgt "$(cat s/dir/up)"
expect "ls through a dir symlink" $'target\nup' "$(ls s/dirlink/)"
expect "readlink -f of a relative symlink" "$W/s/dir/target" "$(readlink -f s/rel)"
[[ ! -e s/dangling ]] || fail "test -e of a dangling symlink is true"
msg=$(errmsg cat s/dangling)
[[ $msg == *"No such file or directory"* ]] || fail "cat of a dangling symlink: want ENOENT, got: $msg"
ln -s loop1 s/loop2
ln -s loop2 s/loop1
msg=$(errmsg cat s/loop1)
[[ $msg == *"Too many levels of symbolic links"* ]] || fail "cat of a symlink loop: want ELOOP, got: $msg"
mv s/rel s/dir/rel2 # now dangling: relative to its new dir
[[ -L s/dir/rel2 && ! -e s/dir/rel2 ]] || fail "a relative symlink moved to another dir should dangle"
rm s/abs
expect "target after removing a symlink to it" tgt "$(cat s/dir/target)"
ln -sf dir/target s/dangling # replace a symlink
expect "readlink after ln -sf" dir/target "$(readlink s/dangling)"
expect "cat after ln -sf" tgt "$(cat s/dangling)"
rm -rf s

### odd names
mkdir n
names=("with space" "  lead and trail  " $'tab\tin' "héllo wörld" "日本語のファイル名" "emoji 🦀🎉" "-dash" "quote'\"" 'dollar$HOME' 'back\slash' '*star?' $'new\nline' "ÅÄÖ" "$(printf 'bytes\xff\xfe')")
for n in "${names[@]}"; do
	printf '%s' "$n" >"n/$n"
	[[ -f $B/n/$n ]] || fail "file named '$n' created on the mount is missing in the backing dir"
	expect "content of the file named '$n'" "$n" "$(cat "n/$n")"
	expect "content of '$n' in the backing dir" "$n" "$(cat "$B/n/$n")"
done
mkdir "n/dir with space" "n/目录"
echo in >"n/目录/файл"
expect "a UTF-8 file in a UTF-8 dir" in "$(cat "n/目录/файл")"
mv "n/目录/файл" "n/dir with space/ファイル 2"
expect "after renaming between UTF-8 names" in "$(cat "n/dir with space/ファイル 2")"
(cd n && find . -print0 | LC_ALL=C sort -z | od -c) >"$IT_TMP/n.m"
(cd "$B/n" && find . -print0 | LC_ALL=C sort -z | od -c) >"$IT_TMP/n.b"
cmp -s "$IT_TMP/n.m" "$IT_TMP/n.b" || fail "names listed on the mount differ from the backing dir"
expect "entries in n/" $((${#names[@]} + 2)) "$(find n -mindepth 1 -maxdepth 1 -print0 | tr -cd '\0' | wc -c)"

# 255 bytes is allowed, 256 is ENAMETOOLONG
n255=$(printf 'a%.0s' $(seq 1 255))
u255=$(printf '日%.0s' $(seq 1 85)) # 85 x 3 bytes
n256=${n255}b
u256=${u255}x
expect "byte length of the UTF-8 name" 255 "$(printf '%s' "$u255" | wc -c)"
echo 255 >"n/$n255"
echo u255 >"n/$u255"
expect "content of a 255-byte name" 255 "$(cat "n/$n255")"
expect "content of a 255-byte UTF-8 name" u255 "$(cat "n/$u255")"
[[ -f $B/n/$n255 && -f $B/n/$u255 ]] || fail "255-byte names missing in the backing dir"
mkdir "n/d$(printf 'd%.0s' $(seq 1 254))"
ln -s "$n255" "n/s$(printf 's%.0s' $(seq 1 254))"
expect "readlink of a 255-byte symlink name" "$n255" "$(readlink "n/s$(printf 's%.0s' $(seq 1 254))")"
mv "n/$n255" "n/$(printf 'm%.0s' $(seq 1 255))"
expect "rename to a 255-byte name" 255 "$(cat "n/$(printf 'm%.0s' $(seq 1 255))")"
for what in "touch:touch" "mkdir:mkdir" "stat:stat" "ln -s:ln -s x" "mv:mv n/-dash" "u-touch:touch"; do
	label=${what%%:*} cmd=${what#*:}
	target=n/$n256
	[[ $label == u-* ]] && target=n/$u256
	# shellcheck disable=SC2086
	msg=$(errmsg $cmd "$target")
	[[ $msg == *"File name too long"* ]] || fail "$label of a 256-byte name: want ENAMETOOLONG (File name too long), got: $msg"
done
rm -rf n
