package units

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/containers/podman/v5/pkg/systemd/parser"
	"github.com/lazypod/lazypod/internal/podman"
	"github.com/lazypod/lazypod/internal/spec"
)

// Ext is the definition file's extension.
const Ext = ".lazypod"

// Sections of a definition file that lazypod reads itself; every other
// one is passed through to the units.
const (
	SectionContainer = "Container"
	SectionQuadlet   = "Quadlet"
	SectionLazypod   = "Lazypod"
)

// managedKeys are pass-through keys lazypod writes itself and that a
// second value would break, with how to say the same in the definition.
var managedKeys = map[string]map[string]string{
	"Socket": {
		"ListenStream":           "use PublishPort= in [Container] or ListenUnix= in [Lazypod]",
		"ListenDatagram":         "use PublishPort=HOSTPORT:CONTAINERPORT/udp in [Container]",
		"ListenSequentialPacket": "lazypod serves stream and datagram sockets only",
		"ListenFIFO":             "lazypod serves stream and datagram sockets only",
		"ListenSpecial":          "lazypod serves stream and datagram sockets only",
		"ListenNetlink":          "lazypod serves stream and datagram sockets only",
		"ListenMessageQueue":     "lazypod serves stream and datagram sockets only",
		"ListenUSBFunction":      "lazypod serves stream and datagram sockets only",
		"FileDescriptorName":     "lazypod names each socket after its container port",
		"Service":                "the socket activates NAME.service",
		"Accept":                 "lazypod takes the listening socket itself (Accept=no)",
	},
	"Service": {
		"ExecStart": "set the container's command with Exec= in [Container]",
		"Type":      "lazypod serve runs as long as the container serves, and reports readiness with sd_notify (Type=notify): remove it",
		"Sockets":   "lazypod passes every socket of the definition",
	},
}

// refusedKeys are the Quadlet keys of [Container] that cannot apply to a
// container started on demand, with why and what to write instead.
var refusedKeys = map[string]string{
	"Pod":                  "a container in a pod has the pod's network and ports, and starts and stops with the pod: lazypod must publish the container's ports and stop it alone: remove Pod= and give the container its own PublishPort=",
	"Rootfs":               "lazypod runs images, which its updater checks and rolls back: build an image from the directory (podman build) and use Image=",
	"GlobalArgs":           "lazypod talks to the Podman service through its API, which takes no podman global options: set them in the Podman service's containers.conf, or use PodmanURL= in [Lazypod] to pick the service",
	"ContainersConfModule": "lazypod talks to the Podman service through its API, which reads its own containers.conf: load the module in the Podman service (podman --module ... system service)",
}

// ParseFile reads and parses the definition file at path, and its
// drop-ins: see Parse.
func ParseFile(path string, o RenderOptions) (*Definition, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading definition: %w", err)
	}
	defer f.Close()
	return Parse(path, f, o)
}

