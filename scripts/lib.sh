# shellcheck shell=bash
# Shared by the scripts in this directory; source it, don't run it.
#
# A private Podman lives in one directory DIR:
#   DIR/root             image and container storage (kept between runs: images stay cached)
#   DIR/containers.conf  its engine settings (runc, cgroupfs, ulimits the machine allows)
#   DIR/podman.sock      the API socket (in the runroot instead if DIR is too long for a socket path)
#   DIR/podman.pid       the service's process id
#   DIR/podman.log       the service's output
#   DIR/env              shell lines to use it by hand: . DIR/env; podman ps
# Its runroot and tmpdir sit under a short path, /tmp/lazypod-HASH, derived from DIR, so a run
# that was killed leaves state the next run can find and clear.

# The build tags of lazypod and its tests. The Makefile passes its TAGS; this default is for a
# script run on its own, and must match the Makefile's.
LAZYPOD_GO_TAGS=${LAZYPOD_GO_TAGS:-remote exclude_graphdriver_btrfs containers_image_openpgp}

# Progress goes to stdout, in order with go test's output; trouble to stderr.
log() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# elapsed START prints the time since START, a ${EPOCHREALTIME/./} value, as "1.23s".
elapsed() {
	local us=$((${EPOCHREALTIME/./} - $1))
	printf '%d.%02ds' $((us / 1000000)) $((us % 1000000 / 10000))
}

# remove_tree DIR deletes a rootfs that may still have mounts under it (debootstrap mounts /proc
# and /sys inside its target; an interrupted build leaves them), never crossing into them.
remove_tree() {
	local m
	findmnt -rn -o TARGET | awk -v p="$1/" 'index($0, p) == 1' | sort -r | while read -r m; do
		umount -l "$m" || true
	done
	rm -rf --one-file-system "$1"
}

# repo_root prints the repository's top directory (the parent of scripts/).
repo_root() { (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd); }

# podman_paths DIR sets the PM_* variables naming everything of the private Podman in DIR.
# shellcheck disable=SC2034 # the scripts that source this file use them
podman_paths() {
	[ -d "${1:-}" ] || die "no such directory: ${1:-}"
	PM_DIR=$(cd "$1" && pwd)
	PM_ROOT=$PM_DIR/root
	PM_CONF=$PM_DIR/containers.conf
	PM_PID=$PM_DIR/podman.pid
	PM_LOG=$PM_DIR/podman.log
	local hash
	hash=$(printf %s "$PM_DIR" | sha256sum | cut -c1-10)
	PM_RUN=/tmp/lazypod-$hash
	# Its own network, bridge and subnet: see podman-service.sh.
	PM_NET=lazypod-${hash:0:8}
	PM_BRIDGE=lzp${hash:0:8}
	PM_SUBNET=10.89.$((16#${hash:0:2} % 254 + 1)).0/24
	PM_SOCK=$PM_DIR/podman.sock
	# sun_path holds 108 bytes with the terminating NUL.
	if [ "${#PM_SOCK}" -gt 107 ]; then
		PM_SOCK=$PM_RUN/podman.sock
	fi
	PM_URL=unix://$PM_SOCK
}

# pm runs the podman command line on the storage of the private Podman (podman_paths first).
pm() {
	CONTAINERS_CONF=$PM_CONF podman --root "$PM_ROOT" --runroot "$PM_RUN/run" --tmpdir "$PM_RUN/tmp" "$@"
}

# any_alive PID... exits 0 if one of the processes still runs. A zombie does not: the parent of
# a daemon (conmon, or lazypod once the demo's loop is gone) is init, which may be slow to reap.
any_alive() {
	local pid state
	for pid in "$@"; do
		state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || continue
		[ -z "$state" ] || [ "$state" = Z ] || return 0
	done
	return 1
}

# run_logged LOGFILE CMD... runs CMD with its output in LOGFILE, and shows the end of LOGFILE if
# CMD fails.
run_logged() {
	local logfile=$1
	shift
	if "$@" >"$logfile" 2>&1; then
		return 0
	else
		local rc=$?
		printf 'error: %s failed (exit %d); the end of its output:\n' "$*" "$rc" >&2
		tail -n 30 "$logfile" | sed 's/^/    /' >&2
		return "$rc"
	fi
}

# podman_ping SOCK exits 0 if a Podman API service answers on the unix socket SOCK.
podman_ping() {
	[ -S "$1" ] && curl -sf --max-time 2 --unix-socket "$1" http://d/_ping >/dev/null 2>&1
}

# wait_podman WHAT SOCK PIDFILE LOGFILE STOP waits up to $PODMAN_START_TIMEOUT (60) seconds for
# the service just started, whose process id is in PIDFILE, to answer on SOCK. If the process
# exits, it shows the end of LOGFILE and exits 1; on timeout it runs the command STOP and dies.
wait_podman() {
	local what=$1 sock=$2 pidfile=$3 logfile=$4 stop=$5 deadline=$((SECONDS + ${PODMAN_START_TIMEOUT:-60}))
	until podman_ping "$sock"; do
		# Not the service's own pid: right after the fork the child may not have exec'd yet.
		if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			printf 'error: %s exited; end of %s:\n' "$what" "$logfile" >&2
			tail -n 20 "$logfile" | sed 's/^/    /' >&2
			exit 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			$stop
			die "$what did not answer on $sock within ${PODMAN_START_TIMEOUT:-60}s; see $logfile"
		fi
		sleep 0.1
	done
}
