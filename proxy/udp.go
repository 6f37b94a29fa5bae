package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lazypod/lazypod/internal/backoff"
)

const (
	// maxDatagram is the size of every datagram buffer: the largest UDP
	// payload fits.
	maxDatagram = 64 << 10

	// udpQueueLen is how many datagrams a UDP flow keeps while the backend
	// starts; more are dropped.
	udpQueueLen = 64

	// maxHeldBytes bounds the datagrams, in bytes, that all UDP flows keep
	// in all while the backend starts; more are dropped like those beyond
	// a flow's udpQueueLen. Without it a flood from many (spoofed) client
	// addresses could make each flow hold 64 datagrams of up to 64 KiB.
	// 4 MiB is a full queue of the largest datagrams, or some 40000 of
	// the DNS-sized ones.
	maxHeldBytes = 4 << 20
)

// bufPool holds maxDatagram-byte buffers for the reply loops.
var bufPool = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

// udpFlow is one client of a datagram route, with its own connected socket
// to the backend.
type udpFlow struct {
	s    *Server
	rt   *route
	ap   netip.AddrPort // the client, on *net.UDPConn routes
	addr net.Addr       // the client, on other routes
	key  string         // addr's key in rt.byName

	// last is when a datagram last passed either way, in nanoseconds since
	// Server.base. It is written under rt.mu by the read loop and read
	// under rt.mu by the reaper, so a flow that just got a datagram is
	// never reaped.
	last atomic.Int64

	// conn is the backend socket. It is set before ready, never after.
	conn  net.Conn
	ready atomic.Bool

	mu      sync.Mutex
	queue   [][]byte // datagrams that arrived before ready
	queued  int      // their size in bytes, counted in Server.held
	dropped int      // datagrams beyond the queue or maxHeldBytes
	dead    bool     // the flow failed or was reaped; drop what arrives
}

// serveUDP reads datagrams on rt until stop is closed or the socket fails
// for good, and forwards each to its client's flow, creating the flow for
// a new client. It never waits for the backend.
func (s *Server) serveUDP(ctx context.Context, rt *route, stop <-chan struct{}) {
	defer s.loopWG.Done()
	delay := backoff.Delay{Min: acceptBackoffMin, Max: acceptBackoffMax}
	for {
		var (
			n    int
			ap   netip.AddrPort // the client, on *net.UDPConn routes
			addr net.Addr       // the client, on other routes
			f    *udpFlow
			err  error
		)
		if rt.udp != nil {
			n, ap, err = rt.udp.ReadFromUDPAddrPort(rt.buf)
		} else {
			n, addr, err = rt.pc.ReadFrom(rt.buf)
		}
		if err == nil {
			delay.Reset()
			if f = s.udpFlowFor(ctx, rt, ap, addr); f == nil {
				s.dropAtUDPCap(rt, ap, addr)
				continue
			}
			f.send(rt.buf[:n])
			continue
		}
		if stopping(stop) {
			return
		}
		if !retryable(err) {
			s.loopFailed(fmt.Errorf("reading datagrams on route %q: %w", rt.name, err))
			return
		}
		d := delay.Next()
		if d == acceptBackoffMin {
			s.logger().Warn("reading datagram; backing off", "route", rt.name, "err", err)
		}
		if !backoff.Sleep(stop, d) {
			return
		}
	}
}

// udpFlowFor returns the flow of the client at ap (or addr), marked active
// now, and starts a new flow if the client has none. It returns nil if the
// client has none and MaxUDPFlows flows are open.
func (s *Server) udpFlowFor(ctx context.Context, rt *route, ap netip.AddrPort, addr net.Addr) *udpFlow {
	now := int64(time.Since(s.base))
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var (
		f   *udpFlow
		key string
	)
	if rt.udp != nil {
		f = rt.byAddr[ap]
	} else {
		if addr != nil {
			key = addr.String()
		}
		f = rt.byName[key]
	}
	if f != nil {
		f.last.Store(now)
		return f
	}
	if !s.flowBegin(false) {
		return nil
	}
	f = &udpFlow{s: s, rt: rt, ap: ap, addr: addr}
	f.last.Store(now)
	if rt.udp != nil {
		rt.byAddr[ap] = f
	} else {
		f.key = key
		rt.byName[key] = f
	}
	s.flowWG.Add(1)
	go s.serveUDPFlow(ctx, f)
	return f
}

// send forwards datagram b to the backend, or queues a copy while the
// backend starts, within udpQueueLen datagrams for f and maxHeldBytes for
// all flows. Errors drop the datagram, as a network would.
func (f *udpFlow) send(b []byte) {
	if f.ready.Load() {
		f.forward(f.conn, b)
		return
	}
	f.mu.Lock()
	if f.ready.Load() {
		f.mu.Unlock()
		f.forward(f.conn, b)
		return
	}
	if !f.dead && len(f.queue) < udpQueueLen && f.s.hold(len(b)) {
		f.queue = append(f.queue, append([]byte(nil), b...))
		f.queued += len(b)
	} else {
		f.dropped++
	}
	f.mu.Unlock()
}

// forward writes datagram b to the backend on c and counts its bytes. An
// error loses the datagram, as a network may.
func (f *udpFlow) forward(c net.Conn, b []byte) {
	if n, err := c.Write(b); err == nil {
		f.rt.counts.toBackend.Add(uint64(n))
	}
}

// hold counts n more bytes of datagrams held while the backend starts and
// reports true, unless that would pass maxHeldBytes: then it counts nothing
// and reports false.
func (s *Server) hold(n int) bool {
	if s.held.Add(int64(n)) > maxHeldBytes {
		s.held.Add(-int64(n))
		return false
	}
	return true
}

