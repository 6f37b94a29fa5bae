// Package systemd is what lazypod takes from systemd and tells it: the
// listening sockets a socket unit passes (or, without one, those --listen
// binds), sd_notify's readiness, status lines and watchdog pings, and, over
// D-Bus, reloads and the jobs that enable, start, stop and disable units.
//
// Typical use, in lazypod serve:
//
//	socks, err := systemd.Inherited() // nil when not socket-activated
//	if socks == nil {
//		socks, err = systemd.Bind(listens)
//	}
//	defer systemd.CloseAll(socks)
//	sd := systemd.Notifier{Logger: log}
//	sd.Ready("idle")
//	ping, every := sd.Watchdog() // nil, 0 without WatchdogSec=
//
// and in lazypod units install:
//
//	m, err := systemd.Connect(ctx, user)
//	defer m.Close()
//	err = m.Reload(ctx)
//	err = m.EnableAndStart(ctx, []string{"web.socket"})
//
// Limits:
//   - Inherited takes the sockets once and unsets LISTEN_*; only TCP, unix
//     stream and UDP sockets are taken.
//   - Without NOTIFY_SOCKET, Notifier's calls do nothing.
//   - A job is waited for at most 90s.
package systemd
