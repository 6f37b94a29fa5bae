package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/lazypod/lazypod/launcher"
	"github.com/lazypod/lazypod/proxy"
	"github.com/lazypod/lazypod/updater"
	"golang.org/x/sync/errgroup"
)

const serveUsage = `usage: lazypod serve --image REF [flags] [-- COMMAND ARGS...]

Serves the sockets systemd passes (or --listen binds), starting the container
on the first connection and stopping it after --idle-timeout with no
connection open.

flags:
`

// serveOptions is everything `lazypod serve` was told, checked.
type serveOptions struct {
	image        string
	name         string
	command      []string
	ports        []portSpec
	listens      []listenSpec
	idleTimeout  time.Duration // 0: never
	udpTimeout   time.Duration
	exitOnIdle   *bool // nil: on when socket-activated
	ready        launcher.Probe
	readyTimeout time.Duration
	stopTimeout  time.Duration
	podmanURL    string
	stateDir     string
	env          []string
	volumes      []string
	labels       map[string]string
	memory       int64
	cpus         float64
	user         string
	network      string
	logLevel     slog.Level

	maxConns        int           // 0: the proxy's default, sized to the fd limit; -1: none
	flowIdleTimeout time.Duration // 0: never

	autoUpdate     updater.Policy
	authFile       string
	tlsVerify      *bool // nil: verify
	rollbackWindow time.Duration
	updateInterval time.Duration // 0: no checks by serve
}

