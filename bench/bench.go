package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The contenders of the throughput and request-rate figures.
const (
	direct  = "direct"
	proxyd  = "proxyd"
	lazypod = "lazypod"
	// lazypodMetrics is lazypod with --metrics-file, measured against
	// lazypod alone for what counting costs the forwarding path.
	lazypodMetrics = "lazypod+metrics"
)

// The cold-start contenders.
const (
	coldLazypod    = "lazypod"           // socket-activated, --ready http:/
	coldLazypodTCP = "lazypod-tcp"       // socket-activated, --ready tcp
	coldLazypodDef = "lazypod-listening" // socket-activated, the default --ready listening
	coldAPI        = "by hand, API"
	coldCLI        = "by hand, CLI"
)

// The wrk modes.
var wrkModes = []struct {
	figure    string
	threads   int
	conns     int
	closeConn bool
}{
	{"wrk-keepalive", 2, 16, false},
	{"wrk-close", 2, 16, true},
	{"wrk-1conn", 1, 1, false},
}

const (
	wantBody    = "v1" // what the test server's GET / answers
	pollEvery   = time.Millisecond
	coldTimeout = 60 * time.Second
	heldCounts  = "1,100,1000"
	flowCount   = 1000
)

// sample is one measurement of one contender in one round.
type sample struct {
	Figure    string
	Contender string
	Round     int
	Value     float64
}

type footprint struct {
	Name        string
	Binary      string
	BinaryBytes int64
	Linked      string // what else it needs in memory
	IdleRSSKB   int
	IdleFDs     int
	Flows       int
	FlowsRSSKB  int
	FlowsFDs    int
}

type idleResult struct {
	Name             string
	Exited           bool
	ExitedAfter      time.Duration // after the last connection closed
	ContainerStopped bool
	ProcessesLeft    int
}

type machine struct {
	Cores   int
	CPU     string
	Kernel  string
	Go      string
	Podman  string
	Systemd string
	Wrk     string
	NoFile  uint64
	Date    string
}

// results is everything one run measured; it is saved as results.json.
type results struct {
	Machine   machine
	Command   string
	Rounds    int
	BulkBytes int64
	WrkTime   time.Duration
	Took      time.Duration
	Samples   []sample
	Held      []heldResult
	Footprint []footprint
	Idle      []idleResult
	Notes     []string
}

type bench struct {
	cfg   config
	pm    *podman
	procs procs
	res   results

	directWeb, directEcho   string // the container's published ports
	proxydWeb, proxydEcho   string
	proxydWebProc           *proc
	proxydEchoProc          *proc
	lazyWeb, lazyEcho       string
	lazyProc                *proc
	metricsWeb, metricsEcho string
	metricsProc             *proc
	handAddr                string // lzbench-hand's published 8080
}

func newBench(cfg config) (*bench, error) {
	pm, err := newPodman(cfg.PodmanURL)
	if err != nil {
		return nil, err
	}
	return &bench{cfg: cfg, pm: pm}, nil
}

var containers = []string{"lzbench-direct", "lzbench-warm", "lzbench-metrics", "lzbench-cold", "lzbench-coldtcp", "lzbench-coldlisten",
	"lzbench-hand", "lzbench-handrm", "lzbench-held", "lzbench-idle", "lzbench-wake-go", "lzbench-wake-jvm", "lzbench-dns"}

