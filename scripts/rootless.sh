#!/usr/bin/env bash
# rootless.sh setup|stop|env [SRC_DIR]
#
# An unprivileged user with its own rootless Podman API service, for running lazypod the way a
# non-root user would (TestSecurityRootless). Run as root on a Debian machine.
#
#   setup  makes the user (useradd, /etc/subuid and /etc/subgid ranges), its runtime directory
#          /run/user/UID (0700, the user's), lets unprivileged users open /dev/net/tun (slirp4netns,
#          rootless networking), writes the user's containers.conf, starts
#          `podman system service` as the user on $XDG_RUNTIME_DIR/podman/podman.sock, and loads
#          the test image into the user's storage from the private root Podman in SRC_DIR
#          (default build/podman: podman save there, podman load as the user). Each step is skipped
#          when already done, so a second setup takes a second or two. Prints the env lines.
#   stop   removes the user's containers and stops its Podman service and pause process. Keeps
#          the user and its images, so the next setup is fast. Safe to repeat.
#   env    prints the shell lines that describe the setup (as setup does), without changing anything.
#
# Environment: ROOTLESS_USER (default lazypod-rootless), ROOTLESS_IMAGE (default
# localhost/lazypod-testserver:latest), PODMAN_START_TIMEOUT (seconds, default 60).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RL_USER=${ROOTLESS_USER:-lazypod-rootless}
RL_IMAGE=${ROOTLESS_IMAGE:-localhost/lazypod-testserver:latest}

usage() {
	echo "usage: $0 setup|stop|env [SRC_DIR]" >&2
	exit 2
}

# user_paths sets the RL_* variables of an existing user.
user_paths() {
	RL_UID=$(id -u "$RL_USER")
	RL_HOME=$(getent passwd "$RL_USER" | cut -d: -f6)
	RL_RUNTIME=/run/user/$RL_UID
	RL_SOCK=$RL_RUNTIME/podman/podman.sock
	RL_URL=unix://$RL_SOCK
	RL_PID=$RL_RUNTIME/lazypod-podman.pid
	RL_LOG=$RL_HOME/podman-service.log
}

# as_user runs a command as the user, with its own environment.
as_user() {
	runuser -u "$RL_USER" -- env -i HOME="$RL_HOME" USER="$RL_USER" LOGNAME="$RL_USER" \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		XDG_RUNTIME_DIR="$RL_RUNTIME" "$@"
}

print_env() {
	cat <<EOF
ROOTLESS_USER=$RL_USER
ROOTLESS_UID=$RL_UID
ROOTLESS_HOME=$RL_HOME
ROOTLESS_XDG_RUNTIME_DIR=$RL_RUNTIME
ROOTLESS_PODMAN=$RL_URL
ROOTLESS_IMAGE=$RL_IMAGE
EOF
}

# ping exits 0 if the user's service answers on its socket.
ping() { podman_ping "$RL_SOCK"; }

# service_pids prints the pids of the user's podman services on RL_URL: the one setup started
# (podman re-executes itself in the user namespace, so two processes each) and any a killed run
# left behind.
service_pids() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(stat -c %u "$p" 2>/dev/null)" = "$RL_UID" ] || continue
		tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "system service --time=0 $RL_URL" && echo "${p#/proc/}"
	done
	return 0
}

# add_subids FILE gives the user a range of 65536 ids in FILE (/etc/subuid or /etc/subgid)
# after every range already there, unless it has one.
add_subids() {
	local file=$1 start
	touch "$file"
	grep -q "^$RL_USER:" "$file" && return 0
	start=$(awk -F: 'BEGIN { m = 100000 } { if ($2 + $3 > m) m = $2 + $3 } END { print m }' "$file")
	echo "$RL_USER:$start:65536" >>"$file"
}

make_user() {
	if ! id -u "$RL_USER" >/dev/null 2>&1; then
		useradd --create-home --shell /bin/bash --comment "lazypod rootless tests" "$RL_USER"
		log "made user $RL_USER"
	fi
	add_subids /etc/subuid
	add_subids /etc/subgid
	user_paths
	# Like systemd-logind's: the user's, mode 0700.
	install -d -m 0700 -o "$RL_USER" -g "$(id -g "$RL_USER")" "$RL_RUNTIME"
	# slirp4netns opens /dev/net/tun as the user.
	if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
		chmod 666 /dev/net/tun
	fi
	as_user mkdir -p "$RL_HOME/.config/containers"
	# Like podman-service.sh's: runc, no systemd, ulimits the machine allows.
	as_user tee "$RL_HOME/.config/containers/containers.conf" >/dev/null <<'EOF'
# Written by scripts/rootless.sh; rewritten on every setup.
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
}

