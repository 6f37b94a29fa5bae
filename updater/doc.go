// Package updater decides what image a service should run next: it checks
// a service's image reference for an update (in its registry, or in local
// storage), pulls it, and remembers per service what runs, what is pending
// and which images failed, in a state directory shared by every lazypod
// process.
//
// It does not talk to Podman itself. Local images are reached through the
// Images interface and registries through the Registry interface;
// DockerRegistry implements Registry with the containers/image docker
// client; the caller supplies Images, e.g. an adapter over its Podman
// client.
//
// Typical use, for each service (an update run keeps going when one
// service fails and joins the errors):
//
//	policy, err := updater.ParsePolicy(flagAutoUpdate) // "registry", "local", "disabled"
//	if err != nil {
//		return err
//	}
//	if err := policy.CheckImage(image); err != nil {
//		return err // errors.Is(err, updater.ErrUnqualified): say how to qualify it
//	}
//	store := &updater.Store{Dir: stateDir}
//	unlock, err := store.Lock(ctx, name) // a serve and a timer's update take turns
//	if err != nil {
//		return err // errors.Is(err, updater.ErrLocked) after Store.LockTimeout
//	}
//	defer unlock()
//	st, err := store.Load(name)
//	if errors.Is(err, fs.ErrNotExist) {
//		st, err = &updater.State{Name: name, Image: image}, nil // nothing known yet
//	}
//	if err != nil {
//		return err // errors.Is(err, updater.ErrCorrupt): reported, file set aside
//	}
//	c := &updater.Checker{
//		Registry: &updater.DockerRegistry{AuthFile: authFile, InsecureSkipTLSVerify: !tlsVerify},
//		Images:   images,
//		DryRun:   dryRun,
//	}
//	result, err := c.Check(ctx, st, policy) // false, pending or failed
//	// print NAME, IMAGE, POLICY, UPDATED=result
//	if !dryRun {
//		err = errors.Join(err, store.Save(st))
//	}
//
// "lazypod update" need not hold the lock during the registry request and
// the pull: it checks a copy and merges the result into the state re-read
// under the lock, so that a swap or rollback made meanwhile by a serve
// wins:
//
//	base := *st // loaded under the lock, then unlocked
//	checked := base
//	checked.FailedDigests = slices.Clone(base.FailedDigests)
//	result, err := c.Check(ctx, &checked, policy)
//	// lock, load cur again, then:
//	updater.Merge(cur, &base, &checked)
//	err = errors.Join(err, store.Save(cur))
//
// At each start from stopped, the serve asks which image to run, and
// records how the start went (holding the lock around each load and save):
//
//	choice, err := st.Choose(policy, localID, exists) // localID: what st.Image names locally
//	if err != nil {
//		return err // errors.Is(err, updater.ErrNoImage): the message says what to do
//	}
//	// run choice.Image, rolling back to choice.Fallback if it fails; then
//	if st.Failed(failedID, failedDigest) { /* re-pin or unpin st.PreviousImageID */ }
//	if st.Deployed(readyID, readyDigest, coldStart) { /* re-pin st.PreviousImageID */ }
//
// "lazypod rollback NAME" is st.Rollback() (errors.Is(err,
// updater.ErrNoPrevious) when there is nothing to go back to), a save, and
// a stop of the running container.
//
// # Checks
//
// Under PolicyRegistry an update is available when the registry's manifest
// digest for the reference, fetched with one HEAD request and no pull,
// differs from every digest of the image the service runs (the manifest
// list's and the platform's, as Podman's RepoDigests list them). Under
// PolicyLocal it is available when the local image the reference names has
// another ID than the one the service runs. An image whose digest or ID
// is in State.FailedDigests is reported as ResultFailed and never recorded
// pending (nor pulled, when the registry's digest is the failed one), and
// a pending image found failed is forgotten. A new image is pulled and
// recorded as pending; a failed or interrupted pull records nothing.
//
// # Swaps and rollbacks
//
// Choose runs, in this order: the reference when nothing ran yet; a pending
// image, with the current one as the fallback; under PolicyLocal a newer
// image the reference names locally, with the current one as the fallback;
// the current image. A pending or local image that is failed is never
// chosen. Deployed makes a ready image current (the current one becomes
// previous) and clears the pending one (ResultTrue). Failed adds an image's
// digest (else its ID) to FailedDigests and its ID to FailedImageIDs,
// drops it from pending, and if it was current puts the previous image
// back (ResultRolledBack). Rollback is Failed of the current image.
//
// # State
//
// Store keeps one JSON file per service, Dir/NAME.json, with snake_case
// keys. Save writes a temporary file, fsyncs it, renames it into place and
// fsyncs the directory, so a crash leaves the old state or the new one. A
// file that cannot be parsed is renamed NAME.json.corrupt-UNIXTIME and
// reported as a *CorruptError, never replaced by an empty state. Lock
// takes flock(2) on Dir/NAME.lock.
//
// # Limits
//
//   - The updater records swaps, rollbacks and failed images, but runs
//     nothing: starting the chosen image, rolling back during a start and
//     pinning the previous image so that "podman image prune" keeps it are
//     done by the launcher and cmd/lazypod, as are the update, status and
//     rollback commands.
//   - One previous image is kept: a second rollback in a row has nowhere
//     to go (ErrNoPrevious).
//   - Choose knows local images only by ID: it refuses an image whose ID
//     is in FailedDigests or FailedImageIDs, or whose digest the state
//     knows (pending, current or previous) and lists. An image that
//     failed in a state file written before FailedImageIDs existed may
//     be chosen once more by ID. Failed images are remembered forever;
//     edit the state file to forgive one.
//   - Check, Choose, Deployed, Failed, Rollback and Merge do not save the
//     state or take the lock; the caller does both.
//   - Load, Save and List take no lock: hold Store.Lock around a load,
//     change and save so two processes do not lose each other's changes.
//   - The lock is advisory, works only on local file systems that support
//     flock(2), and is polled (every 5ms, backing off to 100ms) rather than
//     queued, so waiters are not served in order.
//   - DockerRegistry asks the registry the reference names: mirrors in
//     registries.conf are ignored (its insecure and blocked settings
//     apply), so a pull through a mirror may bring another digest. With
//     InsecureSkipTLSVerify it falls back to plain HTTP.
//   - A registry reference without a tag means ":latest"; one pinned by
//     digest is refused under the registry policy.
package updater
