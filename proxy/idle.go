package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// statusInterval is how often the status line is refreshed, at most.
const statusInterval = time.Second

// QuietAfter is how long no flow must be open before Server.Quiet is
// called.
const QuietAfter = time.Second

// supervise is Run's own goroutine: it owns the idle clock, the status
// line, the heartbeat, the exit decision and the shutdown. It beats
// between its other cases, so a beat says that it is responsive; what it
// waits on inline (Backend.Stop, the drain) beats through hb.await, within
// that work's bound.
func (s *Server) supervise(ctx, flowCtx context.Context, cancelFlows context.CancelFunc) error {
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	defer idle.Stop()
	s.armIdle(idle)
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	defer quiet.Stop()

	hb := &heart{fn: s.Heartbeat, log: s.logger()}
	if hb.on() {
		t := time.NewTicker(s.heartbeatInterval())
		defer t.Stop()
		hb.tick = t.C
		hb.beat()
	}

	st := statusReporter{fn: s.Status}
	var tick <-chan time.Time
	if s.Status != nil {
		t := time.NewTicker(statusInterval)
		defer t.Stop()
		tick = t.C
		st.report(s.statusLine())
	}

	for {
		select {
		case <-ctx.Done():
			return s.shutdown(ctx, cancelFlows, &st, hb)

		case err := <-s.loopErr:
			return errors.Join(err, s.shutdown(ctx, cancelFlows, &st, hb))

		case <-s.kick:
			s.armIdle(idle)
			s.armQuiet(quiet)

		case <-quiet.C:
			s.mu.Lock()
			open := s.open
			s.mu.Unlock()
			if open == 0 {
				go s.Quiet()
			}

		case <-idle.C:
			if !s.idleDue(idle) {
				continue
			}
			if !s.ExitOnIdle {
				s.stopIdle(ctx, &st, hb)
				s.armIdle(idle)
				continue
			}
			exited, err := s.exitIfIdle(ctx, flowCtx, &st, hb)
			if exited {
				return err
			}
			s.armIdle(idle)

		case <-tick:
			st.report(s.statusLine())

		case <-hb.tick:
			hb.beat()
		}
	}
}

// idleDeadline returns when the idle clock fires, or false if it is
// disarmed: flows are open, IdleTimeout is negative, or there is nothing
// to do (no backend to stop and no exit to make).
func (s *Server) idleDeadline() (time.Time, bool) {
	d := s.idleTimeout()
	if d < 0 {
		return time.Time{}, false
	}
	s.mu.Lock()
	open, since := s.open, s.zeroSince
	s.mu.Unlock()
	if open > 0 || (!s.ExitOnIdle && !s.running.Load()) {
		return time.Time{}, false
	}
	return since.Add(d), true
}

// armQuiet starts the quiet timer when no flow is open, and stops it when
// one is.
func (s *Server) armQuiet(quiet *time.Timer) {
	if s.Quiet == nil {
		return
	}
	s.mu.Lock()
	open := s.open
	s.mu.Unlock()
	if open > 0 {
		quiet.Stop()
		return
	}
	quiet.Reset(QuietAfter)
}

// armIdle sets the idle timer from the current state.
func (s *Server) armIdle(idle *time.Timer) {
	at, ok := s.idleDeadline()
	if !ok {
		idle.Stop()
		return
	}
	idle.Reset(time.Until(at))
}

// idleDue reports, after the idle timer fired, whether the idle time has
// really passed; if not (a flow came and went meanwhile) it re-arms.
func (s *Server) idleDue(idle *time.Timer) bool {
	at, ok := s.idleDeadline()
	if !ok {
		return false
	}
	if wait := time.Until(at); wait > 0 {
		idle.Reset(wait)
		return false
	}
	return true
}

// stopIdle stops the idle backend and keeps serving. A flow that arrives
// meanwhile calls Backend.Start, which waits for the stop.
func (s *Server) stopIdle(ctx context.Context, st *statusReporter, hb *heart) {
	if !s.markStopped() {
		return
	}
	s.logger().Info("no connections; stopping backend", "idle", s.idleTimeout())
	st.report("stopping container")
	if err := s.stopBackend(ctx, hb, true); err != nil {
		// Still (maybe) running: try again after another idle spell.
		s.running.Store(true)
		s.mu.Lock()
		if s.open == 0 {
			s.zeroSince = time.Now()
		}
		s.mu.Unlock()
		s.logger().Error("stopping idle backend", "err", err)
	}
}

// markStopped clears the running flag before an idle Backend.Stop, and
// reports whether there is anything to stop: the backend may be running and
// no flow is open. Flows set the flag only after counting themselves open,
// so one that begins from here on sets it again, and one that began before
// makes markStopped refuse.
func (s *Server) markStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open > 0 {
		return false
	}
	return s.running.Swap(false)
}