// parseServe parses and checks the arguments of `lazypod serve`. Every
// error wraps errUsage and names the bad value.
func parseServe(args []string, stderr io.Writer) (*serveOptions, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		o                                            serveOptions
		ports, listens, envs, envFiles, vols, labels stringList
		idle, readyTimeout, stopTimeout, ready, mem  string
		cpus, logLevel, udpTimeout                   string
		exitOnIdle                                   bool
		autoUpdate, rollbackWindow, updateInterval   string
		maxConns, flowIdle                           string
		tlsVerify                                    tlsFlag
	)
	fs.StringVar(&o.image, "image", "", "container image `REF` to run (required)")
	fs.StringVar(&o.name, "name", "", "service and container `NAME` (default: the image's basename)")
	fs.Var(&ports, "port", "`[FDNAME=]PORT[/tcp|/udp]`: container port the socket FDNAME forwards to (repeatable)")
	fs.Var(&listens, "listen", "`[FDNAME=]ADDR`: bind HOST:PORT, unix:/PATH or udp:HOST:PORT when not socket-activated (repeatable)")
	fs.StringVar(&idle, "idle-timeout", "5m", "stop the container after this `DURATION` with no open connection (0: never)")
	fs.StringVar(&udpTimeout, "udp-timeout", "30s", "a UDP flow with no datagram either way for this `DURATION` is closed")
	fs.BoolVar(&exitOnIdle, "exit-on-idle", false, "exit after the idle stop (default: on when socket-activated, off with --listen)")
	fs.StringVar(&ready, "ready", "", "readiness `PROBE`: tcp, http:/PATH, exec:COMMAND, healthcheck, notify or none (default: tcp, or none when every port is UDP)")
	fs.StringVar(&readyTimeout, "ready-timeout", "60s", "how long connections wait for readiness (`DURATION`)")
	fs.StringVar(&stopTimeout, "stop-timeout", "10s", "grace before the container is killed on stop (`DURATION`)")
	fs.StringVar(&o.podmanURL, "podman-url", "", "Podman API `URI` (default: $CONTAINER_HOST, else the rootless socket, else /run/podman/podman.sock)")
	fs.StringVar(&o.stateDir, "state-dir", "", "state `DIR` (default: $STATE_DIRECTORY, else /var/lib/lazypod as root, else $XDG_STATE_HOME/lazypod)")
	fs.Var(&envs, "env", "container environment `KEY=VALUE` (repeatable)")
	fs.Var(&envFiles, "env-file", "read container environment from `FILE` (repeatable)")
	fs.Var(&vols, "volume", "`SRC:DST[:OPTS]` mount, as podman run -v (repeatable)")
	fs.Var(&labels, "label", "container label `KEY=VALUE` (repeatable)")
	fs.StringVar(&mem, "memory", "", "memory limit `SIZE`, e.g. 512m")
	fs.StringVar(&cpus, "cpus", "", "CPU limit, `N` CPUs, e.g. 0.5")
	fs.StringVar(&o.user, "user", "", "`USER[:GROUP]` to run the container's process as")
	fs.StringVar(&o.network, "network", "", "Podman `NETWORK` mode (default: Podman's)")
	fs.StringVar(&logLevel, "log-level", "info", "`LEVEL` of logging: debug, info, warn or error")
	fs.StringVar(&maxConns, "max-connections", "auto", "at most `N` open TCP connections; more wait in the kernel's listen backlog (auto: sized to the open-file limit; -1: no cap)")
	fs.StringVar(&flowIdle, "flow-idle-timeout", "0", "close a TCP connection that moves no byte either way for this `DURATION` (0: never)")
	fs.StringVar(&autoUpdate, "auto-update", "disabled", "update `POLICY`: registry, local or disabled")
	fs.StringVar(&o.authFile, "authfile", "", "registry credentials `FILE` for update checks and pulls (default: $REGISTRY_AUTH_FILE, else Podman's auth.json)")
	fs.Var(&tlsVerify, "tls-verify", "verify the registry's TLS certificate (default true; false also allows plain HTTP, for a local registry)")
	fs.StringVar(&rollbackWindow, "rollback-window", "10s", "a new image that exits within this `DURATION` of becoming ready is rolled back (0: only probe failures)")
	fs.StringVar(&updateInterval, "update-interval", "1h", "with --auto-update, check for an update after this `DURATION` idle, and again every DURATION (0: only lazypod update does)")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, serveUsage)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, usagef("%v: see lazypod serve --help", err)
	}
	o.command = fs.Args()
	if len(o.command) > 0 && !dashDashBefore(args, len(o.command)) {
		return nil, usagef("unexpected argument %q: put the container's command after --, e.g. lazypod serve --image IMG -- /bin/app --flag", o.command[0])
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "exit-on-idle" {
			o.exitOnIdle = &exitOnIdle
		}
	})

	var err error
	if o.image, err = parseImage(o.image); err != nil {
		return nil, err
	}
	if o.name == "" {
		o.name = defaultName(o.image)
	}
	if err := checkName(o.name); err != nil {
		return nil, err
	}
	for _, s := range ports {
		p, err := parsePort(s)
		if err != nil {
			return nil, err
		}
		o.ports = append(o.ports, p)
	}
	if len(o.ports) == 0 {
		return nil, usagef("missing --port: name the container port each socket forwards to, e.g. --port 8080")
	}
	for _, s := range listens {
		l, err := parseListen(s)
		if err != nil {
			return nil, err
		}
		o.listens = append(o.listens, l)
	}
	if o.idleTimeout, err = parseDuration("idle-timeout", idle); err != nil {
		return nil, err
	}
	if o.udpTimeout, err = parseDuration("udp-timeout", udpTimeout); err != nil {
		return nil, err
	}
	if o.udpTimeout == 0 {
		return nil, usagef("invalid --udp-timeout %q: must be more than 0, e.g. 30s", udpTimeout)
	}
	if ready != "" {
		if o.ready, err = launcher.ParseProbe(ready); err != nil {
			return nil, usagef("%v", err)
		}
	}
	if o.readyTimeout, err = parseDuration("ready-timeout", readyTimeout); err != nil {
		return nil, err
	}
	if o.readyTimeout == 0 {
		return nil, usagef("invalid --ready-timeout %q: must be more than 0, e.g. 60s", readyTimeout)
	}
	if o.stopTimeout, err = parseDuration("stop-timeout", stopTimeout); err != nil {
		return nil, err
	}
	if o.stopTimeout == 0 {
		return nil, usagef("invalid --stop-timeout %q: must be more than 0, e.g. 10s (Podman kills the container after it)", stopTimeout)
	}
	for _, s := range envFiles {
		env, err := readEnvFile(s)
		if err != nil {
			return nil, err
		}
		o.env = append(o.env, env...)
	}
	for _, s := range envs {
		if _, _, err := parseKeyValue("env", s); err != nil {
			return nil, err
		}
		o.env = append(o.env, s)
	}
	for _, s := range vols {
		v, err := parseVolume(s)
		if err != nil {
			return nil, err
		}
		o.volumes = append(o.volumes, v)
	}
	for _, s := range labels {
		k, v, err := parseKeyValue("label", s)
		if err != nil {
			return nil, err
		}
		if o.labels == nil {
			o.labels = map[string]string{}
		}
		o.labels[k] = v
	}
	if mem != "" {
		if o.memory, err = parseMemory(mem); err != nil {
			return nil, err
		}
	}
	if cpus != "" {
		if o.cpus, err = parseCPUs(cpus); err != nil {
			return nil, err
		}
	}
	if err := o.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return nil, usagef("invalid --log-level %q: valid levels are \"debug\", \"info\", \"warn\", \"error\"", logLevel)
	}
	if maxConns != "auto" {
		n, err := strconv.Atoi(maxConns)
		if err != nil || n == 0 || n < -1 {
			return nil, usagef("invalid --max-connections %q: want a number of connections from 1 up, auto, or -1 for no cap", maxConns)
		}
		o.maxConns = n
	}
	if o.flowIdleTimeout, err = parseDuration("flow-idle-timeout", flowIdle); err != nil {
		return nil, err
	}
	if o.autoUpdate, err = updater.ParsePolicy(autoUpdate); err != nil {
		return nil, usagef("%v", err)
	}
	if err := o.autoUpdate.CheckImage(o.image); err != nil {
		return nil, usagef("%v", err)
	}
	if tlsVerify.set {
		o.tlsVerify = &tlsVerify.value
	}
	if o.rollbackWindow, err = parseDuration("rollback-window", rollbackWindow); err != nil {
		return nil, err
	}
	if o.updateInterval, err = parseDuration("update-interval", updateInterval); err != nil {
		return nil, err
	}
	if o.authFile != "" {
		if _, err := os.Stat(o.authFile); err != nil {
			return nil, usagef("invalid --authfile %q: %v: pass a file podman login wrote, e.g. $XDG_RUNTIME_DIR/containers/auth.json", o.authFile, errors.Unwrap(err))
		}
	}
	if err := defaultLocations(&o.podmanURL, &o.stateDir); err != nil {
		return nil, err
	}
	return &o, nil
}

