package podman

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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
	"github.com/lazypod/lazypod/launcher"
)

// Integration tests run against a real Podman API service that the test
// harness starts privately, with the test server images that
// scripts/build-images.sh builds from the repository's testdata/testserver:
//
//	LAZYPOD_TEST_PODMAN   the service's URL, e.g. unix:///tmp/x/podman.sock
//	LAZYPOD_TEST_IMAGE    the image; if unset, localhost/lazypod-testserver:latest
//	LAZYPOD_TEST_REQUIRE  if 1, a missing LAZYPOD_TEST_PODMAN fails instead of skipping

// integrationClient connects to the test Podman service, or skips.
func integrationClient(t *testing.T) (*Client, string) {
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
	c := New(url)
	if err := c.Connect(t.Context()); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c, image
}

var unsafeNameChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// uniqueName returns a container name for this test, and removes that
// container when the test ends.
func uniqueName(t *testing.T, c *Client) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	name := "lztest-" + strings.ToLower(unsafeNameChars.ReplaceAllString(t.Name(), "-")) + "-" + hex.EncodeToString(b[:])
	removeAtEnd(t, c, name)
	return name
}

// removeAtEnd removes the container called name, if any, when the test
// ends.
func removeAtEnd(t *testing.T, c *Client, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Remove(ctx, name, time.Second); err != nil {
			t.Errorf("removing container %s: %v", name, err)
		}
	})
}

// runLauncher returns a launcher of cfg whose Run runs until the test
// ends.
func runLauncher(t *testing.T, cfg launcher.Config) *launcher.Launcher {
	t.Helper()
	l, err := launcher.New(cfg)
	if err != nil {
		t.Fatalf("launcher.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v; want nil", err)
		}
	})
	return l
}

// integrationConfig returns a config for the test server image publishing
// its http (route "http"), tcp ("tcp") and udp ("udp") ports, and the
// client it runs on.
func integrationConfig(t *testing.T) (launcher.Config, *Client) {
	t.Helper()
	c, image := integrationClient(t)
	return launcher.Config{
		Name:  uniqueName(t, c),
		Image: image,
		Ports: []launcher.Port{
			{Route: "http", Port: 8080},
			{Route: "tcp", Port: 9000},
			{Route: "udp", Port: 9000, Proto: spec.ProtoUDP},
		},
		ReadyTimeout: 30 * time.Second,
		StopTimeout:  2 * time.Second,
		Runtime:      c,
		Logger:       slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, c
}

// get fetches path from the launcher's http route.
func get(t *testing.T, l *launcher.Launcher, path string) (string, error) {
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
	cfg, c := integrationConfig(t)
	cfg.Env = []string{"VERSION=v7"}
	cfg.Labels = map[string]string{"test": "first-start"}
	l := runLauncher(t, cfg)
	if got := l.State(); got != launcher.StateStopped {
		t.Fatalf("state before Start: got %s; want %s", got, launcher.StateStopped)
	}
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("cold start (create + start + tcp probe): %s", l.LastColdStart())
	if got := l.State(); got != launcher.StateReady {
		t.Errorf("state: got %s; want %s", got, launcher.StateReady)
	}
	body, err := get(t, l, "/")
	if err != nil || body != "v7\n" {
		t.Errorf("GET /: got %q, %v; want %q", body, err, "v7\n")
	}
	addr, err := l.Addr("http")
	if err != nil || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("Addr(http): got %q, %v; want 127.0.0.1:PORT", addr, err)
	}
	info, ok, err := c.Inspect(t.Context(), cfg.Name)
	if err != nil || !ok {
		t.Fatalf("Inspect: got ok %v, %v", ok, err)
	}
	for k, want := range map[string]string{launcher.LabelService: cfg.Name, "test": "first-start"} {
		if got := info.Labels[k]; got != want {
			t.Errorf("label %s: got %q; want %q", k, got, want)
		}
	}
	if got := info.Labels[launcher.LabelHash]; !isSHA256(got) {
		t.Errorf("label %s: got %q; want a sha256 of the settings", launcher.LabelHash, got)
	}
}

// isSHA256 reports whether s is a hex sha256.
func isSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32
}

