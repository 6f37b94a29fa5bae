package launcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Integration tests run against a real Podman API service that the test
// harness starts privately, with the test server image built from
// testdata/testserver:
//
//	LAZYPOD_TEST_PODMAN   the service's URL, e.g. unix:///tmp/x/podman.sock
//	LAZYPOD_TEST_IMAGE    the image; if unset, localhost/lazypod-testserver:latest
//	LAZYPOD_TEST_REQUIRE  if 1, a missing LAZYPOD_TEST_PODMAN fails instead of skipping

// integrationRuntime connects to the test Podman service, or skips.
func integrationRuntime(t *testing.T) (*Podman, string) {
	t.Helper()
	url := os.Getenv("LAZYPOD_TEST_PODMAN")
	if url == "" {
		if os.Getenv("LAZYPOD_TEST_REQUIRE") == "1" {
			t.Fatal("LAZYPOD_TEST_PODMAN is unset but LAZYPOD_TEST_REQUIRE=1: start a private Podman service and export its URL")
		}
		t.Skip("integration test: LAZYPOD_TEST_PODMAN is unset (set it to a private Podman API service URL)")
	}
	image := os.Getenv("LAZYPOD_TEST_IMAGE")
	if image == "" {
		image = "localhost/lazypod-testserver:latest"
	}
	p, err := NewPodman(t.Context(), url)
	if err != nil {
		t.Fatalf("NewPodman: %v", err)
	}
	return p, image
}

var unsafeNameChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// uniqueName returns a container name for this test, and removes that
// container when the test ends.
func uniqueName(t *testing.T, p *Podman) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	name := "lztest-" + strings.ToLower(unsafeNameChars.ReplaceAllString(t.Name(), "-")) + "-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Remove(ctx, name, time.Second); err != nil {
			t.Errorf("removing container %s: %v", name, err)
		}
	})
	return name
}

