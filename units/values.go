package units

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.podman.io/image/v5/docker/reference"
)

// The checks here accept what lazypod serve accepts (cmd/lazypod's flag
// parsing and the launcher's Config.Validate), so that a definition that
// parses gives a service that starts.

// nameRE is Podman's rule for container names; lazypod serve uses it for
// service names too.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// maxName is the longest service name lazypod serve accepts.
const maxName = 200

func checkName(s string) error {
	if !nameRE.MatchString(s) || len(s) > maxName {
		return fmt.Errorf("not a valid container name: use up to %d letters, digits, '_', '.' and '-', starting with a letter or digit", maxName)
	}
	return nil
}

func checkImage(s string) error {
	if _, err := reference.ParseNormalizedNamed(s); err != nil {
		return fmt.Errorf("%v: use a reference like docker.io/library/nginx:1.27 or localhost/app:latest", err)
	}
	return nil
}

// checkRegistryImage is updater.Policy.CheckImage for the registry policy:
// the reference names its registry and is not pinned by digest.
func checkRegistryImage(s string) error {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return checkImage(s)
	}
	first, _, ok := strings.Cut(s, "/")
	if !ok || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		return fmt.Errorf("AutoUpdate=registry needs an image that names its registry: write Image=%s", reference.TagNameOnly(named).String())
	}
	if _, ok := named.(reference.Digested); ok {
		return errors.New("AutoUpdate=registry cannot update an image pinned by digest: use a tag")
	}
	return nil
}

// parseDuration is lazypod serve's: a Go duration or a number of seconds,
// not negative.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseUint(s, 10, 32)
		if nerr != nil {
			return 0, errors.New("not a duration: use a Go duration like 90s, 5m or 1h30m, or a number of seconds (systemd's 5min is not understood)")
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, errors.New("negative duration: use 0 or more, e.g. 30s")
	}
	return d, nil
}

// parseBool is systemd's parse_boolean.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "yes", "y", "true", "t", "on":
		return true, nil
	case "0", "no", "n", "false", "f", "off":
		return false, nil
	}
	return false, errors.New("not a boolean: use yes or no (also true/false, on/off, 1/0)")
}

// checkMemory is lazypod serve's --memory: bytes with an optional b, k, m
// or g suffix, at least Podman's minimum of 6m.
func checkMemory(s string) error {
	t := strings.ToLower(s)
	t = strings.TrimSuffix(t, "b")
	mult := float64(1)
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
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) || n*mult > math.MaxInt64 || strings.ContainsAny(t, "xXpP_") {
		return errors.New("not a size: use a size like 512m or 2g")
	}
	if n*mult < 6<<20 {
		return errors.New("below Podman's minimum of 6m: use 6m or more")
	}
	return nil
}

func checkCPUs(s string) (float64, error) {
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) || strings.ContainsAny(s, "xXpP_") {
		return 0, errors.New("not a number of CPUs: use a positive number like 0.5 or 2")
	}
	return n, nil
}

// checkKeyValue checks an Environment= or Label= word: KEY=VALUE with a
// key and no space in it.
func checkKeyValue(s string) error {
	key, _, ok := strings.Cut(s, "=")
	if !ok || key == "" || strings.ContainsAny(key, " \t\n\r") {
		return fmt.Errorf("%q is not KEY=VALUE: quote a pair that holds spaces, e.g. \"KEY=two words\"", s)
	}
	return nil
}

