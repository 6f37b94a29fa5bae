package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lazypod/lazypod/proxy"
)

// readyBackend is a proxy.Backend that is ready at once, or fails with err.
type readyBackend struct{ err error }

func (b readyBackend) Start(context.Context) error { return b.err }
func (b readyBackend) Addr(string) (string, error) { return "", errors.New("no address") }
func (b readyBackend) Stop(context.Context) error  { return nil }

// serveHoldSocket serves a hold route at path with be until the returned
// stop is called.
func serveHoldSocket(t *testing.T, path string, be proxy.Backend) (*proxy.Server, func()) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &proxy.Server{Backend: be, Routes: []proxy.Route{{Name: "lazypod-hold", Listener: ln, Hold: true}},
		IdleTimeout: -1, DrainTimeout: -1, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done; ln.Close() }
	t.Cleanup(stop)
	return srv, stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting: %s", what)
}

// TestHolds: Acquire holds every needed service, Release lets them go,
// and a service whose lazypod restarts is held again.
func TestHolds(t *testing.T) {
	dir := t.TempDir()
	db, cache := filepath.Join(dir, "db.hold"), filepath.Join(dir, "cache.hold")
	dbSrv, stopDB := serveHoldSocket(t, db, readyBackend{})
	cacheSrv, _ := serveHoldSocket(t, cache, readyBackend{})
	h := &holds{paths: []string{db, cache}, timeout: 5 * time.Second, log: slog.New(slog.DiscardHandler)}
	if err := h.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both held", func() bool { return dbSrv.Flows() == 1 && cacheSrv.Flows() == 1 })
	if err := h.Acquire(t.Context()); err != nil { // held: nothing more
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if dbSrv.Flows() != 1 {
		t.Errorf("a second Acquire made %d holds; want 1", dbSrv.Flows())
	}

	// db's lazypod restarts: the hold comes back.
	stopDB()
	dbSrv2, _ := serveHoldSocket(t, db, readyBackend{})
	waitFor(t, "db held again after its restart", func() bool { return dbSrv2.Flows() == 1 })

	h.Release()
	waitFor(t, "both let go", func() bool { return dbSrv2.Flows() == 0 && cacheSrv.Flows() == 0 })
}

// TestHoldErrors: a service that cannot start, and one with no hold
// socket, each fail Acquire with a line naming it.
func TestHoldErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "db.hold")
	serveHoldSocket(t, bad, readyBackend{err: errors.New("pulling image: not found")})
	for _, c := range []struct{ path, want string }{
		{bad, `service "db" not ready: pulling image: not found`},
		{filepath.Join(dir, "cache.hold"), `service "cache" has no hold socket at ` + dir + `/cache.hold: install its units`},
	} {
		h := &holds{paths: []string{c.path}, timeout: 5 * time.Second, log: slog.New(slog.DiscardHandler)}
		err := h.Acquire(t.Context())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Acquire %s: got %v; want %q", c.path, err, c.want)
		}
	}
}
