package units

import (
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// RenderOptions say how the units are written.
type RenderOptions struct {
	// Binary is the absolute path of lazypod for ExecStart=. Required.
	Binary string
	// User writes user units (rootless): the Podman socket is
	// %t/podman/podman.sock and wanted rather than required, and the
	// service gets only the hardening a user manager can apply
	// (NoNewPrivileges=yes).
	User bool
	// Quadlet finds the Quadlet units a definition names (Network=
	// web.network); nil: none.
	Quadlet *Quadlet
}

// File is one generated unit file.
type File struct {
	Name    string // e.g. "whoami.socket"
	Content string
}

// Defaults of lazypod serve that the units depend on.
const (
	defaultStopTimeout = 10 * time.Second
	// stopMargin is added to twice the stop timeout (draining open flows,
	// then stopping the container) for TimeoutStopSec=.
	stopMargin = 30 * time.Second

	rootfulPodmanURL = "unix:///run/podman/podman.sock"
	userPodmanURL    = "unix://%t/podman/podman.sock" // %t: the user's $XDG_RUNTIME_DIR
	// userRuntimeDirMax is the longest %t can be: /run/user/UID.
	userRuntimeDirMax = len("/run/user/4294967295")
)

// Render writes d's units: one socket unit per container port
// (NAME.socket for the first listener's, NAME-FDNAME.socket for the
// others: systemd names the descriptors of one socket unit alike),
// NAME.service, and with AutoUpdate set NAME-update.service and
// NAME-update.timer; for a template NAME@.lazypod, the template units
// NAME@.socket, NAME-FDNAME@.socket, NAME@.service, NAME-update@.service
// and NAME-update@.timer. The files are sorted by name and their content
// is stable.
func Render(d *Definition, o RenderOptions) ([]File, error) {
	if !path.IsAbs(o.Binary) || strings.ContainsFunc(o.Binary, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, fmt.Errorf("rendering units of %s: binary %q is not an absolute path", d.Name, o.Binary)
	}
	if len(d.Run) == 0 || len(d.Listeners) == 0 || d.ContainerName == "" {
		return nil, fmt.Errorf("rendering units of %s: %w", d.Name, errIncomplete)
	}
	if d.Probe().Kind == spec.ProbeNotify {
		dir := "/run"
		if o.User {
			dir = strings.Repeat("x", userRuntimeDirMax)
		}
		name, _ := sample(d.Service())
		if p := dir + "/lazypod/" + d.Name + "/" + name + ".notify"; len(p) > maxSocketPath {
			return nil, &Error{Path: d.Path, Section: SectionContainer,
				Msg: fmt.Sprintf("the notify probe's socket path would be %d bytes, more than a unix socket's %d: use a shorter file name", len(p), maxSocketPath)}
		}
	}
	r := renderer{d: d, o: o, sockets: groupSockets(d)}
	files := []File{{Name: d.unitName("", "service"), Content: r.service()}}
	for _, s := range r.sockets {
		files = append(files, File{Name: s.unit, Content: r.socket(s)})
	}
	files = append(files, File{Name: d.holdUnit(), Content: r.holdSocket()})
	if d.AutoUpdate != "" {
		files = append(files,
			File{Name: d.unitName("-update", "service"), Content: r.updateService()},
			File{Name: d.unitName("-update", "timer"), Content: r.updateTimer()})
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

// unitName names one of d's units: NAME+suffix.ext, or for a template or
// an instance PREFIX+suffix@INSTANCE.ext ("" for a template).
func (d *Definition) unitName(suffix, ext string) string {
	prefix, instance, at := strings.Cut(d.Name, "@")
	if !at {
		return prefix + suffix + "." + ext
	}
	return prefix + suffix + "@" + instance + "." + ext
}

// label names d in descriptions: NAME, or PREFIX@%i for a template.
func (d *Definition) label() string {
	if d.Template {
		return d.Name + "%i"
	}
	return d.Name
}

// serviceOf names the service unit an instance of d's units runs:
// NAME.service, or for a template PREFIX@%i.service.
func (d *Definition) serviceOf() string {
	if d.Template {
		return strings.TrimSuffix(d.Name, "@") + "@%i.service"
	}
	return d.unitName("", "service")
}

var errIncomplete = errors.New("definition has no command line, listener or container name: make it with Parse")

// socketUnit is one generated socket unit: the listeners of one
// FileDescriptorName.
type socketUnit struct {
	unit      string // e.g. "whoami.socket"
	fdName    string // e.g. "tcp-80"
	port      uint16
	proto     string // "tcp" or "udp"
	listeners []Listener
}

// groupSockets groups d's listeners by FDName, in order of first
// appearance.
func groupSockets(d *Definition) []socketUnit {
	var out []socketUnit
	for _, l := range d.Listeners {
		i := slices.IndexFunc(out, func(s socketUnit) bool { return s.fdName == l.FDName() })
		if i < 0 {
			unit := d.unitName("", "socket")
			if len(out) > 0 {
				unit = d.unitName("-"+l.FDName(), "socket")
			}
			out = append(out, socketUnit{unit: unit, fdName: l.FDName(), port: l.Port, proto: l.proto()})
			i = len(out) - 1
		}
		out[i].listeners = append(out[i].listeners, l)
	}
	return out
}

type renderer struct {
	d       *Definition
	o       RenderOptions
	sockets []socketUnit
}

// unitFile builds a unit file's text.
type unitFile struct {
	b        strings.Builder
	sections int
}

func (u *unitFile) header(d *Definition) {
	u.b.WriteString(Header + spec.OneLine(d.Path) + "; edit that file, not this one.\n")
}

func (u *unitFile) section(name string) {
	if u.sections > 0 {
		u.b.WriteString("\n")
	}
	u.sections++
	u.b.WriteString("[" + name + "]\n")
}

func (u *unitFile) set(key, value string) { u.b.WriteString(key + "=" + value + "\n") }

func (u *unitFile) entries(es []Entry) {
	for _, e := range es {
		u.set(e.Key, e.Value)
	}
}

func (r *renderer) socket(s socketUnit) string {
	var u unitFile
	u.header(r.d)
	u.section("Unit")
	u.set("Description", fmt.Sprintf("%s: listener for container port %d/%s", r.d.label(), s.port, s.proto))
	u.section("Socket")
	for _, l := range s.listeners {
		key := "ListenStream"
		if l.Network == NetworkUDP {
			key = "ListenDatagram"
		}
		u.set(key, l.Address)
	}
	u.set("FileDescriptorName", s.fdName)
	if s.unit != r.d.unitName("", "socket") {
		u.set("Service", r.d.serviceOf())
	}
	u.entries(r.d.Passthrough["Socket"])
	u.section("Install")
	u.set("WantedBy", "sockets.target")
	u.entries(r.d.Passthrough["Install"])
	return u.b.String()
}

// holdUnit names d's hold socket unit: NAME-hold.socket, or
// PREFIX-hold@.socket for a template.
func (d *Definition) holdUnit() string { return d.unitName("-hold", "socket") }

// holdSocket is the hold socket unit: where the lazypod of another
// service that needs this one (Needs=) holds it up while its own container
// runs. It is a unix socket under %t/lazypod, for root only (a user's, for
// user units), with FileDescriptorName=lazypod-hold, which lazypod serve
// serves as a hold route.
func (r *renderer) holdSocket() string {
	var u unitFile
	u.header(r.d)
	u.section("Unit")
	u.set("Description", fmt.Sprintf("%s: hold socket (lazypod services that need %s hold it up here)", r.d.label(), r.d.label()))
	u.section("Socket")
	u.set("ListenStream", spec.HoldPath("%t", r.d.Service()))
	u.set("SocketMode", "0600")
	u.set("FileDescriptorName", spec.HoldSocket)
	u.set("Service", r.d.serviceOf())
	u.section("Install")
	u.set("WantedBy", "sockets.target")
	for _, e := range r.d.Passthrough["Install"] {
		if e.Key == "DefaultInstance" { // not Alias= and the like: they name the listeners
			u.set(e.Key, e.Value)
		}
	}
	return u.b.String()
}

// podmanDeps writes the dependency on podman.socket: wanted, not
// required, so that where Podman's API runs otherwise (its socket unit
// missing or masked, the socket bound in from elsewhere) the service still
// starts and lazypod reports an unreachable API itself, with what to do. A
// PodmanURL of the definition's own gets none: it may point anywhere.
//
// After=podman.service is ordering only, for every unit: at shutdown
// systemd stops units in the reverse order, so lazypod stops its container
// while the Podman API still answers, instead of racing its stop.
func (r *renderer) podmanDeps(u *unitFile) {
	if r.d.PodmanURL == "" {
		u.set("Wants", "podman.socket")
		u.set("After", "podman.socket")
	}
	u.set("After", "podman.service")
}

// hardening writes the sandboxing settings that keep the Podman API
// socket reachable. A user manager cannot set up the mount namespaces
// most of them need.
func (r *renderer) hardening(u *unitFile) {
	u.set("NoNewPrivileges", "yes")
	if r.o.User {
		return
	}
	if m := r.d.MetricsFile; m != "" {
		// The metrics file's directory, writable under ProtectSystem=;
		// "-": a missing one is lazypod's to report, not a failed unit.
		u.set("ReadWritePaths", "-"+path.Dir(m))
	}
	for _, kv := range [][2]string{
		{"ProtectSystem", "strict"},
		{"ProtectHome", "read-only"},
		{"PrivateTmp", "yes"},
		{"ProtectKernelTunables", "yes"},
		{"ProtectKernelModules", "yes"},
		{"ProtectControlGroups", "yes"},
		{"RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"},
		{"RestrictNamespaces", "yes"},
		{"LockPersonality", "yes"},
		{"RestrictRealtime", "yes"},
		{"SystemCallArchitectures", "native"},
		{"CapabilityBoundingSet", ""},
	} {
		u.set(kv[0], kv[1])
	}
}

func (r *renderer) service() string {
	d := r.d
	var u unitFile
	u.header(d)
	u.section("Unit")
	if !slices.ContainsFunc(d.Unit, func(e Entry) bool { return e.Key == "Description" }) {
		u.set("Description", fmt.Sprintf("%s: %s on demand (lazypod)", d.label(), d.Image))
	}
	units := make([]string, len(r.sockets), len(r.sockets)+1)
	for i, s := range r.sockets {
		units[i] = s.unit
	}
	units = append(units, d.holdUnit())
	if d.Template {
		for i := range units {
			units[i] = strings.Replace(units[i], "@.", "@%i.", 1)
		}
	}
	listeners, hold := units[:len(units)-1], units[len(units)-1]
	u.set("Requires", strings.Join(listeners, " "))
	// The hold sockets, the service's own and those of the services it
	// needs, are wanted: where one is missing (a unit left out when
	// copying, or a needed service not installed) the service still
	// starts, and lazypod says what is missing.
	wants := []string{hold}
	for _, n := range d.Needs {
		wants = append(wants, n+"-hold.socket")
	}
	u.set("Wants", strings.Join(wants, " "))
	u.set("After", strings.Join(append(listeners, wants...), " "))
	r.podmanDeps(&u)
	u.entries(d.Unit)

	u.section("Service")
	u.set("Type", "notify")
	u.set("NotifyAccess", "main")
	u.set("Sockets", strings.Join(units, " "))
	lines := []string{quoteArg(r.o.Binary) + " serve"}
	for _, g := range r.d.Serve(r.o).Args() {
		lines = append(lines, cmdline(g))
	}
	u.set("ExecStart", strings.Join(lines, " \\\n\t"))
	if d.ExecReload != "" {
		u.set("ExecReload", d.ExecReload)
	}
	u.set("StateDirectory", "lazypod")
	u.set("RuntimeDirectory", "lazypod/"+d.label())
	u.set("RuntimeDirectoryMode", "0700") // the notify probe's socket lives there
	u.set("RuntimeDirectoryPreserve", "no")
	u.set("Restart", "on-abnormal")
	stop := defaultStopTimeout
	if d.StopTimeout != nil {
		stop = *d.StopTimeout
	}
	u.set("TimeoutStopSec", stopTimeoutSec(stop))
	r.hardening(&u)
	u.entries(d.Passthrough["Service"])
	for _, sec := range d.Sections {
		switch sec {
		case "Unit", "Service", "Socket", "Install":
			continue
		}
		u.section(sec)
		u.entries(d.Passthrough[sec])
	}
	return u.b.String()
}

// updateArgs returns the update service's command line.
func (r *renderer) updateArgs() string {
	s := r.d.Serve(r.o)
	return quoteArg(r.o.Binary) + " update " + cmdline([]string{"--podman-url", s.PodmanURL, s.Name})
}

func (r *renderer) updateService() string {
	d := r.d
	var u unitFile
	u.header(d)
	u.section("Unit")
	u.set("Description", fmt.Sprintf("%s: image update check (lazypod)", d.label()))
	u.set("Wants", "network-online.target")
	u.set("After", "network-online.target")
	r.podmanDeps(&u)
	u.section("Service")
	u.set("Type", "oneshot")
	// One check, bounded by lazypod update's --timeout (10 minutes),
	// and the time to reach Podman.
	u.set("TimeoutStartSec", "15min")
	u.set("ExecStart", r.updateArgs())
	u.set("StateDirectory", "lazypod")
	r.hardening(&u)
	return u.b.String()
}

func (r *renderer) updateTimer() string {
	var u unitFile
	u.header(r.d)
	u.section("Unit")
	u.set("Description", fmt.Sprintf("%s: daily image update check (lazypod)", r.d.label()))
	u.section("Timer")
	u.set("OnCalendar", "daily")
	u.set("RandomizedDelaySec", "900")
	u.set("Persistent", "true")
	u.section("Install")
	u.set("WantedBy", "timers.target")
	if r.d.Template { // the instance systemctl enable picks, as the sockets'
		for _, e := range r.d.Passthrough["Install"] {
			if e.Key == "DefaultInstance" {
				u.set(e.Key, e.Value)
			}
		}
	}
	return u.b.String()
}

// stopTimeoutSec is TimeoutStopSec= for lazypod serve's stop timeout: time
// to drain open flows and then to stop the container, plus a margin.
func stopTimeoutSec(stop time.Duration) string {
	if stop > (math.MaxInt64-stopMargin)/2 {
		return "infinity"
	}
	return systemdSeconds(2*stop + stopMargin)
}

// systemdSeconds formats d as a systemd time span: whole seconds, or
// milliseconds rounded up.
func systemdSeconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10) + "ms"
}
