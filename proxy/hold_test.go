package proxy

import (
	"bufio"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// holdServer serves a hold route on a unix socket, with a short idle
// timeout, and returns its path.
func holdServer(t *testing.T, be Backend) (string, *Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "web.hold")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	srv := &Server{
		Backend:     be,
		Routes:      []Route{{Name: "lazypod-hold", Listener: ln, Hold: true}},
		IdleTimeout: 100 * time.Millisecond,
		Logger:      discardLogger(),
	}
	startRun(t, srv)
	return path, srv
}

// TestHoldKeepsBackendUp: a hold starts the backend, says ready once it
// is, and keeps it from the idle stop until the holder closes.
func TestHoldKeepsBackendUp(t *testing.T) {
	be := &fakeBackend{addr: "127.0.0.1:1", release: make(chan struct{})}
	path, srv := holdServer(t, be)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	eventually(t, "the hold starts the backend", func() bool { return be.Waiting() == 1 })
	close(be.release)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != HoldReady {
		t.Fatalf("hold answered %q, %v; want %q", line, err, HoldReady)
	}
	time.Sleep(500 * time.Millisecond) // five idle timeouts
	if n := len(be.Stops()); n != 0 {
		t.Fatalf("backend stopped %d times while held; want 0", n)
	}
	if n := srv.Flows(); n != 1 {
		t.Errorf("Flows while held: got %d; want 1", n)
	}
	c.Close()
	eventually(t, "the idle stop after the hold closed", func() bool { return len(be.Stops()) == 1 })
	if got := counts(t, srv, "lazypod-hold"); got.Forwarded != 1 || got.Closed[CloseDone] != 1 {
		t.Errorf("counts %+v; want one hold, done", got)
	}
}

// TestHoldNotReady: a backend that fails to start is reported on the
// hold's one line, and the connection closed.
func TestHoldNotReady(t *testing.T) {
	be := &fakeBackend{startErr: errors.New("pulling image:\n  not found")}
	path, _ := holdServer(t, be)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil || line != "error: pulling image: not found\n" {
		t.Fatalf("hold answered %q, %v; want the error on one line", line, err)
	}
	if _, err := r.ReadByte(); err == nil {
		t.Error("hold connection still open after the error")
	}
}
