package updater

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
	"go.podman.io/image/v5/docker/reference"
)

// Pins keeps a service's fallback image in local storage: an image prune
// removes every image no container uses.
type Pins interface {
	// Pinned returns the ID of the image service's pin holds, "" if it
	// has none. A pin that is not lazypod's gives an error wrapping
	// ErrNotPin.
	Pinned(ctx context.Context, service string) (imageID string, err error)
	// Pin makes service's pin hold image imageID, replacing an earlier
	// pin.
	Pin(ctx context.Context, service, imageID string) error
	// Unpin removes service's pin, if any.
	Unpin(ctx context.Context, service string) error
}

// ErrNotPin means a container has the name of a service's pin but was not
// made by lazypod for it, so it is left alone.
var ErrNotPin = errors.New("not lazypod's pin container")

// Containers tells what a service's container runs.
type Containers interface {
	// ContainerImage returns the ID of the image the container called
	// container was created from, and ok false if there is no such
	// container that lazypod made for service.
	ContainerImage(ctx context.Context, container, service string) (imageID string, ok bool, err error)
}

// Service is one service's update transaction over its state file and the
// container engine: the launcher's Swapper in lazypod serve (Choose, Ready,
// Failed, IdleChecks), and what lazypod update (Check) and rollback
// (Rollback) do.
//
// No call to Images, Pins or Containers runs under the state's lock: each
// method reads the state without the lock, asks the engine what it needs,
// and then changes the state under the lock with what it learnt. Pins are
// kept in step with the state afterwards, under a lock of their own, from
// the state as it then is.
type Service struct {
	// Name is the service's name. Required.
	Name string
	// Image is the image reference the service runs. If empty, the
	// state's (outside lazypod serve).
	Image string
	// Policy is the update policy. If empty, the state's (outside lazypod
	// serve).
	Policy spec.Policy
	// AuthFile and TLSVerify are recorded in the state with Policy, for
	// lazypod update to check and pull as the serve does.
	AuthFile  string
	TLSVerify *bool
	// Container is the container's name, if not Name; recorded in the
	// state for lazypod status and update.
	Container string
	// MetricsFile is the serve's metrics file, recorded in the state for
	// lazypod update and rollback.
	MetricsFile string

	// Store holds the state. Required.
	Store *Store
	// Images is local image storage. Required.
	Images Images
	// Pins protects the fallback image from a prune. Required unless
	// Policy is disabled.
	Pins Pins
	// Containers tells what the service's container last ran, the
	// starting point after a corrupt state file. If nil, the reference.
	Containers Containers
	// Logger receives what the service does. If nil, slog.Default().
	Logger *slog.Logger
	// Results, if set, hears the outcome of each update, for metrics:
	// each recorded Check's result or error, ResultTrue when a start
	// made a new image ready, and ResultRolledBack when a new image
	// failed. It must not block.
	Results func(Result, error)

	mu          sync.Mutex
	cancelCheck context.CancelFunc // the idle check in progress, if any
}

func (s *Service) log() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// policy is the policy in force: the configured one, else st's.
func (s *Service) policy(st *State) spec.Policy {
	if s.Policy != "" {
		return s.Policy
	}
	if st != nil && st.Policy != "" {
		return st.Policy
	}
	return spec.PolicyDisabled
}

// adopt brings st in line with the configured reference and settings: a
// new reference forgets the images of the old one (failed images stay
// failed: a digest names the same content whatever the reference). It
// reports whether st had another reference, for the caller to log.
func (s *Service) adopt(st *State) (changed bool) {
	if s.Image != "" && st.Image != s.Image {
		changed = st.Image != ""
		*st = State{Name: st.Name, Image: s.Image, FailedDigests: st.FailedDigests, FailedImageIDs: st.FailedImageIDs}
	}
	if s.Policy != "" {
		st.Policy, st.AuthFile, st.TLSVerify, st.Container, st.MetricsFile = s.Policy, s.AuthFile, s.TLSVerify, s.Container, s.MetricsFile
	}
	return changed
}

// logNewReference says that the service now runs another reference than
// old.
func (s *Service) logNewReference(old string) {
	s.log().Info("image reference changed: forgetting the images of the old one", "old", old, "new", s.Image)
}

