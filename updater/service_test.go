package updater

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// fakeEngine is local image storage, pins and containers for a Service,
// safe for concurrent use. Every call is recorded; hook, if set, runs at
// the start of each.
type fakeEngine struct {
	mu        sync.Mutex
	images    map[string]Image  // by ID
	tags      map[string]string // reference -> ID
	pins      map[string]string // service -> pinned image ID
	container map[string]string // service -> image ID its container runs
	calls     []string
	hook      func(call string)
}

func newFakeEngine(imgs ...Image) *fakeEngine {
	f := &fakeEngine{images: map[string]Image{}, tags: map[string]string{}, pins: map[string]string{}, container: map[string]string{}}
	for _, img := range imgs {
		f.images[img.ID] = img
	}
	return f
}

func (f *fakeEngine) called(call string) {
	if f.hook != nil {
		f.hook(call)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeEngine) history() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeEngine) tag(ref, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tags[ref] = id
}

func (f *fakeEngine) Image(ctx context.Context, nameOrID string) (Image, bool, error) {
	f.called("image " + nameOrID)
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.tags[nameOrID]; ok {
		nameOrID = id
	}
	img, ok := f.images[nameOrID]
	return img, ok, nil
}

func (f *fakeEngine) Pull(ctx context.Context, ref string) error {
	f.called("pull " + ref)
	return errors.New("no registry in this fake")
}

func (f *fakeEngine) Pinned(ctx context.Context, service string) (string, error) {
	f.called("pinned " + service)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pins[service], nil
}

func (f *fakeEngine) Pin(ctx context.Context, service, imageID string) error {
	f.called("pin " + imageID)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pins[service] = imageID
	return nil
}

func (f *fakeEngine) Unpin(ctx context.Context, service string) error {
	f.called("unpin")
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pins, service)
	return nil
}

func (f *fakeEngine) ContainerImage(ctx context.Context, container, service string) (string, bool, error) {
	f.called("container " + container)
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.container[container]
	return id, ok, nil
}

// newService returns a registry-policy service "web" over a fresh store.
func newService(t *testing.T, e *fakeEngine) *Service {
	t.Helper()
	return &Service{
		Name: "web", Image: ref, Policy: spec.PolicyRegistry,
		Store:  &Store{Dir: t.TempDir(), LockTimeout: time.Second},
		Images: e, Pins: e, Containers: e,
	}
}

// seed saves st as the service's state.
func seed(t *testing.T, s *Service, st *State) {
	t.Helper()
	if err := s.Store.save(st); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, s *Service) *State {
	t.Helper()
	st, err := s.Store.Load(s.Name)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return st
}

func TestServiceSwapAndRollback(t *testing.T) {
	e := newFakeEngine(img1, img2)
	s := newService(t, e)
	seed(t, s, &State{Name: "web", Image: ref, Policy: spec.PolicyRegistry, ImageID: id1, Digest: dList1,
		PendingImageID: id2, PendingDigest: dList2})

	image, fallback, err := s.Choose(t.Context())
	if err != nil || image != id2 || fallback != id1 {
		t.Fatalf("Choose = %q, %q, %v; want the pending %s with fallback %s", image, fallback, err, id2, id1)
	}
	s.Failed(t.Context(), id2, errors.New("probe timed out"))
	st := load(t, s)
	if st.ImageID != id1 || st.PendingImageID != "" || !slices.Contains(st.FailedDigests, dList2) || st.LastUpdateResult != ResultRolledBack {
		t.Fatalf("after Failed: %+v; want v1 current, v2's digest failed, rolled back", st)
	}
	s.Ready(t.Context(), id1, 2*time.Second)
	st = load(t, s)
	if st.ImageID != id1 || st.LastColdStart != Duration(2*time.Second) {
		t.Fatalf("after Ready: %+v; want v1 current, cold start 2s", st)
	}
	if got := e.pins["web"]; got != id1 {
		t.Errorf("pin holds %q; want the current image %s (no previous one after a rollback)", got, id1)
	}
	// The failed image is never chosen again.
	if image, fallback, err := s.Choose(t.Context()); err != nil || image != id1 || fallback != "" {
		t.Errorf("Choose after the rollback = %q, %q, %v; want %s alone", image, fallback, err, id1)
	}
}

