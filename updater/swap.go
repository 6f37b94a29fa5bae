package updater

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// Errors of swaps and rollbacks; test with errors.Is.
var (
	// ErrNoPrevious means a rollback was asked for a service that has no
	// previous image.
	ErrNoPrevious = errors.New("no previous image to roll back to")
	// ErrNoImage means Choose found no image a service may run: the one
	// it ran is gone from local storage and its reference names no image
	// that has not failed.
	ErrNoImage = errors.New("no image to run")
)

// Choice is the image the next start of a service runs. The zero Choice
// means: run the configured reference, pulled if missing.
type Choice struct {
	// Image is the image ID to create the container from. If empty, the
	// configured reference.
	Image string
	// Fallback is the image ID to run instead if Image fails its start
	// or exits soon after it. If empty, no rollback.
	Fallback string
}

// Deployed records that the image imageID became ready (digest: its
// manifest digest, "" if none) after a start that took coldStart. It
// returns true when PreviousImageID changed: the caller re-pins the
// previous image.
//
//   - LastColdStart := coldStart, always.
//   - imageID differs from ImageID: the current image becomes the
//     previous one (PreviousImageID, PreviousDigest), if there is one,
//     and imageID and digest become the current one.
//   - imageID is PendingImageID: the pending image is cleared and
//     LastUpdateResult is ResultTrue. If digest is "", PendingDigest is
//     taken as its digest.
//   - imageID is ImageID: a redeploy; nothing else changes (a pending
//     image stays pending, the digest is not updated).
//   - imageID is "": nothing else changes.
func (st *State) Deployed(imageID, digest string, coldStart time.Duration) (previousChanged bool) {
	st.LastColdStart = Duration(coldStart)
	if imageID == "" {
		return false
	}
	wasPending := imageID == st.PendingImageID
	if wasPending {
		if digest == "" {
			digest = st.PendingDigest
		}
		st.PendingImageID, st.PendingDigest = "", ""
		st.LastUpdateResult = ResultTrue
	}
	if imageID == st.ImageID {
		return false
	}
	prev := st.PreviousImageID
	if st.ImageID != "" {
		st.PreviousImageID, st.PreviousDigest = st.ImageID, st.Digest
	}
	st.ImageID, st.Digest = imageID, digest
	return st.PreviousImageID != prev
}

// Failed records that the image imageID (digest: its manifest digest, ""
// if none) failed after a swap: its start failed, or it exited soon after
// becoming ready. It returns true when PreviousImageID changed: the caller
// re-pins the previous image, or unpins it if PreviousImageID is now "".
//
//   - Its digest, else its ID, joins FailedDigests (no duplicates). If
//     digest is "", the digest the state knows for imageID (pending,
//     current or previous) is used, if any. When recorded by digest, its
//     ID joins FailedImageIDs (no duplicates), so that Choose, which
//     knows local images only by ID, refuses it too.
//   - A pending image that is now failed (by ID or digest) is cleared.
//   - If it is the current image: the previous image becomes the current
//     one and the previous one is cleared. With no previous image the
//     current one is cleared too, and the next start runs the reference
//     unless Choose finds it failed.
//   - If it is the previous image, the previous one is cleared: a
//     rollback never goes to a failed image.
//   - LastUpdateResult := ResultRolledBack.
//
// An empty imageID records only LastUpdateResult and the digest, if any.
func (st *State) Failed(imageID, digest string) (previousChanged bool) {
	if digest == "" {
		digest = st.digestOf(imageID)
	}
	digest = bareDigest(digest)
	switch {
	case digest != "":
		if !st.listed(digest) {
			st.FailedDigests = append(st.FailedDigests, digest)
		}
		if imageID != "" && !slices.Contains(st.FailedImageIDs, imageID) {
			st.FailedImageIDs = append(st.FailedImageIDs, imageID)
		}
	case imageID != "":
		if !st.listed(imageID) {
			st.FailedDigests = append(st.FailedDigests, imageID)
		}
	}
	if st.PendingImageID != "" && st.failed(st.PendingImageID, st.PendingDigest) {
		st.PendingImageID, st.PendingDigest = "", ""
	}
	prev := st.PreviousImageID
	switch {
	case imageID == "":
	case imageID == st.ImageID:
		st.ImageID, st.Digest = st.PreviousImageID, st.PreviousDigest
		st.PreviousImageID, st.PreviousDigest = "", ""
	case imageID == st.PreviousImageID:
		st.PreviousImageID, st.PreviousDigest = "", ""
	}
	st.LastUpdateResult = ResultRolledBack
	return st.PreviousImageID != prev
}

