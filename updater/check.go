package updater

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// Registry tells what a registry offers for an image reference.
type Registry interface {
	// Digest returns the manifest digest ("sha256:...") the registry
	// serves for ref, without pulling: for a multi-platform image, the
	// digest of the manifest list.
	Digest(ctx context.Context, ref string) (string, error)
}

// Image is a local image as the updater sees it.
type Image struct {
	// ID is the image ID.
	ID string
	// Digests are the image's manifest digests, as Podman's RepoDigests
	// ("docker.io/library/nginx@sha256:...") or bare ("sha256:..."): for
	// a pulled image the manifest list's and the platform's. Podman lists
	// digests for an image built locally too.
	Digests []string
}

// Images is the local image storage.
type Images interface {
	// Image returns the local image that a reference or an image ID
	// names; ok is false if there is none.
	Image(ctx context.Context, nameOrID string) (img Image, ok bool, err error)
	// Pull pulls ref from its registry into local storage.
	Pull(ctx context.Context, ref string) error
}

// Checker checks services' images for updates and pulls them.
type Checker struct {
	// Registry answers the registry policy's checks. Required for that
	// policy.
	Registry Registry
	// Images is the local image storage. Required.
	Images Images
	// DryRun reports what would happen without pulling or changing the
	// state: an available update is reported pending but not pulled.
	DryRun bool
	// Timeout bounds one Check: the registry request, the pull and the
	// image inspects. If zero, DefaultCheckTimeout. If negative, only
	// Check's ctx bounds it.
	Timeout time.Duration
	// Now gives the time of each check. If nil, time.Now.
	Now func() time.Time
}

// DefaultCheckTimeout bounds one check by default: a pull of a large image
// over a slow link.
const DefaultCheckTimeout = 10 * time.Minute

// errCheckTimeout is the cause of a check that ran out of Timeout.
var errCheckTimeout = errors.New("check timed out")

func (c *Checker) timeout() time.Duration {
	if c.Timeout == 0 {
		return DefaultCheckTimeout
	}
	return c.Timeout
}

func (c *Checker) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

// Check checks st.Image for an update under policy p and, unless DryRun,
// pulls it and records it in st as pending (PendingImageID,
// PendingDigest). It returns:
//
//   - ResultFalse: no update; or policy disabled; or nothing deployed yet
//     (st.ImageID empty and the reference not in local storage: the first
//     start pulls it).
//   - ResultPending: an update was pulled and waits for the next start,
//     or one was pulled before and is still the newest; with DryRun, an
//     update is available.
//   - ResultFailed: the image available is failed: its digest or its ID
//     is in st.FailedDigests. It is not pulled when the registry's digest
//     tells (a pull that brings a failed image ID records nothing), and
//     never recorded pending.
//
// A pending image that is failed (a check that raced with a failed start)
// is forgotten, and never reported as an update available.
//
// The registry policy compares the registry's digest for st.Image with
// every digest of the image the service runs (st.ImageID, else the local
// image st.Image names). The local policy compares the ID of the local
// image st.Image names with st.ImageID; FailedDigests may then hold image
// IDs. If the check fails (registry down, pull interrupted) Check returns
// the error and records nothing pending.
//
// Unless DryRun, Check sets st.Policy, st.LastCheck, st.LastCheckError and,
// on success, st.LastUpdateResult; the caller saves st, holding the
// service's lock.
func (c *Checker) Check(ctx context.Context, st *State, p spec.Policy) (Result, error) {
	if d := c.timeout(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d, fmt.Errorf("%w after %s", errCheckTimeout, d))
		defer cancel()
	}
	var (
		r   Result
		err error
	)
	switch p {
	case spec.PolicyRegistry:
		r, err = c.checkRegistry(ctx, st)
	case spec.PolicyLocal:
		r, err = c.checkLocal(ctx, st)
	case spec.PolicyDisabled, "":
		return ResultFalse, nil
	default:
		_, err := spec.ParsePolicy(string(p))
		return "", fmt.Errorf("checking for an update: policy %q: %w", p, err)
	}
	if err != nil && errors.Is(context.Cause(ctx), errCheckTimeout) {
		err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	if c.DryRun {
		return r, err
	}
	st.Policy = p
	st.LastCheck = c.now()
	st.LastCheckError = ""
	if err != nil {
		st.LastCheckError = err.Error()
		return r, err
	}
	st.LastUpdateResult = r
	return r, nil
}

