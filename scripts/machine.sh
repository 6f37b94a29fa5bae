#!/usr/bin/env bash
# machine.sh rootfs|boot|exec|stop DIR ...
#
# Boots a real systemd as PID 1 in a systemd-nspawn container, so lazypod's generated units can be
# proven where they will run (the machines this runs on have no systemd as PID 1). Needs root,
# debootstrap and systemd-container.
#
#   rootfs DIR                               debootstraps a minimal Debian with systemd into
#                                            DIR/rootfs, once: kept while DIR/rootfs.stamp names
#                                            the current recipe. Built beside it and renamed, so
#                                            an interrupted build is never taken for a finished one.
#   boot DIR NAME PODMAN_SOCK LAZYPOD_BIN    boots machine NAME in the background and returns once
#                                            systemd says running (or degraded). Writes DIR/NAME.pid
#                                            (the machine's PID 1, as the host sees it).
#                                            LAZYPOD_BIN "-": none bound in (a test installs lazypod's
#                                            package instead).
#   exec DIR NAME CMD...                     runs CMD inside (stdin, stdout, exit status pass
#                                            through), with a clean environment.
#   stop DIR NAME                            powers the machine off, kills it if that takes too
#                                            long, removes DIR/NAME.*. Safe to repeat.
#
# The machine:
#   - runs on a throw-away overlay of DIR/rootfs (--volatile=overlay: changes go to a tmpfs and
#     vanish at stop), so a run never changes the cached rootfs;
#   - shares the host's network namespace: a ListenStream=127.0.0.1:PORT inside is reachable
#     from the host, and so are the host Podman's published 127.0.0.1 ports from inside;
#   - has LAZYPOD_BIN at /usr/local/bin/lazypod (read-only), and PODMAN_SOCK at
#     /run/host-podman.sock, reached through a stand-in podman.socket (/run/podman/podman.sock,
#     forwarded by systemd-socket-proxyd), so units that require podman.socket work unchanged;
#   - has curl, and no Podman of its own: the stand-in units come in a package,
#     podman-host-standin, that Provides: podman (= bookworm's version) and is installed and
#     enabled as Debian installs podman, so a package that Depends: podman installs offline.
#
# MACHINE_SHARE (boot): host directories, absolute paths separated by spaces, bound read-write at
# the same path in the machine: a unix socket systemd makes there in the machine is the one a
# container of the host's Podman mounts from the same path.
#
# Files: DIR/NAME.pid (PID 1), DIR/NAME.nspawn-pid, DIR/NAME.log (systemd-nspawn's output and the
# machine's console). Environment: MACHINE_BOOT_TIMEOUT, MACHINE_STOP_TIMEOUT (seconds, default
# 60 and 30), DEBIAN_MIRROR (default http://deb.debian.org/debian), DEBIAN_SUITE (default bookworm).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat >&2 <<EOF
usage: $0 rootfs DIR
       $0 boot DIR NAME PODMAN_SOCK LAZYPOD_BIN
       $0 exec DIR NAME CMD...
       $0 stop DIR NAME
EOF
	exit 2
}

suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the cached rootfs was built from: change it (or the setup below) and the next run rebuilds.
include=systemd,systemd-sysv,dbus,curl
recipe="debootstrap --variant=minbase --include=$include $suite; podman-host-standin package 1"

