#!/usr/bin/env bash
# git.sh MOUNT BACKING — git on the mount: init, add 2 000 files, commit,
# log, status, gc, fsck, and a local clone (hard links).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
it_setup git "git init/add 2000 files/commit/log/status clean/gc/fsck, clone and checkout on the mount" "$@"
need git

export HOME=$IT_TMP GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=evfs GIT_AUTHOR_EMAIL=evfs@example.invalid
export GIT_COMMITTER_NAME=evfs GIT_COMMITTER_EMAIL=evfs@example.invalid
export GIT_AUTHOR_DATE='2020-01-01T00:00:00Z' GIT_COMMITTER_DATE='2020-01-01T00:00:00Z'
g() { git -c init.defaultBranch=main -c gc.auto=0 -c core.fsync=all "$@"; }

R=$W/repo
g init -q "$R"
cd "$R"
for d in $(seq -w 0 19); do
	mkdir "dir$d"
	for f in $(seq -w 0 99); do
		printf 'file %s/%s\n%s\n' "$d" "$f" "$RANDOM$RANDOM" >"dir$d/f$f.txt"
	done
done
expect "files created" 2000 "$(find . -path ./.git -prune -o -type f -print | wc -l)"
g add .
expect "files staged" 2000 "$(g ls-files | wc -l)"
g commit -q -m "2000 files"
expect "commits in the log" 1 "$(g log --oneline | wc -l)"
expect "git status --porcelain after commit" "" "$(g status --porcelain)"
# change, delete, rename, add; commit again
echo changed >>dir03/f07.txt
g rm -q dir04/f01.txt
g mv dir05/f02.txt dir05/renamed.txt
mkdir new && echo new >new/file.txt
chmod +x dir06/f03.txt
ln -s ../dir00/f00.txt new/link
st=$(g status --porcelain | LC_ALL=C sort | tr '\n' '|')
expect "git status --porcelain after changes" " M dir03/f07.txt| M dir06/f03.txt|?? new/|D  dir04/f01.txt|R  dir05/f02.txt -> dir05/renamed.txt|" "$st"
g add -A
g commit -q -m "second"
expect "commits in the log" 2 "$(g log --oneline | wc -l)"
expect "git status --porcelain after the 2nd commit" "" "$(g status --porcelain)"
expect "files changed by the 2nd commit" 6 "$(g show --stat --format= HEAD | grep -c '|')"
g gc -q
g fsck --full --strict --no-progress 2>&1 | { grep -v '^dangling' || true; } >"$IT_TMP/fsck"
[[ ! -s $IT_TMP/fsck ]] || fail "git fsck reported: $(head -5 "$IT_TMP/fsck")"
expect "git status after gc" "" "$(g status --porcelain)"
expect "packs after gc" 1 "$(find .git/objects/pack -name '*.pack' | wc -l)"
expect "commits after gc" 2 "$(g log --oneline | wc -l)"
g -C "$B/repo" fsck --full --no-progress >"$IT_TMP/fsckb" 2>&1 || fail "git fsck of the repo in the backing dir failed: $(head -5 "$IT_TMP/fsckb")"
expect "HEAD seen in the backing dir" "$(g rev-parse HEAD)" "$(g -C "$B/repo" rev-parse HEAD)"

# a local clone on the mount (objects hard-linked), checkout, compare
g clone -q "$R" "$W/clone"
expect "HEAD of the clone" "$(g rev-parse HEAD)" "$(g -C "$W/clone" rev-parse HEAD)"
diff -r --no-dereference -x .git "$R" "$W/clone" >"$IT_TMP/diff" || fail "clone differs from the repo: $(head -5 "$IT_TMP/diff")"
g -C "$W/clone" fsck --full --no-progress >"$IT_TMP/fsckc" 2>&1 || fail "git fsck of the clone failed: $(head -5 "$IT_TMP/fsckc")"
g -C "$W/clone" checkout -q HEAD~1
expect "file restored by checkout HEAD~1" "file 04/01" "$(head -n1 "$W/clone/dir04/f01.txt")"
[[ ! -e $W/clone/new ]] || fail "checkout HEAD~1 did not remove new/"
g -C "$W/clone" checkout -q main
expect "status of the clone" "" "$(g -C "$W/clone" status --porcelain)"
