#!/usr/bin/env bash
# bench.sh: runs the benchmark suite (bench/, see BENCHMARKS.md) against a private Podman in
# build/bench-podman, and writes BENCHMARKS.md (between its bench markers) and docs/bench.png.
# make bench runs it after make deps build.
#
# Starts the private Podman and builds the test image, raises the open-file limit for the bench and
# what it starts (lazypod and systemd-socket-proxyd inherit it: 1000 flows need about 6000 fds),
# and stops the Podman again whatever happens, which removes every container left behind.
#
# Environment: ROUNDS (alternating rounds, default 6: about 4 minutes on a 2-core machine; use
# ROUNDS=18 for figures to publish; multiples of 6 balance the contenders' order), BENCH_FLAGS (more flags for the bench, e.g.
# "-wrk-duration 10s -bulk-bytes 4294967296").
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(repo_root)"

DIR=build/bench-podman
[ -x build/lazypod ] || die "no build/lazypod: run make build"
command -v wrk >/dev/null || die "wrk is not installed: run scripts/deps.sh"
[ -x /lib/systemd/systemd-socket-proxyd ] || die "no /lib/systemd/systemd-socket-proxyd: run scripts/deps.sh"
# The chart is drawn with gnuplot; it is not in deps.sh's default list.
scripts/deps.sh gnuplot-nox
# javac, for the JVM server of the wake-from-pause figure.
scripts/deps.sh openjdk-17-jdk-headless

start=${EPOCHREALTIME/./}
mkdir -p "$DIR"
trap 'scripts/podman-service.sh stop "$DIR"' EXIT
scripts/podman-service.sh start "$DIR"
scripts/build-images.sh "$DIR" testserver
scripts/build-rootfs-images.sh "$DIR" dnsmasq jvm
podman_paths "$DIR"

log "building build/lazypod-bench"
CGO_ENABLED=0 go build -o build/lazypod-bench ./bench

# As much room for descriptors as the hard limit allows.
ulimit -n "$(ulimit -Hn)"
rounds=${ROUNDS:-6}
cmd="make bench"
[ "$rounds" = 6 ] || cmd="ROUNDS=$rounds make bench"
[ -z "${BENCH_FLAGS:-}" ] || cmd="BENCH_FLAGS='$BENCH_FLAGS' $cmd"
[ -z "${GOMAXPROCS:-}" ] || cmd="GOMAXPROCS=$GOMAXPROCS $cmd"
# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
build/lazypod-bench -podman-url "$PM_URL" -rounds "$rounds" -command "$cmd" ${BENCH_FLAGS:-}
log "bench done in $(elapsed "$start")"
