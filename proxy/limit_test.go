package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sys/unix"
)

func TestMaxConnectionsFor(t *testing.T) {
	// Stream flows get (nofile - reserve - UDP share) / 6; the UDP share
	// is (nofile - reserve) / 8, at least 1, at most 4096.
	tests := []struct {
		nofile uint64
		want   int
		udp    int
	}{
		{nofile: 0, want: 1, udp: 1},
		{nofile: 20, want: 2, udp: 1},    // reserve 5: (15-1)/6
		{nofile: 64, want: 7, udp: 6},    // reserve 16: (48-6)/6
		{nofile: 70, want: 7, udp: 6},    // reserve 17: (53-6)/6
		{nofile: 256, want: 28, udp: 24}, // reserve 64: (192-24)/6
		{nofile: 1024, want: 140, udp: 120},
		{nofile: 524288, want: 86688, udp: maxUDPFlowsCeiling},
		{nofile: math.MaxUint32, want: maxConnectionsCeiling, udp: maxUDPFlowsCeiling},
		{nofile: unix.RLIM_INFINITY, want: maxConnectionsCeiling, udp: maxUDPFlowsCeiling},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.nofile), func(t *testing.T) {
			if got := maxConnectionsFor(tt.nofile); got != tt.want {
				t.Errorf("maxConnectionsFor(%d): got %d; want %d", tt.nofile, got, tt.want)
			}
			if got := maxUDPFlowsFor(tt.nofile); got != tt.udp {
				t.Errorf("maxUDPFlowsFor(%d): got %d; want %d", tt.nofile, got, tt.udp)
			}
		})
	}
}

// TestDefaultCapsFitNofile checks that stream flows and UDP flows at their
// default caps hold no more descriptors than the limit leaves beside the
// reserve, for every limit that fits one flow of each (below that, each cap
// is still 1).
func TestDefaultCapsFitNofile(t *testing.T) {
	limits := []uint64{1 << 16, 1 << 20, 524288, 1<<31 - 1}
	for n := uint64(1); n <= 4096; n++ {
		limits = append(limits, n)
	}
	for _, nofile := range limits {
		if fdBudget(nofile) < fdsPerFlow+1 {
			continue
		}
		streams, udp := uint64(maxConnectionsFor(nofile)), uint64(maxUDPFlowsFor(nofile))
		reserve := min(uint64(fdReserve), nofile/4)
		if used := streams*fdsPerFlow + udp; used+reserve > nofile {
			t.Errorf("nofile %d: %d stream flows and %d UDP flows hold %d descriptors, plus a reserve of %d; want at most %d",
				nofile, streams, udp, used, reserve, nofile)
		}
	}
}

func TestDefaultMaxUDPFlowsFollowsRlimit(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got, want := DefaultMaxUDPFlows(), maxUDPFlowsFor(lim.Cur); got != want {
		t.Errorf("DefaultMaxUDPFlows() under a soft limit of %d: got %d; want %d", lim.Cur, got, want)
	}
	tests := []struct {
		name string
		max  int
		want int
	}{
		{name: "zero", max: 0, want: DefaultMaxUDPFlows()},
		{name: "set", max: 3, want: 3},
		{name: "negative", max: -1, want: 0}, // no cap
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (&Server{MaxUDPFlows: tt.max}).maxUDPFlows(); got != tt.want {
				t.Errorf("MaxUDPFlows %d: got cap %d; want %d", tt.max, got, tt.want)
			}
		})
	}
}

func TestDefaultMaxConnectionsFollowsRlimit(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got, want := DefaultMaxConnections(), maxConnectionsFor(lim.Cur); got != want {
		t.Errorf("DefaultMaxConnections() under a soft limit of %d: got %d; want %d", lim.Cur, got, want)
	}
	if got, want := (&Server{}).maxConnections(), DefaultMaxConnections(); got != want {
		t.Errorf("zero MaxConnections: got %d; want %d", got, want)
	}
	if got := (&Server{MaxConnections: -1}).maxConnections(); got != 0 {
		t.Errorf("negative MaxConnections: got %d; want 0 (no cap)", got)
	}
}