// Parse parses and checks a definition read from r. Its name is path's
// base name without Ext. As Quadlet does, it merges the drop-ins of
// path's directory (NAME.lazypod.d/*.conf, lazypod.d/*.conf, ...) and
// reads [Container] and [Quadlet] with Quadlet's own code, into the
// podman run command line Quadlet would write; Podman's run flags then
// check it as lazypod serve will. o.User and o.Quadlet say where the
// Quadlet units that the definition names are. Every problem is an
// *Error naming the file, the line (in the file itself; 0 in a drop-in),
// the section and the key, and saying how to fix it; Parse returns the
// first one.
func Parse(path string, r io.Reader, o RenderOptions) (*Definition, error) {
	base := filepath.Base(path)
	name, ok := strings.CutSuffix(base, Ext)
	if !ok {
		return nil, &Error{Path: path, Msg: "not a definition file: name it NAME" + Ext}
	}
	prefix, instance, template := strings.Cut(name, "@")
	if err := checkName(prefix); err != nil {
		return nil, &Error{Path: path, Msg: fmt.Sprintf("file name %q is %v", name, err)}
	}
	if template && instance != "" && !unitNameRE.MatchString(instance) {
		return nil, &Error{Path: path, Msg: fmt.Sprintf("instance %q of file name %q is not a unit instance name: use letters, digits and :_.\\-", instance, name)}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading definition %s: %w", path, err)
	}
	data := string(b)
	f := parser.NewUnitFile()
	f.Filename, f.Path = base, path
	if err := f.Parse(data); err != nil {
		return nil, &Error{Path: path, Msg: fmt.Sprintf("%v: write Key=Value lines under [Section] headers, as in a systemd unit", err)}
	}
	if err := mergeDropins(f, filepath.Dir(path)); err != nil {
		return nil, err
	}
	p := &reader{
		d:     &Definition{Name: name, Path: path, Template: template && instance == ""},
		f:     f,
		path:  path,
		lines: scanLines(data),
		nth:   map[scanned]int{},
	}
	if err := p.sections(); err != nil {
		return nil, err
	}
	if err := p.readPublish(); err != nil {
		return nil, err
	}
	if err := p.lazypod(); err != nil {
		return nil, err
	}
	if err := p.container(o); err != nil {
		return nil, err
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return p.d, nil
}

// unitNameRE is what a unit name's prefix or instance may hold.
var unitNameRE = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]+$`)

// LoadQuadlet reads the Quadlet file at path and merges its drop-ins
// from path's directory, as Parse reads a definition.
func LoadQuadlet(path string) (*parser.UnitFile, error) {
	f, err := parser.ParseUnitFile(path)
	if err != nil {
		return nil, err
	}
	return f, mergeDropins(f, filepath.Dir(path))
}

// mergeDropins merges the drop-ins of f found in dir, as Quadlet merges a
// unit's: the *.conf files of NAME.lazypod.d, of the directories of
// NAME's dash-truncated prefixes (web-.lazypod.d for web-app), of the
// template's (web@.lazypod.d for an instance), and lazypod.d; a name in
// a more specific directory hides the same name in a broader one, and
// they are merged in name order.
func mergeDropins(f *parser.UnitFile, dir string) error {
	found := map[string]string{}
	for _, d := range f.GetUnitDropinPaths() {
		entries, _ := os.ReadDir(filepath.Join(dir, d))
		for _, e := range entries {
			if filepath.Ext(e.Name()) != ".conf" {
				continue
			}
			if _, seen := found[e.Name()]; !seen {
				found[e.Name()] = filepath.Join(dir, d, e.Name())
			}
		}
	}
	names := make([]string, 0, len(found))
	for n := range found {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		drop, err := parser.ParseUnitFile(found[n])
		if err != nil {
			return &Error{Path: found[n], Msg: fmt.Sprintf("%v: write Key=Value lines under [Section] headers, as in a systemd unit", err)}
		}
		f.Merge(drop)
	}
	return nil
}

// reader is the state of one Parse.
type reader struct {
	d     *Definition
	f     *parser.UnitFile
	path  string
	lines []scanned
	nth   map[scanned]int // occurrences so far of a key (line 0)
	// pubs are the listeners with their parsed addresses, for overlaps.
	pubs    []publish
	pubLine []int
}

// lineOf returns the line of the next occurrence of a key in a section
// of the file itself, in file order; 0 if it has no more (the value
// came from a drop-in).
func (p *reader) lineOf(section, key string) int {
	k := scanned{section: section, key: key}
	n := p.nth[k]
	p.nth[k] = n + 1
	for _, s := range p.lines {
		if s.section == section && s.key == key {
			if n == 0 {
				return s.line
			}
			n--
		}
	}
	return 0
}

// lastLine returns the line of a key's last occurrence in the file
// itself, 0 if none.
func (p *reader) lastLine(section, key string) int {
	line := 0
	for _, s := range p.lines {
		if s.section == section && s.key == key {
			line = s.line
		}
	}
	return line
}

// at returns an error about the last value of a key.
func (p *reader) at(section, key, msg string) error {
	v, _ := p.f.LookupLast(section, key)
	return &Error{Path: p.path, Line: p.lastLine(section, key), Section: section, Key: key, Value: strings.TrimSpace(v), Msg: msg}
}

// sections sorts the sections: [Container], [Quadlet] and [Lazypod] are
// read by Parse; the others pass through, checked for what lazypod
// writes itself.
func (p *reader) sections() error {
	for _, g := range p.f.ListGroups() {
		switch g {
		case "", SectionContainer, SectionQuadlet, SectionLazypod:
			continue
		}
		p.d.Sections = append(p.d.Sections, g)
		for _, e := range entries(p.f, g) {
			line := p.lineOf(g, e.Key)
			if why, ok := managedKeys[g][e.Key]; ok {
				return &Error{Path: p.path, Line: line, Section: g, Key: e.Key, Value: e.Value, Msg: "lazypod writes this setting itself: " + why}
			}
			if p.d.Passthrough == nil {
				p.d.Passthrough = map[string][]Entry{}
			}
			p.d.Passthrough[g] = append(p.d.Passthrough[g], e)
		}
	}
	return nil
}

// container reads [Container] and [Quadlet] with Quadlet's conversion.
func (p *reader) container(o RenderOptions) error {
	d, f := p.d, p.f
	for _, key := range f.ListKeys(SectionContainer) {
		if why, ok := refusedKeys[key]; ok {
			return p.at(SectionContainer, key, "does not apply to a container started on demand: "+why)
		}
	}
	// Lazypod's own readings of Quadlet's keys.
	if v, ok := f.Lookup(SectionContainer, "ServiceName"); ok && v != "" {
		if err := checkName(v); err != nil {
			return p.at(SectionContainer, "ServiceName", err.Error())
		}
		if _, instance, at := strings.Cut(d.Name, "@"); at {
			// A template's (or an instance's) units stay templates:
			// ServiceName= names the prefix, NAME@.service.
			v += "@" + instance
		}
		d.Name = v
	}
	if v, ok := f.Lookup(SectionContainer, "AutoUpdate"); ok && v != "" {
		pol, err := spec.ParsePolicy(v)
		if err != nil || !pol.Enabled() {
			return p.at(SectionContainer, "AutoUpdate", `valid policies are "registry", "local": remove the line for no updates`)
		}
		d.AutoUpdate = pol
	}
	if v, ok := f.Lookup(SectionContainer, "Notify"); ok && v != "" {
		b, err := spec.ParseBool(v)
		switch {
		case strings.EqualFold(v, "healthy"):
			d.Notify = NotifyHealthy
		case err != nil:
			return p.at(SectionContainer, "Notify", "valid values are healthy, yes and no")
		case b:
			d.Notify = NotifyYes
		}
	}

	// Quadlet's conversion, of what is left to it.
	c := f.Dup()
	c.Filename = strings.TrimSuffix(filepath.Base(p.path), Ext) + ".container"
	c.Path = p.path // relative paths are the file's directory's
	if abs, err := filepath.Abs(p.path); err == nil {
		c.Path = abs
	}
	for _, g := range []string{SectionLazypod, "Socket", "Install"} {
		c.RemoveGroup(g)
	}
	for _, k := range []string{"PublishPort", "AutoUpdate", "Notify", "ServiceName"} {
		c.Unset(SectionContainer, k)
	}
	c.Set("Service", "Type", "oneshot") // no --sdnotify, no -d
	service, err := o.Quadlet.Convert(c, o.User)
	if err != nil {
		return p.quadletError(err)
	}
	args, _, err := service.LookupLastArgs("Service", "ExecStart")
	if err != nil {
		return &Error{Path: p.path, Section: SectionContainer, Msg: fmt.Sprintf("reading Quadlet's command line: %v", err)}
	}
	_, cgroups := f.Lookup(SectionContainer, "CgroupsMode")
	if d.Run, err = quadletPrefix(args, cgroups); err != nil {
		return &Error{Path: p.path, Section: SectionContainer, Msg: err.Error()}
	}
	d.ContainerName = d.Run[1] // --name NAME
	exec, _, _ := c.LookupLastArgs(SectionContainer, "Exec")
	if i := len(d.Run) - len(exec) - 1; i >= 0 {
		d.Image = d.Run[i]
	}
	d.Unit = entries(service, "Unit")
	d.ExecReload, _ = service.LookupLastRaw("Service", "ExecReload")
	return p.checkRun()
}

// quadletError makes an *Error of an error of Quadlet's conversion.
var unsupportedKeyRE = regexp.MustCompile(`unsupported key '([^']*)' in group '([^']*)'`)

func (p *reader) quadletError(err error) error {
	if m := unsupportedKeyRE.FindStringSubmatch(err.Error()); m != nil {
		return p.at(m[2], m[1], fmt.Sprintf("unknown key: [%s] takes the keys of podman-systemd.unit(5) (Podman 5.8)", m[2]))
	}
	return &Error{Path: p.path, Section: SectionContainer, Msg: "as Quadlet reads it: " + err.Error()}
}

// checkRun checks the command line as lazypod serve will: Podman's run
// flags parse it, with the specifiers expanded to sample values. A
// command line with environment references ($VAR) that does not parse
// is left for lazypod serve to check, once systemd has expanded them.
func (p *reader) checkRun() error {
	d := p.d
	words := make([]string, len(d.Run))
	dollar := false
	for i, w := range d.Run {
		s, err := sample(w)
		if err != nil {
			return &Error{Path: p.path, Section: SectionContainer, Msg: fmt.Sprintf("in %q: %v", w, err)}
		}
		words[i] = s
		dollar = dollar || strings.Contains(w, "$")
	}
	run, err := podman.CheckRun(words)
	if err != nil {
		if dollar {
			return nil
		}
		msg := strings.TrimPrefix(err.Error(), "podman run option ")
		if re := (*podman.RunError)(nil); errors.As(err, &re) {
			msg = "podman run refuses the container's settings: " + re.Msg
		}
		return &Error{Path: p.path, Section: SectionContainer, Msg: msg}
	}
	if d.StopTimeout == nil {
		d.StopTimeout = run.StopTimeout
	}
	n := len(run.Options)
	d.Run = append(podman.SortOptions(d.Run[:n]), d.Run[n:]...)
	return nil
}

// readPublish reads PublishPort= into listeners.
func (p *reader) readPublish() error {
	for _, v := range p.f.LookupAll(SectionContainer, "PublishPort") {
		v = strings.TrimSpace(v)
		line := p.lineOf(SectionContainer, "PublishPort")
		pub, err := parsePublishPort(v)
		if err == nil {
			err = p.addListener(pub, line)
		}
		if err != nil {
			return &Error{Path: p.path, Line: line, Section: SectionContainer, Key: "PublishPort", Value: v, Msg: err.Error()}
		}
	}
	return nil
}

// check checks a value of a key with its specifiers expanded to samples.
func (p *reader) check(section, key, v string, check func(string) error) error {
	s, err := sample(v)
	if err == nil {
		err = check(s)
	}
	if err != nil {
		return &Error{Path: p.path, Line: p.lastLine(section, key), Section: section, Key: key, Value: v, Msg: err.Error()}
	}
	return nil
}

// lazypod reads [Lazypod]. As in systemd, a later value of a key
// overrides an earlier one, and an empty value resets the key to its
// default; ListenUnix= adds a listener each time.
func (p *reader) lazypod() error {
	for _, e := range entries(p.f, SectionLazypod) {
		line := p.lineOf(SectionLazypod, e.Key)
		fail := func(msg string) error {
			return &Error{Path: p.path, Line: line, Section: SectionLazypod, Key: e.Key, Value: e.Value, Msg: msg}
		}
		k, ok := lazypodKeys[e.Key]
		if !ok {
			return fail(fmt.Sprintf("unknown key: valid keys in [%s] are %s", SectionLazypod, keyNames(lazypodKeys)))
		}
		v := strings.TrimSpace(e.Value)
		checked, err := sample(v)
		if err == nil {
			err = k(p, v, checked, line)
		}
		if err != nil {
			return fail(err.Error())
		}
	}
	return nil
}

// keyDef sets a key of [Lazypod] from its value as written, v, and the
// value with its specifiers expanded to samples, s; "" resets it.
type keyDef func(p *reader, v, s string, line int) error

func keyNames(keys map[string]keyDef) string {
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k+"=")
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}

func str(field func(*Definition) *string, check func(string) error) keyDef {
	return func(p *reader, v, s string, _ int) error {
		if v != "" {
			if err := check(s); err != nil {
				return err
			}
		}
		*field(p.d) = v
		return nil
	}
}

func duration(field func(*Definition) **time.Duration, positive bool) keyDef {
	return func(p *reader, _, s string, _ int) error {
		if s == "" {
			*field(p.d) = nil
			return nil
		}
		parse := spec.ParseDuration
		if positive {
			parse = spec.ParsePositiveDuration
		}
		d, err := parse(s)
		if err != nil {
			return err
		}
		*field(p.d) = &d
		return nil
	}
}

func boolean(field func(*Definition) **bool) keyDef {
	return func(p *reader, _, s string, _ int) error {
		if s == "" {
			*field(p.d) = nil
			return nil
		}
		b, err := spec.ParseBool(s)
		if err != nil {
			return err
		}
		*field(p.d) = &b
		return nil
	}
}

var lazypodKeys = map[string]keyDef{
	"ListenUnix": func(p *reader, v, s string, line int) error {
		if v == "" {
			p.d.Listeners = slices.DeleteFunc(p.d.Listeners, func(l Listener) bool { return l.Network == NetworkUnix })
			p.pubs = slices.DeleteFunc(p.pubs, func(q publish) bool { return q.Network == NetworkUnix })
			return nil
		}
		l, err := parseListenUnix(s)
		if err != nil {
			return err
		}
		i, j := strings.LastIndexByte(v, ':'), strings.LastIndexByte(s, ':')
		if i < 0 || v[i:] != s[j:] {
			return errors.New("the container port must be a number, without specifiers: it names the socket")
		}
		l.Address = v[:i] // as written, for systemd to expand
		return p.addListener(publish{Listener: l, fuzzy: hasSpecifier(v)}, line)
	},
	"Ready": func(p *reader, v, s string, _ int) error {
		if v == "" {
			p.d.Ready = spec.Probe{}
			return nil
		}
		if _, err := spec.ParseProbe(s); err != nil {
			return err
		}
		probe, err := spec.ParseProbe(v)
		p.d.Ready = probe
		return err
	},
	"ReadyTimeout":    duration(func(d *Definition) **time.Duration { return &d.ReadyTimeout }, true),
	"IdleTimeout":     duration(func(d *Definition) **time.Duration { return &d.IdleTimeout }, false),
	"StopTimeout":     duration(func(d *Definition) **time.Duration { return &d.StopTimeout }, true),
	"UDPTimeout":      duration(func(d *Definition) **time.Duration { return &d.UDPTimeout }, true),
	"ExitOnIdle":      boolean(func(d *Definition) **bool { return &d.ExitOnIdle }),
	"FlowIdleTimeout": duration(func(d *Definition) **time.Duration { return &d.FlowIdleTimeout }, true),
	"IdleAction": func(p *reader, _, s string, _ int) error {
		if s == "" {
			p.d.IdleAction = ""
			return nil
		}
		a, err := spec.ParseIdleAction(s)
		p.d.IdleAction = a
		return err
	},
	"MaxConnections": func(p *reader, _, s string, _ int) error {
		if s == "" {
			p.d.MaxConnections = 0
			return nil
		}
		n, err := spec.ParseMaxConnections(s)
		p.d.MaxConnections = n
		return err
	},
	"RollbackWindow": duration(func(d *Definition) **time.Duration { return &d.RollbackWindow }, false),
	"UpdateInterval": duration(func(d *Definition) **time.Duration { return &d.UpdateInterval }, false),
	"AuthFile":       str(func(d *Definition) *string { return &d.AuthFile }, spec.CheckAbsPath),
	"TLSVerify":      boolean(func(d *Definition) **bool { return &d.TLSVerify }),
	"CPUs": func(p *reader, _, s string, _ int) error {
		if s == "" {
			p.d.CPUs = 0
			return nil
		}
		n, err := spec.ParseCPUs(s)
		p.d.CPUs = n
		return err
	},
	"LogLevel": func(p *reader, _, s string, _ int) error {
		if s == "" {
			p.d.LogLevel = ""
			return nil
		}
		l, err := spec.ParseLogLevel(s)
		p.d.LogLevel = l
		return err
	},
	"PodmanURL":   str(func(d *Definition) *string { return &d.PodmanURL }, spec.CheckPodmanURL),
	"MetricsFile": str(func(d *Definition) *string { return &d.MetricsFile }, spec.CheckMetricsFile),
	"Needs": func(p *reader, v, _ string, _ int) error {
		if v == "" {
			p.d.Needs = nil
			return nil
		}
		for _, n := range strings.Fields(v) {
			n = strings.TrimSuffix(n, ".lazypod")
			switch {
			case spec.CheckName(n) != nil:
				return fmt.Errorf("%q is not a service lazypod runs: name another definition file, e.g. Needs=db for db.lazypod (templates cannot be needed)", n)
			case n == p.d.Service():
				return errors.New("a service cannot need itself")
			case !slices.Contains(p.d.Needs, n):
				p.d.Needs = append(p.d.Needs, n)
			}
		}
		return nil
	},
}

// addListener adds a listener unless it binds where another does.
func (p *reader) addListener(pub publish, line int) error {
	for i, q := range p.pubs {
		if pub.fuzzy || q.fuzzy {
			continue // known once systemd expands the specifiers
		}
		if pub.Network == NetworkUnix && q.Network == NetworkUnix && pub.Address == q.Address {
			return fmt.Errorf("line %d listens on this path already: remove one", p.pubLine[i])
		}
		if pub.Network != NetworkUnix && pub.overlaps(q) {
			return fmt.Errorf("binds the address of line %d (%s %s) again: remove one or change its host port", p.pubLine[i], q.Network, q.Address)
		}
	}
	p.pubs = append(p.pubs, pub)
	p.pubLine = append(p.pubLine, line)
	p.d.Listeners = append(p.d.Listeners, pub.Listener)
	return nil
}

// finish checks what involves several keys and applies defaults.
func (p *reader) finish() error {
	d := p.d
	if len(d.Listeners) == 0 {
		return &Error{Path: p.path, Section: SectionContainer,
			Msg: "no listener: add PublishPort=HOSTPORT:CONTAINERPORT to [Container] or ListenUnix=PATH:CONTAINERPORT to [Lazypod]"}
	}
	if !hasSpecifier(d.Image) {
		if err := d.AutoUpdate.CheckImage(d.Image); err != nil {
			return p.at(SectionContainer, "Image", err.Error())
		}
	}
	if d.AutoUpdate == "" {
		if d.RollbackWindow != nil {
			return p.at(SectionLazypod, "RollbackWindow", "only updates roll back: set AutoUpdate= in [Container] or remove the line")
		}
		if d.UpdateInterval != nil {
			return p.at(SectionLazypod, "UpdateInterval", "only updates are checked: set AutoUpdate= in [Container] or remove the line")
		}
	}
	if probe := d.Probe(); probe.NeedsTCP() {
		tcp := slices.ContainsFunc(d.Listeners, func(l Listener) bool { return l.Network != NetworkUDP })
		if !tcp {
			return p.at(SectionLazypod, "Ready", "probe "+string(probe.Kind)+" needs a TCP or unix listener, and every listener is UDP: choose exec:COMMAND, healthcheck, notify or none")
		}
	}
	return nil
}
