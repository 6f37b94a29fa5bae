package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// ProbeKind is a way to tell that a container is ready.
type ProbeKind string

const (
	// ProbeTCP: a connection to the first published tcp port stays open
	// (or yields bytes) for a moment.
	ProbeTCP ProbeKind = "tcp"
	// ProbeHTTP: GET Arg on the first published tcp port answers 2xx or
	// 3xx.
	ProbeHTTP ProbeKind = "http"
	// ProbeExec: the command Arg, run inside the container, exits 0.
	ProbeExec ProbeKind = "exec"
	// ProbeHealthcheck: the image's HEALTHCHECK, run through the API,
	// reports healthy.
	ProbeHealthcheck ProbeKind = "healthcheck"
	// ProbeNotify: the container sends READY=1 to $NOTIFY_SOCKET.
	ProbeNotify ProbeKind = "notify"
	// ProbeNone: ready as soon as the container started.
	ProbeNone ProbeKind = "none"
)

// Probe is a readiness check.
type Probe struct {
	Kind ProbeKind
	// Arg is the path for http ("/healthz") and the command for exec
	// ("/bin/check --quick", split on white space: no shell is involved).
	Arg string
}

// String returns the probe as ParseProbe reads it.
func (p Probe) String() string {
	if p.Arg == "" {
		return string(p.Kind)
	}
	return string(p.Kind) + ":" + p.Arg
}

const validProbes = `valid probes are "tcp", "http:/PATH", "exec:COMMAND", "healthcheck", "notify", "none"`

// ParseProbe parses a --ready value: "tcp", "http:/PATH", "exec:COMMAND",
// "healthcheck", "notify" or "none".
func ParseProbe(s string) (Probe, error) {
	kind, arg, _ := strings.Cut(s, ":")
	p := Probe{Kind: ProbeKind(kind), Arg: arg}
	if strings.Contains(s, ":") && arg == "" || p.validate() != nil {
		return Probe{}, fmt.Errorf("invalid --ready %q: %s", s, validProbes)
	}
	return p, nil
}

// validate checks p is well formed. The zero Probe is not: Config applies
// its default first.
func (p Probe) validate() error {
	ok := false
	switch p.Kind {
	case ProbeTCP, ProbeHealthcheck, ProbeNotify, ProbeNone:
		ok = p.Arg == ""
	case ProbeHTTP:
		ok = strings.HasPrefix(p.Arg, "/") && !strings.ContainsAny(p.Arg, " \t\r\n")
	case ProbeExec:
		ok = len(strings.Fields(p.Arg)) > 0
	}
	if !ok {
		return fmt.Errorf("invalid probe %q: %s", p.String(), validProbes)
	}
	return nil
}

// tcpSettle is how long a tcp probe's connection must stay open to count.
// Rootless Podman's port forwarder accepts connections even when nothing
// listens in the container, then closes them within a millisecond or so.
const tcpSettle = 20 * time.Millisecond

// probeTarget is what a probe attempt needs to know of a started container.
type probeTarget struct {
	id      string                   // container ID
	addrs   map[ContainerPort]string // host address of each published port
	tcpAddr string                   // host address of the first tcp port
	notify  *notifySocket            // open for the notify probe
	// refused is set once a tcp probe's connect was refused: then no
	// port forwarder answers for the container (rootful Podman's ports
	// are kernel NAT), so a connection that is accepted reached the
	// service itself and needs no tcpSettle.
	refused bool
}

// probeOnce runs one attempt of probe p: nil means ready.
func (l *Launcher) probeOnce(ctx context.Context, p Probe, t probeTarget) error {
	switch p.Kind {
	case ProbeTCP:
		settle := tcpSettle
		if t.refused {
			settle = 0
		}
		return probeTCP(ctx, l.dial, t.tcpAddr, settle)
	case ProbeHTTP:
		return probeHTTP(ctx, l.http, t.tcpAddr, p.Arg)
	case ProbeExec:
		code, out, err := l.rt.Exec(ctx, t.id, strings.Fields(p.Arg))
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("exited with code %d: %s", code, trimOutput(out))
		}
		return nil
	case ProbeHealthcheck:
		status, err := l.rt.HealthCheck(ctx, t.id)
		if err != nil {
			return err
		}
		if status != "healthy" {
			return fmt.Errorf("healthcheck status %q", status)
		}
		return nil
	case ProbeNotify:
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
