#!/usr/bin/env bash
# podman-service.sh start|stop|status DIR
#
# Runs a private Podman API service whose storage, settings and socket live in DIR (see lib.sh),
# so tests and the demo never touch the machine's own Podman.
#
#   start   clears whatever an earlier run left (even one that was killed), starts the service,
#           and returns once its socket answers. Prints the socket's URL.
#   stop    stops the service, removes every container in DIR's storage, unmounts what is left
#           and removes the runroot. Keeps DIR/root, so built images stay cached. Safe to repeat.
#   status  exits 0 if the service answers on its socket.
#
# Environment: PODMAN_START_TIMEOUT (seconds, default 60).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	echo "usage: $0 start|stop|status DIR" >&2
	exit 2
}

write_conf() {
	# A go.mod makes DIR a module of its own, which keeps `go test ./...` out of it.
	echo 'module lazypod.invalid/podman-storage // not Go: keeps "go ... ./..." out' >"$PM_DIR/go.mod"
	cat >"$PM_CONF" <<EOF
# Written by scripts/podman-service.sh; rewritten on every start.
[containers]
# Podman's defaults exceed the hard limits of CI machines.
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
# crun fails on these machines; runc works.
runtime = "runc"
# No systemd as PID 1.
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$PM_RUN/tmp"
# The default, shared memory, is one lock table for every Podman on the machine: two of them
# hand out the same locks. Files under tmp_dir are this Podman's own.
lock_type = "file"

[network]
# Podman's default network is the same for every Podman on the machine: one bridge (podman0),
# one set of firewall chains. Two of them with containers at once (tests and the demo, say)
# undo each other's rules. So each private Podman has a network of its own, made at start.
network_config_dir = "$PM_DIR/networks"
default_network = "$PM_NET"
EOF
	cat >"$PM_DIR/env" <<EOF
# Use this private Podman by hand: . $PM_DIR/env
# then "podman ps" runs the CLI on its storage, "command podman --url \$LAZYPOD_TEST_PODMAN ps"
# goes through its API, and go test sees what make test gives it (LAZYPOD_BIN aside).
export CONTAINERS_CONF=$PM_CONF
export LAZYPOD_TEST_PODMAN=$PM_URL
export LAZYPOD_TEST_IMAGE=localhost/lazypod-testserver:latest
podman() { command podman --root $PM_ROOT --runroot $PM_RUN/run --tmpdir $PM_RUN/tmp "\$@"; }
EOF
}

# ping exits 0 if the service answers on its socket.
ping() { podman_ping "$PM_SOCK"; }

# service_pid prints the recorded pid if that process is still our service.
service_pid() {
	local pid
	[ -f "$PM_PID" ] || return 1
	pid=$(cat "$PM_PID")
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
	# The pid may have been reused since a killed run: check it is our service.
	tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "system service --time=0 $PM_URL" || return 1
	echo "$pid"
}

kill_service() {
	local pid
	pid=$(service_pid) || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do
		any_alive "$pid" || return 0
		sleep 0.1
	done
	warn "podman service $pid ignored SIGTERM for 10s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
	sleep 0.2
}

