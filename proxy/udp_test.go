package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// startUDPEcho runs a UDP server on loopback that answers every datagram
// with "pong " and the datagram, and returns its address.
func startUDPEcho(t *testing.T) string {
	t.Helper()
	return startUDPEchoConn(t).LocalAddr().String()
}

// startUDPEchoConn is startUDPEcho returning the server's socket, which
// the test may close early to kill the server.
func startUDPEchoConn(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go udpEcho(pc, &wg)
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
	})
	return pc
}

func udpEcho(pc net.PacketConn, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(append([]byte("pong "), buf[:n]...), addr)
	}
}

// readReply reads one datagram from c, waiting up to 10s.
func readReply(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, maxDatagram)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func TestUDPClients(t *testing.T) {
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
		UDPFlowTimeout: time.Second,
		Logger:         discardLogger(),
	}
	startRun(t, srv)

	const clients, queued, more = 5, 3, 20
	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := net.Dial("udp", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
		// Sent while the backend starts: queued, in order.
		for j := range queued {
			fmt.Fprintf(c, "client %d #%d", i, j)
		}
	}
	eventually(t, "every client's flow waits for the backend", func() bool { return be.Waiting() == clients })
	if n := srv.Flows(); n != clients {
		t.Errorf("Flows() while starting: got %d; want %d", n, clients)
	}
	close(be.release)

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- udpExchange(c, i, queued, more)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := srv.Flows(); n != clients {
		t.Errorf("Flows() after the exchange: got %d; want %d", n, clients)
	}
	if n := be.Starts(); n != clients {
		t.Errorf("Start calls: got %d; want %d, one per client", n, clients)
	}

	// Quiet flows are reaped.
	eventually(t, "idle UDP flows are reaped", func() bool { return srv.Flows() == 0 })

	// A reaped client that speaks again gets a new flow.
	fmt.Fprint(conns[0], "back again")
	if got, err := readReply(conns[0]); err != nil || got != "pong back again" {
		t.Errorf("after reaping: got %q, %v; want %q", got, err, "pong back again")
	}
}

// udpExchange reads the replies to the queued datagrams of client i, then
// makes more round trips.
func udpExchange(c net.Conn, i, queued, more int) error {
	for j := range queued {
		want := fmt.Sprintf("pong client %d #%d", i, j)
		if got, err := readReply(c); err != nil || got != want {
			return fmt.Errorf("client %d queued reply: got %q, %v; want %q", i, got, err, want)
		}
	}
	for j := range more {
		msg := fmt.Sprintf("client %d round %d", i, j)
		fmt.Fprint(c, msg)
		if got, err := readReply(c); err != nil || got != "pong "+msg {
			return fmt.Errorf("client %d: got %q, %v; want %q", i, got, err, "pong "+msg)
		}
	}
	return nil
}

func TestUDPQueueIsBounded(t *testing.T) {
	backend := startUDPEcho(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	be := &fakeBackend{addr: backend, release: make(chan struct{})}
	logger, logs := bufferLogger()
	srv := &Server{Backend: be, Routes: []Route{{Name: "dns", PacketConn: pc}}, Logger: logger}
	startRun(t, srv)

	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const sent = udpQueueLen + 36
	for j := range sent {
		fmt.Fprintf(c, "%d", j)
		// Pace the datagrams so the socket buffers lose none.
		time.Sleep(200 * time.Microsecond)
	}
	eventually(t, "the flow waits for the backend", func() bool { return be.Waiting() == 1 })
	eventually(t, "every datagram is queued or dropped", func() bool {
		f := srv.udpFlowOf(c.LocalAddr())
		if f == nil {
			return false
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.queue) == udpQueueLen && f.dropped == sent-udpQueueLen
	})
	close(be.release)

	for j := range udpQueueLen {
		if got, err := readReply(c); err != nil || got != fmt.Sprintf("pong %d", j) {
			t.Fatalf("reply %d: got %q, %v; want %q", j, got, err, fmt.Sprintf("pong %d", j))
		}
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 100)); err == nil {
		t.Errorf("got a reply beyond the queue of %d: %d bytes", udpQueueLen, n)
	}
	want := fmt.Sprintf(`msg="dropped datagrams while the backend started" remote=%s route=dns dropped=%d kept=%d`, c.LocalAddr(), sent-udpQueueLen, udpQueueLen)
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log: got %q; want it to contain %q", logs, want)
	}
}