func TestServiceReadyRecordsAndPins(t *testing.T) {
	e := newFakeEngine(img1, img2)
	s := newService(t, e)
	s.Ready(t.Context(), id1, time.Second)
	s.Ready(t.Context(), id2, time.Second)
	st := load(t, s)
	if st.ImageID != id2 || st.Digest != dList2 || st.PreviousImageID != id1 || st.PreviousDigest != dList1 {
		t.Fatalf("state: %+v; want v2 current (digest from the image), v1 previous", st)
	}
	if st.Policy != spec.PolicyRegistry || st.Image != ref {
		t.Errorf("state policy %q, image %q; want the service's", st.Policy, st.Image)
	}
	if got := e.pins["web"]; got != id1 {
		t.Errorf("pin holds %q; want the previous image %s", got, id1)
	}
}

// TestServiceRollback is lazypod rollback: it refuses, changing nothing,
// when the previous image is gone.
func TestServiceRollback(t *testing.T) {
	e := newFakeEngine(img1, img2)
	s := newService(t, e)
	s.Image, s.Policy = "", "" // as lazypod rollback runs it
	seed(t, s, &State{Name: "web", Image: ref, Policy: spec.PolicyRegistry, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1})
	before, after, err := s.Rollback(t.Context())
	if err != nil || before.ImageID != id2 || after.ImageID != id1 || !slices.Contains(after.FailedDigests, dList2) {
		t.Fatalf("Rollback = %+v, %+v, %v; want from v2 to v1 with v2 failed", before, after, err)
	}
	if _, _, err := s.Rollback(t.Context()); !errors.Is(err, ErrNoPrevious) {
		t.Errorf("second Rollback: %v; want ErrNoPrevious", err)
	}

	gone := newService(t, newFakeEngine(img2))
	gone.Image, gone.Policy = "", ""
	st := &State{Name: "web", Image: ref, Policy: spec.PolicyRegistry, ImageID: id2, PreviousImageID: id1, PreviousDigest: dList1}
	seed(t, gone, st)
	if _, _, err := gone.Rollback(t.Context()); err == nil || !strings.Contains(err.Error(), "gone from local storage") {
		t.Fatalf("Rollback with the previous image gone: %v; want an error saying so", err)
	}
	if got := load(t, gone); !got.equal(st) {
		t.Errorf("state after a refused rollback: %+v; want it unchanged", got)
	}
}

// TestServiceCorruptState: a corrupt state file is set aside by the serve
// and the next start runs what the service's container last ran.
func TestServiceCorruptState(t *testing.T) {
	e := newFakeEngine(img1, img2)
	e.tag(ref, id2) // the tag moved on, maybe to a failed image
	e.container["web"] = id1
	s := newService(t, e)
	path := filepath.Join(s.Store.Dir, "web.json")
	if err := os.WriteFile(path, []byte(`{"name":"web","ima`), 0o600); err != nil {
		t.Fatal(err)
	}
	image, fallback, err := s.Choose(t.Context())
	if err != nil || image != id1 || fallback != "" {
		t.Fatalf("Choose with a corrupt state = %q, %q, %v; want the container's %s", image, fallback, err, id1)
	}
	st := load(t, s)
	if st.ImageID != id1 || !strings.Contains(st.LastCheckError, "corrupt") {
		t.Errorf("new state: %+v; want image %s and the loss in last_check_error", st, id1)
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 1 {
		t.Errorf("set-aside files: %v; want one", m)
	}
}

// TestServiceDisabledTouchesNothing: with updates disabled a start neither
// locks, reads nor writes the state, and asks the engine nothing; the
// deployment is recorded after it, with no pin work unless updates were on
// before (review risk 9).
func TestServiceDisabledTouchesNothing(t *testing.T) {
	e := newFakeEngine(img1)
	s := newService(t, e)
	s.Policy = spec.PolicyDisabled
	image, fallback, err := s.Choose(t.Context())
	if err != nil || image != "" || fallback != "" {
		t.Fatalf("Choose = %q, %q, %v; want the reference", image, fallback, err)
	}
	if calls := e.history(); len(calls) != 0 {
		t.Errorf("Choose called the engine: %q; want nothing", calls)
	}
	if entries, _ := os.ReadDir(s.Store.Dir); len(entries) != 0 {
		t.Errorf("Choose left files in the state directory (a lock taken?): %v", entries)
	}
	s.Ready(t.Context(), id1, time.Second)
	if st := load(t, s); st.ImageID != id1 || st.Policy != spec.PolicyDisabled {
		t.Errorf("state after Ready: %+v; want %s recorded, policy disabled", st, id1)
	}
	if calls := e.history(); slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "pin") || c == "unpin" }) {
		t.Errorf("Ready with updates never on worked the pin: %q", calls)
	}

	// Updates turned off: the pin goes, once.
	on := newService(t, e)
	seed(t, on, &State{Name: "web", Image: ref, Policy: spec.PolicyRegistry, ImageID: id1})
	e.pins["web"] = id1
	on.Policy = spec.PolicyDisabled
	on.Ready(t.Context(), id1, time.Second)
	if _, ok := e.pins["web"]; ok {
		t.Error("pin kept after updates were turned off")
	}
}

