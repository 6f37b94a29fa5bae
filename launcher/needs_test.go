package launcher

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/lazypod/lazypod/internal/spec"
)

// fakeNeeds records Acquire and Release, and what the runtime had done
// when Acquire was called.
type fakeNeeds struct {
	f        *fakeRuntime
	err      error
	held     bool
	acquires int
	releases int
	creates  []int // the runtime's creates at each Acquire
}

func (n *fakeNeeds) Acquire(ctx context.Context) error {
	n.acquires++
	n.creates = append(n.creates, n.f.count("Create"))
	if n.err != nil {
		return n.err
	}
	n.held = true
	return nil
}

func (n *fakeNeeds) Release() {
	if n.held {
		n.releases++
	}
	n.held = false
}

// TestNeeds: the needed services are held before the container is
// created, kept while it is paused, and let go when it stops or exits.
func TestNeeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		n := &fakeNeeds{f: f}
		cfg := testConfig(t, f)
		cfg.Needs = n
		cfg.IdleAction = spec.IdlePause
		l := runLauncher(t, cfg)
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if n.acquires != 1 || n.creates[0] != 0 || !n.held {
			t.Fatalf("after Start: %d acquires, creates before the first %v, held %t; want 1, before any create, held", n.acquires, n.creates, n.held)
		}
		if err := l.Idle(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !n.held {
			t.Error("needed services let go while the container is paused")
		}
		if err := l.Start(t.Context()); err != nil { // thaws
			t.Fatal(err)
		}
		if err := l.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n.held || n.releases != 1 {
			t.Errorf("after Stop: held %t, %d releases; want let go once", n.held, n.releases)
		}
		// An exit lets go too.
		if err := l.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		f.exit(f.containerID("svc"), 1)
		synctest.Wait()
		if n.held || n.releases != 2 {
			t.Errorf("after the container exited: held %t, %d releases; want let go", n.held, n.releases)
		}
	})
}

// TestNeedsNotReady: a needed service that cannot start fails the start
// with its reason, before anything of the container's is done.
func TestNeedsNotReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		cfg := testConfig(t, f)
		cfg.Needs = &fakeNeeds{f: f, err: errors.New(`service "db": pulling image: not found`)}
		l := runLauncher(t, cfg)
		err := l.Start(t.Context())
		if err == nil || !strings.Contains(err.Error(), `starting the services it needs: service "db": pulling image: not found`) {
			t.Fatalf("Start: got %v; want the needed service's failure", err)
		}
		if n := f.count("Create") + f.count("Start") + f.count("Inspect"); n != 0 {
			t.Errorf("runtime calls after the needs failed: %d; want 0", n)
		}
	})
}
