package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// The proof under real systemd: scripts/machine.sh boots a Debian rootfs
// (debootstrapped once, cached in build/machine) with systemd as PID 1 in
// systemd-nspawn, sharing the host's network, with the built lazypod and
// the private Podman's socket bound in (the machine's podman.socket
// forwards to it). The test installs the units lazypod generates there and
// watches them from outside.

// machine is one booted scripts/machine.sh machine.
type machine struct {
	script, dir, name string
	leader            int      // the machine's PID 1, as the host sees it
	stopped           bool     // stop was called
	env               []string // for scripts/machine.sh, on top of the test's
}

// needMachine skips the test (fails it under LAZYPOD_TEST_REQUIRE=1) when
// a machine cannot be booted here, builds or reuses the cached rootfs and
// boots a machine with e's binary (none if e.bin is empty) and Podman, and
// the host directories shared bound at the same path. The machine is
// stopped when the test ends.
func needMachine(t *testing.T, e e2eEnv, name string, shared ...string) *machine {
	t.Helper()
	skip := func(msg string) {
		t.Helper()
		if os.Getenv("LAZYPOD_TEST_REQUIRE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if os.Geteuid() != 0 {
		skip("booting systemd in systemd-nspawn needs root")
	}
	for _, tool := range []struct{ bin, pkg string }{
		{"systemd-nspawn", "systemd-container"}, {"debootstrap", "debootstrap"}, {"nsenter", "util-linux"},
	} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			skip(fmt.Sprintf("%s not found: install the Debian package %s (scripts/deps.sh does)", tool.bin, tool.pkg))
		}
	}
	sock, ok := strings.CutPrefix(e.podmanURL, "unix://")
	if !ok {
		skip(fmt.Sprintf("LAZYPOD_TEST_PODMAN=%s is not a unix socket: the machine needs one to bind in", e.podmanURL))
	}
	script, err := filepath.Abs("../../scripts/machine.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("../../build/machine")
	if err != nil {
		t.Fatal(err)
	}
	bin := "-" // scripts/machine.sh's "none"
	if e.bin != "" {
		if bin, err = filepath.Abs(e.bin); err != nil {
			t.Fatal(err)
		}
	}
	m := &machine{script: script, dir: dir, name: name}
	if len(shared) > 0 {
		m.env = []string{"MACHINE_SHARE=" + strings.Join(shared, " ")}
	}

	start := time.Now()
	if out, err := m.runScript(10*time.Minute, "rootfs", dir); err != nil {
		t.Fatalf("building the machine's rootfs: %v\n%s", err, out)
	} else if out != "" {
		t.Logf("%s(%s)", out, time.Since(start).Round(time.Millisecond))
	}
	start = time.Now()
	out, err := m.runScript(2*time.Minute, "boot", dir, name, sock, bin)
	// Registered before the check: a boot that timed out may leave a half-up machine.
	t.Cleanup(func() { m.stop(t) })
	if err != nil {
		t.Fatalf("booting machine %s: %v\n%s", name, err, out)
	}
	t.Logf("%s(boot took %s)", out, time.Since(start).Round(time.Millisecond))
	b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	if m.leader, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		t.Fatalf("reading the machine's PID 1: %v", err)
	}
	return m
}

