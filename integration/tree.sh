#!/usr/bin/env bash
# tree.sh MOUNT BACKING — a nested 20 000-file tree: find | sort and du -s
# agree between the mount and the backing dir, and rm -rf empties both.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
it_setup tree "a nested 20000-file tree: find|sort identical, du -s comparable, rm -rf leaves both sides empty" "$@"
need find sort du xargs

T=$W/t
# 18 dirs x 10 subdirs x 100 files, plus one flat dir of 2 000 files
# (a directory read needing several READDIR requests).
mkdir -p "$T"/d{00..17}/s{0..9} "$T/flat"
for d in "$T"/d*/s*; do
	touch "$d"/f{000..099}
done
(cd "$T/flat" && printf 'file-%04d\n' $(seq 0 1999) | xargs touch)
# a little content here and there so du has something to count
for d in "$T"/d*/s*; do
	printf '%s\n' "$d" >"$d/f007"
	head -c 9000 /dev/zero >"$d/f042"
done

n=$(find "$T" -type f | wc -l)
expect "files on the mount" 20000 "$n"
n=$(find "$B/t" -type f | wc -l)
expect "files in the backing dir" 20000 "$n"
n=$(find "$T" -type d | wc -l)
expect "directories on the mount" $((1 + 18 + 180 + 1)) "$n"

same_tree "find | sort of the tree" t
# ls of the flat dir in readdir order must hold every name exactly once
ls -f "$T/flat" | LC_ALL=C sort >"$IT_TMP/flat.m"
ls -f "$B/t/flat" | LC_ALL=C sort >"$IT_TMP/flat.b"
cmp -s "$IT_TMP/flat.m" "$IT_TMP/flat.b" || fail "ls -f of the 2000-entry dir differs (< mount, > backing):
$(diff "$IT_TMP/flat.m" "$IT_TMP/flat.b" | head)"
dups=$(uniq -d "$IT_TMP/flat.m" | head -3)
[[ -z $dups ]] || fail "readdir of the 2000-entry dir returned duplicates: $dups"

am=$(du -s --apparent-size -B1 "$T" | cut -f1)
ab=$(du -s --apparent-size -B1 "$B/t" | cut -f1)
expect "du -s --apparent-size (mount vs backing)" "$ab" "$am"
km=$(du -sk "$T" | cut -f1)
kb=$(du -sk "$B/t" | cut -f1)
# block usage comes from the backing fs; allow 10% for directory growth
((km * 10 >= kb * 9 && km * 10 <= kb * 11)) || fail "du -sk: mount says ${km} KiB, backing says ${kb} KiB"

# rename the whole tree, list it again through the new name
mv "$T" "$W/t2"
[[ -d $B/t2/d17/s9 && ! -e $B/t ]] || fail "mv t t2 on the mount did not move the tree in the backing dir"
same_tree "find | sort after renaming the tree" t2

rm -rf "$W/t2"
[[ ! -e $W/t2 ]] || fail "t2 still exists on the mount after rm -rf"
[[ ! -e $B/t2 ]] || fail "t2 still exists in the backing dir after rm -rf on the mount: $(find "$B/t2" | head -5)"
left=$(ls -A "$W")
expect "entries left on the mount after rm -rf" "" "$left"
left=$(ls -A "$B")
expect "entries left in the backing dir after rm -rf" "" "$left"
