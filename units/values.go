package units

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/lazypod/lazypod/internal/spec"
)

// The checks of values lazypod serve takes too are package spec's, and
// the container's settings are Podman's (internal/podman's ParseRun).
// Those here are the definition file's own: PublishPort= as a socket unit
// can listen on it, and ListenUnix=.

// checkName checks a service or container name.
func checkName(s string) error { return spec.CheckName(s) }

// publish is a parsed PublishPort=.
type publish struct {
	ip       netip.Addr // invalid: every address
	hostPort uint16
	// fuzzy is an address that holds specifiers: systemd knows it, lazypod
	// checked a sample.
	fuzzy bool
	Listener
}

// parsePublishPort parses Quadlet's PublishPort= as far as a socket can
// serve it: [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], IPv6 in brackets. The
// IP and the host port may hold specifiers (PublishPort=%i:80 in a
// template), checked with samples and left for systemd to expand; the
// container port names the socket and is a number.
func parsePublishPort(raw string) (publish, error) {
	s, err := sample(raw)
	if err != nil {
		return publish{}, err
	}
	p, err := parsePublishValue(s)
	if err != nil || !hasSpecifier(raw) {
		return p, err
	}
	rest := raw
	if i := strings.LastIndexByte(rest, '/'); i >= 0 && !strings.Contains(rest[i:], "%") {
		rest = rest[:i]
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 || hasSpecifier(rest[i:]) {
		return p, errors.New("the container port must be a number, without specifiers: it names the socket")
	}
	p.Address, p.fuzzy = rest[:i], true
	return p, nil
}

// parsePublishValue parses a PublishPort= without specifiers.
func parsePublishValue(s string) (publish, error) {
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
	var err error
	if p.hostPort, err = spec.ParsePortNumber(host); err != nil {
		return p, fmt.Errorf("host %v: %s", err, want)
	}
	if p.Port, err = spec.ParsePortNumber(cport); err != nil {
		return p, fmt.Errorf("container %v: %s", err, want)
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
// lazypodRuntimeDir matches paths under lazypod's runtime directory, %t/lazypod,
// as sample values expand %t: the services' RuntimeDirectory= and hold
// sockets live there.
var lazypodRuntimeDir = regexp.MustCompile(`^/run/(user/[0-9]+/)?lazypod/`)

func parseListenUnix(s string) (Listener, error) {
	const want = "want PATH:CONTAINERPORT with an absolute PATH, e.g. /run/app.sock:80"
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Listener{}, errors.New(want)
	}
	p, port := s[:i], s[i+1:]
	n, err := spec.ParsePortNumber(port)
	if err != nil {
		return Listener{}, fmt.Errorf("container %v: %s", err, want)
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
	if lazypodRuntimeDir.MatchString(p) {
		return Listener{}, errors.New("lazypod's runtime directory holds the services' own files, and a service's is emptied when it stops: put the socket in a directory of its own, e.g. /run/db/db.sock")
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