// Rollback is "lazypod rollback NAME": the current image is marked failed
// and the previous one becomes current, as Failed(st.ImageID, st.Digest).
// Without a previous image it changes nothing and returns an error
// wrapping ErrNoPrevious. If nothing is current, the previous image just
// becomes current. The caller re-pins (here: unpins) the previous image
// and stops the running container, so that the next start runs the
// rolled-back image. A pending image is dropped too: a person rolling back
// wants the previous image, not whatever the last check pulled (the next
// check finds it again unless it is the failed one).
func (st *State) Rollback() error {
	if st.PreviousImageID == "" {
		if st.ImageID == "" {
			return fmt.Errorf("rolling back %q: %w: it has run no image yet", st.Name, ErrNoPrevious)
		}
		return fmt.Errorf("rolling back %q: %w: it runs image %s and keeps no other; push or tag the image you want as %s and run lazypod update",
			st.Name, ErrNoPrevious, spec.ShortID(st.ImageID), st.Image)
	}
	st.PendingImageID, st.PendingDigest = "", ""
	if st.ImageID == "" {
		st.ImageID, st.Digest = st.PreviousImageID, st.PreviousDigest
		st.PreviousImageID, st.PreviousDigest = "", ""
		st.LastUpdateResult = ResultRolledBack
		return nil
	}
	st.Failed(st.ImageID, st.Digest)
	return nil
}

// Choose says which image the next start of the service runs under policy
// p. localID is the ID of the image that st.Image names in local storage
// ("" if none); exists reports whether an image ID is in local storage
// (required). An image is failed when its ID is in FailedDigests or
// FailedImageIDs, or the digest the state knows for it is in
// FailedDigests. The first rule that applies wins:
//
//  1. p is spec.PolicyDisabled or "": Choice{}, run the reference.
//  2. Nothing deployed (ImageID ""): Choice{}, run the reference; the
//     launcher pulls it if missing. But if localID is failed: ErrNoImage.
//  3. A pending image that exists, is not failed and is not ImageID:
//     Image = pending, Fallback = the fallback below.
//  4. p is spec.PolicyLocal and localID is not "", not ImageID and not failed:
//     Image = localID, Fallback = the fallback below.
//  5. ImageID exists: Image = ImageID, no fallback.
//  6. ImageID is gone and localID is not "" and not failed: Image =
//     localID, no fallback.
//  7. Otherwise an error wrapping ErrNoImage naming what is gone and
//     what to do.
//
// The fallback of rules 3 and 4 is ImageID if it exists; if it is gone,
// PreviousImageID if it exists and is not failed; else localID if it is
// not failed and not the chosen image; else none. Image and Fallback are
// never a failed image (except ImageID itself, which got there by
// becoming ready) and never equal.
func (st *State) Choose(p spec.Policy, localID string, exists func(id string) bool) (Choice, error) {
	switch p {
	case spec.PolicyDisabled, "":
		return Choice{}, nil
	case spec.PolicyRegistry, spec.PolicyLocal:
	default:
		_, err := spec.ParsePolicy(string(p))
		return Choice{}, fmt.Errorf("choosing an image: policy %q: %w", p, err)
	}
	localOK := localID != "" && !st.failed(localID, st.digestOf(localID))
	if st.ImageID == "" {
		if localID != "" && !localOK {
			return Choice{}, fmt.Errorf("%w for %q: %s names image %s, which failed before, and no other image has run: push a fixed image and run lazypod update, or podman pull a good one",
				ErrNoImage, st.Name, st.Image, spec.ShortID(localID))
		}
		return Choice{}, nil
	}
	if id := st.PendingImageID; id != "" && id != st.ImageID && !st.failed(id, st.PendingDigest) && exists(id) {
		return Choice{Image: id, Fallback: st.fallback(id, localID, localOK, exists)}, nil
	}
	if p == spec.PolicyLocal && localOK && localID != st.ImageID {
		return Choice{Image: localID, Fallback: st.fallback(localID, localID, localOK, exists)}, nil
	}
	if exists(st.ImageID) {
		return Choice{Image: st.ImageID}, nil
	}
	if localOK {
		return Choice{Image: localID}, nil
	}
	if localID == "" {
		return Choice{}, fmt.Errorf("%w for %q: image %s it ran is gone from local storage and %s is not there either: run lazypod update, or podman pull (or build) %s",
			ErrNoImage, st.Name, spec.ShortID(st.ImageID), st.Image, st.Image)
	}
	return Choice{}, fmt.Errorf("%w for %q: image %s it ran is gone from local storage and %s names image %s, which failed before: push a fixed image and run lazypod update, or podman pull a good one",
		ErrNoImage, st.Name, spec.ShortID(st.ImageID), st.Image, spec.ShortID(localID))
}

