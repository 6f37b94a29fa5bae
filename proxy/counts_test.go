package proxy

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// counts returns srv's counts of route, failing the test if it has none.
func counts(t *testing.T, srv *Server, route string) Counts {
	t.Helper()
	for _, c := range srv.Counts() {
		if c.Route == route {
			return c
		}
	}
	t.Fatalf("no counts for route %q in %+v", route, srv.Counts())
	return Counts{}
}

// TestCountsTCP: held and forwarded flows, the bytes each way as sent,
// and each way a flow can end: done, reset, not ready, unreachable and
// idle.
func TestCountsTCP(t *testing.T) {
	backend := startTestServer(t, func(c *net.TCPConn) {
		// Reads the request to its end, then answers twice its size.
		n, _ := io.Copy(io.Discard, c)
		io.CopyN(c, zeros{}, 2*n)
		c.CloseWrite()
	})
	be := &fakeBackend{addr: backend.Addr(), release: make(chan struct{})}
	addr, srv := proxyTo(t, be, func(s *Server) {
		s.FlowIdleTimeout = 200 * time.Millisecond
		// An unreachable backend is given up on soon.
		s.ReadyTimeout, s.DialTimeout = time.Second, 50*time.Millisecond
	})

	// Two held while the backend starts, then one more once it is ready.
	var conns []*net.TCPConn
	for range 2 {
		conns = append(conns, dialTCP(t, addr))
	}
	eventually(t, "both held", func() bool { return be.Waiting() == 2 })
	close(be.release)
	be.mu.Lock()
	be.ready = true
	be.mu.Unlock()
	conns = append(conns, dialTCP(t, addr))
	sizes := []int{1000, 100000, 7}
	for i, c := range conns {
		io.CopyN(c, zeros{}, int64(sizes[i]))
		c.CloseWrite()
		n, err := io.Copy(io.Discard, c)
		if err != nil || n != 2*int64(sizes[i]) {
			t.Fatalf("client %d: read %d, %v; want %d", i, n, err, 2*sizes[i])
		}
	}
	eventually(t, "three flows done", func() bool { return counts(t, srv, "web").Closed[CloseDone] == 3 })
	c := counts(t, srv, "web")
	if c.Held != 2 || c.Forwarded != 3 {
		t.Errorf("held %d, forwarded %d; want 2, 3", c.Held, c.Forwarded)
	}
	if c.BytesToBackend != 101007 || c.BytesToClient != 202014 {
		t.Errorf("bytes to backend %d, to client %d; want 101007, 202014", c.BytesToBackend, c.BytesToClient)
	}

	// Idle: a flow that sends nothing is closed by the reaper.
	idle := dialTCP(t, addr)
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Fatal("idle flow: read data; want it closed")
	}
	eventually(t, "idle flow counted", func() bool { return counts(t, srv, "web").Closed[CloseFlowIdle] == 1 })

	// Reset: the client resets its connection mid-request.
	rst := dialTCP(t, addr)
	rst.Write([]byte("x"))
	rst.SetLinger(0)
	rst.Close()
	eventually(t, "reset counted", func() bool { return counts(t, srv, "web").Closed[CloseReset] == 1 })

	// Unreachable: ready, but nothing listens at the address.
	be.setAddr(closedPort(t))
	be.mu.Lock()
	be.ready = false
	be.mu.Unlock()
	dialTCP(t, addr).Read(make([]byte, 1))
	eventually(t, "unreachable counted", func() bool { return counts(t, srv, "web").Closed[CloseUnreachable] == 1 })

	c = counts(t, srv, "web")
	if c.Closed[CloseNotReady] != 0 || c.Closed[CloseShutdown] != 0 {
		t.Errorf("closed %v; want no not_ready nor shutdown", c.Closed)
	}
}

// TestCountsNotReady: a flow whose backend fails to start ends not ready,
// and one held when Run ends ends for shutdown.
func TestCountsNotReady(t *testing.T) {
	be := &fakeBackend{startErr: errors.New("image not found")}
	addr, srv := proxyTo(t, be, nil)
	dialTCP(t, addr).Read(make([]byte, 1))
	eventually(t, "not ready counted", func() bool { return counts(t, srv, "web").Closed[CloseNotReady] == 1 })
	if c := counts(t, srv, "web"); c.Held != 1 || c.Forwarded != 0 {
		t.Errorf("held %d, forwarded %d; want 1, 0", c.Held, c.Forwarded)
	}

	be2 := &fakeBackend{release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv2 := &Server{Backend: be2, Routes: []Route{{Name: "web", Listener: ln}}, Logger: discardLogger(), DrainTimeout: -1}
	r := startRun(t, srv2)
	dialTCP(t, ln.Addr().String())
	eventually(t, "held", func() bool { return be2.Waiting() == 1 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, srv2, "web"); c.Closed[CloseShutdown] != 1 {
		t.Errorf("closed %v after Run ended; want shutdown 1", c.Closed)
	}
}

// TestCountsUDP: the datagrams' bytes each way, the held ones included,
// and the flow's end when reaped.
func TestCountsUDP(t *testing.T) {
	backend := startUDPEcho(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	be := &fakeBackend{addr: backend, release: make(chan struct{})}
	srv := &Server{
		Backend:        be,
		Routes:         []Route{{Name: "dns", PacketConn: pc}},
		UDPFlowTimeout: 100 * time.Millisecond,
		Logger:         discardLogger(),
	}
	startRun(t, srv)
	c := dialUDP(t, pc.LocalAddr().String())
	c.Write([]byte("held"))
	eventually(t, "held", func() bool { return be.Waiting() == 1 })
	close(be.release)
	if got, err := readReply(c); err != nil || got != "pong held" {
		t.Fatalf("reply %q, %v; want pong held", got, err)
	}
	roundTripUDP(t, c, strings.Repeat("y", 300))
	eventually(t, "flow reaped", func() bool { return counts(t, srv, "dns").Closed[CloseDone] == 1 })
	got := counts(t, srv, "dns")
	if got.Held != 1 || got.Forwarded != 1 || got.BytesToBackend != 304 || got.BytesToClient != 314 {
		t.Errorf("counts %+v; want held 1, forwarded 1, 304 bytes to the backend and 314 back", got)
	}
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
