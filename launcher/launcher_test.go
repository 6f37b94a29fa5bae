package launcher

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// testConfig returns a valid config for a fake runtime: one tcp route,
// readiness by exec (answered by the fake, no sockets involved).
func testConfig(t *testing.T, f *fakeRuntime) Config {
	t.Helper()
	return Config{
		Name:    "svc",
		Image:   "img",
		Ports:   []Port{{Route: "web", Port: 8080}},
		Ready:   spec.Probe{Kind: spec.ProbeExec, Arg: "/check"},
		Runtime: f,
		Logger:  slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// runLauncher makes a launcher from cfg and runs it until the test ends.
func runLauncher(t *testing.T, cfg Config) *Launcher {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v; want nil", err)
		}
	})
	return l
}

func TestStartShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		f.startDelay = time.Second
		l := runLauncher(t, testConfig(t, f))
		if l.Ready() {
			t.Errorf("Ready before any Start: got true; want false")
		}

		const n = 50
		errs := make(chan error, n)
		for range n {
			go func() { errs <- l.Start(t.Context()) }()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Errorf("Start: got %v; want nil", err)
			}
		}
		if got := f.count("Create"); got != 1 {
			t.Errorf("creates: got %d; want 1", got)
		}
		if got := f.count("Start"); got != 1 {
			t.Errorf("starts: got %d; want 1", got)
		}
		if got := l.State(); got != StateReady || !l.Ready() {
			t.Errorf("state: got %s, Ready %t; want %s, true", got, l.Ready(), StateReady)
		}
		addr, err := l.Addr("web")
		if err != nil || addr != "127.0.0.1:40001" {
			t.Errorf("Addr(web): got %q, %v; want 127.0.0.1:40001, nil", addr, err)
		}
		if _, err := l.Addr("nope"); err == nil {
			t.Errorf("Addr(nope): got nil error; want unknown route")
		}
		if got := l.LastColdStart(); got != time.Second {
			t.Errorf("LastColdStart: got %s; want 1s", got)
		}
		// Ready: a further Start makes no runtime call.
		before := f.count("Inspect")
		if err := l.Start(t.Context()); err != nil {
			t.Errorf("Start when ready: got %v; want nil", err)
		}
		if got := f.count("Inspect"); got != before {
			t.Errorf("inspects on Start when ready: got %d more; want none", got-before)
		}
	})
}

func TestStartCallerCancelDoesNotCancelStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		f.startDelay = 2 * time.Second
		l := runLauncher(t, testConfig(t, f))

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		patient := make(chan error, 1)
		go func() { patient <- l.Start(t.Context()) }()

		err := l.Start(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("impatient Start: got %v; want context.DeadlineExceeded", err)
		}
		if got := l.State(); got != StateStarting {
			t.Errorf("state after impatient caller left: got %s; want %s", got, StateStarting)
		}
		if err := <-patient; err != nil {
			t.Fatalf("patient Start: got %v; want nil", err)
		}
		if got := f.count("Start"); got != 1 {
			t.Errorf("starts: got %d; want 1", got)
		}
		if got := l.State(); got != StateReady {
			t.Errorf("state: got %s; want %s", got, StateReady)
		}
	})
}

