package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lazypod/lazypod/internal/backoff"
)

// Defaults for the zero values of Server's fields.
const (
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultReadyTimeout   = 60 * time.Second
	DefaultDialTimeout    = 5 * time.Second
	DefaultDrainTimeout   = 10 * time.Second
	DefaultUDPFlowTimeout = 30 * time.Second
	DefaultStopTimeout    = time.Minute
)

const (
	// dialRetryInterval is the pause between dials refused by a backend
	// that is still coming up.
	dialRetryInterval = 15 * time.Millisecond

	// dialAttemptTimeout bounds one connect to the backend.
	dialAttemptTimeout = time.Second

	// Accept and read errors that may go away (EMFILE, ENFILE, ...) are
	// retried after a pause that doubles from acceptBackoffMin up to
	// acceptBackoffMax.
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second

	// A flow whose backend has no address or cannot be dialed after Start
	// returned (it crashed, or an idle stop began) calls Start again, up
	// to connectAttempts times in all, pausing between attempts for a
	// time that doubles from connectBackoffMin up to connectBackoffMax.
	connectAttempts   = 10
	connectBackoffMin = 100 * time.Millisecond
	connectBackoffMax = 2 * time.Second
)

// Route is one listening socket and the name the Backend knows it by.
// Exactly one of Listener and PacketConn is set.
type Route struct {
	// Name is the listener's name (systemd's FileDescriptorName). It is
	// passed to Backend.Addr.
	Name string

	// Listener is a stream listener: a *net.TCPListener or a
	// *net.UnixListener, or anything else with a SetDeadline method, which
	// the Server needs to stop accepting without closing the listener.
	Listener net.Listener

	// PacketConn is a datagram socket, normally a *net.UDPConn.
	PacketConn net.PacketConn

	// Hold makes Listener a hold route: a connection there starts the
	// Backend, is told when it is ready (a line: HoldReady, or "error: "
	// and the reason), and then counts as an open flow, so the backend is
	// not stopped for being idle, until the client closes it. Nothing is
	// forwarded. Another service's lazypod holds one while its own
	// container, which needs this one, runs.
	Hold bool
}

