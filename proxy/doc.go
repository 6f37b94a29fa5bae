// Package proxy forwards connections and datagrams from listening sockets
// to a backend that it starts on demand and stops when idle: listeners in,
// flows out.
//
// A Server takes the sockets it is given (normally inherited from systemd
// socket activation) and, for each accepted connection or new UDP client,
// holds the flow while Backend.Start makes the backend ready, dials the
// address the Backend names for the flow's route, and copies bytes both
// ways. Once no flow has been open for IdleTimeout it calls Backend.Stop;
// with ExitOnIdle it then returns, so the process exits and systemd starts
// it again on the next connection.
//
// Typical use, in a socket-activated service:
//
//	srv := &proxy.Server{
//		Backend:         l, // e.g. a *launcher.Launcher
//		Routes:          []proxy.Route{{Name: "web", Listener: ln}},
//		ExitOnIdle:      true,
//		FlowIdleTimeout: 15 * time.Minute, // close flows silent that long
//		Logger:          logger,
//		Status: func(line string) {
//			daemon.SdNotify(false, "STATUS="+line)
//		},
//		// nil, 0 without WatchdogSec=: no heartbeat.
//		Heartbeat:         ping,  // sends WATCHDOG=1
//		HeartbeatInterval: every, // half of WATCHDOG_USEC
//	}
//	if err := srv.Run(ctx); err != nil {
//		return fmt.Errorf("serving: %w", err)
//	}
//
// Stream flows are copied with io.Copy between the conns exactly as
// accepted and dialed, so TCP and unix sockets splice(2) in the kernel.
// When one direction ends its destination is half-closed and the other
// direction keeps flowing; a reset on either side closes both.
//
// The exit on idle loses no connection: the Server first stops accepting
// (by setting a deadline in the past, not by closing the listener), then
// looks again, and stays up if a flow began meanwhile. Connections that
// arrive later wait in the kernel's backlog for the next activation.
//
// Resources are bounded. At MaxConnections open stream flows (by default
// as many as fit in the file descriptor limit beside the UDP flows' share,
// six descriptors each) the Server stops accepting, so further connections
// wait in the kernel's listen backlog instead of being reset, and accepts
// again as a flow ends. At MaxUDPFlows open UDP flows (by default an
// eighth of the descriptors, at most 4096, one descriptor each) datagrams
// from new clients are dropped, counted and logged at most once a second,
// while clients that have a flow are served as before. The datagrams held
// while the backend starts are bounded too: 64 per flow and 4 MiB in all.
// Accept errors that may pass (EMFILE, ENFILE, ENOBUFS, ...) are retried
// after a pause that doubles from 5ms to 1s, so running out of descriptors
// costs no CPU. With FlowIdleTimeout, TCP flows that moved no byte either
// way for that long are closed; the idle time comes from the kernel's
// TCP_INFO, read by one goroutine, so the copy path is untouched. A
// connected TCP flow costs about 15 KB of Go memory (two goroutines and
// their stacks) besides its descriptors and kernel socket buffers.
//
// The heartbeat stands for the supervising goroutine, the one that runs
// the idle clock, calls Status and Backend.Stop, and shuts down: it calls
// Heartbeat (for systemd's WATCHDOG=1) once when Run begins and then every
// HeartbeatInterval between its other work, so a supervisor that hangs
// stops the beats and systemd's watchdog restarts the process. While it
// waits on work with a bound of its own it beats on, until the work
// overruns that bound by HeartbeatGrace (5s): Backend.Stop beyond
// StopTimeout (it runs on a goroutine of its own meanwhile), open flows
// beyond DrainTimeout and then the grace to close. A Stop that ignores its
// ctx and hangs therefore gets the process restarted after StopTimeout +
// HeartbeatGrace + WatchdogSec=. Flows never touch the heartbeat.
//
// A flow is cheap to open. A Backend that is also a Readier (the launcher
// is) and says it is ready gets the flow dialed at once, with no timer:
// the kernel bounds that connect (one SYN retransmission). The backend
// socket sends no keep-alive probes. The flow's goroutine grows its stack
// once, before the dial, instead of in the middle of it.
//
// Limits:
//   - The backend is dialed over TCP for stream routes and UDP for
//     datagram routes, at the "host:port" the Backend gives.
//   - Listeners must have a SetDeadline method (*net.TCPListener and
//     *net.UnixListener do); the Server never closes them.
//   - A backend that accepts a connection and then resets it (some port
//     forwarders do, while the application inside is not yet listening) is
//     not retried: Backend.Start must return only once the backend answers.
//   - UDP flows are keyed by client address and end after UDPFlowTimeout
//     without a datagram, or as soon as the backend refuses one (an ICMP
//     port unreachable), so the next datagram starts the backend again.
//     Up to 64 datagrams per client, and 4 MiB across all clients, are
//     queued while the backend starts; later ones are dropped, and each
//     flow logs how many once connected. On shutdown UDP flows are closed
//     once the stream flows have drained. Datagram sockets other than UDP
//     work only with clients that have a bound address.
//   - One Backend serves every route of a Server.
//   - MaxConnections counts stream flows only; MaxUDPFlows counts the
//     flows of datagram routes. At MaxUDPFlows a new client's datagrams
//     are lost, not held: the read loop cannot make one client wait
//     without making them all wait. A flood of spoofed source addresses
//     can thus fill the UDP flows for UDPFlowTimeout and shut out new
//     clients meanwhile; it cannot exhaust descriptors or memory. An open
//     UDP flow holds a goroutine and a 64 KiB reply buffer, about 70 KiB.
//   - Without a cap (negative MaxConnections) a flood beyond the
//     descriptor limit can let Accept take the descriptors the dials to
//     the backend need: those flows are closed after ReadyTimeout.
//   - FlowIdleTimeout applies to TCP client connections only: flows from
//     unix-socket listeners are not closed for being idle (no TCP_INFO),
//     and UDP flows have UDPFlowTimeout. A client that stops reading
//     while the backend has data to send moves no byte, so it counts as
//     idle. It needs Linux; elsewhere no flow is closed for being idle.
package proxy
