package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// bubbleServer returns a Server on a pipeListener with an echo backend,
// for use inside a synctest bubble.
func bubbleServer(idle time.Duration, exit bool) (*Server, *pipeListener, *fakeBackend) {
	ln := newPipeListener()
	be := &fakeBackend{addr: "backend:80"}
	srv := &Server{
		Backend:     be,
		Routes:      []Route{{Name: "web", Listener: ln}},
		IdleTimeout: idle,
		ExitOnIdle:  exit,
		DialContext: dialPipeEcho,
		Logger:      discardLogger(),
	}
	return srv, ln, be
}

func TestIdleStopsAfterExactlyIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, be := bubbleServer(time.Minute, false)
		r := startRun(t, srv)

		c := ln.Dial()
		pipeRoundTrip(t, c, "hello")
		time.Sleep(10 * time.Second) // the flow stays open meanwhile
		c.Close()
		synctest.Wait()
		closed := time.Now()
		if n := srv.Flows(); n != 0 {
			t.Fatalf("Flows() after close: got %d; want 0", n)
		}

		time.Sleep(time.Minute - time.Nanosecond)
		synctest.Wait()
		if n := len(be.Stops()); n != 0 {
			t.Fatalf("Stop calls 1ns before the idle timeout: got %d; want 0", n)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		stops := be.Stops()
		if len(stops) != 1 {
			t.Fatalf("Stop calls at the idle timeout: got %d; want 1", len(stops))
		}
		if got := stops[0].Sub(closed); got != time.Minute {
			t.Errorf("Stop came %v after the last flow closed; want %v", got, time.Minute)
		}
		if r.Returned() {
			t.Fatal("Run returned after the idle stop without ExitOnIdle")
		}

		// Still serving: a new flow starts the backend again.
		c = ln.Dial()
		pipeRoundTrip(t, c, "again")
		c.Close()
		if got := be.Starts(); got != 2 {
			t.Errorf("Start calls: got %d; want 2", got)
		}
		if err := r.Stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		// The shutdown stops the backend again: it was started since.
		if got := len(be.Stops()); got != 2 {
			t.Errorf("Stop calls after shutdown: got %d; want 2", got)
		}
	})
}

func TestIdleStopErrorRetriedAfterIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, be := bubbleServer(time.Minute, false)
		logger, logs := bufferLogger()
		srv.Logger = logger
		be.stopErr = errors.New("container busy")
		r := startRun(t, srv)

		c := ln.Dial()
		pipeRoundTrip(t, c, "x")
		c.Close()
		synctest.Wait()
		closed := time.Now()
		time.Sleep(150 * time.Second)
		var got []time.Duration
		for _, at := range be.Stops() {
			got = append(got, at.Sub(closed))
		}
		if want := []time.Duration{time.Minute, 2 * time.Minute}; !slices.Equal(got, want) {
			t.Errorf("Stop calls after the last flow: got %v; want %v", got, want)
		}
		if !strings.Contains(logs.String(), `level=ERROR msg="stopping idle backend" err="container busy"`) {
			t.Errorf("log: got %q; want the Stop error", logs)
		}
		err := r.Stop()
		if err == nil || !strings.Contains(err.Error(), "stopping backend on shutdown: container busy") {
			t.Errorf("Run: got %v; want the wrapped Stop error", err)
		}
	})
}

func TestIdleClockDisarmedByFlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, be := bubbleServer(time.Minute, false)
		startRun(t, srv)

		a := ln.Dial()
		pipeRoundTrip(t, a, "a")
		a.Close()
		synctest.Wait()

		// A second flow opens just before the idle timeout and stays open
		// for much longer: no stop.
		time.Sleep(59 * time.Second)
		b := ln.Dial()
		pipeRoundTrip(t, b, "b")
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if n := srv.Flows(); n != 1 {
			t.Fatalf("Flows(): got %d; want 1", n)
		}
		if n := len(be.Stops()); n != 0 {
			t.Fatalf("Stop calls while a flow is open: got %d; want 0", n)
		}

		// Closing it re-arms the clock from the close.
		b.Close()
		synctest.Wait()
		closed := time.Now()
		time.Sleep(2 * time.Minute)
		stops := be.Stops()
		if len(stops) != 1 {
			t.Fatalf("Stop calls: got %d; want 1", len(stops))
		}
		if got := stops[0].Sub(closed); got != time.Minute {
			t.Errorf("Stop came %v after the close; want %v", got, time.Minute)
		}
	})
}

func TestIdleNegativeNeverStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, be := bubbleServer(-1, true)
		r := startRun(t, srv)

		c := ln.Dial()
		pipeRoundTrip(t, c, "x")
		c.Close()
		time.Sleep(1000 * time.Hour)
		synctest.Wait()
		if n := len(be.Stops()); n != 0 {
			t.Fatalf("Stop calls with a negative IdleTimeout: got %d; want 0", n)
		}
		if r.Returned() {
			t.Fatal("Run returned with a negative IdleTimeout")
		}
	})
}

func TestIdleNotStartedNothingToStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, _, be := bubbleServer(time.Minute, false)
		r := startRun(t, srv)
		time.Sleep(time.Hour)
		if n := len(be.Stops()); n != 0 {
			t.Errorf("Stop calls for a backend never started: got %d; want 0", n)
		}
		if err := r.Stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := len(be.Stops()); n != 0 {
			t.Errorf("Stop calls on shutdown of a backend never started: got %d; want 0", n)
		}
	})
}

func TestExitOnIdleReturnsFromRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, be := bubbleServer(time.Minute, true)
		r := startRun(t, srv)

		c := ln.Dial()
		pipeRoundTrip(t, c, "hello")
		c.Close()
		synctest.Wait()
		closed := time.Now()

		<-r.done
		if r.err != nil {
			t.Fatalf("Run: got %v; want nil", r.err)
		}
		if got := time.Since(closed); got != time.Minute {
			t.Errorf("Run returned %v after the last flow; want %v", got, time.Minute)
		}
		if n := len(be.Stops()); n != 1 {
			t.Errorf("Stop calls: got %d; want 1", n)
		}
		if d := ln.Deadline(); !d.IsZero() {
			t.Errorf("listener deadline after Run: got %v; want none", d)
		}
		// The listener is left open for the next activation.
		c = ln.Dial()
		c.Close()
		if _, err := ln.Accept(); err != nil {
			t.Errorf("Accept after Run returned: %v", err)
		}
	})
}

func TestExitOnIdleNeverStartedExits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, _, be := bubbleServer(time.Minute, true)
		start := time.Now()
		if err := srv.Run(t.Context()); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := time.Since(start); got != time.Minute {
			t.Errorf("Run returned after %v; want %v", got, time.Minute)
		}
		if n := len(be.Stops()); n != 0 {
			t.Errorf("Stop calls: got %d; want 0", n)
		}
	})
}

func TestExitOnIdleStopErrorReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, be := bubbleServer(time.Minute, true)
		be.stopErr = errors.New("container busy")
		r := startRun(t, srv)
		c := ln.Dial()
		pipeRoundTrip(t, c, "x")
		c.Close()
		<-r.done
		if r.err == nil || !strings.Contains(r.err.Error(), "stopping idle backend: container busy") {
			t.Errorf("Run: got %v; want the wrapped Stop error", r.err)
		}
	})
}

// TestExitOnIdleServesConnAcceptedDuringDecision accepts a connection
// between the idle timeout and the moment accepting stops: the exit is
// called off and the connection served.
func TestExitOnIdleServesConnAcceptedDuringDecision(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, be := bubbleServer(time.Minute, true)
		lateCh := make(chan net.Conn, 1)
		hooked := false // only touched by the Server's goroutine
		ln.beforeDeadline = func(d time.Time) {
			if d.IsZero() || hooked {
				return
			}
			hooked = true
			lateCh <- ln.Dial()
			<-ln.accepted // handed out before the deadline applies
		}
		r := startRun(t, srv)

		c := ln.Dial()
		<-ln.accepted
		pipeRoundTrip(t, c, "first")
		c.Close()
		synctest.Wait()
		closed := time.Now()

		time.Sleep(time.Minute)
		synctest.Wait()
		var late net.Conn
		select {
		case late = <-lateCh:
		default:
			t.Fatal("the exit decision did not stop accepting")
		}
		if r.Returned() {
			t.Fatalf("Run returned (%v) with an accepted connection open", r.err)
		}
		if n := len(be.Stops()); n != 0 {
			t.Fatalf("Stop calls: got %d; want 0", n)
		}
		pipeRoundTrip(t, late, "late")
		if d := ln.Deadline(); !d.IsZero() {
			t.Errorf("listener deadline after the exit was called off: got %v; want none", d)
		}

		// Accepting resumed.
		c = ln.Dial()
		pipeRoundTrip(t, c, "resumed")
		c.Close()
		late.Close()
		synctest.Wait()
		lastClose := time.Now()

		<-r.done
		if r.err != nil {
			t.Fatalf("Run: %v", r.err)
		}
		if got := time.Since(lastClose); got != time.Minute {
			t.Errorf("Run returned %v after the last flow; want %v (first idle at %v)", got, time.Minute, closed)
		}
		if n := len(be.Stops()); n != 1 {
			t.Errorf("Stop calls: got %d; want 1", n)
		}
	})
}

