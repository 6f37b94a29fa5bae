package units

import (
	"strconv"
	"strings"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// Definition is a parsed, validated NAME.lazypod file. Parse fills it; a
// Definition made by hand should hold what Parse would accept.
type Definition struct {
	Name string // unit name: the file's base name without .lazypod
	Path string // the file it came from

	// [Container], Quadlet's names.
	Image            string      // Image=: the reference to run
	ContainerName    string      // ContainerName=: also lazypod's service name; Parse defaults it to Name
	Exec             []string    // Exec=: the container's command, split into words; nil: the image's
	Environment      []string    // Environment=: KEY=VALUE, in file order
	EnvironmentFiles []string    // EnvironmentFile=: absolute paths, read by lazypod serve at start
	Volumes          []string    // Volume=: SRC:DST[:OPTS]
	Labels           []string    // Label=: KEY=VALUE, in file order
	User             string      // User=: "" for the image's
	Group            string      // Group=: only with User
	Network          string      // Network=: "" for Podman's default
	AutoUpdate       spec.Policy // AutoUpdate=: registry or local; "" for no updates
	HealthCmd        string      // HealthCmd=: readiness probe exec:HealthCmd unless Ready is set
	Notify           Notify      // Notify=: readiness from the image's healthcheck or the container's READY=1
	Memory           spec.Size   // Memory=: as podman's --memory; 0 for no limit

	// Listeners are PublishPort= ([Container]) and ListenUnix= ([Lazypod])
	// in file order. Parse makes sure there is at least one and no two
	// bind the same address.
	Listeners []Listener

	// [Lazypod]: lazypod serve's own settings. A nil pointer or a zero
	// value leaves lazypod serve's default.
	Ready        spec.Probe     // Ready=; see Probe
	ReadyTimeout *time.Duration // ReadyTimeout=
	IdleTimeout  *time.Duration // IdleTimeout=: 0 never stops the container
	StopTimeout  *time.Duration // StopTimeout=
	UDPTimeout   *time.Duration // UDPTimeout=
	// MaxConnections caps open TCP connections (MaxConnections=); 0
	// means lazypod's default, sized to the open-file limit; -1 no cap.
	MaxConnections int
	// FlowIdleTimeout closes a TCP connection idle either way this long
	// (FlowIdleTimeout=).
	FlowIdleTimeout *time.Duration
	ExitOnIdle      *bool          // ExitOnIdle=
	RollbackWindow  *time.Duration // RollbackWindow=: only with AutoUpdate
	UpdateInterval  *time.Duration // UpdateInterval=: only with AutoUpdate
	AuthFile        string         // AuthFile=
	TLSVerify       *bool          // TLSVerify=
	CPUs            float64        // CPUs=: 0 for no limit
	LogLevel        string         // LogLevel=: debug, info, warn or error
	PodmanURL       string         // PodmanURL=: "" for the system socket, or the user's with RenderOptions.User

	// Passthrough holds the [Unit], [Socket], [Service] and [Install]
	// entries, in file order, keyed by section name. They are appended to
	// the generated units' sections: [Unit] and [Service] to NAME.service,
	// [Socket] and [Install] to every socket unit.
	Passthrough map[string][]Entry
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
// set, else exec:HealthCmd, else healthcheck for Notify=healthy or notify
// for Notify=yes. The zero Probe leaves lazypod serve's default (tcp, or
// none when every port is UDP).
func (d *Definition) Probe() spec.Probe {
	switch {
	case d.Ready.Kind != "":
		return d.Ready
	case d.HealthCmd != "":
		return spec.Probe{Kind: spec.ProbeExec, Arg: d.HealthCmd}
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

// Serve returns the settings lazypod serve gets from the units rendered
// with o: serve's defaults, and what d sets. Its PodmanURL is the one
// ExecStart= names, with %t left for systemd to expand in user units.
func (d *Definition) Serve(o RenderOptions) spec.Serve {
	s := spec.Defaults()
	s.Name, s.Image, s.Command = d.ContainerName, d.Image, d.Exec
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
	s.Ready = d.Probe()
	s.MaxConnections = d.MaxConnections
	if d.LogLevel != "" {
		s.LogLevel = d.LogLevel
	}
	s.Env, s.EnvFiles, s.Labels = d.Environment, d.EnvironmentFiles, d.Labels
	for _, v := range d.Volumes {
		vol, _ := spec.ParseVolume(v) // checked by Parse
		s.Volumes = append(s.Volumes, vol)
	}
	s.Memory, s.CPUs, s.Network = d.Memory, d.CPUs, d.Network
	s.User = d.User
	if d.Group != "" {
		s.User += ":" + d.Group
	}
	if d.AutoUpdate != "" {
		s.AutoUpdate = d.AutoUpdate
	}
	s.AuthFile = d.AuthFile
	return s
}