// Choose picks the image of the next start: the launcher's
// Swapper.Choose. It first cancels an idle check in progress: a start has
// priority over a pull. With updates disabled it returns at once, touching
// neither the state nor the engine: the start runs the reference.
func (s *Service) Choose(ctx context.Context) (image, fallback string, err error) {
	s.mu.Lock()
	if s.cancelCheck != nil {
		s.cancelCheck()
	}
	s.mu.Unlock()
	if !s.Policy.Enabled() {
		return "", "", nil
	}
	st, err := s.Store.Load(s.Name)
	var cerr *CorruptError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st = &State{Name: s.Name}
	case errors.As(err, &cerr):
		if st, err = s.recoverCorrupt(ctx, cerr); err != nil {
			s.log().Error("state file corrupt and not replaceable: running the reference, with no update", "err", err)
			return "", "", nil
		}
	case err != nil:
		s.log().Error("state file not readable: running the reference, with no update", "err", err)
		return "", "", nil
	}
	cur := st.clone()
	if s.adopt(st) {
		s.logNewReference(cur.Image)
	}
	c, err := s.choose(ctx, st)
	if err != nil {
		return "", "", err
	}
	switch {
	case !st.equal(cur):
		_, err = s.Store.Update(ctx, s.Name, func(st *State) error { s.adopt(st); return nil })
	case c.Fallback != "":
		err = s.Store.writable()
	}
	if err != nil && c.Fallback != "" {
		// A swap whose failure could not be recorded would be tried
		// at every start: serve from what is known instead.
		s.log().Error("state directory not usable: running the current image; updates are not swapped in until it is fixed", "err", err)
		return c.Fallback, "", nil
	}
	if err != nil {
		s.log().Error("recording the image settings", "err", err)
	}
	if c.Fallback != "" {
		s.log().Info("swapping in a new image", "image", spec.ShortID(c.Image), "fallback", spec.ShortID(c.Fallback))
	}
	return c.Image, c.Fallback, nil
}

// choose runs State.Choose for st, inspecting each image it needs at most
// once (inspects are slow in Podman, and on the cold start's path), and
// the reference only when the choice can depend on it.
func (s *Service) choose(ctx context.Context, st *State) (Choice, error) {
	known := make(map[string]bool)
	exists := func(id string) bool {
		if ok, seen := known[id]; seen {
			return ok
		}
		_, ok, err := s.Images.Image(ctx, id)
		known[id] = err == nil && ok
		return known[id]
	}
	policy := s.policy(st)
	localID := ""
	if policy == spec.PolicyLocal || st.ImageID == "" || !exists(st.ImageID) {
		img, ok, err := s.Images.Image(ctx, st.Image)
		if err != nil {
			return Choice{}, fmt.Errorf("inspecting image %q: %w", st.Image, err)
		}
		if ok {
			localID = img.ID
			known[img.ID] = true
		}
	}
	return st.Choose(policy, localID, exists)
}