// Server accepts flows on its routes, holds each until the Backend is
// ready, and forwards it there. It stops the Backend after a spell with no
// open flows and, with ExitOnIdle, returns so the process can exit until
// the next socket activation.
//
// The zero value with a Backend and Routes set is ready to Run. The Server
// never closes the listeners: they belong to the caller. Run may be called
// once at a time; Flows may be called from any goroutine.
type Server struct {
	// Backend is started when a flow arrives and stopped when idle.
	// Required.
	Backend Backend

	// Routes are the sockets to serve. At least one is required.
	Routes []Route

	// IdleTimeout is how long there must be no open flow before
	// Backend.Stop is called. If zero, DefaultIdleTimeout. If negative,
	// the backend is never stopped for being idle.
	IdleTimeout time.Duration

	// Quiet, if set, is called on a goroutine of its own once no flow
	// has been open for QuietAfter, once per such quiet spell: lazypod
	// gives memory back then. It must not block for long.
	Quiet func()

	// ExitOnIdle makes Run return nil after the idle stop, for
	// socket-activated use: connections that arrive meanwhile stay in the
	// listener's backlog for the next activation. If false, the Server
	// stops the backend and keeps accepting.
	ExitOnIdle bool

	// ReadyTimeout is how long an accepted flow waits for the backend:
	// for Backend.Start, and for Start again, up to 10 times in all, if
	// Backend.Addr or the dial then fails (the backend may have crashed
	// or been stopped for being idle meanwhile). If zero,
	// DefaultReadyTimeout. If negative, no limit.
	ReadyTimeout time.Duration

	// DialTimeout is how long dials to the backend are retried while it
	// refuses connections (it may still be coming up). If zero,
	// DefaultDialTimeout. If negative, one attempt with no time limit of
	// the Server's (the default dialer's connect still gives up after
	// about 3s on Linux).
	DialTimeout time.Duration

	// DrainTimeout is how long open flows may finish after Run's ctx is
	// cancelled; what is still open then is closed. If zero,
	// DefaultDrainTimeout. If negative, open flows are closed at once.
	DrainTimeout time.Duration

	// UDPFlowTimeout is how long a UDP flow may pass no datagram either way
	// before it is reaped. If zero or negative, DefaultUDPFlowTimeout.
	UDPFlowTimeout time.Duration

	// MaxConnections caps the open stream flows, across all stream routes,
	// from accept to close (a flow held while the backend starts counts).
	// At the cap the Server stops calling Accept: new connections wait in
	// the kernel's listen backlog, none is accepted and then closed or
	// reset, and the first waiting one is accepted as soon as a flow ends.
	// A full backlog (the listener's, systemd's Backlog=, at most
	// net.core.somaxconn) makes the kernel drop further SYNs, which
	// clients retry. If zero, DefaultMaxConnections(), sized to the file
	// descriptor limit beside DefaultMaxUDPFlows(): a connected TCP flow
	// holds six descriptors, its two sockets and a splice(2) pipe for each
	// direction (two without splice, as between other conn types). If
	// negative, no cap.
	//
	// Each stream route's accept loop checks the count before it waits in
	// Accept, so with several stream routes the count can pass the cap by
	// up to one less than their number (no route waits while another's
	// loop sits idle). UDP flows are not counted here but against
	// MaxUDPFlows.
	MaxConnections int

	// MaxUDPFlows caps the open flows of datagram routes (UDP, and
	// unixgram), across all of them, from a client's first datagram until
	// its flow is reaped or fails. At the cap, datagrams from a client
	// with no flow are dropped, counted, and logged at most once a second
	// (the read loop cannot make one client wait without making them all
	// wait, and UDP is lossy); clients that have a flow are served as
	// before, and a new client gets a flow once one ends. The cap is exact
	// across routes. If zero, DefaultMaxUDPFlows(), sized with
	// DefaultMaxConnections so that stream flows and UDP flows at their
	// default caps fit in the file descriptor limit together: a UDP flow
	// holds one descriptor, its socket to the backend. If negative, no
	// cap.
	//
	// Whatever the cap, the datagrams held for flows while the backend
	// starts are bounded: up to 64 per flow and 4 MiB in all, across all
	// flows; more are dropped, and each flow logs how many of its own were
	// once it is connected.
	MaxUDPFlows int

	// FlowIdleTimeout closes a TCP stream flow that has moved no byte
	// either way for this long, counted from when it was connected to the
	// backend (ReadyTimeout covers the wait before), and logs why. Bytes
	// in either direction keep the flow open: a long download or upload
	// is active. Nothing is added to the copy path: one goroutine reads
	// the kernel's TCP_INFO (the last data sent and received on the
	// client's socket) every quarter of FlowIdleTimeout (at least 10ms
	// apart, at most 10s), so a flow is closed up to that much after the
	// timeout. Flows from unix-socket listeners are never closed for being
	// idle, nor are UDP flows (UDPFlowTimeout covers those). If zero or
	// negative, flows are never closed for being idle.
	FlowIdleTimeout time.Duration

	// StopTimeout is how long Backend.Stop may take. If zero or negative,
	// DefaultStopTimeout. It should exceed the backend's own stop time
	// (a container's stop timeout and then some).
	StopTimeout time.Duration

	// DialContext dials the backend. If nil, a net.Dialer's with TCP
	// keep-alive probes off and, on Linux, TCP_SYNCNT=1, so the kernel
	// gives up on a connect whose SYN goes unanswered after about 3s.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// Logger receives flow failures and lifecycle events. If nil,
	// slog.Default().
	Logger *slog.Logger

	// Status receives a one-line human summary ("serving 3 connections")
	// for systemd's STATUS=. It is called from one goroutine, only when the
	// line changes, about once a second at most. If nil, no status.
	Status func(line string)

	// Heartbeat is called, for systemd's WATCHDOG=1, from the goroutine
	// that supervises the Server (the one that runs the idle clock, calls
	// Status and Backend.Stop, and shuts down): once when Run begins, then
	// every HeartbeatInterval while that goroutine is responsive. While it
	// waits on work with a bound of its own (Backend.Stop, StopTimeout;
	// the drain, DrainTimeout) the beats go on until the work overruns its
	// bound by HeartbeatGrace, then stop until it ends, so that the
	// watchdog restarts a process stuck in a Stop that ignores its ctx.
	// A Status that blocks stops them too. Flows are served by goroutines
	// of their own and never delay a beat. Heartbeat must not block. If
	// nil, none.
	Heartbeat func()

	// HeartbeatInterval is how often Heartbeat is called; under systemd,
	// half of WatchdogSec= (WATCHDOG_USEC). If zero or negative,
	// DefaultHeartbeatInterval, one second.
	HeartbeatInterval time.Duration

	// mu guards the flow counters, read by the idle clock.
	mu        sync.Mutex
	open      int       // open flows
	accepted  uint64    // flows ever begun, to notice one during an exit
	zeroSince time.Time // when open last became 0
	kick      chan struct{}

	// running is set when a flow calls Backend.Start and cleared before
	// an idle Backend.Stop: whether the backend may need stopping.
	running atomic.Bool

	// base is the origin of the UDP flows' activity clocks.
	base time.Time

	// maxConns is MaxConnections with its default applied; 0 means no
	// cap. streams (under mu) counts the open stream flows; slotFreed
	// (under mu) is closed and replaced when streams drops below maxConns.
	maxConns  int
	streams   int
	slotFreed chan struct{}
	atCap     atomic.Int32 // accept loops waiting for streams < maxConns
	capLogged atomic.Int64 // when the cap was last logged, in Unix ns

	// maxUDP is MaxUDPFlows with its default applied; 0 means no cap.
	// udpFlows (under mu) counts the open UDP flows, each until its
	// backend socket is closed.
	maxUDP       int
	udpFlows     int
	udpCapDrops  atomic.Uint64 // datagrams dropped at maxUDP
	udpCapLogged atomic.Int64  // when they were last logged, in Unix ns

	// held is the size in bytes of the datagrams all UDP flows hold while
	// the backend starts, at most maxHeldBytes.
	held atomic.Int64

	// watched are the TCP flows the idle reaper looks at.
	watchMu sync.Mutex
	watched map[*watchedFlow]struct{}

	routes   []*route
	loopStop chan struct{}  // closed to stop the accept and read loops
	loopErr  chan error     // a loop's permanent failure
	loopWG   sync.WaitGroup // accept and read loops
	flowWG   sync.WaitGroup // every flow goroutine
	streamWG sync.WaitGroup // stream flows, waited for on drain
}

