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
// # Checks
//
// Under PolicyRegistry an update is available when the registry's manifest
// digest for the reference, fetched with one HEAD request and no pull,
// differs from every digest of the image the service runs (the manifest
// list's and the platform's, as Podman's RepoDigests list them). Under
// PolicyLocal it is available when the local image the reference names has
// another ID than the one the service runs. A digest (or, for local
// images without one, an image ID) in State.FailedDigests is reported as
// ResultFailed and never pulled. A new image is pulled and recorded as
// pending; a failed or interrupted pull records nothing.
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
//   - Only checks and pulls exist here. Recording a swap (ResultTrue), a
//     rollback (ResultRolledBack), adding to FailedDigests and pinning the
//     previous image with a tag are not implemented yet; State has the
//     fields for them.
//   - Check does not save the state or take the lock; the caller does both.
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
