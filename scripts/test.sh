#!/usr/bin/env bash
# test.sh: what `make test` runs once build/lazypod is built and the Debian packages are in.
#
#   1. start a private Podman in build/podman (storage kept there between runs: images stay cached)
#   2. build the test images into it (scripts/build-images.sh; the dnsmasq and redis images with
#      scripts/build-rootfs-images.sh, in the background while go vet runs)
#   3. go vet
#   4. go test -race on every package, with the environment the integration tests read:
#        LAZYPOD_TEST_PODMAN   the private Podman's socket URL
#        LAZYPOD_TEST_IMAGE    localhost/lazypod-testserver:latest
#        LAZYPOD_TEST_REQUIRE  1: a test that needs Podman fails instead of skipping
#        LAZYPOD_BIN           the built lazypod binary
#        CONTAINERS_CONF       the private Podman's settings
#   5. stop leftover systemd-nspawn machines of the units test (scripts/machine.sh), and
#      the Podman service and remove its containers, whatever happened; exit with go test's
#      status. Nothing is printed after go test's summary unless the clean-up fails.
#
# Environment: PODMAN_DIR (default build/podman), TEST_TIMEOUT (default 20m), PKGS (default
# ./...), GOTESTFLAGS (extra go test flags, e.g. "-run TestStart -v"), LAZYPOD_GO_TAGS.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(repo_root)"

podman_dir=${PODMAN_DIR:-build/podman}
bin=$PWD/build/lazypod
[ -x "$bin" ] || die "no $bin: run make build first (make test does)"
mkdir -p "$podman_dir"

# shellcheck disable=SC2317 # called by the traps below
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# Quiet on success: go test's summary must stay the last lines of the output.
	# A test killed mid-run (go test's timeout) may leave the rootless Podman of
	# TestSecurityRootless, or its systemd-nspawn machine, running.
	scripts/rootless.sh stop >/dev/null 2>&1 || warn "stopping the rootless Podman failed"
	local pidfile
	for pidfile in build/machine/*.pid; do
		[ -e "$pidfile" ] || continue
		case $pidfile in *.nspawn-pid) continue ;; esac
		scripts/machine.sh stop build/machine "$(basename "$pidfile" .pid)" >/dev/null 2>&1 ||
			warn "stopping the leftover machine $(basename "$pidfile" .pid) failed"
	done
	if ! scripts/podman-service.sh stop "$podman_dir" >"$podman_dir/stop-service.log" 2>&1; then
		warn "stopping the private Podman failed:"
		sed 's/^/    /' "$podman_dir/stop-service.log" >&2
	fi
	exit "$rc"
}
# A signal exits through the EXIT trap with the usual status (130 for Ctrl-C).
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting a private Podman in $podman_dir"
scripts/podman-service.sh start "$podman_dir"
podman_paths "$podman_dir"

log "building test images"
scripts/build-images.sh "$podman_dir" testserver demo redisapp

# The dnsmasq and redis images are imported from debootstrapped rootfs: about 90 s each the first
# time, cached in build/rootfs-cache after. They are built while go vet runs, and waited for before
# go test.
log "building the dnsmasq and redis images in the background (log: $podman_dir/build-rootfs.log)"
scripts/build-rootfs-images.sh "$podman_dir" dnsmasq redis >"$podman_dir/build-rootfs.log" 2>&1 &
rootfs_pid=$!

log "go vet"
# Without cgo, vet reuses what the build of lazypod compiled (the Podman bindings take minutes).
# shellcheck disable=SC2086 # PKGS is a list of words
CGO_ENABLED=0 go vet -tags "$LAZYPOD_GO_TAGS" ${PKGS:-./...}

wait "$rootfs_pid" || {
	sed 's/^/    /' "$podman_dir/build-rootfs.log" >&2
	die "building the dnsmasq and redis images failed"
}
sed -n 's/^==> /==> /p' "$podman_dir/build-rootfs.log"

log "go test"
set +e
# shellcheck disable=SC2086 # PKGS and GOTESTFLAGS are lists of words
LAZYPOD_TEST_PODMAN=$PM_URL \
	LAZYPOD_TEST_IMAGE=localhost/lazypod-testserver:latest \
	LAZYPOD_TEST_REQUIRE=1 \
	LAZYPOD_BIN=$bin \
	CONTAINERS_CONF=$PM_CONF \
	go test -race -count=1 -timeout "${TEST_TIMEOUT:-20m}" -tags "$LAZYPOD_GO_TAGS" \
	${GOTESTFLAGS:-} ${PKGS:-./...}
rc=$?
set -e
exit "$rc"
