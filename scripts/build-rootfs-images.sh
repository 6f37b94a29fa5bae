#!/usr/bin/env bash
# build-rootfs-images.sh DIR [dnsmasq] [jvm] [redis]
#
# Builds images on a Debian rootfs in the storage of the private Podman in DIR (start it first with
# podman-service.sh). No registry is needed: the rootfs comes from debootstrap and Debian's mirror.
#
#   dnsmasq  localhost/lazypod-dnsmasq:latest  dnsmasq on port 53 (UDP and TCP) answering
#                                              lazypod.test with 10.1.2.3; see testdata/dnsmasq
#   jvm      localhost/lazypod-jvm:latest      Java 17 HTTP server on port 8080 answering 200
#                                              "jvm\n" at /; see testdata/jvmserver
#   redis    localhost/lazypod-redis:latest    Debian's redis-server on port 6379, its data in
#                                              /data; see testdata/redis
#
# Each is made in three steps, each cached:
#   1. debootstrap --variant=minbase of Debian with the image's packages, trimmed (no docs, man
#      pages, apt lists), into build/rootfs-cache/NAME.tar. Kept while NAME.stamp names the current
#      recipe (package list and setup below); built beside it and renamed, so an interrupted build
#      is never taken for a finished one. About a minute (jvm: two); then never again.
#   2. podman import of the tarball as localhost/lazypod-NAME-rootfs:latest, labelled with its
#      recipe; skipped while that image has the current label. A few seconds.
#   3. podman build of testdata/NAME/Containerfile (jvm: with Server.class, compiled here with
#      javac) FROM that image. Podman's layer cache makes it half a second when nothing changed.
#
# Without names, builds all three. Needs root (debootstrap), debootstrap, and for jvm the host's javac
# (Debian's openjdk-17-jdk-headless).
#
# Environment: ROOTFS_CACHE (default build/rootfs-cache), DEBIAN_MIRROR (default
# http://deb.debian.org/debian), DEBIAN_SUITE (default bookworm), as scripts/machine.sh.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 1 ] || {
	echo "usage: $0 DIR [dnsmasq] [jvm] [redis]" >&2
	exit 2
}
podman_paths "$1"
shift
[ -f "$PM_CONF" ] || die "no private Podman in $PM_DIR: run scripts/podman-service.sh start $PM_DIR first"
cd "$(repo_root)"

suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${ROOTFS_CACHE:-build/rootfs-cache}

# packages_of NAME prints the packages debootstrap adds to minbase for the image NAME.
packages_of() {
	case $1 in
	dnsmasq) echo dnsmasq-base ;;
	jvm) echo openjdk-17-jre-headless ;;
	redis) echo redis-server ;;
	esac
}

# recipe_of NAME prints what the rootfs of NAME is built from: change it (or trim_rootfs) and the
# next run rebuilds.
recipe_of() {
	echo "debootstrap --variant=minbase --include=$(packages_of "$1") $suite; trim 1"
}

