package podman

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// startedContainer starts the test server through a launcher and returns
// its client and the container's ID.
func startedContainer(t *testing.T) (*Client, string) {
	t.Helper()
	cfg, c := integrationConfig(t)
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	info, ok, err := c.Inspect(t.Context(), cfg.Name)
	if err != nil || !ok {
		t.Fatalf("Inspect: got ok %v, %v", ok, err)
	}
	return c, info.ID
}

func TestIntegrationExecHangEndsWithContext(t *testing.T) {
	c, id := startedContainer(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	began := time.Now()
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Exec(ctx, id, []string{"/testserver", "-hang"})
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
	code, out, err := c.Exec(t.Context(), id, []string{"/testserver", "-check"})
	if err != nil || code != 0 {
		t.Errorf("Exec after a hung one: got code %d, %v (output %q); want 0, nil", code, err, out)
	}
}

func TestIntegrationExecNoLeakNoRace(t *testing.T) {
	c, id := startedContainer(t)
	// Calls in flight on the shared connection, as the exit watcher's
	// are: the race detector catches an exec that changes that connection.
	wctx, cancel := context.WithCancel(t.Context())
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		for wctx.Err() == nil {
			c.Inspect(wctx, id) //nolint:errcheck
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
	if _, _, err := c.Exec(t.Context(), id, []string{"/testserver", "-check"}); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	before := fds()
	for i := range 50 {
		code, out, err := c.Exec(t.Context(), id, []string{"/testserver", "-check"})
		if err != nil || code != 0 {
			t.Fatalf("Exec %d: got code %d, %v (output %q); want 0, nil", i, code, err, out)
		}
	}
	if after := fds(); after > before+5 {
		t.Errorf("open files after 50 execs: got %d; want about %d", after, before)
	}
	if n := c.conn.exec.open(); n != 0 {
		t.Errorf("exec connections open between execs: got %d; want 0", n)
	}
}
