package launcher

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// Defaults for the zero values of Config.
const (
	DefaultReadyTimeout = 60 * time.Second
	DefaultStopTimeout  = 10 * time.Second
	DefaultPullTimeout  = 10 * time.Minute
	// DefaultRollbackWindow is how long a container started from a newly
	// chosen image must stay up after becoming ready before an exit no
	// longer counts against its image.
	DefaultRollbackWindow = 10 * time.Second
)

// Labels the launcher puts on the containers it creates. User labels may not
// use the io.lazypod. prefix.
const (
	LabelService = "io.lazypod.service" // the service (container) name
	LabelHash    = "io.lazypod.hash"    // sha256 of the container's settings
)

// NotifyPath is where the notify probe's socket appears inside the
// container; NOTIFY_SOCKET is set to it.
const NotifyPath = "/run/lazypod/notify.sock"

// Port is a container port that flows arriving on a route are forwarded to.
type Port struct {
	// Route names the listener (systemd socket name) whose flows go to
	// this port. Routes are unique within a Config.
	Route string
	// Port is the port inside the container. Required.
	Port uint16
	// Proto is the port's transport. If empty, tcp.
	Proto spec.Protocol
}

func (p Port) proto() spec.Protocol {
	if p.Proto == "" {
		return spec.ProtoTCP
	}
	return p.Proto
}

// State is where a launcher is in its container's life.
type State string

const (
	StateStopped  State = "stopped"  // no container running (it may exist, stopped)
	StateStarting State = "starting" // creating, starting or probing the container
	StateReady    State = "ready"    // running and its probe passed
	StateStopping State = "stopping" // stopping the container
)

// Config describes one service's container and how to run it. Only Name,
// Image and Runtime are required.
type Config struct {
	// Name is the service's name, in logs and in the container's labels,
	// and the container's name unless ContainerName is set. Required.
	Name string
	// ContainerName is the container's name when it is not Name, as
	// Quadlet's ContainerName= (systemd-NAME by default) makes it.
	ContainerName string
	// Image is the image reference. Required. If it is not in local
	// storage, the first start pulls it.
	Image string
	// Command replaces the image's CMD, as in "podman run IMAGE COMMAND...".
	// If empty, the image's CMD.
	Command []string
	// Options are podman run options (--env A=1, --health-cmd ...), as
	// podman --remote run takes them: the Runtime gives them the meaning
	// Podman gives them, and applies the settings below over them. The
	// caller checks them (internal/podman's ParseRun).
	Options []string

	// Ports are the container ports published for each route, on
	// 127.0.0.1 at host ports the runtime chooses.
	Ports []Port

	// Env is the container's environment, KEY=VALUE each.
	Env []string
	// Volumes are mounted into the container: an absolute Source is a
	// bind mount of that host path, any other the name of a named volume.
	Volumes []spec.Volume
	// Labels are extra container labels. Keys may not start with
	// "io.lazypod.".
	Labels map[string]string
	// Memory is the memory limit in bytes. If zero, none.
	Memory int64
	// CPUs is the CPU limit in CPUs (1.5 = one and a half). If zero, none.
	CPUs float64
	// User is the user (and group) the container runs as, as in
	// "podman run --user". If empty, the image's.
	User string
	// Network is the network mode or network name, as in
	// "podman run --network". If empty, the runtime's default.
	Network string

	// Ready is how to tell the container is ready to take flows. The zero
	// value means listening; where the container's socket tables cannot
	// be read (see ProcDir), tcp if a tcp port is published, else none.
	Ready spec.Probe
	// ReadyTimeout is how long one start may take, from starting the
	// container to its probe passing. If zero, DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// StopTimeout is how long a container has to exit after SIGTERM
	// before it is killed. If zero, DefaultStopTimeout.
	StopTimeout time.Duration
	// IdleAction is what Idle does: stop the container, or pause it (it
	// keeps its memory, uses no CPU, and the next start only thaws it).
	// If empty, stop.
	IdleAction spec.IdleAction
	// PullTimeout is how long pulling a missing image may take. If zero,
	// DefaultPullTimeout.
	PullTimeout time.Duration
	// RuntimeDir is the host directory where the notify probe's socket is
	// made, as RuntimeDir/NAME.notify; it is made 0700 (created if missing).
	// Keep it short: a socket path has at most 107 bytes. Required only
	// for the notify probe.
	RuntimeDir string

	// ProcDir is where the host's proc file system is, for the listening
	// probe. If empty, /proc.
	ProcDir string

	// Runtime is the container engine: internal/podman's Client, or a
	// fake in tests. Required.
	Runtime Runtime
	// DialContext dials the published ports for the tcp and http probes.
	// If nil, a net.Dialer's.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives the launcher's logs. If nil, slog.Default().
	Logger *slog.Logger
	// Swapper chooses the image of each start from stopped and hears how
	// it went, which lets a new image be tried and rolled back from. If
	// nil, every start runs Image, pulled if missing.
	Swapper Swapper
	// RollbackWindow is how long a container from an image chosen with a
	// fallback must stay up after becoming ready; if it exits sooner, the
	// Swapper hears that its image failed. If zero, DefaultRollbackWindow.
	// If negative, none.
	RollbackWindow time.Duration

	// Status receives one line a person can read at each step of a
	// start or stop, such as "pulling IMAGE"; cmd/lazypod sends them to
	// systemd as STATUS=. If nil, none.
	Status func(line string)
	// Needs, if set, holds the services the container needs: Acquire at
	// the beginning of each start from stopped, before anything of the
	// container's (the start fails if it does), Release once the
	// container stopped or its start failed. A paused container still
	// holds them. If nil, none.
	Needs Needs

	// OnStarted, if set, is called at the end of each start from stopped:
	// once the waiting callers are released, or once the start failed. It
	// must not block.
	OnStarted func(Started)
}

