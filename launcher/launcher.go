package launcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// callTimeout bounds each ordinary call into the runtime (inspect, create,
// start, exec, logs). Pulls, stops and removals have their own.
const callTimeout = 30 * time.Second

// errStopRequested is the cause of a start cancelled by Stop.
var errStopRequested = errors.New("stop requested")

// Launcher runs one container on demand: Start makes it ready, sharing one
// start among concurrent callers; Stop stops it, keeping it for a fast next
// start. It satisfies proxy.Backend. Its methods are safe for concurrent use.
type Launcher struct {
	cfg   Config
	spec  ContainerSpec
	probe spec.Probe
	rt    Runtime
	log   *slog.Logger
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
	http  *http.Client

	// renamedGone: no container of the service's earlier name is left
	// (see removeRenamed). Read and set by starts, one at a time.
	renamedGone bool
	// warnedListening: the fall back from the listening probe has been
	// logged. Read and set by starts, one at a time.
	warnedListening bool

	wg      sync.WaitGroup // start and watch goroutines, waited for by Run
	running chan struct{}  // closed once Run has begun

	mu          sync.Mutex
	runCtx      context.Context // Run's; starts and watchers run under it
	closed      bool            // Run is returning: start nothing more
	state       State
	gen         uint64                  // counts starts; tags each start's exit watcher
	call        *startCall              // the start of generation gen, in progress or ended
	cancelStart context.CancelCauseFunc // cancels the start of generation gen
	stopDone    chan struct{}           // closed when the stop in progress ends
	id          string                  // ID of the container last started
	watch       *exitWatch              // its exit watcher
	addrs       map[string]string       // route → "127.0.0.1:PORT", while ready
	readyAt     time.Time
	coldStart   time.Duration
	failures    int       // deaths since the container last stayed up, for backoff
	lastFailure time.Time // when the last of those happened
	trialImage  string    // image ID the ready container runs on trial (see startResult.trial), or ""
	// swapDone is closed when the last Swapper call made outside a start
	// (Ready, or Failed from the exit watcher) has returned; nil if none.
	// Each such call waits for the one before, and a start waits for the
	// last before it calls Choose: Swapper calls never overlap.
	swapDone chan struct{}
}

// New checks cfg and returns a launcher in state stopped. It does not
// contact the runtime; call Run before or alongside Start.
func New(cfg Config) (*Launcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring launcher: %w", err)
	}
	if cfg.Runtime == nil {
		return nil, errors.New("configuring launcher: missing runtime")
	}
	// Keep a copy the caller cannot change under us.
	cfg.Command = slices.Clone(cfg.Command)
	cfg.Options = slices.Clone(cfg.Options)
	cfg.Ports = slices.Clone(cfg.Ports)
	cfg.Env = slices.Clone(cfg.Env)
	cfg.Volumes = slices.Clone(cfg.Volumes)
	cfg.Labels = maps.Clone(cfg.Labels)
	l := &Launcher{
		cfg:     cfg,
		probe:   cfg.ready(),
		rt:      cfg.Runtime,
		log:     cfg.logger().With("service", cfg.Name),
		dial:    cfg.dialContext(),
		running: make(chan struct{}),
		state:   StateStopped,
	}
	l.spec = cfg.ContainerSpec()
	l.http = newProbeClient(l.dial)
	return l, nil
}

// Run owns the launcher's lifetime: starts and the exit watcher run under
// ctx. It returns nil once ctx is done and those goroutines have finished.
// Run does not stop the container; call Stop for that.
func (l *Launcher) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.runCtx != nil {
		l.mu.Unlock()
		return errors.New("running launcher: Run called twice")
	}
	l.runCtx = ctx
	close(l.running)
	l.mu.Unlock()

	<-ctx.Done()
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.wg.Wait()
	return nil
}

// State returns the launcher's state.
func (l *Launcher) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// Ready reports whether the container is ready now, without waiting: a
// Start would return nil at once.
func (l *Launcher) Ready() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state == StateReady
}

// LastColdStart returns how long the last successful start took, from
// stopped to ready (pull and probe included, crash-loop delay excluded),
// or zero if there was none.
func (l *Launcher) LastColdStart() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.coldStart
}

// Addr returns "127.0.0.1:PORT", the host address published for route's
// container port. It fails for an unknown route or when the container is
// not ready.
func (l *Launcher) Addr(route string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.hasRoute(route) {
		return "", fmt.Errorf("finding address of route %q: unknown route", route)
	}
	if l.state != StateReady {
		return "", fmt.Errorf("finding address of route %q: container %q is %s", route, l.cfg.Name, l.state)
	}
	return l.addrs[route], nil
}

func (l *Launcher) hasRoute(route string) bool {
	for _, p := range l.cfg.Ports {
		if p.Route == route {
			return true
		}
	}
	return false
}