// route is a Route at run time.
type route struct {
	name string
	ln   net.Listener
	pc   net.PacketConn
	hold bool         // a hold route (Route.Hold)
	udp  *net.UDPConn // pc, when it is UDP: the allocation-free path
	dl   deadliner

	buf []byte // the read loop's datagram buffer

	counts routeCounts

	mu     sync.Mutex
	byAddr map[netip.AddrPort]*udpFlow // UDP flows by client
	byName map[string]*udpFlow         // other datagram flows by client
}

// deadliner is what the Server needs to interrupt an accept or a read
// without closing the socket.
type deadliner interface {
	SetDeadline(t time.Time) error
}

// Run serves the routes until ctx is cancelled, a listener fails, or, with
// ExitOnIdle, the backend has been stopped for being idle.
//
// On cancellation it stops accepting, lets open flows finish for up to
// DrainTimeout, closes the rest, stops the backend if it was started, and
// returns nil. It returns an error if the configuration is unusable, a
// listener fails for good, or the final Backend.Stop fails. Every goroutine
// it started has ended when it returns; the listeners are left open.
func (s *Server) Run(ctx context.Context) error {
	routes, err := s.checkRoutes()
	if err != nil {
		return err
	}
	if s.Backend == nil {
		return errors.New("running proxy: Backend is nil")
	}

	now := time.Now()
	s.mu.Lock()
	s.open, s.accepted, s.zeroSince = 0, 0, now
	s.streams, s.slotFreed = 0, make(chan struct{})
	s.udpFlows = 0
	s.kick = make(chan struct{}, 1)
	s.mu.Unlock()
	s.base = now
	s.running.Store(false)
	s.mu.Lock()
	s.routes = routes // under mu for Counts
	s.mu.Unlock()
	s.loopErr = make(chan error, len(routes))
	s.maxConns = s.maxConnections()
	s.maxUDP = s.maxUDPFlows()
	s.held.Store(0)
	s.watched = make(map[*watchedFlow]struct{})

	// Flows outlive ctx by up to DrainTimeout; flowCtx ends them.
	flowCtx, cancelFlows := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFlows()

	if d := s.FlowIdleTimeout; d > 0 {
		stop, done := make(chan struct{}), make(chan struct{})
		go s.reapIdleFlows(d, stop, done)
		defer func() {
			close(stop)
			<-done
		}()
	}

	s.startLoops(flowCtx)
	return s.supervise(ctx, flowCtx, cancelFlows)
}