// TestExitOnIdleLeavesBacklog sends a connection once accepting has stopped:
// Run exits without touching it, and it waits for the next activation.
func TestExitOnIdleLeavesBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, _ := bubbleServer(time.Minute, true)
		var late net.Conn
		ln.afterDeadline = func(d time.Time) {
			if !d.IsZero() && late == nil {
				late = ln.Dial()
			}
		}
		if err := srv.Run(t.Context()); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if late == nil {
			t.Fatal("the exit decision did not stop accepting")
		}
		if n := ln.Backlog(); n != 1 {
			t.Fatalf("backlog after Run: got %d; want 1", n)
		}
		// The next activation gets it intact.
		next, err := ln.Accept()
		if err != nil {
			t.Fatalf("Accept after Run: %v", err)
		}
		go pipeEcho(next)
		pipeRoundTrip(t, late, "next")
		late.Close()
	})
}

func TestShutdownDrains(t *testing.T) {
	tests := []struct {
		name     string
		holdFor  time.Duration // how long the client keeps its flow open after cancel
		wantDone time.Duration // when Run returns after cancel
	}{
		{name: "flow ends within drain", holdFor: 3 * time.Second, wantDone: 3 * time.Second},
		{name: "flow outlasts drain", holdFor: time.Hour, wantDone: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, ln, be := bubbleServer(time.Minute, false)
				r := startRun(t, srv)
				c := ln.Dial()
				pipeRoundTrip(t, c, "hi")
				hangUp := time.AfterFunc(tt.holdFor, func() { c.Close() })
				defer hangUp.Stop()

				start := time.Now()
				r.cancel()
				synctest.Wait()
				if n := ln.Backlog(); n != 0 {
					t.Fatalf("backlog: %d", n)
				}
				// Accepting stopped at once; the flow still works.
				if !r.Returned() {
					pipeRoundTrip(t, c, "draining")
				}
				<-r.done
				if r.err != nil {
					t.Fatalf("Run: %v", r.err)
				}
				if got := time.Since(start); got != tt.wantDone {
					t.Errorf("Run returned %v after cancel; want %v", got, tt.wantDone)
				}
				if n := srv.Flows(); n != 0 {
					t.Errorf("Flows() after Run: got %d; want 0", n)
				}
				if n := len(be.Stops()); n != 1 {
					t.Errorf("Stop calls: got %d; want 1", n)
				}
				// The flow's conn was closed by then.
				if _, err := c.Write([]byte("x")); err == nil {
					t.Error("client write after Run returned: got nil error; want the conn closed")
				}
				c.Close()
			})
		})
	}
}

func TestAcceptBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, _ := bubbleServer(-1, false)
		emfile := &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
		for range 10 {
			ln.errs = append(ln.errs, emfile)
		}
		r := startRun(t, srv)
		c := ln.Dial()
		pipeRoundTrip(t, c, "after backoff")
		c.Close()
		if err := r.Stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}

		ln.mu.Lock()
		calls := ln.calls
		ln.mu.Unlock()
		var gaps []time.Duration
		for i := 1; i < len(calls) && i <= 10; i++ {
			gaps = append(gaps, calls[i].Sub(calls[i-1]))
		}
		ms := time.Millisecond
		want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second}
		if !slices.Equal(gaps, want) {
			t.Errorf("gaps between Accept calls: got %v; want %v", gaps, want)
		}
	})
}

func TestAcceptPermanentErrorEndsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, _ := bubbleServer(-1, false)
		ln.errs = []error{errors.New("listener broken")}
		err := srv.Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), `accepting on route "web": listener broken`) {
			t.Errorf("Run: got %v; want the accept error", err)
		}
	})
}

