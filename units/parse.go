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

	"github.com/coreos/go-systemd/v22/unit"
	"github.com/lazypod/lazypod/internal/spec"
)

// Ext is the definition file's extension.
const Ext = ".lazypod"

// Sections of a definition file.
const (
	SectionContainer = "Container"
	SectionLazypod   = "Lazypod"
)

// passthroughSections are appended to the generated units.
var passthroughSections = []string{"Unit", "Socket", "Service", "Install"}

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
		"Type":      "lazypod serve reports readiness with sd_notify (Type=notify)",
		"Sockets":   "lazypod passes every socket of the definition",
	},
}

// passthroughKeyRE is the shape of a systemd setting name.
var passthroughKeyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

// ParseFile reads and parses the definition file at path.
func ParseFile(path string) (*Definition, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading definition: %w", err)
	}
	defer f.Close()
	return Parse(path, f)
}

// Parse parses and checks a definition read from r. Its name is path's
// base name without Ext. Every problem is an *Error naming the file, the
// line, the section and the key, and saying how to fix it; Parse returns
// the first one.
func Parse(path string, r io.Reader) (*Definition, error) {
	base := filepath.Base(path)
	name, ok := strings.CutSuffix(base, Ext)
	if !ok {
		return nil, &Error{Path: path, Msg: "not a definition file: name it NAME" + Ext}
	}
	if err := checkName(name); err != nil {
		return nil, &Error{Path: path, Msg: fmt.Sprintf("file name %q is %v", name, err)}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading definition %s: %w", path, err)
	}
	data := string(b)
	lines, err := scanLines(path, data)
	if err != nil {
		return nil, err
	}
	sections, err := unit.DeserializeSections(strings.NewReader(data))
	if err != nil {
		return nil, &Error{Path: path, Msg: fmt.Sprintf("parsing: %v", err)}
	}
	p := &parser{
		d:     &Definition{Name: name, Path: path},
		path:  path,
		lines: lines,
		seen:  map[string]int{},
		raw:   map[string]string{},
		nth:   map[scanned]int{},
	}
	for _, s := range sections {
		if err := p.section(s); err != nil {
			return nil, err
		}
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return p.d, nil
}

// parser is the state of one Parse.
type parser struct {
	d     *Definition
	path  string
	lines []scanned
	nth   map[scanned]int   // occurrences so far of a section header or key (line 0)
	seen  map[string]int    // "Section/Key" → line of its first value
	raw   map[string]string // "Section/Key" → its first value
	// pubs are the listeners with their parsed addresses, for overlaps.
	pubs    []publish
	pubLine []int
}

// lineOf returns the line of the next occurrence of a section header
// (key "") or of a key in a section, in file order; 0 if the scan did not
// see it.
func (p *parser) lineOf(section, key string) int {
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

func (p *parser) section(s *unit.UnitSection) error {
	line := p.lineOf(s.Section, "")
	var keys map[string]keyDef
	switch s.Section {
	case SectionContainer:
		keys = containerKeys
	case SectionLazypod:
		keys = lazypodKeys
	default:
		if !slices.Contains(passthroughSections, s.Section) {
			return &Error{Path: p.path, Line: line, Section: s.Section,
				Msg: "unknown section: valid sections are [Container], [Lazypod], and [Unit], [Socket], [Service], [Install] to pass through to the units"}
		}
	}
	for _, e := range s.Entries {
		value := joinValue(e.Value)
		line := p.lineOf(s.Section, e.Name)
		fail := func(msg string) error {
			return &Error{Path: p.path, Line: line, Section: s.Section, Key: e.Name, Value: value, Msg: msg}
		}
		if keys == nil {
			if err := p.passthrough(s.Section, e.Name, value); err != nil {
				return fail(err.Error())
			}
			continue
		}
		k, ok := keys[e.Name]
		if !ok {
			return fail(fmt.Sprintf("unknown key: valid keys in [%s] are %s", s.Section, keyNames(keys)))
		}
		id := s.Section + "/" + e.Name
		first, dup := p.seen[id]
		if dup && !k.repeat {
			return fail(fmt.Sprintf("set twice (also on line %d): keep one", first))
		}
		if !dup {
			p.seen[id], p.raw[id] = line, value
		}
		if value == "" {
			return fail("empty value: give a value, or remove the line for the default")
		}
		if err := k.set(p, value, line); err != nil {
			return fail(err.Error())
		}
	}
	return nil
}

func (p *parser) passthrough(section, key, value string) error {
	if !passthroughKeyRE.MatchString(key) {
		return errors.New("not a systemd setting name: use letters, digits, '_' and '-'")
	}
	if why, ok := managedKeys[section][key]; ok {
		return fmt.Errorf("lazypod writes this setting itself: %s", why)
	}
	if p.d.Passthrough == nil {
		p.d.Passthrough = map[string][]Entry{}
	}
	p.d.Passthrough[section] = append(p.d.Passthrough[section], Entry{Key: key, Value: value})
	return nil
}

// keyDef is one key of [Container] or [Lazypod].
type keyDef struct {
	repeat bool // may be given more than once
	set    func(p *parser, value string, line int) error
}

func keyNames(keys map[string]keyDef) string {
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k+"=")
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}

func str(field func(*Definition) *string, check func(string) error) func(*parser, string, int) error {
	return func(p *parser, v string, _ int) error {
		if check != nil {
			if err := check(v); err != nil {
				return err
			}
		}
		*field(p.d) = v
		return nil
	}
}

func list(field func(*Definition) *[]string, check func(string) error) func(*parser, string, int) error {
	return func(p *parser, v string, _ int) error {
		if check != nil {
			if err := check(v); err != nil {
				return err
			}
		}
		*field(p.d) = append(*field(p.d), v)
		return nil
	}
}

// words is a key holding several systemd-quoted KEY=VALUE words.
func words(field func(*Definition) *[]string, check func(string) error) func(*parser, string, int) error {
	return func(p *parser, v string, _ int) error {
		ws, err := splitWords(v)
		if err != nil {
			return fmt.Errorf("%v: quote words as systemd does, e.g. \"KEY=two words\"", err)
		}
		for _, w := range ws {
			if err := check(w); err != nil {
				return err
			}
		}
		*field(p.d) = append(*field(p.d), ws...)
		return nil
	}
}

func duration(field func(*Definition) **time.Duration, positive bool) func(*parser, string, int) error {
	return func(p *parser, v string, _ int) error {
		parse := spec.ParseDuration
		if positive {
			parse = spec.ParsePositiveDuration
		}
		d, err := parse(v)
		if err != nil {
			return err
		}
		*field(p.d) = &d
		return nil
	}
}

func boolean(field func(*Definition) **bool) func(*parser, string, int) error {
	return func(p *parser, v string, _ int) error {
		b, err := spec.ParseBool(v)
		if err != nil {
			return err
		}
		*field(p.d) = &b
		return nil
	}
}

var containerKeys = map[string]keyDef{
	"Image":         {set: str(func(d *Definition) *string { return &d.Image }, spec.CheckImage)},
	"ContainerName": {set: str(func(d *Definition) *string { return &d.ContainerName }, checkName)},
	"Exec": {set: func(p *parser, v string, _ int) error {
		ws, err := splitWords(v)
		if err != nil {
			return fmt.Errorf("%v: quote words as systemd does, e.g. /bin/app --title \"two words\"", err)
		}
		if len(ws) == 0 {
			return errors.New("no command: give the command and its arguments, e.g. /bin/app --port 80")
		}
		p.d.Exec = ws
		return nil
	}},
	"Environment":     {repeat: true, set: words(func(d *Definition) *[]string { return &d.Environment }, checkKeyValue)},
	"EnvironmentFile": {repeat: true, set: list(func(d *Definition) *[]string { return &d.EnvironmentFiles }, checkAbsPath)},
	"Volume":          {repeat: true, set: list(func(d *Definition) *[]string { return &d.Volumes }, checkVolume)},
	"Label": {repeat: true, set: words(func(d *Definition) *[]string { return &d.Labels }, func(w string) error {
		if err := checkKeyValue(w); err != nil {
			return err
		}
		return spec.CheckLabel(w)
	})},
	"User":    {set: str(func(d *Definition) *string { return &d.User }, userPart)},
	"Group":   {set: str(func(d *Definition) *string { return &d.Group }, userPart)},
	"Network": {set: str(func(d *Definition) *string { return &d.Network }, spec.CheckNetwork)},
	"PublishPort": {repeat: true, set: func(p *parser, v string, line int) error {
		pub, err := parsePublishPort(v)
		if err != nil {
			return err
		}
		return p.addListener(pub, line)
	}},
	"AutoUpdate": {set: func(p *parser, v string, _ int) error {
		if pol, err := spec.ParsePolicy(v); err == nil && pol.Enabled() {
			p.d.AutoUpdate = pol
			return nil
		}
		return errors.New(`valid policies are "registry", "local": remove the line for no updates`)
	}},
	"HealthCmd": {set: str(func(d *Definition) *string { return &d.HealthCmd }, func(v string) error {
		if v == "none" {
			return errors.New("HealthCmd=none: to start serving without a probe, set Ready=none in [Lazypod]")
		}
		return spec.CheckProbeCommand(v)
	})},
	"Notify": {set: func(p *parser, v string, _ int) error {
		if v == "healthy" {
			p.d.Notify = NotifyHealthy
			return nil
		}
		b, err := spec.ParseBool(v)
		if err != nil {
			return errors.New("valid values are healthy, yes and no")
		}
		p.d.Notify = NotifyNo
		if b {
			p.d.Notify = NotifyYes
		}
		return nil
	}},
	"Memory": {set: func(p *parser, v string, _ int) error {
		size, err := spec.ParseSize(v)
		p.d.Memory = size
		return err
	}},
}

var lazypodKeys = map[string]keyDef{
	"ListenUnix": {repeat: true, set: func(p *parser, v string, line int) error {
		l, err := parseListenUnix(v)
		if err != nil {
			return err
		}
		return p.addListener(publish{Listener: l}, line)
	}},
	"Ready": {set: func(p *parser, v string, _ int) error {
		probe, err := spec.ParseProbe(v)
		p.d.Ready = probe
		return err
	}},
	"ReadyTimeout":    {set: duration(func(d *Definition) **time.Duration { return &d.ReadyTimeout }, true)},
	"IdleTimeout":     {set: duration(func(d *Definition) **time.Duration { return &d.IdleTimeout }, false)},
	"StopTimeout":     {set: duration(func(d *Definition) **time.Duration { return &d.StopTimeout }, true)},
	"UDPTimeout":      {set: duration(func(d *Definition) **time.Duration { return &d.UDPTimeout }, true)},
	"ExitOnIdle":      {set: boolean(func(d *Definition) **bool { return &d.ExitOnIdle })},
	"FlowIdleTimeout": {set: duration(func(d *Definition) **time.Duration { return &d.FlowIdleTimeout }, true)},
	"MaxConnections": {set: func(p *parser, v string, _ int) error {
		n, err := spec.ParseMaxConnections(v)
		p.d.MaxConnections = n
		return err
	}},
	"RollbackWindow": {set: duration(func(d *Definition) **time.Duration { return &d.RollbackWindow }, false)},
	"UpdateInterval": {set: duration(func(d *Definition) **time.Duration { return &d.UpdateInterval }, false)},
	"AuthFile":       {set: str(func(d *Definition) *string { return &d.AuthFile }, checkAbsPath)},
	"TLSVerify":      {set: boolean(func(d *Definition) **bool { return &d.TLSVerify })},
	"CPUs": {set: func(p *parser, v string, _ int) error {
		n, err := spec.ParseCPUs(v)
		p.d.CPUs = n
		return err
	}},
	"LogLevel": {set: func(p *parser, v string, _ int) error {
		l, err := spec.ParseLogLevel(v)
		p.d.LogLevel = l
		return err
	}},
	"PodmanURL": {set: str(func(d *Definition) *string { return &d.PodmanURL }, spec.CheckPodmanURL)},
}

// addListener adds a listener unless it binds where another does.
func (p *parser) addListener(pub publish, line int) error {
	for i, q := range p.pubs {
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
func (p *parser) finish() error {
	d := p.d
	at := func(section, key, msg string) error {
		id := section + "/" + key
		return &Error{Path: p.path, Line: p.seen[id], Section: section, Key: key, Value: p.raw[id], Msg: msg}
	}
	if d.Image == "" {
		return &Error{Path: p.path, Section: SectionContainer,
			Msg: "missing Image=: name the image to run, e.g. Image=docker.io/library/nginx:latest"}
	}
	if len(d.Listeners) == 0 {
		return &Error{Path: p.path, Section: SectionContainer,
			Msg: "no listener: add PublishPort=HOSTPORT:CONTAINERPORT to [Container] or ListenUnix=PATH:CONTAINERPORT to [Lazypod]"}
	}
	if d.ContainerName == "" {
		d.ContainerName = d.Name
	}
	if d.Group != "" && d.User == "" {
		return at(SectionContainer, "Group", "Group= needs User=: add User=, e.g. User=1000")
	}
	if err := d.AutoUpdate.CheckImage(d.Image); err != nil {
		return at(SectionContainer, "Image", err.Error())
	}
	if d.AutoUpdate == "" {
		if d.RollbackWindow != nil {
			return at(SectionLazypod, "RollbackWindow", "only updates roll back: set AutoUpdate= in [Container] or remove the line")
		}
		if d.UpdateInterval != nil {
			return at(SectionLazypod, "UpdateInterval", "only updates are checked: set AutoUpdate= in [Container] or remove the line")
		}
	}
	if d.Ready.Kind == "" && d.HealthCmd != "" && d.Notify == NotifyYes {
		return at(SectionContainer, "Notify", "HealthCmd= and Notify=yes both say when the container is ready: keep one, or choose with Ready= in [Lazypod]")
	}
	if probe := d.Probe(); probe.NeedsTCP() {
		tcp := slices.ContainsFunc(d.Listeners, func(l Listener) bool { return l.Network != NetworkUDP })
		if !tcp {
			return at(SectionLazypod, "Ready", "probe "+string(probe.Kind)+" needs a TCP or unix listener, and every listener is UDP: choose exec:COMMAND, healthcheck, notify or none")
		}
	}
	return nil
}