func TestStartReusesOrRecreates(t *testing.T) {
	tests := []struct {
		name         string
		change       func(cfg *Config, f *fakeRuntime)
		wantCreates  int
		wantRemoves  int
		wantSameID   bool
		wantRecreate bool
	}{
		{
			name:        "same settings",
			change:      func(*Config, *fakeRuntime) {},
			wantCreates: 1,
			wantSameID:  true,
		},
		{
			name:        "env changed",
			change:      func(cfg *Config, _ *fakeRuntime) { cfg.Env = []string{"VERSION=v2"} },
			wantCreates: 2,
			wantRemoves: 1,
		},
		{
			name:        "label changed",
			change:      func(cfg *Config, _ *fakeRuntime) { cfg.Labels = map[string]string{"team": "b"} },
			wantCreates: 2,
			wantRemoves: 1,
		},
		{
			name: "probe changed to notify",
			change: func(cfg *Config, _ *fakeRuntime) {
				cfg.Ready = spec.Probe{Kind: spec.ProbeNotify}
				cfg.ReadyTimeout = time.Millisecond
			},
			wantCreates: 2,
			wantRemoves: 1,
		},
		{
			name: "image changed",
			change: func(_ *Config, f *fakeRuntime) {
				f.mu.Lock()
				f.images["img"] = "sha256:img2"
				f.mu.Unlock()
			},
			wantCreates: 2,
			wantRemoves: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeRuntime()
			cfg := testConfig(t, f)
			cfg.Env = []string{"VERSION=v1"}
			cfg.Labels = map[string]string{"team": "a"}
			cfg.RuntimeDir = t.TempDir()
			l := runLauncher(t, cfg)
			if err := l.Start(t.Context()); err != nil {
				t.Fatalf("first Start: %v", err)
			}
			if err := l.Stop(t.Context()); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			firstID := f.containerID("svc")

			tt.change(&cfg, f)
			l2 := runLauncher(t, cfg)
			l2.Start(t.Context()) // the notify case times out: only the container matters
			if got := f.count("Create"); got != tt.wantCreates {
				t.Errorf("creates: got %d; want %d", got, tt.wantCreates)
			}
			if got := f.count("Remove"); got != tt.wantRemoves {
				t.Errorf("removes: got %d; want %d", got, tt.wantRemoves)
			}
			if got := f.containerID("svc") == firstID; got != tt.wantSameID {
				t.Errorf("same container ID: got %v; want %v", got, tt.wantSameID)
			}
		})
	}
}

func TestStartNotOurs(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
	}{
		{name: "no labels", labels: nil},
		{name: "other service", labels: map[string]string{LabelService: "other"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeRuntime()
			id := f.add("svc", tt.labels, true)
			l := runLauncher(t, testConfig(t, f))
			err := l.Start(t.Context())
			if !errors.Is(err, ErrNotOurs) {
				t.Fatalf("Start: got %v; want ErrNotOurs", err)
			}
			if !f.running(id) {
				t.Errorf("the other container was stopped; want it left alone")
			}
			for _, m := range []string{"Create", "Remove", "Stop", "Start"} {
				if got := f.count(m); got != 0 {
					t.Errorf("%s calls: got %d; want 0", m, got)
				}
			}
			if got := l.State(); got != StateStopped {
				t.Errorf("state: got %s; want %s", got, StateStopped)
			}
		})
	}
}

func TestStartExitDuringStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		f.logs = []string{"loading config", "exiting at start with 7"}
		f.exec = func(string, []string) (int, string, error) { return 1, "connection refused", nil }
		f.afterStart = func(f *fakeRuntime, id string) {
			go func() {
				time.Sleep(300 * time.Millisecond)
				f.exit(id, 7)
			}()
		}
		cfg := testConfig(t, f)
		l := runLauncher(t, cfg)

		began := time.Now()
		err := l.Start(t.Context())
		if !errors.Is(err, ErrExited) {
			t.Fatalf("Start: got %v; want ErrExited", err)
		}
		if took := time.Since(began); took > time.Second {
			t.Errorf("Start took %s; want the exit noticed at once, not at the ready timeout", took)
		}
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("Start: got %T; want *ExitError in the chain", err)
		}
		if ee.Code != 7 {
			t.Errorf("exit code: got %d; want 7", ee.Code)
		}
		if !strings.Contains(err.Error(), "exiting at start with 7") {
			t.Errorf("error: got %q; want it to quote the log line", err)
		}
		if got := l.State(); got != StateStopped {
			t.Errorf("state: got %s; want %s", got, StateStopped)
		}
	})
}

func TestStartProbeTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		f.exec = func(string, []string) (int, string, error) { return 1, "not yet", nil }
		cfg := testConfig(t, f)
		cfg.ReadyTimeout = 2 * time.Second
		l := runLauncher(t, cfg)

		began := time.Now()
		err := l.Start(t.Context())
		if !errors.Is(err, ErrNotReady) {
			t.Fatalf("Start: got %v; want ErrNotReady", err)
		}
		if took := time.Since(began); took < 2*time.Second || took > 2*time.Second+probeMaxInterval {
			t.Errorf("Start took %s; want about the 2s ready timeout", took)
		}
		for _, want := range []string{"exec:/check", "not yet"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error: got %q; want it to mention %q", err, want)
			}
		}
		if f.running("svc") {
			t.Errorf("container left running after the probe timed out")
		}
		if got := f.count("Stop"); got != 1 {
			t.Errorf("stops: got %d; want 1", got)
		}
		// Polls tightly: at 5ms growing to 100ms, 2s holds well over 20.
		if got := f.count("Exec"); got < 20 {
			t.Errorf("probe attempts: got %d; want at least 20", got)
		}
	})
}

func TestStopThenStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		l := runLauncher(t, testConfig(t, f))
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if err := l.Stop(t.Context()); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if got := l.State(); got != StateStopped {
			t.Errorf("state after Stop: got %s; want %s", got, StateStopped)
		}
		if f.running("svc") {
			t.Errorf("container running after Stop")
		}
		if _, err := l.Addr("web"); err == nil {
			t.Errorf("Addr after Stop: got nil error; want one")
		}
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("second Start: %v", err)
		}
		if !f.running("svc") {
			t.Errorf("container not running after second Start")
		}
		if got := f.count("Start"); got != 2 {
			t.Errorf("starts: got %d; want 2", got)
		}
		if got := f.count("Create"); got != 1 {
			t.Errorf("creates: got %d; want 1 (the container is kept)", got)
		}
	})
}

func TestStartDuringStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		release := make(chan struct{})
		cfg := testConfig(t, f)
		cfg.Runtime = &slowStop{fakeRuntime: f, release: release}
		l := runLauncher(t, cfg)
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}

		stopped := make(chan error, 1)
		go func() { stopped <- l.Stop(t.Context()) }()
		synctest.Wait()
		if got := l.State(); got != StateStopping {
			t.Fatalf("state: got %s; want %s", got, StateStopping)
		}
		started := make(chan error, 1)
		go func() { started <- l.Start(t.Context()) }()
		synctest.Wait()
		select {
		case err := <-started:
			t.Fatalf("Start returned %v during the stop; want it to wait", err)
		default:
		}
		close(release)
		if err := <-stopped; err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := <-started; err != nil {
			t.Fatalf("Start: %v", err)
		}
		if got := l.State(); got != StateReady {
			t.Errorf("state: got %s; want %s", got, StateReady)
		}
		if got := f.count("Start"); got != 2 {
			t.Errorf("starts: got %d; want 2", got)
		}
	})
}

// slowStop is a fake whose Stop waits for release.
type slowStop struct {
	*fakeRuntime
	release chan struct{}
}

func (s *slowStop) Stop(ctx context.Context, id string, timeout time.Duration) error {
	<-s.release
	return s.fakeRuntime.Stop(ctx, id, timeout)
}

func TestStopDuringStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		var ready atomic.Bool
		f.exec = func(string, []string) (int, string, error) {
			if ready.Load() {
				return 0, "", nil
			}
			return 1, "", nil
		}
		l := runLauncher(t, testConfig(t, f))
		started := make(chan error, 1)
		go func() { started <- l.Start(t.Context()) }()
		time.Sleep(time.Second) // probing by now
		if !f.running("svc") {
			t.Fatalf("container not running while probing")
		}
		ready.Store(true) // the next probe would pass, but Stop comes first
		if err := l.Stop(t.Context()); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		stopped := time.Now()
		if got := f.count("Stop"); got != 1 {
			t.Errorf("stops: got %d; want 1 (the cancelled start's cleanup)", got)
		}
		// Its caller still waits: the next start serves it, at once (a
		// cancelled start is not a crash: no backoff).
		if err := <-started; err != nil {
			t.Fatalf("Start cancelled by Stop: got %v; want nil, from the next start", err)
		}
		if took := time.Since(stopped); took != 0 {
			t.Errorf("next start took %s; want no backoff", took)
		}
		if got := f.count("Start"); got != 2 {
			t.Errorf("starts: got %d; want 2", got)
		}
		if got := l.State(); got != StateReady {
			t.Errorf("state: got %s; want %s", got, StateReady)
		}
	})
}

func TestStopDuringStartCallerGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		f.exec = func(string, []string) (int, string, error) { return 1, "", nil }
		l := runLauncher(t, testConfig(t, f))
		ctx, cancel := context.WithCancel(t.Context())
		started := make(chan error, 1)
		go func() { started <- l.Start(ctx) }()
		time.Sleep(time.Second)
		cancel()
		synctest.Wait()
		if err := l.Stop(t.Context()); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := <-started; err == nil {
			t.Errorf("Start with a cancelled ctx: got nil; want an error")
		}
		if f.running("svc") || l.State() != StateStopped {
			t.Errorf("after Stop: running %v, state %s; want not running, %s", f.running("svc"), l.State(), StateStopped)
		}
	})
}

// failStop is a fake whose Stop fails, leaving the container running,
// while fail is set.
type failStop struct {
	*fakeRuntime
	fail atomic.Bool
}

func (s *failStop) Stop(ctx context.Context, id string, timeout time.Duration) error {
	if s.fail.Load() {
		s.called("Stop")
		return errors.New("timed out waiting for the container to stop")
	}
	return s.fakeRuntime.Stop(ctx, id, timeout)
}

func TestStopFailureStaysReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		fs := &failStop{fakeRuntime: f}
		fs.fail.Store(true)
		cfg := testConfig(t, f)
		cfg.Runtime = fs
		l := runLauncher(t, cfg)
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if err := l.Stop(t.Context()); err == nil {
			t.Fatalf("Stop that failed: got nil; want an error")
		}
		if got := l.State(); got != StateReady {
			t.Errorf("state after a failed stop: got %s; want %s (still running)", got, StateReady)
		}
		fs.fail.Store(false)
		if err := l.Stop(t.Context()); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
		if got := f.count("Stop"); got != 2 {
			t.Errorf("stops: got %d; want 2 (the second Stop tries again)", got)
		}
		if f.running("svc") || l.State() != StateStopped {
			t.Errorf("after second Stop: running %v, state %s; want not running, %s", f.running("svc"), l.State(), StateStopped)
		}
	})
}

func TestStopFailureAfterExit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		fs := &failStop{fakeRuntime: f}
		fs.fail.Store(true)
		cfg := testConfig(t, f)
		cfg.Runtime = fs
		l := runLauncher(t, cfg)
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		// The container exits during the stop, which fails all the same.
		fs.fakeRuntime.exit(f.containerID("svc"), 137)
		synctest.Wait()
		if err := l.Stop(t.Context()); err != nil {
			t.Errorf("Stop of an exited container: got %v; want nil", err)
		}
		if got := l.State(); got != StateStopped {
			t.Errorf("state: got %s; want %s", got, StateStopped)
		}
	})
}

