package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testServer is a backend server on loopback that runs handle for every
// connection.
type testServer struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
}

// startTestServer listens on 127.0.0.1:0 and serves every connection with
// handle until the test ends.
func startTestServer(t testing.TB, handle func(c *net.TCPConn)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{ln: ln}
	ts.wg.Add(1)
	go ts.serve(handle)
	t.Cleanup(func() {
		ln.Close()
		ts.wg.Wait()
	})
	return ts
}

func (ts *testServer) serve(handle func(c *net.TCPConn)) {
	defer ts.wg.Done()
	for {
		c, err := ts.ln.Accept()
		if err != nil {
			return
		}
		ts.accepted.Add(1)
		ts.wg.Add(1)
		go ts.handle(handle, c.(*net.TCPConn))
	}
}

func (ts *testServer) handle(handle func(c *net.TCPConn), c *net.TCPConn) {
	defer ts.wg.Done()
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	handle(c)
}

func (ts *testServer) Addr() string { return ts.ln.Addr().String() }

// echo copies c back to itself and half-closes when the peer does.
func echo(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// proxyTo starts a Server for route "web" on a new loopback listener, with
// a backend at addr, and returns the address to dial.
func proxyTo(t testing.TB, be Backend, mod func(*Server)) (string, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	srv := &Server{
		Backend: be,
		Routes:  []Route{{Name: "web", Listener: ln}},
		Logger:  discardLogger(),
	}
	if mod != nil {
		mod(srv)
	}
	startRun(t, srv)
	return ln.Addr().String(), srv
}

func dialTCP(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	return c.(*net.TCPConn)
}

func TestLargeTransferBothWays(t *testing.T) {
	backend := startTestServer(t, echo)
	addr, _ := proxyTo(t, &fakeBackend{addr: backend.Addr()}, nil)
	c := dialTCP(t, addr)

	const size = 64 << 20
	sent := sha256.New()
	werr := make(chan error, 1)
	go sendRandom(c, size, sent, werr)

	received := sha256.New()
	n, err := io.Copy(received, c)
	if err != nil {
		t.Fatalf("reading echo: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("writing: %v", err)
	}
	if n != size {
		t.Fatalf("echoed %d bytes; want %d", n, size)
	}
	if got, want := received.Sum(nil), sent.Sum(nil); !bytes.Equal(got, want) {
		t.Errorf("sha256 of echo: got %x; want %x", got, want)
	}
}

// sendRandom writes size pseudo-random bytes to c, hashing them into h,
// then half-closes c.
func sendRandom(c *net.TCPConn, size int64, h io.Writer, errc chan<- error) {
	src := io.LimitReader(rand.NewChaCha8([32]byte{1}), size)
	_, err := io.Copy(io.MultiWriter(c, h), src)
	if err == nil {
		err = c.CloseWrite()
	}
	errc <- err
}

func TestHalfClose(t *testing.T) {
	tests := []struct {
		name    string
		backend func(got chan<- string) func(c *net.TCPConn)
		client  func(t *testing.T, c *net.TCPConn)
		want    string // what the backend read
	}{
		{
			// The client sends a request and half-closes; the backend reads
			// to EOF and only then replies.
			name: "client closes first",
			backend: func(got chan<- string) func(c *net.TCPConn) {
				return func(c *net.TCPConn) {
					b, err := io.ReadAll(c)
					got <- fmt.Sprintf("%s %v", b, err)
					fmt.Fprintf(c, "read %d bytes", len(b))
					c.CloseWrite()
				}
			},
			client: func(t *testing.T, c *net.TCPConn) {
				c.Write([]byte("request"))
				if err := c.CloseWrite(); err != nil {
					t.Fatal(err)
				}
				reply, err := io.ReadAll(c)
				if err != nil || string(reply) != "read 7 bytes" {
					t.Errorf("reply after half-close: got %q, %v; want %q", reply, err, "read 7 bytes")
				}
			},
			want: "request <nil>",
		},
		{
			// The backend sends a banner and half-closes; the client reads
			// to EOF and only then sends.
			name: "backend closes first",
			backend: func(got chan<- string) func(c *net.TCPConn) {
				return func(c *net.TCPConn) {
					c.Write([]byte("banner"))
					c.CloseWrite()
					b, err := io.ReadAll(c)
					got <- fmt.Sprintf("%s %v", b, err)
				}
			},
			client: func(t *testing.T, c *net.TCPConn) {
				banner, err := io.ReadAll(c)
				if err != nil || string(banner) != "banner" {
					t.Errorf("banner: got %q, %v; want %q", banner, err, "banner")
				}
				if _, err := c.Write([]byte("after EOF")); err != nil {
					t.Fatalf("writing after EOF: %v", err)
				}
				c.CloseWrite()
			},
			want: "after EOF <nil>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan string, 1)
			backend := startTestServer(t, tt.backend(got))
			addr, srv := proxyTo(t, &fakeBackend{addr: backend.Addr()}, nil)
			c := dialTCP(t, addr)
			tt.client(t, c)
			select {
			case g := <-got:
				if g != tt.want {
					t.Errorf("backend read: got %q; want %q", g, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("backend read nothing")
			}
			c.Close()
			eventually(t, "the flow ends", func() bool { return srv.Flows() == 0 })
		})
	}
}

func TestConcurrentFlows(t *testing.T) {
	backend := startTestServer(t, echo)
	addr, srv := proxyTo(t, &fakeBackend{addr: backend.Addr()}, nil)

	const flows = 200
	var wg sync.WaitGroup
	errs := make(chan error, flows)
	for i := range flows {
		c := dialTCP(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echoCheck(c, i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := backend.accepted.Load(); got != flows {
		t.Errorf("backend connections: got %d; want %d", got, flows)
	}
	eventually(t, "all flows end", func() bool { return srv.Flows() == 0 })
}

// echoCheck sends 64 KiB seeded by i through c, half-closes, and checks the
// echo.
func echoCheck(c *net.TCPConn, i int) error {
	msg := make([]byte, 64<<10)
	rand.NewChaCha8([32]byte{byte(i), byte(i >> 8)}).Read(msg)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err := <-werr; err != nil {
		return fmt.Errorf("flow %d: writing: %w", i, err)
	}
	if err != nil {
		return fmt.Errorf("flow %d: reading: %w", i, err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("flow %d: echo differs: got %d bytes; want %d", i, len(got), len(msg))
	}
	return nil
}

func TestUnixListener(t *testing.T) {
	backend := startTestServer(t, echo)
	path := filepath.Join(t.TempDir(), "web.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	srv := &Server{
		Backend: &fakeBackend{addr: backend.Addr()},
		Routes:  []Route{{Name: "web", Listener: ln}},
		Logger:  discardLogger(),
	}
	startRun(t, srv)

	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	uc := c.(*net.UnixConn)
	const msg = "over a unix socket"
	uc.Write([]byte(msg))
	uc.CloseWrite()
	got, err := io.ReadAll(uc)
	if err != nil || string(got) != msg {
		t.Errorf("echo: got %q, %v; want %q", got, err, msg)
	}
}

func TestHeldConnections(t *testing.T) {
	backend := startTestServer(t, echo)
	be := &fakeBackend{addr: backend.Addr(), release: make(chan struct{})}
	addr, srv := proxyTo(t, be, nil)

	const clients = 100
	conns := make([]*net.TCPConn, clients)
	for i := range conns {
		conns[i] = dialTCP(t, addr)
		fmt.Fprintf(conns[i], "client %d\n", i)
	}
	eventually(t, "every client is held", func() bool { return be.Waiting() == clients })
	if n := srv.Flows(); n != clients {
		t.Errorf("Flows() while held: got %d; want %d", n, clients)
	}
	if n := backend.accepted.Load(); n != 0 {
		t.Fatalf("backend connections before the start finished: got %d; want 0", n)
	}

	close(be.release)
	for i, c := range conns {
		want := fmt.Sprintf("client %d\n", i)
		got, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || got != want {
			t.Errorf("client %d: got %q, %v; want %q", i, got, err, want)
		}
	}
}

func TestHeldClientHangsUp(t *testing.T) {
	backend := startTestServer(t, echo)
	be := &fakeBackend{addr: backend.Addr(), release: make(chan struct{})}
	addr, srv := proxyTo(t, be, nil)

	const clients = 10
	conns := make([]*net.TCPConn, clients)
	for i := range conns {
		conns[i] = dialTCP(t, addr)
		fmt.Fprintf(conns[i], "client %d\n", i)
	}
	eventually(t, "every client is held", func() bool { return be.Waiting() == clients })
	// Three hang up, one of them with a reset.
	conns[0].Close()
	conns[4].SetLinger(0)
	conns[4].Close()
	conns[9].Close()
	time.Sleep(20 * time.Millisecond)

	close(be.release)
	for i, c := range conns {
		if i == 0 || i == 4 || i == 9 {
			continue
		}
		want := fmt.Sprintf("client %d\n", i)
		got, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || got != want {
			t.Errorf("client %d: got %q, %v; want %q", i, got, err, want)
		}
		c.Close()
	}
	eventually(t, "all flows end", func() bool { return srv.Flows() == 0 })
}

func TestStartErrorClosesAndLogs(t *testing.T) {
	backend := startTestServer(t, echo)
	logger, logs := bufferLogger()
	be := &fakeBackend{addr: backend.Addr(), startErr: errors.New("pulling image: manifest unknown")}
	addr, srv := proxyTo(t, be, func(s *Server) { s.Logger = logger })

	c := dialTCP(t, addr)
	c.Write([]byte("hello"))
	got, err := io.ReadAll(c)
	if len(got) != 0 {
		t.Errorf("reply: got %q; want none", got)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open after a failed start")
	}
	eventually(t, "the flow ends", func() bool { return srv.Flows() == 0 })
	log := logs.String()
	for _, want := range []string{
		"level=WARN",
		`msg="closing held connection: backend not ready"`,
		"remote=" + c.LocalAddr().String(),
		"route=web",
		`err="pulling image: manifest unknown"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log: got %q; want it to contain %q", log, want)
		}
	}
	if n := strings.Count(log, "closing held connection"); n != 1 {
		t.Errorf("log lines for one failed flow: got %d; want 1", n)
	}
	if n := backend.accepted.Load(); n != 0 {
		t.Errorf("backend connections: got %d; want 0", n)
	}
}

func TestResetClosesBothSides(t *testing.T) {
	tests := []struct {
		name    string
		backend func(c *net.TCPConn)
		client  func(c *net.TCPConn)
	}{
		{
			name: "backend resets",
			backend: func(c *net.TCPConn) {
				io.ReadFull(c, make([]byte, 5))
				c.SetLinger(0)
				c.Close()
			},
			client: func(c *net.TCPConn) {},
		},
		{
			name: "client resets",
			backend: func(c *net.TCPConn) {
				// Reads until the proxy closes its side; the test waits
				// for that through the flow count.
				io.Copy(io.Discard, c)
			},
			client: func(c *net.TCPConn) {
				time.Sleep(20 * time.Millisecond)
				c.SetLinger(0)
				c.Close()
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend := startTestServer(t, tt.backend)
			addr, srv := proxyTo(t, &fakeBackend{addr: backend.Addr()}, nil)
			c := dialTCP(t, addr)
			c.Write([]byte("hello"))
			tt.client(c)
			if tt.name == "backend resets" {
				// The client must not hang waiting for a reply.
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err := io.ReadAll(c)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("client still open 10s after the backend reset")
				}
			}
			eventually(t, "the flow ends", func() bool { return srv.Flows() == 0 })
		})
	}
}

// BenchmarkCopyTCP compares a loopback transfer made directly with the
// same transfer through the proxy.
func BenchmarkCopyTCP(b *testing.B) {
	sink := startTestServer(b, func(c *net.TCPConn) {
		c.SetDeadline(time.Time{})
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprint(c, n)
	})
	proxied, _ := proxyTo(b, &fakeBackend{addr: sink.Addr()}, nil)
	// The idle reaper at its busiest: it reads TCP_INFO every 10ms.
	reaped, _ := proxyTo(b, &fakeBackend{addr: sink.Addr()}, func(s *Server) { s.FlowIdleTimeout = 40 * time.Millisecond })
	for _, bm := range []struct{ name, addr string }{
		{name: "direct", addr: sink.Addr()},
		{name: "proxy", addr: proxied},
		{name: "proxy-flow-idle-timeout", addr: reaped},
	} {
		b.Run(bm.name, func(b *testing.B) {
			c := dialTCP(b, bm.addr)
			c.SetDeadline(time.Time{})
			chunk := make([]byte, 1<<20)
			b.SetBytes(int64(len(chunk)))
			var sent int64
			for b.Loop() {
				n, err := c.Write(chunk)
				if err != nil {
					b.Fatal(err)
				}
				sent += int64(n)
			}
			c.CloseWrite()
			got, err := io.ReadAll(c)
			if err != nil || string(got) != fmt.Sprint(sent) {
				b.Fatalf("sink read %q, %v; want %d", got, err, sent)
			}
		})
	}
}

// BenchmarkFlowTCP measures a flow's whole life, one request and reply on a
// new connection each, made directly and through the proxy: what a client
// that does not keep connections alive costs. Client, proxy and backend
// share the process, so the proxy's cost is the difference.
func BenchmarkFlowTCP(b *testing.B) {
	backend := startTestServer(b, func(c *net.TCPConn) {
		var buf [64]byte
		if n, err := c.Read(buf[:]); err == nil {
			c.Write(buf[:n])
		}
	})
	proxied, _ := proxyTo(b, &fakeBackend{addr: backend.Addr()}, nil)
	ready, _ := proxyTo(b, &fakeBackend{addr: backend.Addr(), ready: true}, nil)
	for _, bm := range []struct{ name, addr string }{
		{name: "direct", addr: backend.Addr()},
		{name: "proxy", addr: proxied},
		{name: "proxy-readier", addr: ready},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				var buf [64]byte
				for pb.Next() {
					c, err := net.Dial("tcp", bm.addr)
					if err != nil {
						b.Error(err)
						return
					}
					c.Write([]byte("ping"))
					n, err := io.ReadFull(c, buf[:4])
					c.Close()
					if err != nil || string(buf[:n]) != "ping" {
						b.Errorf("read %q, %v; want ping", buf[:n], err)
						return
					}
				}
			})
		})
	}
}

// A flow to a backend that says it is ready is dialed without Start; one
// whose address cannot be had or refuses then takes the path that starts
// and waits.
func TestReadyBackend(t *testing.T) {
	echo := startTestServer(t, func(c *net.TCPConn) { io.Copy(c, c) })
	refused := closedPort(t)
	for _, tt := range []struct {
		name string
		be   interface {
			Backend
			Starts() int
		}
		wantStarts int
	}{
		{name: "ready", be: &fakeBackend{addr: echo.Addr(), ready: true}},
		{name: "no address when ready", be: &fakeBackend{addr: echo.Addr(), ready: true, addrFails: 1}, wantStarts: 1},
		{
			// The container crashed and its port refuses: Start brings it
			// back at a new address.
			name:       "refused when ready",
			be:         &restartingBackend{fakeBackend: &fakeBackend{addr: refused, ready: true}, next: echo.Addr()},
			wantStarts: 1,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := proxyTo(t, tt.be, nil)
			c := dialTCP(t, addr)
			c.Write([]byte("ping"))
			c.CloseWrite()
			got, err := io.ReadAll(c)
			if err != nil || string(got) != "ping" {
				t.Fatalf("echo through the proxy: got %q, %v; want %q", got, err, "ping")
			}
			if n := tt.be.Starts(); n != tt.wantStarts {
				t.Errorf("Start calls: got %d; want %d", n, tt.wantStarts)
			}
		})
	}
}

// restartingBackend is a fakeBackend whose Start moves it to next, as a
// container started again gets a new port.
type restartingBackend struct {
	*fakeBackend
	next string
}

func (b *restartingBackend) Start(ctx context.Context) error {
	b.setAddr(b.next)
	return b.fakeBackend.Start(ctx)
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A caller's DialContext on the ready path gets an attempt with a deadline:
// only the default dialer's connect is bounded by the kernel.
func TestReadyDialDeadline(t *testing.T) {
	echo := startTestServer(t, func(c *net.TCPConn) {})
	var deadline time.Duration
	s := &Server{
		Backend: &fakeBackend{addr: echo.Addr(), ready: true},
		Logger:  discardLogger(),
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if d, ok := ctx.Deadline(); ok {
				deadline = time.Until(d)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	c := s.dialReady(t.Context(), "tcp", "web")
	if c == nil {
		t.Fatal("dialReady to a ready backend: got nil conn")
	}
	c.Close()
	if deadline <= 0 || deadline > dialAttemptTimeout {
		t.Errorf("deadline of the dial's context: got %s from now; want within %s", deadline, dialAttemptTimeout)
	}
}