// volumeNameRE is what lazypod serve accepts as a named volume.
var volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// checkVolume is lazypod serve's --volume: SRC:DST[:OPTS], SRC an
// absolute host path or a volume name, DST absolute, no empty option.
func checkVolume(s string) error {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || !path.IsAbs(parts[1]) {
		return errors.New("want SRC:DST[:OPTS] with an absolute DST, e.g. /srv/data:/data:ro or data:/data")
	}
	if !strings.HasPrefix(parts[0], "/") && !volumeNameRE.MatchString(parts[0]) {
		msg := fmt.Sprintf("%q is neither an absolute host path nor a volume name", parts[0])
		if strings.Contains(parts[0], "%") {
			msg += " (systemd specifiers such as %h are not expanded)"
		}
		return errors.New(msg + ": write the absolute path, e.g. /srv/data:/data")
	}
	if len(parts) == 3 {
		for o := range strings.SplitSeq(parts[2], ",") {
			if o == "" {
				return errors.New("empty mount option: separate options with single commas, e.g. ro,z")
			}
		}
	}
	return nil
}

// checkAbsPath checks a file path lazypod serve opens.
func checkAbsPath(s string) error {
	if !path.IsAbs(s) {
		msg := "not an absolute path"
		if strings.Contains(s, "%") {
			msg += " (systemd specifiers such as %h are not expanded)"
		}
		return errors.New(msg + ": write it from /, e.g. /etc/app/app.env")
	}
	return nil
}

// Probe kinds lazypod serve's --ready accepts.
const validProbes = `valid probes are "tcp", "http:/PATH", "exec:COMMAND", "healthcheck", "notify", "none"`

// checkProbe is the launcher's ParseProbe.
func checkProbe(s string) error {
	kind, arg, hasArg := strings.Cut(s, ":")
	ok := false
	switch kind {
	case "tcp", "healthcheck", "notify", "none":
		ok = !hasArg
	case "http":
		ok = strings.HasPrefix(arg, "/") && !strings.ContainsAny(arg, " \t")
	case "exec":
		if ok = len(strings.Fields(arg)) > 0; ok {
			return checkProbeCommand(arg)
		}
	}
	if !ok {
		return errors.New(validProbes)
	}
	return nil
}

// checkProbeCommand refuses what the exec probe would not understand: it
// splits its command on spaces, with no quoting and no shell.
func checkProbeCommand(s string) error {
	if strings.ContainsAny(s, "\"'\\") {
		return errors.New("the probe command is split on spaces, without quotes or escapes: write it without them, or run a script in the image")
	}
	return nil
}

// checkUserPart checks User= or Group=: a name or number, no ':' or space.
func checkUserPart(s string) error {
	if strings.ContainsAny(s, ": \t") {
		return errors.New("want one user or group name or number, without ':' or spaces: put the group in Group=")
	}
	return nil
}

func checkNetwork(s string) error {
	if strings.ContainsAny(s, " \t") {
		return errors.New("want one Podman network mode, e.g. bridge, host or a network's name")
	}
	return nil
}

// checkPodmanURL is lazypod serve's --podman-url.
func checkPodmanURL(s string) error {
	for _, scheme := range []string{"unix://", "tcp://", "ssh://"} {
		if strings.HasPrefix(s, scheme) && len(s) > len(scheme) {
			return nil
		}
	}
	return errors.New("use unix:///PATH, tcp://HOST:PORT or ssh://USER@HOST/PATH, e.g. unix:///run/podman/podman.sock")
}

// parsePort parses a port number from 1 to 65535.
func parsePort(s string) (uint16, bool) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint16(n), true
}

// publish is a parsed PublishPort=.
type publish struct {
	ip       netip.Addr // invalid: every address
	hostPort uint16
	Listener
}

