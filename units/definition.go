package units

import (
	"strconv"
	"strings"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// Definition is a parsed, validated NAME.lazypod file. Parse fills it; a
// Definition made by hand should hold what Parse would accept.
//
// Values are unit-file values, as in Quadlet's files: systemd expands
// the specifiers in them (%h, %i) when it reads the generated units, and
// the environment references ($VAR, ${VAR}) of the container's command
// line, from the service's Environment=.
type Definition struct {
	Name string // unit name: the file's base name without .lazypod, "web" or "web@" for a template
	Path string // the file it came from

	// Template is NAME@.lazypod: the units are templates, NAME@.socket and
	// NAME@.service, and %i is each instance's name.
	Template bool

	// From [Container] and [Quadlet], as Quadlet reads them.

	// ContainerName is the container's name as Quadlet makes it:
	// ContainerName=, else systemd-%N, or systemd-%p_%i for a template or
	// an instance.
	ContainerName string
	// Run is the podman run command line Quadlet makes of the keys:
	// options (--name first), IMAGE, COMMAND... Lazypod's own parts are
	// left out: --replace, --rm, --cgroups=split, --sdnotify, -d,
	// --publish, and the auto-update label; lazypod serve does those.
	Run        []string
	Image      string      // the image, as in Run (a .image or .build unit's resolved)
	AutoUpdate spec.Policy // AutoUpdate=: registry or local; "" for no updates
	Notify     Notify      // Notify=: readiness from the health check or the container's READY=1
	HealthCmd  bool        // the container has a health check of its own: HealthCmd= or --health-cmd
	// ExecReload is Quadlet's ExecReload= for ReloadCmd= or
	// ReloadSignal= ("" for none).
	ExecReload string
	// Unit holds NAME.service's [Unit] entries as Quadlet writes them: the
	// file's own, with dependencies on Quadlet units translated (After=
	// db.container becomes After=db.service), and Quadlet's additions
	// (the services of the networks and volumes the container uses).
	Unit []Entry

	// Listeners are PublishPort= ([Container]) and ListenUnix= ([Lazypod])
	// in file order. Parse makes sure there is at least one and no two
	// bind the same address.
	Listeners []Listener

	// [Lazypod]: lazypod serve's own settings. A nil pointer or a zero
	// value leaves lazypod serve's default.
	Ready        spec.Probe     // Ready=; see Probe
	ReadyTimeout *time.Duration // ReadyTimeout=
	IdleTimeout  *time.Duration // IdleTimeout=: 0 never stops the container
	// StopTimeout is StopTimeout= of [Lazypod], or of [Container] (as
	// podman run --stop-timeout).
	StopTimeout *time.Duration
	UDPTimeout  *time.Duration // UDPTimeout=
	// MaxConnections caps open TCP connections (MaxConnections=); 0
	// means lazypod's default, sized to the open-file limit; -1 no cap.
	MaxConnections int
	// FlowIdleTimeout closes a TCP connection idle either way this long
	// (FlowIdleTimeout=).
	FlowIdleTimeout *time.Duration
	ExitOnIdle      *bool           // ExitOnIdle=
	IdleAction      spec.IdleAction // IdleAction=: "" for stop
	RollbackWindow  *time.Duration  // RollbackWindow=: only with AutoUpdate
	UpdateInterval  *time.Duration  // UpdateInterval=: only with AutoUpdate
	AuthFile        string          // AuthFile=
	TLSVerify       *bool           // TLSVerify=
	CPUs            float64         // CPUs=: 0 for no limit
	LogLevel        string          // LogLevel=: debug, info, warn or error
	PodmanURL       string          // PodmanURL=: "" for the system socket, or the user's with RenderOptions.User
	MetricsFile     string          // MetricsFile=: "" for none
	// Needs are the lazypod services the container needs (Needs=): each
	// is started first, through its hold socket, and kept up while this
	// container runs.
	Needs []string

	// Passthrough holds the entries of the other sections, in file order,
	// keyed by section name: [Socket] and [Install] go to every socket
	// unit, [Service] and any other section to NAME.service.
	Passthrough map[string][]Entry
	// Sections are the other sections' names in file order.
	Sections []string
}

// Entry is one Key=Value line of a pass-through section, its value with
// continuation lines joined as systemd joins them.
type Entry struct{ Key, Value string }

// Notify is Quadlet's Notify=: how the container says it is ready.
type Notify string

const (
	NotifyNo      Notify = ""        // Notify=no or absent: lazypod serve's default probe
	NotifyYes     Notify = "yes"     // Notify=yes: the container sends READY=1 (probe notify)
	NotifyHealthy Notify = "healthy" // Notify=healthy: the image's healthcheck passes (probe healthcheck)
)

// Network is the kind of socket a Listener is.
type Network string

const (
	NetworkTCP  Network = "tcp"  // ListenStream= on an IP address and port
	NetworkUDP  Network = "udp"  // ListenDatagram=
	NetworkUnix Network = "unix" // ListenStream= on a path
)

// Listener is one socket systemd listens on for the service.
type Listener struct {
	Network Network
	// Address is the value of ListenStream= or ListenDatagram=:
	// "8080" (every address), "127.0.0.1:8080", "[::1]:8080" or
	// "/run/app.sock".
	Address string
	Port    uint16 // the container port it forwards to
}

// FDName is the listener's FileDescriptorName=: "tcp-PORT" for TCP and
// unix listeners, "udp-PORT" for UDP ones.
func (l Listener) FDName() string {
	proto := "tcp"
	if l.Network == NetworkUDP {
		proto = "udp"
	}
	return proto + "-" + strconv.Itoa(int(l.Port))
}

// proto is the container port's protocol, as lazypod serve's --port.
func (l Listener) proto() string {
	if l.Network == NetworkUDP {
		return "udp"
	}
	return "tcp"
}

// Probe is the readiness probe lazypod serve runs, its --ready: Ready if
// set; else, as Quadlet's Notify= says when the container is ready, the
// health check for Notify=healthy and the container's READY=1 for
// Notify=yes; else the container's health check if it has one of its own.
// The zero Probe leaves lazypod serve's default (the health check given in
// the command line, else listening).
func (d *Definition) Probe() spec.Probe {
	switch {
	case d.Ready.Kind != "":
		return d.Ready
	case d.Notify == NotifyHealthy:
		return spec.Probe{Kind: spec.ProbeHealthcheck}
	case d.Notify == NotifyYes:
		return spec.Probe{Kind: spec.ProbeNotify}
	}
	return spec.Probe{}
}

// Error is a problem in a definition file, found by Parse or Render.
type Error struct {
	Path    string
	Line    int    // 0 when the problem has no one line, such as a missing key
	Section string // "" when the problem is in no section
	Key     string // "" for a section header or a whole-file problem
	Value   string
	Msg     string // what is wrong: how to fix it
}

// Error returns one line: "PATH:LINE: [Section] Key=VALUE: what is wrong:
// how to fix it".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(spec.OneLine(e.Path))
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Section != "" || e.Key != "" {
		b.WriteString(":")
	}
	if e.Section != "" {
		b.WriteString(" [" + spec.OneLine(e.Section) + "]")
	}
	if e.Key != "" {
		b.WriteString(" " + spec.OneLine(e.Key) + "=" + spec.OneLine(e.Value))
	}
	b.WriteString(": " + spec.OneLine(e.Msg))
	return b.String()
}