// exitIfIdle makes the ExitOnIdle decision. It first stops accepting, then
// looks again: if a flow began meanwhile, it resumes accepting and reports
// false. Otherwise it stops the backend and reports true, with Stop's
// error. Connections not yet accepted stay in the listener's backlog for
// the next activation, so none is accepted and then dropped.
func (s *Server) exitIfIdle(ctx, flowCtx context.Context, st *statusReporter, hb *heart) (exited bool, err error) {
	s.mu.Lock()
	before := s.accepted
	s.mu.Unlock()

	s.stopLoops()

	s.mu.Lock()
	open, after := s.open, s.accepted
	s.mu.Unlock()
	if open > 0 || after != before {
		s.logger().Debug("flow arrived while exiting; staying up", "flows", open)
		s.clearDeadlines()
		s.startLoops(flowCtx)
		return false, nil
	}

	// No flow is open and none can begin: every flow goroutine is ending.
	s.flowWG.Wait()
	s.clearDeadlines()
	if !s.markStopped() {
		s.logger().Info("no connections; exiting")
		return true, nil
	}
	s.logger().Info("no connections; stopping backend and exiting", "idle", s.idleTimeout())
	st.report("stopping container")
	if err := s.stopBackend(ctx, hb, true); err != nil {
		return true, fmt.Errorf("stopping idle backend: %w", err)
	}
	return true, nil
}

// shutdown stops accepting, lets stream flows finish for up to
// DrainTimeout, closes every flow still open, and stops the backend if it
// may be running. It beats throughout the drain, and for HeartbeatGrace
// while the flows close.
func (s *Server) shutdown(ctx context.Context, cancelFlows context.CancelFunc, st *statusReporter, hb *heart) error {
	s.stopLoops()
	st.report("shutting down")

	done := make(chan struct{})
	go s.waitStreams(done)
	if d := s.drainTimeout(); d > 0 {
		s.drain(done, d, hb)
	}
	// UDP flows have no end of their own: they are closed here too. Every
	// flow ends promptly once cancelled: its conns are closed, and its
	// wait for Backend.Start ends with its ctx.
	cancelFlows()
	closed := make(chan struct{})
	go s.waitFlows(closed)
	hb.await(closed, 0, "closing flows")
	<-done
	s.clearDeadlines()

	if !s.running.Swap(false) {
		return nil
	}
	if err := s.stopBackend(ctx, hb, false); err != nil {
		return fmt.Errorf("stopping backend on shutdown: %w", err)
	}
	return nil
}

// drain waits until done is closed (every stream flow has ended) or d has
// passed, beating meanwhile: the wait is bounded by its own timer.
func (s *Server) drain(done <-chan struct{}, d time.Duration, hb *heart) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			s.logger().Info("closing connections still open after drain timeout", "flows", s.Flows(), "drain", d)
			return
		case <-hb.tick:
			hb.beat()
		}
	}
}

// waitStreams closes done when every stream flow has ended.
func (s *Server) waitStreams(done chan<- struct{}) {
	defer close(done)
	s.streamWG.Wait()
}

// waitFlows closes done when every flow goroutine has ended.
func (s *Server) waitFlows(done chan<- struct{}) {
	defer close(done)
	s.flowWG.Wait()
}

// statusLine describes the present state for a person.
func (s *Server) statusLine() string {
	s.mu.Lock()
	n, udpFull := s.open, s.maxUDP > 0 && s.udpFlows >= s.maxUDP
	s.mu.Unlock()
	full := ""
	if s.atCap.Load() > 0 {
		full = "; at the connection limit, new connections wait"
	}
	if udpFull {
		full += "; at the UDP flow limit, new clients' datagrams are dropped"
	}
	switch {
	case n == 1:
		return "serving 1 connection" + full
	case n > 1:
		return fmt.Sprintf("serving %d connections", n) + full
	}
	at, armed := s.idleDeadline()
	switch {
	case s.running.Load() && armed:
		return "no connections; stopping container in " + roughDuration(time.Until(at))
	case s.running.Load():
		return "no connections"
	case armed:
		return "idle; exiting in " + roughDuration(time.Until(at))
	}
	return "idle"
}

// roughDuration formats d for a status line: whole minutes from a minute
// up ("4m", "1h30m"), whole seconds below ("45s"), rounding up.
func roughDuration(d time.Duration) string {
	if d < time.Minute {
		return max(0, (d + time.Second - 1).Truncate(time.Second)).String()
	}
	str := (d + time.Minute - 1).Truncate(time.Minute).String() // "4m0s", "1h30m0s", "2h0m0s"
	str = strings.TrimSuffix(str, "0s")
	if strings.HasSuffix(str, "h0m") {
		str = strings.TrimSuffix(str, "0m")
	}
	return str
}

// statusReporter passes status lines to fn when they change.
type statusReporter struct {
	fn   func(string)
	last string
}

// report passes line on if it differs from the last one. The supervisor
// calls it on its ticker, which bounds the rate, and at its rare
// transitions (stopping, shutting down).
func (r *statusReporter) report(line string) {
	if r.fn == nil || line == r.last {
		return
	}
	r.last = line
	r.fn(line)
}