# machine_paths DIR [NAME] sets DIR to its absolute path and the M_* variables.
machine_paths() {
	[ -d "$1" ] || mkdir -p "$1"
	DIR=$(cd "$1" && pwd)
	M_ROOTFS=$DIR/rootfs
	M_STAMP=$DIR/rootfs.stamp
	if [ $# -gt 1 ]; then
		[[ $2 =~ ^[A-Za-z0-9][A-Za-z0-9-]{0,63}$ ]] ||
			die "invalid machine name \"$2\": use letters, digits and '-', at most 64"
		M_PID=$DIR/$2.pid
		M_NSPAWN_PID=$DIR/$2.nspawn-pid
		M_LOG=$DIR/$2.log
	fi
}

rootfs_ready() { [ -d "$M_ROOTFS" ] && [ "$(cat "$M_STAMP" 2>/dev/null)" = "$recipe" ]; }

# setup_rootfs ROOT adds what the machine needs to a fresh debootstrap.
setup_rootfs() {
	local root=$1 proxyd
	proxyd=$(cd "$root" && ls usr/lib/systemd/systemd-socket-proxyd lib/systemd/systemd-socket-proxyd 2>/dev/null | head -n1)
	[ -n "$proxyd" ] || die "no systemd-socket-proxyd in the new rootfs"
	# The stand-in package, built and installed with the rootfs's own dpkg. Its files are where
	# bookworm's podman has its own: the units in /lib/systemd/system; /etc/containers (from
	# golang-github-containers-common), but no /etc/containers/systemd, which came with Quadlet
	# in Podman 4.4.
	local pkg=$root/tmp/podman-host-standin
	mkdir -p "$pkg/DEBIAN" "$pkg/lib/systemd/system" "$pkg/etc/containers"
	cat >"$pkg/DEBIAN/control" <<EOF
Package: podman-host-standin
Version: 4.3.1+ds1-8+deb12u1+standin1
Architecture: all
Maintainer: lazypod developers <lazypod@localhost>
Provides: podman (= 4.3.1+ds1-8+deb12u1)
Conflicts: podman
Replaces: podman
Section: admin
Priority: optional
Description: stand-in for podman: its API socket, forwarded to the host's Podman
 Written by lazypod's scripts/machine.sh. podman.socket listens where Podman's
 does; podman.service forwards each connection to /run/host-podman.sock, the
 host's Podman socket bound into the machine.
EOF
	cat >"$pkg/lib/systemd/system/podman.socket" <<EOF
# From podman-host-standin (scripts/machine.sh): a stand-in for Podman's own podman.socket that
# forwards to the host's Podman, bound into the machine at /run/host-podman.sock.
[Unit]
Description=Podman API Socket (forwarded to the host's Podman)

[Socket]
ListenStream=%t/podman/podman.sock
SocketMode=0660

[Install]
WantedBy=sockets.target
EOF
	cat >"$pkg/lib/systemd/system/podman.service" <<EOF
# From podman-host-standin (scripts/machine.sh): see podman.socket.
[Unit]
Description=Podman API Service (forwarded to the host's Podman)
Requires=podman.socket
After=podman.socket

[Service]
ExecStart=/$proxyd /run/host-podman.sock
EOF
	chroot "$root" dpkg-deb --root-owner-group --build /tmp/podman-host-standin /tmp/podman-host-standin.deb >/dev/null
	chroot "$root" dpkg --install /tmp/podman-host-standin.deb >/dev/null
	rm -rf "$pkg" "$pkg.deb"
	# Enabled, as podman's postinst does (deb-systemd-helper enable podman.socket).
	mkdir -p "$root/etc/systemd/system/sockets.target.wants"
	ln -sf /lib/systemd/system/podman.socket "$root/etc/systemd/system/sockets.target.wants/podman.socket"
	# Nothing in the machine needs these; they only slow the boot down or wake it up.
	local u
	for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
		fstrim.timer e2scrub_reap.service systemd-pstore.service getty@tty1.service; do
		ln -sf /dev/null "$root/etc/systemd/system/$u"
	done
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
	# The machine's hostname is then its name (--machine=NAME), not the host's.
	rm -f "$root/etc/hostname"
}

cmd_rootfs() {
	[ $# -eq 1 ] || usage
	machine_paths "$1"
	command -v debootstrap >/dev/null || die "debootstrap not found: install the Debian package debootstrap"
	# A go.mod makes DIR a module of its own, which keeps `go test ./...` out of the rootfs.
	echo 'module lazypod.invalid/machine // not Go: keeps "go ... ./..." out' >"$DIR/go.mod"
	# One builder at a time; the others wait and then find it built.
	exec 9>"$DIR/rootfs.lock"
	flock 9
	if rootfs_ready; then
		return 0
	fi
	local t0=${EPOCHREALTIME/./} stale
	for stale in "$DIR"/rootfs.new.*; do
		[ -e "$stale" ] || continue
		log "removing $stale, left by an interrupted build"
		remove_tree "$stale"
	done
	local new
	new=$(mktemp -d "$DIR/rootfs.new.XXXXXX")
	chmod 0755 "$new"
	log "building the machine's rootfs in $DIR (debootstrap $suite, about a minute)"
	if ! run_logged "$DIR/debootstrap.log" debootstrap --variant=minbase \
		--include="$include" "$suite" "$new" "$mirror"; then
		remove_tree "$new"
		die "debootstrap failed: see $DIR/debootstrap.log"
	fi
	setup_rootfs "$new"
	rm -f "$M_STAMP"
	[ -e "$M_ROOTFS" ] && remove_tree "$M_ROOTFS"
	mv "$new" "$M_ROOTFS"
	echo "$recipe" >"$M_STAMP"
	log "rootfs built in $(elapsed "$t0")"
}

# leader_of NSPAWN_PID prints the machine's PID 1, if there is one yet: the child of
# systemd-nspawn that is PID 1 in its own PID namespace (at first, the child is a helper that
# forks PID 1 and exits).
leader_of() {
	local c
	for c in $(pgrep -P "$1" || true); do
		if awk '$1 == "NSpid:" && NF > 2 && $NF == 1 { found = 1 } END { exit !found }' \
			"/proc/$c/status" 2>/dev/null; then
			echo "$c"
			return 0
		fi
	done
	return 1
}

# in_machine LEADER CMD... runs CMD in the machine's namespaces with a clean environment.
in_machine() {
	local leader=$1
	shift
	nsenter -t "$leader" -m -u -i -p -r -w \
		env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 "$@"
}

cmd_boot() {
	[ $# -eq 4 ] || usage
	machine_paths "$1" "$2"
	local name=$2 sock=$3 bin=$4
	rootfs_ready || die "no finished rootfs in $DIR: run $0 rootfs $DIR first"
	[ -S "$sock" ] || die "no Podman socket at $sock"
	local binds=(--bind="$(cd "$(dirname "$sock")" && pwd)/$(basename "$sock"):/run/host-podman.sock")
	if [ "$bin" != - ]; then
		[ -x "$bin" ] || die "no lazypod binary at $bin"
		binds+=(--bind-ro="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin"):/usr/local/bin/lazypod")
	fi
	local shared
	for shared in ${MACHINE_SHARE:-}; do
		[ -d "$shared" ] && [ "${shared#/}" != "$shared" ] || die "MACHINE_SHARE: $shared is not an absolute path of a directory"
		binds+=(--bind="$shared")
	done
	if [ -e "$M_PID" ] || [ -e "$M_NSPAWN_PID" ]; then
		log "stopping machine $name, left by an earlier run"
		cmd_stop "$DIR" "$name"
	fi
	command -v systemd-nspawn >/dev/null || die "systemd-nspawn not found: install the Debian package systemd-container"

	local t0=${EPOCHREALTIME/./}
	# --keep-unit and --register=no: there is no systemd on the host to make a scope or
	# register with. No --private-network: the machine uses the host's network.
	systemd-nspawn -D "$M_ROOTFS" --volatile=overlay -b --keep-unit --register=no \
		--console=passive --machine="$name" "${binds[@]}" \
		</dev/null >"$M_LOG" 2>&1 &
	local nspawn=$!
	echo "$nspawn" >"$M_NSPAWN_PID"

	local timeout=${MACHINE_BOOT_TIMEOUT:-60} leader="" state=""
	local deadline=$((${EPOCHREALTIME/./} + timeout * 1000000))
	while [ "${EPOCHREALTIME/./}" -lt "$deadline" ]; do
		if ! any_alive "$nspawn"; then
			printf 'error: systemd-nspawn exited while booting %s; its output:\n' "$name" >&2
			tail -n 30 "$M_LOG" | sed 's/^/    /' >&2
			cmd_stop "$DIR" "$name"
			exit 1
		fi
		[ -n "$leader" ] && any_alive "$leader" || leader=$(leader_of "$nspawn" || true)
		if [ -n "$leader" ]; then
			state=$(in_machine "$leader" systemctl is-system-running 2>/dev/null || true)
			case $state in
			running | degraded) break ;;
			esac
		fi
		sleep 0.1
	done
	case $state in
	running) ;;
	degraded)
		warn "machine $name is degraded; failed units:"
		in_machine "$leader" systemctl --failed --no-legend | sed 's/^/    /' >&2 || true
		;;
	*)
		[ -n "$leader" ] || state="no PID 1 yet"
		printf 'error: machine %s not booted within %ss (state: %s); the end of its console:\n' \
			"$name" "$timeout" "${state:-unknown}" >&2
		tail -n 30 "$M_LOG" | sed 's/^/    /' >&2
		if [ -n "$leader" ]; then
			in_machine "$leader" systemctl list-jobs --no-legend 2>&1 | sed 's/^/    job: /' >&2 || true
		fi
		cmd_stop "$DIR" "$name"
		exit 1
		;;
	esac
	echo "$leader" >"$M_PID"
	log "machine $name is $state in $(elapsed "$t0") (PID 1 is $leader on the host)"
}

cmd_exec() {
	[ $# -ge 3 ] || usage
	machine_paths "$1" "$2"
	shift 2
	local leader
	leader=$(cat "$M_PID" 2>/dev/null) || die "no machine running: no $M_PID"
	any_alive "$leader" || die "machine's PID 1 ($leader) is gone"
	in_machine "$leader" "$@"
}

cmd_stop() {
	[ $# -eq 2 ] || usage
	machine_paths "$1" "$2"
	local name=$2 leader nspawn
	leader=$(cat "$M_PID" 2>/dev/null || true)
	nspawn=$(cat "$M_NSPAWN_PID" 2>/dev/null || true)
	[ -n "$leader" ] || [ -z "$nspawn" ] || leader=$(leader_of "$nspawn" || true)
	# A pid file outlives its process; make sure the pid still is what it was.
	if [ -n "$nspawn" ] && [ "$(cat "/proc/$nspawn/comm" 2>/dev/null)" != systemd-nspawn ]; then
		nspawn=""
	fi
	if [ -n "$leader" ] && [ "$(cat "/proc/$leader/comm" 2>/dev/null)" != systemd ]; then
		leader=""
	fi
	local timeout=${MACHINE_STOP_TIMEOUT:-30} pids=() p
	for p in $nspawn $leader; do pids+=("$p"); done
	if [ ${#pids[@]} -gt 0 ]; then
		# systemctl's connection breaks as PID 1 goes down: its exit status says nothing.
		[ -z "$leader" ] || timeout 10 nsenter -t "$leader" -m -u -i -p -r -w \
			systemctl poweroff >/dev/null 2>&1 || true
		local deadline=$((${EPOCHREALTIME/./} + timeout * 1000000))
		while any_alive "${pids[@]}" && [ "${EPOCHREALTIME/./}" -lt "$deadline" ]; do
			sleep 0.1
		done
		# SIGTERM makes systemd-nspawn power the machine off in its own way.
		if [ -n "$nspawn" ] && any_alive "$nspawn"; then
			warn "machine $name did not power off within ${timeout}s: sending SIGTERM to systemd-nspawn"
			kill -TERM "$nspawn" 2>/dev/null || true
			deadline=$((${EPOCHREALTIME/./} + 10 * 1000000))
			while any_alive "${pids[@]}" && [ "${EPOCHREALTIME/./}" -lt "$deadline" ]; do
				sleep 0.1
			done
		fi
		if any_alive "${pids[@]}"; then
			warn "machine $name still up: killing it"
			# Killing PID 1 of the machine's PID namespace kills everything in it.
			kill -KILL "${pids[@]}" 2>/dev/null || true
			# The kernel tears the PID namespace down before PID 1 is gone: that takes a while.
			deadline=$((${EPOCHREALTIME/./} + 60 * 1000000))
			while any_alive "${pids[@]}" && [ "${EPOCHREALTIME/./}" -lt "$deadline" ]; do
				sleep 0.1
			done
			! any_alive "${pids[@]}" || die "machine $name (pids ${pids[*]}) still up 60s after SIGKILL"
		fi
	fi
	rm -f "$M_PID" "$M_NSPAWN_PID" "$M_LOG"
}

[ $# -ge 2 ] || usage
[ "$(id -u)" = 0 ] || die "$0 needs root (debootstrap, systemd-nspawn, nsenter)"
cmd=$1
shift
case $cmd in
rootfs) cmd_rootfs "$@" ;;
boot) cmd_boot "$@" ;;
exec) cmd_exec "$@" ;;
stop) cmd_stop "$@" ;;
*) usage ;;
esac