// runScript runs scripts/machine.sh with args and returns its output.
func (m *machine) runScript(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.script, args...)
	cmd.Env = append(os.Environ(), m.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// exec runs a command inside the machine and returns its output, trimmed.
func (m *machine) exec(args ...string) (string, error) {
	out, err := m.runScript(90*time.Second, append([]string{"exec", m.dir, m.name}, args...)...)
	return strings.TrimSpace(out), err
}

// run runs a command inside the machine and fails the test if it fails.
func (m *machine) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := m.exec(args...)
	if err != nil {
		t.Fatalf("in the machine, %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// writeFile writes content to path inside the machine.
func (m *machine) writeFile(t *testing.T, path string, content []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.script, "exec", m.dir, m.name, "sh", "-c", `cat >"$1"`, "sh", path)
	cmd.Stdin = bytes.NewReader(content)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("writing %s in the machine: %v\n%s", path, err, out)
	}
}

// state returns what `systemctl is-active` says of a unit: active,
// inactive, failed, activating...
func (m *machine) state(unit string) string {
	out, _ := m.exec("systemctl", "is-active", unit) // exits non-zero unless active
	return out
}

// lazypodPIDs returns the lazypod processes running in the machine, found
// from outside: the host's processes named lazypod in the machine's PID
// namespace.
func (m *machine) lazypodPIDs(t *testing.T) []int {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", m.leader))
	if err != nil {
		t.Fatalf("reading the machine's PID namespace: %v", err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != "lazypod" {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err == nil && l == ns {
			pids = append(pids, pid)
		}
	}
	return pids
}

// journal returns the machine's journal of the units.
func (m *machine) journal(units ...string) string {
	args := []string{"journalctl", "--no-pager", "-o", "short-monotonic"}
	for _, u := range units {
		args = append(args, "-u", u)
	}
	out, err := m.exec(args...)
	if err != nil {
		return fmt.Sprintf("journalctl: %v\n%s", err, out)
	}
	return out
}

// stop powers the machine off; safe to repeat. It returns how long the
// power-off took.
func (m *machine) stop(t *testing.T) time.Duration {
	t.Helper()
	m.stopped = true
	start := time.Now()
	if out, err := m.runScript(3*time.Minute, "stop", m.dir, m.name); err != nil {
		t.Errorf("stopping machine %s: %v\n%s", m.name, err, out)
	} else if out != "" {
		t.Log(out)
	}
	return time.Since(start)
}

// runningContainers returns the names of the running containers called name.
func runningContainers(t *testing.T, e e2eEnv, name string) string {
	t.Helper()
	return e.podman(t, "ps", "--filter", "name=^"+name+"$", "--format", "{{.Names}}")
}

// TestUnderSystemd generates the units of a definition file with
// AutoUpdate=local and runs them under real systemd: the socket listens
// with no lazypod and no container running; the first connection starts
// both and is answered by the image's v1; systemctl status shows lazypod's
// STATUS line; after the idle timeout the container is stopped, the service
// inactive (not failed) and the socket still listening; the update service
// succeeds after v2 is tagged, and the next connection starts the service
// again and is answered by v2; lazypod units install --now and remove,
// run inside the machine, enable and start a socket over D-Bus and take it
// away; the generator turns a file in /etc/containers/systemd into units
// at daemon-reload; powering the machine off stops the container.
func TestUnderSystemd(t *testing.T) {
	e := needE2E(t)
	name := uniqueName(t)
	image := "localhost/lazypod-svc-" + name + ":latest"
	pin := name + ".lazypod-pin"
	// Registered first, so it runs last: after the machine is stopped.
	t.Cleanup(func() {
		for _, args := range [][]string{
			{"rm", "--force", "--ignore", "--time", "0", "systemd-" + name, pin},
			{"rmi", "--ignore", image, "localhost/lazypod-pin/" + name + ":previous"},
		} {
			cmd := exec.Command("podman", append([]string{"--remote", "--url", e.podmanURL}, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("cleaning up: podman %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})
	e.podman(t, "tag", "localhost/lazypod-testserver:v1", image)

	port := freePorts(t, 1)[0]
	def := filepath.Join(t.TempDir(), name+".lazypod")
	err := os.WriteFile(def, fmt.Appendf(nil, `# The test's service: see TestUnderSystemd.
[Container]
Image=%s
PublishPort=127.0.0.1:%d:8080
AutoUpdate=local

[Lazypod]
IdleTimeout=3s

# The proxy's supervisor pings the watchdog every 1s: a missed ping fails
# the service, which the idle stop below would see.
[Service]
WatchdogSec=2s
`, image, port), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	unitDir := t.TempDir()
	out, err := exec.Command(e.bin, "units", "generate", "--output", unitDir, "--bin", "/usr/local/bin/lazypod", def).CombinedOutput()
	if err != nil {
		t.Fatalf("lazypod units generate: %v\n%s", err, out)
	}
	want := []string{name + "-hold.socket", name + "-update.service", name + "-update.timer", name + ".service", name + ".socket"}
	entries, err := os.ReadDir(unitDir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	files := map[string][]byte{}
	for _, ent := range entries {
		got = append(got, ent.Name())
		if files[ent.Name()], err = os.ReadFile(filepath.Join(unitDir, ent.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("units generate wrote %q; want %q", got, want)
	}

	m := needMachine(t, e, name)
	// Registered after the machine's stop, so it runs before it.
	t.Cleanup(func() {
		if !t.Failed() || m.stopped {
			return
		}
		t.Logf("generated units:")
		for _, f := range want {
			t.Logf("--- %s\n%s", f, files[f])
		}
		t.Logf("the machine's journal:\n%s", m.journal(name+".socket", name+".service", name+"-update.service", "podman.service"))
		// Stopping the service before the machine leaves Podman's API up for its stop.
		m.exec("systemctl", "stop", name+".socket", name+".service")
	})

	var paths []string
	for _, f := range want {
		p := "/etc/systemd/system/" + f
		m.writeFile(t, p, files[f])
		paths = append(paths, p)
	}
	if out := m.run(t, append([]string{"systemd-analyze", "verify"}, paths...)...); out != "" {
		t.Errorf("systemd-analyze verify %s: not clean:\n%s", strings.Join(want, " "), out)
	}
	m.run(t, "systemctl", "daemon-reload")
	m.run(t, "systemctl", "enable", "--now", name+".socket")

	// Idle: the socket listens; nothing else runs.
	waitListening(t, port)
	if s := m.state(name + ".socket"); s != "active" {
		t.Fatalf("%s.socket is %q after enable --now; want active", name, s)
	}
	if s := m.state(name + ".service"); s != "inactive" {
		t.Fatalf("%s.service is %q before any connection; want inactive", name, s)
	}
	if pids := m.lazypodPIDs(t); len(pids) > 0 {
		t.Fatalf("lazypod runs in the machine (pids %v) before any connection", pids)
	}
	if c := runningContainers(t, e, "systemd-"+name); c != "" {
		t.Fatalf("container %s runs before any connection", c)
	}

	// First activation.
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if body, err := httpGet(t, url); err != nil || body != "v1\n" {
		t.Fatalf("first request: %q, %v; want %q", body, err, "v1\n")
	}
	if s := m.state(name + ".service"); s != "active" {
		t.Fatalf("%s.service is %q after the first request; want active", name, s)
	}
	if len(m.lazypodPIDs(t)) == 0 {
		t.Fatal("no lazypod process in the machine after the first request")
	}
	if c := runningContainers(t, e, "systemd-"+name); c != "systemd-"+name {
		t.Fatalf("running containers named %s: %q after the first request; want it running", name, c)
	}
	status, _ := m.exec("systemctl", "status", "--no-pager", name+".service") // exit 0: active
	statusLine := ""
	for line := range strings.Lines(status) {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "Status: "); ok {
			statusLine = s
		}
	}
	if !strings.Contains(statusLine, "ready") {
		t.Errorf("systemctl status %s.service shows no STATUS line saying ready:\n%s", name, status)
	} else {
		t.Logf("systemctl status: Status: %s", statusLine)
	}

	// The idle timeout stops the container and lazypod; the socket stays.
	deadline := time.Now().Add(60 * time.Second)
	for s := m.state(name + ".service"); s != "inactive"; s = m.state(name + ".service") {
		if s == "failed" {
			t.Fatalf("%s.service failed after going idle; want inactive", name)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s.service still %q 60s after the last request (IdleTimeout=3s); want inactive", name, s)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if c := runningContainers(t, e, "systemd-"+name); c != "" {
		t.Fatalf("container %s still runs after the idle stop", c)
	}
	if pids := m.lazypodPIDs(t); len(pids) > 0 {
		t.Fatalf("lazypod still runs in the machine (pids %v) with its service inactive", pids)
	}
	if s := m.state(name + ".socket"); s != "active" {
		t.Fatalf("%s.socket is %q after the idle stop; want active", name, s)
	}
	waitListening(t, port)

	// An update: v2 under the service's tag; the update service pulls it
	// in for the next start.
	e.podman(t, "tag", "localhost/lazypod-testserver:v2", image)
	if out, err := m.exec("systemctl", "start", name+"-update.service"); err != nil {
		t.Fatalf("systemctl start %s-update.service: %v\n%s\n%s", name, err, out, m.journal(name+"-update.service"))
	}
	if testing.Verbose() {
		t.Logf("update:\n%s", m.journal(name+"-update.service"))
	}

	// Second activation, with the new image.
	if body, err := httpGet(t, url); err != nil || body != "v2\n" {
		t.Fatalf("request after the update: %q, %v; want %q", body, err, "v2\n")
	}
	if s := m.state(name + ".service"); s != "active" {
		t.Fatalf("%s.service is %q after the second activation; want active", name, s)
	}

	// lazypod units install --now and remove, run inside the machine,
	// talk to its systemd over D-Bus: a second service's socket is
	// enabled and listening after install, and gone after remove.
	port2 := freePorts(t, 1)[0]
	def2 := fmt.Sprintf("[Container]\nImage=%s\nPublishPort=127.0.0.1:%d:8080\n", image, port2)
	m.writeFile(t, "/root/"+name+"-b.lazypod", []byte(def2))
	if out, err := m.exec("lazypod", "units", "install", "--now", "/root/"+name+"-b.lazypod"); err != nil {
		t.Fatalf("lazypod units install --now in the machine: %v\n%s", err, out)
	}
	if s := m.state(name + "-b.socket"); s != "active" {
		t.Fatalf("%s-b.socket is %q after units install --now; want active", name, s)
	}
	if out, _ := m.exec("systemctl", "is-enabled", name+"-b.socket"); strings.TrimSpace(out) != "enabled" {
		t.Errorf("%s-b.socket is %q after units install --now; want enabled", name, strings.TrimSpace(out))
	}
	waitListening(t, port2)
	// A request makes the container; remove takes it away too, and says
	// that the state file stays.
	if body, err := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port2)); err != nil || body != "v2\n" {
		t.Fatalf("request to the installed service: %q, %v; want %q", body, err, "v2\n")
	}
	// The state is recorded after the first response.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := m.exec("test", "-e", "/var/lib/lazypod/"+name+"-b.json"); err == nil {
			break
		}
	}
	removed, err := m.exec("lazypod", "units", "remove", name+"-b")
	if err != nil {
		t.Fatalf("lazypod units remove in the machine: %v\n%s", err, removed)
	}
	for _, want := range []string{"removed container systemd-" + name + "-b", "kept /var/lib/lazypod/" + name + "-b.json"} {
		if !strings.Contains(removed, want) {
			t.Errorf("units remove said %q; want it to say %q", removed, want)
		}
	}
	if left := e.podman(t, "ps", "-a", "--filter", "name=^systemd-"+name+"-b$", "--format", "{{.Names}}"); left != "" {
		t.Errorf("container %s left behind by units remove", left)
	}
	if out, err := m.exec("test", "-e", "/etc/systemd/system/"+name+"-b.socket"); err == nil {
		t.Errorf("%s-b.socket still in /etc/systemd/system after units remove %s", name, out)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port2), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still listening after units remove", port2)
	}

	// The generator: a definition dropped into /etc/containers/systemd
	// becomes units at daemon-reload, and its socket activates the
	// service.
	port3 := freePorts(t, 1)[0]
	def3 := fmt.Sprintf("[Container]\nImage=%s\nPublishPort=127.0.0.1:%d:8080\n[Lazypod]\nIdleTimeout=1s\n", image, port3)
	m.run(t, "mkdir", "-p", "/etc/containers/systemd", "/usr/lib/systemd/system-generators")
	m.writeFile(t, "/etc/containers/systemd/"+name+"-g.lazypod", []byte(def3))
	m.run(t, "ln", "-sf", "/usr/local/bin/lazypod", "/usr/lib/systemd/system-generators/lazypod-generator")
	m.run(t, "systemctl", "daemon-reload")
	m.run(t, "systemctl", "start", name+"-g.socket")
	if body, err := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port3)); err != nil || body != "v2\n" {
		t.Fatalf("request to the generator's service: %q, %v; want %q", body, err, "v2\n")
	}
	t.Cleanup(func() {
		exec.Command("podman", "--remote", "--url", e.podmanURL, "rm", "-f", "-t", "0", "systemd-"+name+"-g").Run()
	})
	m.run(t, "systemctl", "stop", name+"-g.socket", name+"-g.service")

	// Powering off with the service active: systemd stops the service, so
	// lazypod stops its container, before Podman's API goes away.
	took := m.stop(t)
	if c := runningContainers(t, e, "systemd-"+name); c != "" {
		t.Errorf("container %s still runs after the machine powered off (took %s): "+
			"%s.service must stop before podman.service (After=podman.service)", c, took.Round(time.Millisecond), name)
	} else if took > 20*time.Second {
		t.Errorf("powering the machine off took %s; want a few seconds", took.Round(time.Millisecond))
	}
}

// TestActivationStorm activates a socket unit again and again under real
// systemd, each connection arriving as soon as the last activation has
// exited on idle, with an IdleTimeout= below lazypod's floor: systemd's
// default start limit (5 starts in 10 s) would fail the service and its
// socket if lazypod exited that soon. The socket must still be listening,
// the service never failed, and every connection answered. 20 s in make
// test; 2 minutes with LAZYPOD_SOAK=1.
func TestActivationStorm(t *testing.T) {
	e := needE2E(t)
	name := uniqueName(t)
	t.Cleanup(func() {
		exec.Command("podman", "--remote", "--url", e.podmanURL, "rm", "-f", "-t", "0", "systemd-"+name).Run()
	})
	port := freePorts(t, 1)[0]
	def := filepath.Join(t.TempDir(), name+".lazypod")
	body := fmt.Sprintf("[Container]\nImage=%s\nPublishPort=127.0.0.1:%d:8080\n[Lazypod]\nIdleTimeout=100ms\nStopTimeout=1s\n", e.image, port)
	if err := os.WriteFile(def, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	unitDir := t.TempDir()
	if out, err := exec.Command(e.bin, "units", "generate", "--output", unitDir, "--bin", "/usr/local/bin/lazypod", def).CombinedOutput(); err != nil {
		t.Fatalf("lazypod units generate: %v\n%s", err, out)
	}
	m := needMachine(t, e, name)
	for _, f := range []string{name + ".socket", name + ".service"} {
		b, err := os.ReadFile(filepath.Join(unitDir, f))
		if err != nil {
			t.Fatal(err)
		}
		m.writeFile(t, "/etc/systemd/system/"+f, b)
	}
	m.run(t, "systemctl", "daemon-reload")
	m.run(t, "systemctl", "start", name+".socket")
	waitListening(t, port)

	window := 20 * time.Second
	if os.Getenv("LAZYPOD_SOAK") == "1" {
		window = 2 * time.Minute
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	activations, answered := 0, 0
	var shortest time.Duration
	began := time.Now()
	for time.Since(began) < window {
		activations++
		start := time.Now()
		if _, err := httpGet(t, url); err == nil {
			answered++
		} else {
			t.Errorf("activation %d: %v", activations, err)
		}
		// Wait for the idle exit, then connect again at once.
		for deadline := time.Now().Add(30 * time.Second); m.state(name+".service") != "inactive"; time.Sleep(20 * time.Millisecond) {
			if s := m.state(name + ".service"); s == "failed" || time.Now().After(deadline) {
				t.Fatalf("activation %d: %s.service is %q; want it back to inactive\n%s", activations, name, s, m.journal(name+".service", name+".socket"))
			}
		}
		if d := time.Since(start); shortest == 0 || d < shortest {
			shortest = d
		}
	}
	sock := m.state(name + ".socket")
	figure(t, "activation-storm", fmt.Sprintf("%d activations in %s, %d answered, shortest activation %s, socket %s",
		activations, window, answered, shortest.Round(time.Millisecond), sock), "IdleTimeout=100ms raised to the 2s floor")
	if sock != "active" {
		t.Fatalf("%s.socket is %q after the storm; want active\n%s", name, sock, m.journal(name+".service", name+".socket"))
	}
	if answered != activations {
		t.Fatalf("%d of %d activations answered", answered, activations)
	}
}

// TestQuadletUnderSystemd runs a Quadlet-style definition through the
// generator under real systemd: a health command in shell syntax (which
// Podman runs with /bin/sh -c), Notify=healthy, and a specifier in a path
// (EnvironmentFile=%h/...). The container gets the health check itself
// (podman healthcheck run passes). Then an update to an image that
// listens but fails its health check: the clients waiting through the
// trial are all answered by the previous image, rolled back once the
// check has failed HealthRetries times after HealthStartPeriod, well
// before ReadyTimeout=60s, and the failed image is remembered.
func TestQuadletUnderSystemd(t *testing.T) {
	e := needE2E(t)
	name := uniqueName(t)
	image := "localhost/lazypod-quadlet-" + name + ":latest"
	ctr := "systemd-" + name
	t.Cleanup(func() {
		exec.Command("podman", "--remote", "--url", e.podmanURL, "rm", "-f", "-t", "0", ctr, name+".lazypod-pin").Run()
		exec.Command("podman", "--remote", "--url", e.podmanURL, "rmi", "-i", image, "localhost/lazypod-pin/"+name+":previous").Run()
	})
	e.podman(t, "tag", "localhost/lazypod-testserver:v1", image)
	const (
		startPeriod = time.Second
		retries     = 2
		interval    = time.Second
	)
	port := freePorts(t, 1)[0]
	def := fmt.Sprintf(`# Copied from a Quadlet directory, a port added.
[Container]
Image=%s
PublishPort=127.0.0.1:%d:8080
AutoUpdate=local
HealthCmd=/testserver -check || exit 1
HealthInterval=%s
HealthRetries=%d
HealthStartPeriod=%s
Notify=healthy
EnvironmentFile=%%h/%s.env

[Lazypod]
IdleTimeout=2s
ReadyTimeout=60s
`, image, port, interval, retries, startPeriod, name)

	m := needMachine(t, e, name)
	t.Cleanup(func() {
		if t.Failed() && !m.stopped {
			t.Logf("the machine's journal:\n%s", m.journal(name+".socket", name+".service", name+"-update.service"))
			m.exec("systemctl", "stop", name+".socket", name+".service")
		}
	})
	m.writeFile(t, "/root/"+name+".env", []byte("GREETING=from-home\n"))
	m.run(t, "mkdir", "-p", "/etc/containers/systemd", "/usr/lib/systemd/system-generators")
	m.writeFile(t, "/etc/containers/systemd/"+name+".lazypod", []byte(def))
	m.run(t, "ln", "-sf", "/usr/local/bin/lazypod", "/usr/lib/systemd/system-generators/lazypod-generator")
	m.run(t, "systemctl", "daemon-reload")
	// The generator wants the socket from sockets.target, which a boot
	// starts; after a reload it is started by hand.
	m.run(t, "systemctl", "start", name+".socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	start := time.Now()
	wantAll(t, "first activation", getAll(t, url, 1), "v1")
	cold := time.Since(start)

	// The container has Podman's health check, run by /bin/sh -c, and
	// the environment file's variable from /root.
	hc := e.podman(t, "inspect", "--format", "{{json .Config.Healthcheck.Test}}", ctr)
	if hc != `["CMD-SHELL","/testserver -check || exit 1"]` {
		t.Errorf("the container's health check is %s; want the shell form", hc)
	}
	if out, err := exec.Command("podman", "--remote", "--url", e.podmanURL, "healthcheck", "run", ctr).CombinedOutput(); err != nil {
		t.Errorf("podman healthcheck run %s: %v\n%s", ctr, err, out)
	}
	if env := e.podman(t, "inspect", "--format", "{{json .Config.Env}}", ctr); !strings.Contains(env, `"GREETING=from-home"`) {
		t.Errorf("the container's environment %s lacks GREETING from %%h/%s.env", env, name)
	}
	for s := m.state(name + ".service"); s != "inactive"; s = m.state(name + ".service") {
		if time.Since(start) > time.Minute {
			t.Fatalf("%s.service still %q a minute after the request (IdleTimeout=2s)", name, s)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// An update that listens but fails its health check.
	e.podman(t, "tag", "localhost/lazypod-testserver:v7", image)
	bad := e.imageID(t, image)
	m.run(t, "systemctl", "start", name+"-update.service")
	start = time.Now()
	wantAll(t, "activation trying the unhealthy image", getAll(t, url, 8), "v1")
	took := time.Since(start)
	// The trial: a start, HealthStartPeriod, HealthRetries failures
	// HealthInterval apart; then the stop and the previous image's start.
	bound := startPeriod + retries*interval + 3*cold + 5*time.Second
	t.Logf("rolled back and answered in %s (first cold start %s; bound %s; ReadyTimeout 60s)",
		took.Round(time.Millisecond), cold.Round(time.Millisecond), bound)
	if took > bound {
		t.Errorf("clients answered %s after the unhealthy image's trial began; want within %s", took.Round(time.Millisecond), bound)
	}
	out := m.run(t, "lazypod", "status", "--format", "json", name)
	if !strings.Contains(out, `"last_update_result": "rolled back"`) || !strings.Contains(out, `"container": "`+ctr+`"`) {
		t.Errorf("lazypod status after the rollback:\n%s\nwant rolled back, container %s", out, ctr)
	}
	// The unhealthy image is remembered: not tried again.
	if out := m.run(t, "lazypod", "update", "--format", "json", name); !strings.Contains(out, `"updated": "failed"`) {
		t.Errorf("lazypod update with the unhealthy image %s still tagged:\n%s\nwant failed", spec.ShortID(bad), out)
	}
}