# trim_rootfs ROOT removes from a fresh debootstrap what no container needs: Podman gives /dev,
# /proc, /sys and /run their own mounts.
trim_rootfs() {
	local root=$1
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
		"$root"/var/cache/debconf/*-old "$root"/var/log/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
		"$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/dev/* "$root"/run/* "$root"/tmp/*
	rm -f "$root/etc/hostname" "$root/etc/machine-id"
}

# build_rootfs NAME makes $cache/NAME.tar, unless the stamp beside it names the current recipe.
build_rootfs() {
	local name=$1 recipe tar=$cache/$1.tar stamp=$cache/$1.stamp t0=${EPOCHREALTIME/./} stale new
	recipe=$(recipe_of "$name")
	mkdir -p "$cache"
	# A go.mod makes the cache a module of its own, which keeps `go test ./...` out of the rootfs.
	echo 'module lazypod.invalid/rootfs-cache // not Go: keeps "go ... ./..." out' >"$cache/go.mod"
	# One builder at a time; the others wait and then find it built.
	exec 9>"$cache/$name.lock"
	flock 9
	if [ -f "$tar" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$recipe" ]; then
		exec 9>&-
		return 0
	fi
	[ "$(id -u)" = 0 ] || die "building the $name rootfs needs root (debootstrap)"
	command -v debootstrap >/dev/null || die "debootstrap not found: install the Debian package debootstrap"
	for stale in "$cache/$name".new.*; do
		[ -e "$stale" ] || continue
		log "removing $stale, left by an interrupted build"
		remove_tree "$stale"
	done
	new=$(mktemp -d "$cache/$name.new.XXXXXX")
	chmod 0755 "$new"
	log "building the $name rootfs in $cache (debootstrap $suite with $(packages_of "$name"), a minute or two)"
	if ! run_logged "$cache/$name.debootstrap.log" debootstrap --variant=minbase \
		--include="$(packages_of "$name")" "$suite" "$new/root" "$mirror"; then
		remove_tree "$new"
		die "debootstrap failed: see $cache/$name.debootstrap.log"
	fi
	trim_rootfs "$new/root"
	tar --numeric-owner --xattrs -C "$new/root" -cf "$new/rootfs.tar" .
	rm -f "$stamp"
	mv "$new/rootfs.tar" "$tar"
	echo "$recipe" >"$stamp"
	remove_tree "$new"
	exec 9>&-
	log "$name rootfs built in $(elapsed "$t0"): $tar ($(du -h "$tar" | cut -f1))"
}

# import_rootfs NAME makes localhost/lazypod-NAME-rootfs:latest from $cache/NAME.tar, unless that
# image is labelled with the tarball's recipe.
import_rootfs() {
	local name=$1 tag=localhost/lazypod-$1-rootfs:latest label t0=${EPOCHREALTIME/./} have
	label=$(cat "$cache/$name.stamp")
	have=$(pm image inspect --format '{{index .Labels "lazypod.rootfs"}}' "$tag" 2>/dev/null || true)
	[ "$have" != "$label" ] || return 0
	run_logged "$PM_DIR/import-$name.log" pm import \
		--change "LABEL lazypod.rootfs=\"$label\"" \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--message "scripts/build-rootfs-images.sh: $label" \
		"$cache/$name.tar" "$tag"
	log "imported $tag in $(elapsed "$t0")"
}

# build_image NAME SRC TAG [FILE...] builds SRC/Containerfile into TAG, with the FILEs in its context.
build_image() {
	local name=$1 src=$2 tag=$3 ctx=$PM_DIR/ctx/$1 t0=${EPOCHREALTIME/./}
	shift 3
	[ -f "$src/Containerfile" ] || die "no $src/Containerfile"
	rm -rf "$ctx"
	mkdir -p "$ctx"
	cp "$src/Containerfile" "$ctx/"
	[ $# -eq 0 ] || cp "$@" "$ctx/"
	run_logged "$PM_DIR/build-$name.log" \
		pm build --format docker --layers -t "$tag" -f "$ctx/Containerfile" "$ctx"
	log "built $tag in $(elapsed "$t0")"
}

# javac_server compiles testdata/jvmserver/Server.java into $PM_DIR/javac/Server.class.
javac_server() {
	command -v javac >/dev/null || die "javac not found: install the Debian package openjdk-17-jdk-headless"
	rm -rf "$PM_DIR/javac"
	mkdir -p "$PM_DIR/javac"
	run_logged "$PM_DIR/javac.log" javac --release 17 -d "$PM_DIR/javac" testdata/jvmserver/Server.java
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(dnsmasq jvm redis)
for t in "${targets[@]}"; do
	case $t in
	dnsmasq | jvm | redis) ;;
	*) die "unknown image $t: valid names are dnsmasq, jvm, redis" ;;
	esac
done
for t in "${targets[@]}"; do
	build_rootfs "$t"
	import_rootfs "$t"
	case $t in
	dnsmasq) build_image dnsmasq testdata/dnsmasq localhost/lazypod-dnsmasq:latest ;;
	redis) build_image redis testdata/redis localhost/lazypod-redis:latest ;;
	jvm)
		javac_server
		build_image jvm testdata/jvmserver localhost/lazypod-jvm:latest "$PM_DIR/javac/Server.class"
		;;
	esac
done
# The previous build of a tag loses its name: remove such images so storage does not grow.
pm image prune -f >/dev/null 2>&1 || true
