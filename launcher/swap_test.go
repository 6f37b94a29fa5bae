package launcher

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// Image IDs of the swap tests, 64 hex digits as Podman's are.
var (
	imgV1 = strings.Repeat("1", 64) // good, named "img"
	imgV2 = strings.Repeat("2", 64) // good
	imgV3 = strings.Repeat("3", 64) // exits with 3 at start
	imgV4 = strings.Repeat("4", 64) // never ready
	imgV5 = strings.Repeat("5", 64) // crashes 1s after start
)

// swapRuntime returns a fake with the images above, "img" naming v1.
func swapRuntime() *fakeRuntime {
	f := newFakeRuntime()
	f.addImage(imgV1, imageBehaviour{}, "img")
	f.addImage(imgV2, imageBehaviour{})
	f.addImage(imgV3, imageBehaviour{exitAtStart: 3})
	f.addImage(imgV4, imageBehaviour{neverReady: true})
	f.addImage(imgV5, imageBehaviour{crashAfter: time.Second})
	return f
}

// statusLines collects the lines sent to Config.Status.
type statusLines struct {
	mu    sync.Mutex
	lines []string
}

func (s *statusLines) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
}

// withPrefix returns the first line that begins with prefix, or "".
func (s *statusLines) withPrefix(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// swapConfig returns testConfig with a swapper answering choices and a
// status line recorder.
func swapConfig(t *testing.T, f *fakeRuntime, choices ...choice) (Config, *fakeSwapper, *statusLines) {
	t.Helper()
	s := &fakeSwapper{t: t, choices: choices}
	lines := &statusLines{}
	cfg := testConfig(t, f)
	cfg.Swapper = s
	cfg.Status = lines.add
	cfg.ReadyTimeout = 2 * time.Second
	return cfg, s, lines
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSwapChooseNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		f.startDelay = time.Second
		cfg, s, _ := swapConfig(t, f, choice{})
		cfg.Image = "registry.example/app:1" // missing: pulled as without a Swapper
		l := runLauncher(t, cfg)
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if got := f.count("Pull"); got != 1 {
			t.Errorf("pulls: got %d; want 1", got)
		}
		synctest.Wait() // Ready is told after the callers are released
		want := []deployment{{ImageID: "sha256:pulled", ColdStart: time.Second}}
		if got := s.deployments(); len(got) != 1 || got[0] != want[0] {
			t.Errorf("Ready calls: got %+v; want %+v", got, want)
		}
		// Choose runs at each start from stopped, not when ready.
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start when ready: %v", err)
		}
		if err := l.Stop(t.Context()); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start after Stop: %v", err)
		}
		synctest.Wait()
		wantCalls := []string{"choose", "ready sha256:pulled", "choose", "ready sha256:pulled"}
		if got := s.history(); !equalStrings(got, wantCalls) {
			t.Errorf("swapper calls: got %q; want %q", got, wantCalls)
		}
		if got := f.count("Create"); got != 1 {
			t.Errorf("creates: got %d; want 1 (the same image reuses the container)", got)
		}
	})
}

func TestSwapChooseError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := swapRuntime()
		cfg, s, _ := swapConfig(t, f)
		boom := errors.New("reading state file: permission denied")
		s.chooseErr = boom
		l := runLauncher(t, cfg)
		err := l.Start(t.Context())
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "choosing image: ") {
			t.Fatalf("Start: got %v; want it to wrap %v as choosing image", err, boom)
		}
		if got := f.count("Create") + f.count("ImageID"); got != 0 {
			t.Errorf("runtime calls after Choose failed: got %d; want 0", got)
		}
		if got := l.State(); got != StateStopped {
			t.Errorf("state: got %s; want %s", got, StateStopped)
		}
	})
}

