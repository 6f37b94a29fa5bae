package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/lazypod/lazypod/internal/podman"
	"github.com/lazypod/lazypod/internal/spec"
	"github.com/lazypod/lazypod/internal/systemd"
	"github.com/lazypod/lazypod/launcher"
	"github.com/lazypod/lazypod/proxy"
	"github.com/lazypod/lazypod/updater"
	"golang.org/x/sync/errgroup"
)

// minIdleExit is the shortest idle timeout when lazypod exits on idle. By
// default systemd fails a service started more than 5 times within 10 s
// (StartLimitBurst=, StartLimitIntervalSec=), and its socket with it: an
// activation storm of short connections would take the service down. An
// activation that lasts at least 2 s keeps such a storm at 5 starts per
// 10 s at most.
const minIdleExit = 2 * time.Second

// readyGrace is how much longer a held connection waits than the
// launcher's readiness deadline: time for creating and starting the
// container, which that deadline does not count.
const readyGrace = 5 * time.Second

// stateLockTimeout bounds the wait for another lazypod process holding a
// service's state lock. Holders keep it only around a load and a save.
const stateLockTimeout = 10 * time.Second

// server is one `lazypod serve`: its sockets, and the launcher, proxy and
// update service it wires together.
type server struct {
	o         *spec.Serve
	podmanRun podman.Run // the container's podman run command line
	log       *slog.Logger
	sd        systemd.Notifier
	socks     []systemd.Socket
	activated bool
	store     *updater.Store
	svc       *updater.Service
	checker   *updater.Checker
	launcher  *launcher.Launcher
	proxy     *proxy.Server
	metrics   *metricsWriter // nil without --metrics-file
}

// serve runs `lazypod serve` until the idle exit or a signal.
func serve(ctx context.Context, o *spec.Serve, run podman.Run) error {
	s := &server{o: o, podmanRun: run}
	defer func() { systemd.CloseAll(s.socks) }()
	if err := s.build(); err != nil {
		return err
	}
	return s.run(ctx)
}

// build takes the sockets and wires the launcher, the update service and
// the proxy.
func (s *server) build() error {
	o := s.o
	base := systemd.Logger(o.LogLevel)
	s.log = base.With("service", o.Name) // the launcher adds the key itself
	s.sd = systemd.Notifier{Logger: s.log}
	s.metrics = newMetricsWriter(o.MetricsFile, o.Name, s.log)
	if o.AuthFile != "" {
		if _, err := os.Stat(o.AuthFile); err != nil {
			return usagef("invalid --authfile %q: %v: pass a file podman login wrote, e.g. $XDG_RUNTIME_DIR/containers/auth.json", o.AuthFile, errors.Unwrap(err))
		}
	}
	if err := s.takeSockets(); err != nil {
		return err
	}
	routes, ports, err := matchPorts(s.socks, o.Ports)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	s.store = &updater.Store{Dir: o.StateDir, LockTimeout: stateLockTimeout}
	pm := podman.New(o.PodmanURL).WithPull(podman.PullOptions{AuthFile: o.AuthFile, TLSVerify: o.TLSVerify})
	if err := pm.Connect(context.Background()); err != nil {
		// Not fatal: each start tries again and reports it to the
		// connections it closes. Exiting would make systemd restart
		// lazypod at every connection until it fails the socket.
		s.log.Warn("Podman API not reachable yet: serving anyway, each start retries", "err", withHint(err))
	}
	s.wireUpdates(pm)
	cfg := s.launcherConfig(ports, base)
	cfg.Runtime = pm
	if s.launcher, err = launcher.New(cfg); err != nil {
		return usagef("%v", err)
	}
	s.proxy = s.proxyServer(routes)
	s.metrics.watch(s.proxy)
	return nil
}

// takeSockets takes the sockets systemd passed, or binds --listen's.
func (s *server) takeSockets() error {
	socks, err := systemd.Inherited()
	if err != nil {
		return err
	}
	s.socks, s.activated = socks, socks != nil
	switch {
	case !s.activated && len(s.o.Listens) == 0:
		return errNoSockets
	case !s.activated:
		s.socks, err = systemd.Bind(s.o.Listens)
		return err
	case len(s.o.Listens) > 0:
		s.log.Info("socket-activated: ignoring --listen", "sockets", systemd.Names(s.socks))
	}
	return nil
}

