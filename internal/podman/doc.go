// Package podman is lazypod's one client of the Podman REST API (the
// podman.socket service, rootful or rootless): the launcher's Runtime, and
// the updater's Images, Pins and Containers. It is the only package that
// imports Podman's bindings, which need lazypod's build tags (remote
// exclude_graphdriver_btrfs containers_image_openpgp).
//
// Typical use:
//
//	pm := podman.New(podman.DefaultURL()) // connects on first use
//	if err := pm.Connect(ctx); err != nil {
//		log.Warn("Podman API not reachable yet", "err", err) // errors.Is(err, launcher.ErrNoPodman)
//	}
//	l, err := launcher.New(launcher.Config{Name: "web", Image: ref, Runtime: pm})
//	svc := &updater.Service{Name: "web", Images: pm.WithPull(opts), Pins: pm, Containers: pm}
//
// A Client connects lazily, on its first call, and again on the next call
// after an attempt failed, so that lazypod serve starts, and keeps
// serving, while Podman's API is down: each start then reports the API as
// unreachable instead of lazypod exiting. Once connected, each call dials
// the API socket afresh (the bindings keep no connection open), so a
// restarted Podman is picked up too. Exec runs over a second connection of
// its own: the bindings' attach replaces its client's transport, which must
// not race with the other calls.
//
// # Errors
//
// Errors the service answers are passed on as Podman's own message,
// trimmed. An unreachable API wraps launcher.ErrNoPodman. A pull of an
// image the registry does not have wraps launcher.ErrImageNotFound, and one
// the registry refuses for want of credentials launcher.ErrRegistryAuth;
// other pull failures (a registry that is down, answers 5xx, or speaks
// plain HTTP) are passed on as they are.
//
// # Pins
//
// Pin keeps a service's previous image from `podman image prune -a`, which
// removes every image no container uses (a tag alone does not protect an
// image on Podman 4.3): a created, never-started container NAME.lazypod-pin
// (network none, label io.lazypod.pin=NAME) uses it, and a tag
// localhost/lazypod-pin/NAME:previous names it in `podman images`.
//
// # Limits
//
//   - Pull reads the auth file in this process (as "podman --remote"
//     does); TLSVerify applies to pulls only.
//   - The bindings retry a request that fails to connect up to three
//     times, sleeping 100ms, 200ms and 300ms, even past the caller's
//     deadline, so "Podman is down" takes about 600ms to report.
//   - Exec sessions run one at a time. Podman before 4.8 cannot remove a
//     hung exec session; it ends when its container stops.
package podman
