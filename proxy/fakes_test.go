package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// fakeBackend is a Backend for tests. Its Start waits for release, if set,
// and then returns startErr.
type fakeBackend struct {
	startErr error
	stopErr  error
	release  chan struct{} // if not nil, Start waits until it is closed
	ready    bool          // what Ready returns

	mu        sync.Mutex
	addr      string // what Addr returns; see setAddr
	addrFails int    // how many more Addr calls fail
	starts    int    // Start calls
	waiting   int    // Start calls waiting for release
	stops     []time.Time
	stopTimes []time.Duration // how long each Stop's ctx gave it
}

func (b *fakeBackend) Start(ctx context.Context) error {
	b.mu.Lock()
	b.starts++
	b.waiting++
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.waiting--
		b.mu.Unlock()
	}()
	if b.release != nil {
		select {
		case <-b.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.startErr
}

func (b *fakeBackend) Ready() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ready
}

func (b *fakeBackend) Addr(route string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.addrFails > 0 {
		b.addrFails--
		return "", errors.New("container is stopped")
	}
	if b.addr == "" {
		return "", errors.New("no address")
	}
	return b.addr, nil
}

// setAddr changes what Addr returns, as a restarted backend may.
func (b *fakeBackend) setAddr(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addr = addr
}

func (b *fakeBackend) Stop(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stops = append(b.stops, time.Now())
	if d, ok := ctx.Deadline(); ok {
		b.stopTimes = append(b.stopTimes, time.Until(d))
	} else {
		b.stopTimes = append(b.stopTimes, -1)
	}
	return b.stopErr
}

// StopTimes returns how long each Stop call's ctx allowed, or -1 for no
// deadline.
func (b *fakeBackend) StopTimes() []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Duration(nil), b.stopTimes...)
}

func (b *fakeBackend) Starts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.starts
}

func (b *fakeBackend) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiting
}

func (b *fakeBackend) Stops() []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.stops...)
}

// pipeListener is a net.Listener for synctest bubbles: Dial queues one end
// of a net.Pipe in its backlog and Accept hands out the other. Like a real
// listener, a deadline in the past makes Accept fail at once, even with
// connections waiting.
type pipeListener struct {
	mu       sync.Mutex
	backlog  []net.Conn
	deadline time.Time
	wake     chan struct{} // closed and replaced on every change
	closed   bool
	errs     []error     // returned by the next Accept calls, one each
	calls    []time.Time // when Accept was called
	accepted chan struct{}

	// beforeDeadline and afterDeadline, if set, run in SetDeadline
	// before and after the new deadline applies.
	beforeDeadline func(t time.Time)
	afterDeadline  func(t time.Time)
}

func newPipeListener() *pipeListener {
	return &pipeListener{wake: make(chan struct{}), accepted: make(chan struct{}, 100)}
}

// changed wakes Accept. l.mu is held.
func (l *pipeListener) changed() {
	close(l.wake)
	l.wake = make(chan struct{})
}

// Dial queues a connection and returns the client's end.
func (l *pipeListener) Dial() net.Conn {
	client, server := net.Pipe()
	l.mu.Lock()
	l.backlog = append(l.backlog, server)
	l.changed()
	l.mu.Unlock()
	return client
}

// Backlog returns how many connections wait to be accepted.
func (l *pipeListener) Backlog() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.backlog)
}

func (l *pipeListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls = append(l.calls, time.Now())
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, net.ErrClosed
		}
		if !l.deadline.IsZero() && !time.Now().Before(l.deadline) {
			l.mu.Unlock()
			return nil, os.ErrDeadlineExceeded
		}
		if len(l.backlog) > 0 {
			c := l.backlog[0]
			l.backlog = l.backlog[1:]
			l.mu.Unlock()
			select {
			case l.accepted <- struct{}{}:
			default:
			}
			return c, nil
		}
		wake := l.wake
		var expire <-chan time.Time
		var t *time.Timer
		if !l.deadline.IsZero() {
			t = time.NewTimer(time.Until(l.deadline))
			expire = t.C
		}
		l.mu.Unlock()
		select {
		case <-wake:
		case <-expire:
		}
		if t != nil {
			t.Stop()
		}
	}
}

func (l *pipeListener) SetDeadline(t time.Time) error {
	if l.beforeDeadline != nil {
		l.beforeDeadline(t)
	}
	l.mu.Lock()
	l.deadline = t
	l.changed()
	l.mu.Unlock()
	if l.afterDeadline != nil {
		l.afterDeadline(t)
	}
	return nil
}

// Deadline returns the deadline last set.
func (l *pipeListener) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

func (l *pipeListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.changed()
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// dialPipeEcho is a DialContext for bubbles: every dial reaches an echo
// server over a net.Pipe.
func dialPipeEcho(ctx context.Context, network, addr string) (net.Conn, error) {
	client, server := net.Pipe()
	go pipeEcho(server)
	return client, nil
}

// pipeEcho echoes c until its peer closes.
func pipeEcho(c net.Conn) {
	defer c.Close()
	io.Copy(c, c)
}

// pipeRoundTrip writes msg to c and reads the echo back.
func pipeRoundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("writing %q: %v", msg, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading echo of %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("echo: got %q; want %q", got, msg)
	}
}

// syncBuffer is a bytes.Buffer safe for a slog handler used by many
// goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// discardLogger drops everything.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// bufferLogger logs text to a buffer the test can read.
func bufferLogger() (*slog.Logger, *syncBuffer) {
	b := &syncBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// running is a Server.Run in the background.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, once done is closed
}

// startRun runs srv in the background. Stop is also called in t.Cleanup,
// so Run never outlives the test.
func startRun(t testing.TB, srv *Server) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go r.run(ctx, srv)
	t.Cleanup(func() { r.Stop() })
	return r
}

func (r *running) run(ctx context.Context, srv *Server) {
	defer close(r.done)
	r.err = srv.Run(ctx)
}

// Stop cancels Run and returns its error.
func (r *running) Stop() error {
	r.cancel()
	<-r.done
	return r.err
}

// Returned reports whether Run has returned.
func (r *running) Returned() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// eventually polls cond every few milliseconds for up to 10s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
