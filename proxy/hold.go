package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// HoldReady is what a hold route writes to its client once the backend is
// ready; on failure it writes "error: " and the reason on one line, and
// closes the connection.
const HoldReady = "ready\n"

// holdWriteTimeout bounds the one line a hold route writes to its client.
const holdWriteTimeout = 5 * time.Second

// serveHold serves a connection on a hold route: it starts the backend,
// says when it is ready (HoldReady, or the error), and then keeps the flow
// open, so the backend is not stopped for being idle, until the client
// closes it or ctx ends. Nothing is forwarded: the client is another
// service's lazypod, holding this one up while its own container runs.
func (s *Server) serveHold(ctx context.Context, rt *route, c net.Conn) {
	defer s.streamEnded()
	defer c.Close()
	if err := s.startBackend(ctx); err != nil {
		rt.counts.ended(dropReason(ctx, stepStart))
		s.dropConn(ctx, rt, c, "closing hold: backend not ready", err)
		c.SetWriteDeadline(time.Now().Add(holdWriteTimeout))
		fmt.Fprintf(c, "error: %s\n", oneLine(err))
		return
	}
	rt.counts.forwarded.Add(1)
	c.SetWriteDeadline(time.Now().Add(holdWriteTimeout))
	if _, err := io.WriteString(c, HoldReady); err != nil {
		rt.counts.ended(reasonReset)
		return
	}
	c.SetWriteDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { c.Close() })
	// The client sends nothing: a read returns at its close, or ctx's.
	_, err := io.Copy(io.Discard, c)
	switch {
	case !stop():
		rt.counts.ended(reasonShutdown)
	case err != nil:
		rt.counts.ended(reasonReset)
	default:
		rt.counts.ended(reasonDone)
	}
}

// startBackend calls Backend.Start, bounded by ReadyTimeout, and says how
// long it waited if that ran out.
func (s *Server) startBackend(ctx context.Context) error {
	if !s.running.Load() {
		s.running.Store(true)
	}
	d := s.readyTimeout()
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	return startError(ctx, s.Backend.Start(ctx), d)
}

// startError says how long the wait lasted when Backend.Start failed
// because ReadyTimeout d, ctx's deadline, ran out; other errors, and nil,
// pass through.
func startError(ctx context.Context, err error, d time.Duration) error {
	if d > 0 && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return fmt.Errorf("waiting %s for backend to start: %w", d, err)
	}
	return err
}

// oneLine returns err's message on one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
