package proxy

import (
	"math"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// fdsPerFlow is how many file descriptors one TCP stream flow holds
	// once it is connected to its backend: the client's and the backend's
	// sockets, and one pipe (two descriptors) for each direction, which
	// Go's splice(2) path keeps while that direction waits for data.
	// TestFDsPerFlow measures it.
	fdsPerFlow = 6

	// fdReserve is what DefaultMaxConnections leaves for everything else:
	// the listeners, the runtime's poller, the Podman API client, logs,
	// UDP flows' sockets and splice pipes pooled between flows; a quarter
	// of the limit when that is less (a 64-descriptor limit still serves
	// 8 connections at once).
	fdReserve = 64

	// maxConnectionsCeiling bounds DefaultMaxConnections under a very
	// large or unlimited RLIMIT_NOFILE.
	maxConnectionsCeiling = 1 << 20

	// capLogInterval is how often, at most, the Server logs that it is at
	// MaxConnections.
	capLogInterval = time.Minute
)

// DefaultMaxConnections returns the MaxConnections that a zero value
// stands for: as many TCP flows as fit in the process's file descriptor
// limit, (RLIMIT_NOFILE soft limit - reserve) / 6, at least 1 and at
// most 1<<20, where the reserve is 64 or a quarter of the limit if less. Six descriptors per flow: the two sockets, and the pipe that Go's
// splice(2) path holds for each direction while it waits for data. The
// reserve is for listeners, the Podman API client, UDP flows and the like.
//
// Go raises the soft limit to the hard limit when the process starts, so
// under systemd this follows LimitNOFILE= (whose default hard limit of
// 524288 gives 87370); under `prlimit --nofile=64` it is 8.
func DefaultMaxConnections() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return maxConnectionsFor(1024) // the usual default soft limit
	}
	return maxConnectionsFor(lim.Cur)
}

// maxConnectionsFor is DefaultMaxConnections for a soft limit of nofile.
func maxConnectionsFor(nofile uint64) int {
	if nofile == unix.RLIM_INFINITY || nofile > math.MaxInt64 {
		return maxConnectionsCeiling
	}
	reserve := min(uint64(fdReserve), nofile/4)
	if nofile < reserve+fdsPerFlow {
		return 1
	}
	return int(min((nofile-reserve)/fdsPerFlow, maxConnectionsCeiling))
}

// maxConnections returns the cap on open stream flows; 0 means none.
func (s *Server) maxConnections() int {
	switch {
	case s.MaxConnections == 0:
		return DefaultMaxConnections()
	case s.MaxConnections < 0:
		return 0
	}
	return s.MaxConnections
}

// waitSlot waits, before an accept loop calls Accept, while
// MaxConnections stream flows are open, so that connections beyond the
// cap stay in the kernel's listen backlog. It reports false if stop was
// closed first.
func (s *Server) waitSlot(rt *route, stop <-chan struct{}) bool {
	if s.maxConns <= 0 {
		return true
	}
	for {
		s.mu.Lock()
		if s.streams < s.maxConns {
			s.mu.Unlock()
			return true
		}
		wake := s.slotFreed
		s.mu.Unlock()

		s.atCap.Add(1)
		s.logAtCap(rt)
		select {
		case <-wake:
			s.atCap.Add(-1)
		case <-stop:
			s.atCap.Add(-1)
			return false
		}
	}
}

// logAtCap says, at most once per capLogInterval, that new connections
// wait because MaxConnections flows are open.
func (s *Server) logAtCap(rt *route) {
	now := time.Now().UnixNano()
	last := s.capLogged.Load()
	if last != 0 && now-last < int64(capLogInterval) {
		return
	}
	if !s.capLogged.CompareAndSwap(last, now) {
		return
	}
	s.logger().Warn("connection limit reached; new connections wait in the listen backlog",
		"route", rt.name, "max_connections", s.maxConns)
}