// Start makes the container ready: it returns nil at once if it is, and
// otherwise starts it, or joins the start in progress, and waits for it.
// The start runs under Run's context: a caller whose ctx ends stops
// waiting, but the start goes on for the others. A Start during a Stop
// starts the container again once the stop has finished; so does a Start
// whose start Stop cancelled, if its ctx is still alive.
func (l *Launcher) Start(ctx context.Context) error {
	l.mu.Lock()
	if l.state == StateReady {
		l.mu.Unlock()
		return nil
	}
	l.mu.Unlock()

	select {
	case <-l.running:
	case <-ctx.Done():
		return fmt.Errorf("starting container %q: waiting for the launcher to run: %w", l.cfg.Name, context.Cause(ctx))
	}
	for {
		l.mu.Lock()
		switch l.state {
		case StateReady:
			l.mu.Unlock()
			return nil
		case StateStopping:
			done := l.stopDone
			l.mu.Unlock()
			select {
			case <-done:
				continue
			case <-ctx.Done():
				return fmt.Errorf("starting container %q: waiting for it to stop: %w", l.cfg.Name, context.Cause(ctx))
			}
		case StateStopped:
			if l.closed {
				l.mu.Unlock()
				return fmt.Errorf("starting container %q: %w", l.cfg.Name, ErrClosed)
			}
			l.beginStart()
		}
		// The start this caller joins: its own, whatever starts after.
		call := l.call
		l.mu.Unlock()
		select {
		case <-call.done:
			if errors.Is(call.err, errStopRequested) && ctx.Err() == nil {
				// Stop cancelled the start this caller joined, not
				// the caller's wish: serve it with the next start.
				continue
			}
			return call.err
		case <-ctx.Done():
			return fmt.Errorf("starting container %q: %w", l.cfg.Name, context.Cause(ctx))
		}
	}
}

// startCall is one start, shared by every caller that waits for it. Each
// start has its own, so a caller always gets the result of the start it
// joined, never of one begun later.
type startCall struct {
	done chan struct{} // closed when the start has ended
	err  error         // its result, set before done is closed
}

// beginStart moves from stopped to starting and begins the start of a new
// generation, in a goroutine of its own. l.mu is held.
func (l *Launcher) beginStart() {
	l.gen++
	ctx, cancel := context.WithCancelCause(l.runCtx)
	call := &startCall{done: make(chan struct{})}
	l.call = call
	l.cancelStart = cancel
	l.wg.Add(1)
	go l.runStart(ctx, cancel, l.gen, l.backoffDelay(time.Now()), call)
	l.setState(StateStarting)
}

// runStart runs the start of generation gen and hands its result to every
// caller waiting on call.
func (l *Launcher) runStart(ctx context.Context, cancel context.CancelCauseFunc, gen uint64, delay time.Duration, call *startCall) {
	defer l.wg.Done()
	defer close(call.done)
	defer cancel(nil)
	call.err = l.startContainer(ctx, gen, delay)
}

// startContainer is the body of the start of generation gen.
func (l *Launcher) startContainer(ctx context.Context, gen uint64, delay time.Duration) error {
	err := waitBackoff(ctx, delay, func() {
		l.log.Warn("delaying start: container keeps dying", "delay", delay)
		l.status("delaying start of container %s by %s: it keeps dying", l.cfg.Name, delay.Round(time.Millisecond))
	})
	var r *startResult
	began := time.Now()
	if err == nil {
		err = l.acquireNeeds(ctx)
	}
	if err == nil {
		r, err = l.startChosen(ctx, gen)
	}
	if err = l.endStart(ctx, r, err); err != nil {
		l.releaseNeeds()
		if r != nil && r.trial {
			// It passed its probe, then exited before it was ready:
			// within its rollback window.
			l.swapperFailed(ctx, r.imageID, err)
		}
		l.status("container %s not started: %v", l.cfg.Name, err)
		err = fmt.Errorf("starting container %q: %w", l.cfg.Name, err)
		if l.cfg.OnStarted != nil {
			l.cfg.OnStarted(Started{Took: time.Since(began), Err: err})
		}
		return err
	}
	took := time.Since(r.began)
	l.log.Info("container ready", "container", spec.ShortID(r.id), "image", spec.ShortID(r.imageID), "took", took)
	if r.rolledBack {
		l.status("container %s ready in %s, rolled back to image %s", l.cfg.Name, took.Round(time.Millisecond), spec.ShortID(r.imageID))
	} else {
		l.status("container %s ready in %s", l.cfg.Name, took.Round(time.Millisecond))
	}
	if l.cfg.OnStarted != nil {
		l.cfg.OnStarted(Started{Took: took, RolledBack: r.rolledBack})
	}
	if r.readyDone != nil {
		// Told without holding up the waiting callers.
		l.wg.Add(1) // this start holds the group above zero
		go l.reportReady(ctx, r.imageID, r.coldStart, r.readyDone)
	}
	return nil
}

