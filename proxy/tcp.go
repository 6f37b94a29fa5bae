package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"

	"github.com/lazypod/lazypod/internal/backoff"
)

// closeWriter is a conn that can half-close: *net.TCPConn, *net.UnixConn.
type closeWriter interface {
	CloseWrite() error
}

// errNoHalfClose ends a copy whose destination cannot half-close.
var errNoHalfClose = errors.New("connection cannot half-close")

// acceptLoop accepts connections on rt until stop is closed or the listener
// fails for good, and serves each on its own goroutine.
func (s *Server) acceptLoop(ctx context.Context, rt *route, stop <-chan struct{}) {
	defer s.loopWG.Done()
	delay := backoff.Delay{Min: acceptBackoffMin, Max: acceptBackoffMax}
	for {
		if !s.waitSlot(rt, stop) {
			return
		}
		c, err := rt.ln.Accept()
		if err == nil {
			delay.Reset()
			// Counted from here, so an exit decision that waits for this
			// loop, and waitSlot, see it.
			s.flowBegin(true)
			s.flowWG.Add(1)
			s.streamWG.Add(1)
			if rt.hold {
				go s.serveHold(ctx, rt, c)
			} else {
				go s.serveConn(ctx, rt, c)
			}
			continue
		}
		if stopping(stop) {
			return
		}
		if !retryable(err) {
			s.loopFailed(fmt.Errorf("accepting on route %q: %w", rt.name, err))
			return
		}
		d := delay.Next()
		if d == acceptBackoffMin {
			s.logger().Warn("accepting connection; backing off", "route", rt.name, "err", err)
		}
		if !backoff.Sleep(stop, d) {
			return
		}
	}
}

// serveConn holds the client conn c until the backend is ready, dials it,
// and copies both ways until both directions are done or ctx ends.
func (s *Server) serveConn(ctx context.Context, rt *route, c net.Conn) {
	// Held, c waits in connectBackend, which returns when ctx ends.
	bc, step, err := s.connectBackend(ctx, "tcp", rt)
	if err != nil {
		s.dropConn(ctx, rt, c, tcpDropWhy[step], err)
		c.Close()
		rt.counts.ended(dropReason(ctx, step))
		s.streamEnded()
		return
	}
	rt.counts.forwarded.Add(1)
	f := &tcpFlow{s: s, rt: rt, c: c, bc: bc}
	f.halves.Store(2)
	// Copying, both are closed when ctx ends: one hook per flow.
	f.unhook = context.AfterFunc(ctx, func() { f.closeFor(reasonShutdown) })
	f.watched = s.watchFlow(f)
	// Both directions on goroutines of their own: this one, whose stack
	// grew for the dial, ends here, and neither copy keeps that stack for
	// the flow's life (1000 open flows: 3.7 MB less RSS).
	go f.copy(bc, c, &rt.counts.toBackend)
	go f.copy(c, bc, &rt.counts.toClient)
}

// dropReason is why a flow ends whose step of connectBackend failed.
func dropReason(ctx context.Context, step connectStep) reason {
	if ctx.Err() != nil {
		return reasonShutdown
	}
	return stepReason[step]
}

// streamEnded counts a stream flow as over, once its sockets are closed.
func (s *Server) streamEnded() {
	s.flowEnd(true)
	s.streamWG.Done()
	s.flowWG.Done()
}

// tcpFlow is a stream flow connected to its backend, copied both ways by
// two goroutines; whichever finishes last ends the flow, so neither waits
// for the other.
type tcpFlow struct {
	s       *Server
	rt      *route
	c, bc   net.Conn // client, backend
	halves  atomic.Int32
	why     atomic.Int32 // the first reason it was closed for, a reason
	unhook  func() bool  // stops the AfterFunc that closes both on ctx's end
	watched *watchedFlow // for the idle reaper, or nil
}

// copy copies src to dst (see copyHalf), adds the bytes copied to n, and
// ends the flow if the other direction is done too.
func (f *tcpFlow) copy(dst, src net.Conn, n *atomic.Uint64) {
	copied, err := copyHalf(dst, src)
	n.Add(uint64(copied))
	if err != nil {
		f.why.CompareAndSwap(int32(reasonNone), int32(reasonReset))
	}
	if f.halves.Add(-1) > 0 {
		return
	}
	f.unhook()
	if f.watched != nil {
		f.s.unwatchFlow(f.watched)
	}
	f.closeBoth()
	f.rt.counts.ended(reason(f.why.Load()))
	f.s.streamEnded()
}

// closeFor closes both conns, for r unless the flow was closed already.
func (f *tcpFlow) closeFor(r reason) {
	f.why.CompareAndSwap(int32(reasonNone), int32(r))
	f.closeBoth()
}

func (f *tcpFlow) closeBoth() {
	f.bc.Close()
	f.c.Close()
}

// tcpDropWhy is what the log says when a connection is closed because a
// step of connectBackend failed.
var tcpDropWhy = [...]string{
	stepStart: "closing held connection: backend not ready",
	stepAddr:  "closing connection: backend has no address for route",
	stepDial:  "closing connection: backend not reachable",
}

// dropConn logs why the flow on c ends before reaching the backend.
func (s *Server) dropConn(ctx context.Context, rt *route, c net.Conn, why string, err error) {
	if ctx.Err() != nil {
		s.logger().Info("closing connection: shutting down", "remote", remote(c), "route", rt.name, "err", err)
		return
	}
	s.logger().Warn(why, "remote", remote(c), "route", rt.name, "err", err)
}

// copyHalf copies src to dst until src ends. On a clean end it half-closes
// dst, so its peer sees EOF while the other direction keeps flowing. On an
// error (a reset, or a close by the other direction), or if dst cannot
// half-close, it closes both, so the other direction does not hang.
//
// dst and src are the conns as accepted and dialed, unwrapped, so io.Copy
// can splice(2) between TCP and unix sockets. It returns the bytes copied
// and the error that ended the copy, if any.
func copyHalf(dst, src net.Conn) (int64, error) {
	n, err := io.Copy(dst, src)
	if err == nil {
		if cw, ok := dst.(closeWriter); ok {
			err = cw.CloseWrite()
		} else {
			err = errNoHalfClose
		}
	}
	if err != nil {
		dst.Close()
		src.Close()
	}
	return n, err
}

// remote names a conn's peer for logs.
func remote(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// growStackFrame is the frame growStack puts on the stack: enough that the
// runtime grows a new goroutine's stack to 8 KB, what a dial reaches down
// in the net package.
const growStackFrame = 5 << 10

// growStack grows the calling goroutine's stack to its working size while
// the goroutine is a few frames deep. Left alone, a flow's goroutine
// starts small and the runtime grows its stack in the middle of the dial
// to the backend, copying and adjusting a dozen frames each time: 7% of
// the proxy's CPU for one-request connections (perf, wrk with "Connection:
// close"). Growing before the dial copies a few frames. CockroachDB's
// util/growstack does the same for its request goroutines. The other
// direction's goroutine is left to grow by itself: pre-growing it too saved
// no measurable CPU and cost 4 KB per connected flow.
//
//go:noinline
func growStack() {
	var frame [growStackFrame]byte
	keep(frame[:])
}

// keep stops the compiler from dropping growStack's frame.
//
//go:noinline
func keep([]byte) {}