// Service is lazypod's name of the service, for its state and the
// container's label (lazypod status NAME, lazypod update NAME): the
// definition's name, or PREFIX-%i for a template or an instance.
func (d *Definition) Service() string {
	if prefix, _, at := strings.Cut(d.Name, "@"); at {
		return prefix + "-%i"
	}
	return d.Name
}

// Serve returns the settings lazypod serve gets from the units rendered
// with o: serve's defaults, and what d sets. Its PodmanURL is the one
// ExecStart= names, with %t left for systemd to expand in user units.
func (d *Definition) Serve(o RenderOptions) spec.Serve {
	s := spec.Defaults()
	s.Name, s.Run = d.Service(), d.Run
	for _, u := range groupSockets(d) {
		s.Ports = append(s.Ports, spec.Port{FDName: u.fdName, Port: u.port, Proto: spec.Protocol(u.proto)})
	}
	s.PodmanURL = d.PodmanURL
	switch {
	case s.PodmanURL != "":
	case o.User:
		s.PodmanURL = userPodmanURL
	default:
		s.PodmanURL = rootfulPodmanURL
	}
	setDur := func(dst *time.Duration, v *time.Duration) {
		if v != nil {
			*dst = *v
		}
	}
	setDur(&s.IdleTimeout, d.IdleTimeout)
	setDur(&s.ReadyTimeout, d.ReadyTimeout)
	setDur(&s.StopTimeout, d.StopTimeout)
	setDur(&s.UDPTimeout, d.UDPTimeout)
	setDur(&s.FlowIdleTimeout, d.FlowIdleTimeout)
	setDur(&s.RollbackWindow, d.RollbackWindow)
	setDur(&s.UpdateInterval, d.UpdateInterval)
	s.ExitOnIdle, s.TLSVerify = d.ExitOnIdle, d.TLSVerify
	if d.IdleAction != "" {
		s.IdleAction = d.IdleAction
	}
	s.Ready = d.Probe()
	s.MaxConnections = d.MaxConnections
	if d.LogLevel != "" {
		s.LogLevel = d.LogLevel
	}
	s.CPUs = d.CPUs
	if d.AutoUpdate != "" {
		s.AutoUpdate = d.AutoUpdate
	}
	s.AuthFile = d.AuthFile
	s.MetricsFile = d.MetricsFile
	for _, n := range d.Needs {
		s.Needs = append(s.Needs, spec.HoldPath("%t", n))
	}
	return s
}