// TestMaxConnectionsStopsAccepting checks, in a bubble, that at the cap the
// Server calls Accept no more, so later connections stay in the backlog,
// and takes exactly one more each time a flow ends.
func TestMaxConnectionsStopsAccepting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, _ := bubbleServer(-1, false)
		srv.MaxConnections = 2
		logger, logs := bufferLogger()
		srv.Logger = logger
		var status []string
		srv.Status = func(s string) { status = append(status, s) }
		startRun(t, srv)

		c1, c2 := ln.Dial(), ln.Dial()
		pipeRoundTrip(t, c1, "c1")
		pipeRoundTrip(t, c2, "c2")
		c3, c4 := ln.Dial(), ln.Dial()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := srv.Flows(); n != 2 {
			t.Fatalf("Flows() at the cap: got %d; want 2", n)
		}
		if n := ln.Backlog(); n != 2 {
			t.Fatalf("connections left in the backlog: got %d; want 2", n)
		}
		if !strings.Contains(logs.String(), `level=WARN msg="connection limit reached; new connections wait in the listen backlog" route=web max_connections=2`) {
			t.Errorf("log: got %q; want the cap reported", logs)
		}
		if want := "serving 2 connections; at the connection limit, new connections wait"; !slices.Contains(status, want) {
			t.Errorf("status lines: got %q; want %q", status, want)
		}

		// Each flow that ends lets exactly one more in.
		c1.Close()
		synctest.Wait()
		if n := ln.Backlog(); n != 1 {
			t.Fatalf("backlog after one flow ended: got %d; want 1", n)
		}
		if n := srv.Flows(); n != 2 {
			t.Fatalf("Flows() after one flow ended: got %d; want 2", n)
		}
		pipeRoundTrip(t, c3, "c3")
		c2.Close()
		pipeRoundTrip(t, c4, "c4")
		c3.Close()
		c4.Close()
		synctest.Wait()
		if n := srv.Flows(); n != 0 {
			t.Errorf("Flows() at the end: got %d; want 0", n)
		}
	})
}

// TestMaxConnectionsSeveralRoutes checks that no route waits while another
// route's accept loop is idle, at the price of passing the cap by up to one
// flow per extra route.
func TestMaxConnectionsSeveralRoutes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, a, _ := bubbleServer(-1, false)
		b := newPipeListener()
		srv.Routes = append(srv.Routes, Route{Name: "other", Listener: b})
		srv.MaxConnections = 1
		startRun(t, srv)
		synctest.Wait() // both loops wait in Accept

		// Route a is idle: route b is served.
		b1 := b.Dial()
		pipeRoundTrip(t, b1, "b1")
		// Both loops were waiting in Accept: a is served too, one past the
		// cap.
		a1 := a.Dial()
		pipeRoundTrip(t, a1, "a1")
		a2, b2 := a.Dial(), b.Dial()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := srv.Flows(); n != 2 {
			t.Fatalf("Flows() past the cap: got %d; want 2", n)
		}
		if n := a.Backlog() + b.Backlog(); n != 2 {
			t.Fatalf("connections left in the backlogs: got %d; want 2", n)
		}
		// Below the cap again: one of them is served, or both if both
		// loops got past the check before either accepted.
		a1.Close()
		b1.Close()
		synctest.Wait()
		if n := a.Backlog() + b.Backlog(); n > 1 {
			t.Fatalf("connections left in the backlogs below the cap: got %d; want at most 1", n)
		}
		first, second := a2, b2
		if a.Backlog() == 1 {
			first, second = b2, a2
		}
		pipeRoundTrip(t, first, "first")
		first.Close()
		pipeRoundTrip(t, second, "second")
		second.Close()
		// Route a idle again: route b is served at once.
		b3 := b.Dial()
		pipeRoundTrip(t, b3, "b3")
		b3.Close()
	})
}