func TestDialRetriesWhileRefused(t *testing.T) {
	tests := []struct {
		name        string
		refusedFor  time.Duration
		wantServed  bool
		wantLogPart string
	}{
		{name: "comes up", refusedFor: 2 * time.Second, wantServed: true},
		{name: "never comes up", refusedFor: time.Hour, wantLogPart: "closing connection: backend not reachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, ln, _ := bubbleServer(-1, false)
				logger, logs := bufferLogger()
				srv.Logger = logger
				up := time.Now().Add(tt.refusedFor)
				dials := 0
				srv.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
					dials++
					if time.Now().Before(up) {
						return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
					}
					return dialPipeEcho(ctx, network, addr)
				}
				startRun(t, srv)
				c := ln.Dial()
				defer c.Close()
				start := time.Now()
				if _, err := c.Write([]byte("ping")); err != nil {
					if tt.wantServed {
						t.Fatalf("write: %v", err)
					}
				}
				if tt.wantServed {
					got := make([]byte, 4)
					if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
						t.Errorf("reply: got %q, %v; want %q", got, err, "ping")
					}
					if took := time.Since(start); took < tt.refusedFor || took > tt.refusedFor+dialRetryInterval {
						t.Errorf("served after %v; want within %v of %v", took, dialRetryInterval, tt.refusedFor)
					}
					return
				}
				got, _ := io.ReadAll(c)
				if len(got) != 0 {
					t.Errorf("reply: got %q; want none", got)
				}
				// Each attempt retries for DialTimeout, then Start is
				// called again, until ReadyTimeout.
				if took := time.Since(start); took != DefaultReadyTimeout {
					t.Errorf("gave up after %v; want %v", took, DefaultReadyTimeout)
				}
				if dials < 100 {
					t.Errorf("dial attempts: got %d; want retries every %v", dials, dialRetryInterval)
				}
				synctest.Wait()
				if !strings.Contains(logs.String(), tt.wantLogPart) {
					t.Errorf("log: got %q; want it to contain %q", logs, tt.wantLogPart)
				}
			})
		})
	}
}

func TestReadyTimeoutClosesHeldConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, be := bubbleServer(-1, false)
		be.release = make(chan struct{}) // never released
		srv.ReadyTimeout = 30 * time.Second
		logger, logs := bufferLogger()
		srv.Logger = logger
		startRun(t, srv)

		c := ln.Dial()
		defer c.Close()
		start := time.Now()
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("read on a held connection whose backend never came up: got nil error")
		}
		if got := time.Since(start); got != 30*time.Second {
			t.Errorf("held for %v; want %v", got, 30*time.Second)
		}
		synctest.Wait()
		for _, want := range []string{"level=WARN", `msg="closing held connection: backend not ready"`, "route=web", "waiting 30s for backend to start"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log: got %q; want it to contain %q", logs, want)
			}
		}
	})
}

func TestStatusLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, _ := bubbleServer(2*time.Minute, false)
		type line struct {
			at   time.Time
			text string
		}
		var lines []line
		srv.Status = func(s string) { lines = append(lines, line{time.Now(), s}) }
		r := startRun(t, srv)

		time.Sleep(5 * time.Second)
		a, b := ln.Dial(), ln.Dial()
		pipeRoundTrip(t, a, "a")
		pipeRoundTrip(t, b, "b")
		time.Sleep(5 * time.Second)
		a.Close()
		time.Sleep(5 * time.Second)
		b.Close()
		time.Sleep(3 * time.Minute)
		if err := r.Stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}

		var texts []string
		for i, l := range lines {
			texts = append(texts, l.text)
			if i > 0 && l.text == lines[i-1].text {
				t.Errorf("line %d repeats %q", i, l.text)
			}
			event := func(s string) bool { return s == "stopping container" || s == "shutting down" }
			if i > 0 && !event(l.text) && !event(lines[i-1].text) && l.at.Sub(lines[i-1].at) < time.Second {
				t.Errorf("line %d %q came %v after the previous one; want at least 1s", i, l.text, l.at.Sub(lines[i-1].at))
			}
		}
		for _, want := range []string{
			"idle",
			"serving 2 connections",
			"serving 1 connection",
			"no connections; stopping container in 2m",
			"no connections; stopping container in 59s",
			"no connections; stopping container in 1s",
			"stopping container",
			"idle",
			"shutting down",
		} {
			i := slices.Index(texts, want)
			if i < 0 {
				t.Fatalf("status lines: got %q; want %q in order", texts, want)
			}
			texts = texts[i+1:]
		}
	})
}

func TestRoughDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{-time.Second, "0s"},
		{time.Millisecond, "1s"},
		{59 * time.Second, "59s"},
		{time.Minute, "1m"},
		{4*time.Minute + time.Second, "5m"},
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
		{2*time.Hour + 10*time.Minute, "2h10m"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.d), func(t *testing.T) {
			if got := roughDuration(tt.d); got != tt.want {
				t.Errorf("roughDuration(%v): got %q; want %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestRunChecksConfig(t *testing.T) {
	ln := newPipeListener()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	tests := []struct {
		name string
		srv  *Server
		want string
	}{
		{name: "no backend", srv: &Server{Routes: []Route{{Name: "a", Listener: ln}}}, want: "Backend is nil"},
		{name: "no routes", srv: &Server{Backend: &fakeBackend{}}, want: "no routes"},
		{name: "neither", srv: &Server{Backend: &fakeBackend{}, Routes: []Route{{Name: "a"}}}, want: `checking route "a": set exactly one`},
		{name: "both", srv: &Server{Backend: &fakeBackend{}, Routes: []Route{{Name: "a", Listener: ln, PacketConn: pc}}}, want: `checking route "a": set exactly one`},
		{name: "no deadline", srv: &Server{Backend: &fakeBackend{}, Routes: []Route{{Name: "a", Listener: noDeadlineListener{ln}}}}, want: "has no SetDeadline method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := tt.srv.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run: got %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

// noDeadlineListener hides its listener's SetDeadline.
type noDeadlineListener struct{ net.Listener }

func TestStartAgainWhenBackendGone(t *testing.T) {
	unreachable := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.EHOSTUNREACH}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name         string
		readyTimeout time.Duration
		addrFails    int           // Addr calls that fail, as while the launcher notices a crash
		dialErrs     []error       // the first dials' errors
		refusedFor   time.Duration // dials are refused until then
		wantStarts   int
		wantTook     time.Duration // until served, or closed
		wantLog      string        // if set, the connection is closed with this log
	}{
		{name: "no address once", addrFails: 1, wantStarts: 2, wantTook: connectBackoffMin},
		{name: "unreachable once", dialErrs: []error{unreachable}, wantStarts: 2, wantTook: connectBackoffMin},
		{
			name:       "refused past the dial timeout",
			refusedFor: DefaultDialTimeout + time.Second,
			wantStarts: 2,
			wantTook:   DefaultDialTimeout + time.Second,
		},
		{
			name:       "no address, ever",
			addrFails:  1000,
			wantStarts: connectAttempts,
			// 100ms, 200ms, 400ms, 800ms, 1.6s, then 2s four times.
			wantTook: 11100 * time.Millisecond,
			wantLog:  `msg="closing connection: backend has no address for route" remote=pipe route=web err="container is stopped"`,
		},
		{
			name:         "unreachable until the ready timeout",
			readyTimeout: time.Second,
			dialErrs:     slices.Repeat([]error{unreachable}, 1000),
			wantStarts:   4, // pauses of 100ms, 200ms, 400ms, then 800ms cut short
			wantTook:     time.Second,
			wantLog:      `msg="closing connection: backend not reachable" remote=pipe route=web err="dialing backend backend:80: dial tcp: no route to host"`,
		},
		{
			name:       "refused, ever",
			refusedFor: time.Hour,
			wantStarts: connectAttempts,
			wantTook:   DefaultReadyTimeout,
			wantLog:    `msg="closing connection: backend not reachable"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, ln, be := bubbleServer(-1, false)
				logger, logs := bufferLogger()
				srv.Logger = logger
				srv.ReadyTimeout = tt.readyTimeout
				be.addrFails = tt.addrFails
				up := time.Now().Add(tt.refusedFor)
				errs := tt.dialErrs
				srv.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
					if len(errs) > 0 {
						err := errs[0]
						errs = errs[1:]
						return nil, err
					}
					if time.Now().Before(up) {
						return nil, refused
					}
					return dialPipeEcho(ctx, network, addr)
				}
				startRun(t, srv)
				c := ln.Dial()
				defer c.Close()
				start := time.Now()
				c.Write([]byte("ping")) // fails if the connection is closed unread
				got, err := io.ReadAll(io.LimitReader(c, 4))
				took := time.Since(start)
				if tt.wantLog == "" && (err != nil || string(got) != "ping") {
					t.Errorf("reply: got %q, %v; want %q", got, err, "ping")
				}
				if tt.wantLog != "" && len(got) != 0 {
					t.Errorf("reply: got %q; want none", got)
				}
				if took != tt.wantTook {
					t.Errorf("served or closed after %v; want %v", took, tt.wantTook)
				}
				if n := be.Starts(); n != tt.wantStarts {
					t.Errorf("Start calls: got %d; want %d", n, tt.wantStarts)
				}
				synctest.Wait()
				if tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog) {
					t.Errorf("log: got %q; want it to contain %q", logs, tt.wantLog)
				}
			})
		})
	}
}

func TestStopTimeout(t *testing.T) {
	tests := []struct {
		stopTimeout time.Duration
		want        time.Duration
	}{
		{stopTimeout: 0, want: DefaultStopTimeout},
		{stopTimeout: 90 * time.Second, want: 90 * time.Second},
		{stopTimeout: -1, want: DefaultStopTimeout},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.stopTimeout), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, ln, be := bubbleServer(time.Minute, false)
				srv.StopTimeout = tt.stopTimeout
				r := startRun(t, srv)
				c := ln.Dial()
				pipeRoundTrip(t, c, "hello")
				c.Close()
				time.Sleep(time.Minute) // the idle stop
				synctest.Wait()
				if err := r.Stop(); err != nil {
					t.Fatalf("Run: %v", err)
				}
				got := be.StopTimes()
				if len(got) != 1 || got[0] != tt.want {
					t.Errorf("Stop's time: got %v; want [%v]", got, tt.want)
				}
			})
		})
	}
}

// idlerBackend is a fakeBackend that is an Idler: it counts Idle calls.
type idlerBackend struct {
	*fakeBackend
	idles atomic.Int32
}

func (b *idlerBackend) Idle(ctx context.Context) error {
	b.idles.Add(1)
	return nil
}

// TestIdlerIdleAtIdleStopOnShutdown: a backend that is an Idler gets Idle
// after the idle timeout, with or without ExitOnIdle, and Stop on
// shutdown.
func TestIdlerIdleAtIdleStopOnShutdown(t *testing.T) {
	for _, exit := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			srv, ln, be := bubbleServer(time.Minute, exit)
			ib := &idlerBackend{fakeBackend: be}
			srv.Backend = ib
			r := startRun(t, srv)
			c := ln.Dial()
			pipeRoundTrip(t, c, "hello")
			c.Close()
			time.Sleep(2 * time.Minute)
			synctest.Wait()
			if ib.idles.Load() != 1 || len(be.Stops()) != 0 {
				t.Errorf("exit-on-idle %v, after the idle timeout: %d Idle, %d Stop calls; want 1, 0", exit, ib.idles.Load(), len(be.Stops()))
			}
			if exit {
				<-r.done
				return
			}
			c = ln.Dial()
			pipeRoundTrip(t, c, "again")
			if err := r.Stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			c.Close()
			if ib.idles.Load() != 1 || len(be.Stops()) != 1 {
				t.Errorf("on shutdown: %d Idle, %d Stop calls; want 1, 1", ib.idles.Load(), len(be.Stops()))
			}
		})
	}
}

// TestQuietOncePerSpell: Quiet is called QuietAfter after the last flow
// closed, once per quiet spell, and not while a flow is open.
func TestQuietOncePerSpell(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, _ := bubbleServer(time.Hour, false)
		var quiets atomic.Int32
		srv.Quiet = func() { quiets.Add(1) }
		startRun(t, srv)
		c := ln.Dial()
		pipeRoundTrip(t, c, "hello")
		time.Sleep(10 * QuietAfter)
		synctest.Wait()
		if n := quiets.Load(); n != 0 {
			t.Errorf("Quiet calls with a flow open: %d; want 0", n)
		}
		c.Close()
		synctest.Wait()
		time.Sleep(QuietAfter - time.Millisecond)
		synctest.Wait()
		if n := quiets.Load(); n != 0 {
			t.Errorf("Quiet calls just before QuietAfter: %d; want 0", n)
		}
		time.Sleep(10 * QuietAfter)
		synctest.Wait()
		if n := quiets.Load(); n != 1 {
			t.Errorf("Quiet calls in one quiet spell: %d; want 1", n)
		}
		c = ln.Dial()
		pipeRoundTrip(t, c, "again")
		c.Close()
		time.Sleep(2 * QuietAfter)
		synctest.Wait()
		if n := quiets.Load(); n != 2 {
			t.Errorf("Quiet calls after a second spell: %d; want 2", n)
		}
	})
}
