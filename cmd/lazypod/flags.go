package main

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lazypod/lazypod/launcher"
	"go.podman.io/image/v5/docker/reference"
)

// errUsage marks errors in what the user typed: the CLI exits 2 for them.
var errUsage = errors.New("usage")

// usageErr is a one-line complaint about a flag value, naming the value and
// how to fix it.
type usageErr struct{ msg string }

func (e *usageErr) Error() string        { return e.msg }
func (e *usageErr) Is(target error) bool { return target == errUsage }

func usagef(format string, args ...any) error {
	return &usageErr{msg: fmt.Sprintf(format, args...)}
}

// portSpec is one --port value: [FDNAME=]PORT[/tcp|/udp].
type portSpec struct {
	FDName string
	Port   uint16
	Proto  launcher.Protocol // "" when not given: taken from the socket's type
}

func (p portSpec) String() string {
	s := strconv.Itoa(int(p.Port))
	if p.Proto != "" {
		s += "/" + string(p.Proto)
	}
	if p.FDName != "" {
		s = p.FDName + "=" + s
	}
	return s
}

// parsePort parses a --port value.
func parsePort(s string) (portSpec, error) {
	var p portSpec
	rest := s
	if name, after, ok := strings.Cut(s, "="); ok {
		if err := checkFDName(name); err != nil {
			return p, usagef("invalid --port %q: %v", s, err)
		}
		p.FDName, rest = name, after
	}
	num, proto, hasProto := strings.Cut(rest, "/")
	if hasProto {
		switch launcher.Protocol(proto) {
		case launcher.ProtoTCP, launcher.ProtoUDP:
			p.Proto = launcher.Protocol(proto)
		default:
			return p, usagef("invalid --port %q: protocol %q is not tcp or udp", s, proto)
		}
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return p, usagef("invalid --port %q: want [FDNAME=]PORT[/tcp|/udp] with PORT from 1 to 65535, e.g. web=8080/tcp", s)
	}
	p.Port = uint16(n)
	return p, nil
}

// fdNameRE is what systemd accepts in FileDescriptorName=: printable ASCII
// without ':' or spaces, at most 255 characters.
var fdNameRE = regexp.MustCompile(`^[!-9;-~]{1,255}$`)

func checkFDName(name string) error {
	if !fdNameRE.MatchString(name) {
		return fmt.Errorf("socket name %q must be 1-255 printable characters without ':' or spaces, as in FileDescriptorName=", name)
	}
	return nil
}

// listenSpec is one --listen value: [FDNAME=]ADDR, where ADDR is
// HOST:PORT, unix:/PATH or udp:HOST:PORT.
type listenSpec struct {
	FDName  string
	Network string // "tcp", "unix" or "udp"
	Addr    string
}

func parseListen(s string) (listenSpec, error) {
	var l listenSpec
	rest := s
	// A name comes before '=', and an address never holds '=' before its
	// scheme or host, so cut only when the part before '=' has no ':' or '/'.
	if name, after, ok := strings.Cut(s, "="); ok && !strings.ContainsAny(name, ":/") {
		if err := checkFDName(name); err != nil {
			return l, usagef("invalid --listen %q: %v", s, err)
		}
		l.FDName, rest = name, after
	}
	switch {
	case strings.HasPrefix(rest, "unix:"):
		l.Network, l.Addr = "unix", strings.TrimPrefix(rest, "unix:")
		if !strings.HasPrefix(l.Addr, "/") && !strings.HasPrefix(l.Addr, "@") {
			return l, usagef("invalid --listen %q: a unix socket needs an absolute path, e.g. unix:/run/app.sock", s)
		}
		return l, nil
	case strings.HasPrefix(rest, "udp:"):
		l.Network, l.Addr = "udp", strings.TrimPrefix(rest, "udp:")
	case strings.HasPrefix(rest, "tcp:"):
		l.Network, l.Addr = "tcp", strings.TrimPrefix(rest, "tcp:")
	default:
		l.Network, l.Addr = "tcp", rest
	}
	host, port, err := splitHostPort(l.Addr)
	if err != nil {
		return l, usagef("invalid --listen %q: want HOST:PORT, unix:/PATH or udp:HOST:PORT, e.g. 127.0.0.1:8080", s)
	}
	_ = host
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return l, usagef("invalid --listen %q: port %q is not a number from 0 to 65535", s, port)
	}
	return l, nil
}

func splitHostPort(addr string) (host, port string, err error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", errors.New("missing port")
	}
	host, port = addr[:i], addr[i+1:]
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", "", errors.New("bad IPv6 literal")
		}
	} else if strings.Contains(host, ":") {
		return "", "", errors.New("IPv6 address needs brackets")
	}
	if port == "" {
		return "", "", errors.New("missing port")
	}
	return host, port, nil
}

