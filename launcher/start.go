package launcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// Probe loop timing: poll tightly at first, since cold-start latency is
// what people measure, then back off to probeMaxInterval.
const (
	probeMinInterval = 2 * time.Millisecond
	probeMaxInterval = 100 * time.Millisecond
	probeMaxAttempt  = 5 * time.Second // bound on one probe attempt
	// A local connect is accepted or refused at once; one that hangs
	// (a dropped SYN) is better retried on a fresh connection soon.
	tcpMaxAttempt = time.Second
	exitLogLines  = 10
)

// errReadyTimeout is the cause of a start that ran out of ReadyTimeout.
var errReadyTimeout = errors.New("ready timeout")

// startResult is a container that passed its probe.
type startResult struct {
	id      string
	addrs   map[string]string
	watch   *exitWatch
	began   time.Time
	imageID string // the image it runs

	// Set only with a Swapper:
	rolledBack bool          // the chosen image failed; this is its fallback
	trial      bool          // the chosen image, with a fallback: an exit within RollbackWindow fails it
	coldStart  time.Duration // set by endStart
	readyDone  chan struct{} // closed when Swapper.Ready has returned
}

// attempt is the image one try of a start runs.
type attempt struct {
	ref string // what to create the container from: Config.Image, or the image's ID
	id  string // the image's ID
	// disposable says to remove the container if the try fails, not just
	// stop it: its image is about to be rolled back from.
	disposable bool
	// inspected, if not nil, yields the service's container as inspected
	// while the image was resolved (inspectAhead), so the two calls to
	// the engine overlap; else ensureContainer inspects it.
	inspected <-chan inspection
}

// inspection is the answer to an Inspect of the service's container.
type inspection struct {
	info ContainerInfo
	ok   bool
	err  error
}

// inspectAhead inspects the service's container on a goroutine of its
// own, for ensureContainer to take the answer from.
func (l *Launcher) inspectAhead(ctx context.Context) <-chan inspection {
	ch := make(chan inspection, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		info, ok, err := l.rt.Inspect(cctx, l.cfg.container())
		ch <- inspection{info, ok, err}
	}()
	return ch
}

// start runs one try of a start: container, start, probe. It leaves no
// container running on failure; a disposable attempt's is removed.
func (l *Launcher) start(ctx context.Context, gen uint64, img attempt, began time.Time) (*startResult, error) {
	var err error
	var notify *notifySocket
	if l.probe.Kind == spec.ProbeNotify {
		// Made before the container: its bind mount needs the file.
		if notify, err = listenNotify(l.cfg.notifySocketPath()); err != nil {
			return nil, err
		}
		defer notify.Close()
	}
	info, err := l.ensureContainer(ctx, img)
	if err != nil {
		return nil, err
	}
	log := l.log.With("container", spec.ShortID(info.ID))

	rctx, cancel := context.WithTimeoutCause(ctx, l.cfg.readyTimeout(), errReadyTimeout)
	defer cancel()
	var w *exitWatch
	var known *ContainerInfo // what the probe needs, if inspect told it already
	if info.Running {
		log.Info("adopting running container")
		w = l.watchExit(gen, info.ID)
		known = &info
	} else {
		log.Debug("starting container")
		err := l.launch(rctx, info.ID)
		if err != nil && isAddrInUse(err) {
			// Podman chose the host ports when it created the
			// container; one was taken while it was stopped. A new
			// container gets new ones.
			log.Warn("recreating container: a host port is taken", "err", err)
			l.status("recreating container %s: a host port is taken", l.cfg.Name)
			var id string
			if id, err = l.recreate(rctx, info.ID, &img); err == nil {
				info.ID = id
				log = l.log.With("container", spec.ShortID(id))
				err = l.launch(rctx, id)
			}
		}
		if err != nil {
			l.cleanup(ctx, info.ID, nil, img.disposable)
			return nil, fmt.Errorf("launching container %s: %w", spec.ShortID(info.ID), causeOf(rctx, err))
		}
		w = l.watchExit(gen, info.ID)
	}

	t, err := l.target(rctx, info.ID, w, known)
	if err == nil {
		l.status("waiting for container %s to be ready (probe %s)", l.cfg.Name, t.probe)
		t.notify = notify
		err = l.waitReady(rctx, t, w)
	}
	if err != nil {
		l.cleanup(ctx, info.ID, w, img.disposable)
		return nil, err
	}
	addrs := make(map[string]string, len(l.cfg.Ports))
	for _, p := range l.cfg.Ports {
		addrs[p.Route] = t.addrs[ContainerPort{Port: p.Port, Proto: p.proto()}]
	}
	return &startResult{id: info.ID, addrs: addrs, watch: w, began: began, imageID: img.id}, nil
}

