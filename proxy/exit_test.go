package proxy

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestExitOnIdleLosesNoConnection races clients against the exit decision
// on real loopback sockets, many times over. Every client must be answered
// either by the Server ("this") or, if it was still in the listener's
// backlog when Run returned, by the next activation ("next").
func TestExitOnIdleLosesNoConnection(t *testing.T) {
	const rounds, clients = 60, 10
	var this, next int
	for round := range rounds {
		// The process the Server runs in exits when Run returns: from
		// then on, the backend behind it is gone.
		var gone atomic.Bool
		backend := startTestServer(t, func(c *net.TCPConn) {
			req, _ := io.ReadAll(c)
			if gone.Load() {
				return
			}
			c.Write(append([]byte("this:"), req...))
		})
		be := &fakeBackend{addr: backend.Addr()}

		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &Server{
			Backend:     be,
			Routes:      []Route{{Name: "web", Listener: slowPauseListener{ln.(*net.TCPListener)}}},
			IdleTimeout: 5 * time.Millisecond,
			ExitOnIdle:  true,
			Logger:      discardLogger(),
		}
		runErr := make(chan error, 1)
		go func() { runErr <- srv.Run(context.Background()) }()

		// The first client comes at once; the others are spread over
		// 30ms, so gaps longer than the idle timeout put some of them
		// right at the exit decision, and some after it.
		rng := rand.New(rand.NewPCG(uint64(round), 1))
		results := make(chan string, clients)
		for i := range clients {
			delay := time.Duration(rng.IntN(30_000)) * time.Microsecond
			if i == 0 {
				delay = 0
			}
			go raceClient(ln.Addr().String(), fmt.Sprintf("r%dc%d", round, i), delay, results)
		}

		select {
		case err := <-runErr:
			gone.Store(true)
			if err != nil {
				t.Fatalf("round %d: Run: %v", round, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Run did not exit on idle", round)
		}
		if n := srv.Flows(); n != 0 {
			t.Errorf("round %d: Run returned with %d flows open", round, n)
		}

		// The next activation answers what is left in the backlog.
		var wg sync.WaitGroup
		wg.Add(1)
		go nextActivation(ln, &wg)
		for range clients {
			r := <-results
			switch {
			case strings.HasPrefix(r, "this:"):
				this++
			case strings.HasPrefix(r, "next:"):
				next++
			default:
				t.Errorf("round %d: lost a connection: %s", round, r)
			}
		}
		ln.Close()
		wg.Wait()
	}
	t.Logf("%d answered by the server, %d left for the next activation, over %d rounds", this, next, rounds)
	if this == 0 || next == 0 {
		t.Errorf("answered by this server %d, by the next activation %d: want both, or the race was not exercised", this, next)
	}
}

// slowPauseListener widens the window between the idle decision and the
// moment accepting stops, where a connection may be accepted while the
// Server is on its way out: setting a deadline takes 2ms.
type slowPauseListener struct{ *net.TCPListener }

func (l slowPauseListener) SetDeadline(t time.Time) error {
	if !t.IsZero() {
		time.Sleep(2 * time.Millisecond)
	}
	return l.TCPListener.SetDeadline(t)
}

// raceClient dials after delay, sends req, half-closes and reports the
// reply, or what went wrong.
func raceClient(addr, req string, delay time.Duration, results chan<- string) {
	time.Sleep(delay)
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		results <- "dialing: " + err.Error()
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		results <- "writing: " + err.Error()
		return
	}
	c.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(c)
	if err != nil {
		results <- fmt.Sprintf("reading: %v (got %q)", err, reply)
		return
	}
	if want := req; !strings.HasSuffix(string(reply), want) {
		results <- fmt.Sprintf("reply %q; want it to end in %q", reply, want)
		return
	}
	results <- string(reply)
}

// nextActivation stands in for the process systemd would start next: it
// answers every connection left on ln until ln is closed.
func nextActivation(ln net.Listener, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		req, _ := io.ReadAll(c)
		c.Write(append([]byte("next:"), req...))
		c.Close()
	}
}
