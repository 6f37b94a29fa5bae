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
// NAME-update.timer. The files are sorted by name and their content is
// stable.
func Render(d *Definition, o RenderOptions) ([]File, error) {
	if !path.IsAbs(o.Binary) || strings.ContainsFunc(o.Binary, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, fmt.Errorf("rendering units of %s: binary %q is not an absolute path", d.Name, o.Binary)
	}
	if d.Image == "" || len(d.Listeners) == 0 || d.ContainerName == "" {
		return nil, fmt.Errorf("rendering units of %s: %w", d.Name, errIncomplete)
	}
	if d.Probe().Kind == spec.ProbeNotify {
		dir := "/run"
		if o.User {
			dir = strings.Repeat("x", userRuntimeDirMax)
		}
		if p := dir + "/lazypod/" + d.Name + "/" + d.ContainerName + ".notify"; len(p) > maxSocketPath {
			return nil, &Error{Path: d.Path, Section: SectionContainer, Key: "ContainerName", Value: d.ContainerName,
				Msg: fmt.Sprintf("the notify probe's socket path would be %d bytes, more than a unix socket's %d: use a shorter file name or ContainerName=", len(p), maxSocketPath)}
		}
	}
	r := renderer{d: d, o: o, sockets: groupSockets(d)}
	files := []File{{Name: d.Name + ".service", Content: r.service()}}
	for _, s := range r.sockets {
		files = append(files, File{Name: s.unit, Content: r.socket(s)})
	}
	if d.AutoUpdate != "" {
		files = append(files,
			File{Name: d.Name + "-update.service", Content: r.updateService()},
			File{Name: d.Name + "-update.timer", Content: r.updateTimer()})
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

var errIncomplete = errors.New("definition has no image, listener or container name: make it with Parse")

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
			unit := d.Name + ".socket"
			if len(out) > 0 {
				unit = d.Name + "-" + l.FDName() + ".socket"
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
	u.set("Description", fmt.Sprintf("%s: listener for container port %d/%s", r.d.Name, s.port, s.proto))
	u.section("Socket")
	for _, l := range s.listeners {
		key := "ListenStream"
		if l.Network == NetworkUDP {
			key = "ListenDatagram"
		}
		u.set(key, escapeSpecifiers(l.Address))
	}
	u.set("FileDescriptorName", s.fdName)
	if s.unit != r.d.Name+".socket" {
		u.set("Service", r.d.Name+".service")
	}
	u.entries(r.d.Passthrough["Socket"])
	u.section("Install")
	u.set("WantedBy", "sockets.target")
	u.entries(r.d.Passthrough["Install"])
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
	if !slices.ContainsFunc(d.Passthrough["Unit"], func(e Entry) bool { return e.Key == "Description" }) {
		u.set("Description", fmt.Sprintf("%s: %s on demand (lazypod)", d.Name, d.Image))
	}
	units := make([]string, len(r.sockets))
	for i, s := range r.sockets {
		units[i] = s.unit
	}
	u.set("Requires", strings.Join(units, " "))
	u.set("After", strings.Join(units, " "))
	r.podmanDeps(&u)
	u.entries(d.Passthrough["Unit"])

	u.section("Service")
	u.set("Type", "notify")
	u.set("NotifyAccess", "main")
	if len(units) > 1 {
		u.set("Sockets", strings.Join(units, " "))
	}
	lines := argLines(append([][]arg{plain(r.o.Binary, "serve")}, r.serveArgs()...))
	u.set("ExecStart", strings.Join(lines, " \\\n\t"))
	u.set("StateDirectory", "lazypod")
	u.set("RuntimeDirectory", "lazypod/"+d.Name)
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
	return u.b.String()
}

// arg is one word of a generated command line.
type arg struct {
	s string
	// verbatim words hold systemd specifiers of lazypod's own, such as %t,
	// and are written as they are; every other word is quoted so that the
	// program gets it unchanged.
	verbatim bool
}

func (a arg) quoted() string {
	if a.verbatim {
		return a.s
	}
	return quoteArg(a.s)
}

// argLines quotes the groups of words for ExecStart=, one group a line.
func argLines(groups [][]arg) []string {
	lines := make([]string, len(groups))
	for i, g := range groups {
		q := make([]string, len(g))
		for j, a := range g {
			q[j] = a.quoted()
		}
		lines[i] = strings.Join(q, " ")
	}
	return lines
}

// plain makes words to be quoted.
func plain(ss ...string) []arg {
	out := make([]arg, len(ss))
	for i, s := range ss {
		out[i] = arg{s: s}
	}
	return out
}

func (r *renderer) podmanURL() arg {
	switch {
	case r.d.PodmanURL != "":
		return arg{s: r.d.PodmanURL}
	case r.o.User:
		return arg{s: userPodmanURL, verbatim: true}
	}
	return arg{s: rootfulPodmanURL}
}

// serveArgs returns lazypod serve's arguments after "serve", a flag and
// its value per group, as spec.Serve.Args gives them for d's settings:
// every one that is not serve's default. The user units' Podman URL holds
// %t for systemd to expand.
func (r *renderer) serveArgs() [][]arg {
	var out [][]arg
	for _, g := range r.d.Serve(r.o).Args() {
		group := plain(g...)
		if g[0] == "--podman-url" {
			group[1] = r.podmanURL()
		}
		out = append(out, group)
	}
	return out
}

// updateArgs returns the update service's command line.
func (r *renderer) updateArgs() []arg {
	return append(plain(r.o.Binary, "update", "--podman-url"), r.podmanURL(), arg{s: r.d.ContainerName})
}

func (r *renderer) updateService() string {
	d := r.d
	var u unitFile
	u.header(d)
	u.section("Unit")
	u.set("Description", fmt.Sprintf("%s: image update check (lazypod)", d.Name))
	u.set("Wants", "network-online.target")
	u.set("After", "network-online.target")
	r.podmanDeps(&u)
	u.section("Service")
	u.set("Type", "oneshot")
	// One check, bounded by lazypod update's --timeout (10 minutes),
	// and the time to reach Podman.
	u.set("TimeoutStartSec", "15min")
	u.set("ExecStart", argLines([][]arg{r.updateArgs()})[0])
	u.set("StateDirectory", "lazypod")
	r.hardening(&u)
	return u.b.String()
}

func (r *renderer) updateTimer() string {
	var u unitFile
	u.header(r.d)
	u.section("Unit")
	u.set("Description", fmt.Sprintf("%s: daily image update check (lazypod)", r.d.Name))
	u.section("Timer")
	u.set("OnCalendar", "daily")
	u.set("RandomizedDelaySec", "900")
	u.set("Persistent", "true")
	u.section("Install")
	u.set("WantedBy", "timers.target")
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
