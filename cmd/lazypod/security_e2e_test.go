package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecurityLoopbackPorts: every port lazypod publishes, TCP and UDP, is
// bound on 127.0.0.1 only, in Podman's settings and on the host.
func TestSecurityLoopbackPorts(t *testing.T) {
	e := needE2E(t)
	name := uniqueName(t)
	web := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	cmd := exec.Command(e.bin, "serve", "--image", e.image, "--name", name,
		"--listen", "web="+web, "--listen", "echo=127.0.0.1:0", "--listen", "dns=udp:127.0.0.1:0",
		"--port", "web=8080", "--port", "echo=9000", "--port", "dns=9000/udp",
		"--podman-url", e.podmanURL, "--state-dir", t.TempDir(), "--stop-timeout", "1s")
	e.startProcess(t, name, cmd)
	if body, err := httpGet(t, "http://"+web+"/"); err != nil || body != "v1\n" {
		t.Fatalf("GET /: %q, %v; want %q", body, err, "v1\n")
	}

	var bindings map[string][]struct{ HostIp, HostPort string }
	if err := json.Unmarshal([]byte(e.podman(t, "inspect", "--format", "{{json .HostConfig.PortBindings}}", name)), &bindings); err != nil {
		t.Fatal(err)
	}
	published, offLoopback := 0, 0
	for port, bs := range bindings {
		for _, b := range bs {
			published++
			if b.HostIp != "127.0.0.1" {
				offLoopback++
				t.Errorf("container port %s published on %q:%s; want 127.0.0.1 only", port, b.HostIp, b.HostPort)
			}
			hp, err := strconv.Atoi(b.HostPort)
			if err != nil {
				t.Fatalf("container port %s: host port %q", port, b.HostPort)
			}
			proto := strings.TrimPrefix(port[strings.IndexByte(port, '/'):], "/")
			socks := secHostSockets(t, proto, hp)
			t.Logf("host %s port %d: %v", proto, hp, socks)
			for _, s := range socks {
				if s.addr != "127.0.0.1" {
					t.Errorf("host %s port %d (container port %s) is bound on %s; want 127.0.0.1 only", proto, hp, port, s.addr)
				}
			}
		}
	}
	t.Logf("port bindings: %v", bindings)
	t.Logf("FIGURE published ports not on 127.0.0.1: %d of %d (podman inspect .HostConfig.PortBindings and /proc/net/{tcp,udp}{,6})", offLoopback, published)
	if published != 3 {
		t.Errorf("%d ports published (%v); want 3: 8080/tcp, 9000/tcp, 9000/udp", published, bindings)
	}
}