// Flows reports how many flows are open: stream connections from accept
// to close, and UDP clients from their first datagram until reaped.
func (s *Server) Flows() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// checkRoutes validates s.Routes and returns their run-time form.
func (s *Server) checkRoutes() ([]*route, error) {
	if len(s.Routes) == 0 {
		return nil, errors.New("running proxy: no routes")
	}
	routes := make([]*route, 0, len(s.Routes))
	for _, r := range s.Routes {
		rt := &route{name: r.Name, ln: r.Listener, pc: r.PacketConn, hold: r.Hold}
		switch {
		case (r.Listener == nil) == (r.PacketConn == nil):
			return nil, fmt.Errorf("checking route %q: set exactly one of Listener and PacketConn", r.Name)
		case r.Hold && r.Listener == nil:
			return nil, fmt.Errorf("checking route %q: a hold route needs a Listener", r.Name)
		case r.Listener != nil:
			dl, ok := r.Listener.(deadliner)
			if !ok {
				return nil, fmt.Errorf("checking route %q: listener %T has no SetDeadline method, so it cannot be paused without closing it; pass a *net.TCPListener or *net.UnixListener", r.Name, r.Listener)
			}
			rt.dl = dl
		default:
			rt.dl = packetDeadliner{r.PacketConn}
			rt.udp, _ = r.PacketConn.(*net.UDPConn)
			rt.buf = make([]byte, maxDatagram)
			if rt.udp != nil {
				rt.byAddr = make(map[netip.AddrPort]*udpFlow)
			} else {
				rt.byName = make(map[string]*udpFlow)
			}
		}
		routes = append(routes, rt)
	}
	return routes, nil
}

// packetDeadliner interrupts a packet conn's reads, leaving writes alone:
// replies still go out while the read loops are paused.
type packetDeadliner struct{ pc net.PacketConn }

func (p packetDeadliner) SetDeadline(t time.Time) error { return p.pc.SetReadDeadline(t) }

// startLoops starts one accept loop per stream route and one read loop per
// datagram route.
func (s *Server) startLoops(ctx context.Context) {
	s.loopStop = make(chan struct{})
	for _, rt := range s.routes {
		s.loopWG.Add(1)
		if rt.ln != nil {
			go s.acceptLoop(ctx, rt, s.loopStop)
		} else {
			go s.serveUDP(ctx, rt, s.loopStop)
		}
	}
}

// stopLoops stops accepting and reading on every route, without closing
// anything: it interrupts blocked calls with a deadline in the past and
// waits for the loops to return. Sockets' deadlines stay set until
// clearDeadlines, so the kernel keeps new connections in the backlog.
func (s *Server) stopLoops() {
	if s.loopStop == nil {
		return
	}
	close(s.loopStop)
	s.loopStop = nil
	now := time.Now()
	for _, rt := range s.routes {
		if err := rt.dl.SetDeadline(now); err != nil {
			s.logger().Debug("interrupting listener", "route", rt.name, "err", err)
		}
	}
	s.loopWG.Wait()
}

// clearDeadlines undoes stopLoops' deadlines, leaving the sockets as the
// caller gave them.
func (s *Server) clearDeadlines() {
	for _, rt := range s.routes {
		if err := rt.dl.SetDeadline(time.Time{}); err != nil {
			s.logger().Debug("clearing listener deadline", "route", rt.name, "err", err)
		}
	}
}

// loopFailed hands a loop's permanent error to Run.
func (s *Server) loopFailed(err error) {
	select {
	case s.loopErr <- err:
	default:
	}
}

// flowBegin counts a flow as open and reports true; stream flows count
// against MaxConnections, UDP flows against MaxUDPFlows. If MaxUDPFlows UDP
// flows are open, it counts no new one and reports false.
func (s *Server) flowBegin(stream bool) bool {
	s.mu.Lock()
	if !stream {
		if s.maxUDP > 0 && s.udpFlows >= s.maxUDP {
			s.mu.Unlock()
			return false
		}
		s.udpFlows++
	}
	s.open++
	s.accepted++
	if stream {
		s.streams++
	}
	first := s.open == 1
	s.mu.Unlock()
	if first {
		s.poke()
	}
	return true
}

// flowEnd counts a flow as closed.
func (s *Server) flowEnd(stream bool) {
	s.mu.Lock()
	s.open--
	last := s.open == 0
	if last {
		s.zeroSince = time.Now()
	}
	if stream {
		s.streams--
		if s.streams == s.maxConns-1 {
			// Wake the accept loops waiting at the cap.
			close(s.slotFreed)
			s.slotFreed = make(chan struct{})
		}
	} else {
		s.udpFlows--
	}
	s.mu.Unlock()
	if last {
		s.poke()
	}
}