func (c *Checker) checkRegistry(ctx context.Context, st *State) (Result, error) {
	if err := spec.PolicyRegistry.CheckImage(st.Image); err != nil {
		return "", fmt.Errorf("checking image %q: %w", st.Image, err)
	}
	if c.Registry == nil {
		return "", errors.New("checking registry: no Registry configured")
	}
	pendingID, pendingDigest, pendingFailed := c.dropFailedPending(st)
	remote, err := c.Registry.Digest(ctx, st.Image)
	if err != nil {
		return "", fmt.Errorf("checking registry for %q: %w", st.Image, err)
	}
	if st.failed("", remote) || (pendingFailed && pendingDigest == remote) {
		return ResultFailed, nil
	}
	if pendingID != "" && pendingDigest == remote {
		_, ok, err := c.Images.Image(ctx, pendingID)
		if err != nil {
			return "", fmt.Errorf("inspecting pending image %s: %w", pendingID, err)
		}
		if ok {
			return ResultPending, nil
		}
		// The pending image was removed: pull it again below.
	}
	cur := st.ImageID
	if cur == "" {
		cur = st.Image
	}
	img, ok, err := c.Images.Image(ctx, cur)
	if err != nil {
		return "", fmt.Errorf("inspecting image %s: %w", cur, err)
	}
	if !ok && st.ImageID == "" {
		return ResultFalse, nil // nothing deployed yet
	}
	if ok && hasDigest(img.Digests, remote) {
		c.clearPending(st)
		return ResultFalse, nil
	}
	if c.DryRun {
		return ResultPending, nil
	}
	if err := c.Images.Pull(ctx, st.Image); err != nil {
		return "", fmt.Errorf("pulling %q: %w", st.Image, err)
	}
	pulled, ok, err := c.Images.Image(ctx, st.Image)
	if err != nil {
		return "", fmt.Errorf("inspecting pulled image %q: %w", st.Image, err)
	}
	if !ok {
		return "", fmt.Errorf("inspecting pulled image %q: not in local storage after the pull", st.Image)
	}
	if pulled.ID == st.ImageID {
		// The registry's digest is new to us but names the image we run.
		c.clearPending(st)
		return ResultFalse, nil
	}
	digest := remote
	if !hasDigest(pulled.Digests, remote) && len(pulled.Digests) > 0 {
		// The registry moved on between the check and the pull.
		digest = bareDigest(pulled.Digests[0])
	}
	if st.failed(pulled.ID, digest) || st.failedImage(pulled) {
		return ResultFailed, nil
	}
	st.PendingImageID = pulled.ID
	st.PendingDigest = digest
	return ResultPending, nil
}

func (c *Checker) checkLocal(ctx context.Context, st *State) (Result, error) {
	c.dropFailedPending(st)
	img, ok, err := c.Images.Image(ctx, st.Image)
	if err != nil {
		return "", fmt.Errorf("inspecting image %q: %w", st.Image, err)
	}
	if !ok || st.ImageID == "" || img.ID == st.ImageID {
		c.clearPending(st)
		return ResultFalse, nil
	}
	if st.failedImage(img) || st.failed(img.ID, st.digestOf(img.ID)) {
		return ResultFailed, nil
	}
	if c.DryRun {
		return ResultPending, nil
	}
	st.PendingImageID = img.ID
	st.PendingDigest = ""
	if len(img.Digests) > 0 {
		st.PendingDigest = bareDigest(img.Digests[0])
	}
	return ResultPending, nil
}

// dropFailedPending forgets a pending image that is failed (by ID or
// digest), unless DryRun: a failed image is never pending. It returns the
// pending image as the check should see it: id is "" if it is failed, and
// failed reports whether it was.
func (c *Checker) dropFailedPending(st *State) (id, digest string, failed bool) {
	id, digest = st.PendingImageID, st.PendingDigest
	if id == "" || !st.failed(id, digest) {
		return id, digest, false
	}
	c.clearPending(st)
	return "", digest, true
}

// clearPending forgets a pending image that is no longer newer than the
// current one, unless DryRun.
func (c *Checker) clearPending(st *State) {
	if c.DryRun {
		return
	}
	st.PendingImageID = ""
	st.PendingDigest = ""
}

// hasDigest reports whether any of digests, bare or as repo@digest, is d.
func hasDigest(digests []string, d string) bool {
	return slices.ContainsFunc(digests, func(x string) bool { return bareDigest(x) == d })
}

// bareDigest returns the "sha256:..." part of "repo@sha256:...".
func bareDigest(s string) string {
	if _, d, ok := strings.Cut(s, "@"); ok {
		return d
	}
	return s
}
