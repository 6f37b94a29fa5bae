#!/usr/bin/env bash
# soak.sh: what `make soak` runs once build/lazypod is built: the heavy variants of the
# reliability tests, then every fuzzer for a while. Not part of make test.
#
#   1. scripts/test.sh with LAZYPOD_SOAK=1 and only the fault, storm and soak tests
#      (TestFault*, TestActivationStorm, TestPodmanDownAtStart): longer storms, the 10 s slow
#      listen, the hung Podman call ended by the launcher's own deadline, more repetitions.
#   2. each fuzzer for FUZZTIME (default 3m), one at a time, printing go test's last lines,
#      which carry the execution count.
#
# Environment: FUZZTIME (default 3m), SOAK_TIMEOUT (default 40m), FUZZERS (default: all, as
# PKG:NAME words).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(repo_root)"

mkdir -p build
logfile=build/soak.log
set +e
LAZYPOD_SOAK=1 TEST_TIMEOUT=${SOAK_TIMEOUT:-40m} PKGS=./cmd/lazypod \
	GOTESTFLAGS="-run ^(TestFault|TestActivationStorm|TestPodmanDownAtStart) -v" scripts/test.sh >"$logfile" 2>&1
rc=$?
set -e
grep -E '^(=== RUN|--- |\s+\S+\.go:[0-9]+: FIGURE|ok|FAIL|PASS)' "$logfile" || true
[ "$rc" -eq 0 ] || die "the soak tests failed (exit $rc): see $logfile"

fuzzers=${FUZZERS:-"./units:FuzzParse ./units:FuzzQuoteArg ./internal/spec:FuzzParseServe ./internal/spec:FuzzParsePort ./internal/spec:FuzzParseListen ./internal/spec:FuzzParseProbe ./updater:FuzzLoad"}
for f in $fuzzers; do
	pkg=${f%%:*} name=${f#*:}
	log "fuzzing $name in $pkg for ${FUZZTIME:-3m}"
	CGO_ENABLED=0 go test -tags "$LAZYPOD_GO_TAGS" -run '^$' -fuzz "^$name\$" -fuzztime "${FUZZTIME:-3m}" "$pkg" 2>&1 | tail -n 3
	[ "${PIPESTATUS[0]}" -eq 0 ] || die "fuzzer $name found a failure: see $pkg/testdata/fuzz/$name"
done