// recoverCorrupt sets a corrupt state file aside, under the lock, and
// starts a new state from the image the service's container last ran, not
// from the reference, whose tag may name an image that failed. The new
// state's LastCheckError says what was lost, for lazypod status.
func (s *Service) recoverCorrupt(ctx context.Context, cerr *CorruptError) (*State, error) {
	ran, ok := "", false
	if s.Containers != nil {
		id, found, err := s.Containers.ContainerImage(ctx, cmp.Or(s.Container, s.Name), s.Name)
		ran, ok = id, err == nil && found
	}
	_, err := s.Store.Update(ctx, s.Name, func(*State) error { return nil })
	if errors.As(err, &cerr) {
		s.log().Error("state file unreadable: set aside; starting from the image the container last ran", "err", cerr)
	}
	st, err := s.Store.Update(ctx, s.Name, func(st *State) error {
		if st.Image != "" {
			return nil // another process started it afresh already
		}
		s.adopt(st)
		st.LastCheckError = cerr.Error()
		if ok {
			st.ImageID = ran
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("starting a new state: %w", err)
	}
	return st, nil
}

// Ready records that a start made image imageID ready after coldStart: the
// launcher's Swapper.Ready. It runs after the waiting clients were
// released, so its state save (and, with updates, its pin) costs the cold
// start nothing.
func (s *Service) Ready(ctx context.Context, imageID string, coldStart time.Duration) {
	digest := s.digestFor(ctx, imageID)
	wasEnabled, swapped := false, false
	st, err := s.Store.Update(ctx, s.Name, func(st *State) error {
		wasEnabled = st.Policy.Enabled()
		swapped = imageID != "" && imageID == st.PendingImageID
		if old := st.Image; s.adopt(st) {
			s.logNewReference(old)
		}
		if d := st.digestOf(imageID); d != "" {
			digest = d
		}
		st.Deployed(imageID, digest, coldStart)
		return nil
	})
	if err != nil {
		s.log().Error("recording the deployed image", "image", spec.ShortID(imageID), "err", err)
		return
	}
	if swapped {
		s.result(ResultTrue, nil)
	}
	if st.Policy.Enabled() || wasEnabled {
		s.pin(ctx)
	}
}

// Failed records that image imageID failed after a swap, for reason: the
// launcher's Swapper.Failed. Its digest is never deployed again.
func (s *Service) Failed(ctx context.Context, imageID string, reason error) {
	digest := s.digestFor(ctx, imageID)
	_, err := s.Store.Update(ctx, s.Name, func(st *State) error {
		s.adopt(st)
		if d := st.digestOf(imageID); d != "" {
			digest = d
		}
		s.log().Error("new image failed: rolling back", "image", spec.ShortID(imageID), "digest", digest, "reason", reason)
		st.Failed(imageID, digest)
		return nil
	})
	if err != nil {
		s.log().Error("recording the failed image", "image", spec.ShortID(imageID), "err", err)
		return
	}
	s.result(ResultRolledBack, nil)
	s.pin(ctx)
}

// result tells Results, if set, the outcome of an update.
func (s *Service) result(r Result, err error) {
	if s.Results != nil {
		s.Results(r, err)
	}
}

// digestFor returns the digest to record for imageID: the one the state,
// read without the lock, knows for it (the registry's, for an image a
// check pulled), else the one Podman lists for the service's reference,
// else its first; "" if none. It asks the engine only when the state does
// not know the digest.
func (s *Service) digestFor(ctx context.Context, imageID string) string {
	ref := s.Image
	if st, err := s.Store.Load(s.Name); err == nil {
		if d := st.digestOf(imageID); d != "" {
			return d
		}
		if ref == "" {
			ref = st.Image
		}
	}
	img, ok, err := s.Images.Image(ctx, imageID)
	if err != nil || !ok {
		return ""
	}
	return pickDigest(ref, img.Digests)
}

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
	if len(digests) == 0 {
		return ""
	}
	return bareDigest(digests[0])
}

// Rollback is lazypod rollback NAME: the current image counts as failed
// and the previous one runs from the next start. It refuses, changing
// nothing, when the previous image is gone from local storage or the
// service does not update. It returns the state before and after.
func (s *Service) Rollback(ctx context.Context) (before, after *State, err error) {
	before, err = s.Store.Load(s.Name)
	if err != nil {
		return nil, nil, err
	}
	if !s.policy(before).Enabled() {
		return nil, nil, fmt.Errorf("rolling back %q: it runs with --auto-update disabled, so every start runs what %s names: podman tag the image you want as %s instead",
			s.Name, before.Image, before.Image)
	}
	if prev := before.PreviousImageID; prev != "" {
		if _, ok, err := s.Images.Image(ctx, prev); err != nil {
			return nil, nil, fmt.Errorf("rolling back %q: inspecting previous image %s: %w", s.Name, spec.ShortID(prev), err)
		} else if !ok {
			return nil, nil, fmt.Errorf("rolling back %q: previous image %s is gone from local storage: podman pull it again (its digest is %s), or push a fixed image and run lazypod update",
				s.Name, spec.ShortID(prev), cmp.Or(before.PreviousDigest, "-"))
		}
	}
	after, err = s.Store.Update(ctx, s.Name, func(st *State) error {
		if st.PreviousImageID != before.PreviousImageID || st.ImageID != before.ImageID {
			return fmt.Errorf("rolling back %q: its images changed meanwhile (a start or an update): run lazypod rollback again", s.Name)
		}
		return st.Rollback()
	})
	if err != nil {
		return nil, nil, err
	}
	s.log().Info("rolled back", "from", spec.ShortID(before.ImageID), "to", spec.ShortID(after.ImageID))
	s.pin(ctx)
	return before, after, nil
}

// Check runs one update check of the service with c and records its
// outcome. The registry request and the pull run without the lock, on a
// copy of the state; the result is merged into the state as it is then
// (see Merge). A dry run, or a check interrupted by ctx (a start, in
// serve), records nothing.
func (s *Service) Check(ctx context.Context, c *Checker) (Result, error) {
	base, err := s.Store.Load(s.Name)
	switch {
	case errors.Is(err, fs.ErrNotExist) && s.Image != "":
		base = &State{Name: s.Name}
		s.adopt(base)
	case err != nil:
		return "", err
	}
	checked := base.clone()
	r, cerr := c.Check(ctx, checked, s.policy(base))
	if c.DryRun || (cerr != nil && ctx.Err() != nil) {
		return r, cerr
	}
	_, err = s.Store.Update(context.WithoutCancel(ctx), s.Name, func(cur *State) error {
		if cur.Image == "" {
			s.adopt(cur)
		}
		Merge(cur, base, checked)
		return nil
	})
	err = errors.Join(cerr, err)
	s.result(r, err)
	return r, err
}

// IdleChecks checks for an update every interval while idle reports true,
// until ctx ends. A start cancels a check in progress (see Choose); the
// check records nothing then and runs again at the next tick. idle is
// called with the service's mutex held, the one Choose takes first: a
// start either comes before, and idle sees it, or after, and cancels the
// check.
func (s *Service) IdleChecks(ctx context.Context, interval time.Duration, idle func() bool, c *Checker) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cctx, cancel := context.WithCancel(ctx)
		s.mu.Lock()
		if !idle() {
			s.mu.Unlock()
			cancel()
			continue
		}
		s.cancelCheck = cancel
		s.mu.Unlock()
		r, err := s.Check(cctx, c)
		s.mu.Lock()
		s.cancelCheck = nil
		s.mu.Unlock()
		cancel()
		switch {
		case err != nil && cctx.Err() != nil && ctx.Err() == nil:
			s.log().Info("update check interrupted by a start: retrying at the next check")
		case err != nil:
			s.log().Warn("checking for an update", "err", err)
		default:
			s.log().Info("checked for an update", "result", r)
		}
	}
}