// fallback returns the image to roll back to if chosen fails.
func (st *State) fallback(chosen, localID string, localOK bool, exists func(string) bool) string {
	if exists(st.ImageID) {
		return st.ImageID
	}
	if id := st.PreviousImageID; id != "" && id != chosen && !st.failed(id, st.PreviousDigest) && exists(id) {
		return id
	}
	if localOK && localID != chosen {
		return localID
	}
	return ""
}

// Merge applies to cur, the state re-read under the service's lock, the
// result of a check made without the lock on checked, a copy of base:
//
//   - If cur's ImageID and PendingImageID are still base's, and the
//     pending image the check left (checked's PendingImageID and
//     PendingDigest) is not failed in cur: cur takes checked's Policy,
//     LastCheck, LastCheckError, PendingImageID and PendingDigest, and
//     LastUpdateResult unless the check failed (LastCheckError set: then
//     Check did not set it, and cur's may be newer).
//   - Otherwise (a start swapped or rolled back meanwhile): cur takes only
//     LastCheck and LastCheckError.
//
// So "lazypod update" holds the lock only around loading and saving, never
// during a registry request or a pull. None of the states may be nil;
// checked and base are not changed.
func Merge(cur, base, checked *State) {
	cur.LastCheck = checked.LastCheck
	cur.LastCheckError = checked.LastCheckError
	if cur.ImageID != base.ImageID || cur.PendingImageID != base.PendingImageID {
		return
	}
	if checked.PendingImageID != "" && cur.failed(checked.PendingImageID, checked.PendingDigest) {
		return
	}
	cur.Policy = checked.Policy
	cur.PendingImageID, cur.PendingDigest = checked.PendingImageID, checked.PendingDigest
	if checked.LastCheckError == "" {
		cur.LastUpdateResult = checked.LastUpdateResult
	}
}

// failed reports whether the image id is in FailedDigests or
// FailedImageIDs, or the digest in FailedDigests. Empty values match
// nothing.
func (st *State) failed(id, digest string) bool {
	return (id != "" && (st.listed(id) || slices.Contains(st.FailedImageIDs, id))) ||
		(digest != "" && st.listed(bareDigest(digest)))
}

// failedImage reports whether img's ID or any of its digests is in
// FailedDigests.
func (st *State) failedImage(img Image) bool {
	return st.failed(img.ID, "") || slices.ContainsFunc(img.Digests, func(d string) bool { return st.failed("", d) })
}

// listed reports whether s is in FailedDigests, which may hold digests
// bare or as repo@digest.
func (st *State) listed(s string) bool {
	return slices.ContainsFunc(st.FailedDigests, func(f string) bool { return bareDigest(f) == s })
}

// digestOf returns the digest the state knows for the image id: the
// pending, current or previous one's; "" if none.
func (st *State) digestOf(id string) string {
	switch id {
	case "":
		return ""
	case st.PendingImageID:
		return st.PendingDigest
	case st.ImageID:
		return st.Digest
	case st.PreviousImageID:
		return st.PreviousDigest
	}
	return ""
}
