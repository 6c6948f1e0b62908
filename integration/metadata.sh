#!/usr/bin/env bash
# metadata.sh MOUNT BACKING — attributes: chmod, chown, timestamps,
# xattrs, and stat agreeing between the mount and the backing dir.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
it_setup metadata "chmod, chown, umask, touch -d (ns), mknod/mkfifo, xattrs (setfattr/getfattr); stat '%a %u %g %s %Y %h %F' equal on mount and backing" "$@"
need stat chmod chown touch setfattr getfattr mkfifo

FMT='%a %u %g %s %Y %h %F'
cd "$W"
# same_stat REL: the full stat line agrees (lstat, not following symlinks)
same_stat() { same_both "stat of $1" "$1" stat -c "$FMT" {}; }
# want_stat REL STRING: the stat line on the mount is STRING, and agrees with the backing dir
want_stat() {
	expect "stat -c '$FMT' of $1" "$2" "$(stat -c "$FMT" "$1")"
	same_stat "$1"
}

echo hello >f
mkdir d
ln -s f sl
mkfifo fifo
same_stat f
same_stat d
same_stat sl
same_stat fifo
expect "type of a fifo" fifo "$(stat -c %F fifo)"
if mknod cdev c 1 3 2>"$IT_TMP/mknod.err"; then
	expect "type of a char device" "character special file" "$(stat -c %F cdev)"
	expect "major,minor of the device" "1,3" "$(stat -c '%t,%T' cdev)"
	same_both "device numbers" cdev stat -c '%F %t %T' {}
elif [[ $(id -u) -eq 0 ]]; then
	fail "mknod c 1 3 as root failed: $(cat "$IT_TMP/mknod.err")"
fi

# creation honours the caller's umask
(umask 027 && echo x >um && mkdir umd)
want_stat um "640 $(id -u) $(id -g) 2 $(stat -c %Y um) 1 regular file"
expect "mode of a dir made under umask 027" 750 "$(stat -c %a umd)"
same_stat umd
(umask 0 && touch um0 && mkdir um0d)
expect "mode of a file made under umask 0" 666 "$(stat -c %a um0)"
expect "mode of a dir made under umask 0" 777 "$(stat -c %a um0d)"

