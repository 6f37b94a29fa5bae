// Package launcher runs one container on demand through the Podman API:
// image, create, start, probe, stop. A Launcher satisfies proxy.Backend:
// the proxy calls Start when a flow arrives, Addr to learn where to send
// it, and Stop when the service has been idle.
//
// Typical use (package internal/podman's Client is the Runtime over the
// Podman API):
//
//	l, err := launcher.New(launcher.Config{
//		Name:    "web",
//		Image:   "docker.io/library/nginx:stable",
//		Ports:   []launcher.Port{{Route: "http", Port: 80}},
//		Ready:   spec.Probe{Kind: spec.ProbeHTTP, Arg: "/"},
//		Runtime: podman.New(""),
//		Status:  func(line string) { daemon.SdNotify(false, "STATUS="+line) },
//	})
//	if err != nil {
//		return err
//	}
//	g.Go(func() error { return l.Run(ctx) })
//	// for each flow:
//	if err := l.Start(flowCtx); err != nil { ... } // errors.Is(err, launcher.ErrNoPodman): hint at podman.socket
//	addr, err := l.Addr("http") // "127.0.0.1:41234"
//	// when idle, and on shutdown:
//	err = l.Stop(ctx)
//
// With automatic updates, a Swapper (the updater's Service) chooses the
// image of each start and hears how it went:
//
//	l, err := launcher.New(launcher.Config{
//		Name:           "web",
//		Image:          "registry.example/app:1",
//		Runtime:        pm,
//		Swapper:        svc, // Choose: pendingID with fallback currentID
//		RollbackWindow: 30 * time.Second,
//	})
//	// svc.Ready(imageID, coldStart): imageID is running;
//	// svc.Failed(imageID, reason): record imageID's digest as failed.
//
// # States
//
// A launcher is stopped, starting, ready or stopping. Concurrent Start
// calls share one start, which runs in a goroutine of its own under Run's
// context, so a caller that gives up does not cancel it for the others.
// Each start has its own done channel, so a caller always gets the result
// of the start it joined. Once ready, Start is a mutex
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
// (see ProbeKind), polling every 2ms at first and backing off to 100ms.
// If the container exits meanwhile, the start fails at once with an
// *ExitError (ErrExited) holding the exit code and last log lines. If
// ReadyTimeout passes, the container is stopped and the start fails with
// ErrNotReady. A container that keeps dying (failed starts, or exits
// within 10s of becoming ready) delays the next start, 500ms doubling to
// 30s; one that stays up 10s clears the delay.
//
// # Swapping images
//
// With a Config.Swapper, each start from stopped first asks Choose which
// image to run: an image ID or reference already in local storage (never
// pulled: ErrImageNotFound if missing), or "" for Config.Image as without
// a Swapper, and which image to fall back to. The container is created from Config.Image's name if that
// names the chosen image, else from its ID; its io.lazypod.hash stays the
// configured settings', so a swap recreates it as "image changed".
//
// If the chosen image came with a Fallback and its container fails to
// start (ErrNotReady or ErrExited, not a Stop or a Podman error), the
// launcher removes that container, tells Failed, and starts the fallback
// in the same start, with a fresh ReadyTimeout: every waiting Start caller
// is served by the fallback. If the fallback is missing or fails too, the
// start fails with ErrRollback, carrying both reasons, and nothing is left
// running. Ready hears of every successful start (the image, and the cold
// start with both attempts), after the waiting callers have been released. A chosen container with a Fallback
// that exits within RollbackWindow (10s) of becoming ready is a failure
// too: Failed hears it (an *ExitError) and the launcher moves to stopped,
// so the next Start chooses anew. Stop is never a failure. Swapper calls
// never overlap, and each start's Choose comes after the Ready and Failed
// calls before it.
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
//     and no quoting (spec.ParseProbe refuses quotes).
//   - The notify probe reads only READY=1; its socket is
//     RuntimeDir/NAME.notify, at most 107 bytes long, bind-mounted at
//     /run/lazypod/notify.sock. Other sd_notify messages are ignored.
//   - The healthcheck probe runs the image's HEALTHCHECK on demand through
//     the API, ignoring its interval.
//   - Env entries are KEY=VALUE; a repeated KEY takes its last value.
//   - The launcher pulls only a missing Config.Image; pulling newer images
//     for the same reference is the updater's job, and an image the
//     Swapper chooses must already be in local storage.
//   - A rollback happens only within a start, and only to the one
//     Fallback image; a fallback that fails is not rolled back from. An
//     exit within the rollback window is reported, not rolled back from
//     at once: the next Start, on the next flow, runs what Choose says.
//   - A container that passes its probe and exits in the instant before
//     the start ends fails that start (its image is reported to Failed);
//     it is not rolled back within the start.
//   - The launcher does not import Podman's bindings: internal/podman
//     does, and its limits (the bindings' retries of a refused connect,
//     about 600ms) apply to every start.
package launcher
