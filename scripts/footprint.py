#!/usr/bin/env python3
# footprint.py: lazypod's RSS and open fds before the first connection, idle with the container
# running, and with 1000 open TCP flows. Run from the repo root after `make build`, with a private
# Podman started and the test image built:
#   scripts/podman-service.sh start build/podman && . build/podman/env
#   scripts/build-images.sh build/podman testserver
#   PM_URL=$LAZYPOD_TEST_PODMAN python3 scripts/footprint.py
# Uses loopback ports 18080 and 19000; stops lazypod (SIGTERM) at the end.
import socket, subprocess, time, os, sys, resource
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
url=os.environ["PM_URL"]
p=subprocess.Popen([os.environ.get("LAZYPOD","build/lazypod"),"serve","--image","localhost/lazypod-testserver:latest","--name","lz-rss",
  "--listen","web=127.0.0.1:18080","--listen","echo=127.0.0.1:19000","--port","web=8080","--port","echo=9000",
  "--podman-url",url,"--state-dir","/tmp/lzrss","--idle-timeout","60s"], stderr=open("/tmp/rss.log","w"))
def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): return l.split()[1]
def fds(): return len(os.listdir(f"/proc/{p.pid}/fd"))
time.sleep(2) # past the trim a second after listening
print("before first connection: RSS kB", rss(), "fds", fds())
t=time.time(); s=socket.create_connection(("127.0.0.1",18080)); s.sendall(b"GET / HTTP/1.0\r\n\r\n"); print(s.recv(1000).split(b"\r\n\r\n")[1], "cold", round(time.time()-t,3)); s.close()
time.sleep(2) # past the trim a second after ready
print("idle, container running: RSS kB", rss(), "fds", fds())
conns=[]
for i in range(1000):
    c=socket.create_connection(("127.0.0.1",19000)); c.sendall(b"x"); conns.append(c)
for c in conns: c.recv(1)
time.sleep(0.5)
f=fds()
print("1000 open flows: RSS kB", rss(), "fds", f)
for c in conns: c.close()
p.terminate(); p.wait(timeout=30); print("exit", p.returncode)