// dropQueue forgets f's queue, its datagrams sent or dropped. f.mu is held.
func (f *udpFlow) dropQueue() {
	f.s.held.Add(-int64(f.queued))
	f.queue, f.queued = nil, 0
}

// serveUDPFlow starts the backend for one client, dials it, sends what was
// queued meanwhile, and relays replies until the flow is reaped or ctx
// ends.
func (s *Server) serveUDPFlow(ctx context.Context, f *udpFlow) {
	defer s.flowWG.Done()
	defer s.flowEnd(false)

	c, step, err := s.connectBackend(ctx, "udp", f.rt)
	if err != nil {
		s.endUDPFlow(f)
		f.rt.counts.ended(dropReason(ctx, step))
		if ctx.Err() != nil {
			s.logger().Info("dropping datagrams: shutting down", "remote", f.remote(), "route", f.rt.name, "err", err)
			return
		}
		s.logger().Warn(udpDropWhy[step], "remote", f.remote(), "route", f.rt.name, "err", err)
		return
	}
	f.rt.counts.forwarded.Add(1)
	defer c.Close()
	defer context.AfterFunc(ctx, func() { c.Close() })()

	f.mu.Lock()
	for _, b := range f.queue {
		f.forward(c, b)
	}
	kept := len(f.queue)
	f.dropQueue()
	f.conn = c
	f.ready.Store(true)
	dropped := f.dropped
	f.mu.Unlock()
	if dropped > 0 {
		s.logger().Warn("dropped datagrams while the backend started", "remote", f.remote(), "route", f.rt.name, "dropped", dropped, "kept", kept)
	}

	f.rt.counts.ended(s.relayReplies(ctx, f, c))
}

// udpDropWhy is what the log says when a flow's datagrams are dropped
// because a step of connectBackend failed.
var udpDropWhy = [...]string{
	stepStart: "dropping datagrams: backend not ready",
	stepAddr:  "dropping datagrams: backend has no address for route",
	stepDial:  "dropping datagrams: backend not reachable",
}

// relayReplies sends the backend's datagrams on c back to f's client,
// and reaps f once no datagram has passed either way for UDPFlowTimeout.
// It ends f at once if the backend refuses a datagram, so the client's
// next datagram starts a new flow, which calls Backend.Start again. It
// returns why f ended.
func (s *Server) relayReplies(ctx context.Context, f *udpFlow, c net.Conn) reason {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	timeout := s.udpFlowTimeout()
	c.SetReadDeadline(time.Now().Add(timeout)) // a closed conn fails the read below
	for {
		n, err := c.Read(buf)
		if err == nil {
			f.last.Store(int64(time.Since(s.base)))
			f.reply(buf[:n])
			continue
		}
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			last, reaped := s.reapUDPFlow(f, timeout)
			if reaped {
				return reasonDone
			}
			c.SetReadDeadline(s.base.Add(last + timeout)) // as above
		case errors.Is(err, syscall.ECONNREFUSED):
			// An ICMP port unreachable for an earlier datagram: nothing
			// listens there, most likely because the backend died. A
			// flow kept alive by its client would never be reaped.
			s.endUDPFlow(f)
			return reasonReset
		default:
			// Closed on shutdown, or broken.
			s.endUDPFlow(f)
			if ctx.Err() != nil {
				return reasonShutdown
			}
			return reasonReset
		}
	}
}

// reply sends b to f's client from the route's socket and counts its
// bytes. An error loses the datagram, as a network may.
func (f *udpFlow) reply(b []byte) {
	var (
		n   int
		err error
	)
	if f.rt.udp != nil {
		n, err = f.rt.udp.WriteToUDPAddrPort(b, f.ap)
	} else {
		n, err = f.rt.pc.WriteTo(b, f.addr)
	}
	if err == nil {
		f.rt.counts.toClient.Add(uint64(n))
	}
}

// reapUDPFlow removes f from its route if it has been quiet for timeout.
// Otherwise it returns when f was last active.
func (s *Server) reapUDPFlow(f *udpFlow, timeout time.Duration) (last time.Duration, reaped bool) {
	rt := f.rt
	rt.mu.Lock()
	last = time.Duration(f.last.Load())
	if time.Since(s.base)-last < timeout {
		rt.mu.Unlock()
		return last, false
	}
	rt.deleteFlow(f)
	rt.mu.Unlock()
	f.kill()
	return last, true
}

// endUDPFlow removes f from its route, so the client's next datagram starts
// a new flow.
func (s *Server) endUDPFlow(f *udpFlow) {
	f.rt.mu.Lock()
	f.rt.deleteFlow(f)
	f.rt.mu.Unlock()
	f.kill()
}

// deleteFlow removes f from rt's maps if it is still there. rt.mu is held.
func (rt *route) deleteFlow(f *udpFlow) {
	if rt.udp != nil {
		if rt.byAddr[f.ap] == f {
			delete(rt.byAddr, f.ap)
		}
		return
	}
	if rt.byName[f.key] == f {
		delete(rt.byName, f.key)
	}
}

// kill drops f's queue and whatever still arrives for it.
func (f *udpFlow) kill() {
	f.mu.Lock()
	f.dead = true
	f.dropQueue()
	f.mu.Unlock()
}

// remote names f's client for logs.
func (f *udpFlow) remote() string {
	return f.rt.remote(f.ap, f.addr)
}

// remote names the client at ap (on *net.UDPConn routes) or addr (on
// others) for logs.
func (rt *route) remote(ap netip.AddrPort, addr net.Addr) string {
	if rt.udp != nil {
		return ap.String()
	}
	if addr == nil {
		return ""
	}
	return addr.String()
}
