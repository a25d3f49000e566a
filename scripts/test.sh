#!/usr/bin/env bash
# Runs mcl's whole test suite: installs what the tests need (Debian's
# python3-msgpack for the Python peer, and the npm package @mcap/core that
# checks the MCAP files the tests write), then gofmt, go vet, a build and vet
# for 386, arm and arm64, the tests under the race detector inside a private
# network namespace, the tests of the pure packages and internal/sock again
# as a 32-bit (386) program, and a short fuzz of every decoder. Nothing may be
# skipped: MCL_REQUIRE_SANDBOX=1, MCL_REQUIRE_PYTHON=1 and MCL_REQUIRE_NODE=1
# turn a skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Fuzz budgets are counts of inputs, about ten seconds each here, not
# durations: Go 1.26's coordinator can fail a time-limited run with a bare
# "context deadline exceeded" at the deadline (go.dev/issue/75804, fixed in
# Go 1.27). FUZZTIME, when set, replaces every budget (e.g. FUZZTIME=1m).
fuzztime=${FUZZTIME:-}

need=()
/usr/bin/python3 -c 'import msgpack' 2>/dev/null || need+=(python3-msgpack)
command -v npm >/dev/null || need+=(nodejs npm)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
	sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	echo "installing ${need[*]}"
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

go mod download
npm ci --silent --no-audit --no-fund --prefix mcap/testdata/validator
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
go vet ./...

# Robots often run on 32-bit ARM boards, where int is 32 bits and the
# kernel's structures are laid out differently: everything must build and
# vet there (vet type-checks the tests too, catching constants that
# overflow an int), and on arm64 and 386. Cross-compiled, so without cgo.
for arch in 386 arm arm64; do
	CGO_ENABLED=0 GOARCH=$arch go build ./...
	CGO_ENABLED=0 GOARCH=$arch go vet ./...
done
# The library and the command build on macOS and Windows too (one
# datagram a system call there, no sandbox; the tests need Linux).
for os in darwin windows; do
	CGO_ENABLED=0 GOOS=$os go build ./...
done

export MCL_REQUIRE_SANDBOX=1 MCL_REQUIRE_PYTHON=1 MCL_REQUIRE_NODE=1 MCL_REQUIRE_BROWSER=1
go test -race -count=1 ./...

# A 386 program runs here, so 32-bit code is tested, not just compiled:
# the pure packages, and internal/sock for the kernel's 32-bit msghdr,
# iovec and control message layouts. No -race: 386 has no race detector.
CGO_ENABLED=0 GOARCH=386 go test -count=1 ./wire ./wire/mcl2 ./internal/reassembly ./internal/senders ./internal/topic ./internal/msgjson ./mcap ./internal/sock

for target in wire:FuzzDecode:400000x wire/mcl2:FuzzDecode:400000x internal/reassembly:FuzzReassemble:250000x internal/reassembly:FuzzReassembleFaults:250000x \
	internal/reassembly:FuzzJoiner:60000x internal/senders:FuzzObserve:200000x internal/topic:FuzzMatch:400000x internal/msgjson:FuzzToJSON:400000x \
	internal/msgjson:FuzzFromJSON:200000x internal/msgjson:FuzzToFoxgloveJSON:150000x mcap:FuzzReader:250000x; do
	IFS=: read -r pkg fn budget <<<"$target"
	go test -run='^$' -fuzz="^${fn}\$" -fuzztime="${fuzztime:-$budget}" "./$pkg"
done
echo "all checks passed"
