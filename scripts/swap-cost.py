#!/usr/bin/env python3
# swap-cost.py: what the updater costs a cold start, and how long a rollback makes clients wait.
# Runs two lazypod serve processes side by side on the test image, one with --auto-update disabled
# and one with --auto-update local (which reads and writes its state file and inspects images at
# every start), and measures connect-to-first-response-byte of cold starts, alternating between
# the two, ROUNDS times each (default 15), reporting medians and their ratio. Then it measures
# one activation that swaps in an image exiting at start (v3) and is rolled back to v1.
# Run from the repo root after `make build`, with the private Podman started and the images built:
#   scripts/podman-service.sh start build/podman && . build/podman/env
#   scripts/build-images.sh build/podman testserver
#   PM_URL=$LAZYPOD_TEST_PODMAN python3 scripts/swap-cost.py
# Each cold start follows lazypod's own idle stop (--idle-timeout 1s). Uses loopback ports 18181 and 18182; stops both lazypods (SIGTERM) and removes their containers.
import os, socket, statistics, subprocess, sys, tempfile, time

url = os.environ["PM_URL"]
rounds = int(os.environ.get("ROUNDS", "15"))
pm = ["podman", "--remote", "--url", url]


def serve(name, port, policy, image):
    d = tempfile.mkdtemp(prefix="lzswap-")
    log = open(os.path.join(d, "log"), "w")
    p = subprocess.Popen(["build/lazypod", "serve", "--image", image, "--name", name,
                          "--listen", f"web=127.0.0.1:{port}", "--port", "web=8080",
                          "--podman-url", url, "--state-dir", d, "--idle-timeout", "1s",
                          "--stop-timeout", "1s", "--ready-timeout", "5s", "--auto-update", policy],
                         stderr=log)
    return p


def first_byte(port):
    t = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
    s.close()
    return time.perf_counter() - t, data.split(b"\r\n\r\n", 1)[-1].decode().strip()


def running(name):
    out = subprocess.run(pm + ["inspect", "--format", "{{.State.Running}}", name], capture_output=True, text=True)
    return out.stdout.strip() == "true"


def stop(name):
    """waits for lazypod's idle stop (1s after the last connection closed)."""
    for _ in range(400):
        if not running(name):
            return
        time.sleep(0.05)
    sys.exit(f"{name} still running")


subprocess.run(pm + ["tag", "localhost/lazypod-testserver:v1", "localhost/lzswap:latest"], check=True)
procs = [serve("lzswap-off", 18181, "disabled", "localhost/lazypod-testserver:v1"),
         serve("lzswap-local", 18182, "local", "localhost/lzswap:latest")]
try:
    time.sleep(1)
    first_byte(18181); first_byte(18182)  # create both containers
    times = {"disabled": [], "local": []}
    pair = [("lzswap-off", 18181, "disabled"), ("lzswap-local", 18182, "local")]
    for i in range(rounds):
        # Alternate which goes first, and start each only when both are stopped, so that
        # neither measures while Podman is busy stopping the other.
        for name, port, key in (pair if i % 2 == 0 else pair[::-1]):
            stop("lzswap-off"); stop("lzswap-local")
            dt, _ = first_byte(port)
            times[key].append(dt)
    md, ml = statistics.median(times["disabled"]), statistics.median(times["local"])
    print(f"cold start, connect to first byte, median of {rounds} alternating rounds:")
    print(f"  --auto-update disabled {md*1000:.1f} ms, local {ml*1000:.1f} ms, ratio local/disabled {ml/md:.3f}")

    # A swap to an image that exits at start, rolled back within the same activation.
    stop("lzswap-local")
    subprocess.run(pm + ["tag", "localhost/lazypod-testserver:v3", "localhost/lzswap:latest"], check=True)
    dt, body = first_byte(18182)
    print(f"activation swapping in v3 (exits at start), rolled back: answered {body!r} after {dt*1000:.0f} ms")
    stop("lzswap-local")
    dt, body = first_byte(18182)
    print(f"next activation (v3 failed, not tried again): answered {body!r} after {dt*1000:.0f} ms")
finally:
    for p in procs:
        p.terminate()
        p.wait(timeout=60)
    subprocess.run(pm + ["rm", "-f", "-t", "0", "lzswap-off", "lzswap-local", "lzswap-local.lazypod-pin"], capture_output=True)
    subprocess.run(pm + ["untag", "localhost/lzswap:latest", "localhost/lzswap:latest"], capture_output=True)
