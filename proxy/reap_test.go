package proxy

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// modalBackend is a test backend whose behaviour the client picks with the
// first byte it sends: 's' reads and stays silent, 'e' echoes, 'd' sends a
// byte every tick (a download), 'u' reads and never replies (an upload).
func modalBackend(tick time.Duration, silentEnded *atomic.Int64) func(c *net.TCPConn) {
	return func(c *net.TCPConn) {
		mode := make([]byte, 1)
		if _, err := io.ReadFull(c, mode); err != nil {
			return
		}
		switch mode[0] {
		case 's':
			io.Copy(io.Discard, c)
			silentEnded.Add(1)
		case 'e':
			echo(c)
		case 'd':
			for {
				time.Sleep(tick)
				if _, err := c.Write([]byte{'.'}); err != nil {
					return
				}
			}
		case 'u':
			io.Copy(io.Discard, c)
		}
	}
}

// stillOpen reports whether c is open: a read waits, rather than ending
// with EOF or an error.
func stillOpen(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err == nil {
		return errors.New("got an unexpected byte")
	}
	return err
}

// TestFlowIdleTimeout runs flows that move bytes in different ways for
// several FlowIdleTimeouts, on real loopback sockets, since the idle time
// comes from the kernel: only the silent TCP flow is closed.
func TestFlowIdleTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	const watch = 6 * timeout
	var silentEnded atomic.Int64
	backend := startTestServer(t, modalBackend(timeout/2, &silentEnded))
	sock := filepath.Join(t.TempDir(), "web.sock")
	uln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uln.Close() })
	logger, logs := bufferLogger()
	addr, srv := proxyTo(t, &fakeBackend{addr: backend.Addr()}, func(s *Server) {
		s.FlowIdleTimeout = timeout
		s.Logger = logger
		s.Routes = append(s.Routes, Route{Name: "sock", Listener: uln})
	})

	var silentClient string
	flows := []struct {
		name string
		run  func(t *testing.T)
	}{
		{name: "silent", run: func(t *testing.T) {
			c := dialTCP(t, addr)
			silentClient = c.LocalAddr().String()
			c.Write([]byte{'s'})
			start := time.Now()
			c.SetReadDeadline(time.Now().Add(watch))
			n, err := c.Read(make([]byte, 1))
			took := time.Since(start)
			if n != 0 || err != io.EOF {
				t.Fatalf("read on a silent flow: got %d bytes, %v; want EOF", n, err)
			}
			// The kernel counts in clock ticks: allow one (10ms at HZ=100).
			if max := timeout + reapInterval(timeout) + 500*time.Millisecond; took < timeout-10*time.Millisecond || took > max {
				t.Errorf("silent flow closed after %v; want between %v and %v", took, timeout, max)
			}
			// The backend's side was closed too (the unix-socket flow,
			// also silent, is open for a while yet).
			eventually(t, "the backend sees the silent flow end", func() bool { return silentEnded.Load() == 1 })
			t.Logf("FIGURE flow-idle-close: silent flow closed %v after its last byte (FlowIdleTimeout=%v, reaper every %v, loopback)", took.Round(time.Millisecond), timeout, reapInterval(timeout))
		}},
		{name: "echo every half timeout", run: func(t *testing.T) {
			c := dialTCP(t, addr)
			c.Write([]byte{'e'})
			for start := time.Now(); time.Since(start) < watch; {
				time.Sleep(timeout / 2)
				pipeRoundTripTCP(t, c, "x")
			}
		}},
		{name: "upload only", run: func(t *testing.T) {
			c := dialTCP(t, addr)
			c.Write([]byte{'u'})
			for start := time.Now(); time.Since(start) < watch; {
				time.Sleep(timeout / 2)
				if _, err := c.Write([]byte{'.'}); err != nil {
					t.Fatalf("uploading: %v", err)
				}
			}
			if err := stillOpen(c); err != nil {
				t.Errorf("upload-only flow after %v: %v; want it open", watch, err)
			}
		}},
		{name: "download only", run: func(t *testing.T) {
			c := dialTCP(t, addr)
			c.Write([]byte{'d'})
			got := 0
			for start := time.Now(); time.Since(start) < watch; {
				c.SetReadDeadline(time.Now().Add(timeout))
				n, err := c.Read(make([]byte, 16))
				if err != nil {
					t.Fatalf("downloading after %d bytes: %v", got, err)
				}
				got += n
			}
			if want := int(watch/(timeout/2)) - 2; got < want {
				t.Errorf("downloaded %d bytes; want at least %d", got, want)
			}
		}},
		{name: "unix socket silent", run: func(t *testing.T) {
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte{'s'})
			time.Sleep(watch)
			if err := stillOpen(c); err != nil {
				t.Errorf("silent unix-socket flow after %v: %v; want it open (not checked)", watch, err)
			}
		}},
	}
	// Concurrently, so the test takes one watch, not one per flow (t.Parallel
	// would run only GOMAXPROCS of them at a time).
	var wg sync.WaitGroup
	for _, f := range flows {
		wg.Go(func() { t.Run(f.name, f.run) })
	}
	wg.Wait()

	log := logs.String()
	if n := strings.Count(log, "closing connection: no data either way"); n != 1 {
		t.Errorf("idle closes logged: got %d; want 1 (the silent flow): %s", n, log)
	}
	for _, want := range []string{
		`level=INFO msg="closing connection: no data either way" remote=` + silentClient + " route=web idle=",
		"flow_idle_timeout=400ms",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log: got %q; want it to contain %q", log, want)
		}
	}
	eventually(t, "the watched flows are forgotten", func() bool {
		srv.watchMu.Lock()
		defer srv.watchMu.Unlock()
		return len(srv.watched) == srv.Flows()
	})
}

// TestFlowIdleClockStartsWhenConnected holds a client for longer than
// FlowIdleTimeout while the backend starts: the flow is served, and only
// closed once it has been silent for FlowIdleTimeout after that.
func TestFlowIdleClockStartsWhenConnected(t *testing.T) {
	const timeout = 300 * time.Millisecond
	backend := startTestServer(t, echo)
	be := &fakeBackend{addr: backend.Addr(), release: make(chan struct{})}
	addr, _ := proxyTo(t, be, func(s *Server) { s.FlowIdleTimeout = timeout })

	c := dialTCP(t, addr)
	c.Write([]byte("hello"))
	eventually(t, "the client is held", func() bool { return be.Waiting() == 1 })
	time.Sleep(3 * timeout)
	close(be.release)
	got := make([]byte, 5)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello" {
		t.Fatalf("echo after a long start: got %q, %v; want %q", got, err, "hello")
	}
	echoed := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read on the silent flow: got %d bytes, %v; want EOF", n, err)
	}
	if took := time.Since(echoed); took < timeout-10*time.Millisecond {
		t.Errorf("closed %v after the echo; want at least %v", took, timeout)
	}
}
