package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lazypod/lazypod/launcher"
	"github.com/lazypod/lazypod/updater"
	"go.podman.io/image/v5/docker/reference"
)

// LabelPin marks the container that pins a service's previous image, so
// that `podman image prune -a` keeps it: an image a container uses is never
// pruned, while a tag alone does not protect it.
const LabelPin = "io.lazypod.pin"

// stateLockTimeout bounds the wait for another lazypod process holding a
// service's lock. Holders keep it only around a load and a save.
const stateLockTimeout = 10 * time.Second

// service is one service's image bookkeeping over its state file and
// Podman: the launcher's Swapper in serve, and what update, status and
// rollback work on. Every change to the state file holds the service's
// lock around a load, the change and a save; no lock is held across a
// registry request or a pull.
type service struct {
	name   string
	image  string // configured reference; "" outside serve: the state's
	policy updater.Policy
	store  *updater.Store
	pm     podmanAPI
	set    registrySettings // recorded in the state, for lazypod update
	log    *slog.Logger

	mu          sync.Mutex
	cancelCheck context.CancelFunc // the idle check in progress, if any
}

// pinName is the name of the container that pins the service's previous
// image.
func pinName(name string) string { return name + ".lazypod-pin" }

// load reads the state under the lock and calls change with it; if change
// returns true, it saves the state. A missing state is a new one for
// s.image. A corrupt one is reported by the store (set aside) and returned
// as the error.
func (s *service) update(ctx context.Context, change func(st *updater.State) (bool, error)) (*updater.State, error) {
	unlock, err := s.store.Lock(ctx, s.name)
	if err != nil {
		return nil, &stateIOError{err}
	}
	defer unlock()
	st, err := s.store.Load(s.name)
	if errors.Is(err, fs.ErrNotExist) {
		if s.image == "" {
			return nil, fmt.Errorf("reading state of %q: no such service in %s", s.name, s.store.Dir)
		}
		st, err = &updater.State{Name: s.name, Image: s.image}, nil
	}
	if err != nil {
		return nil, err
	}
	save, err := change(st)
	if err != nil {
		return st, err
	}
	if save {
		if err := s.store.Save(st); err != nil {
			return st, &stateIOError{err}
		}
	}
	return st, nil
}

// stateIOError is a state directory that cannot be locked or written:
// read-only, full, or gone.
type stateIOError struct{ err error }

func (e *stateIOError) Error() string { return e.err.Error() }
func (e *stateIOError) Unwrap() error { return e.err }