// parseDuration parses a duration flag: a Go duration ("90s", "5m", "1h30m")
// or a plain number of seconds. Negative values are refused.
func parseDuration(flagName, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseUint(s, 10, 32)
		if nerr != nil {
			return 0, usagef("invalid --%s %q: use a duration like 90s, 5m or 1h30m", flagName, s)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, usagef("invalid --%s %q: must not be negative", flagName, s)
	}
	return d, nil
}

// parseMemory parses a podman-style memory size: a number of bytes with an
// optional b, k, m or g suffix.
func parseMemory(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "b")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || n*float64(mult) > math.MaxInt64 {
		return 0, usagef("invalid --memory %q: use a size like 512m or 2g", s)
	}
	b := int64(n * float64(mult))
	if b < 6<<20 {
		return 0, usagef("invalid --memory %q: Podman's minimum is 6m", s)
	}
	return b, nil
}

func parseCPUs(s string) (float64, error) {
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return 0, usagef("invalid --cpus %q: use a positive number of CPUs like 0.5 or 2", s)
	}
	return n, nil
}

// parseKeyValue checks a K=V value of --env or --label.
func parseKeyValue(flagName, s string) (key, value string, err error) {
	key, value, ok := strings.Cut(s, "=")
	if !ok || key == "" || strings.ContainsAny(key, " \t\n") {
		return "", "", usagef("invalid --%s %q: want KEY=VALUE", flagName, s)
	}
	return key, value, nil
}

// systemdOwnVars are what systemd tells lazypod itself; a bare KEY line in
// an env file never passes them on to the container.
var systemdOwnVars = map[string]bool{
	"LISTEN_PID": true, "LISTEN_FDS": true, "LISTEN_FDNAMES": true,
	"NOTIFY_SOCKET": true, "WATCHDOG_PID": true, "WATCHDOG_USEC": true,
}

// readEnvFile reads a podman-style env file: KEY=VALUE lines, blank lines
// and # comments skipped, a bare KEY taking its value from lazypod's own
// environment.
func readEnvFile(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, usagef("invalid --env-file %q: %v", name, errors.Unwrap(err))
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		key, _, hasValue := strings.Cut(t, "=")
		if key == "" || strings.ContainsAny(key, " \t") {
			return nil, usagef("invalid --env-file %s:%d: %q is not KEY=VALUE", name, line, t)
		}
		if !hasValue {
			v, ok := os.LookupEnv(key)
			if !ok || systemdOwnVars[key] {
				continue
			}
			t = key + "=" + v
		}
		env = append(env, t)
	}
	if err := sc.Err(); err != nil {
		return nil, usagef("invalid --env-file %q: %v", name, err)
	}
	return env, nil
}

// parseVolume checks a --volume value SRC:DST[:OPTS]: DST absolute, SRC an
// absolute host path or a volume name.
func parseVolume(s string) (string, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || !path.IsAbs(parts[1]) {
		return "", usagef("invalid --volume %q: want SRC:DST[:OPTS] with an absolute DST, e.g. /srv/data:/data:ro or data:/data", s)
	}
	if !strings.HasPrefix(parts[0], "/") && !volumeNameRE.MatchString(parts[0]) {
		return "", usagef("invalid --volume %q: %q is neither an absolute host path nor a volume name", s, parts[0])
	}
	return s, nil
}

var (
	volumeNameRE    = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	containerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
)

// parseImage checks an image reference the way Podman will read it.
func parseImage(s string) (string, error) {
	if s == "" {
		return "", usagef("missing --image: name the container image to run, e.g. --image docker.io/library/nginx:latest")
	}
	if _, err := reference.ParseNormalizedNamed(s); err != nil {
		return "", usagef("invalid --image %q: %v: use a reference like docker.io/library/nginx:1.27 or localhost/app:latest", s, err)
	}
	return s, nil
}

// defaultName derives a service name from an image reference: its last path
// element without tag or digest ("docker.io/library/nginx:1.27" → "nginx").
func defaultName(image string) string {
	name := image
	if named, err := reference.ParseNormalizedNamed(image); err == nil {
		name = reference.Path(named)
	}
	name = path.Base(name)
	if i := strings.IndexAny(name, ":@"); i >= 0 {
		name = name[:i]
	}
	return name
}

func checkName(s string) error {
	if !containerNameRE.MatchString(s) || len(s) > 200 {
		return usagef("invalid --name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", s)
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// checkPodmanURL checks the scheme of --podman-url; the bindings accept
// unix, tcp and ssh.
func checkPodmanURL(s string) error {
	for _, scheme := range []string{"unix://", "tcp://", "ssh://"} {
		if strings.HasPrefix(s, scheme) && len(s) > len(scheme) {
			return nil
		}
	}
	return usagef("invalid --podman-url %q: use unix:///PATH, tcp://HOST:PORT or ssh://USER@HOST/PATH, e.g. unix:///run/podman/podman.sock", s)
}