// launch starts container id, bounded by callTimeout.
func (l *Launcher) launch(ctx context.Context, id string) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return l.rt.Start(cctx, id)
}

// isAddrInUse reports whether err, as Podman words it, means a host port
// is taken.
func isAddrInUse(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "address already in use")
}

// recreate removes container id and creates it anew from image ref,
// returning the new ID.
func (l *Launcher) recreate(ctx context.Context, id string, img *attempt) (string, error) {
	if err := l.remove(ctx, id); err != nil {
		return "", err
	}
	return l.create(ctx, img)
}

// remove removes container id, stopping it first if it runs.
func (l *Launcher) remove(ctx context.Context, id string) error {
	timeout := l.cfg.stopTimeout()
	rctx, cancel := context.WithTimeout(ctx, timeout+callTimeout)
	defer cancel()
	if err := l.rt.Remove(rctx, id, timeout); err != nil {
		return fmt.Errorf("removing container %s: %w", spec.ShortID(id), causeOf(ctx, err))
	}
	return nil
}

// create creates the configured container from img (resolving what to
// create it from, if chosenImage left that open) and returns its ID. Its
// hash label stays the configured spec's: a container of another image
// differs in its image, not its settings.
func (l *Launcher) create(ctx context.Context, img *attempt) (string, error) {
	if err := l.resolveRef(ctx, img); err != nil {
		return "", err
	}
	l.log.Info("creating container", "image", spec.ShortID(img.ref))
	l.status("creating container %s", l.cfg.Name)
	spec := l.spec
	spec.Image = img.ref
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	id, err := l.rt.Create(cctx, spec)
	if err != nil {
		return "", fmt.Errorf("creating container: %w", causeOf(ctx, err))
	}
	return id, nil
}

// cleanup stops container id after a failed start, or removes it if
// remove is set, even if ctx was cancelled, and ends its watcher.
func (l *Launcher) cleanup(ctx context.Context, id string, w *exitWatch, remove bool) {
	if w != nil {
		defer w.cancel()
	}
	if remove {
		if w != nil {
			w.cancel() // its exit is no news
		}
		if err := l.remove(context.WithoutCancel(ctx), id); err != nil {
			l.log.Error("removing container after failed start", "container", spec.ShortID(id), "err", err)
		}
		return
	}
	if w != nil && w.exited() {
		return // exited by itself
	}
	if err := l.stopContainer(ctx, id); err != nil {
		l.log.Error("stopping container after failed start", "container", spec.ShortID(id), "err", err)
	}
}

// ensureImage returns the configured image, pulling it if local storage
// does not have it.
func (l *Launcher) ensureImage(ctx context.Context) (attempt, error) {
	id, err := l.pullImage(ctx)
	if err != nil {
		return attempt{}, err
	}
	return attempt{ref: l.cfg.Image, id: id}, nil
}

// pullImage returns the ID of the configured image, pulling it if local
// storage does not have it.
func (l *Launcher) pullImage(ctx context.Context) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	id, ok, err := l.rt.ImageID(cctx, l.cfg.Image)
	cancel()
	if err != nil {
		return "", fmt.Errorf("inspecting image %q: %w", l.cfg.Image, causeOf(ctx, err))
	}
	if ok {
		return id, nil
	}
	l.log.Info("pulling image", "image", l.cfg.Image)
	l.status("pulling %s", l.cfg.Image)
	pctx, cancel := context.WithTimeout(ctx, l.cfg.pullTimeout())
	defer cancel()
	if err := l.rt.Pull(pctx, l.cfg.Image); err != nil {
		return "", fmt.Errorf("pulling image %q: %w", l.cfg.Image, causeOf(ctx, err))
	}
	cctx, cancel = context.WithTimeout(ctx, callTimeout)
	defer cancel()
	id, ok, err = l.rt.ImageID(cctx, l.cfg.Image)
	if err != nil {
		return "", fmt.Errorf("inspecting image %q: %w", l.cfg.Image, causeOf(ctx, err))
	}
	if !ok {
		return "", fmt.Errorf("pulling image %q: %w: not in local storage after the pull", l.cfg.Image, ErrImageNotFound)
	}
	return id, nil
}