// Choose picks the image of the next start (launcher.Swapper). It first
// cancels an idle check in progress: a start has priority over a pull.
func (s *service) Choose(ctx context.Context) (launcher.Choice, error) {
	s.mu.Lock()
	if s.cancelCheck != nil {
		s.cancelCheck()
	}
	s.mu.Unlock()

	var choice updater.Choice
	change := func(st *updater.State) (bool, error) {
		save := false
		if st.Image != s.image {
			// Another reference: what ran before is not this one's
			// current or previous image. Failed images stay failed: a
			// digest names the same content whatever the reference.
			s.log.Info("image reference changed: forgetting the images of the old one", "old", st.Image, "new", s.image)
			*st = updater.State{Name: st.Name, Image: s.image, FailedDigests: st.FailedDigests, FailedImageIDs: st.FailedImageIDs}
			save = true
		}
		if st.Policy != s.policy || st.AuthFile != s.set.authFile || !sameBool(st.TLSVerify, s.set.tlsVerify) {
			st.Policy, st.AuthFile, st.TLSVerify = s.policy, s.set.authFile, s.set.tlsVerify
			save = true
		}
		if s.policy == updater.PolicyDisabled {
			choice = updater.Choice{} // follow the reference: no image to inspect
			return save, nil
		}
		// Image inspects are slow in Podman (milliseconds each) and on
		// the cold-start path: each image is inspected at most once, and
		// the reference only when the choice can depend on it.
		known := make(map[string]bool)
		exists := func(id string) bool {
			if ok, seen := known[id]; seen {
				return ok
			}
			_, ok, err := s.pm.Image(ctx, id)
			known[id] = err == nil && ok
			return known[id]
		}
		localID := ""
		if s.policy == updater.PolicyLocal || st.ImageID == "" || !exists(st.ImageID) {
			img, ok, err := s.pm.Image(ctx, s.image)
			if err != nil {
				return false, fmt.Errorf("inspecting image %q: %w", s.image, err)
			}
			if ok {
				localID = img.ID
				known[img.ID] = true
			}
		}
		var err error
		choice, err = st.Choose(s.policy, localID, exists)
		return save, err
	}
	_, err := s.update(ctx, change)
	var cerr *updater.CorruptError
	if errors.As(err, &cerr) {
		// Reported and set aside. Start again from what the service's
		// container last ran, not from the reference, whose tag may
		// name an image that failed; status shows the loss.
		s.log.Error("state file unreadable: set aside; starting from the image the container last ran", "err", err)
		lost := err.Error()
		_, err = s.update(ctx, func(st *updater.State) (bool, error) {
			st.LastCheckError = lost
			if info, ok, ierr := s.pm.Inspect(ctx, s.name); ierr == nil && ok && info.Labels[launcher.LabelService] == s.name {
				st.ImageID = info.ImageID
			}
			if _, serr := change(st); serr != nil {
				return false, serr
			}
			return true, nil
		})
	}
	var ioErr *stateIOError
	if errors.As(err, &ioErr) {
		// Serve from what is known rather than refuse every
		// connection: the image the state names, with no swap, since a
		// failed swap could not be recorded.
		s.log.Error("state directory not usable: serving the known image; updates are not recorded until it is fixed", "err", err)
		st, lerr := s.store.Load(s.name)
		if s.policy == updater.PolicyDisabled || lerr != nil || st.Image != s.image || st.ImageID == "" {
			return launcher.Choice{}, nil
		}
		if _, ok, ierr := s.pm.Image(ctx, st.ImageID); ierr != nil || !ok {
			return launcher.Choice{}, nil
		}
		return launcher.Choice{Image: st.ImageID}, nil
	}
	if err != nil {
		return launcher.Choice{}, err
	}
	if choice.Fallback != "" {
		s.log.Info("swapping in a new image", "image", shortImageID(choice.Image), "fallback", shortImageID(choice.Fallback))
	}
	return launcher.Choice{Image: choice.Image, Fallback: choice.Fallback}, nil
}

// Ready records the image a start made ready (launcher.Swapper).
func (s *service) Ready(ctx context.Context, d launcher.Deployment) {
	_, err := s.update(ctx, func(st *updater.State) (bool, error) {
		st.Deployed(d.ImageID, s.digestFor(ctx, st, d.ImageID), d.ColdStart)
		s.pinLogged(ctx, st)
		return true, nil
	})
	if err != nil {
		s.log.Error("recording the deployed image", "image", shortImageID(d.ImageID), "err", err)
	}
}

// Failed records an image that failed after a swap (launcher.Swapper): its
// digest is never deployed again.
func (s *service) Failed(ctx context.Context, imageID string, reason error) {
	_, err := s.update(ctx, func(st *updater.State) (bool, error) {
		digest := s.digestFor(ctx, st, imageID)
		s.log.Error("new image failed: rolling back", "image", shortImageID(imageID), "digest", digest, "reason", reason)
		st.Failed(imageID, digest)
		s.pinLogged(ctx, st)
		return true, nil
	})
	if err != nil {
		s.log.Error("recording the failed image", "image", shortImageID(imageID), "err", err)
	}
}

// digestFor returns the digest to record for imageID: the one the state
// has for it, which is the digest the registry served (for a
// multi-platform image, the manifest list's, which later checks compare),
// else the one Podman lists for the service's reference.
func (s *service) digestFor(ctx context.Context, st *updater.State, imageID string) string {
	switch imageID {
	case st.PendingImageID:
		if st.PendingDigest != "" {
			return st.PendingDigest
		}
	case st.ImageID:
		if st.Digest != "" {
			return st.Digest
		}
	case st.PreviousImageID:
		if st.PreviousDigest != "" {
			return st.PreviousDigest
		}
	}
	img, ok, err := s.pm.Image(ctx, imageID)
	if err != nil || !ok {
		return ""
	}
	return pickDigest(s.image, img.Digests)
}

