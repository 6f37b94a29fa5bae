package proxy

import "sync/atomic"

// CloseReason says why a flow ended.
type CloseReason string

const (
	// CloseDone: a stream flow whose two directions both ended cleanly
	// (each side half-closed), or a datagram flow reaped after
	// UDPFlowTimeout without a datagram.
	CloseDone CloseReason = "done"
	// CloseReset: a stream flow ended by an error on either side (a
	// reset, a broken pipe), or a datagram flow whose backend refused a
	// datagram.
	CloseReset CloseReason = "reset"
	// CloseNotReady: the backend did not get ready (Backend.Start
	// failed or ReadyTimeout ran out); the flow was never forwarded.
	CloseNotReady CloseReason = "not_ready"
	// CloseUnreachable: the backend was ready but had no address for the
	// route, or could not be dialed.
	CloseUnreachable CloseReason = "unreachable"
	// CloseFlowIdle: closed after FlowIdleTimeout with no byte either way.
	CloseFlowIdle CloseReason = "flow_idle"
	// CloseShutdown: closed because Run's ctx ended, while held or
	// still open when the drain ran out.
	CloseShutdown CloseReason = "shutdown"
)

// closeReasons lists the reasons in the order of routeCounts.closed.
var closeReasons = [...]CloseReason{CloseDone, CloseReset, CloseNotReady, CloseUnreachable, CloseFlowIdle, CloseShutdown}

// reason is an index into closeReasons; 0 is "none yet".
type reason int32

const (
	reasonNone reason = iota
	reasonDone
	reasonReset
	reasonNotReady
	reasonUnreachable
	reasonFlowIdle
	reasonShutdown
)

// stepReason is the reason a flow ends when a step of connectBackend
// failed.
var stepReason = [...]reason{
	stepStart: reasonNotReady,
	stepAddr:  reasonUnreachable,
	stepDial:  reasonUnreachable,
}

// Counts are one route's flows and bytes since Run began. A connected
// stream flow's bytes are counted when each direction ends, so a long
// download shows in BytesToClient once it is over; datagrams are counted
// as they are forwarded.
type Counts struct {
	// Route is the route's name. Routes that share a name (a socket's
	// IPv4 and IPv6 listeners) have one Counts, the sum of theirs.
	Route string
	// Held are the flows that had to wait for the backend to get ready;
	// Forwarded those connected to it, at once or after waiting.
	Held, Forwarded uint64
	// Closed are the flows that ended, by why.
	Closed map[CloseReason]uint64
	// BytesToBackend and BytesToClient are the bytes forwarded each way.
	BytesToBackend, BytesToClient uint64
}

// routeCounts is what a route counts, updated with atomic adds: a few per
// flow, none per byte (a stream direction adds what io.Copy returned).
type routeCounts struct {
	held, forwarded     atomic.Uint64
	closed              [len(closeReasons)]atomic.Uint64
	toBackend, toClient atomic.Uint64
}

// ended counts a flow that ended for r.
func (c *routeCounts) ended(r reason) {
	if r == reasonNone {
		r = reasonDone
	}
	c.closed[r-1].Add(1)
}

// Counts returns each route's counts since Run began, in the order of
// Routes, routes of one name summed. It may be called from any goroutine,
// during Run or after it returned.
func (s *Server) Counts() []Counts {
	s.mu.Lock()
	routes := s.routes
	s.mu.Unlock()
	var out []Counts
	index := make(map[string]int)
	for _, rt := range routes {
		i, ok := index[rt.name]
		if !ok {
			i = len(out)
			index[rt.name] = i
			out = append(out, Counts{Route: rt.name, Closed: make(map[CloseReason]uint64, len(closeReasons))})
		}
		c, rc := &out[i], &rt.counts
		c.Held += rc.held.Load()
		c.Forwarded += rc.forwarded.Load()
		for j, r := range closeReasons {
			c.Closed[r] += rc.closed[j].Load()
		}
		c.BytesToBackend += rc.toBackend.Load()
		c.BytesToClient += rc.toClient.Load()
	}
	return out
}