// ensureContainer returns the container to start: the existing one if it
// is lazypod's with the same settings and image, else a new one from img.
// An existing container of the same name that is not lazypod's is left
// alone.
func (l *Launcher) ensureContainer(ctx context.Context, img attempt) (ContainerInfo, error) {
	name := l.cfg.container()
	var in inspection
	if img.inspected != nil {
		in = <-img.inspected
	} else {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		in.info, in.ok, in.err = l.rt.Inspect(cctx, name)
		cancel()
	}
	info, ok, err := in.info, in.ok, in.err
	if err != nil {
		return ContainerInfo{}, fmt.Errorf("inspecting container: %w", causeOf(ctx, err))
	}
	if !ok {
		// Only before the container of the name is made: once it is,
		// a container of the earlier name is gone.
		if err := l.removeRenamed(ctx); err != nil {
			return ContainerInfo{}, err
		}
	}
	if ok {
		if info.Labels[LabelService] != l.cfg.Name {
			return ContainerInfo{}, fmt.Errorf("checking container %s: %w (it lacks the label %s=%s)", name, ErrNotOurs, LabelService, l.cfg.Name)
		}
		if info.Paused {
			// Paused at idle: thawed, it runs as it was, and what
			// follows treats it as any running container (a pending
			// image or changed settings replace it).
			l.log.Info("unpausing container", "container", spec.ShortID(info.ID))
			l.status("unpausing container %s", name)
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			err := l.rt.Unpause(cctx, info.ID)
			cancel()
			if err != nil {
				return ContainerInfo{}, fmt.Errorf("unpausing container %s: %w", spec.ShortID(info.ID), causeOf(ctx, err))
			}
			info.Paused, info.Running = false, true
		}
		reason := ""
		switch {
		case info.Labels[LabelHash] != l.spec.Labels[LabelHash]:
			reason = "settings changed"
		case info.ImageID != img.id:
			reason = "image changed"
		case info.Running && l.probe.Kind == spec.ProbeNotify:
			// Its READY=1 went to an earlier socket: restart it.
			if err := l.stopContainer(ctx, info.ID); err != nil {
				return ContainerInfo{}, fmt.Errorf("restarting container for the notify probe: %w", err)
			}
			info.Running = false
			return info, nil
		default:
			return info, nil
		}
		l.log.Info("recreating container", "container", spec.ShortID(info.ID), "reason", reason)
		l.status("recreating container %s: %s", name, reason)
		if err := l.remove(ctx, info.ID); err != nil {
			return ContainerInfo{}, fmt.Errorf("replacing outdated container: %w", err)
		}
	}
	id, err := l.create(ctx, &img)
	if err != nil {
		return ContainerInfo{}, err
	}
	return ContainerInfo{ID: id}, nil
}

// removeRenamed removes the service's container of an earlier name: one
// called Name, when ContainerName names the container now (a definition
// that lazypod before Quadlet's naming gave NAME, now systemd-NAME). Only
// a stopped container with the service's label is removed.
func (l *Launcher) removeRenamed(ctx context.Context) error {
	if l.cfg.container() == l.cfg.Name || l.renamedGone {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	info, ok, err := l.rt.Inspect(cctx, l.cfg.Name)
	cancel()
	if err != nil {
		return fmt.Errorf("inspecting container: %w", causeOf(ctx, err))
	}
	if ok && info.Labels[LabelService] == l.cfg.Name && !info.Running {
		l.log.Info("removing the service's container of its earlier name", "container", l.cfg.Name, "now", l.cfg.container())
		if err := l.remove(ctx, info.ID); err != nil {
			return fmt.Errorf("removing the container of the earlier name %s: %w", l.cfg.Name, err)
		}
	}
	l.renamedGone = true
	return nil
}

// exited returns the error of container id, which exited during its
// start: the watcher has, or will soon have, its code; code is the
// engine's, if ctx ends first.
func (l *Launcher) exited(ctx context.Context, id string, w *exitWatch, code int) error {
	select {
	case <-w.done:
		return l.exitError(ctx, id, w.code)
	case <-ctx.Done():
		return l.exitError(ctx, id, code)
	}
}

// target inspects the started container id for what the probes and Addr
// need: its host ports. known, if not nil, is the running container as
// inspected already (one adopted or thawed), and spares the call.
func (l *Launcher) target(ctx context.Context, id string, w *exitWatch, known *ContainerInfo) (probeTarget, error) {
	info, ok := ContainerInfo{}, false
	if known != nil {
		info, ok = *known, true
	} else {
		var err error
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		info, ok, err = l.rt.Inspect(cctx, id)
		cancel()
		if err != nil {
			return probeTarget{}, fmt.Errorf("inspecting started container: %w", causeOf(ctx, err))
		}
	}
	if !ok || !info.Running {
		return probeTarget{}, l.exited(ctx, id, w, info.ExitCode)
	}
	if l.probe.Kind == spec.ProbeHealthcheck && info.Health.Argv() == nil {
		return probeTarget{}, fmt.Errorf("probing with healthcheck: container of image %q has no health check: set HealthCmd= (podman run --health-cmd) or choose another probe", l.cfg.Image)
	}
	t := probeTarget{probe: l.probe, id: id, pid: info.PID, hostNetwork: info.HostNetwork,
		addrs: make(map[ContainerPort]string), health: info.Health}
	if t.probe.Kind == spec.ProbeListening {
		if err := socketTables(l.cfg.procDir(), info.PID, info.HostNetwork); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// No /proc/PID: the process exited since the inspect,
				// or lives in another pid namespace. Only the second
				// is a reason to probe otherwise.
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				again, ok, ierr := l.rt.Inspect(cctx, id)
				cancel()
				if ierr == nil && (!ok || !again.Running) {
					return probeTarget{}, l.exited(ctx, id, w, again.ExitCode)
				}
			}
			t.probe = l.cfg.fallback()
			if !l.warnedListening {
				l.warnedListening = true
				l.log.Warn("probing with "+t.probe.String()+" instead of listening", "reason", err)
			}
		}
	}
	for _, cp := range l.spec.Ports {
		hp, ok := info.HostPorts[cp]
		if info.HostNetwork {
			hp, ok = cp.Port, true // the host's own port
		}
		if !ok {
			return probeTarget{}, fmt.Errorf("reading published ports: container port %s has no host port", cp)
		}
		t.addrs[cp] = net.JoinHostPort("127.0.0.1", strconv.Itoa(int(hp)))
	}
	if p, ok := l.cfg.firstTCP(); ok {
		t.tcpAddr = t.addrs[ContainerPort{Port: p.Port, Proto: spec.ProtoTCP}]
	}
	return t, nil
}