// wireUpdates makes the update service over pm, which pulls with the
// service's registry settings: the launcher's Swapper, and with an update
// interval the idle checks' checker. With updates disabled its
// Choose does nothing, and Ready records the image and the cold start
// after the waiting clients were released.
func (s *server) wireUpdates(pm *podman.Client) {
	o := s.o
	s.svc = &updater.Service{
		Name: o.Name, Image: o.Image, Policy: o.AutoUpdate, AuthFile: o.AuthFile, TLSVerify: o.TLSVerify, Container: s.podmanRun.Name,
		Store: s.store, Images: pm, Pins: pm, Containers: pm, Logger: s.log, MetricsFile: o.MetricsFile,
	}
	if s.metrics != nil {
		s.svc.Results = s.metrics.updated
	}
	if o.AutoUpdate.Enabled() && o.UpdateInterval > 0 {
		s.checker = &updater.Checker{
			Registry: &updater.DockerRegistry{AuthFile: o.AuthFile, TLSVerify: o.TLSVerify},
			Images:   pm,
		}
	}
}

// launcherConfig is the launcher's configuration for o.
func (s *server) launcherConfig(ports []launcher.Port, base *slog.Logger) launcher.Config {
	o := s.o
	cfg := launcher.Config{
		Name: o.Name, ContainerName: s.podmanRun.Name, Image: s.podmanRun.Image, Options: s.podmanRun.Options, Command: s.podmanRun.Command, Ports: ports,
		Ready: o.Ready, ReadyTimeout: o.ReadyTimeout, StopTimeout: o.StopTimeout, IdleAction: o.IdleAction,
		RuntimeDir:     systemd.RuntimeDir(o.StateDir),
		RollbackWindow: o.RollbackWindow,
		Swapper:        s.svc,
		Logger:         base,
		Status:         s.status,
		OnStarted: func(st launcher.Started) {
			if st.Err == nil {
				time.AfterFunc(trimDelay, s.trimMemory)
			}
			s.metrics.started(st)
		},
	}
	if o.RollbackWindow == 0 {
		cfg.RollbackWindow = -1 // none
	}
	if len(o.Needs) > 0 {
		cfg.Needs = &holds{paths: o.Needs, timeout: o.ReadyTimeout, log: s.log}
	}
	return cfg
}

// proxyServer is the proxy over routes, with the launcher as its backend.
func (s *server) proxyServer(routes []proxy.Route) *proxy.Server {
	o := s.o
	exitOnIdle := s.activated
	if o.ExitOnIdle != nil {
		exitOnIdle = *o.ExitOnIdle
	}
	idle := o.IdleTimeout
	switch {
	case idle == 0:
		idle = -1 // never
		if exitOnIdle {
			s.log.Info("--idle-timeout 0: the container is never stopped, so lazypod never exits on idle")
		}
	case exitOnIdle && idle < minIdleExit:
		s.log.Warn("raising --idle-timeout to the floor for exit-on-idle", "idle_timeout", idle, "floor", minIdleExit)
		idle = minIdleExit
	}
	// The launcher's own deadline (--ready-timeout for the probe) ends a
	// start and says why; the proxy's only bounds the wait on top of it,
	// so that held connections close with the launcher's reason. A swap
	// may need two probes: the new image's and, after a rollback, the
	// previous one's, after removing the failed container.
	readyWait := o.ReadyTimeout + readyGrace
	if o.AutoUpdate.Enabled() {
		readyWait += o.ReadyTimeout + o.StopTimeout + readyGrace
	}
	if len(o.Needs) > 0 { // the needed services' starts come first
		readyWait += o.ReadyTimeout
	}
	srv := &proxy.Server{
		Backend:         hinted{s.launcher},
		Routes:          routes,
		IdleTimeout:     idle,
		ExitOnIdle:      exitOnIdle,
		Quiet:           s.trimMemory,
		ReadyTimeout:    readyWait,
		DrainTimeout:    o.StopTimeout,
		StopTimeout:     o.StopTimeout + time.Minute,
		UDPFlowTimeout:  o.UDPTimeout,
		MaxConnections:  o.MaxConnections,
		FlowIdleTimeout: o.FlowIdleTimeout,
		Logger:          s.log,
		Status:          s.status,
	}
	srv.Heartbeat, srv.HeartbeatInterval = s.sd.Watchdog()
	return srv
}