func TestStartRecreatesWhenHostPortTaken(t *testing.T) {
	inUse := errors.New("rootlessport listen tcp 127.0.0.1:40000: bind: address already in use")
	t.Run("once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeRuntime()
			l := runLauncher(t, testConfig(t, f))
			if err := l.Start(t.Context()); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if err := l.Stop(t.Context()); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			old := f.containerID("svc")
			f.startErr = func(id string) error {
				if id == old {
					return inUse
				}
				return nil
			}
			if err := l.Start(t.Context()); err != nil {
				t.Fatalf("Start with a host port taken: %v", err)
			}
			if id := f.containerID("svc"); id == old {
				t.Errorf("container ID: got the old %s; want a new container", id)
			}
			if got := f.count("Create"); got != 2 {
				t.Errorf("creates: got %d; want 2", got)
			}
			if got := l.State(); got != StateReady {
				t.Errorf("state: got %s; want %s", got, StateReady)
			}
		})
	})
	t.Run("always", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeRuntime()
			f.startErr = func(string) error { return inUse }
			l := runLauncher(t, testConfig(t, f))
			err := l.Start(t.Context())
			if err == nil || !strings.Contains(err.Error(), "address already in use") {
				t.Fatalf("Start: got %v; want the address-in-use error", err)
			}
			if got := f.count("Create"); got != 2 {
				t.Errorf("creates: got %d; want 2 (one retry)", got)
			}
		})
	})
}

func TestExitWatcher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		var mu sync.Mutex
		var lines []string
		cfg := testConfig(t, f)
		cfg.Status = func(line string) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, line)
		}
		l := runLauncher(t, cfg)
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		time.Sleep(time.Minute) // long enough to count as stable
		f.exit(f.containerID("svc"), 2)
		synctest.Wait()
		if got := l.State(); got != StateStopped {
			t.Fatalf("state after the container exited: got %s; want %s", got, StateStopped)
		}
		began := time.Now()
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start after exit: %v", err)
		}
		if took := time.Since(began); took != 0 {
			t.Errorf("Start after a stable run took %s; want no backoff", took)
		}
		if !f.running("svc") {
			t.Errorf("container not running after Start")
		}
		mu.Lock()
		defer mu.Unlock()
		if !contains(lines, "container svc exited with code 2") {
			t.Errorf("status lines: got %q; want the exit reported", lines)
		}
	})
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func TestCrashLoopBackoff(t *testing.T) {
	tests := []struct {
		name   string
		uptime time.Duration // how long each run lasts
		probe  spec.Probe
	}{
		{name: "exits soon after ready", uptime: time.Second, probe: spec.Probe{Kind: spec.ProbeNone}},
		{name: "exits while starting", uptime: 0, probe: spec.Probe{Kind: spec.ProbeExec, Arg: "/check"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeRuntime()
				var mu sync.Mutex
				var starts []time.Time
				crashing := true
				f.afterStart = func(f *fakeRuntime, id string) {
					mu.Lock()
					defer mu.Unlock()
					starts = append(starts, time.Now())
					if !crashing {
						return
					}
					if tt.uptime == 0 {
						f.exit(id, 1)
						return
					}
					go func() {
						time.Sleep(tt.uptime)
						f.exit(id, 1)
					}()
				}
				f.exec = func(string, []string) (int, string, error) {
					mu.Lock()
					defer mu.Unlock()
					if crashing {
						return 1, "", nil
					}
					return 0, "", nil
				}
				cfg := testConfig(t, f)
				cfg.Ready = tt.probe
				l := runLauncher(t, cfg)

				// Each Start waits out the backoff, then the
				// container dies again.
				for range 9 {
					l.Start(t.Context())
					for l.State() != StateStopped {
						time.Sleep(time.Millisecond)
					}
				}
				want := []time.Duration{
					500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second,
					8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second,
				}
				mu.Lock()
				for i, w := range want {
					// Runs start and end on the fake clock exactly.
					if got := starts[i+1].Sub(starts[i]) - tt.uptime; got != w {
						t.Errorf("delay before start %d: got %s; want %s", i+2, got, w)
					}
				}
				crashing = false
				mu.Unlock()

				// A start after the backoff that stays up resets it.
				if err := l.Start(t.Context()); err != nil {
					t.Fatalf("Start: %v", err)
				}
				time.Sleep(stableAfter)
				f.exit(f.containerID("svc"), 1)
				synctest.Wait()
				began := time.Now()
				if err := l.Start(t.Context()); err != nil {
					t.Fatalf("Start: %v", err)
				}
				if took := time.Since(began); took != 0 {
					t.Errorf("Start after a stable run took %s; want no delay", took)
				}
			})
		})
	}
}