// waitReady runs the probe until it passes, the container exits, or ctx
// (carrying ReadyTimeout) ends.
func (l *Launcher) waitReady(ctx context.Context, t probeTarget, w *exitWatch) error {
	p := t.probe
	if p.Kind == spec.ProbeNone {
		return nil
	}
	interval := probeMinInterval
	var last error
	var streak *healthStreak
	if p.Kind == spec.ProbeHealthcheck {
		streak = newHealthStreak(t.health, time.Now())
	}
	for attempt := 1; ; attempt++ {
		limit := probeMaxAttempt
		switch p.Kind {
		case spec.ProbeTCP:
			limit = tcpMaxAttempt
		case spec.ProbeNotify:
			limit = interval // the attempt itself waits for a message
		case spec.ProbeHealthcheck:
			limit = streak.timeout()
		}
		actx, cancel := context.WithTimeout(ctx, limit)
		err := l.probeOnce(actx, p, t)
		cancel()
		if errors.Is(err, syscall.ECONNREFUSED) {
			t.refused = true
		}
		if err == nil {
			l.log.Debug("probe passed", "probe", p.String(), "attempts", attempt)
			return nil
		}
		last = err
		if streak != nil && streak.failed(time.Now()) {
			return fmt.Errorf("probing with healthcheck: %w: %s; last: %v", ErrNotReady, streak, err)
		}
		wait := interval
		if p.Kind == spec.ProbeNotify {
			wait = 0
		}
		timer := time.NewTimer(wait)
		select {
		case <-w.done:
			timer.Stop()
			return l.exitError(ctx, t.id, w.code)
		case <-ctx.Done():
			timer.Stop()
			if context.Cause(ctx) == errReadyTimeout {
				return fmt.Errorf("probing with %s: %w within %s (%d attempts); last: %v",
					p, ErrNotReady, l.cfg.readyTimeout(), attempt, last)
			}
			return context.Cause(ctx)
		case <-timer.C:
		}
		interval = min(interval*3/2, probeMaxInterval)
	}
}

// exitError describes container id that exited with code while starting,
// with its last log lines.
func (l *Launcher) exitError(ctx context.Context, id string, code int) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	lines, err := l.rt.Logs(lctx, id, exitLogLines)
	if err != nil {
		l.log.Debug("reading logs of exited container", "container", spec.ShortID(id), "err", err)
	}
	return &ExitError{Name: l.cfg.Name, Code: code, Logs: lines}
}

// causeOf returns ctx's cause when ctx has ended, which explains err (a
// "context canceled" from deep in an API call) better than err does.
func causeOf(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		if c := context.Cause(ctx); c != nil && c != ctx.Err() {
			return fmt.Errorf("%w (%v)", c, err)
		}
	}
	return err
}
