package launcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// tcpSettle is how long a tcp probe's connection must stay open to count.
// Rootless Podman's port forwarder accepts connections even when nothing
// listens in the container, then closes them within a millisecond or so.
const tcpSettle = 20 * time.Millisecond

// probeTarget is what a probe attempt needs to know of a started container.
type probeTarget struct {
	probe   spec.Probe               // the probe to run: the configured one, or its fallback
	id      string                   // container ID
	pid     int                      // host pid of its first process (listening)
	addrs   map[ContainerPort]string // host address of each published port
	tcpAddr string                   // host address of the first tcp port
	notify  *notifySocket            // open for the notify probe
	health  *HealthCheck             // the container's health check, if any
	// hostNetwork is a container in the host's network namespace.
	hostNetwork bool
	// refused is set once a tcp probe's connect was refused: then no
	// port forwarder answers for the container (rootful Podman's ports
	// are kernel NAT), so a connection that is accepted reached the
	// service itself and needs no tcpSettle.
	refused bool
}

// probeOnce runs one attempt of probe p: nil means ready.
func (l *Launcher) probeOnce(ctx context.Context, p spec.Probe, t probeTarget) error {
	switch p.Kind {
	case spec.ProbeListening:
		missing, err := unbound(l.cfg.procDir(), t.pid, l.spec.Ports, t.hostNetwork)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return fmt.Errorf("not bound in the container: %s", portList(missing))
		}
		return nil
	case spec.ProbeTCP:
		settle := tcpSettle
		if t.refused {
			settle = 0
		}
		return probeTCP(ctx, l.dial, t.tcpAddr, settle)
	case spec.ProbeHTTP:
		return probeHTTP(ctx, l.http, t.tcpAddr, p.Arg)
	case spec.ProbeExec:
		code, out, err := l.rt.Exec(ctx, t.id, strings.Fields(p.Arg))
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("exited with code %d: %s", code, trimOutput(out))
		}
		return nil
	case spec.ProbeHealthcheck:
		// Run as Podman runs it, but not through Podman's own check: that
		// would count this fast polling in the container's health state.
		code, out, err := l.rt.Exec(ctx, t.id, t.health.Argv())
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("health check exited with code %d: %s", code, trimOutput(out))
		}
		return nil
	case spec.ProbeNotify:
		return t.notify.wait(ctx)
	default:
		return nil
	}
}

// probeTCP connects to addr. A connection that is still open after
// settle, or that yields a byte, means ready; one closed or reset at once
// means a port forwarder with nothing behind it. With settle zero, the
// connect alone means ready.
func probeTCP(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string, settle time.Duration) error {
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if settle <= 0 {
		return nil
	}
	if err := c.SetReadDeadline(time.Now().Add(settle)); err != nil {
		return err
	}
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	switch {
	case n > 0:
		return nil
	case errors.As(err, &ne) && ne.Timeout():
		return nil
	case errors.Is(err, io.EOF):
		return fmt.Errorf("connection to %s closed at once: nothing listening behind the port", addr)
	default:
		return fmt.Errorf("connection to %s: %w", addr, err)
	}
}

// probeHTTP gets path from addr: 2xx or 3xx means ready.
func probeHTTP(ctx context.Context, client *http.Client, addr, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}

// newProbeClient returns the http probe's client: no keep-alives (every
// attempt is a fresh connection), redirects not followed.
func newProbeClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:       dial,
			DisableKeepAlives: true,
			Proxy:             nil,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// trimOutput shortens command output for an error message.
func trimOutput(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		return "no output"
	}
	return s
}

// Podman's defaults for a health check's settings left at zero.
const (
	healthInterval = 30 * time.Second
	healthTimeout  = 30 * time.Second
	healthRetries  = 3
)

// healthStreak counts a health check's failures while a start polls it,
// the way Podman counts them when it runs the check every Interval: a
// failure before StartPeriod has passed does not count, and one counts
// only if it comes Interval or more after the last one counted. Retries
// counted failures make the start fail: the image is unhealthy.
type healthStreak struct {
	interval, startPeriod, checkTimeout time.Duration
	retries                             int
	start                               time.Time
	counted                             int
	last                                time.Time
}

func newHealthStreak(h *HealthCheck, start time.Time) *healthStreak {
	s := &healthStreak{interval: healthInterval, checkTimeout: healthTimeout, retries: healthRetries, start: start}
	if h != nil {
		s.startPeriod = h.StartPeriod
		s.interval = cmp.Or(h.Interval, s.interval)
		s.checkTimeout = cmp.Or(h.Timeout, s.checkTimeout)
		s.retries = cmp.Or(h.Retries, s.retries)
	}
	return s
}

// timeout bounds one run of the check.
func (s *healthStreak) timeout() time.Duration { return s.checkTimeout }

// failed counts a failure at now and reports whether the check has now
// failed Retries times in a row.
func (s *healthStreak) failed(now time.Time) bool {
	if now.Sub(s.start) < s.startPeriod {
		return false
	}
	if s.counted == 0 || now.Sub(s.last) >= s.interval {
		s.counted++
		s.last = now
	}
	return s.counted >= s.retries
}

func (s *healthStreak) String() string {
	return fmt.Sprintf("the health check failed %d times in a row, %s apart, after its start period of %s", s.counted, s.interval, s.startPeriod)
}