// TestMaxConnectionsWaitInBacklog sends N+K clients to a Server capped at
// N on real loopback sockets: the K extra are neither reset nor answered
// while N flows are open, and each is served once the first N close.
func TestMaxConnectionsWaitInBacklog(t *testing.T) {
	const n, k = 3, 5
	backend := startTestServer(t, echo)
	addr, srv := proxyTo(t, &fakeBackend{addr: backend.Addr()}, func(s *Server) { s.MaxConnections = n })

	conns := make([]*net.TCPConn, n+k)
	for i := range conns {
		conns[i] = dialTCP(t, addr)
		fmt.Fprintf(conns[i], "client %d\n", i)
	}
	eventually(t, "the first connections reach the backend", func() bool { return backend.accepted.Load() == n })
	time.Sleep(300 * time.Millisecond)
	if got := backend.accepted.Load(); got != n {
		t.Fatalf("backend connections at the cap: got %d; want %d", got, n)
	}
	if got := srv.Flows(); got != n {
		t.Fatalf("Flows() at the cap: got %d; want %d", got, n)
	}
	// Which n got in is up to the kernel's accept queue: look at all.
	served := 0
	var servedConns []*net.TCPConn // closed once every client was looked at
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		got, err := bufio.NewReader(c).ReadString('\n')
		var ne net.Error
		switch {
		case err == nil && got == fmt.Sprintf("client %d\n", i):
			served++
			servedConns = append(servedConns, c)
			conns[i] = nil
		case errors.As(err, &ne) && ne.Timeout():
			// Waiting in the backlog.
		default:
			t.Fatalf("client %d at the cap: got %q, %v; want its echo or nothing yet", i, got, err)
		}
	}
	if served != n {
		t.Fatalf("clients served at the cap: got %d; want %d", served, n)
	}

	for _, c := range servedConns {
		c.Close()
	}
	start := time.Now()
	for i, c := range conns {
		if c == nil {
			continue
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := bufio.NewReader(c).ReadString('\n')
		if want := fmt.Sprintf("client %d\n", i); err != nil || got != want {
			t.Errorf("client %d after the first ones closed: got %q, %v; want %q", i, got, err, want)
		}
		c.Close()
	}
	eventually(t, "all flows end", func() bool { return srv.Flows() == 0 })
	if got := backend.accepted.Load(); got != n+k {
		t.Errorf("backend connections: got %d; want %d", got, n+k)
	}
	t.Logf("FIGURE max-connections: %d of %d clients waited in the backlog, 0 reset, all served within %v of the first %d closing (MaxConnections=%d, loopback)",
		k, n+k, time.Since(start).Round(time.Millisecond), n, n)
}

// TestFDsPerFlow counts the descriptors a connected, silent TCP flow holds,
// which DefaultMaxConnections is sized by.
func TestFDsPerFlow(t *testing.T) {
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skipf("cannot count descriptors without /proc: %v", err)
	}
	tests := []struct {
		name   string
		splice bool
		want   int
	}{
		{name: "splice", splice: true, want: fdsPerFlow},
		{name: "nosplice", splice: false, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const flows = 50
			// An echo that does not splice, so it holds one descriptor
			// per connection.
			backend := startTestServer(t, func(c *net.TCPConn) {
				io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{c})
				c.CloseWrite()
			})
			addr, srv := proxyTo(t, &fakeBackend{addr: backend.Addr()}, func(s *Server) {
				if !tt.splice {
					// A conn that is not a *net.TCPConn: io.Copy cannot splice.
					s.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
						var d net.Dialer
						c, err := d.DialContext(ctx, network, addr)
						return struct{ net.Conn }{c}, err
					}
				}
			})
			before := settledFDs(t)
			conns := make([]*net.TCPConn, flows)
			for i := range conns {
				conns[i] = dialTCP(t, addr)
				pipeRoundTripTCP(t, conns[i], "x")
			}
			eventually(t, "every flow is open", func() bool { return srv.Flows() == flows })
			// Both directions of every flow are waiting for data by now.
			time.Sleep(100 * time.Millisecond)
			after := countFDs(t)
			// Each flow also holds the test's client conn and the test
			// backend's conn.
			perFlow := float64(after-before)/flows - 2
			t.Logf("FIGURE fds-per-flow-%s: %.2f (open descriptors of the test process with %d silent connected flows, less the test's own 2 per flow)", tt.name, perFlow, flows)
			if perFlow > float64(tt.want)+0.1 || perFlow < float64(tt.want)-0.5 {
				t.Errorf("descriptors per flow: got %.2f; want %d", perFlow, tt.want)
			}
			for _, c := range conns {
				c.Close()
			}
			eventually(t, "all flows end", func() bool { return srv.Flows() == 0 })
		})
	}
}

// pipeRoundTripTCP writes msg to c and reads the echo back.
func pipeRoundTripTCP(t *testing.T, c *net.TCPConn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("writing %q: %v", msg, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo of %q: got %q, %v", msg, got, err)
	}
}

// countFDs returns how many descriptors the process has open.
func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // the directory being read
}

// settledFDs returns the open descriptor count once splice pipes pooled by
// earlier flows are gone: the pool empties over two collections, and the
// pipes close in cleanups that run after. It waits until the count holds
// over several collections.
func settledFDs(t *testing.T) int {
	t.Helper()
	n, same := countFDs(t), 0
	for range 100 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		m := countFDs(t)
		if m != n {
			n, same = m, 0
			continue
		}
		if same++; same == 4 {
			return n
		}
	}
	t.Fatalf("descriptor count still changing after 100 collections: %d", n)
	return n
}