// parsePublishPort parses Quadlet's PublishPort= as far as a socket can
// serve it: [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], IPv6 in brackets.
func parsePublishPort(s string) (publish, error) {
	const want = "want [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. 127.0.0.1:8080:80 or 53:53/udp"
	var p publish
	p.Network = NetworkTCP
	rest := s
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		switch rest[i+1:] {
		case "tcp":
		case "udp":
			p.Network = NetworkUDP
		default:
			return p, fmt.Errorf("protocol %q is not tcp or udp: %s", rest[i+1:], want)
		}
		rest = rest[:i]
	}
	var ip, host, cport string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return p, errors.New(want)
		}
		ip, rest = rest[1:end], rest[end+2:]
		var ok bool
		host, cport, ok = strings.Cut(rest, ":")
		if !ok {
			return p, errors.New(want)
		}
	} else {
		parts := strings.Split(rest, ":")
		switch len(parts) {
		case 1:
			return p, errors.New("a host port is needed, systemd listens on it: " + want)
		case 2:
			host, cport = parts[0], parts[1]
		case 3:
			ip, host, cport = parts[0], parts[1], parts[2]
			if ip == "" {
				return p, errors.New("empty IP: leave out the IP and its ':' for every address, " + want)
			}
		default:
			return p, errors.New("an IPv6 address needs brackets, e.g. [::1]:8080:80")
		}
	}
	if strings.Contains(host, "-") || strings.Contains(cport, "-") {
		return p, errors.New("port ranges are not supported: write one PublishPort= per port")
	}
	if host == "" {
		return p, errors.New("a host port is needed, systemd listens on it: " + want)
	}
	var ok bool
	if p.hostPort, ok = parsePort(host); !ok {
		return p, fmt.Errorf("host port %q is not a number from 1 to 65535: %s", host, want)
	}
	if p.Port, ok = parsePort(cport); !ok {
		return p, fmt.Errorf("container port %q is not a number from 1 to 65535: %s", cport, want)
	}
	p.Address = strconv.Itoa(int(p.hostPort))
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Zone() != "" {
			return p, fmt.Errorf("%q is not an IP address: %s", ip, want)
		}
		bracketed := strings.HasPrefix(s, "[")
		if a.Is6() && !bracketed {
			return p, errors.New("an IPv6 address needs brackets, e.g. [::1]:8080:80")
		}
		if a.Is4() && bracketed {
			return p, errors.New("only IPv6 addresses go in brackets, e.g. 127.0.0.1:8080:80")
		}
		p.ip = a
		p.Address = netip.AddrPortFrom(a, p.hostPort).String()
	}
	return p, nil
}

// maxSocketPath is the longest path a unix socket address holds.
const maxSocketPath = 107

// parseListenUnix parses ListenUnix=PATH:CONTAINERPORT.
func parseListenUnix(s string) (Listener, error) {
	const want = "want PATH:CONTAINERPORT with an absolute PATH, e.g. /run/app.sock:80"
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Listener{}, errors.New(want)
	}
	p, port := s[:i], s[i+1:]
	n, ok := parsePort(port)
	if !ok {
		return Listener{}, fmt.Errorf("container port %q is not a number from 1 to 65535: %s", port, want)
	}
	if !path.IsAbs(p) {
		return Listener{}, errors.New(want)
	}
	if path.Clean(p) != p {
		return Listener{}, fmt.Errorf("path is not clean: write %s", path.Clean(p))
	}
	if len(p) > maxSocketPath {
		return Listener{}, fmt.Errorf("path is longer than %d bytes, a unix socket's limit: use a shorter one", maxSocketPath)
	}
	return Listener{Network: NetworkUnix, Address: p, Port: n}, nil
}

// overlaps reports whether two listeners would bind the same address, so
// that the second bind fails: the same path, or the same protocol and
// port where either address covers the other. A listener with no IP
// (ListenStream=PORT) or [::] binds every address; 0.0.0.0 every IPv4
// one.
func (p publish) overlaps(q publish) bool {
	if p.Network != q.Network || p.hostPort != q.hostPort {
		return false
	}
	all := func(a netip.Addr) bool { return !a.IsValid() || a == netip.IPv6Unspecified() }
	any4 := func(a, b netip.Addr) bool { return a == netip.IPv4Unspecified() && b.Is4() }
	return p.ip == q.ip || all(p.ip) || all(q.ip) || any4(p.ip, q.ip) || any4(q.ip, p.ip)
}