// pinLogged pins as pin does, logging a failure: a missing pin costs only
// the protection from a prune.
func (s *service) pinLogged(ctx context.Context, st *updater.State) {
	if err := s.pin(ctx, st); err != nil {
		s.log.Error("pinning the previous image", "err", err)
	}
}

// rollback is `lazypod rollback NAME`: the current image counts as failed
// and the previous one runs from the next start. It refuses, changing
// nothing, when the previous image is gone or the service does not update.
func (s *service) rollback(ctx context.Context) (*updater.State, error) {
	var from string
	st, err := s.update(ctx, func(st *updater.State) (bool, error) {
		if st.Policy == "" || st.Policy == updater.PolicyDisabled {
			return false, fmt.Errorf("rolling back %q: it runs with --auto-update disabled, so every start runs what %s names: podman tag the image you want as %s instead",
				st.Name, st.Image, st.Image)
		}
		if prev := st.PreviousImageID; prev != "" {
			if _, ok, err := s.pm.Image(ctx, prev); err != nil {
				return false, fmt.Errorf("rolling back %q: inspecting previous image %s: %w", st.Name, shortImageID(prev), err)
			} else if !ok {
				return false, fmt.Errorf("rolling back %q: previous image %s is gone from local storage: podman pull it again (its digest is %s), or push a fixed image and run lazypod update",
					st.Name, shortImageID(prev), dash(st.PreviousDigest))
			}
		}
		from = st.ImageID
		if err := st.Rollback(); err != nil {
			return false, err
		}
		s.policy = st.Policy
		s.pinLogged(ctx, st)
		return true, nil
	})
	if err != nil {
		return st, err
	}
	s.log.Info("rolled back", "from", shortImageID(from), "to", shortImageID(st.ImageID))
	return st, nil
}

// check runs one update check of the service and records its outcome. The
// registry request and the pull run without the lock, on a copy of the
// state; the result is merged into the state as it is then.
func (s *service) check(ctx context.Context, c *updater.Checker) (updater.Result, error) {
	var base *updater.State
	if _, err := s.update(ctx, func(st *updater.State) (bool, error) {
		base = cloneState(st)
		return false, nil
	}); err != nil {
		return "", err
	}
	policy := s.policy
	if policy == "" {
		policy = base.Policy
	}
	checked := cloneState(base)
	r, cerr := c.Check(ctx, checked, policy)
	if c.DryRun || (cerr != nil && ctx.Err() != nil) {
		// A dry run, or interrupted (by a start, in serve): record
		// nothing; the next check starts afresh.
		return r, cerr
	}
	_, err := s.update(context.WithoutCancel(ctx), func(cur *updater.State) (bool, error) {
		updater.Merge(cur, base, checked)
		return true, nil
	})
	return r, errors.Join(cerr, err)
}

// idleChecks checks for an update every interval while idle reports true,
// until ctx ends. A start cancels a check in progress (see Choose); the
// check records nothing then and runs again at the next tick.
func (s *service) idleChecks(ctx context.Context, interval time.Duration, idle func() bool, c *updater.Checker) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !idle() {
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		s.mu.Lock()
		s.cancelCheck = cancel
		s.mu.Unlock()
		r, err := s.check(cctx, c)
		s.mu.Lock()
		s.cancelCheck = nil
		s.mu.Unlock()
		cancel()
		switch {
		case err != nil && cctx.Err() != nil && ctx.Err() == nil:
			s.log.Info("update check interrupted by a start: retrying at the next check")
		case err != nil:
			s.log.Warn("checking for an update", "err", err)
		default:
			s.log.Info("checked for an update", "result", r)
		}
	}
}

