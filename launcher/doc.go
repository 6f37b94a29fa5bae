// Package launcher runs one container on demand through the Podman API:
// image, create, start, probe, stop. A Launcher satisfies proxy.Backend:
// the proxy calls Start when a flow arrives, Addr to learn where to send
// it, and Stop when the service has been idle.
//
// Typical use:
//
//	pm, err := launcher.NewPodman(ctx, launcher.DefaultPodmanURL())
//	if err != nil {
//		return err // errors.Is(err, launcher.ErrNoPodman): hint at podman.socket
//	}
//	l, err := launcher.New(launcher.Config{
//		Name:    "web",
//		Image:   "docker.io/library/nginx:stable",
//		Ports:   []launcher.Port{{Route: "http", Port: 80}},
//		Ready:   launcher.Probe{Kind: launcher.ProbeHTTP, Arg: "/"},
//		Runtime: pm,
//		Status:  func(line string) { daemon.SdNotify(false, "STATUS="+line) },
//	})
//	if err != nil {
//		return err
//	}
//	g.Go(func() error { return l.Run(ctx) })
//	// for each flow:
//	if err := l.Start(flowCtx); err != nil { ... }
//	addr, err := l.Addr("http") // "127.0.0.1:41234"
//	// when idle, and on shutdown:
//	err = l.Stop(ctx)
//
// # States
//
// A launcher is stopped, starting, ready or stopping. Concurrent Start
// calls share one start, which runs under Run's context, so a caller that
// gives up does not cancel it for the others. Once ready, Start is a mutex
// check. Stop cancels a start in progress; a Start during a Stop waits for
// the stop, then starts again. If the container exits while ready, an exit
// watcher moves the launcher to stopped and the next Start starts it again.
//
// # The container
//
// A start pulls the image if local storage lacks it, then looks for a
// container called Config.Name. If there is none, it creates one. If there
// is one without the label io.lazypod.service=NAME, it fails with
// ErrNotOurs and leaves it alone. If lazypod's container has a different
// io.lazypod.hash (the sha256 of every setting) or was made from a
// different image ID than the reference now names, it is removed and
// created again; otherwise it is reused, and Stop keeps it for a fast next
// start. Each port is published on 127.0.0.1 at a host port Podman
// chooses, read back after the start.
//
// After starting the container, the launcher probes it until it is ready
// (see ProbeKind), polling every 5ms at first and backing off to 100ms.
// If the container exits meanwhile, the start fails at once with an
// *ExitError (ErrExited) holding the exit code and last log lines. If
// ReadyTimeout passes, the container is stopped and the start fails with
// ErrNotReady. A container that keeps dying (failed starts, or exits
// within 10s of becoming ready) delays the next start, 500ms doubling to
// 30s; one that stays up 10s clears the delay.
//
// # Limits
//
//   - One container per launcher, on one Podman service. Pods, multiple
//     containers per service and remote hosts' port addresses are out of
//     scope: Addr is always on 127.0.0.1.
//   - Run does not stop the container when its context ends; call Stop.
//   - A container already running at the first Start (lazypod restarted)
//     is adopted and probed, except with the notify probe, whose READY=1
//     went to an earlier socket: that container is restarted.
//   - The exec probe splits its command on white space; there is no shell
//     and no quoting.
//   - The notify probe reads only READY=1; its socket is
//     RuntimeDir/NAME.notify, at most 107 bytes long, bind-mounted at
//     /run/lazypod/notify.sock. Other sd_notify messages are ignored.
//   - The healthcheck probe runs the image's HEALTHCHECK on demand through
//     the API, ignoring its interval.
//   - Env entries are KEY=VALUE; a repeated KEY takes its last value.
//   - The launcher pulls only a missing image; pulling newer images for
//     the same reference is the updater's job.
//   - The Podman bindings retry a request that fails to connect up to
//     three times, sleeping 100ms, 200ms and 300ms, even past the
//     caller's deadline, so "Podman is down" takes about 600ms to report.
package launcher
