package launcher

import (
	"errors"
	"testing"
	"testing/synctest"

	"github.com/lazypod/lazypod/internal/spec"
)

// TestIdlePause: with IdleAction pause, Idle pauses the container and the
// next Start thaws it, without starting or creating anything; Stop still
// stops.
func TestIdlePause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		cfg := testConfig(t, f)
		cfg.IdleAction = spec.IdlePause
		l := runLauncher(t, cfg)
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if err := l.Idle(t.Context()); err != nil {
			t.Fatalf("Idle: %v", err)
		}
		if got := l.State(); got != StateStopped {
			t.Errorf("state after Idle: got %s; want %s", got, StateStopped)
		}
		info, _, _ := f.Inspect(t.Context(), "svc")
		if !info.Paused || f.count("Pause") != 1 || f.count("Stop") != 0 {
			t.Errorf("after Idle: paused %v, %d pauses, %d stops; want paused by one Pause, no Stop", info.Paused, f.count("Pause"), f.count("Stop"))
		}
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start after Idle: %v", err)
		}
		if got := [4]int{f.count("Unpause"), f.count("Start"), f.count("Create"), f.count("Remove")}; got != [4]int{1, 1, 1, 0} {
			t.Errorf("Unpause, Start, Create, Remove calls: got %v; want [1 1 1 0] (thawed, not started again)", got)
		}
		if !f.running("svc") {
			t.Error("container not running after the Start that thawed it")
		}
		if err := l.Stop(t.Context()); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if f.running("svc") || f.count("Stop") != 1 || f.count("Pause") != 1 {
			t.Errorf("Stop with IdleAction pause: running %v, %d stops, %d pauses; want stopped, not paused", f.running("svc"), f.count("Stop"), f.count("Pause"))
		}
	})
}

// TestIdlePauseUnsupported: where the engine cannot pause, Idle stops.
func TestIdlePauseUnsupported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		f.pauseErr = errors.New("pause is not supported for rootless containers on cgroups v1")
		cfg := testConfig(t, f)
		cfg.IdleAction = spec.IdlePause
		l := runLauncher(t, cfg)
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if err := l.Idle(t.Context()); err != nil {
			t.Fatalf("Idle: %v", err)
		}
		if f.running("svc") || f.count("Stop") != 1 {
			t.Errorf("Idle where pause fails: running %v, %d stops; want stopped", f.running("svc"), f.count("Stop"))
		}
	})
}

// TestIdleStop: with the default IdleAction, Idle is Stop.
func TestIdleStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		l := runLauncher(t, testConfig(t, f))
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if err := l.Idle(t.Context()); err != nil {
			t.Fatalf("Idle: %v", err)
		}
		if f.running("svc") || f.count("Stop") != 1 || f.count("Pause") != 0 {
			t.Errorf("Idle: running %v, %d stops, %d pauses; want stopped", f.running("svc"), f.count("Stop"), f.count("Pause"))
		}
	})
}

// TestPausedContainerReplaced: a paused container whose settings changed
// (or whose image an update replaced) is thawed and replaced by the next
// start of another launcher, as the next activation's would.
func TestPausedContainerReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		cfg := testConfig(t, f)
		cfg.IdleAction = spec.IdlePause
		l := runLauncher(t, cfg)
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		old := f.containerID("svc")
		if err := l.Idle(t.Context()); err != nil {
			t.Fatalf("Idle: %v", err)
		}
		cfg.Env = []string{"CHANGED=1"}
		next := runLauncher(t, cfg)
		if err := next.Start(t.Context()); err != nil {
			t.Fatalf("Start of the next launcher: %v", err)
		}
		if id := f.containerID("svc"); id == old || !f.running("svc") {
			t.Errorf("container after the settings changed: %s (was %s), running %v; want a new one, running", id, old, f.running("svc"))
		}
		if f.count("Unpause") != 1 || f.count("Remove") != 1 {
			t.Errorf("%d unpauses, %d removes; want the paused container thawed and removed", f.count("Unpause"), f.count("Remove"))
		}
	})
}

// TestStartRemovesRenamed: a service whose container is now named
// ContainerName (systemd-NAME, as Quadlet names it) removes its stopped
// container of the earlier name, NAME, at its first start, and leaves a
// running one or one that is not the service's.
func TestStartRemovesRenamed(t *testing.T) {
	for _, tt := range []struct {
		name    string
		labels  map[string]string
		running bool
		removed bool
	}{
		{"stopped, the service's", map[string]string{LabelService: "svc"}, false, true},
		{"running", map[string]string{LabelService: "svc"}, true, false},
		{"another's", map[string]string{LabelService: "other"}, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeRuntime()
				old := f.add("svc", tt.labels, tt.running)
				cfg := testConfig(t, f)
				cfg.ContainerName = "systemd-svc"
				l := runLauncher(t, cfg)
				if err := l.Start(t.Context()); err != nil {
					t.Fatalf("Start: %v", err)
				}
				if gone := f.containerID("svc") == ""; gone != tt.removed {
					t.Errorf("container of the earlier name removed: %v; want %v", gone, tt.removed)
				}
				if !f.running("systemd-svc") || f.containerID("systemd-svc") == old {
					t.Error("the container of the new name does not run")
				}
			})
		})
	}
}