# chmod
for m in 0 600 640 755 4755 2750 1777 444; do
	chmod "$m" f
	expect "mode after chmod $m" "$(printf '%o' "$((8#$m))")" "$(stat -c %a f)"
	same_stat f
done
chmod 644 f
chmod 1777 d
expect "mode of a dir after chmod 1777" 1777 "$(stat -c %a d)"
same_stat d
chmod u-w,g+x d
same_stat d
chmod 755 d

# chown to numeric ids (needs root)
if [[ $(id -u) -eq 0 ]]; then
	chown 1234:5678 f
	expect "owner after chown 1234:5678" "1234 5678" "$(stat -c '%u %g' f)"
	same_stat f
	chown 4321 d
	expect "owner after chown 4321" "4321 0" "$(stat -c '%u %g' d)"
	chgrp 99 d
	same_stat d
	chown -h 777:888 sl
	expect "owner of the symlink itself after chown -h" "777 888" "$(stat -c '%u %g' sl)"
	expect "owner of the target after chown -h of the symlink" "1234 5678" "$(stat -c '%u %g' f)"
	same_stat sl
	chown 5:5 sl # follows the link
	expect "owner of the target after chown through the symlink" "5 5" "$(stat -c '%u %g' f)"
	same_stat f
	chmod 4755 f
	chown 6:6 f # clears set-user-ID on a regular file
	same_stat f
	chown 0:0 f
	chmod 644 f
	# a file created by another owner in a dir they own (setfsuid on create)
	mkdir own && chown 1000:1000 own && chmod 777 own
	same_stat own
fi

# timestamps
touch -d '2001-02-03 04:05:06' f
expect "mtime after touch -d" "$(date -d '2001-02-03 04:05:06' +%s)" "$(stat -c %Y f)"
same_stat f
touch -d '2003-04-05 06:07:08.123456789' f
expect "mtime with nanoseconds" "2003-04-05 06:07:08.123456789" "$(stat -c %y f | cut -c1-29)"
same_both "mtime with nanoseconds" f stat -c %y {}
touch -a -d '1999-12-31 23:59:59.5' f
expect "atime after touch -a -d" "1999-12-31 23:59:59.500000000" "$(stat -c %x f | cut -c1-29)"
same_both "atime" f stat -c %x {}
expect "mtime kept by touch -a" "2003-04-05 06:07:08.123456789" "$(stat -c %y f | cut -c1-29)"
touch -m -d '2010-01-01 00:00:00' f
same_both "atime and mtime" f stat -c '%X %Y' {}
touch -d '1970-01-01 00:00:00 UTC' d
expect "mtime 0 on a dir" 0 "$(stat -c %Y d)"
same_stat d
touch -h -d '2005-05-05 05:05:05' sl
expect "mtime of the symlink itself after touch -h" "$(date -d '2005-05-05 05:05:05' +%s)" "$(stat -c %Y sl)"
same_stat sl
touch -d '2038-01-19 03:14:08 UTC' f # past 32-bit time_t
expect "mtime past 2038" 2147483648 "$(stat -c %Y f)"
same_stat f
touch -d '2001-01-01 00:00:00' f
echo more >>f
after=$(stat -c %Y f)
now=$(date +%s)
((after >= now - 5 && after <= now)) || fail "a write did not set mtime to now ($now): mtime is $after"
same_stat f
before=$(stat -c %Z f)
sleep 1.1
chmod 600 f
((($(stat -c %Z f)) > before)) || fail "ctime did not advance on chmod"
same_both "ctime" f stat -c %Z {}
dbefore=$(stat -c %Y d)
sleep 1.1
touch d/new
((($(stat -c %Y d)) > dbefore)) || fail "a dir's mtime did not advance when a file was created in it (mount)"
same_stat d

# truncate and size through setattr
truncate -s 12345 f
want_stat f "600 $(stat -c '%u %g' f) 12345 $(stat -c %Y f) 1 regular file"

# extended attributes
setfattr -n user.alpha -v one f
expect "getfattr user.alpha" one "$(getfattr --absolute-names --only-values -n user.alpha f)"
expect "getfattr user.alpha in the backing dir" one "$(getfattr --absolute-names --only-values -n user.alpha "$B/f")"
setfattr -n user.alpha -v two f # replace
expect "getfattr after replacing" two "$(getfattr --absolute-names --only-values -n user.alpha f)"
setfattr -n user.empty f
expect "empty xattr value" "" "$(getfattr --absolute-names --only-values -n user.empty f)"
setfattr -n user.bin -v 0x00ff10fe f
expect "binary xattr value" 0x00ff10fe "$(getfattr --absolute-names -e hex -n user.bin f | sed -n 's/^user.bin=//p')"
big=$(head -c 3000 /dev/zero | tr '\0' 'v')
setfattr -n user.big -v "$big" f
expect "3000-byte xattr value" "$big" "$(getfattr --absolute-names --only-values -n user.big f)"
for i in $(seq 1 20); do setfattr -n "user.k$i" -v "v$i" f; done
getfattr -d -e hex --absolute-names f | sed 1d >"$IT_TMP/x.m"
getfattr -d -e hex --absolute-names "$B/f" | sed 1d >"$IT_TMP/x.b"
cmp -s "$IT_TMP/x.m" "$IT_TMP/x.b" || fail "getfattr -d differs (< mount, > backing): $(diff "$IT_TMP/x.m" "$IT_TMP/x.b" | head)"
expect "number of xattrs listed" 24 "$(grep -c '^user\.' "$IT_TMP/x.m")"
setfattr -x user.alpha f
msg=$(errmsg getfattr --absolute-names -n user.alpha f)
[[ $msg == *"No such attribute"* ]] || fail "getfattr of a removed xattr: want ENODATA, got: $msg"
msg=$(errmsg setfattr -x user.never f)
[[ $msg == *"No such attribute"* ]] || fail "removing a missing xattr: want ENODATA, got: $msg"
getfattr -d --absolute-names "$B/f" | grep -q '^user.alpha' && fail "user.alpha still present in the backing dir after setfattr -x"
setfattr -n user.dir -v dv d
expect "xattr on a dir" dv "$(getfattr --absolute-names --only-values -n user.dir d)"
expect "xattr on a dir, backing" dv "$(getfattr --absolute-names --only-values -n user.dir "$B/d")"
if [[ $(id -u) -eq 0 ]]; then
	setfattr -n trusted.t -v tv f
	expect "trusted.* xattr as root" tv "$(getfattr --absolute-names --only-values -n trusted.t f)"
	same_both "trusted.* xattr" f getfattr --absolute-names --only-values -n trusted.t {}
fi
# xattrs survive rename and follow hard links
mv f g
ln g h
expect "xattr after rename" v7 "$(getfattr --absolute-names --only-values -n user.k7 g)"
expect "xattr through a hard link" v7 "$(getfattr --absolute-names --only-values -n user.k7 h)"
# user.* on a symlink itself is not allowed; through it works
msg=$(errmsg setfattr -h -n user.x -v y sl)
[[ $msg == *"Operation not permitted"* || $msg == *"not supported"* || $msg == *"No such file"* ]] || fail "user xattr on a symlink itself: want EPERM, got: $msg"
ln -sf g sl2
expect "xattr read through a symlink" v7 "$(getfattr --absolute-names --only-values -n user.k7 sl2)"

# everything still agrees
for p in g h d sl sl2 fifo um umd um0 um0d; do same_stat "$p"; done
