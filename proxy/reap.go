package proxy

import (
	"net"
	"syscall"
	"time"
)

const (
	// The idle reaper looks at the flows every quarter of FlowIdleTimeout,
	// but not more often than reapIntervalMin nor less than
	// reapIntervalMax.
	reapIntervalMin = 10 * time.Millisecond
	reapIntervalMax = 10 * time.Second
)

// watchedFlow is a TCP flow connected to its backend, as the idle reaper
// sees it.
type watchedFlow struct {
	flow   *tcpFlow
	client *net.TCPConn
	raw    syscall.RawConn // client's, for TCP_INFO
	since  time.Time       // when the flow was connected to the backend

	// next is when the flow may next have been idle for FlowIdleTimeout;
	// the reaper does not look before. Only the reaper uses it.
	next time.Time
}

// reapInterval returns how often the reaper looks at the flows.
func reapInterval(timeout time.Duration) time.Duration {
	return min(max(timeout/4, reapIntervalMin), reapIntervalMax)
}

// watchFlow hands fl, now connected to the backend, to the idle reaper,
// and returns what unwatchFlow takes. It returns nil if FlowIdleTimeout is
// off or the client is not a TCP connection (unix sockets have no
// TCP_INFO).
func (s *Server) watchFlow(fl *tcpFlow) *watchedFlow {
	if s.FlowIdleTimeout <= 0 || !tcpInfoSupported {
		return nil
	}
	tc, ok := fl.c.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	now := time.Now()
	f := &watchedFlow{flow: fl, client: tc, raw: raw, since: now, next: now.Add(s.FlowIdleTimeout)}
	s.watchMu.Lock()
	s.watched[f] = struct{}{}
	s.watchMu.Unlock()
	return f
}

// unwatchFlow takes an ending flow from the idle reaper.
func (s *Server) unwatchFlow(f *watchedFlow) {
	s.watchMu.Lock()
	delete(s.watched, f)
	s.watchMu.Unlock()
}

// reapIdleFlows closes the watched flows that have moved no byte either
// way for timeout, until stop is closed; then it closes done. It never
// touches the copy path: how long a flow has been idle comes from the
// kernel (TCP_INFO's last data sent and received on the client's socket).
func (s *Server) reapIdleFlows(timeout time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(reapInterval(timeout))
	defer t.Stop()
	var due []*watchedFlow
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			due = s.reapOnce(now, timeout, due)
		}
	}
}

// reapOnce looks at the watched flows that may be idle by now and closes
// those that are. due is scratch space, returned for reuse.
func (s *Server) reapOnce(now time.Time, timeout time.Duration, due []*watchedFlow) []*watchedFlow {
	s.watchMu.Lock()
	for f := range s.watched {
		if !now.Before(f.next) {
			due = append(due, f)
		}
	}
	s.watchMu.Unlock()

	for _, f := range due {
		idle, err := tcpIdle(f.raw)
		if err != nil {
			// Closed meanwhile: the flow is ending and will unwatch
			// itself. Look again later in case it is something else.
			f.next = now.Add(timeout)
			continue
		}
		// The client's socket may have been quiet while the flow was
		// held for the backend: the flow's clock starts when connected.
		idle = min(idle, now.Sub(f.since))
		if idle < timeout {
			f.next = now.Add(timeout - idle)
			continue
		}
		f.next = now.Add(timeout)
		s.logger().Info("closing connection: no data either way", "remote", remote(f.client), "route", f.flow.rt.name,
			"idle", idle.Truncate(time.Millisecond), "flow_idle_timeout", timeout)
		f.flow.closeFor(reasonFlowIdle)
	}
	clear(due)
	return due[:0]
}