func (b *bench) logf(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

func (b *bench) path(name string) string { return filepath.Join(b.cfg.WorkDir, name) }

// cleanup ends every process and removes every container the bench made.
func (b *bench) cleanup() error {
	errs := []error{b.procs.stopAll()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, c := range containers {
		errs = append(errs, b.pm.remove(ctx, c))
	}
	return errors.Join(errs...)
}

func (b *bench) run(ctx context.Context) (*results, error) {
	start := time.Now()
	nofile, err := raiseNoFile()
	if err != nil {
		return nil, fmt.Errorf("raising RLIMIT_NOFILE: %w", err)
	}
	b.res = results{Machine: describeMachine(ctx, b.pm, nofile), Command: b.cfg.Command,
		Rounds: b.cfg.Rounds, BulkBytes: b.cfg.BulkBytes, WrkTime: b.cfg.WrkTime}
	if err := b.setup(ctx); err != nil {
		return nil, fmt.Errorf("setting up: %w", err)
	}
	for r := range b.cfg.Rounds {
		b.logf("round %d of %d", r+1, b.cfg.Rounds)
		if err := b.round(ctx, r); err != nil {
			return nil, fmt.Errorf("round %d: %w", r+1, err)
		}
	}
	if err := b.heldConnections(ctx); err != nil {
		return nil, fmt.Errorf("held connections: %w", err)
	}
	b.logf("the first DNS query through a cold start, %d times per probe", b.cfg.FirstQueries)
	if err := b.firstQueries(ctx); err != nil {
		return nil, err
	}
	if err := b.footprints(ctx); err != nil {
		return nil, fmt.Errorf("footprint: %w", err)
	}
	if err := b.idleExits(ctx); err != nil {
		return nil, fmt.Errorf("exit on idle: %w", err)
	}
	b.res.Took = time.Since(start).Round(time.Second)
	return &b.res, nil
}

// setup starts the direct container, proxyd and the warm lazypod in front of
// it, and makes the cold contenders' containers (stopped).
func (b *bench) setup(ctx context.Context) error {
	for _, c := range containers {
		if err := b.pm.remove(ctx, c); err != nil {
			return err
		}
	}
	if _, err := b.pm.cli(ctx, "run", "-d", "--name", "lzbench-direct",
		"-p", "127.0.0.1::8080", "-p", "127.0.0.1::9000", b.cfg.Image); err != nil {
		return err
	}
	var err error
	if b.directWeb, err = b.pm.hostAddr(ctx, "lzbench-direct", 8080); err != nil {
		return err
	}
	if b.directEcho, err = b.pm.hostAddr(ctx, "lzbench-direct", 9000); err != nil {
		return err
	}
	if err := pollFirstByte(ctx, b.directWeb, 10*time.Millisecond, coldTimeout); err != nil {
		return err
	}
	b.logf("direct: web %s, echo %s", b.directWeb, b.directEcho)

	if b.proxydWeb, b.proxydWebProc, err = b.startProxyd(ctx, "proxyd-web", b.directWeb, "--connections-max=4096"); err != nil {
		return err
	}
	if b.proxydEcho, b.proxydEchoProc, err = b.startProxyd(ctx, "proxyd-echo", b.directEcho, "--connections-max=4096"); err != nil {
		return err
	}
	b.logf("systemd-socket-proxyd: web %s, echo %s", b.proxydWeb, b.proxydEcho)

	webPort, echoPort, err := twoPorts()
	if err != nil {
		return err
	}
	b.lazyProc, err = b.startLazypod("lzbench-warm", []int{webPort, echoPort}, "http:/", "30m")
	if err != nil {
		return err
	}
	b.lazyWeb, b.lazyEcho = loop(webPort), loop(echoPort)
	if _, body, err := firstByte(ctx, b.lazyWeb); err != nil || body != wantBody {
		return fmt.Errorf("first request through the warm lazypod: body %q, %v (see %s)", body, err, b.lazyProc.log)
	}
	b.logf("lazypod (warm): web %s, echo %s", b.lazyWeb, b.lazyEcho)
	if webPort, echoPort, err = twoPorts(); err != nil {
		return err
	}
	if err := os.MkdirAll(b.path("metrics"), 0o755); err != nil {
		return err
	}
	b.metricsProc, err = b.startLazypod("lzbench-metrics", []int{webPort, echoPort}, "http:/", "30m",
		"--metrics-file", b.path("metrics/lzbench-metrics.prom"))
	if err != nil {
		return err
	}
	b.metricsWeb, b.metricsEcho = loop(webPort), loop(echoPort)
	if _, body, err := firstByte(ctx, b.metricsWeb); err != nil || body != wantBody {
		return fmt.Errorf("first request through the warm lazypod with metrics: body %q, %v (see %s)", body, err, b.metricsProc.log)
	}
	b.logf("lazypod with --metrics-file (warm): web %s, echo %s", b.metricsWeb, b.metricsEcho)

	// The cold contenders' containers, made by one activation each and
	// stopped by lazypod's SIGTERM.
	for _, c := range []struct{ name, probe string }{{"lzbench-cold", "http:/"}, {"lzbench-coldtcp", "tcp"}, {"lzbench-coldlisten", ""}, {"lzbench-held", "http:/"}} {
		if _, _, err := b.coldLazypod(ctx, c.name, c.probe, false); err != nil {
			return err
		}
	}
	if err := b.pm.create(ctx, "lzbench-hand", b.cfg.Image, 8080, 9000); err != nil {
		return err
	}
	b.handAddr, err = b.pm.hostAddr(ctx, "lzbench-hand", 8080)
	return err
}

func loop(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func twoPorts() (int, int, error) {
	a, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	for range 10 {
		c, err := freePort()
		if err != nil {
			return 0, 0, err
		}
		if c != a {
			return a, c, nil
		}
	}
	return 0, 0, errors.New("finding two free ports")
}

// startProxyd socket-activates systemd-socket-proxyd to target, and makes
// one connection so it runs.
func (b *bench) startProxyd(ctx context.Context, name, target string, extra ...string) (string, *proc, error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	args := activated([]int{port}, nil, append(append([]string{b.cfg.Proxyd}, extra...), target)...)
	p, err := b.procs.spawn(name, b.path(name+".log"), args...)
	if err != nil {
		return "", nil, err
	}
	if err := waitListening(port, 10*time.Second); err != nil {
		return "", nil, err
	}
	return loop(port), p, nil
}

// startLazypod socket-activates lazypod serve for service name on ports
// (web=8080, then echo=9000), and waits until the socket listens.
func (b *bench) startLazypod(name string, ports []int, probe, idle string, extra ...string) (*proc, error) {
	fdnames := []string{"web", "echo"}[:len(ports)]
	prog := []string{b.cfg.Lazypod, "serve", "--image", b.cfg.Image, "--name", name,
		"--port", "web=8080", "--podman-url", b.cfg.PodmanURL,
		"--state-dir", b.path("state-" + name), "--idle-timeout", idle, "--stop-timeout", "5s"}
	if probe != "" {
		prog = append(prog, "--ready", probe)
	}
	if len(ports) > 1 {
		prog = append(prog, "--port", "echo=9000")
	}
	prog = append(prog, extra...)
	p, err := b.procs.spawn(name, b.path(name+".log"), activated(ports, fdnames, prog...)...)
	if err != nil {
		return nil, err
	}
	if err := waitListening(ports[0], 10*time.Second); err != nil {
		return nil, err
	}
	return p, nil
}

func (b *bench) add(figure, contender string, round int, v float64) {
	b.res.Samples = append(b.res.Samples, sample{figure, contender, round, v})
}

// order returns the contenders xs in round r's order: the rotations of xs
// in rounds 0 to n-1, the same reversed in rounds n to 2n-1, and so on. So
// over 2n rounds each contender goes first twice and, for three
// contenders, runs right after each other one twice. That matters: a run
// of new connections leaves tens of thousands of sockets in TIME_WAIT for
// a minute, which slow down the connects of whatever runs next on the
// host; with rotation alone, lazypod ran right after systemd-socket-proxyd
// in two rounds of three and proxyd never after lazypod.
func order[T any](xs []T, r int) []T {
	n := len(xs)
	out := make([]T, 0, n)
	for i := range n {
		out = append(out, xs[(i+r)%n])
	}
	if (r/n)%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

func (b *bench) round(ctx context.Context, r int) error {
	type target struct{ name, web, echo string }
	targets := []target{{direct, b.directWeb, b.directEcho}, {proxyd, b.proxydWeb, b.proxydEcho}, {lazypod, b.lazyWeb, b.lazyEcho}}
	for _, streams := range []int{1, 8} {
		fig := fmt.Sprintf("bulk-%d", streams)
		for _, t := range order(targets, r) {
			took, err := echoBulk(ctx, t.echo, b.cfg.BulkBytes, streams)
			if err != nil {
				return fmt.Errorf("%s %s: %w", fig, t.name, err)
			}
			mibs := float64(b.cfg.BulkBytes) / (1 << 20) / took.Seconds()
			b.add(fig, t.name, r, mibs)
			b.logf("  %-14s %-8s %8.0f MiB/s each way", fig, t.name, mibs)
		}
	}
	// The proxies, whose own CPU each run measures.
	servers := map[string]*proc{proxyd: b.proxydWebProc, lazypod: b.lazyProc}
	for _, m := range wrkModes {
		for _, t := range order(targets, r) {
			var w wrkResult
			cpu, err := cpuDuring(servers[t.name], func() (err error) {
				w, err = runWrk(ctx, "http://"+t.web+"/", m.threads, m.conns, b.cfg.WrkTime, m.closeConn)
				return err
			})
			if err != nil {
				return fmt.Errorf("%s %s: %w", m.figure, t.name, err)
			}
			switch {
			case servers[t.name] == nil:
			case w.Requests == 0:
				b.res.Notes = append(b.res.Notes, fmt.Sprintf("round %d, %s, %s: no request count in wrk's output, no CPU figure", r+1, m.figure, t.name))
			default:
				b.add(m.figure+"-cpu", t.name, r, float64(cpu.Microseconds())/float64(w.Requests))
			}
			if w.Errors > 0 {
				b.res.Notes = append(b.res.Notes, fmt.Sprintf("round %d, %s, %s: wrk reported %d socket errors or non-2xx answers", r+1, m.figure, t.name, w.Errors))
			}
			b.add(m.figure+"-rps", t.name, r, w.RPS)
			b.add(m.figure+"-p50", t.name, r, w.P50)
			b.add(m.figure+"-p99", t.name, r, w.P99)
			b.logf("  %-14s %-8s %8.0f req/s  p50 %6.0f us  p99 %6.0f us", m.figure, t.name, w.RPS, w.P50, w.P99)
		}
	}
	if err := b.metricsCost(ctx, r); err != nil {
		return err
	}
	for _, removed := range []bool{false, true} {
		fig, conts := "cold-stopped", []string{coldLazypod, coldLazypodTCP, coldLazypodDef, coldAPI, coldCLI}
		if removed {
			fig, conts = "cold-removed", []string{coldLazypod, coldLazypodDef, coldAPI, coldCLI}
		}
		for _, c := range order(conts, r) {
			d, took, err := b.cold(ctx, c, removed)
			if err != nil {
				return fmt.Errorf("%s %s: %w", fig, c, err)
			}
			b.add(fig, c, r, ms(d))
			if took > 0 {
				b.add(fig+"-launcher", c, r, ms(took))
			}
			b.logf("  %-14s %-14s %7.1f ms", fig, c, ms(d))
		}
	}
	return b.wakes(ctx, r)
}

// metricsCost measures lazypod with and without --metrics-file side by
// side, in the modes where counting could cost most: new connections (a
// few atomic adds each) and bulk through 8 streams (an add per direction
// each), each contender's own CPU per request too.
func (b *bench) metricsCost(ctx context.Context, r int) error {
	type target struct {
		name, web, echo string
		p               *proc
	}
	targets := []target{{lazypod, b.lazyWeb, b.lazyEcho, b.lazyProc}, {lazypodMetrics, b.metricsWeb, b.metricsEcho, b.metricsProc}}
	for _, t := range order(targets, r) {
		var w wrkResult
		cpu, err := cpuDuring(t.p, func() (err error) {
			w, err = runWrk(ctx, "http://"+t.web+"/", 2, 16, b.cfg.WrkTime, true)
			return err
		})
		if err != nil {
			return fmt.Errorf("metrics-wrk-close %s: %w", t.name, err)
		}
		b.add("metrics-wrk-close-rps", t.name, r, w.RPS)
		if w.Requests > 0 {
			b.add("metrics-wrk-close-cpu", t.name, r, float64(cpu.Microseconds())/float64(w.Requests))
		}
		took, err := echoBulk(ctx, t.echo, b.cfg.BulkBytes, 8)
		if err != nil {
			return fmt.Errorf("metrics-bulk-8 %s: %w", t.name, err)
		}
		mibs := float64(b.cfg.BulkBytes) / (1 << 20) / took.Seconds()
		b.add("metrics-bulk-8", t.name, r, mibs)
		b.logf("  %-14s %-16s %8.0f req/s (new connections)  %6.0f MiB/s (8 streams)", "metrics", t.name, w.RPS, mibs)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cold measures one cold start of contender c, with its container stopped
// or, if removed, gone. For lazypod it also returns the launcher's own
// create/start/probe time from its log.
func (b *bench) cold(ctx context.Context, c string, removed bool) (time.Duration, time.Duration, error) {
	switch c {
	case coldLazypod:
		return b.coldLazypod(ctx, "lzbench-cold", "http:/", removed)
	case coldLazypodTCP:
		return b.coldLazypod(ctx, "lzbench-coldtcp", "tcp", removed)
	case coldLazypodDef:
		return b.coldLazypod(ctx, "lzbench-coldlisten", "", removed)
	}
	name := "lzbench-hand"
	if removed {
		name = "lzbench-handrm"
		if err := b.pm.remove(ctx, name); err != nil {
			return 0, 0, err
		}
	} else if err := b.ensureStopped(ctx, name); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	addr := b.handAddr
	var err error
	switch {
	case c == coldAPI && !removed:
		err = b.pm.start(ctx, name)
	case c == coldAPI && removed:
		if err = b.pm.create(ctx, name, b.cfg.Image, 8080, 9000); err == nil {
			if err = b.pm.start(ctx, name); err == nil {
				addr, err = b.pm.hostAddr(ctx, name, 8080)
			}
		}
	case c == coldCLI && !removed:
		_, err = b.pm.cli(ctx, "start", name)
	case c == coldCLI && removed:
		if _, err = b.pm.cli(ctx, "run", "-d", "--name", name, "-p", "127.0.0.1::8080", "-p", "127.0.0.1::9000", b.cfg.Image); err == nil {
			var out string
			if out, err = b.pm.cli(ctx, "port", name, "8080/tcp"); err == nil {
				addr = strings.TrimSpace(out)
			}
		}
	default:
		return 0, 0, fmt.Errorf("unknown cold contender %q", c)
	}
	if err != nil {
		return 0, 0, err
	}
	if err := pollFirstByte(ctx, addr, pollEvery, coldTimeout); err != nil {
		return 0, 0, err
	}
	took := time.Since(start)
	// Outside the timing: leave the machine quiet for the next contender.
	if removed {
		err = b.pm.remove(ctx, name)
	} else {
		err = b.pm.stop(ctx, name)
	}
	return took, 0, err
}

func (b *bench) ensureStopped(ctx context.Context, name string) error {
	running, err := b.pm.running(ctx, name)
	if err != nil || !running {
		return err
	}
	return b.pm.stop(ctx, name)
}

// coldLazypod socket-activates a fresh lazypod for name with its container
// stopped (or removed), measures connect to first byte of GET /, then ends
// lazypod with SIGTERM, which stops the container.
func (b *bench) coldLazypod(ctx context.Context, name, probe string, removed bool) (time.Duration, time.Duration, error) {
	if removed {
		if err := b.pm.remove(ctx, name); err != nil {
			return 0, 0, err
		}
	} else if err := b.ensureStopped(ctx, name); err != nil && !strings.Contains(err.Error(), "404") {
		return 0, 0, err
	}
	port, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	p, err := b.startLazypod(name, []int{port}, probe, "30m")
	if err != nil {
		return 0, 0, err
	}
	d, body, err := firstByte(ctx, loop(port))
	if err == nil && body != wantBody {
		err = fmt.Errorf("body %q; want %q", body, wantBody)
	}
	if termErr := p.terminate(60 * time.Second); err == nil {
		err = termErr
	}
	if err != nil {
		return 0, 0, fmt.Errorf("cold start of %s: %w (see %s)", name, err, p.log)
	}
	took, err := launcherTook(p.log)
	return d, took, err
}

// heldConnections releases 1, 100 and 1000 clients at once at a lazypod
// whose container is stopped.
func (b *bench) heldConnections(ctx context.Context) error {
	for _, s := range strings.Split(heldCounts, ",") {
		n, _ := strconv.Atoi(s)
		if err := b.ensureStopped(ctx, "lzbench-held"); err != nil {
			return err
		}
		port, err := freePort()
		if err != nil {
			return err
		}
		p, err := b.startLazypod("lzbench-held", []int{port}, "http:/", "30m")
		if err != nil {
			return err
		}
		h := held(ctx, loop(port), n, wantBody)
		if err := p.terminate(60 * time.Second); err != nil {
			return err
		}
		b.res.Held = append(b.res.Held, h)
		b.logf("held: %d clients during one cold start: %d answered, longest wait %s, median %s %s",
			n, h.Answered, h.Longest.Round(time.Millisecond), h.Median.Round(time.Millisecond), h.FirstErr)
	}
	return nil
}

// footprints measures the warm lazypod and the echo proxyd idle and with
// flowCount open flows.
func (b *bench) footprints(ctx context.Context) error {
	for _, f := range []struct {
		name, bin, addr string
		p               *proc
	}{{"lazypod", b.cfg.Lazypod, b.lazyEcho, b.lazyProc}, {"systemd-socket-proxyd", b.cfg.Proxyd, b.proxydEcho, b.proxydEchoProc}} {
		fp := footprint{Name: f.name, Binary: f.bin, Flows: flowCount, Linked: linkedLibs(f.bin)}
		st, err := os.Stat(f.bin)
		if err != nil {
			return err
		}
		fp.BinaryBytes = st.Size()
		pid := f.p.pid()
		// Let the last benchmark's flows close, and lazypod give memory
		// back a second after the last one did (proxy.QuietAfter).
		time.Sleep(2 * time.Second)
		if fp.IdleRSSKB, err = rssKB(pid); err != nil {
			return err
		}
		if fp.IdleFDs, err = fdCount(pid); err != nil {
			return err
		}
		conns, err := openFlows(ctx, f.addr, flowCount)
		if err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
		fp.FlowsRSSKB, err = rssKB(pid)
		if err == nil {
			fp.FlowsFDs, err = fdCount(pid)
		}
		closeAll(conns)
		if err != nil {
			return err
		}
		b.res.Footprint = append(b.res.Footprint, fp)
		b.logf("footprint %s (%s): idle %d kB RSS, %d fds; %d flows: %d kB, %d fds", f.name, exeName(pid),
			fp.IdleRSSKB, fp.IdleFDs, flowCount, fp.FlowsRSSKB, fp.FlowsFDs)
	}
	return nil
}

// idleExits activates lazypod (exit on idle, --idle-timeout 2s) and proxyd
// (--exit-idle-time=2s), makes one request each, and checks that the
// process exits and, for lazypod, that the container stops.
func (b *bench) idleExits(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	lp, err := b.startLazypod("lzbench-idle", []int{port}, "http:/", "2s")
	if err != nil {
		return err
	}
	pp, err := b.startProxydIdle(ctx)
	if err != nil {
		return err
	}
	for _, x := range []struct {
		name, addr string
		p          *proc
		container  string
	}{{"lazypod", loop(port), lp, "lzbench-idle"}, {"systemd-socket-proxyd", pp.addr, pp.p, ""}} {
		if _, body, err := firstByte(ctx, x.addr); err != nil || body != wantBody {
			return fmt.Errorf("%s: body %q, %v", x.name, body, err)
		}
		closed := time.Now()
		r := idleResult{Name: x.name, Exited: x.p.waitExit(60 * time.Second)}
		r.ExitedAfter = time.Since(closed).Round(10 * time.Millisecond)
		if !r.Exited {
			r.ProcessesLeft = 1
		}
		r.ContainerStopped = true
		if x.container != "" {
			running, err := b.pm.running(ctx, x.container)
			if err != nil {
				return err
			}
			r.ContainerStopped = !running
		}
		b.res.Idle = append(b.res.Idle, r)
		b.logf("exit on idle, %s: exited %v after %s, container stopped %v", x.name, r.Exited, r.ExitedAfter, r.ContainerStopped)
	}
	return nil
}

type started struct {
	addr string
	p    *proc
}

func (b *bench) startProxydIdle(ctx context.Context) (started, error) {
	addr, p, err := b.startProxyd(ctx, "proxyd-idle", b.directWeb, "--exit-idle-time=2s")
	return started{addr, p}, err
}