// defaultLocations checks --podman-url and fills in the defaults of
// --podman-url and --state-dir, for serve and the admin commands alike.
func defaultLocations(podmanURL, stateDir *string) error {
	if *podmanURL == "" {
		*podmanURL = launcher.DefaultPodmanURL()
	} else if err := checkPodmanURL(*podmanURL); err != nil {
		return err
	}
	if *stateDir == "" {
		*stateDir = defaultStateDir()
	}
	return nil
}

// dashDashBefore reports whether the last n arguments came after a "--".
func dashDashBefore(args []string, n int) bool {
	i := len(args) - n - 1
	return i >= 0 && args[i] == "--"
}

// defaultStateDir is $STATE_DIRECTORY (its first entry), else
// /var/lib/lazypod for root, else $XDG_STATE_HOME/lazypod.
func defaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return filepath.SplitList(d)[0]
	}
	if os.Geteuid() == 0 {
		return "/var/lib/lazypod"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "lazypod")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "state", "lazypod")
}

// defaultRuntimeDir is where short-lived sockets go: $RUNTIME_DIRECTORY,
// else /run/lazypod for root, else $XDG_RUNTIME_DIR/lazypod, else a
// directory under the state directory.
func defaultRuntimeDir(stateDir string) string {
	if d := os.Getenv("RUNTIME_DIRECTORY"); d != "" {
		return filepath.SplitList(d)[0]
	}
	if os.Geteuid() == 0 {
		return "/run/lazypod"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "lazypod")
	}
	return filepath.Join(stateDir, "run")
}

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