// TestServiceNoEngineCallUnderLock: every call to the engine is made while
// the state's lock is free, so a slow Podman never makes another lazypod
// process wait for the lock (review risk 2).
func TestServiceNoEngineCallUnderLock(t *testing.T) {
	e := newFakeEngine(img1, img2, img3)
	s := newService(t, e)
	probe := &Store{Dir: s.Store.Dir, LockTimeout: time.Millisecond}
	var mu sync.Mutex
	var underLock []string
	e.hook = func(call string) {
		unlock, err := probe.lock(context.Background(), "web")
		if err != nil {
			mu.Lock()
			underLock = append(underLock, call)
			mu.Unlock()
			return
		}
		unlock()
	}
	seed(t, s, &State{Name: "web", Image: ref, Policy: spec.PolicyRegistry, ImageID: id1, PendingImageID: id2})
	if _, _, err := s.Choose(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.Failed(t.Context(), id2, errors.New("exited"))
	s.Ready(t.Context(), id1, time.Second)
	s.Ready(t.Context(), id3, time.Second)
	s.Image, s.Policy = "", ""
	if _, _, err := s.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	reg := &fakeRegistry{digests: map[string]string{ref: dList1}}
	if _, err := s.Check(t.Context(), &Checker{Registry: reg, Images: e}); err != nil {
		t.Fatal(err)
	}
	if len(e.history()) == 0 {
		t.Fatal("the engine was never called: the test shows nothing")
	}
	if len(underLock) > 0 {
		t.Errorf("engine calls made while the state's lock was held: %q", underLock)
	}
}

// blockingRegistry answers Digest only when its ctx ends.
type blockingRegistry struct {
	canceled chan struct{} // closed when a Digest call was canceled
	once     sync.Once
}

func (r *blockingRegistry) Digest(ctx context.Context, ref string) (string, error) {
	<-ctx.Done()
	r.once.Do(func() { close(r.canceled) })
	return "", ctx.Err()
}

// TestIdleCheckCanceledByStart: a start that begins right after the idle
// check saw the service idle still cancels that check (review risk 5: the
// check's cancel was published after idle was tested, so a start in
// between found nothing to cancel).
func TestIdleCheckCanceledByStart(t *testing.T) {
	e := newFakeEngine(img1)
	s := newService(t, e)
	seed(t, s, &State{Name: "web", Image: ref, Policy: spec.PolicyRegistry, ImageID: id1, Digest: dList1})
	reg := &blockingRegistry{canceled: make(chan struct{})}
	chooseDone := make(chan struct{})
	var once sync.Once
	idle := func() bool {
		// The start begins as the service is seen idle: its Choose
		// runs now, and this waits for it to end or to block.
		once.Do(func() {
			go func() {
				defer close(chooseDone)
				s.Choose(context.Background())
			}()
			select {
			case <-chooseDone:
			case <-time.After(200 * time.Millisecond):
			}
		})
		return true
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.IdleChecks(ctx, time.Millisecond, idle, &Checker{Registry: reg, Images: e}) }()
	select {
	case <-reg.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the check that began with a start was not canceled within 5s")
	}
	cancel()
	<-chooseDone
	if err := <-done; err != nil {
		t.Errorf("IdleChecks: %v", err)
	}
}

// TestReadersNeverLoseState races a serve saving in a loop (Ready) against
// what status, update and rollback read, starting each round from a
// corrupt file: readers report the corruption and change nothing, so no
// save is lost (review risk 1: a reader that saw the corrupt bytes could
// rename the good file a locked serve had just written).
func TestReadersNeverLoseState(t *testing.T) {
	const rounds, saves = 300, 5
	for round := range rounds {
		e := newFakeEngine(img1)
		s := newService(t, e)
		s.Policy = spec.PolicyDisabled // no pin work: only the state
		s.Logger = slog.New(slog.DiscardHandler)
		path := filepath.Join(s.Store.Dir, "web.json")
		corrupt := []byte(`{"name":"web","im`)
		if err := os.WriteFile(path, corrupt, 0o600); err != nil {
			t.Fatal(err)
		}
		reader := &Service{Name: "web", Store: &Store{Dir: s.Store.Dir, LockTimeout: 5 * time.Second}, Images: e, Pins: e, Logger: s.Logger}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, read := range []func(){
			func() { reader.Store.List() },                                        // lazypod status
			func() { reader.Check(context.Background(), &Checker{DryRun: true}) }, // lazypod update --dry-run
			func() { reader.Rollback(context.Background()) },                      // lazypod rollback: refused, disabled
		} {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						read()
					}
				}
			})
		}
		// The serve: the first save sets the corrupt file aside, then
		// each records one more cold start.
		s.Store.Update(context.Background(), "web", func(*State) error { return nil })
		for i := 1; i <= saves; i++ {
			s.Ready(context.Background(), id1, time.Duration(i)*time.Millisecond)
		}
		close(stop)
		wg.Wait()
		st := load(t, s)
		if got, want := time.Duration(st.LastColdStart), saves*time.Millisecond; got != want {
			t.Fatalf("round %d: last cold start %s; want %s: a save was lost", round, got, want)
		}
		aside, _ := filepath.Glob(path + ".corrupt-*")
		for _, p := range aside {
			if b, _ := os.ReadFile(p); string(b) != string(corrupt) {
				t.Fatalf("round %d: %s holds %q; want only the corrupt file set aside", round, p, b)
			}
		}
		if len(aside) != 1 {
			t.Fatalf("round %d: %d files set aside; want 1", round, len(aside))
		}
	}
}