start_service() {
	local deadline
	if ping; then
		return 0
	fi
	kill_service
	as_user mkdir -p "$RL_RUNTIME/podman"
	# exec, so that $! is runuser, which passes SIGTERM on to podman.
	(
		exec runuser -u "$RL_USER" -- env -i HOME="$RL_HOME" USER="$RL_USER" LOGNAME="$RL_USER" \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			XDG_RUNTIME_DIR="$RL_RUNTIME" \
			podman system service --time=0 "$RL_URL" </dev/null >"$RL_LOG" 2>&1
	) &
	echo $! >"$RL_PID"
	wait_podman "the rootless podman service" "$RL_SOCK" "$RL_PID" "$RL_LOG" kill_service
	log "rootless podman service of $RL_USER listening on $RL_URL"
}

# kill_service stops the user's podman services, and the runuser that started ours.
kill_service() {
	local pids runuser=
	if [ -f "$RL_PID" ]; then
		runuser=$(cat "$RL_PID")
		# The pid may have been reused since: only a runuser of this service counts.
		tr '\0' ' ' 2>/dev/null <"/proc/$runuser/cmdline" | grep -qF -- "system service --time=0 $RL_URL" || runuser=
	fi
	# shellcheck disable=SC2207 # pids are words
	pids=($(service_pids) $runuser)
	rm -f "$RL_PID"
	[ ${#pids[@]} -gt 0 ] || return 0
	kill -TERM "${pids[@]}" 2>/dev/null || true
	for _ in $(seq 100); do
		any_alive "${pids[@]}" || return 0
		sleep 0.1
	done
	warn "rootless podman service ${pids[*]} ignored SIGTERM for 10s; killing it"
	kill -KILL "${pids[@]}" 2>/dev/null || true
}

# load_image copies the image from the private root Podman unless the user has the same one.
load_image() {
	local want have
	podman_paths "$SRC_DIR"
	want=$(pm image inspect --format '{{.Id}}' "$RL_IMAGE" 2>/dev/null) ||
		die "no $RL_IMAGE in $PM_DIR: run scripts/podman-service.sh start $PM_DIR and scripts/build-images.sh $PM_DIR testserver"
	have=$(as_user podman image inspect --format '{{.Id}}' "$RL_IMAGE" 2>/dev/null || true)
	[ "$have" != "$want" ] || return 0
	pm save -q --format docker-archive "$RL_IMAGE" | as_user podman load >/dev/null ||
		die "loading $RL_IMAGE into the storage of $RL_USER failed"
	log "loaded $RL_IMAGE (${want:0:12}) into the storage of $RL_USER"
}

stop_all() {
	id -u "$RL_USER" >/dev/null 2>&1 || return 0
	user_paths
	[ -d "$RL_RUNTIME" ] || return 0
	# Through the storage, not the service: works whether the service answers or not.
	as_user podman rm -af -t 0 >/dev/null 2>&1 || warn "removing the containers of $RL_USER failed"
	kill_service
	local pause=$RL_RUNTIME/libpod/tmp/pause.pid pid
	if [ -f "$pause" ]; then
		pid=$(cat "$pause")
		if [ -n "$pid" ] && [ "$(stat -c %u "/proc/$pid" 2>/dev/null)" = "$RL_UID" ]; then
			kill -TERM "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$RL_SOCK"
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
SRC_DIR=${2:-$(repo_root)/build/podman}
case $1 in
setup)
	[ "$(id -u)" = 0 ] || die "run as root: it makes a user"
	for c in podman newuidmap newgidmap slirp4netns curl runuser useradd; do
		command -v "$c" >/dev/null || die "$c is not installed: run scripts/deps.sh"
	done
	start=${EPOCHREALTIME/./}
	make_user
	start_service
	load_image
	log "rootless setup of $RL_USER ready in $(elapsed "$start")"
	print_env
	;;
stop)
	stop_all
	;;
env)
	id -u "$RL_USER" >/dev/null 2>&1 || die "no user $RL_USER: run $0 setup"
	user_paths
	print_env
	;;
*) usage ;;
esac