// Started is how a start from stopped ended, for Config.OnStarted.
type Started struct {
	// Took is how long the start took, from its beginning (after any
	// backoff delay) to ready or to its failure, both attempts of a
	// rollback included.
	Took time.Duration
	// Err is why the start failed; nil if the container is ready.
	Err error
	// RolledBack is true if the image the Swapper chose failed and the
	// container runs its fallback.
	RolledBack bool
}

func (c *Config) readyTimeout() time.Duration {
	if c.ReadyTimeout == 0 {
		return DefaultReadyTimeout
	}
	return c.ReadyTimeout
}

func (c *Config) stopTimeout() time.Duration {
	if c.StopTimeout == 0 {
		return DefaultStopTimeout
	}
	return c.StopTimeout
}

func (c *Config) pullTimeout() time.Duration {
	if c.PullTimeout == 0 {
		return DefaultPullTimeout
	}
	return c.PullTimeout
}

func (c *Config) rollbackWindow() time.Duration {
	switch {
	case c.RollbackWindow == 0:
		return DefaultRollbackWindow
	case c.RollbackWindow < 0:
		return 0
	}
	return c.RollbackWindow
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

func (c *Config) dialContext() func(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.DialContext == nil {
		return (&net.Dialer{}).DialContext
	}
	return c.DialContext
}

// ready returns the probe to use, with the zero value's default applied.
func (c *Config) ready() spec.Probe {
	if c.Ready.Kind != "" {
		return c.Ready
	}
	return spec.Probe{Kind: spec.ProbeListening}
}

// fallback returns the probe to use instead of listening where the
// container's socket tables cannot be read: tcp if a tcp port is
// published, else none.
func (c *Config) fallback() spec.Probe {
	if _, ok := c.firstTCP(); ok {
		return spec.Probe{Kind: spec.ProbeTCP}
	}
	return spec.Probe{Kind: spec.ProbeNone}
}

// firstTCP returns the first published tcp port, which the tcp and http
// probes use.
func (c *Config) firstTCP() (Port, bool) {
	for _, p := range c.Ports {
		if p.proto() == spec.ProtoTCP {
			return p, true
		}
	}
	return Port{}, false
}

// container is the container's name.
func (c *Config) container() string {
	if c.ContainerName != "" {
		return c.ContainerName
	}
	return c.Name
}

// notifySocketPath is where the notify probe's socket is made on the host.
// procDir returns ProcDir with its default applied.
func (c *Config) procDir() string { return cmp.Or(c.ProcDir, "/proc") }

func (c *Config) notifySocketPath() string {
	return filepath.Join(c.RuntimeDir, c.Name+".notify")
}

// maxSocketPath is the longest path a unix socket address holds on Linux.
const maxSocketPath = 107

// Validate checks c and returns the first problem. It checks everything
// New does except Runtime, so that a caller can check its input before
// it contacts Podman.
func (c Config) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("missing container name")
	}
	if err := spec.CheckName(c.Name); err != nil {
		return fmt.Errorf("invalid service name %q: %w", c.Name, err)
	}
	if err := spec.CheckName(c.container()); err != nil {
		return fmt.Errorf("invalid container name %q: %w", c.container(), err)
	}
	if c.Image == "" {
		return fmt.Errorf("missing image")
	}
	routes := make(map[string]bool)
	for _, p := range c.Ports {
		if routes[p.Route] {
			return fmt.Errorf("duplicate route %q", p.Route)
		}
		routes[p.Route] = true
		if p.Port == 0 {
			return fmt.Errorf("route %q: missing container port", p.Route)
		}
		if pr := p.proto(); pr != spec.ProtoTCP && pr != spec.ProtoUDP {
			return fmt.Errorf("route %q: invalid protocol %q: valid protocols are %q, %q", p.Route, p.Proto, spec.ProtoTCP, spec.ProtoUDP)
		}
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("invalid env %q: want KEY=VALUE", kv)
		}
	}
	for _, v := range c.Volumes {
		if _, err := spec.ParseVolume(v.String()); err != nil {
			return fmt.Errorf("invalid volume %q: %w", v, err)
		}
	}
	for k, v := range c.Labels {
		if err := spec.CheckLabel(k + "=" + v); err != nil {
			return fmt.Errorf("invalid label: %w", err)
		}
	}
	if c.Memory < 0 {
		return fmt.Errorf("invalid memory limit %d: must not be negative", c.Memory)
	}
	if c.CPUs < 0 || math.IsNaN(c.CPUs) || math.IsInf(c.CPUs, 0) {
		return fmt.Errorf("invalid cpu limit %g: must not be negative", c.CPUs)
	}
	if c.ReadyTimeout < 0 || c.StopTimeout < 0 || c.PullTimeout < 0 {
		return fmt.Errorf("invalid timeout: must not be negative")
	}
	p := c.ready()
	if err := p.Check(); err != nil {
		return fmt.Errorf("invalid probe %q: %w", p, err)
	}
	switch p.Kind {
	case spec.ProbeTCP, spec.ProbeHTTP:
		if _, ok := c.firstTCP(); !ok {
			return fmt.Errorf("probe %s needs a tcp port: publish one or choose another probe", p)
		}
	case spec.ProbeNotify:
		if c.RuntimeDir == "" {
			return fmt.Errorf("probe notify needs a runtime directory for its socket")
		}
		if path := c.notifySocketPath(); len(path) > maxSocketPath {
			return fmt.Errorf("notify socket path %s is longer than %d bytes: set RuntimeDirectory= / $RUNTIME_DIRECTORY to a shorter path or use a shorter --name", path, maxSocketPath)
		}
	}
	return nil
}