func TestSwapToChosenImage(t *testing.T) {
	tests := []struct {
		name    string
		choice  choice
		names   bool // Config.Image names the chosen image by the swap
		wantRef string
	}{
		{name: "by ID", choice: choice{Image: imgV2, Fallback: imgV1}, wantRef: imgV2},
		{name: "short ID", choice: choice{Image: imgV2[:12]}, wantRef: imgV2},
		{name: "by the configured name", choice: choice{Image: imgV2, Fallback: imgV1}, names: true, wantRef: "img"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := swapRuntime()
				f.images[imgV2[:12]] = imgV2 // a short ID resolves too
				cfg, s, lines := swapConfig(t, f, choice{}, tt.choice)
				l := runLauncher(t, cfg)
				if err := l.Start(t.Context()); err != nil {
					t.Fatalf("first Start: %v", err)
				}
				if got := f.imageOf("svc"); got != imgV1 {
					t.Fatalf("first container's image: got %s; want v1", got)
				}
				if err := l.Stop(t.Context()); err != nil {
					t.Fatalf("Stop: %v", err)
				}
				if tt.names {
					f.addImage(imgV2, imageBehaviour{}, "img")
				}
				if err := l.Start(t.Context()); err != nil {
					t.Fatalf("Start with the chosen image: %v", err)
				}
				if got := f.imageOf("svc"); got != imgV2 {
					t.Errorf("container's image: got %s; want v2", got)
				}
				f.mu.Lock()
				spec := f.find("svc").spec
				f.mu.Unlock()
				if spec.Image != tt.wantRef {
					t.Errorf("created from: got %q; want %q", spec.Image, tt.wantRef)
				}
				if got, want := spec.Labels[LabelHash], l.spec.Labels[LabelHash]; got != want {
					t.Errorf("hash label: got %s; want the configured spec's %s", got, want)
				}
				if line := lines.withPrefix("recreating container svc: "); line != "recreating container svc: image changed" {
					t.Errorf("status: got %q; want %q", line, "recreating container svc: image changed")
				}
				if got := f.count("Pull"); got != 0 {
					t.Errorf("pulls: got %d; want 0", got)
				}
				synctest.Wait()
				if d := s.deployments(); len(d) != 2 || d[1].ImageID != imgV2 {
					t.Errorf("Ready calls: got %+v; want the second for v2", d)
				}
				if got := s.failures(); len(got) != 0 {
					t.Errorf("Failed calls: got %v; want none", got)
				}
			})
		})
	}
}

func TestSwapChosenImageMissing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := swapRuntime()
		missing := strings.Repeat("9", 64)
		cfg, s, _ := swapConfig(t, f, choice{Image: missing, Fallback: imgV1})
		l := runLauncher(t, cfg)
		err := l.Start(t.Context())
		if !errors.Is(err, ErrImageNotFound) || errors.Is(err, ErrRollback) {
			t.Fatalf("Start: got %v; want ErrImageNotFound, not a rollback", err)
		}
		if !strings.Contains(err.Error(), "999999999999") {
			t.Errorf("error: got %q; want it to name the image", err)
		}
		if got := f.count("Pull") + f.count("Create"); got != 0 {
			t.Errorf("pulls and creates: got %d; want 0", got)
		}
		if got := s.failures(); len(got) != 0 {
			t.Errorf("Failed calls: got %v; want none", got)
		}
	})
}