// udpFlowOf returns the flow of the UDP client at addr, if there is one.
func (s *Server) udpFlowOf(addr net.Addr) *udpFlow {
	ap := addr.(*net.UDPAddr).AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	for _, rt := range s.routes {
		if rt.udp == nil {
			continue
		}
		rt.mu.Lock()
		f := rt.byAddr[ap]
		rt.mu.Unlock()
		if f != nil {
			return f
		}
	}
	return nil
}

func TestUnixgramRoute(t *testing.T) {
	backend := startUDPEcho(t)
	dir := t.TempDir()
	pc, err := net.ListenPacket("unixgram", filepath.Join(dir, "proxy.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	srv := &Server{Backend: &fakeBackend{addr: backend}, Routes: []Route{{Name: "dg", PacketConn: pc}}, Logger: discardLogger()}
	startRun(t, srv)

	for i := range 3 {
		laddr := &net.UnixAddr{Name: filepath.Join(dir, fmt.Sprintf("client%d.sock", i)), Net: "unixgram"}
		c, err := net.DialUnix("unixgram", laddr, pc.LocalAddr().(*net.UnixAddr))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := fmt.Sprintf("hello from %d", i)
		c.Write([]byte(msg))
		if got, err := readReply(c); err != nil || got != "pong "+msg {
			t.Errorf("client %d: got %q, %v; want %q", i, got, err, "pong "+msg)
		}
	}
	if n := srv.Flows(); n != 3 {
		t.Errorf("Flows(): got %d; want 3", n)
	}
}

func TestUDPFlowEndsWhenBackendRefuses(t *testing.T) {
	first := startUDPEchoConn(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	be := &fakeBackend{addr: first.LocalAddr().String()}
	srv := &Server{
		Backend:        be,
		Routes:         []Route{{Name: "dns", PacketConn: pc}},
		UDPFlowTimeout: time.Second,
		Logger:         discardLogger(),
	}
	startRun(t, srv)

	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "one")
	if got, err := readReply(c); err != nil || got != "pong one" {
		t.Fatalf("first reply: got %q, %v; want %q", got, err, "pong one")
	}

	// The backend dies and comes back elsewhere. The client keeps
	// talking, more often than UDPFlowTimeout, so its flow is never quiet
	// enough to be reaped: only the refusal can end it.
	first.Close()
	be.setAddr(startUDPEcho(t))
	buf := make([]byte, 100)
	for deadline := time.Now().Add(3 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatalf("no reply 3s after the backend died (Start calls: %d); want a new flow that starts the backend again", be.Starts())
		}
		fmt.Fprint(c, "two")
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := c.Read(buf); err == nil && string(buf[:n]) == "pong two" {
			break
		}
	}
	if n := be.Starts(); n != 2 {
		t.Errorf("Start calls: got %d; want 2", n)
	}
	if n := srv.Flows(); n != 1 {
		t.Errorf("Flows(): got %d; want 1", n)
	}
}

func TestUDPStartAgainWhenNoAddress(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	// The first Addr fails, as after a crash the launcher has just noticed.
	be := &fakeBackend{addr: startUDPEcho(t), addrFails: 1}
	srv := &Server{Backend: be, Routes: []Route{{Name: "dns", PacketConn: pc}}, Logger: discardLogger()}
	startRun(t, srv)

	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "hi")
	if got, err := readReply(c); err != nil || got != "pong hi" {
		t.Fatalf("reply: got %q, %v; want %q", got, err, "pong hi")
	}
	if n := be.Starts(); n != 2 {
		t.Errorf("Start calls: got %d; want 2", n)
	}
}