// status tells systemd and other lazypod commands what the service does.
func (s *server) status(line string) {
	s.sd.Status(line)
	s.metrics.changed()
	if s.launcher == nil {
		return
	}
	if err := s.store.SetLive(s.o.Name, string(s.launcher.State())); err != nil {
		s.log.Debug("writing live state", "err", err)
	}
}

// run serves until the idle exit or a signal. The launcher outlives the
// proxy: the proxy's last act is to stop the container through it.
func (s *server) run(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	defer s.store.ClearLive(s.o.Name)
	s.log.Info("listening", "sockets", systemd.Names(s.socks), "image", s.o.Image, "activated", s.activated,
		"idle_timeout", s.o.IdleTimeout, "exit_on_idle", s.proxy.ExitOnIdle, "procs", runtime.GOMAXPROCS(0))
	s.sd.Ready("idle")
	if !s.activated {
		// With --listen, nothing waits: give back what start-up used.
		// (Socket-activated, a connection waits for the start.)
		time.AfterFunc(trimDelay, s.trimMemory)
	}

	lctx, lcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer lcancel()
	var lg, g errgroup.Group
	lg.Go(func() error { return s.launcher.Run(lctx) })
	gctx, gcancel := context.WithCancel(ctx)
	if s.metrics != nil {
		s.metrics.m.Activation()
		s.metrics.changed()
		g.Go(func() error { s.metrics.run(gctx); return nil })
		defer s.metrics.write(true) // after the container's stop
	}
	if s.checker != nil {
		idle := func() bool { return s.proxy.Flows() == 0 && s.launcher.State() == launcher.StateStopped }
		g.Go(func() error { return s.svc.IdleChecks(gctx, s.o.UpdateInterval, idle, s.checker) })
	}
	stopOnSignal := context.AfterFunc(ctx, s.sd.Stopping)
	err := s.proxy.Run(ctx)
	if stopOnSignal() { // not sent yet: the idle exit
		s.sd.Stopping()
	}
	reason := "idle"
	if ctx.Err() != nil {
		reason = "signal"
	}
	gcancel()
	_ = g.Wait()
	lcancel()
	err = errors.Join(err, lg.Wait())
	if err != nil {
		return err
	}
	s.log.Info("exiting", "reason", reason)
	return nil
}

// errNoSockets: neither systemd passed sockets nor --listen named any.
var errNoSockets = errors.New("no sockets passed by systemd (LISTEN_FDS unset)")

// matchPorts pairs every socket with the container port it forwards to and
// returns the proxy routes and launcher ports.
func matchPorts(socks []systemd.Socket, specs []spec.Port) ([]proxy.Route, []launcher.Port, error) {
	pairs, err := systemd.Routes(socks, specs)
	if err != nil {
		return nil, nil, err
	}
	var routes []proxy.Route
	var ports []launcher.Port
	for _, r := range pairs {
		routes = append(routes, proxy.Route{Name: r.Name, Listener: r.Socket.Listener, PacketConn: r.Socket.Packet, Hold: r.Hold})
		if !r.Hold {
			ports = appendPort(ports, launcher.Port{Route: r.Name, Port: r.Port.Port, Proto: r.Port.Proto})
		}
	}
	return routes, ports, nil
}

// appendPort adds p unless a port with the same route is there already
// (several sockets of one name share their container port).
func appendPort(ports []launcher.Port, p launcher.Port) []launcher.Port {
	for _, q := range ports {
		if q.Route == p.Route {
			return ports
		}
	}
	return append(ports, p)
}