// poke tells the idle clock that the open count left or reached zero.
func (s *Server) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// connectStep names the step of connectBackend that failed.
type connectStep int

const (
	stepStart connectStep = iota // Backend.Start
	stepAddr                     // Backend.Addr
	stepDial                     // dialing the backend
)

// connectBackend makes the backend ready and dials it for route rt on
// behalf of one flow, which it counts as held if it has to wait. If
// Backend.Addr or the dial (after dialBackend's retries) fails, the
// backend may have crashed or been stopped since Start returned, so it
// calls Start again and retries, up to connectAttempts times, all within
// ReadyTimeout. On failure it returns the step that failed last and its
// error.
func (s *Server) connectBackend(ctx context.Context, network string, rt *route) (net.Conn, connectStep, error) {
	if !s.running.Load() {
		s.running.Store(true)
	}
	route := rt.name
	if c := s.dialReady(ctx, network, route); c != nil {
		return c, 0, nil
	}
	rt.counts.held.Add(1)
	d := s.readyTimeout()
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	delay := backoff.Delay{Min: connectBackoffMin, Max: connectBackoffMax}
	for attempt := 1; ; attempt++ {
		if err := s.Backend.Start(ctx); err != nil {
			return nil, stepStart, startError(ctx, err, d)
		}
		step := stepAddr
		addr, err := s.Backend.Addr(route)
		if err == nil {
			step = stepDial
			var c net.Conn
			// A backend that died since (its address gone or changed)
			// ends the dial's retries: start it again instead of
			// knocking on a dead port.
			moved := func() bool {
				a, err := s.Backend.Addr(route)
				return err != nil || a != addr
			}
			if c, err = s.dialBackend(ctx, network, addr, moved); err == nil {
				return c, 0, nil
			}
		}
		if attempt == connectAttempts || ctx.Err() != nil {
			return nil, step, err
		}
		s.logger().Debug("starting backend again", "route", route, "attempt", attempt, "err", err)
		if !backoff.Sleep(ctx.Done(), delay.Next()) {
			return nil, step, err
		}
	}
}

// Readier is a Backend that can say, without waiting, whether it is ready
// now. For such a Backend a flow that arrives while it is ready is dialed
// at once, without the timers that bound the wait for Start and the
// dial's retries. When Ready returns true, Backend.Addr must give the
// address as it would after Start returned nil. The launcher is one.
type Readier interface {
	Ready() bool
}

// dialReady dials the backend for route once, if it says it is ready, and
// returns the conn, or nil if the backend is not ready or the attempt
// failed; connectBackend then takes the path that waits and retries.
//
// With the default dialer on Linux the attempt sets no deadline: the kernel
// gives up on a connect whose SYN goes unanswered after one retransmission
// (about three seconds, see synRetries), and a connect on loopback is
// otherwise answered at once. That spares a flow the timer, the context
// and the two poller deadline updates a bounded dial costs: with the ready
// wait's and the retries' contexts, 7% of the proxy's CPU for one-request
// connections. A DialContext of the caller's, or another system, gets an
// attempt bounded by dialAttemptTimeout instead.
func (s *Server) dialReady(ctx context.Context, network, route string) net.Conn {
	r, ok := s.Backend.(Readier)
	if !ok || !r.Ready() {
		return nil
	}
	addr, err := s.Backend.Addr(route)
	if err != nil {
		return nil
	}
	if s.DialContext != nil || !kernelBoundsConnect {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.attemptTimeout())
		defer cancel()
	}
	// Grown here, once the flow is past any wait for a start: a flow held
	// through a cold start keeps a small stack until then.
	growStack()
	c, err := s.dial(ctx, network, addr)
	if err != nil {
		s.logger().Debug("dialing ready backend; retrying", "route", route, "err", err)
		return nil
	}
	return c
}

// stopBackend calls Backend.Stop, or with idle Idler.Idle if the backend
// has it, with a bounded context that survives the cancellation of ctx.
// With a Heartbeat, the call runs on a goroutine of its own while the
// supervising goroutine, which calls stopBackend, beats until it returns
// or overruns StopTimeout by HeartbeatGrace.
func (s *Server) stopBackend(ctx context.Context, hb *heart, idle bool) error {
	d := s.stopTimeout()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	stop := s.Backend.Stop
	if i, ok := s.Backend.(Idler); ok && idle {
		stop = i.Idle
	}
	if !hb.on() {
		return stop(ctx)
	}
	var err error
	done := make(chan struct{})
	go callStop(ctx, stop, &err, done)
	hb.await(done, d, "stopping backend")
	return err
}