func TestIntegrationProbes(t *testing.T) {
	tests := []struct {
		probe string
		env   []string
	}{
		{probe: "listening"},
		{probe: "tcp"},
		{probe: "http:/healthz"},
		{probe: "exec:/testserver -check"},
		{probe: "healthcheck"},
		{probe: "notify", env: []string{"NOTIFY=1"}},
		{probe: "none"},
	}
	for _, tt := range tests {
		t.Run(tt.probe, func(t *testing.T) {
			cfg, _ := integrationConfig(t)
			p, err := spec.ParseProbe(tt.probe)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Ready = p
			cfg.Env = tt.env
			if p.Kind == spec.ProbeNotify {
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
			if p.Kind == spec.ProbeNone {
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
	cfg, _ := integrationConfig(t)
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
	cfg, _ := integrationConfig(t)
	cfg.Env = []string{"EXIT_AT_START=7"}
	l := runLauncher(t, cfg)
	began := time.Now()
	err := l.Start(t.Context())
	if !errors.Is(err, launcher.ErrExited) {
		t.Fatalf("Start: got %v; want ErrExited", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("Start took %s; want the exit noticed at once", took)
	}
	var ee *launcher.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Start: got %T; want an *ExitError in the chain", err)
	}
	if ee.Code != 7 {
		t.Errorf("exit code: got %d; want 7", ee.Code)
	}
	if !slices.Contains(ee.Logs, "exiting at start with 7") {
		t.Errorf("log lines: got %q; want %q among them", ee.Logs, "exiting at start with 7")
	}
	if got := l.State(); got != launcher.StateStopped {
		t.Errorf("state: got %s; want %s", got, launcher.StateStopped)
	}
	t.Logf("error: %v", err)
}

func TestIntegrationNeverListens(t *testing.T) {
	cfg, c := integrationConfig(t)
	cfg.Env = []string{"NEVER_LISTEN=1"}
	cfg.ReadyTimeout = 2 * time.Second
	l := runLauncher(t, cfg)
	err := l.Start(t.Context())
	if !errors.Is(err, launcher.ErrNotReady) {
		t.Fatalf("Start: got %v; want ErrNotReady", err)
	}
	t.Logf("error: %v", err)
	info, ok, ierr := c.Inspect(t.Context(), cfg.Name)
	if ierr != nil || !ok {
		t.Fatalf("Inspect: got ok %v, %v", ok, ierr)
	}
	if info.Running {
		t.Errorf("container left running after the probe timed out")
	}
}

func TestIntegrationSettingsChangeRecreates(t *testing.T) {
	cfg, c := integrationConfig(t)
	cfg.Env = []string{"VERSION=v1"}
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	first, _, _ := c.Inspect(t.Context(), cfg.Name)

	// The same settings reuse the container, running or not.
	l2 := runLauncher(t, cfg)
	if err := l2.Start(t.Context()); err != nil {
		t.Fatalf("Start with the same settings: %v", err)
	}
	same, _, _ := c.Inspect(t.Context(), cfg.Name)
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
	second, _, _ := c.Inspect(t.Context(), cfg.Name)
	if second.ID == first.ID {
		t.Errorf("container ID after changing env: got the same %s; want a new container", first.ID)
	}
	if body, err := get(t, l3, "/"); err != nil || body != "v2\n" {
		t.Errorf("GET /: got %q, %v; want %q", body, err, "v2\n")
	}
}

func TestIntegrationStopThenStart(t *testing.T) {
	cfg, c := integrationConfig(t)
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	cold := l.LastColdStart()
	if err := l.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got := l.State(); got != launcher.StateStopped {
		t.Errorf("state after Stop: got %s; want %s", got, launcher.StateStopped)
	}
	info, _, _ := c.Inspect(t.Context(), cfg.Name)
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
	cfg, _ := integrationConfig(t)
	cfg.Env = []string{"CRASH_AFTER=1s"}
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for l.State() != launcher.StateStopped {
		if time.Now().After(deadline) {
			t.Fatalf("state 15s after a crash at 1s: got %s; want %s", l.State(), launcher.StateStopped)
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

// TestIntegrationMissingImage: an image the registry says it lacks fails
// the start with ErrImageNotFound; a registry that is down does not, and
// is not taken for Podman being down either.
func TestIntegrationMissingImage(t *testing.T) {
	tests := []struct {
		name     string
		registry func(t *testing.T) string // host:port
		want     bool                      // ErrImageNotFound
	}{
		{name: "registry lacks it", want: true, registry: func(t *testing.T) string {
			return fakeRegistry(t, registryError(http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown"))
		}},
		{name: "registry down", registry: closedPort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, c := integrationConfig(t)
			cfg.Image = tt.registry(t) + "/lazypod-does-not-exist:latest"
			cfg.Runtime = c.WithPull(PullOptions{TLSVerify: ptrBool(false)})
			l := runLauncher(t, cfg)
			err := l.Start(t.Context())
			if err == nil {
				t.Fatal("Start: got nil; want an error")
			}
			t.Logf("error: %v", err)
			if got := errors.Is(err, launcher.ErrImageNotFound); got != tt.want {
				t.Errorf("Start: got %v; want ErrImageNotFound %v", err, tt.want)
			}
			if errors.Is(err, launcher.ErrNoPodman) {
				t.Errorf("Start: got %v; the Podman API answered, want no ErrNoPodman", err)
			}
			if got := l.State(); got != launcher.StateStopped {
				t.Errorf("state: got %s; want %s", got, launcher.StateStopped)
			}
		})
	}
}

// TestIntegrationTestServer checks the test server's tcp and udp echo
// through the published ports, which the proxy's tests rely on.
func TestIntegrationTestServer(t *testing.T) {
	cfg, _ := integrationConfig(t)
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
	cfg, c := integrationConfig(t)
	other, err := c.Create(t.Context(), launcher.ContainerSpec{Name: cfg.Name, Image: cfg.Image})
	if err != nil {
		t.Fatalf("creating someone else's container: %v", err)
	}
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); !errors.Is(err, launcher.ErrNotOurs) {
		t.Fatalf("Start: got %v; want ErrNotOurs", err)
	}
	info, ok, err := c.Inspect(t.Context(), cfg.Name)
	if err != nil || !ok || info.ID != other {
		t.Errorf("the other container: got ID %q, ok %v, %v; want %q left alone", info.ID, ok, err, other)
	}
}

// TestIntegrationContainerSettings checks Podman accepts and applies every
// setting the launcher passes at create.
func TestIntegrationContainerSettings(t *testing.T) {
	cfg, _ := integrationConfig(t)
	cfg.Command = []string{"-version", "from-command"}
	// One fixed named volume, reused by every run, rather than one left
	// behind per run.
	cfg.Volumes = []spec.Volume{
		{Source: t.TempDir(), Target: "/host", Options: []string{"ro"}},
		{Source: "lazypod-test-volume", Target: "/data"},
	}
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

func TestIntegrationStopEndsHangingExecProbe(t *testing.T) {
	cfg, _ := integrationConfig(t)
	cfg.Ready = spec.Probe{Kind: spec.ProbeExec, Arg: "/testserver -hang"}
	l := runLauncher(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- l.Start(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for l.State() != launcher.StateStarting {
		if time.Now().After(deadline) {
			t.Fatalf("state: got %s; want %s", l.State(), launcher.StateStarting)
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
	cfg, c := integrationConfig(t)
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	addr, err := l.Addr("tcp")
	if err != nil {
		t.Fatalf("Addr: %v", err)
	}
	first, _, _ := c.Inspect(t.Context(), cfg.Name)
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
	second, _, _ := c.Inspect(t.Context(), cfg.Name)
	if second.ID == first.ID {
		t.Errorf("container ID: got the same %s; want a new container", first.ID)
	}
	if body, err := get(t, l, "/"); err != nil || body != "v1\n" {
		t.Errorf("GET / after recreating: got %q, %v; want %q", body, err, "v1\n")
	}
}

// startAll starts l from n concurrent callers and fails the test unless
// all succeed.
func startAll(t *testing.T, l *launcher.Launcher, n int) {
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
	cfg, c := integrationConfig(t)
	ids := versionImages(t, c)
	cfg.Image = "localhost/lazypod-testserver:v1"
	cfg.ReadyTimeout = 3 * time.Second
	s := &fakeSwapper{t: t, choices: []choice{
		{}, // the configured image, v1
		{Image: ids[2], Fallback: ids[1]},
		{Image: ids[3], Fallback: ids[2]}, // exits with 3 at start
		{Image: ids[4], Fallback: ids[2]}, // never listens
		{Image: ids[5], Fallback: ids[2]}, // crashes 1s after start
		{Image: ids[2]},
	}}
	cfg.Swapper = s
	l := runLauncher(t, cfg)

	// A rolled back start tells Failed for the chosen image, then Ready
	// for its fallback.
	steps := []struct {
		name      string
		want      string // the answer on "/"
		wantImage string
		failed    string // the image rolled back from, if any
		reason    error
	}{
		{name: "configured image", want: "v1\n", wantImage: ids[1]},
		{name: "swap to v2", want: "v2\n", wantImage: ids[2]},
		{name: "v3 exits, back to v2", want: "v2\n", wantImage: ids[2], failed: ids[3], reason: launcher.ErrExited},
		{name: "v4 never ready, back to v2", want: "v2\n", wantImage: ids[2], failed: ids[4], reason: launcher.ErrNotReady},
	}
	var hash string // the configured spec's, which every container keeps
	wantFails := 0
	for i, st := range steps {
		began := time.Now()
		startAll(t, l, 8)
		t.Logf("%s: ready in %s (cold start %s)", st.name, time.Since(began), l.LastColdStart())
		if body, err := get(t, l, "/"); err != nil || body != st.want {
			t.Errorf("%s: GET /: got %q, %v; want %q", st.name, body, err, st.want)
		}
		info, ok, err := c.Inspect(t.Context(), cfg.Name)
		if err != nil || !ok {
			t.Fatalf("%s: Inspect: got ok %v, %v", st.name, ok, err)
		}
		if info.ImageID != st.wantImage {
			t.Errorf("%s: container's image: got %s; want %s", st.name, spec.ShortID(info.ImageID), spec.ShortID(st.wantImage))
		}
		got := info.Labels[launcher.LabelHash]
		if i == 0 {
			hash = got // created from Config.Image, as configured
		}
		if !isSHA256(got) || got != hash {
			t.Errorf("%s: hash label: got %q; want the configured spec's %q", st.name, got, hash)
		}
		if err := l.Stop(t.Context()); err != nil {
			t.Fatalf("%s: Stop: %v", st.name, err)
		}
		// Ready is told after the callers were released: wait for it.
		var d []deployment
		for wait := time.Now().Add(10 * time.Second); time.Now().Before(wait); time.Sleep(10 * time.Millisecond) {
			if d = s.deployments(); len(d) > i {
				break
			}
		}
		if len(d) != i+1 || d[i].imageID != st.wantImage || d[i].coldStart <= 0 {
			t.Errorf("%s: Ready calls: got %+v; want the last for %s, with its cold start", st.name, d, spec.ShortID(st.wantImage))
		}
		fails := s.failures()
		if st.failed != "" {
			wantFails++
		}
		switch {
		case len(fails) != wantFails:
			t.Errorf("%s: Failed calls: got %v; want %d", st.name, fails, wantFails)
		case st.failed == "":
		case fails[len(fails)-1].image != st.failed || !errors.Is(fails[len(fails)-1].reason, st.reason):
			t.Errorf("%s: Failed calls: got %v; want the last for %s wrapping %v", st.name, fails, spec.ShortID(st.failed), st.reason)
		default:
			t.Logf("%s: Failed(%s, %v)", st.name, spec.ShortID(st.failed), fails[len(fails)-1].reason)
		}
	}

	// v5 becomes ready, then crashes within the rollback window.
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start of v5: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for l.State() != launcher.StateStopped {
		if time.Now().After(deadline) {
			t.Fatalf("state 15s after v5's crash at 1s: got %s; want %s", l.State(), launcher.StateStopped)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The failure is told before the next start chooses.
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start after v5 crashed: %v", err)
	}
	fails := s.failures()
	var ee *launcher.ExitError
	if len(fails) != wantFails+1 || fails[wantFails].image != ids[5] || !errors.As(fails[wantFails].reason, &ee) || ee.Code != 3 {
		t.Errorf("Failed calls: got %v; want a third, for v5 with exit code 3", fails)
	} else {
		t.Logf("v5: Failed(%s, %v)", spec.ShortID(ids[5]), ee)
	}
	if body, err := get(t, l, "/"); err != nil || body != "v2\n" {
		t.Errorf("GET / after v5: got %q, %v; want %q", body, err, "v2\n")
	}
}

// fakeSwapper is a launcher.Swapper that answers Choose from a list and
// records Ready and Failed. It fails the test if two of its calls overlap.
type fakeSwapper struct {
	t *testing.T
	// choices answer Choose in turn; the last one repeats.
	choices []choice

	inCall atomic.Int32
	mu     sync.Mutex
	ready  []deployment
	failed []swapFailure
}

// choice is an answer of fakeSwapper.Choose.
type choice struct{ Image, Fallback string }

// deployment is a call of fakeSwapper.Ready.
type deployment struct {
	imageID   string
	coldStart time.Duration
}

// swapFailure is a call of fakeSwapper.Failed.
type swapFailure struct {
	image  string
	reason error
}

// enter notes a call in progress; call the function it returns when the
// call ends.
func (s *fakeSwapper) enter(call string) func() {
	if n := s.inCall.Add(1); n != 1 {
		s.t.Errorf("swapper call %s overlaps another: %d in progress", call, n)
	}
	return func() { s.inCall.Add(-1) }
}

func (s *fakeSwapper) Choose(ctx context.Context) (image, fallback string, err error) {
	defer s.enter("Choose")()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.choices) == 0 {
		return "", "", nil
	}
	c := s.choices[0]
	if len(s.choices) > 1 {
		s.choices = s.choices[1:]
	}
	return c.Image, c.Fallback, nil
}

func (s *fakeSwapper) Ready(ctx context.Context, imageID string, coldStart time.Duration) {
	defer s.enter("Ready")()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = append(s.ready, deployment{imageID: imageID, coldStart: coldStart})
}

func (s *fakeSwapper) Failed(ctx context.Context, imageID string, reason error) {
	defer s.enter("Failed")()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed = append(s.failed, swapFailure{image: imageID, reason: reason})
}

// deployments returns the Ready calls so far.
func (s *fakeSwapper) deployments() []deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ready)
}

// failures returns the Failed calls so far.
func (s *fakeSwapper) failures() []swapFailure {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.failed)
}