func TestBackoffDelayCaps(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name     string
		failures int
		want     time.Duration
	}{
		{name: "none", failures: 0, want: 0},
		{name: "first", failures: 1, want: 500 * time.Millisecond},
		{name: "sixth", failures: 6, want: 16 * time.Second},
		{name: "seventh capped", failures: 7, want: 30 * time.Second},
		{name: "many capped", failures: 1000, want: 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &Launcher{failures: tt.failures, lastFailure: now}
			if got := l.backoffDelay(now); got != tt.want {
				t.Errorf("backoffDelay: got %s; want %s", got, tt.want)
			}
		})
	}
}

func TestStartAdoptsRunningContainer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		cfg := testConfig(t, f)
		l := runLauncher(t, cfg)
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		// A new launcher (lazypod restarted) finds it running.
		l2 := runLauncher(t, cfg)
		if err := l2.Start(t.Context()); err != nil {
			t.Fatalf("Start of second launcher: %v", err)
		}
		if got := f.count("Start"); got != 1 {
			t.Errorf("starts: got %d; want 1 (adopted)", got)
		}
		if got := f.count("Create"); got != 1 {
			t.Errorf("creates: got %d; want 1", got)
		}
		a1, _ := l.Addr("web")
		a2, _ := l2.Addr("web")
		if a1 != a2 {
			t.Errorf("Addr: got %q; want %q", a2, a1)
		}
	})
}

func TestStartPullsMissingImage(t *testing.T) {
	tests := []struct {
		name    string
		pullErr error
		wantErr error
	}{
		{name: "pulled", pullErr: nil, wantErr: nil},
		{name: "refused", pullErr: ErrImageNotFound, wantErr: ErrImageNotFound},
		{name: "podman gone", pullErr: ErrNoPodman, wantErr: ErrNoPodman},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeRuntime()
				f.pullErr = tt.pullErr
				var mu sync.Mutex
				var lines []string
				cfg := testConfig(t, f)
				cfg.Image = "registry.example/app:1"
				cfg.Status = func(line string) {
					mu.Lock()
					defer mu.Unlock()
					lines = append(lines, line)
				}
				l := runLauncher(t, cfg)
				err := l.Start(t.Context())
				if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
					t.Fatalf("Start: got %v; want %v", err, tt.wantErr)
				}
				if got := f.count("Pull"); got != 1 {
					t.Errorf("pulls: got %d; want 1", got)
				}
				mu.Lock()
				defer mu.Unlock()
				if !contains(lines, "pulling registry.example/app:1") {
					t.Errorf("status lines: got %q; want the pull reported", lines)
				}
			})
		})
	}
}