// callStop calls stop for stopBackend, sets *err to its result, and
// closes done.
func callStop(ctx context.Context, stop func(context.Context) error, err *error, done chan<- struct{}) {
	defer close(done)
	*err = stop(ctx)
}

// dialBackend dials addr, retrying for up to DialTimeout while the backend
// refuses connections or an attempt times out, unless moved reports that
// the backend's address is no longer addr. Each attempt is bounded by
// dialAttemptTimeout: a connect on loopback is answered at once, and one
// that hangs is better tried afresh.
func (s *Server) dialBackend(ctx context.Context, network, addr string, moved func() bool) (net.Conn, error) {
	limit := s.dialTimeout()
	if limit < 0 {
		c, err := s.dial(ctx, network, addr)
		if err != nil {
			return nil, fmt.Errorf("dialing backend %s: %w", addr, err)
		}
		return c, nil
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var t *time.Timer
	for {
		actx, acancel := context.WithTimeout(ctx, dialAttemptTimeout)
		c, err := s.dial(actx, network, addr)
		acancel()
		if err == nil {
			return c, nil
		}
		// Refused: not listening yet. Timed out: the attempt's own time
		// ran out, or the kernel gave up on an unanswered SYN.
		retry := errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ETIMEDOUT) ||
			(errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil)
		if !retry || ctx.Err() != nil {
			return nil, fmt.Errorf("dialing backend %s: %w", addr, err)
		}
		if moved != nil && moved() {
			return nil, fmt.Errorf("dialing backend %s: backend gone meanwhile: %w", addr, err)
		}
		if t == nil {
			t = time.NewTimer(dialRetryInterval)
			defer t.Stop()
		} else {
			t.Reset(dialRetryInterval)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dialing backend %s for %s: %w", addr, limit, err)
		case <-t.C:
		}
	}
}

// retryable reports whether an accept or read error may go away by itself.
func retryable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true // a stale deadline
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// stopping reports whether stop is closed.
func stopping(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if s.DialContext != nil {
		return s.DialContext(ctx, network, addr)
	}
	return backendDialer.DialContext(ctx, network, addr)
}

// backendDialer dials backends. It turns off TCP keep-alive probes, whose
// four setsockopt calls per flow are a measurable share of a short flow
// and which a backend on this host does not need, and has the kernel give
// up on an unanswered connect after synRetries retransmitted SYNs.
var backendDialer = net.Dialer{KeepAlive: -1, Control: limitSYNs}

// attemptTimeout bounds one dial: dialAttemptTimeout, or DialTimeout if
// that is shorter.
func (s *Server) attemptTimeout() time.Duration {
	if d := s.dialTimeout(); d > 0 {
		return min(d, dialAttemptTimeout)
	}
	return dialAttemptTimeout
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout == 0 {
		return DefaultIdleTimeout
	}
	return s.IdleTimeout
}

// readyTimeout returns the wait for Backend.Start; 0 means no limit.
func (s *Server) readyTimeout() time.Duration {
	switch {
	case s.ReadyTimeout == 0:
		return DefaultReadyTimeout
	case s.ReadyTimeout < 0:
		return 0
	}
	return s.ReadyTimeout
}

// dialTimeout returns how long to retry dials; negative means one attempt.
func (s *Server) dialTimeout() time.Duration {
	if s.DialTimeout == 0 {
		return DefaultDialTimeout
	}
	return s.DialTimeout
}

// drainTimeout returns how long to wait for open flows; 0 means not at all.
func (s *Server) drainTimeout() time.Duration {
	switch {
	case s.DrainTimeout == 0:
		return DefaultDrainTimeout
	case s.DrainTimeout < 0:
		return 0
	}
	return s.DrainTimeout
}

func (s *Server) udpFlowTimeout() time.Duration {
	if s.UDPFlowTimeout <= 0 {
		return DefaultUDPFlowTimeout
	}
	return s.UDPFlowTimeout
}

func (s *Server) heartbeatInterval() time.Duration {
	if s.HeartbeatInterval <= 0 {
		return DefaultHeartbeatInterval
	}
	return s.HeartbeatInterval
}

func (s *Server) stopTimeout() time.Duration {
	if s.StopTimeout <= 0 {
		return DefaultStopTimeout
	}
	return s.StopTimeout
}
