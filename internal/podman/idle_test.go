package podman

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
	"github.com/lazypod/lazypod/launcher"
)

// udpOnce sends one datagram to the launcher's udp route and reports
// whether its echo came back within a second: no retry.
func udpOnce(t *testing.T, l *launcher.Launcher) bool {
	t.Helper()
	addr, err := l.Addr("udp")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	return err == nil && string(buf[:n]) == "ping"
}

// TestIntegrationListeningProbe: the default probe reads the container's
// socket tables (no fallback here: lazypod and Podman share the host's
// pid namespace) and waits for the UDP port too, bound 2s after the TCP
// ports, so the first datagram after the start is answered.
func TestIntegrationListeningProbe(t *testing.T) {
	cfg, _ := integrationConfig(t)
	var logs lockedBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Env = []string{"UDP_DELAY=2s"}
	l := runLauncher(t, cfg)
	began := time.Now()
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v\n%s", err, logs.String())
	}
	took := time.Since(began)
	if strings.Contains(logs.String(), "instead of listening") {
		t.Errorf("the listening probe fell back:\n%s", logs.String())
	}
	if took < 2*time.Second {
		t.Errorf("Start took %s; want at least the 2s before udp is bound", took)
	}
	if !udpOnce(t, l) {
		t.Error("the first datagram after the start got no echo")
	}
	if body, err := get(t, l, "/"); err != nil || body != "v1\n" {
		t.Errorf("GET /: got %q, %v; want v1", body, err)
	}
}

// TestIntegrationIdlePause: Idle pauses the container; the next start, by
// the next process's launcher, thaws the same container, which answers at
// once. Stop after Idle leaves the paused container paused: the launcher
// has nothing running to stop (as systemd stopping an idle service).
func TestIntegrationIdlePause(t *testing.T) {
	cfg, c := integrationConfig(t)
	cfg.IdleAction = spec.IdlePause
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	cold := l.LastColdStart()
	first, _, _ := c.Inspect(t.Context(), cfg.Name)
	if err := l.Idle(t.Context()); err != nil {
		t.Fatalf("Idle: %v", err)
	}
	info, ok, err := c.Inspect(t.Context(), cfg.Name)
	if err != nil || !ok || !info.Paused || info.Running {
		t.Fatalf("after Idle: paused %v, running %v, %v; want paused", info.Paused, info.Running, err)
	}
	next := runLauncher(t, cfg)
	if err := next.Start(t.Context()); err != nil {
		t.Fatalf("Start of a paused container: %v", err)
	}
	t.Logf("cold start %s; wake from pause %s", cold, next.LastColdStart())
	info, _, _ = c.Inspect(t.Context(), cfg.Name)
	if info.ID != first.ID || !info.Running || info.Paused {
		t.Errorf("after the wake: container %s running %v paused %v; want the same %s, running", info.ID, info.Running, info.Paused, first.ID)
	}
	if body, err := get(t, next, "/"); err != nil || body != "v1\n" {
		t.Errorf("GET / after the wake: got %q, %v; want v1", body, err)
	}
	if !udpOnce(t, next) {
		t.Error("the first datagram after the wake got no echo")
	}
	if err := next.Idle(t.Context()); err != nil {
		t.Fatalf("second Idle: %v", err)
	}
	if err := next.Stop(t.Context()); err != nil {
		t.Fatalf("Stop after Idle: %v", err)
	}
	if info, _, _ = c.Inspect(t.Context(), cfg.Name); !info.Paused {
		t.Errorf("Stop after Idle: the container is not paused (running %v); want it left paused", info.Running)
	}
}

// TestIntegrationPausedReplacedByNewImage: a container paused at idle
// while an update is pending (here: the next launcher's image is another)
// is thawed and replaced by one of the new image at the next start.
func TestIntegrationPausedReplacedByNewImage(t *testing.T) {
	cfg, c := integrationConfig(t)
	cfg.IdleAction = spec.IdlePause
	cfg.Image = "localhost/lazypod-testserver:v1"
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	old, _, _ := c.Inspect(t.Context(), cfg.Name)
	if err := l.Idle(t.Context()); err != nil {
		t.Fatalf("Idle: %v", err)
	}
	cfg.Image = "localhost/lazypod-testserver:v2"
	next := runLauncher(t, cfg)
	if err := next.Start(t.Context()); err != nil {
		t.Fatalf("Start with the new image: %v", err)
	}
	if body, err := get(t, next, "/"); err != nil || body != "v2\n" {
		t.Errorf("GET /: got %q, %v; want v2", body, err)
	}
	if info, _, _ := c.Inspect(t.Context(), cfg.Name); info.ID == old.ID || info.Paused {
		t.Errorf("container after the swap: %s paused %v; want a new one (was %s)", info.ID, info.Paused, old.ID)
	}
	if _, ok, _ := c.Inspect(t.Context(), old.ID); ok {
		t.Errorf("the paused container %s of the old image is left", old.ID)
	}
}
