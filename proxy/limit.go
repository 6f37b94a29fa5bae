package proxy

import (
	"math"
	"net"
	"net/netip"
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

	// fdReserve is what the default caps leave for everything else: the
	// listeners, the runtime's poller, the Podman API client, logs and
	// splice pipes pooled between flows; a quarter of the limit when that
	// is less (a 64-descriptor limit still serves 7 connections and 6 UDP
	// clients at once).
	fdReserve = 64

	// udpShare is the part of the descriptors left after fdReserve, one in
	// udpShare, that DefaultMaxUDPFlows gives the UDP flows (one
	// descriptor each, their socket to the backend). DefaultMaxConnections
	// gives the stream flows the rest.
	udpShare = 8

	// maxUDPFlowsCeiling bounds DefaultMaxUDPFlows whatever the descriptor
	// limit. Besides its descriptor an open UDP flow holds a goroutine and
	// a 64 KiB buffer for the backend's replies, about 70 KiB in all: the
	// ceiling keeps that under 300 MiB.
	maxUDPFlowsCeiling = 4096

	// maxConnectionsCeiling bounds DefaultMaxConnections under a very
	// large or unlimited RLIMIT_NOFILE.
	maxConnectionsCeiling = 1 << 20

	// capLogInterval is how often, at most, the Server logs that it is at
	// MaxConnections.
	capLogInterval = time.Minute

	// udpCapLogInterval is how often, at most, the Server logs that it
	// drops datagrams from new clients at MaxUDPFlows. Those datagrams are
	// lost, where connections beyond MaxConnections only wait, so the log
	// says so sooner.
	udpCapLogInterval = time.Second
)

// DefaultMaxConnections returns the MaxConnections that a zero value
// stands for: as many TCP flows as fit in the process's file descriptor
// limit beside the reserve and the UDP flows' share,
// (RLIMIT_NOFILE soft limit - reserve - DefaultMaxUDPFlows()) / 6, at least
// 1 and at most 1<<20, where the reserve is 64 or a quarter of the limit if
// less. Six descriptors per flow: the two sockets, and the pipe that Go's
// splice(2) path holds for each direction while it waits for data. The
// reserve is for listeners, the Podman API client and the like. Stream
// flows at this cap and UDP flows at DefaultMaxUDPFlows() fit in the limit
// together.
//
// Go raises the soft limit to the hard limit when the process starts, so
// under systemd this follows LimitNOFILE= (whose default hard limit of
// 524288 gives 86688); under `prlimit --nofile=64` it is 7.
func DefaultMaxConnections() int {
	return maxConnectionsFor(nofileLimit())
}

// DefaultMaxUDPFlows returns the MaxUDPFlows that a zero value stands for:
// an eighth of the descriptors that DefaultMaxConnections' reserve leaves,
// (RLIMIT_NOFILE soft limit - reserve) / 8, at least 1 and at most 4096. A
// UDP flow holds one descriptor, its socket to the backend, so the UDP
// flows at this cap and the stream flows at DefaultMaxConnections() (six
// descriptors each) hold at most
//
//	DefaultMaxUDPFlows() + 6*DefaultMaxConnections() <= limit - reserve
//
// descriptors. The ceiling bounds their memory: an open UDP flow also holds
// a goroutine and a 64 KiB buffer for the backend's replies, about 70 KiB.
//
// Under systemd's default hard limit of 524288 it is 4096; under
// `prlimit --nofile=1024` it is 120, under `prlimit --nofile=64` 6.
func DefaultMaxUDPFlows() int {
	return maxUDPFlowsFor(nofileLimit())
}

// nofileLimit returns the soft RLIMIT_NOFILE, or the usual default of 1024
// if it cannot be read.
func nofileLimit() uint64 {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	return lim.Cur
}

// unlimitedFDs reports whether a soft limit of nofile is too large to
// matter: the ceilings apply.
func unlimitedFDs(nofile uint64) bool {
	return nofile == unix.RLIM_INFINITY || nofile > math.MaxInt64
}

// fdBudget returns the descriptors that a soft limit of nofile leaves for
// flows once the reserve is set aside.
func fdBudget(nofile uint64) uint64 {
	return nofile - min(uint64(fdReserve), nofile/4)
}

// maxUDPFlowsFor is DefaultMaxUDPFlows for a soft limit of nofile.
func maxUDPFlowsFor(nofile uint64) int {
	if unlimitedFDs(nofile) {
		return maxUDPFlowsCeiling
	}
	return int(min(max(fdBudget(nofile)/udpShare, 1), maxUDPFlowsCeiling))
}

// maxConnectionsFor is DefaultMaxConnections for a soft limit of nofile.
func maxConnectionsFor(nofile uint64) int {
	if unlimitedFDs(nofile) {
		return maxConnectionsCeiling
	}
	budget := fdBudget(nofile)
	udp := uint64(maxUDPFlowsFor(nofile))
	if budget < udp+fdsPerFlow {
		return 1
	}
	return int(min((budget-udp)/fdsPerFlow, maxConnectionsCeiling))
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

// maxUDPFlows returns the cap on open UDP flows; 0 means none.
func (s *Server) maxUDPFlows() int {
	switch {
	case s.MaxUDPFlows == 0:
		return DefaultMaxUDPFlows()
	case s.MaxUDPFlows < 0:
		return 0
	}
	return s.MaxUDPFlows
}

// dropAtUDPCap counts a datagram dropped because its client, at ap (or
// addr), has no flow and MaxUDPFlows flows are open, and says so at most
// once per udpCapLogInterval, with the count so far.
func (s *Server) dropAtUDPCap(rt *route, ap netip.AddrPort, addr net.Addr) {
	n := s.udpCapDrops.Add(1)
	now := time.Now().UnixNano()
	last := s.udpCapLogged.Load()
	if last != 0 && now-last < int64(udpCapLogInterval) {
		return
	}
	if !s.udpCapLogged.CompareAndSwap(last, now) {
		return
	}
	s.logger().Warn("udp flow limit reached; dropping datagrams from new clients",
		"route", rt.name, "remote", rt.remote(ap, addr), "max_udp_flows", s.maxUDP, "dropped", n)
}
