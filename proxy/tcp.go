package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
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
	var delay time.Duration
	for {
		if !s.waitSlot(rt, stop) {
			return
		}
		c, err := rt.ln.Accept()
		if err == nil {
			delay = 0
			// Counted from here, so an exit decision that waits for this
			// loop, and waitSlot, see it.
			s.flowBegin(true)
			s.flowWG.Add(1)
			s.streamWG.Add(1)
			go s.serveConn(ctx, rt, c)
			continue
		}
		if stopping(stop) {
			return
		}
		if !retryable(err) {
			s.loopFailed(fmt.Errorf("accepting on route %q: %w", rt.name, err))
			return
		}
		delay = nextBackoff(delay)
		if delay == acceptBackoffMin {
			s.logger().Warn("accepting connection; backing off", "route", rt.name, "err", err)
		}
		if backoff(delay, stop) {
			return
		}
	}
}

// serveConn holds the client conn c until the backend is ready, dials it,
// and copies both ways until both directions are done or ctx ends.
func (s *Server) serveConn(ctx context.Context, rt *route, c net.Conn) {
	defer s.flowWG.Done()
	defer s.streamWG.Done()
	defer s.flowEnd(true) // once both sockets are closed
	defer c.Close()

	// Held, c waits in connectBackend, which returns when ctx ends.
	bc, step, err := s.connectBackend(ctx, "tcp", rt.name)
	if err != nil {
		s.dropConn(ctx, rt, c, tcpDropWhy[step], err)
		return
	}
	defer bc.Close()
	// Copying, both are closed when ctx ends: one hook per flow.
	defer context.AfterFunc(ctx, func() { c.Close(); bc.Close() })()
	if f := s.watchFlow(rt, c, bc); f != nil {
		defer s.unwatchFlow(f)
	}

	done := make(chan struct{})
	go copyHalf(bc, c, done)
	copyHalf(c, bc, nil)
	<-done
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
// half-close, it closes both, so the other direction does not hang. If done
// is not nil, copyHalf closes it on return.
//
// dst and src are the conns as accepted and dialed, unwrapped, so io.Copy
// can splice(2) between TCP and unix sockets.
func copyHalf(dst, src net.Conn, done chan<- struct{}) {
	if done != nil {
		defer close(done)
	}
	_, err := io.Copy(dst, src)
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
}

// remote names a conn's peer for logs.
func remote(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}
