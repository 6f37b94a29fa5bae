#!/usr/bin/env bash
# build-images.sh DIR [testserver] [demo] [redisapp]
#
# Builds the local images in the storage of the private Podman in DIR (start it first with
# podman-service.sh; no registry is needed: both images are FROM scratch plus a static Go binary):
#
#   testserver  localhost/lazypod-testserver:latest  from testdata/testserver (the integration tests')
#   demo        localhost/lazypod-demo:latest        from demo/server (make demo's)
#   redisapp    localhost/lazypod-redisapp:latest    from testdata/redisapp (a module of its own):
#                                                    an app that needs Redis; with :v1 (good) and
#                                                    :v2 (exits with code 3 at start)
#
# testserver also builds the updater's test versions on top of it, each a distinct image:
#   localhost/lazypod-testserver:v1, :v2, :v6  good (VERSION=v1, v2, v6)
#   localhost/lazypod-testserver:v3            exits with code 3 at start
#   localhost/lazypod-testserver:v4            never listens (never ready)
#   localhost/lazypod-testserver:v5            ready, then crashes after 1s
#   localhost/lazypod-testserver:v7            listens, but its health check fails (UNHEALTHY=1)
#
# The testserver image has /bin/sh (Debian's busybox-static), for health commands in shell form.
#
# Without names, builds both. Podman's layer cache makes a rebuild of an unchanged image take
# about half a second, so it always builds.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 1 ] || {
	echo "usage: $0 DIR [testserver] [demo] [redisapp]" >&2
	exit 2
}
podman_paths "$1"
shift
[ -f "$PM_CONF" ] || die "no private Podman in $PM_DIR: run scripts/podman-service.sh start $PM_DIR first"
cd "$(repo_root)"

# build_image NAME SRC BIN TAG [FILE:AS...] builds SRC, a Go main package with a Containerfile
# beside it that copies the binary BIN, into the image TAG; each FILE is put in the context as AS.
build_image() {
	local name=$1 src=$2 bin=$3 tag=$4 ctx=$PM_DIR/ctx/$1 start=${EPOCHREALTIME/./} extra
	shift 4
	[ -f "$src/Containerfile" ] || die "no $src/Containerfile"
	rm -rf "$ctx"
	mkdir -p "$ctx"
	# Everything beside the Containerfile goes into the context, and the binary next to it.
	cp -a "$src/." "$ctx/"
	for extra in "$@"; do
		cp "${extra%%:*}" "$ctx/${extra#*:}"
	done
	# No VCS stamp: the same source gives the same binary, so Podman's cache hits. A source
	# with a go.mod of its own is built in its module.
	if [ -f "$src/go.mod" ]; then
		CGO_ENABLED=0 GOFLAGS= go -C "$src" build -buildvcs=false -o "$ctx/$bin" .
	else
		CGO_ENABLED=0 go build -buildvcs=false -o "$ctx/$bin" "./$src"
	fi
	run_logged "$PM_DIR/build-$name.log" \
		pm build --format docker --layers -t "$tag" -f "$ctx/Containerfile" "$ctx"
	log "built $tag in $(elapsed "$start")"
}

# build_versions builds the testserver's versions listed above, FROM the testserver image.
build_versions() {
	local ctx=$PM_DIR/ctx/versions v env start=${EPOCHREALTIME/./}
	mkdir -p "$ctx"
	for v in v1 v2 v3 v4 v5 v6 v7; do
		case $v in
		v3) env='VERSION=v3 EXIT_AT_START=3' ;;
		v4) env='VERSION=v4 NEVER_LISTEN=1' ;;
		v5) env='VERSION=v5 CRASH_AFTER=1s' ;;
		v7) env='VERSION=v7 UNHEALTHY=1' ;;
		*) env="VERSION=$v" ;;
		esac
		printf 'FROM localhost/lazypod-testserver:latest\nENV %s\n' "$env" >"$ctx/Containerfile.$v"
		run_logged "$PM_DIR/build-testserver-$v.log" \
			pm build --format docker --layers -t "localhost/lazypod-testserver:$v" -f "$ctx/Containerfile.$v" "$ctx"
	done
	log "built localhost/lazypod-testserver:v1..v7 in $(elapsed "$start")"
}

# build_tagged NAME REPO TAG ENV [TAG ENV...] builds REPO:TAG FROM REPO:latest with ENV set.
build_tagged() {
	local name=$1 repo=$2 ctx=$PM_DIR/ctx/$1-tags start=${EPOCHREALTIME/./}
	shift 2
	mkdir -p "$ctx"
	while [ $# -ge 2 ]; do
		printf 'FROM %s:latest\nENV %s\n' "$repo" "$2" >"$ctx/Containerfile.$1"
		run_logged "$PM_DIR/build-$name-$1.log" \
			pm build --format docker --layers -t "$repo:$1" -f "$ctx/Containerfile.$1" "$ctx"
		shift 2
	done
	log "built the tags of $repo in $(elapsed "$start")"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(testserver demo)
for t in "${targets[@]}"; do
	case $t in
	testserver)
		[ -x /bin/busybox ] || die "no /bin/busybox: install the Debian package busybox-static (scripts/deps.sh does)"
		build_image testserver testdata/testserver testserver localhost/lazypod-testserver:latest /bin/busybox:sh
		build_versions
		;;
	demo) build_image demo demo/server lazypod-demo localhost/lazypod-demo:latest ;;
	redisapp)
		build_image redisapp testdata/redisapp redisapp localhost/lazypod-redisapp:latest
		build_tagged redisapp localhost/lazypod-redisapp v1 'VERSION=v1' v2 'VERSION=v2 EXIT_AT_START=3'
		;;
	*) die "unknown image $t: valid names are testserver, demo, redisapp" ;;
	esac
done
# The previous build of a tag loses its name: remove such images so storage does not grow.
pm image prune -f >/dev/null 2>&1 || true
