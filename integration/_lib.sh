# Shared helpers for the integration scripts; sourced, never run.
#
# A script calls `it_setup NAME "what it checks" "$@"` first. That sets
#   W  its own fresh working directory on the mount  (MOUNT/it-NAME-PID-RAND)
#   B  the same directory seen in the backing directory
# prints the one-line description, and arranges for W to be removed on exit
# (and checks that it is gone from the backing directory too).
#
# Exit status: 0 pass, 1 a mismatch or error (with a message on stderr
# saying what differed), 77 skipped (a tool the script needs is missing).

it_setup() {
	IT_NAME=$1
	local what=$2
	shift 2
	if [[ $# -ne 2 ]]; then
		echo "usage: $0 MOUNT BACKING" >&2
		exit 2
	fi
	MOUNT=$(cd "$1" && pwd -P) || { echo "$IT_NAME: mount $1 is not a directory" >&2; exit 2; }
	BACKING=$(cd "$2" && pwd -P) || { echo "$IT_NAME: backing $2 is not a directory" >&2; exit 2; }
	echo "$IT_NAME: $what"
	local sub="it-$IT_NAME-$$-$RANDOM"
	W=$MOUNT/$sub
	B=$BACKING/$sub
	IT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/evfs-it-$IT_NAME.XXXXXX")
	trap it_cleanup EXIT
	trap 'IT_RC=$?; IT_FAILED=1; echo "$IT_NAME: FAIL: line $LINENO: \"$BASH_COMMAND\" exited with status $IT_RC" >&2' ERR
	mkdir "$W" || fail "mkdir $W on the mount failed"
	[[ -d $B ]] || fail "mkdir $W on the mount did not create $B in the backing directory"
}

it_cleanup() {
	local rc=$?
	trap - EXIT ERR
	if [[ $rc -ne 0 && $rc -ne 77 && -z ${IT_FAILED:-} ]]; then
		echo "$IT_NAME: FAIL: exited with status $rc" >&2
	fi
	# Background jobs a failing script left behind.
	local j
	for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done
	wait 2>/dev/null || true
	cd / || true
	if [[ -n ${W:-} && -e $W ]]; then
		local out
		chmod -R u+rwX "$W" 2>/dev/null || true
		if ! out=$(rm -rf "$W" 2>&1); then
			echo "$IT_NAME: cleanup: rm -rf $W on the mount failed: $out" >&2
			[[ $rc -eq 0 ]] && rc=1
		fi
	fi
	if [[ -n ${B:-} && -e $B ]]; then
		echo "$IT_NAME: cleanup: $B is still in the backing directory after rm -rf on the mount" >&2
		rm -rf "$B" || true
		[[ $rc -eq 0 ]] && rc=1
	fi
	[[ -n ${IT_TMP:-} ]] && rm -rf "$IT_TMP"
	exit "$rc"
}

fail() {
	IT_FAILED=1
	echo "$IT_NAME: FAIL: $*" >&2
	exit 1
}

skip() {
	IT_FAILED=1
	echo "$IT_NAME: SKIP: $*" >&2
	exit 77
}

need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || skip "$t is not installed"
	done
}

# expect WHAT WANT GOT
expect() {
	[[ "$2" == "$3" ]] || fail "$1: expected '$2', got '$3'"
}

# run_at PATH CMD ARGS... : runs CMD with every "{}" argument replaced by PATH.
run_at() {
	local p=$1
	shift
	local args=() a
	for a in "$@"; do
		args+=("${a//\{\}/$p}")
	done
	"${args[@]}"
}

# same_both WHAT REL CMD ARGS... : runs the command on W/REL and on B/REL
# ("{}" stands for the path); both must succeed with the same output.
same_both() {
	local what=$1 rel=$2
	shift 2
	local a b
	a=$(run_at "$W/$rel" "$@" 2>&1) || fail "$what: on the mount, '$*' failed: $a"
	b=$(run_at "$B/$rel" "$@" 2>&1) || fail "$what: in the backing dir, '$*' failed: $b"
	[[ "$a" == "$b" ]] || fail "$what: the mount says '$a', the backing dir says '$b'"
}

# same_tree WHAT REL : the tree under REL looks the same (names, types,
# sizes of regular files, link targets) on the mount and in the backing dir.
same_tree() {
	local what=$1 rel=$2
	local a=$IT_TMP/tree.mount b=$IT_TMP/tree.backing
	(cd "$W/$rel" && find . \( -type f -printf '%y %s %p\n' \) -o \( -type l -printf '%y %p -> %l\n' \) -o \( ! -type f ! -type l -printf '%y %p\n' \) | LC_ALL=C sort) >"$a" || fail "$what: find on the mount failed"
	(cd "$B/$rel" && find . \( -type f -printf '%y %s %p\n' \) -o \( -type l -printf '%y %p -> %l\n' \) -o \( ! -type f ! -type l -printf '%y %p\n' \) | LC_ALL=C sort) >"$b" || fail "$what: find in the backing dir failed"
	if ! cmp -s "$a" "$b"; then
		fail "$what: trees differ (< mount, > backing):
$(diff "$a" "$b" | head -20)"
	fi
}

# sha FILE : the sha256 of FILE.
sha() { sha256sum <"$1" | cut -d' ' -f1; }

# errmsg CMD ARGS... : runs a command that must fail; prints its stderr.
errmsg() {
	local out
	if out=$("$@" 2>&1); then
		fail "'$*' succeeded but should have failed"
	fi
	printf '%s' "$out"
}
