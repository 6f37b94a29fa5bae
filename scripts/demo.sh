#!/usr/bin/env bash
# demo.sh: what `make demo` runs once build/lazypod is built and the Debian packages are in.
#
# Shows lazypod doing its job for a person: a small web server (demo/server) that runs in a
# container only while someone uses it.
#
#   1. starts a private Podman in build/demo and builds localhost/lazypod-demo:latest into it
#   2. listens on 127.0.0.1:$DEMO_PORT with systemd-socket-activate, which starts
#      `lazypod serve` on the first connection, as a systemd .socket unit would
#   3. walks through a cold start, a warm request, the idle stop and the next cold start
#   4. on a terminal, keeps serving until Ctrl-C; otherwise stops after the walk-through
#
# Unlike systemd, systemd-socket-activate exec's the program it starts: once lazypod exits on
# idle, the listening socket is gone with it. A loop here starts systemd-socket-activate again,
# so for a moment after each idle exit connections are refused, where under systemd they would
# wait in the socket's queue.
#
# Everything it started is stopped on the way out (Ctrl-C included), the container too.
#
# Environment: DEMO_PORT (default 8080), DEMO_IDLE (lazypod's --idle-timeout, default 20s).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(repo_root)"

port=${DEMO_PORT:-8080}
idle=${DEMO_IDLE:-20s}
name=lazypod-demo
image=localhost/lazypod-demo:latest
url=http://127.0.0.1:$port/
dir=build/demo
bin=$PWD/build/lazypod
[ -x "$bin" ] || die "no $bin: run make build first (make demo does)"
command -v systemd-socket-activate >/dev/null || die "no systemd-socket-activate: run scripts/deps.sh"

mkdir -p "$dir"
podman_paths "$dir"
serve_log=$PM_DIR/lazypod.log
rm -f "$serve_log"
serve_pid=$PM_DIR/serve.pid
loop_pid=

# say prints a line of the walk-through; note prints an aside.
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
[ -t 1 ] || say() { printf '\n%s\n' "$*"; }
note() { printf '   %s\n' "$*"; }
indent() { sed 's/^/   | /'; }

# dpodman runs podman against the demo's service, as a client would.
dpodman() { podman --url "$PM_URL" "$@"; }

cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	echo
	log "cleaning up"
	# The loop first, or it would start systemd-socket-activate again.
	if [ -n "$loop_pid" ]; then
		kill "$loop_pid" 2>/dev/null || true
		wait "$loop_pid" 2>/dev/null || true
	fi
	# Then lazypod (or systemd-socket-activate waiting for a connection): lazypod stops its
	# container on the way out.
	if [ -f "$serve_pid" ]; then
		pid=$(cat "$serve_pid")
		if kill -TERM "$pid" 2>/dev/null; then
			for _ in $(seq 100); do
				any_alive "$pid" || break
				sleep 0.1
			done
			kill -KILL "$pid" 2>/dev/null || true
		fi
		rm -f "$serve_pid"
	fi
	# The service last; stopping it removes any container left.
	scripts/podman-service.sh stop "$dir" >"$PM_DIR/stop-service.log" 2>&1 ||
		warn "stopping the private Podman failed; see $PM_DIR/stop-service.log"
	[ ! -s "$serve_log" ] || log "lazypod's log: $serve_log"
	exit "$rc"
}

# listening tells whether anything listens on the demo's port, without connecting (a connection
# would start lazypod).
listening() { ss -Htln "sport = :$port" | grep -q .; }

# serving_pid prints the pid of the running lazypod, if systemd-socket-activate exec'd it.
serving_pid() {
	local pid
	pid=$(cat "$serve_pid" 2>/dev/null) || return 1
	tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "^$bin serve " || return 1
	echo "$pid"
}

# show_process prints what runs on the port now: systemd-socket-activate, or lazypod (the same
# process, after exec).
show_process() {
	local pid
	pid=$(cat "$serve_pid" 2>/dev/null) || return 0
	note "\$ ps -o pid,args $pid"
	ps -o pid,args -p "$pid" | sed "s|$PWD/||g" | cut -c1-110 | indent
}