// integrationConfig returns a config for the test server image publishing
// its http (route "http"), tcp ("tcp") and udp ("udp") ports.
func integrationConfig(t *testing.T) Config {
	t.Helper()
	p, image := integrationRuntime(t)
	return Config{
		Name:  uniqueName(t, p),
		Image: image,
		Ports: []Port{
			{Route: "http", Port: 8080},
			{Route: "tcp", Port: 9000},
			{Route: "udp", Port: 9000, Proto: ProtoUDP},
		},
		ReadyTimeout: 30 * time.Second,
		StopTimeout:  2 * time.Second,
		Runtime:      p,
		Logger:       slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// get fetches path from the launcher's http route.
func get(t *testing.T, l *Launcher, path string) (string, error) {
	t.Helper()
	addr, err := l.Addr("http")
	if err != nil {
		return "", err
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(b), err
}

func TestIntegrationFirstStart(t *testing.T) {
	cfg := integrationConfig(t)
	cfg.Env = []string{"VERSION=v7"}
	cfg.Labels = map[string]string{"test": "first-start"}
	l := runLauncher(t, cfg)
	if got := l.State(); got != StateStopped {
		t.Fatalf("state before Start: got %s; want %s", got, StateStopped)
	}
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("cold start (create + start + tcp probe): %s", l.LastColdStart())
	if got := l.State(); got != StateReady {
		t.Errorf("state: got %s; want %s", got, StateReady)
	}
	body, err := get(t, l, "/")
	if err != nil || body != "v7\n" {
		t.Errorf("GET /: got %q, %v; want %q", body, err, "v7\n")
	}
	addr, err := l.Addr("http")
	if err != nil || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("Addr(http): got %q, %v; want 127.0.0.1:PORT", addr, err)
	}
	info, ok, err := cfg.Runtime.Inspect(t.Context(), cfg.Name)
	if err != nil || !ok {
		t.Fatalf("Inspect: got ok %v, %v", ok, err)
	}
	for k, want := range map[string]string{LabelService: cfg.Name, "test": "first-start", LabelHash: l.spec.Labels[LabelHash]} {
		if got := info.Labels[k]; got != want {
			t.Errorf("label %s: got %q; want %q", k, got, want)
		}
	}
}

func TestIntegrationProbes(t *testing.T) {
	tests := []struct {
		probe string
		env   []string
	}{
		{probe: "tcp"},
		{probe: "http:/healthz"},
		{probe: "exec:/testserver -check"},
		{probe: "healthcheck"},
		{probe: "notify", env: []string{"NOTIFY=1"}},
		{probe: "none"},
	}
	for _, tt := range tests {
		t.Run(tt.probe, func(t *testing.T) {
			cfg := integrationConfig(t)
			p, err := ParseProbe(tt.probe)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Ready = p
			cfg.Env = tt.env
			if p.Kind == ProbeNotify {
				dir, err := os.MkdirTemp("", "lz") // short: socket paths are limited
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(dir) })
				cfg.RuntimeDir = dir
			}
			l := runLauncher(t, cfg)
			if err := l.Start(t.Context()); err != nil {
				t.Fatalf("Start: %v", err)
			}
			t.Logf("cold start with probe %s: %s", p, l.LastColdStart())
			// Every probe but none means the server answers now.
			deadline := time.Now()
			if p.Kind == ProbeNone {
				deadline = deadline.Add(10 * time.Second)
			}
			for {
				body, err := get(t, l, "/healthz")
				if err == nil && body == "ok" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("GET /healthz after Start with probe %s: got %q, %v; want ok", p, body, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func TestIntegrationListenDelay(t *testing.T) {
	cfg := integrationConfig(t)
	cfg.Env = []string{"LISTEN_DELAY=2s"}
	l := runLauncher(t, cfg)
	began := time.Now()
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if took := time.Since(began); took < 2*time.Second {
		t.Errorf("Start took %s; want at least the 2s listen delay", took)
	}
	if body, err := get(t, l, "/"); err != nil || body != "v1\n" {
		t.Errorf("GET /: got %q, %v; want %q", body, err, "v1\n")
	}
}

func TestIntegrationExitAtStart(t *testing.T) {
	cfg := integrationConfig(t)
	cfg.Env = []string{"EXIT_AT_START=7"}
	l := runLauncher(t, cfg)
	began := time.Now()
	err := l.Start(t.Context())
	if !errors.Is(err, ErrExited) {
		t.Fatalf("Start: got %v; want ErrExited", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("Start took %s; want the exit noticed at once", took)
	}
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Start: got %T; want an *ExitError in the chain", err)
	}
	if ee.Code != 7 {
		t.Errorf("exit code: got %d; want 7", ee.Code)
	}
	if !contains(ee.Logs, "exiting at start with 7") {
		t.Errorf("log lines: got %q; want %q among them", ee.Logs, "exiting at start with 7")
	}
	if got := l.State(); got != StateStopped {
		t.Errorf("state: got %s; want %s", got, StateStopped)
	}
	t.Logf("error: %v", err)
}

func TestIntegrationNeverListens(t *testing.T) {
	cfg := integrationConfig(t)
	cfg.Env = []string{"NEVER_LISTEN=1"}
	cfg.ReadyTimeout = 2 * time.Second
	l := runLauncher(t, cfg)
	err := l.Start(t.Context())
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("Start: got %v; want ErrNotReady", err)
	}
	t.Logf("error: %v", err)
	info, ok, ierr := cfg.Runtime.Inspect(t.Context(), cfg.Name)
	if ierr != nil || !ok {
		t.Fatalf("Inspect: got ok %v, %v", ok, ierr)
	}
	if info.Running {
		t.Errorf("container left running after the probe timed out")
	}
}

func TestIntegrationSettingsChangeRecreates(t *testing.T) {
	cfg := integrationConfig(t)
	cfg.Env = []string{"VERSION=v1"}
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	first, _, _ := cfg.Runtime.Inspect(t.Context(), cfg.Name)

	// The same settings reuse the container, running or not.
	l2 := runLauncher(t, cfg)
	if err := l2.Start(t.Context()); err != nil {
		t.Fatalf("Start with the same settings: %v", err)
	}
	same, _, _ := cfg.Runtime.Inspect(t.Context(), cfg.Name)
	if same.ID != first.ID {
		t.Errorf("container ID with the same settings: got %s; want %s", same.ID, first.ID)
	}
	if err := l2.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	cfg.Env = []string{"VERSION=v2"}
	l3 := runLauncher(t, cfg)
	if err := l3.Start(t.Context()); err != nil {
		t.Fatalf("Start with new env: %v", err)
	}
	second, _, _ := cfg.Runtime.Inspect(t.Context(), cfg.Name)
	if second.ID == first.ID {
		t.Errorf("container ID after changing env: got the same %s; want a new container", first.ID)
	}
	if body, err := get(t, l3, "/"); err != nil || body != "v2\n" {
		t.Errorf("GET /: got %q, %v; want %q", body, err, "v2\n")
	}
}

func TestIntegrationStopThenStart(t *testing.T) {
	cfg := integrationConfig(t)
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	cold := l.LastColdStart()
	if err := l.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got := l.State(); got != StateStopped {
		t.Errorf("state after Stop: got %s; want %s", got, StateStopped)
	}
	info, _, _ := cfg.Runtime.Inspect(t.Context(), cfg.Name)
	if info.Running {
		t.Errorf("container running after Stop")
	}
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	t.Logf("first start %s, restart of the kept container %s", cold, l.LastColdStart())
	if body, err := get(t, l, "/"); err != nil || body != "v1\n" {
		t.Errorf("GET / after restart: got %q, %v; want %q", body, err, "v1\n")
	}
}

func TestIntegrationExitWatcher(t *testing.T) {
	cfg := integrationConfig(t)
	cfg.Env = []string{"CRASH_AFTER=1s"}
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for l.State() != StateStopped {
		if time.Now().After(deadline) {
			t.Fatalf("state 15s after a crash at 1s: got %s; want %s", l.State(), StateStopped)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The next Start starts it again (after a short crash-loop delay).
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start after the crash: %v", err)
	}
	if body, err := get(t, l, "/"); err != nil || body != "v1\n" {
		t.Errorf("GET / after restart: got %q, %v; want %q", body, err, "v1\n")
	}
}

func TestIntegrationMissingImage(t *testing.T) {
	cfg := integrationConfig(t)
	cfg.Image = "localhost/lazypod-does-not-exist:latest"
	l := runLauncher(t, cfg)
	err := l.Start(t.Context())
	if !errors.Is(err, ErrImageNotFound) {
		t.Fatalf("Start: got %v; want ErrImageNotFound", err)
	}
	t.Logf("error: %v", err)
}

// TestIntegrationTestServer checks the test server's tcp and udp echo
// through the published ports, which the proxy's tests rely on.
func TestIntegrationTestServer(t *testing.T) {
	cfg := integrationConfig(t)
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}

	t.Run("tcp echo with half-close", func(t *testing.T) {
		addr, err := l.Addr("tcp")
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "hello" {
			t.Errorf("echo: got %q, %v; want %q then EOF", got, err, "hello")
		}
	})

	t.Run("udp echo", func(t *testing.T) {
		addr, err := l.Addr("udp")
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 64)
		for i := range 20 { // udp may drop a datagram
			c.Write([]byte("ping"))
			c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
			n, err := c.Read(buf)
			if err == nil {
				if got := string(buf[:n]); got != "ping" {
					t.Errorf("echo: got %q; want ping", got)
				}
				return
			}
			t.Logf("attempt %d: %v", i+1, err)
		}
		t.Errorf("no udp echo after 20 attempts")
	})

	t.Run("http bytes and echo", func(t *testing.T) {
		body, err := get(t, l, "/bytes?n=100000")
		if err != nil || len(body) != 100000 {
			t.Errorf("GET /bytes?n=100000: got %d bytes, %v; want 100000", len(body), err)
		}
		addr, _ := l.Addr("http")
		resp, err := http.Post("http://"+addr+"/echo", "text/plain", strings.NewReader("round trip"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "round trip" {
			t.Errorf("POST /echo: got %q; want %q", b, "round trip")
		}
	})
}

func TestIntegrationNotOurs(t *testing.T) {
	cfg := integrationConfig(t)
	other, err := cfg.Runtime.Create(t.Context(), ContainerSpec{Name: cfg.Name, Image: cfg.Image})
	if err != nil {
		t.Fatalf("creating someone else's container: %v", err)
	}
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); !errors.Is(err, ErrNotOurs) {
		t.Fatalf("Start: got %v; want ErrNotOurs", err)
	}
	info, ok, err := cfg.Runtime.Inspect(t.Context(), cfg.Name)
	if err != nil || !ok || info.ID != other {
		t.Errorf("the other container: got ID %q, ok %v, %v; want %q left alone", info.ID, ok, err, other)
	}
}

// TestIntegrationContainerSettings checks Podman accepts and applies every
// setting the launcher passes at create.
func TestIntegrationContainerSettings(t *testing.T) {
	cfg := integrationConfig(t)
	cfg.Command = []string{"-version", "from-command"}
	// One fixed named volume, reused by every run, rather than one left
	// behind per run.
	cfg.Volumes = []string{t.TempDir() + ":/host:ro", "lazypod-test-volume:/data"}
	cfg.Memory = 64 << 20
	cfg.CPUs = 0.5
	cfg.User = "65534:65534"
	// Network stays the service's default: the harness gives each private
	// Podman its own subnet, and naming "podman" here would undo that.
	cfg.Env = []string{"VERSION=from-env", "A=1"}
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if body, err := get(t, l, "/"); err != nil || body != "from-command\n" {
		t.Errorf("GET /: got %q, %v; want %q", body, err, "from-command\n")
	}
}

// startedContainer starts the test server through a launcher and returns
// the runtime and the container's ID.
func startedContainer(t *testing.T) (*Podman, *Launcher, string) {
	t.Helper()
	cfg := integrationConfig(t)
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	info, ok, err := cfg.Runtime.Inspect(t.Context(), cfg.Name)
	if err != nil || !ok {
		t.Fatalf("Inspect: got ok %v, %v", ok, err)
	}
	return cfg.Runtime.(*Podman), l, info.ID
}

func TestIntegrationExecHangEndsWithContext(t *testing.T) {
	p, _, id := startedContainer(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	began := time.Now()
	done := make(chan error, 1)
	go func() {
		_, _, err := p.Exec(ctx, id, []string{"/testserver", "-hang"})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Exec of a hanging command: got %v; want an error wrapping %v", err, context.DeadlineExceeded)
		}
		t.Logf("hanging exec ended %s after its start", time.Since(began))
	case <-time.After(15 * time.Second):
		t.Fatal("Exec of a hanging command: still running 14s after its ctx ended")
	}
	// The exec connection is still usable.
	code, out, err := p.Exec(t.Context(), id, []string{"/testserver", "-check"})
	if err != nil || code != 0 {
		t.Errorf("Exec after a hung one: got code %d, %v (output %q); want 0, nil", code, err, out)
	}
}

func TestIntegrationExecNoLeakNoRace(t *testing.T) {
	p, _, id := startedContainer(t)
	// Calls in flight on the shared connection, as the exit watcher's
	// are: the race detector catches an exec that changes that connection.
	wctx, cancel := context.WithCancel(t.Context())
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		for wctx.Err() == nil {
			p.Inspect(wctx, id) //nolint:errcheck
		}
	}()
	defer func() { cancel(); <-waited }()

	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("counting open files: %v", err)
		}
		return len(ents)
	}
	if _, _, err := p.Exec(t.Context(), id, []string{"/testserver", "-check"}); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	before := fds()
	for i := range 50 {
		code, out, err := p.Exec(t.Context(), id, []string{"/testserver", "-check"})
		if err != nil || code != 0 {
			t.Fatalf("Exec %d: got code %d, %v (output %q); want 0, nil", i, code, err, out)
		}
	}
	if after := fds(); after > before+5 {
		t.Errorf("open files after 50 execs: got %d; want about %d", after, before)
	}
	if n := p.exec.open(); n != 0 {
		t.Errorf("exec connections open between execs: got %d; want 0", n)
	}
}

func TestIntegrationStopEndsHangingExecProbe(t *testing.T) {
	cfg := integrationConfig(t)
	cfg.Ready = Probe{Kind: ProbeExec, Arg: "/testserver -hang"}
	l := runLauncher(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- l.Start(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for l.State() != StateStarting {
		if time.Now().After(deadline) {
			t.Fatalf("state: got %s; want %s", l.State(), StateStarting)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // into the first probe attempt, bounded at 5s
	began := time.Now()
	if err := l.Stop(t.Context()); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if took := time.Since(began); took > 4*time.Second {
		t.Errorf("Stop during a hanging exec probe: took %s; want well under the 5s probe attempt bound", took)
	}
	cancel()
	<-started
	// The launcher's Run, ended by the test's cleanup, must not hang
	// on the start its waiter may have begun again.
}

func TestIntegrationHostPortTakenRecreates(t *testing.T) {
	cfg := integrationConfig(t)
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	addr, err := l.Addr("tcp")
	if err != nil {
		t.Fatalf("Addr: %v", err)
	}
	first, _, _ := cfg.Runtime.Inspect(t.Context(), cfg.Name)
	if err := l.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// Something else takes the kept container's host port meanwhile.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("taking the host port %s: %v", addr, err)
	}
	defer ln.Close()
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start with its host port taken: %v", err)
	}
	second, _, _ := cfg.Runtime.Inspect(t.Context(), cfg.Name)
	if second.ID == first.ID {
		t.Errorf("container ID: got the same %s; want a new container", first.ID)
	}
	if body, err := get(t, l, "/"); err != nil || body != "v1\n" {
		t.Errorf("GET / after recreating: got %q, %v; want %q", body, err, "v1\n")
	}
}

// versionImages returns the IDs of localhost/lazypod-testserver:v1..v6,
// which scripts/build-images.sh builds, indexed by version number.
func versionImages(t *testing.T, p *Podman) map[int]string {
	t.Helper()
	ids := make(map[int]string)
	for v := 1; v <= 6; v++ {
		ref := fmt.Sprintf("localhost/lazypod-testserver:v%d", v)
		info, ok, err := p.Image(t.Context(), ref)
		if err != nil {
			t.Fatalf("Image(%s): %v", ref, err)
		}
		if !ok {
			t.Fatalf("image %s missing: build it with scripts/build-images.sh DIR testserver", ref)
		}
		if !slices.Contains(info.Names, ref) {
			t.Errorf("Image(%s): names %q lack it", ref, info.Names)
		}
		ids[v] = info.ID
	}
	return ids
}

// startAll starts l from n concurrent callers and fails the test unless
// all succeed.
func startAll(t *testing.T, l *Launcher, n int) {
	t.Helper()
	errs := make(chan error, n)
	for range n {
		go func() { errs <- l.Start(t.Context()) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Start: got %v; want nil", err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func TestIntegrationSwapAndRollback(t *testing.T) {
	cfg := integrationConfig(t)
	p := cfg.Runtime.(*Podman)
	ids := versionImages(t, p)
	cfg.Image = "localhost/lazypod-testserver:v1"
	cfg.ReadyTimeout = 3 * time.Second
	s := &fakeSwapper{t: t, choices: []Choice{
		{}, // the configured image, v1
		{Image: ids[2], Fallback: ids[1]},
		{Image: ids[3], Fallback: ids[2]}, // exits with 3 at start
		{Image: ids[4], Fallback: ids[2]}, // never listens
		{Image: ids[5], Fallback: ids[2]}, // crashes 1s after start
		{Image: ids[2]},
	}}
	cfg.Swapper = s
	l := runLauncher(t, cfg)

	steps := []struct {
		name       string
		want       string // the answer on "/"
		wantImage  string
		rolledBack bool
		failed     string
		reason     error
	}{
		{name: "configured image", want: "v1\n", wantImage: ids[1]},
		{name: "swap to v2", want: "v2\n", wantImage: ids[2]},
		{name: "v3 exits, back to v2", want: "v2\n", wantImage: ids[2], rolledBack: true, failed: ids[3], reason: ErrExited},
		{name: "v4 never ready, back to v2", want: "v2\n", wantImage: ids[2], rolledBack: true, failed: ids[4], reason: ErrNotReady},
	}
	for i, st := range steps {
		began := time.Now()
		startAll(t, l, 8)
		t.Logf("%s: ready in %s (cold start %s)", st.name, time.Since(began), l.LastColdStart())
		if body, err := get(t, l, "/"); err != nil || body != st.want {
			t.Errorf("%s: GET /: got %q, %v; want %q", st.name, body, err, st.want)
		}
		info, ok, err := p.Inspect(t.Context(), cfg.Name)
		if err != nil || !ok {
			t.Fatalf("%s: Inspect: got ok %v, %v", st.name, ok, err)
		}
		if info.ImageID != st.wantImage {
			t.Errorf("%s: container's image: got %s; want %s", st.name, shortImage(info.ImageID), shortImage(st.wantImage))
		}
		if got, want := info.Labels[LabelHash], l.spec.Labels[LabelHash]; got != want {
			t.Errorf("%s: hash label: got %s; want the configured spec's %s", st.name, got, want)
		}
		if err := l.Stop(t.Context()); err != nil {
			t.Fatalf("%s: Stop: %v", st.name, err)
		}
		d := s.deployments()
		if len(d) != i+1 || d[i].ImageID != st.wantImage || d[i].RolledBack != st.rolledBack {
			t.Errorf("%s: Ready calls: got %+v; want the last for %s, rolled back %v", st.name, d, shortImage(st.wantImage), st.rolledBack)
		}
		fails := s.failures()
		if st.failed != "" {
			if len(fails) == 0 || fails[len(fails)-1].image != st.failed || !errors.Is(fails[len(fails)-1].reason, st.reason) {
				t.Errorf("%s: Failed calls: got %v; want the last for %s wrapping %v", st.name, fails, shortImage(st.failed), st.reason)
			} else {
				t.Logf("%s: Failed(%s, %v)", st.name, shortImage(st.failed), fails[len(fails)-1].reason)
			}
		}
	}

	// v5 becomes ready, then crashes within the rollback window.
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start of v5: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for l.State() != StateStopped {
		if time.Now().After(deadline) {
			t.Fatalf("state 15s after v5's crash at 1s: got %s; want %s", l.State(), StateStopped)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The failure is told before the next start chooses.
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start after v5 crashed: %v", err)
	}
	fails := s.failures()
	var ee *ExitError
	if len(fails) != 3 || fails[2].image != ids[5] || !errors.As(fails[2].reason, &ee) || ee.Code != 3 {
		t.Errorf("Failed calls: got %v; want the third for v5 with exit code 3", fails)
	} else {
		t.Logf("v5: Failed(%s, %v)", shortImage(ids[5]), ee)
	}
	if body, err := get(t, l, "/"); err != nil || body != "v2\n" {
		t.Errorf("GET / after v5: got %q, %v; want %q", body, err, "v2\n")
	}
}

func TestIntegrationImageTagUntag(t *testing.T) {
	p, _ := integrationRuntime(t)
	ids := versionImages(t, p)
	var b [4]byte
	rand.Read(b[:])
	repo := "localhost/lztest-tag-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Untag(ctx, ids[2], repo, "prev"); err != nil {
			t.Errorf("Untag in cleanup: %v", err)
		}
	})
	if err := p.Tag(t.Context(), ids[2], repo, "prev"); err != nil {
		t.Fatalf("Tag: %v", err)
	}
	info, ok, err := p.Image(t.Context(), repo+":prev")
	if err != nil || !ok || info.ID != ids[2] {
		t.Fatalf("Image(%s:prev): got %+v, ok %v, %v; want v2's ID", repo, info, ok, err)
	}
	t.Logf("v2: names %q, digests %q", info.Names, info.Digests)
	for _, d := range info.Digests {
		if !strings.Contains(d, "sha256:") {
			t.Errorf("digest %q: want sha256:...", d)
		}
	}
	if err := p.Untag(t.Context(), ids[2], repo, "prev"); err != nil {
		t.Fatalf("Untag: %v", err)
	}
	if _, ok, err := p.Image(t.Context(), repo+":prev"); ok || err != nil {
		t.Errorf("Image after Untag: got ok %v, %v; want false, nil", ok, err)
	}
	if err := p.Untag(t.Context(), ids[2], repo, "prev"); err != nil {
		t.Errorf("Untag of a name the image lacks: got %v; want nil", err)
	}
	if err := p.Untag(t.Context(), strings.Repeat("0", 64), repo, "prev"); err != nil {
		t.Errorf("Untag of a missing image: got %v; want nil", err)
	}
}

// TestIntegrationPinContainer checks that a container with network none
// (the updater's pin of the previous image) creates fine.
func TestIntegrationPinContainer(t *testing.T) {
	p, _ := integrationRuntime(t)
	ids := versionImages(t, p)
	name := uniqueName(t, p)
	id, err := p.Create(t.Context(), ContainerSpec{
		Name: name, Image: ids[2], Network: "none",
		Labels: map[string]string{"io.lazypod.pin": name},
	})
	if err != nil {
		t.Fatalf("Create with network none: %v", err)
	}
	info, ok, err := p.Inspect(t.Context(), name)
	if err != nil || !ok || info.ID != id || info.ImageID != ids[2] || info.Running {
		t.Errorf("Inspect: got %+v, ok %v, %v; want created, not running, from v2", info, ok, err)
	}
}