// serve runs `lazypod serve` until the idle exit or a signal.
func serve(ctx context.Context, o *serveOptions) error {
	base := newLogger(o.logLevel)
	logger := base.With("service", o.name) // the launcher adds the key itself
	sd := notifier{logger: logger}

	socks, err := inheritedSockets()
	if err != nil {
		return err
	}
	activated := socks != nil
	if !activated {
		if len(o.listens) == 0 {
			return errNoSockets
		}
		if socks, err = boundSockets(o.listens); err != nil {
			return err
		}
	} else if len(o.listens) > 0 {
		logger.Info("socket-activated: ignoring --listen", "sockets", socketNames(socks))
	}
	defer closeSockets(socks)
	routes, ports, err := matchPorts(socks, o.ports)
	if err != nil {
		return err
	}
	exitOnIdle := activated
	if o.exitOnIdle != nil {
		exitOnIdle = *o.exitOnIdle
	}
	if exitOnIdle && o.idleTimeout == 0 {
		logger.Info("--idle-timeout 0: the container is never stopped, so lazypod never exits on idle")
	}
	if exitOnIdle && o.idleTimeout > 0 && o.idleTimeout < minIdleExit {
		logger.Warn("raising --idle-timeout to the floor for exit-on-idle", "idle_timeout", o.idleTimeout, "floor", minIdleExit)
		o.idleTimeout = minIdleExit
	}

	if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var l *launcher.Launcher
	live := &liveWriter{dir: o.stateDir, name: o.name}
	status := func(line string) {
		sd.status(line)
		if l != nil {
			if err := live.write(l.State()); err != nil {
				logger.Debug("writing live state", "err", err)
			}
		}
	}
	cfg := launcher.Config{
		Name:           o.name,
		Image:          o.image,
		Command:        o.command,
		Ports:          ports,
		Env:            o.env,
		Volumes:        o.volumes,
		Labels:         o.labels,
		Memory:         o.memory,
		CPUs:           o.cpus,
		User:           o.user,
		Network:        o.network,
		Ready:          o.ready,
		ReadyTimeout:   o.readyTimeout,
		StopTimeout:    o.stopTimeout,
		RuntimeDir:     defaultRuntimeDir(o.stateDir),
		RollbackWindow: o.rollbackWindow,
		Logger:         base,
		Status:         status,
	}
	if o.rollbackWindow == 0 {
		cfg.RollbackWindow = -1 // none
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	regSet := registrySettings{authFile: o.authFile, tlsVerify: o.tlsVerify}
	pm := &lazyPodman{url: o.podmanURL, pull: launcher.PullOptions{AuthFile: regSet.authFile, SkipTLSVerify: regSet.skipTLSVerify()}}
	if _, err := pm.get(ctx); err != nil {
		// Not fatal: each start tries again and reports it to the
		// connections it closes. Exiting would make systemd restart
		// lazypod at every connection until it fails the socket.
		logger.Warn("Podman API not reachable yet: serving anyway, each start retries", "err", withHint(err))
	}
	svc := &service{
		name:   o.name,
		image:  o.image,
		policy: o.autoUpdate,
		store:  &updater.Store{Dir: o.stateDir, LockTimeout: stateLockTimeout},
		pm:     pm,
		log:    logger,
		set:    regSet,
	}
	cfg.Runtime = pm
	cfg.Swapper = svc
	if l, err = launcher.New(cfg); err != nil {
		return err
	}
	defer os.Remove(livePath(o.stateDir, o.name))
	idleTimeout := o.idleTimeout
	if idleTimeout == 0 {
		idleTimeout = -1 // never
	}
	// The launcher's own deadline (--ready-timeout for the probe) ends a
	// start and says why; the proxy's only bounds the wait on top of it,
	// so that held connections close with the launcher's reason. A swap
	// may need two probes: the new image's and, after a rollback, the
	// previous one's.
	readyWait := o.readyTimeout + readyGrace
	if o.autoUpdate != updater.PolicyDisabled {
		// The rollback: removing the failed container (up to
		// --stop-timeout), recording it, and the previous image's probe.
		readyWait += o.readyTimeout + o.stopTimeout + readyGrace
	}
	srv := &proxy.Server{
		Backend:         hinted{l},
		Routes:          routes,
		IdleTimeout:     idleTimeout,
		ExitOnIdle:      exitOnIdle,
		ReadyTimeout:    readyWait,
		DrainTimeout:    o.stopTimeout,
		StopTimeout:     o.stopTimeout + time.Minute,
		UDPFlowTimeout:  o.udpTimeout,
		MaxConnections:  o.maxConns,
		FlowIdleTimeout: o.flowIdleTimeout,
		Logger:          logger,
		Status:          status,
	}

	logger.Info("listening", "sockets", socketNames(socks), "image", o.image, "activated", activated,
		"idle_timeout", o.idleTimeout, "exit_on_idle", exitOnIdle, "procs", runtime.GOMAXPROCS(0))
	sd.ready("idle")

	// The launcher outlives the proxy: the proxy's last act is to stop the
	// container through it.
	lctx, lcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer lcancel()
	g, gctx := errgroup.WithContext(ctx)
	var lg errgroup.Group
	lg.Go(func() error { return l.Run(lctx) })
	g.Go(func() error { return sd.watchdog(gctx) })
	if o.autoUpdate != updater.PolicyDisabled && o.updateInterval > 0 {
		idle := func() bool { return srv.Flows() == 0 && l.State() == launcher.StateStopped }
		c := &updater.Checker{Registry: regSet.registry(), Images: podmanImages{pm: pm, set: regSet}}
		g.Go(func() error { return svc.idleChecks(gctx, o.updateInterval, idle, c) })
	}
	stopOnSignal := context.AfterFunc(ctx, sd.stopping)
	err = srv.Run(ctx)
	if stopOnSignal() { // not sent yet: the idle exit
		sd.stopping()
	}
	reason := "idle"
	if ctx.Err() != nil {
		reason = "signal"
	}
	stop() // ends the watchdog
	_ = g.Wait()
	lcancel()
	if lerr := lg.Wait(); err == nil {
		err = lerr
	}
	if err != nil {
		return err
	}
	logger.Info("exiting", "reason", reason)
	return nil
}
