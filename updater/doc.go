// Package updater decides what image a service should run next: it checks
// a service's image reference for an update (in its registry, or in local
// storage), pulls it, swaps it in at the next start, rolls back from it if
// it fails, and remembers per service what runs, what is pending and which
// images failed, in a state directory shared by every lazypod process.
//
// It does not talk to Podman itself. Local images are reached through the
// Images interface, the pin that keeps a fallback image from a prune
// through Pins, the service's container through Containers (package
// internal/podman implements all three), and registries through the
// Registry interface, which DockerRegistry implements with the
// containers/image docker client.
//
// Typical use: a Service is the launcher's Swapper in lazypod serve, and
// checks for updates while the service is idle:
//
//	svc := &updater.Service{
//		Name: "web", Image: ref, Policy: spec.PolicyRegistry,
//		Store:  &updater.Store{Dir: stateDir},
//		Images: pm, Pins: pm, Containers: pm,
//	}
//	l, err := launcher.New(launcher.Config{..., Swapper: svc})
//	c := &updater.Checker{Registry: &updater.DockerRegistry{}, Images: pm}
//	g.Go(func() error { return svc.IdleChecks(ctx, time.Hour, idle, c) })
//
// lazypod update runs one Check per service, lazypod rollback one Rollback;
// both leave Image and Policy empty, to take the state's:
//
//	svc := &updater.Service{Name: name, Store: store, Images: pm, Pins: pm}
//	result, err := svc.Check(ctx, c) // false, pending or failed
//	before, after, err := svc.Rollback(ctx)
//
// and lazypod status only reads: store.List(), store.Live(name).
//
// # The transaction
//
// Every change to a state file goes through Store.Update, which holds the
// service's lock (flock(2) on NAME.lock) around a load, the change and a
// save, and saves only if the state changed. No call to Podman or a
// registry runs under the lock: a Service reads the state without it,
// asks what it needs, then applies what it learnt under the lock. A check
// runs on a copy and is merged into the state as it is then (Merge), so a
// swap or rollback made meanwhile by a serve wins. Pins follow the state
// afterwards, under a lock of their own (NAME.pin.lock). Readers (Load,
// List) take no lock and change nothing.
//
// # Checks
//
// Under spec.PolicyRegistry an update is available when the registry's
// manifest digest for the reference, fetched with one HEAD request and no
// pull, differs from every digest of the image the service runs (the
// manifest list's and the platform's, as Podman's RepoDigests list them).
// Under spec.PolicyLocal it is available when the local image the
// reference names has another ID than the one the service runs. An image
// whose digest or ID is in State.FailedDigests is reported as ResultFailed
// and never recorded pending (nor pulled, when the registry's digest is
// the failed one), and a pending image found failed is forgotten. A new
// image is pulled and recorded as pending; a failed or interrupted pull
// records nothing. Checker.Timeout (10 minutes) bounds each check.
//
// # Swaps and rollbacks
//
// Choose runs, in this order: the reference when nothing ran yet; a
// pending image, with the current one as the fallback; under
// spec.PolicyLocal a newer image the reference names locally, with the
// current one as the fallback; the current image. A pending or local image
// that is failed is never chosen. Deployed makes a ready image current
// (the current one becomes previous) and clears the pending one
// (ResultTrue). Failed adds an image's digest (else its ID) to
// FailedDigests and its ID to FailedImageIDs, drops it from pending, and
// if it was current puts the previous image back (ResultRolledBack).
// Rollback is Failed of the current image.
//
// With updates disabled, Service.Choose returns at once and touches
// nothing: the start runs the reference. Ready still records the image
// and the cold start, after the waiting clients were released.
//
// # State
//
// Store keeps one JSON file per service, Dir/NAME.json, with snake_case
// keys, written by temporary file, fsync, rename and fsync of the
// directory, so a crash leaves the old state or the new one. A file that
// cannot be parsed is reported by readers as a *CorruptError; Update,
// holding the lock, renames it NAME.json.corrupt-UNIXTIME and never
// replaces it by an empty state silently: a serve starts again from the
// image the service's container last ran and says so in last_check_error.
// A running serve keeps Dir/NAME.serve (Live) up to date, without fsync.
//
// # Limits
//
//   - One previous image is kept: a second rollback in a row has nowhere
//     to go (ErrNoPrevious).
//   - Choose knows local images only by ID: it refuses an image whose ID
//     is in FailedDigests or FailedImageIDs, or whose digest the state
//     knows (pending, current or previous) and lists. Failed images are
//     remembered forever; edit the state file to forgive one.
//   - The lock is advisory, works only on local file systems that support
//     flock(2), and is polled (every 5ms, backing off to 100ms) rather than
//     queued, so waiters are not served in order.
//   - A pin follows the state when a Service changes it; a pin made
//     wrong by hand is put right at the next Ready, Failed or Rollback.
//   - DockerRegistry asks the registry the reference names: mirrors in
//     registries.conf are ignored (its insecure and blocked settings
//     apply), so a pull through a mirror may bring another digest. With
//     TLSVerify false, or a registry registries.conf marks insecure, it
//     falls back to plain HTTP.
//   - A registry reference without a tag means ":latest"; one pinned by
//     digest is refused under the registry policy.
package updater