// TestSecurityFileModes: the state directory and its files, the runtime
// directory and the notify socket cannot be written by other users. The
// runtime directory is made 0755, as systemd makes RuntimeDirectory= by
// default, and the notify socket in it must still be out of other users'
// reach: one that can send READY=1 to it makes lazypod send traffic to a
// container that is not ready.
func TestSecurityFileModes(t *testing.T) {
	e := needE2E(t)
	name := uniqueName(t)
	web := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	// A path every user can walk to, as /run/lazypod/NAME is.
	base, err := os.MkdirTemp("", "lazypod-modes-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	runtimeDir := filepath.Join(base, "run")
	stateDir := filepath.Join(base, "state") // lazypod makes it
	for _, d := range []string{base, runtimeDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The container listens, and sends READY=1, 2 s after it starts: time
	// to try the notify socket while lazypod reads it.
	cmd := exec.Command(e.bin, "serve", "--image", e.image, "--name", name,
		"--listen", web, "--port", "8080", "--ready", "notify", "--env", "NOTIFY=1", "--env", "LISTEN_DELAY=2s",
		"--podman-url", e.podmanURL, "--state-dir", stateDir, "--stop-timeout", "1s")
	cmd.Env = append(os.Environ(), "RUNTIME_DIRECTORY="+runtimeDir)
	e.startProcess(t, name, cmd)
	got := make(chan error, 1)
	go func() {
		body, err := httpGet(t, "http://"+web+"/")
		if err == nil && body != "v1\n" {
			err = fmt.Errorf("body %q; want %q", body, "v1\n")
		}
		got <- err
	}()
	sock := secWaitSocket(t, runtimeDir)
	// What counts: can an unprivileged user send to it while lazypod
	// waits for READY=1 on it?
	if logger, err := exec.LookPath("logger"); err == nil && os.Geteuid() == 0 {
		out, err := exec.Command("runuser", "-u", "nobody", "--", logger, "--socket-errors=on", "-d", "-u", sock, "lazypod security test").CombinedOutput()
		switch {
		case err == nil:
			t.Errorf("user nobody sent a datagram to the notify socket %s during the start: any local user can send READY=1", sock)
		case strings.Contains(string(out), "Permission denied"):
			t.Logf("user nobody cannot send to the notify socket: %s", strings.TrimSpace(string(out)))
		default:
			t.Errorf("sending to the notify socket as nobody: %v: %s; want permission denied while lazypod reads it", err, out)
		}
	} else {
		t.Logf("not trying the notify socket as another user: needs root and logger(1)")
	}
	if err := <-got; err != nil {
		t.Fatalf("GET / with the notify probe: %v", err)
	}
	// The state file is written once the container is ready, after the
	// waiting clients are let through.
	secWaitFile(t, filepath.Join(stateDir, name+".json"))

	var checked []string
	writable := 0
	check := func(path string, fi fs.FileInfo) {
		checked = append(checked, fmt.Sprintf("%s %v", filepath.Base(path), fi.Mode()))
		if fi.Mode().Perm()&0o022 != 0 {
			writable++
			t.Errorf("%s is %v: group or others can write it", path, fi.Mode())
		}
	}
	for _, d := range []string{stateDir, runtimeDir} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		check(d, fi)
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range entries {
			fi, err := de.Info()
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode()&fs.ModeSocket != 0 {
				continue // below
			}
			check(filepath.Join(d, de.Name()), fi)
		}
	}
	for _, want := range []string{name + ".json", name + ".lock"} {
		if _, err := os.Stat(filepath.Join(stateDir, want)); err != nil {
			t.Errorf("no %s in the state directory: %v", want, err)
		}
	}

	// The notify socket: the container's user may be anyone, so the socket
	// itself may be writable by all, but then no other host user may reach
	// it: a directory on its path must be closed to them.
	mounted := false
	for _, m := range secMounts(t, e, name) {
		mounted = mounted || m.Source == sock && m.Destination == "/run/lazypod/notify.sock"
	}
	if !mounted {
		t.Errorf("%s is not mounted at /run/lazypod/notify.sock: %v", sock, secMounts(t, e, name))
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	checked = append(checked, fmt.Sprintf("%s %v", filepath.Base(sock), fi.Mode()))
	if fi.Mode().Perm()&0o022 != 0 {
		if dir := secOpenDirOnPath(t, filepath.Dir(sock)); dir != "" {
			writable++
			t.Errorf("notify socket %s is %v and every directory on its path lets others through (%s is %v): any local user can send READY=1",
				sock, fi.Mode(), dir, secDirMode(t, dir))
		}
	}
	t.Logf("modes: %s", strings.Join(checked, ", "))
	t.Logf("FIGURE state and runtime files writable by group or others: %d of %d (stat; notify socket counted by who can reach it)", writable, len(checked))
}

// TestSecurityNoInheritedLeak runs lazypod under systemd-socket-activate with
// two named sockets and an --env-file whose bare keys name the LISTEN_*
// variables (a bare KEY takes its value from lazypod's environment): neither
// those variables nor the inherited sockets reach the container, and every
// descriptor lazypod holds is close-on-exec, so no child would get one.
func TestSecurityNoInheritedLeak(t *testing.T) {
	e := needE2E(t)
	if _, err := exec.LookPath("systemd-socket-activate"); err != nil {
		t.Fatal("systemd-socket-activate not found: install the systemd package")
	}
	name := uniqueName(t)
	ports := freePorts(t, 2)
	web := fmt.Sprintf("127.0.0.1:%d", ports[0])
	echo := fmt.Sprintf("127.0.0.1:%d", ports[1])
	envFile := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(envFile, []byte("LISTEN_FDS\nLISTEN_PID\nLISTEN_FDNAMES\nAPP_SETTING=from-env-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("systemd-socket-activate", "-l", web, "-l", echo, "--fdname=web:echo",
		e.bin, "serve", "--image", e.image, "--name", name,
		"--port", "web=8080", "--port", "echo=9000", "--env-file", envFile,
		"--podman-url", e.podmanURL, "--state-dir", t.TempDir(), "--idle-timeout", "20s", "--stop-timeout", "1s")
	e.startProcess(t, name, cmd)
	waitListening(t, ports[0])
	inherited := map[string]bool{}
	for _, p := range ports {
		for _, s := range secHostSockets(t, "tcp", p) {
			inherited["socket:["+s.inode+"]"] = true
		}
	}
	if len(inherited) != 2 {
		t.Fatalf("found %d listening sockets of the activator; want 2", len(inherited))
	}
	if body, err := httpGet(t, "http://"+web+"/"); err != nil || body != "v1\n" {
		t.Fatalf("GET /: %q, %v; want %q", body, err, "v1\n")
	}
	// systemd-socket-activate execs lazypod: same pid.
	lazypod := cmd.Process.Pid

	var config []string
	if err := json.Unmarshal([]byte(e.podman(t, "inspect", "--format", "{{json .Config.Env}}", name)), &config); err != nil {
		t.Fatal(err)
	}
	pid := e.podman(t, "inspect", "--format", "{{.State.Pid}}", name)
	b, err := os.ReadFile("/proc/" + pid + "/environ")
	if err != nil {
		t.Fatalf("reading the environment of the container's PID 1 (%s): %v", pid, err)
	}
	envs := map[string][]string{
		"podman inspect .Config.Env":        config,
		"/proc/" + pid + "/environ (PID 1)": strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"),
	}
	leakedVars := 0
	for where, env := range envs {
		found := false
		for _, kv := range env {
			if strings.HasPrefix(kv, "LISTEN_") {
				leakedVars++
				t.Errorf("%s has %s: lazypod's socket-activation variables leaked into the container", where, kv)
			}
			found = found || kv == "APP_SETTING=from-env-file"
		}
		if !found {
			t.Errorf("%s %q lacks APP_SETTING=from-env-file: the env file was not applied, so the test proves nothing", where, env)
		}
	}

	// The container's PID 1 holds none of the inherited sockets.
	fds, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatalf("listing the descriptors of the container's PID 1 (%s): %v", pid, err)
	}
	var held []string
	leakedFDs := 0
	for _, fd := range fds {
		link, err := os.Readlink("/proc/" + pid + "/fd/" + fd.Name())
		if err != nil {
			continue // closed meanwhile
		}
		held = append(held, fd.Name()+"->"+link)
		if inherited[link] {
			leakedFDs++
			t.Errorf("container PID 1 holds fd %s -> %s, a socket lazypod inherited", fd.Name(), link)
		}
	}
	t.Logf("container PID 1 (%s) fds: %s", pid, strings.Join(held, " "))

	// lazypod itself: no child processes, and every descriptor above
	// stderr close-on-exec (the inherited ones included).
	if kids := secChildren(t, lazypod); len(kids) > 0 {
		t.Errorf("lazypod has child processes %v; want none", kids)
	}
	fds, err = os.ReadDir(fmt.Sprintf("/proc/%d/fd", lazypod))
	if err != nil {
		t.Fatal(err)
	}
	open, inheritable := 0, 0
	for _, fd := range fds {
		n, _ := strconv.Atoi(fd.Name())
		if n <= 2 {
			continue
		}
		flags, err := secFDFlags(lazypod, fd.Name())
		if err != nil {
			continue // closed meanwhile
		}
		open++
		if flags&syscall.O_CLOEXEC == 0 {
			inheritable++
			link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", lazypod, fd.Name()))
			t.Errorf("lazypod's fd %s (%s) is not close-on-exec (flags %o): a child would inherit it", fd.Name(), link, flags)
		}
	}
	if open == 0 {
		t.Fatal("lazypod holds no descriptor above 2: did it start?")
	}
	t.Logf("FIGURE LISTEN_* variables in the container: %d; inherited sockets held by its PID 1: %d; lazypod fds a child would inherit: %d of %d (podman inspect, /proc/PID/{environ,fd,fdinfo})",
		leakedVars, leakedFDs, inheritable, open)
}

// rootless is an unprivileged user with its own rootless Podman service
// (scripts/rootless.sh), and a copy of lazypod it can run.
type rootless struct {
	user, uid, runtimeDir, url string
	bin                        string // lazypod, the user's to run
	dir                        string // a directory of the user's: HOME
	stateDir                   string // in dir
	podman                     e2eEnv // the user's Podman
}

// rootlessSetup sets up the rootless user for a test and stops its Podman
// when the test ends.
func rootlessSetup(t *testing.T) rootless {
	e := needE2E(t)
	if os.Geteuid() != 0 {
		msg := "the rootless test makes a user with scripts/rootless.sh: run it as root"
		if os.Getenv("LAZYPOD_TEST_REQUIRE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	script, err := filepath.Abs("../../scripts/rootless.sh")
	if err != nil {
		t.Fatal(err)
	}
	src := secRootPodmanDir(t, e)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, script, "setup", src).CombinedOutput()
	if err != nil {
		t.Fatalf("%s setup %s: %v\n%s", script, src, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(script, "stop").CombinedOutput(); err != nil {
			t.Errorf("%s stop: %v\n%s", script, err, out)
		}
	})
	t.Logf("FIGURE rootless setup: %v (scripts/rootless.sh setup; user, service and image kept from earlier runs make it fast)", time.Since(start).Round(10*time.Millisecond))
	env := map[string]string{}
	for line := range strings.SplitSeq(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "ROOTLESS_") {
			env[k] = v
		}
	}
	rl := rootless{user: env["ROOTLESS_USER"], uid: env["ROOTLESS_UID"], runtimeDir: env["ROOTLESS_XDG_RUNTIME_DIR"], url: env["ROOTLESS_PODMAN"]}
	if rl.user == "" || rl.uid == "" || rl.runtimeDir == "" || rl.url == "" {
		t.Fatalf("setup printed no ROOTLESS_USER, _UID, _XDG_RUNTIME_DIR and _PODMAN:\n%s", out)
	}
	rl.podman = e2eEnv{bin: e.bin, podmanURL: rl.url, image: env["ROOTLESS_IMAGE"]}

	// A copy of the binary and a state directory the user can reach.
	if rl.dir, err = os.MkdirTemp("", "lazypod-rootless-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rl.dir) })
	n, _ := strconv.Atoi(rl.uid)
	if err := os.Chmod(rl.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(rl.dir, n, -1); err != nil {
		t.Fatal(err)
	}
	rl.bin = filepath.Join(rl.dir, "lazypod")
	if b, err := os.ReadFile(e.bin); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(rl.bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	rl.stateDir = filepath.Join(rl.dir, "state")
	return rl
}

// serve returns lazypod serve with args, run as the user.
func (rl rootless) serve(args ...string) *exec.Cmd {
	return exec.Command("runuser", append([]string{"-u", rl.user, "--", "env", "-i", "PATH=/usr/bin:/bin",
		"HOME=" + rl.dir, "XDG_RUNTIME_DIR=" + rl.runtimeDir, rl.bin, "serve",
		"--podman-url", rl.url, "--state-dir", rl.stateDir}, args...)...)
}

// TestSecurityRootless runs lazypod as an unprivileged user with that user's
// rootless Podman (scripts/rootless.sh sets both up): a request is answered,
// the container is stopped when idle, and lazypod runs as that user.
func TestSecurityRootless(t *testing.T) {
	rl := rootlessSetup(t)
	user, uid, stateDir, userPodman := rl.user, rl.uid, rl.stateDir, rl.podman
	n, _ := strconv.Atoi(uid)

	name := uniqueName(t)
	web := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	// The notify probe, with a container user that is not the rootless
	// user either (a subordinate id): its socket goes to
	// $XDG_RUNTIME_DIR/lazypod.
	cmd := rl.serve("--listen", web, "--port", "8080", "--image", userPodman.image, "--name", name,
		"--ready", "notify", "--env", "NOTIFY=1", "--user", "1000", "--idle-timeout", "2s", "--stop-timeout", "1s")
	logs, _ := userPodman.startProcess(t, name, cmd)

	if body, err := httpGet(t, "http://"+web+"/"); err != nil || body != "v1\n" {
		t.Fatalf("GET / through rootless lazypod: %q, %v; want %q", body, err, "v1\n")
	}
	// runuser forks lazypod.
	var lazypod int
	if kids := secChildren(t, cmd.Process.Pid); len(kids) == 1 {
		lazypod = kids[0]
	} else {
		t.Fatalf("runuser (%d) has children %v; want one, lazypod", cmd.Process.Pid, kids)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", lazypod))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == "Uid" {
			for _, id := range strings.Fields(v) {
				if id != uid {
					t.Errorf("lazypod (pid %d) runs with %s:%s; want every id %s (%s)", lazypod, k, v, uid, user)
				}
			}
			t.Logf("lazypod pid %d runs as %s (Uid:%s)", lazypod, user, v)
		}
	}
	if !userPodman.containerRunning(t, name) {
		t.Fatalf("container %s is not running in %s's Podman after the request was answered", name, user)
	}
	if b := userPodman.podman(t, "inspect", "--format", "{{json .HostConfig.PortBindings}}", name); !strings.Contains(b, `"HostIp":"127.0.0.1"`) || strings.Contains(b, `"HostIp":""`) || strings.Contains(b, "0.0.0.0") {
		t.Errorf("rootless container's port bindings %s; want 127.0.0.1 only", b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for userPodman.containerRunning(t, name) {
		if time.Now().After(deadline) {
			t.Fatalf("container %s still running 30s after the last request; want the idle stop after 2s", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "stopping") {
		t.Errorf("log does not mention the idle stop:\n%s", logs.String())
	}
	// The state lazypod wrote is the user's, not root's.
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range entries {
		fi, err := de.Info()
		if err != nil {
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != n || fi.Mode().Perm()&0o022 != 0 {
			t.Errorf("state file %s is %v, uid %d; want the user's (%d), not writable by others", de.Name(), fi.Mode(), st.Uid, n)
		}
	}
}

// secHostSocket is one socket in the host's /proc/net tables.
type secHostSocket struct{ addr, inode string }

// secHostSockets lists the host's IPv4 and IPv6 sockets of proto ("tcp" or
// "udp") bound to local port port: listening ones for TCP.
func secHostSockets(t *testing.T, proto string, port int) []secHostSocket {
	t.Helper()
	var socks []secHostSocket
	for _, table := range []string{proto, proto + "6"} {
		f, err := os.Open("/proc/net/" + table)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[0] == "sl" {
				continue
			}
			hexAddr, hexPort, _ := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err != nil || int(p) != port {
				continue
			}
			if proto == "tcp" && fields[3] != "0A" { // LISTEN
				continue
			}
			socks = append(socks, secHostSocket{addr: secProcAddr(hexAddr), inode: fields[9]})
		}
		f.Close()
	}
	return socks
}

// secProcAddr reads an address of /proc/net/tcp: 4 or 16 bytes in hex, each
// 32-bit word in host (little-endian) order.
func secProcAddr(h string) string {
	b := make([]byte, len(h)/2)
	for i := range b {
		v, _ := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		b[i] = byte(v)
	}
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b).String()
}

type secMount struct{ Source, Destination string }

func secMounts(t *testing.T, e e2eEnv, name string) []secMount {
	t.Helper()
	var ms []secMount
	if err := json.Unmarshal([]byte(e.podman(t, "inspect", "--format", "{{json .Mounts}}", name)), &ms); err != nil {
		t.Fatal(err)
	}
	return ms
}

// secOpenDirOnPath returns "" if a directory from dir up to / denies others
// passage (no x for group and others), else dir itself.
func secOpenDirOnPath(t *testing.T, dir string) string {
	t.Helper()
	for d := dir; ; d = filepath.Dir(d) {
		if secDirMode(t, d)&0o011 == 0 {
			return ""
		}
		if d == "/" {
			return dir
		}
	}
}

func secDirMode(t *testing.T, dir string) fs.FileMode {
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// secWaitFile waits up to 10 s for path to exist.
func secWaitFile(t *testing.T, path string) {
	t.Helper()
	for range 100 {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not appear within 10s", path)
}

// secWaitSocket waits up to 10 s for a unix socket to appear in dir or
// below, and returns its path.
func secWaitSocket(t *testing.T, dir string) string {
	t.Helper()
	for range 100 {
		var found string
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSocket != 0 {
				found = path
				return fs.SkipAll
			}
			return nil
		})
		if found != "" {
			return found
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no socket appeared in %s within 10s", dir)
	return ""
}

// secChildren lists the processes whose parent is pid.
func secChildren(t *testing.T, pid int) []int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var kids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			k, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			kids = append(kids, k)
		}
	}
	return kids
}

// secFDFlags reads the open flags of a process's descriptor from fdinfo.
func secFDFlags(pid int, fd string) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			return int(n), err
		}
	}
	return 0, fmt.Errorf("no flags in fdinfo of fd %s", fd)
}

// secRootPodmanDir is the directory of the private root Podman the test image
// is copied from: the one whose socket LAZYPOD_TEST_PODMAN names, if its
// containers.conf is beside it, else build/podman.
func secRootPodmanDir(t *testing.T, e e2eEnv) string {
	t.Helper()
	if sock, ok := strings.CutPrefix(e.podmanURL, "unix://"); ok {
		d := filepath.Dir(sock)
		if _, err := os.Stat(filepath.Join(d, "containers.conf")); err == nil {
			return d
		}
	}
	d, err := filepath.Abs("../../build/podman")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRootlessListeningAndPause: as an unprivileged user with rootless
// Podman, the listening probe reads the container's socket tables (no
// fallback), so the first datagram through a cold start, to a server that
// binds UDP a second after TCP, is answered at once; and --idle-action
// pause pauses the container at idle where the machine's cgroups allow a
// rootless pause, else stops it and says why. The next datagram wakes it.
func TestRootlessListeningAndPause(t *testing.T) {
	rl := rootlessSetup(t)
	name := uniqueName(t)
	ports := freePorts(t, 2)
	web, dns := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	cmd := rl.serve("--listen", "web="+web, "--port", "web=8080", "--listen", "dns=udp:"+dns, "--port", "dns=9000/udp",
		"--image", rl.podman.image, "--name", name, "--env", "UDP_DELAY=1s",
		"--idle-action", "pause", "--idle-timeout", "2s", "--udp-timeout", "1s", "--stop-timeout", "1s")
	logs, _ := rl.podman.startProcess(t, name, cmd)
	waitListening(t, ports[0])

	echo := func() (time.Duration, error) {
		c, err := net.Dial("udp", dns)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		began := time.Now()
		if _, err := c.Write([]byte("ping")); err != nil {
			return 0, err
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 16)
		n, err := c.Read(buf)
		if err == nil && string(buf[:n]) != "ping" {
			err = fmt.Errorf("echo %q", buf[:n])
		}
		return time.Since(began), err
	}
	took, err := echo()
	if err != nil {
		t.Fatalf("the first datagram through the cold start: %v; want its echo, without a retry", err)
	}
	t.Logf("FIGURE rootless: first datagram through a cold start answered in %s (UDP bound 1s after TCP)", took.Round(time.Millisecond))
	if took < time.Second {
		t.Errorf("answered in %s, before the server bound UDP 1s after TCP: the probe did not wait for it", took)
	}
	if strings.Contains(logs.String(), "instead of listening") {
		t.Errorf("the listening probe fell back under rootless Podman:\n%s", logs.String())
	}

	deadline := time.Now().Add(30 * time.Second)
	state := ""
	for ; time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		state = rl.podman.podman(t, "inspect", "--format", "{{.State.Status}}", name)
		if state == "paused" || state == "exited" {
			break
		}
	}
	switch {
	case state == "paused":
		t.Logf("FIGURE rootless: --idle-action pause paused the container")
	case state == "exited" && strings.Contains(logs.String(), "pausing container; stopping it instead"):
		t.Logf("FIGURE rootless: pause not possible here (cgroups v1); stopped instead, and the log says why")
	default:
		t.Fatalf("container %s is %q 30s after the last datagram; want paused, or exited with the reason logged\n%s", name, state, logs.String())
	}
	took, err = echo()
	if err != nil {
		t.Fatalf("a datagram after the idle %s: %v; want its echo", state, err)
	}
	t.Logf("FIGURE rootless: woken from %s in %s", state, took.Round(time.Millisecond))
}