// pin keeps the pin in step with the state as it is now: holding the
// previous image, or the current one when there is none (after a
// rollback, until the next start recreates the container from it), and
// nothing when the service does not update. Pins of one service take
// turns under a lock of their own, never the state's. A failure is logged:
// a missing pin costs only the protection from a prune.
func (s *Service) pin(ctx context.Context) {
	unlock, err := s.Store.lockFile(ctx, s.Name, s.Name+".pin.lock")
	if err != nil {
		s.log().Error("pinning the previous image", "err", err)
		return
	}
	defer unlock()
	st, err := s.Store.Load(s.Name)
	if err != nil {
		s.log().Error("pinning the previous image", "err", err)
		return
	}
	want := st.pinned()
	have, err := s.Pins.Pinned(ctx, s.Name)
	switch {
	case err != nil:
	case have == want:
		return
	case want == "":
		err = s.Pins.Unpin(ctx, s.Name)
	default:
		err = s.Pins.Pin(ctx, s.Name, want)
	}
	if err != nil {
		s.log().Error("pinning the previous image", "err", err)
	}
}

// pinned is the image the service's pin should hold: the previous image,
// else the current one; "" when the policy does not update.
func (st *State) pinned() string {
	if !st.Policy.Enabled() {
		return ""
	}
	if st.PreviousImageID != "" {
		return st.PreviousImageID
	}
	return st.ImageID
}

// writable reports, as an error, whether the state directory takes writes.
func (s *Store) writable() error {
	if err := syscall.Access(s.Dir, 2 /* W_OK */); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("state directory %s: %w", s.Dir, err)
	}
	return nil
}