func TestSwapRollback(t *testing.T) {
	tests := []struct {
		name       string
		image      string
		wantReason error
		wantTook   time.Duration // from Start to ready
	}{
		{name: "not ready", image: imgV4, wantReason: ErrNotReady, wantTook: 2 * time.Second},
		{name: "exits at start", image: imgV3, wantReason: ErrExited, wantTook: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := swapRuntime()
				cfg, s, lines := swapConfig(t, f, choice{Image: tt.image, Fallback: imgV1})
				l := runLauncher(t, cfg)
				began := time.Now()
				if err := l.Start(t.Context()); err != nil {
					t.Fatalf("Start: got %v; want nil, from the fallback", err)
				}
				if took := time.Since(began); took < tt.wantTook || took > tt.wantTook+probeMaxInterval {
					t.Errorf("Start took %s; want about %s", took, tt.wantTook)
				}
				if got := f.imageOf("svc"); got != imgV1 || !f.running("svc") {
					t.Errorf("container: image %s, running %v; want v1 running", got, f.running("svc"))
				}
				if got := l.State(); got != StateReady {
					t.Errorf("state: got %s; want %s", got, StateReady)
				}
				// The failed container was removed, not just stopped.
				if got := f.count("Remove"); got != 1 {
					t.Errorf("removes: got %d; want 1", got)
				}
				if got := f.count("Create"); got != 2 {
					t.Errorf("creates: got %d; want 2", got)
				}
				fails := s.failures()
				if len(fails) != 1 || fails[0].image != tt.image || !errors.Is(fails[0].reason, tt.wantReason) {
					t.Errorf("Failed calls: got %v; want one for %s wrapping %v", fails, spec.ShortID(tt.image), tt.wantReason)
				}
				line := lines.withPrefix("rolling back ")
				if want := "rolling back container svc to image 111111111111: "; !strings.HasPrefix(line, want) {
					t.Errorf("status: got %q; want it to begin %q", line, want)
				}
				synctest.Wait()
				wantCalls := []string{"choose", "failed " + tt.image, "ready " + imgV1}
				if got := s.history(); !equalStrings(got, wantCalls) {
					t.Errorf("swapper calls: got %q; want %q", got, wantCalls)
				}
				if d := s.deployments(); len(d) != 1 || d[0].ColdStart != l.LastColdStart() || d[0].ColdStart < tt.wantTook {
					t.Errorf("Ready: got %+v; want ColdStart %s (both attempts)", d, l.LastColdStart())
				}
				// The rolled back container is not on trial: an early
				// exit is no failure of its image.
				f.exit(f.containerID("svc"), 1)
				synctest.Wait()
				if got := len(s.failures()); got != 1 {
					t.Errorf("Failed calls after the fallback exited: got %d; want still 1", got)
				}
			})
		})
	}
}

func TestSwapRollbackWaitersGetFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := swapRuntime()
		cfg, _, _ := swapConfig(t, f, choice{Image: imgV4, Fallback: imgV2})
		l := runLauncher(t, cfg)
		const n = 20
		type answer struct {
			err  error
			addr string
		}
		answers := make(chan answer, n)
		for range n {
			go func() {
				err := l.Start(t.Context())
				addr, _ := l.Addr("web")
				answers <- answer{err, addr}
			}()
		}
		var addrs []string
		for range n {
			a := <-answers
			if a.err != nil {
				t.Errorf("Start: got %v; want nil", a.err)
			}
			addrs = append(addrs, a.addr)
		}
		f.mu.Lock()
		c := f.find("svc")
		want := "127.0.0.1:" + strconv.Itoa(int(c.info.HostPorts[ContainerPort{Port: 8080, Proto: spec.ProtoTCP}]))
		image := c.info.ImageID
		f.mu.Unlock()
		if image != imgV2 {
			t.Errorf("container's image: got %s; want the fallback v2", spec.ShortID(image))
		}
		for _, a := range addrs {
			if a != want {
				t.Errorf("Addr after Start: got %q; want the fallback's %q", a, want)
			}
		}
		if got := f.count("Start"); got != 2 {
			t.Errorf("container starts: got %d; want 2 (one shared start, two attempts)", got)
		}
	})
}

func TestSwapRollbackFallbackMissing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := swapRuntime()
		missing := strings.Repeat("9", 64)
		cfg, s, _ := swapConfig(t, f, choice{Image: imgV3, Fallback: missing})
		l := runLauncher(t, cfg)
		err := l.Start(t.Context())
		if !errors.Is(err, ErrRollback) || !errors.Is(err, ErrImageNotFound) {
			t.Fatalf("Start: got %v; want ErrRollback and ErrImageNotFound", err)
		}
		for _, want := range []string{"333333333333", "999999999999", "exited with code 3"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error: got %q; want it to mention %q", err, want)
			}
		}
		if id := f.containerID("svc"); id != "" {
			t.Errorf("container %s left behind; want none", id)
		}
		if got := l.State(); got != StateStopped {
			t.Errorf("state: got %s; want %s", got, StateStopped)
		}
		synctest.Wait()
		wantCalls := []string{"choose", "failed " + imgV3}
		if got := s.history(); !equalStrings(got, wantCalls) {
			t.Errorf("swapper calls: got %q; want %q", got, wantCalls)
		}
	})
}

func TestSwapRollbackFallbackFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := swapRuntime()
		cfg, s, _ := swapConfig(t, f, choice{Image: imgV4, Fallback: imgV3})
		l := runLauncher(t, cfg)
		err := l.Start(t.Context())
		for _, want := range []error{ErrRollback, ErrNotReady, ErrExited} {
			if !errors.Is(err, want) {
				t.Errorf("Start: got %v; want it to wrap %v", err, want)
			}
		}
		for _, want := range []string{"444444444444", "333333333333"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error: got %q; want it to mention %q", err, want)
			}
		}
		if f.running("svc") {
			t.Errorf("container left running")
		}
		if got := l.State(); got != StateStopped {
			t.Errorf("state: got %s; want %s", got, StateStopped)
		}
		synctest.Wait()
		// The fallback was not chosen with a fallback: no Failed for it.
		wantCalls := []string{"choose", "failed " + imgV4}
		if got := s.history(); !equalStrings(got, wantCalls) {
			t.Errorf("swapper calls: got %q; want %q", got, wantCalls)
		}
	})
}

func TestSwapNoFallbackNoRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := swapRuntime()
		cfg, s, _ := swapConfig(t, f, choice{Image: imgV4})
		l := runLauncher(t, cfg)
		err := l.Start(t.Context())
		if !errors.Is(err, ErrNotReady) || errors.Is(err, ErrRollback) {
			t.Fatalf("Start: got %v; want ErrNotReady, no rollback", err)
		}
		if got := f.count("Create"); got != 1 {
			t.Errorf("creates: got %d; want 1", got)
		}
		if f.containerID("svc") == "" || f.running("svc") {
			t.Errorf("container: want it kept, stopped, as without a Swapper")
		}
		synctest.Wait()
		if got := s.history(); !equalStrings(got, []string{"choose"}) {
			t.Errorf("swapper calls: got %q; want only choose", got)
		}
	})
}

func TestSwapStopDuringTrialStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := swapRuntime()
		cfg, s, _ := swapConfig(t, f, choice{Image: imgV4, Fallback: imgV1})
		cfg.ReadyTimeout = time.Hour
		l := runLauncher(t, cfg)
		ctx, cancel := context.WithCancel(t.Context())
		started := make(chan error, 1)
		go func() { started <- l.Start(ctx) }()
		time.Sleep(time.Second)
		cancel()
		if err := l.Stop(t.Context()); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		<-started
		synctest.Wait()
		if got := s.history(); !equalStrings(got, []string{"choose"}) {
			t.Errorf("swapper calls: got %q; want only choose (a stop is no failure)", got)
		}
		if f.running("svc") || l.State() != StateStopped {
			t.Errorf("after Stop: running %v, state %s; want not running, %s", f.running("svc"), l.State(), StateStopped)
		}
	})
}