// dialUDP returns a client socket connected to addr, closed in t.Cleanup.
func dialUDP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTripUDP sends msg on c and checks the echo server's reply.
func roundTripUDP(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	fmt.Fprint(c, msg)
	if got, err := readReply(c); err != nil || got != "pong "+msg {
		t.Fatalf("client %s: got %q, %v; want %q", c.LocalAddr(), got, err, "pong "+msg)
	}
}

// TestMaxUDPFlows sends from many client sockets to a Server capped at a
// few UDP flows: the flows never pass the cap, datagrams from new clients
// at the cap are dropped, counted and logged, clients that have a flow
// keep being served, and a new client gets a flow once one is reaped.
func TestMaxUDPFlows(t *testing.T) {
	backend := startUDPEcho(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	logger, logs := bufferLogger()
	const maxFlows, clients = 3, 20
	srv := &Server{
		Backend:        &fakeBackend{addr: backend},
		Routes:         []Route{{Name: "dns", PacketConn: pc}},
		MaxUDPFlows:    maxFlows,
		UDPFlowTimeout: 3 * time.Second,
		Logger:         logger,
	}
	startRun(t, srv)
	began := time.Now()
	addr := pc.LocalAddr().String()

	first := dialUDP(t, addr)
	roundTripUDP(t, first, "first")

	conns := make([]net.Conn, clients)
	for i := range conns {
		conns[i] = dialUDP(t, addr)
		fmt.Fprintf(conns[i], "client %d", i)
		// Each datagram makes a flow, up to the cap, or is dropped.
		eventually(t, fmt.Sprintf("client %d's datagram is taken", i), func() bool {
			return srv.Flows()+int(srv.udpCapDrops.Load()) == i+2
		})
		flows := 1 + min(i+1, maxFlows-1)
		if n := srv.Flows(); n != flows {
			t.Fatalf("UDP flows after client %d: got %d; want %d, at most %d", i, n, flows, maxFlows)
		}
	}
	if got, want := srv.udpCapDrops.Load(), uint64(clients-(maxFlows-1)); got != want {
		t.Errorf("datagrams dropped at the cap: got %d; want %d", got, want)
	}
	if got, want := srv.statusLine(), "serving 3 connections; at the UDP flow limit, new clients' datagrams are dropped"; got != want {
		t.Errorf("status line: got %q; want %q", got, want)
	}

	// The clients with a flow get their replies and keep being served.
	for i := range maxFlows - 1 {
		want := fmt.Sprintf("pong client %d", i)
		if got, err := readReply(conns[i]); err != nil || got != want {
			t.Errorf("client %d: got %q, %v; want %q", i, got, err, want)
		}
	}
	roundTripUDP(t, first, "still served")
	roundTripUDP(t, conns[0], "client 0 again")
	// A client without one gets nothing.
	dropped := conns[maxFlows-1]
	dropped.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := dropped.Read(make([]byte, 100)); err == nil {
		t.Errorf("client %d, beyond the cap: got a %d-byte reply; want none", maxFlows-1, n)
	}
	if n := srv.Flows(); n != maxFlows {
		t.Errorf("Flows(): got %d; want %d", n, maxFlows)
	}

	want := fmt.Sprintf(`level=WARN msg="udp flow limit reached; dropping datagrams from new clients" route=dns remote=%s max_udp_flows=%d dropped=1`, dropped.LocalAddr(), maxFlows)
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log: got %q; want it to contain %q", logs, want)
	}
	n := strings.Count(logs.String(), "udp flow limit reached")
	if most := 1 + int(time.Since(began)/udpCapLogInterval); n > most {
		t.Errorf("cap logged %d times in %v; want at most %d, once a second", n, time.Since(began).Round(time.Millisecond), most)
	}

	// Once the flows are reaped, a client dropped before gets a flow.
	eventually(t, "the UDP flows are reaped", func() bool { return srv.Flows() == 0 })
	roundTripUDP(t, dropped, "let in")
}