// pin makes the pin container hold the service's previous image, or its
// current one when there is no previous (after a rollback, until the next
// start recreates the service's container from it), so that an image
// prune does not delete what a rollback needs. It also tags the image
// localhost/lazypod-pin/NAME:previous for people reading `podman images`.
func (s *service) pin(ctx context.Context, st *updater.State) error {
	want := st.PreviousImageID
	if want == "" {
		want = st.ImageID
	}
	if st.Policy == "" || st.Policy == updater.PolicyDisabled {
		want = "" // nothing to roll back to: no pin (and none left over)
	}
	name := pinName(s.name)
	info, ok, err := s.pm.Inspect(ctx, name)
	if err != nil {
		return fmt.Errorf("inspecting pin container %s: %w", name, err)
	}
	if ok {
		if info.Labels[LabelPin] != s.name {
			return fmt.Errorf("pinning previous image: container %s exists and is not lazypod's pin (it lacks the label %s=%s): remove it", name, LabelPin, s.name)
		}
		if info.ImageID == want {
			return nil
		}
		if err := s.pm.Remove(ctx, info.ID, time.Second); err != nil {
			return fmt.Errorf("removing old pin container %s: %w", name, err)
		}
		if err := s.pm.Untag(ctx, info.ImageID, pinRepo(s.name), "previous"); err != nil {
			s.log.Debug("untagging old pinned image", "err", err)
		}
	}
	if want == "" {
		return nil
	}
	_, err = s.pm.Create(ctx, launcher.ContainerSpec{
		Name:    name,
		Image:   want,
		Command: []string{"/lazypod-pin-never-started"},
		Network: "none",
		Labels:  map[string]string{LabelPin: s.name},
	})
	if err != nil {
		return fmt.Errorf("creating pin container %s for image %s: %w", name, shortImageID(want), err)
	}
	if err := s.pm.Tag(ctx, want, pinRepo(s.name), "previous"); err != nil {
		s.log.Debug("tagging pinned image", "err", err)
	}
	return nil
}

// pinRepo is the repository of the tag on a pinned image.
func pinRepo(name string) string { return "localhost/lazypod-pin/" + strings.ToLower(name) }

// pickDigest returns the digest among digests (bare or repo@digest) that
// belongs to ref's repository, else the first one, bare; "" if none.
func pickDigest(ref string, digests []string) string {
	repo := ""
	if named, err := reference.ParseNormalizedNamed(ref); err == nil {
		repo = reference.TrimNamed(named).String()
	}
	for _, d := range digests {
		if r, dg, ok := strings.Cut(d, "@"); ok && r == repo {
			return dg
		}
	}
	for _, d := range digests {
		if _, dg, ok := strings.Cut(d, "@"); ok {
			return dg
		}
		return d
	}
	return ""
}

func sameBool(a, b *bool) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// cloneState returns a deep copy of st.
func cloneState(st *updater.State) *updater.State {
	c := *st
	c.FailedDigests = slices.Clone(st.FailedDigests)
	c.FailedImageIDs = slices.Clone(st.FailedImageIDs)
	return &c
}

// shortImageID returns the 12-character form of an image ID.
func shortImageID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// liveState is what a serve process tells other lazypod commands about its
// service while it runs, in STATE_DIR/NAME.serve.
type liveState struct {
	PID   int            `json:"pid"`
	State launcher.State `json:"state"`
	Since time.Time      `json:"since"`
}

func livePath(dir, name string) string { return filepath.Join(dir, name+".serve") }

// liveWriter writes a serve's live state; writes from the proxy's and the
// launcher's goroutines take turns.
type liveWriter struct {
	mu   sync.Mutex
	dir  string
	name string
	last launcher.State
}

// write replaces the live state file if the state changed; it need not
// survive a crash, so it is renamed into place without fsync.
func (w *liveWriter) write(st launcher.State) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st == w.last {
		return nil
	}
	b, err := json.Marshal(liveState{PID: os.Getpid(), State: st, Since: time.Now()})
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(w.dir, "."+w.name+".serve.tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), livePath(w.dir, w.name))
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	w.last = st
	return nil
}

// readLive returns the live state of service name, and ok false when no
// serve process runs for it.
func readLive(dir, name string) (liveState, bool) {
	b, err := os.ReadFile(livePath(dir, name))
	if err != nil {
		return liveState{}, false
	}
	var ls liveState
	if json.Unmarshal(b, &ls) != nil || ls.PID <= 0 {
		return liveState{}, false
	}
	if _, err := os.Stat(filepath.Join("/proc", fmt.Sprint(ls.PID))); err != nil {
		return liveState{}, false
	}
	return ls, true
}
