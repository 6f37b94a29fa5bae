package launcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// Swapper chooses the image of each start and hears how it went; the
// updater's Service is one. The launcher calls it only from the start in
// progress, and from the exit watcher (Failed within the rollback window),
// never two calls at once.
type Swapper interface {
	// Choose is called at the beginning of each start from stopped
	// (after the backoff delay). It returns the image to run, an image
	// ID (or reference) in local storage, or "" for Config.Image, pulled
	// if missing, as without a Swapper; and the image ID to roll back to
	// if that image fails, or "" for no rollback.
	Choose(ctx context.Context) (image, fallback string, err error)
	// Ready is called when a start made the container ready from image
	// imageID, after the waiting callers were released. coldStart is
	// how long the start took, from stopped to ready, both attempts of a
	// rollback included.
	Ready(ctx context.Context, imageID string, coldStart time.Duration)
	// Failed is called when image imageID, chosen with a fallback,
	// failed: its start failed (probe timeout, exit) or it exited within
	// RollbackWindow of becoming ready. reason says how.
	Failed(ctx context.Context, imageID string, reason error)
}

// errChoosing marks a start that failed in Swapper.Choose.
var errChoosing = errors.New("choosing image")

// startChosen runs a start with the image the Swapper chooses, if there
// is one, rolling back to its fallback within the same start if the
// chosen image fails to start.
func (l *Launcher) startChosen(ctx context.Context, gen uint64) (*startResult, error) {
	if l.cfg.Swapper == nil {
		began := time.Now()
		l.status("starting container %s", l.cfg.Name)
		ahead := l.inspectAhead(ctx)
		img, err := l.ensureImage(ctx)
		if err != nil {
			return nil, err
		}
		img.inspected = ahead
		return l.start(ctx, gen, img, began)
	}

	if err := l.waitSwapper(ctx); err != nil {
		return nil, err
	}
	began := time.Now()
	l.status("starting container %s", l.cfg.Name)
	ahead := l.inspectAhead(ctx)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	image, fallback, err := l.cfg.Swapper.Choose(cctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errChoosing, causeOf(ctx, err))
	}
	img, err := l.chosenImage(ctx, image, false)
	if err != nil {
		return nil, err
	}
	img.inspected = ahead
	img.disposable = fallback != ""
	r, err := l.start(ctx, gen, img, began)
	if err == nil {
		r.trial = fallback != ""
		r.readyDone = make(chan struct{})
		return r, nil
	}
	if fallback == "" || ctx.Err() != nil || !(errors.Is(err, ErrNotReady) || errors.Is(err, ErrExited)) {
		return nil, err
	}
	return l.rollback(ctx, gen, img.id, fallback, err, began)
}

// rollback ends a start whose chosen image failed with reason: it tells
// the Swapper, then starts again from fallback, with a fresh ReadyTimeout.
// The failed container is already removed.
func (l *Launcher) rollback(ctx context.Context, gen uint64, failed, fallback string, reason error, began time.Time) (*startResult, error) {
	l.log.Warn("rolling back", "image", spec.ShortID(failed), "fallback", spec.ShortID(fallback), "err", reason)
	l.status("rolling back container %s to image %s: %v", l.cfg.Name, spec.ShortID(fallback), reason)
	l.swapperFailed(ctx, failed, reason)
	img, err := l.chosenImage(ctx, fallback, true)
	var r *startResult
	if err == nil {
		r, err = l.start(ctx, gen, img, began)
	}
	if err != nil && ctx.Err() != nil {
		// Cut short by Stop or Run's end: not a failed rollback.
		return nil, fmt.Errorf("rolling back from image %s to image %s: %w", spec.ShortID(failed), spec.ShortID(fallback), err)
	}
	if err != nil {
		return nil, fmt.Errorf("rolling back from image %s (%w) to image %s: %w: %w",
			spec.ShortID(failed), reason, spec.ShortID(fallback), ErrRollback, err)
	}
	r.rolledBack = true
	r.readyDone = make(chan struct{})
	return r, nil
}

// chosenImage returns the attempt for image, an image ID or reference
// the Swapper chose; if empty, the configured image, pulled if missing.
// The container is created by Config.Image's name if that names the
// chosen image, else by the image's ID. A chosen image is never pulled.
//
// Unless verify, an image ID (what a Swapper normally chooses, having just
// checked it exists) is taken as it is: the image is inspected only if a
// container must be created from it (see resolveRef), which keeps image
// inspects, slow in Podman, off the path of a start that reuses its
// container.
func (l *Launcher) chosenImage(ctx context.Context, image string, verify bool) (attempt, error) {
	if image == "" {
		return l.ensureImage(ctx)
	}
	if !verify && spec.IsImageID(image) {
		return attempt{id: image}, nil
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	id, ok, err := l.rt.ImageID(cctx, image)
	if err != nil {
		return attempt{}, fmt.Errorf("inspecting image %s: %w", spec.ShortID(image), causeOf(ctx, err))
	}
	if !ok {
		return attempt{}, fmt.Errorf("finding image %s: %w: not in local storage", spec.ShortID(image), ErrImageNotFound)
	}
	ref := id
	named, ok, err := l.rt.ImageID(cctx, l.cfg.Image)
	if err != nil {
		return attempt{}, fmt.Errorf("inspecting image %q: %w", l.cfg.Image, causeOf(ctx, err))
	}
	if ok && named == id {
		ref = l.cfg.Image
	}
	return attempt{ref: ref, id: id}, nil
}

// resolveRef fills in img.ref, what to create the container from, for an
// attempt chosenImage did not inspect: Config.Image if that names img.id,
// else the ID. It fails with ErrImageNotFound if img.id is not in local
// storage.
func (l *Launcher) resolveRef(ctx context.Context, img *attempt) error {
	if img.ref != "" {
		return nil
	}
	r, err := l.chosenImage(ctx, img.id, true)
	if err != nil {
		return err
	}
	img.ref = r.ref
	return nil
}

// waitSwapper waits until the Swapper calls made before this start (the
// last start's Ready, the exit watcher's Failed) have returned, so that
// Choose sees what they recorded.
func (l *Launcher) waitSwapper(ctx context.Context) error {
	l.mu.Lock()
	prev := l.swapDone
	l.mu.Unlock()
	if prev == nil {
		return nil
	}
	select {
	case <-prev:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the image swapper: %w", context.Cause(ctx))
	}
}

// reportReady tells the Swapper that image imageID became ready after
// coldStart, then closes done. It runs after the start has ended, under
// the start's context's values: a start that became ready is recorded even
// if Run is ending.
func (l *Launcher) reportReady(ctx context.Context, imageID string, coldStart time.Duration, done chan struct{}) {
	defer l.wg.Done()
	defer close(done)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	l.cfg.Swapper.Ready(cctx, imageID, coldStart)
}

// swapperFailed tells the Swapper that image failed with reason. Like the
// cleanup of a failed start, it completes even if ctx is cancelled.
func (l *Launcher) swapperFailed(ctx context.Context, image string, reason error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	l.cfg.Swapper.Failed(cctx, image, reason)
}
