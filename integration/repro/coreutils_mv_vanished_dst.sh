#!/usr/bin/env bash
# coreutils_mv_vanished_dst.sh [DIR] — shows, on any directory (default: a
# fresh one under /tmp, no FUSE involved), the GNU mv bug behind the
# "cannot overwrite directory 'f' with non-directory" lines that the
# integration concurrency script once reported through evfs.
#
# `mv f f` (or `mv a b`) first tries rename(RENAME_NOREPLACE); on EEXIST it
# lstat()s the source, then the destination. If another process removes
# the destination between those two calls, coreutils 9.1 sets new_dst but
# keeps rename_errno == EEXIST and goes on to test S_ISDIR on a struct stat
# that the failed lstat never filled. Whatever the stack held decides the
# message: usually "cannot move ... No such file or directory", sometimes
# "cannot overwrite directory ... with non-directory" about a regular file.
#
# gdb stops mv at its lstat calls and removes the file between them (an
# interleaving 8 racing shells hit by chance, more often through a FUSE
# mount whose round trips widen the window). Address-space randomisation
# stays on so the stack garbage varies from run to run; expect a few runs
# in 40 to print the bogus message. Needs gdb.
set -u
command -v gdb >/dev/null || { echo "needs gdb" >&2; exit 77; }
D=${1:-$(mktemp -d)}
F=$D/f3
script=$(mktemp)
trap 'rm -f "$script"' EXIT
cat >"$script" <<GDB
set pagination off
set disable-randomization off
set \$n = 0
catch syscall newfstatat
condition 1 \$_streq((char *)\$rsi, "$F")
commands 1
  silent
  set \$n = \$n + 1
  if \$n == 2
    shell rm -f "$F"
  end
  continue
end
run
GDB
for i in $(seq 1 "${RUNS:-40}"); do
	echo x >"$F"
	gdb -q -batch -x "$script" --args mv "$F" "$F" 2>&1 | grep 'mv:'
done | sed 's/^.*mv: //' | sort | uniq -c
