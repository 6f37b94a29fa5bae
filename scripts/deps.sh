#!/usr/bin/env bash
# deps.sh [PACKAGE...]
#
# Installs the Debian packages that the tests and the demo need, if any are missing. When all are
# present it only asks dpkg, and takes a fraction of a second. With arguments, installs those
# packages instead of the default list.
#
#   podman runc conmon    run containers (runc: crun fails on these machines)
#   netavark aardvark-dns iptables
#                         container networking and published ports
#   uidmap slirp4netns    what Podman expects beside it
#   curl                  waits for the Podman socket; the demo's requests
#   iproute2              ss: the demo checks its port without connecting
#   systemd               /usr/bin/systemd-socket-activate, for tests and the demo
#   docker-registry skopeo
#                         a local registry for update tests
#   wrk                   load for benchmarks
#   debootstrap systemd-container
#                         a Debian rootfs booted with systemd-nspawn: the units tests under real systemd
#   gcc                   go test -race needs cgo
#   busybox-static        /bin/sh in the test server image: health commands in shell form
#   bind9-dnsutils        dig: the first DNS query through a cold start of the dnsmasq image
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

packages=("$@")
if [ ${#packages[@]} -eq 0 ]; then
	packages=(podman runc conmon netavark aardvark-dns iptables uidmap slirp4netns curl iproute2
		systemd docker-registry skopeo wrk gcc debootstrap systemd-container busybox-static bind9-dnsutils)
fi

# One dpkg-query for all: it lists the installed ones ("ii "), and we keep the others.
installed=" $(dpkg-query -W -f='${db:Status-Abbrev}${Package} ' "${packages[@]}" 2>/dev/null |
	grep -o 'ii [^ ]*' | cut -c4- | tr '\n' ' ' || true) "
missing=()
for p in "${packages[@]}"; do
	[[ $installed == *" $p "* ]] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || die "missing packages ${missing[*]}, and not root: install them as root"
	sudo=(sudo)
fi
log "installing Debian packages: ${missing[*]}"
logfile=$(mktemp /tmp/lazypod-apt.XXXXXX)
# Where no policy-rc.d keeps them down, packages (docker-registry) would start their services.
policy=/usr/sbin/policy-rc.d
cleanup() {
	rm -f "$logfile"
	[ -z "${made_policy:-}" ] || "${sudo[@]}" rm -f "$policy"
}
trap cleanup EXIT
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
	"${sudo[@]}" chmod 755 "$policy"
	made_policy=1
fi
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq -o Dpkg::Use-Pty=0)
run_logged "$logfile" "${apt[@]}" update
run_logged "$logfile" "${apt[@]}" install -y "${missing[@]}"