# show_log prints what lazypod (and systemd-socket-activate) logged since the last call,
# without the timestamps.
log_seen=0
show_log() {
	local total
	total=$(wc -l <"$serve_log")
	[ "$total" -gt "$log_seen" ] || return 0
	note "lazypod's log:"
	tail -n +"$((log_seen + 1))" "$serve_log" | head -n "$((total - log_seen))" |
		grep -v '^Execing ' | sed 's/^time=[^ ]* //' | indent
	log_seen=$total
}

# container_state prints the demo container's state, or "absent".
container_state() {
	dpodman container inspect --format '{{.State.Status}}' "$name" 2>/dev/null || echo absent
}

# request fetches the page and prints it, and then how long it took.
request() {
	local t
	t=$(curl -sS --max-time 60 -o "$PM_DIR/page.txt" -w '%{time_total}' "$url") ||
		die "request to $url failed; lazypod's log is $serve_log"
	indent <"$PM_DIR/page.txt"
	note "answered in $(LC_ALL=C printf '%.3f' "$t")s"
}

# serve_forever starts systemd-socket-activate, then again each time lazypod exits.
serve_forever() {
	while :; do
		systemd-socket-activate -l "127.0.0.1:$port" \
			"$bin" serve --image "$image" --name "$name" --port 8080 \
			--podman-url "$PM_URL" --idle-timeout "$idle" >>"$serve_log" 2>&1 &
		echo $! >"$serve_pid"
		wait $! || true
		sleep 0.2
	done
}

listening && die "something already listens on 127.0.0.1:$port: choose another port, e.g. DEMO_PORT=8081 make demo"

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting a private Podman in $dir"
scripts/podman-service.sh start "$dir"
log "building the demo image"
scripts/build-images.sh "$dir" demo

touch "$serve_log"
serve_forever &
loop_pid=$!
for _ in $(seq 50); do
	listening && break
	sleep 0.1
done
listening || die "systemd-socket-activate did not listen on 127.0.0.1:$port; see $serve_log"

log "the demo serves $url (open it in a browser at any time)"

say "1. Nothing is running yet."
note "systemd-socket-activate holds 127.0.0.1:$port and waits for a first connection,"
note "as a systemd .socket unit would. No lazypod process, and no container:"
show_process
note "\$ podman ps"
dpodman ps | indent

say "2. The first request starts lazypod, which starts the container (a cold start)."
note "\$ curl $url"
request
note "systemd-socket-activate exec'd lazypod, which started the container:"
show_process
show_log
note "\$ podman ps"
dpodman ps | indent

say "3. A second request goes to the running container (warm)."
note "\$ curl $url"
request

say "4. Nobody is using it: after $idle idle, lazypod stops the container and exits."
start=$SECONDS
while serving_pid >/dev/null || [ "$(container_state)" = running ]; do
	[ $((SECONDS - start)) -lt 180 ] || die "lazypod did not stop the container within 180s; see $serve_log"
	sleep 1
done
for _ in $(seq 50); do
	listening && break
	sleep 0.1
done
note "after $((SECONDS - start))s: container $(container_state), lazypod exited"
show_log
note "\$ podman ps -a"
dpodman ps -a | indent
note "systemd-socket-activate listens again (started again by this script's loop)."

say "5. The next request starts it all again."
note "\$ curl $url"
request
note "(started again: a new start time, and the request count begins again)"
show_log

if [ -t 0 ]; then
	say "Open $url in a browser. Reload to count; leave it $idle to watch the idle stop."
	note "lazypod's log follows. Ctrl-C stops the demo and cleans up."
	echo
	# Ctrl-C is how this ends: not a failure.
	trap 'exit 0' INT
	tail -n +"$((log_seen + 1))" -f "$serve_log" | grep --line-buffered -v '^Execing ' || true
else
	say "Done. (On a terminal, make demo keeps serving $url until Ctrl-C.)"
fi
