#!/usr/bin/env bash
# build.sh MOUNT BACKING — go build (and go test) of a small module that
# lives on the mount, with GOCACHE on the mount too; run the binary from
# the mount. EVFS_IT_GOCACHE=DIR puts the build cache elsewhere (a warm
# cache makes it fast); EVFS_IT_GOTEST=1 also runs go test.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
it_setup build "go build + go run of a small module on the mount (GOCACHE ${EVFS_IT_GOCACHE:-on the mount}), run the binary from the mount" "$@"
need go

M=$W/mod
mkdir -p "$M/greet"
cat >"$M/go.mod" <<'EOF'
module example.invalid/hello

go 1.21
EOF
cat >"$M/main.go" <<'EOF'
package main

import (
	"fmt"
	"os"

	"example.invalid/hello/greet"
)

func main() {
	msg := greet.Hello("evfs")
	fmt.Printf("%s %d\n", msg, len(msg))
	if len(os.Args) > 1 {
		os.Exit(3)
	}
}
EOF
cat >"$M/greet/greet.go" <<'EOF'
// Package greet says hello.
package greet

// Hello greets name.
func Hello(name string) string { return "hello, " + name }
EOF
cat >"$M/greet/greet_test.go" <<'EOF'
package greet

import "testing"

func TestHello(t *testing.T) {
	if got := Hello("x"); got != "hello, x" {
		t.Fatalf("Hello = %q", got)
	}
}
EOF

export GOCACHE=${EVFS_IT_GOCACHE:-$W/gocache} GOFLAGS=-mod=mod GOTOOLCHAIN=local GOPROXY=off GOWORK=off
export GOPATH=$IT_TMP/gopath GOTMPDIR=$W/gotmp CGO_ENABLED=0 GOTELEMETRY=off
mkdir -p "$GOTMPDIR"
cd "$M"
go build -o "$M/hello" . >"$IT_TMP/build.out" 2>&1 || fail "go build failed: $(tail -20 "$IT_TMP/build.out")"
[[ -x $M/hello && -x $B/mod/hello ]] || fail "the binary is missing or not executable (mount or backing)"
want="hello, evfs 11"
expect "output of the binary run from the mount" "$want" "$("$M/hello")"
rc=0
"$M/hello" exit >/dev/null || rc=$?
expect "exit status of the binary" 3 "$rc"
expect "the binary on the mount and in the backing dir" "$(sha "$B/mod/hello")" "$(sha "$M/hello")"
if [[ -n ${EVFS_IT_GOTEST:-} ]]; then # compiles package testing and its deps: slow with a cold cache
	go test -count=1 ./... >"$IT_TMP/test.out" 2>&1 || fail "go test failed: $(tail -20 "$IT_TMP/test.out")"
	grep -q '^ok .*example.invalid/hello/greet' "$IT_TMP/test.out" || fail "go test did not report ok: $(cat "$IT_TMP/test.out")"
fi
# rebuild after an edit: the cache on the mount must notice the change
sed -i 's/hello, /hi, /' greet/greet.go greet/greet_test.go
go build -o "$M/hello" . >"$IT_TMP/build.out" 2>&1 || fail "the second go build failed: $(tail -20 "$IT_TMP/build.out")"
expect "output after editing a source file" "hi, evfs 8" "$("$M/hello")"
# go run from the mount, the binary linked in GOTMPDIR on the mount
expect "go run" "hi, evfs 8" "$(go run .)"