# kill_conmons kills the conmon processes still working for this storage, and waits for them:
# Podman keeps the conmon of a finished exec session (a probe's, say) for 5 minutes, even after
# its container is removed, and on SIGTERM conmon first runs `podman container cleanup`.
kill_conmons() {
	local p pids=()
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = conmon ] || continue
		tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- " $PM_ROOT/" && pids+=("${p#/proc/}")
	done
	[ ${#pids[@]} -gt 0 ] || return 0
	kill -TERM "${pids[@]}" 2>/dev/null || true
	for _ in $(seq 50); do
		any_alive "${pids[@]}" || return 0
		sleep 0.1
	done
	kill -KILL "${pids[@]}" 2>/dev/null || true
}


# unmount_under unmounts every mount below the given directories, deepest first.
unmount_under() {
	local mp dir
	for dir in "$@"; do
		# Field 5 of mountinfo is the mount point, with spaces and such written as octal escapes.
		awk -v d="$dir" '{ if ($5 == d || index($5, d "/") == 1) print length($5), $5 }' /proc/self/mountinfo |
			sort -rn | cut -d' ' -f2- |
			while read -r mp; do
				mp=$(printf '%b' "$mp")
				umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || warn "cannot unmount $mp"
			done
	done
}

stop_service() {
	kill_service
	rm -f "$PM_PID" "$PM_SOCK"
	if [ -d "$PM_ROOT" ] && [ -f "$PM_CONF" ] && command -v podman >/dev/null; then
		# Containers outlive the service (conmon holds them): remove them through the storage,
		# and what tests made beside them. Images stay: they are the cache.
		{
			pm rm -af -t 0 &&
				pm pod rm -af -t 0 &&
				pm volume rm -af &&
				pm network prune -f
		} >"$PM_DIR/stop.log" 2>&1 ||
			warn "removing containers, pods, volumes or networks failed; see $PM_DIR/stop.log"
	fi
	kill_conmons
	unmount_under "$PM_ROOT" "$PM_RUN"
	rm -rf --one-file-system "$PM_RUN"
}

# make_network writes the definition of this Podman's network, unless it exists: its own name,
# bridge, subnet and firewall chains (named after its id). Written, not made with `podman network
# create`: that refuses the name of the default network, and Podman 4.3 has no --interface-name.
make_network() {
	local file=$PM_DIR/networks/$PM_NET.json
	[ ! -f "$file" ] || return 0
	mkdir -p "$PM_DIR/networks"
	cat >"$file.tmp" <<EOF
{
  "name": "$PM_NET",
  "id": "$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)",
  "driver": "bridge",
  "network_interface": "$PM_BRIDGE",
  "created": "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)",
  "subnets": [{ "subnet": "$PM_SUBNET", "gateway": "${PM_SUBNET%.0/24}.1" }],
  "ipv6_enabled": false,
  "internal": false,
  "dns_enabled": false,
  "ipam_options": { "driver": "host-local" }
}
EOF
	mv "$file.tmp" "$file"
}

start_service() {
	local deadline
	command -v podman >/dev/null || die "podman is not installed: run scripts/deps.sh"
	command -v curl >/dev/null || die "curl is not installed: run scripts/deps.sh"
	# Podman's database remembers absolute paths: storage made for another DIR cannot be reused.
	if [ -d "$PM_ROOT" ] && [ "$(cat "$PM_DIR/root.path" 2>/dev/null)" != "$PM_ROOT" ]; then
		log "storage in $PM_ROOT was made for another path; starting it afresh"
		write_conf
		stop_service 2>/dev/null
		rm -rf --one-file-system "$PM_ROOT"
	fi
	write_conf
	stop_service
	mkdir -p "$PM_ROOT" "$PM_RUN/run" "$PM_RUN/tmp"
	echo "$PM_ROOT" >"$PM_DIR/root.path"
	make_network
	# exec, so that $! is podman itself and not a subshell.
	(
		export CONTAINERS_CONF=$PM_CONF
		exec podman --root "$PM_ROOT" --runroot "$PM_RUN/run" --tmpdir "$PM_RUN/tmp" \
			system service --time=0 "$PM_URL" </dev/null >"$PM_LOG" 2>&1
	) &
	echo $! >"$PM_PID"
	wait_podman "podman service" "$PM_SOCK" "$PM_PID" "$PM_LOG" stop_service
	log "podman service $(cat "$PM_PID") listening on $PM_URL"
}

[ $# -eq 2 ] || usage
case $1 in
start)
	mkdir -p "$2"
	podman_paths "$2"
	start_service
	;;
stop)
	[ -d "$2" ] || exit 0
	podman_paths "$2"
	write_conf
	stop_service
	;;
status)
	[ -d "$2" ] || exit 1
	podman_paths "$2"
	ping
	;;
*) usage ;;
esac