func TestPickDigest(t *testing.T) {
	tests := []struct {
		name    string
		ref     string
		digests []string
		want    string
	}{
		{name: "own repository", ref: ref, digests: []string{"quay.io/x/web@" + dList2, repoRef + "@" + dList1}, want: dList1},
		{name: "first otherwise", ref: ref, digests: []string{"quay.io/x/web@" + dList2, dList1}, want: dList2},
		{name: "bare", ref: ref, digests: []string{dList3}, want: dList3},
		{name: "short names are normalised", ref: "web", digests: []string{"quay.io/x/web@" + dList2, repoRef + "@" + dList1}, want: dList1},
		{name: "none", ref: ref, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickDigest(tt.ref, tt.digests); got != tt.want {
				t.Errorf("pickDigest = %q; want %q", got, tt.want)
			}
		})
	}
}

// TestServiceResults: Results hears each recorded check, the swap that
// got ready, and the one rolled back; not a dry run, nor a Ready that
// swapped nothing.
func TestServiceResults(t *testing.T) {
	e := newFakeEngine(img1, img2)
	s := newService(t, e)
	var got []string
	s.Results = func(r Result, err error) { got = append(got, fmt.Sprintf("%s %v", r, err)) }
	seed(t, s, &State{Name: "web", Image: ref, Policy: spec.PolicyRegistry, ImageID: id1, Digest: dList1,
		PendingImageID: id2, PendingDigest: dList2})
	s.Ready(t.Context(), id2, time.Second) // the pending image got ready
	s.Ready(t.Context(), id2, time.Second) // a start of the same image
	seed(t, s, &State{Name: "web", Image: ref, Policy: spec.PolicyRegistry, ImageID: id1, Digest: dList1,
		PendingImageID: id2, PendingDigest: dList2})
	s.Failed(t.Context(), id2, errors.New("probe timed out"))
	c := &Checker{Registry: &fakeRegistry{digests: map[string]string{ref: dList1}}, Images: e}
	s.Check(t.Context(), c)
	c.DryRun = true
	s.Check(t.Context(), c)
	c = &Checker{Registry: &fakeRegistry{err: errors.New("registry down")}, Images: e}
	s.Check(t.Context(), c)
	want := []string{"true <nil>", "rolled back <nil>", "false <nil>"}
	if len(got) != 4 || !slices.Equal(got[:3], want) || !strings.Contains(got[3], "registry down") {
		t.Errorf("Results heard %q; want %q and then the registry's error", got, want)
	}
}