func TestHealthcheckProbe(t *testing.T) {
	tests := []struct {
		name    string
		health  *HealthCheck
		passAt  int    // the check passes from this run on; 0: never
		want    string // "" for ready, else in the error
		took    time.Duration
		wantRun []string
	}{
		{name: "exec form, ready at the first success", health: &HealthCheck{Test: []string{"CMD", "/bin/check", "-q"}},
			passAt: 3, wantRun: []string{"/bin/check", "-q"}},
		{name: "shell form", health: &HealthCheck{Test: []string{"CMD-SHELL", "curl -f http://localhost/ || exit 1"}},
			passAt: 1, wantRun: []string{"/bin/sh", "-c", "curl -f http://localhost/ || exit 1"}},
		// Never healthy: failed once Retries runs Interval apart have
		// failed after the start period, long before the ready timeout.
		{name: "unhealthy", health: &HealthCheck{Test: []string{"CMD", "/bin/check"}, Interval: 2 * time.Second, Retries: 3, StartPeriod: 5 * time.Second},
			want: "the health check failed 3 times in a row, 2s apart, after its start period of 5s", took: 9 * time.Second},
		{name: "unhealthy, Podman's defaults", health: &HealthCheck{Test: []string{"CMD", "/bin/check"}},
			want: "3 times in a row, 30s apart", took: 60 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeRuntime()
				f.health = tt.health
				var mu sync.Mutex
				var runs int
				var argv []string
				f.exec = func(_ string, a []string) (int, string, error) {
					mu.Lock()
					defer mu.Unlock()
					runs++
					argv = a
					if tt.passAt > 0 && runs >= tt.passAt {
						return 0, "", nil
					}
					return 1, "not yet", nil
				}
				cfg := testConfig(t, f)
				cfg.Ready = spec.Probe{Kind: spec.ProbeHealthcheck}
				cfg.ReadyTimeout = 10 * time.Minute
				l := runLauncher(t, cfg)
				began := time.Now()
				err := l.Start(t.Context())
				if tt.want == "" {
					if err != nil || runs != tt.passAt || !slices.Equal(argv, tt.wantRun) {
						t.Fatalf("Start: %v after %d runs of %q; want ready at run %d of %q", err, runs, argv, tt.passAt, tt.wantRun)
					}
					return
				}
				if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Start: %v; want ErrNotReady saying %q", err, tt.want)
				}
				if took := time.Since(began); took < tt.took || took > tt.took+time.Second {
					t.Errorf("Start failed after %s; want %s (start period + (retries-1) × interval)", took, tt.took)
				}
			})
		})
	}
}

func TestHealthcheckProbeWithoutHealthcheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		f.noHealthcheck = true
		cfg := testConfig(t, f)
		cfg.Ready = spec.Probe{Kind: spec.ProbeHealthcheck}
		l := runLauncher(t, cfg)
		began := time.Now()
		err := l.Start(t.Context())
		if err == nil || !strings.Contains(err.Error(), "has no health check") {
			t.Fatalf("Start: got %v; want an error saying the container has no health check", err)
		}
		if took := time.Since(began); took != 0 {
			t.Errorf("Start took %s; want it to fail at once, not at the ready timeout", took)
		}
		if f.running("svc") {
			t.Errorf("container left running")
		}
	})
}

func TestNotifyProbe(t *testing.T) {
	f := newFakeRuntime()
	f.afterStart = func(f *fakeRuntime, id string) {
		go func() {
			time.Sleep(50 * time.Millisecond)
			if err := f.notifyReady(id); err != nil {
				t.Errorf("sending READY=1: %v", err)
			}
		}()
	}
	cfg := testConfig(t, f)
	cfg.Ready = spec.Probe{Kind: spec.ProbeNotify}
	cfg.RuntimeDir = t.TempDir()
	cfg.ReadyTimeout = 10 * time.Second
	l := runLauncher(t, cfg)
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	f.mu.Lock()
	spec := f.find("svc").spec
	f.mu.Unlock()
	if !contains(spec.Env, "NOTIFY_SOCKET="+NotifyPath) {
		t.Errorf("env: got %q; want NOTIFY_SOCKET=%s", spec.Env, NotifyPath)
	}
	if got, want := mountSource(spec, NotifyPath), cfg.RuntimeDir+"/svc.notify"; got != want {
		t.Errorf("notify mount source: got %q; want %q", got, want)
	}
	if took := l.LastColdStart(); took > 5*time.Second {
		t.Errorf("LastColdStart: got %s; want READY=1 noticed within a probe interval", took)
	}
}

func TestRunEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		f.startDelay = time.Hour
		l, err := New(testConfig(t, f))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()
		started := make(chan error, 1)
		go func() { started <- l.Start(t.Context()) }()
		time.Sleep(time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v; want nil", err)
		}
		if err := <-started; !errors.Is(err, context.Canceled) {
			t.Errorf("Start cut short by Run's end: got %v; want context.Canceled", err)
		}
		if err := l.Start(t.Context()); !errors.Is(err, ErrClosed) {
			t.Errorf("Start after Run: got %v; want ErrClosed", err)
		}
		if err := l.Run(t.Context()); err == nil {
			t.Errorf("second Run: got nil; want an error")
		}
	})
}

func TestStartWaitsForRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		l, err := New(testConfig(t, f))
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan error, 1)
		go func() { started <- l.Start(t.Context()) }()
		synctest.Wait()
		if got := f.count("ImageID"); got != 0 {
			t.Fatalf("runtime calls before Run: got %d; want 0", got)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()
		if err := <-started; err != nil {
			t.Errorf("Start: got %v; want nil", err)
		}
		cancel()
		<-done
	})
}

func TestDefaultTCPProbeThroughDialSeam(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		var mu sync.Mutex
		var dialed []string
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		cfg := testConfig(t, f)
		// The zero value, listening, falls back to tcp (a tcp port is
		// published): the fake engine gives no pid.
		cfg.Ready = spec.Probe{}
		cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			defer mu.Unlock()
			dialed = append(dialed, network+" "+addr)
			if len(dialed) < 3 {
				return nil, errors.New("connection refused")
			}
			c, server := net.Pipe()
			held = append(held, server)
			return c, nil
		}
		l := runLauncher(t, cfg)
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		addr, _ := l.Addr("web")
		mu.Lock()
		defer mu.Unlock()
		if len(dialed) != 3 || dialed[2] != "tcp "+addr {
			t.Errorf("dials: got %q; want 3, the last to tcp %s", dialed, addr)
		}
		// Two failures that are not ECONNREFUSED (2ms, then 3ms apart),
		// then a connection held open for tcpSettle.
		if got, want := l.LastColdStart(), 5*time.Millisecond+tcpSettle; got != want {
			t.Errorf("LastColdStart: got %s; want %s", got, want)
		}
	})
}

// TestTCPProbeNoSettleAfterRefused: once a connect was refused, nothing
// but the service itself can accept (no port forwarder answers for the
// container), so the next connection that succeeds means ready at once,
// without tcpSettle.
func TestTCPProbeNoSettleAfterRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		var mu sync.Mutex
		dials := 0
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		cfg := testConfig(t, f)
		cfg.Ready = spec.Probe{}
		cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			defer mu.Unlock()
			dials++
			if dials < 3 {
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
			}
			c, server := net.Pipe()
			held = append(held, server)
			return c, nil
		}
		l := runLauncher(t, cfg)
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if got, want := l.LastColdStart(), 5*time.Millisecond; got != want {
			t.Errorf("LastColdStart: got %s; want %s (two refusals 2ms and 3ms apart, no settle)", got, want)
		}
	})
}

// TestOnStarted: each start from stopped is reported once, with how long
// it took and, for a failed one, why.
func TestOnStarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		f.startDelay = time.Second
		probeOK := false
		f.exec = func(string, []string) (int, string, error) {
			if probeOK {
				return 0, "", nil
			}
			return 1, "not yet", nil
		}
		var got []Started
		cfg := testConfig(t, f)
		cfg.ReadyTimeout = 2 * time.Second
		cfg.OnStarted = func(s Started) { got = append(got, s) }
		l := runLauncher(t, cfg)

		if err := l.Start(t.Context()); !errors.Is(err, ErrNotReady) {
			t.Fatalf("first Start: got %v; want ErrNotReady", err)
		}
		probeOK = true
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("second Start: %v", err)
		}
		if err := l.Start(t.Context()); err != nil { // ready: no start
			t.Fatalf("third Start: %v", err)
		}
		synctest.Wait()
		if len(got) != 2 {
			t.Fatalf("OnStarted calls: got %d (%+v); want 2", len(got), got)
		}
		if !errors.Is(got[0].Err, ErrNotReady) || got[0].Took != 2*time.Second {
			t.Errorf("failed start: got %+v; want ErrNotReady after the 2s ready timeout", got[0])
		}
		if got[1].Err != nil || got[1].Took != time.Second || got[1].RolledBack {
			t.Errorf("good start: got %+v; want no error, 1s, not rolled back", got[1])
		}
	})
}