// endStart moves from starting to ready with r, or to stopped if err is
// not nil or the container exited after passing its probe. Only the start
// in progress leaves the starting state, so no generation check is needed.
func (l *Launcher) endStart(ctx context.Context, r *startResult, err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		select {
		case <-r.watch.done:
			err = &ExitError{Name: l.cfg.Name, Code: r.watch.code}
		default:
		}
	}
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, ErrNoPodman) && !errors.Is(err, errChoosing) {
			// Cancellation by Stop or by Run's end, an unreachable
			// Podman API and a Swapper that could not choose are not
			// the container's fault, and the next connection should
			// try again at once; anything else counts for the backoff.
			l.noteFailure(time.Now())
		}
		l.setState(StateStopped)
		return err
	}
	l.id = r.id
	l.watch = r.watch
	l.addrs = r.addrs
	l.readyAt = time.Now()
	l.coldStart = l.readyAt.Sub(r.began)
	r.coldStart = l.coldStart
	l.trialImage = ""
	if r.trial {
		l.trialImage = r.imageID
	}
	if r.readyDone != nil {
		l.swapDone = r.readyDone
	}
	l.setState(StateReady)
	return nil
}

// Stop stops the container, keeping it for a fast next start. A start in
// progress is cancelled instead, and Stop returns once it has ended (its
// waiters still waiting begin the next start). Once begun, the stop
// completes even if ctx ends, bounded by StopTimeout plus a margin; ctx
// bounds only the waiting for another start or stop to end. If the stop
// fails and the container still runs, the state stays ready, so that the
// next Stop tries again.
func (l *Launcher) Stop(ctx context.Context) error { return l.halt(ctx, false) }

// Idle does what Config.IdleAction says to the idle container: Stop, or
// pause it (as Stop does otherwise). The next start, by this launcher or
// the next process's, thaws a paused container. Where the engine cannot
// pause (rootless Podman on cgroups v1), Idle stops the container and
// logs why.
func (l *Launcher) Idle(ctx context.Context) error {
	return l.halt(ctx, l.cfg.IdleAction == spec.IdlePause)
}

// halt is Stop, pausing the container instead with pause.
func (l *Launcher) halt(ctx context.Context, pause bool) error {
	for {
		l.mu.Lock()
		switch l.state {
		case StateStopped:
			l.mu.Unlock()
			return nil
		case StateStarting:
			l.cancelStart(errStopRequested)
			call := l.call
			l.mu.Unlock()
			select {
			case <-call.done:
				if call.err == nil {
					continue // ready before the cancel: stop it
				}
				// The start left nothing running. A start begun
				// since, by a caller that still waits, is not ours
				// to cancel: Stop would chase it forever.
				return nil
			case <-ctx.Done():
				return fmt.Errorf("stopping container %q: waiting for its start to end: %w", l.cfg.Name, context.Cause(ctx))
			}
		case StateStopping:
			done := l.stopDone
			l.mu.Unlock()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return fmt.Errorf("stopping container %q: waiting for the stop in progress: %w", l.cfg.Name, context.Cause(ctx))
			}
		case StateReady:
			id := l.id
			l.stopDone = make(chan struct{})
			l.setState(StateStopping)
			l.mu.Unlock()

			paused := pause && l.pauseContainer(ctx, id)
			var err error
			if !paused {
				l.status("stopping container %s", l.cfg.Name)
				err = l.stopContainer(ctx, id)
			}

			l.mu.Lock()
			if err != nil && !l.watch.exited() {
				// Still running, as far as we know: stay ready, so
				// the next Stop tries again. The exit watcher moves
				// on to stopped if it exits after all.
				l.setState(StateReady)
				close(l.stopDone)
				l.mu.Unlock()
				return fmt.Errorf("stopping container %q: %w", l.cfg.Name, err)
			}
			if time.Since(l.readyAt) >= stableAfter {
				l.failures = 0
			}
			l.setState(StateStopped)
			close(l.stopDone)
			l.mu.Unlock()
			if err != nil {
				// It exited all the same: the stop is done.
				l.log.Debug("stopping container: exited despite the error", "err", err)
			}
			if paused {
				l.status("container %s paused", l.cfg.Name)
				return nil
			}
			l.releaseNeeds()
			l.status("container %s stopped", l.cfg.Name)
			return nil
		}
	}
}

// pauseContainer pauses the ready container id and ends its exit watch,
// and reports whether it did; if the engine cannot pause it, it logs why
// and reports false, for the caller to stop it instead.
func (l *Launcher) pauseContainer(ctx context.Context, id string) bool {
	l.status("pausing container %s", l.cfg.Name)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	if err := l.rt.Pause(pctx, id); err != nil {
		l.log.Warn("pausing container; stopping it instead", "container", spec.ShortID(id), "err", err)
		return false
	}
	l.mu.Lock()
	w := l.watch
	l.mu.Unlock()
	w.cancel() // a paused container does not exit: its exit is the next start's to watch
	return true
}

// stopContainer stops container id, even if ctx is cancelled.
func (l *Launcher) stopContainer(ctx context.Context, id string) error {
	timeout := l.cfg.stopTimeout()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout+callTimeout)
	defer cancel()
	return l.rt.Stop(sctx, id, timeout)
}

// setState is the one place the state changes. l.mu is held.
func (l *Launcher) setState(s State) {
	if l.state == s {
		return
	}
	l.log.Debug("state changed", "from", l.state, "to", s)
	l.state = s
}

// status sends a line to Config.Status.
func (l *Launcher) status(format string, args ...any) {
	if l.cfg.Status != nil {
		l.cfg.Status(fmt.Sprintf(format, args...))
	}
}