func TestSwapRollbackWindow(t *testing.T) {
	tests := []struct {
		name       string
		choice     choice
		window     time.Duration
		crashAfter time.Duration // 0: Stop after 1s instead
		wantFailed string
	}{
		{name: "exit within the default window", choice: choice{Image: imgV5, Fallback: imgV1}, crashAfter: time.Second, wantFailed: imgV5},
		{name: "exit after the default window", choice: choice{Image: imgV2, Fallback: imgV1}, crashAfter: 11 * time.Second},
		{name: "exit within a longer window", choice: choice{Image: imgV2, Fallback: imgV1}, window: 30 * time.Second, crashAfter: 20 * time.Second, wantFailed: imgV2},
		{name: "window off", choice: choice{Image: imgV5, Fallback: imgV1}, window: -1, crashAfter: time.Second},
		{name: "no fallback", choice: choice{Image: imgV5}, crashAfter: time.Second},
		{name: "stop within the window", choice: choice{Image: imgV2, Fallback: imgV1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := swapRuntime()
				f.logs = []string{"panic: boom"}
				if tt.crashAfter > 0 {
					f.addImage(tt.choice.Image, imageBehaviour{crashAfter: tt.crashAfter})
				}
				cfg, s, _ := swapConfig(t, f, tt.choice, choice{Image: imgV1})
				cfg.RollbackWindow = tt.window
				l := runLauncher(t, cfg)
				if err := l.Start(t.Context()); err != nil {
					t.Fatalf("Start: %v", err)
				}
				if tt.crashAfter > 0 {
					time.Sleep(tt.crashAfter)
				} else {
					time.Sleep(time.Second)
					if err := l.Stop(t.Context()); err != nil {
						t.Fatalf("Stop: %v", err)
					}
				}
				synctest.Wait()
				if got := l.State(); got != StateStopped {
					t.Fatalf("state: got %s; want %s", got, StateStopped)
				}
				fails := s.failures()
				if tt.wantFailed == "" {
					if len(fails) != 0 {
						t.Errorf("Failed calls: got %v; want none", fails)
					}
				} else {
					var ee *ExitError
					if len(fails) != 1 || fails[0].image != tt.wantFailed || !errors.As(fails[0].reason, &ee) {
						t.Fatalf("Failed calls: got %v; want one for %s with an *ExitError", fails, spec.ShortID(tt.wantFailed))
					}
					if ee.Code != 1 || !contains(ee.Logs, "panic: boom") || !strings.Contains(ee.Error(), "after becoming ready") {
						t.Errorf("reason: got %q (code %d); want code 1, the logs, after becoming ready", ee, ee.Code)
					}
				}
				// The next Start chooses anew.
				if err := l.Start(t.Context()); err != nil {
					t.Fatalf("next Start: %v", err)
				}
				if got := f.imageOf("svc"); got != imgV1 {
					t.Errorf("next container's image: got %s; want v1, the second choice", spec.ShortID(got))
				}
			})
		})
	}
}

func TestSwapCallsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := swapRuntime()
		f.addImage(imgV5, imageBehaviour{crashAfter: 100 * time.Millisecond})
		cfg, s, _ := swapConfig(t, f, choice{Image: imgV5, Fallback: imgV1}, choice{Image: imgV1})
		cfg.Ready = spec.Probe{Kind: spec.ProbeNone}
		s.readyDelay = 2 * time.Second // still telling Ready when the container exits
		l := runLauncher(t, cfg)
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		for l.State() != StateStopped {
			time.Sleep(time.Millisecond)
		}
		// The next start's Choose waits for Ready, then Failed.
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("second Start: %v", err)
		}
		synctest.Wait()
		want := []string{"choose", "ready " + imgV5, "failed " + imgV5, "choose", "ready " + imgV1}
		if got := s.history(); !equalStrings(got, want) {
			t.Errorf("swapper calls: got %q; want %q", got, want)
		}
	})
}

func TestShortImage(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: "sha256:" + imgV1, want: "111111111111"},
		{in: imgV2, want: "222222222222"},
		{in: "localhost/app:v2", want: "localhost/app:v2"},
		{in: "abc", want: "abc"},
	}
	for _, tt := range tests {
		if got := spec.ShortID(tt.in); got != tt.want {
			t.Errorf("spec.ShortID(%q): got %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestSwapStopDuringRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := swapRuntime()
		f.addImage(imgV2, imageBehaviour{neverReady: true})
		cfg, s, lines := swapConfig(t, f, choice{Image: imgV3, Fallback: imgV2})
		cfg.ReadyTimeout = time.Hour
		l := runLauncher(t, cfg)
		ctx, cancel := context.WithCancel(t.Context())
		started := make(chan error, 1)
		go func() { started <- l.Start(ctx) }()
		time.Sleep(time.Second) // v3 exited, probing the fallback
		cancel()
		if err := l.Stop(t.Context()); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		<-started
		// The start's own error, as its status line says it.
		line := lines.withPrefix("container svc not started: ")
		if !strings.Contains(line, "stop requested") || strings.Contains(line, ErrRollback.Error()) {
			t.Errorf("status: got %q; want the stop, not a failed rollback", line)
		}
		synctest.Wait()
		if got, want := s.history(), []string{"choose", "failed " + imgV3}; !equalStrings(got, want) {
			t.Errorf("swapper calls: got %q; want %q", got, want)
		}
		if f.running("svc") || l.State() != StateStopped {
			t.Errorf("after Stop: running %v, state %s; want not running, %s", f.running("svc"), l.State(), StateStopped)
		}
	})
}