// TestUDPHeldBytesBounded holds datagrams for several clients while the
// backend starts, more in all than maxHeldBytes though within each flow's
// udpQueueLen: those past the bound are dropped, counted and logged like
// those past a flow's queue.
func TestUDPHeldBytesBounded(t *testing.T) {
	backend := startUDPEcho(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	be := &fakeBackend{addr: backend, release: make(chan struct{})}
	logger, logs := bufferLogger()
	srv := &Server{Backend: be, Routes: []Route{{Name: "dns", PacketConn: pc}}, Logger: logger}
	startRun(t, srv)
	addr := pc.LocalAddr().String()

	const size, each = 60000, 30 // 3 clients send 5.4 MB in all
	payload := strings.Repeat("x", size)
	type want struct{ kept, dropped int }
	wants := []want{
		{kept: each}, // 1.8 MB held
		{kept: each}, // 3.6 MB held
		{kept: maxHeldBytes/size - 2*each, dropped: 3*each - maxHeldBytes/size}, // up to 4 MiB
	}
	conns := make([]net.Conn, len(wants))
	for i := range conns {
		c := dialUDP(t, addr)
		conns[i] = c
		for j := range each {
			fmt.Fprintf(c, "%s", payload)
			// One at a time, so that no socket buffer drops any.
			eventually(t, fmt.Sprintf("client %d's datagram %d is held or dropped", i, j), func() bool {
				if srv.Flows() < i+1 {
					return false // and Run may not have set srv.routes yet
				}
				f := srv.udpFlowOf(c.LocalAddr())
				if f == nil {
					return false
				}
				f.mu.Lock()
				defer f.mu.Unlock()
				return len(f.queue)+f.dropped == j+1
			})
			if held := srv.held.Load(); held > maxHeldBytes {
				t.Fatalf("bytes held after client %d's datagram %d: got %d; want at most %d", i, j, held, maxHeldBytes)
			}
		}
	}
	for i, c := range conns {
		f := srv.udpFlowOf(c.LocalAddr())
		f.mu.Lock()
		got := want{kept: len(f.queue), dropped: f.dropped}
		f.mu.Unlock()
		if got != wants[i] {
			t.Errorf("client %d: got %d held and %d dropped; want %d and %d", i, got.kept, got.dropped, wants[i].kept, wants[i].dropped)
		}
	}
	if got, want := srv.held.Load(), int64(maxHeldBytes/size*size); got != want {
		t.Errorf("bytes held: got %d; want %d", got, want)
	}

	close(be.release)
	eventually(t, "the held datagrams are sent", func() bool { return srv.held.Load() == 0 })
	last := wants[len(wants)-1]
	line := fmt.Sprintf(`msg="dropped datagrams while the backend started" remote=%s route=dns dropped=%d kept=%d`, conns[2].LocalAddr(), last.dropped, last.kept)
	eventually(t, "the drops are logged", func() bool { return strings.Contains(logs.String(), line) })
	if n := strings.Count(logs.String(), "dropped datagrams while the backend started"); n != 1 {
		t.Errorf("flows that logged drops: got %d; want 1\n%s", n, logs)
	}

	// The flows are served once connected. Replies to the big datagrams
	// may have overflowed the sockets' buffers; skip those that came.
	for i, c := range conns {
		msg := fmt.Sprintf("client %d after", i)
		fmt.Fprint(c, msg)
		for range each + 1 {
			got, err := readReply(c)
			if err != nil {
				t.Fatalf("client %d: reading %q: %v", i, "pong "+msg, err)
			}
			if got == "pong "+msg {
				break
			}
		}
	}
}
