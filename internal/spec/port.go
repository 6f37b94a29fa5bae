package spec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Protocol is the transport of a container port.
type Protocol string

const (
	ProtoTCP Protocol = "tcp"
	ProtoUDP Protocol = "udp"
)

// ParsePortNumber parses a port number from 1 to 65535.
func ParsePortNumber(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// validFDName reports whether name is what systemd accepts in
// FileDescriptorName=: printable ASCII without ':' or spaces, at most 255
// characters. A loop, not the regexp ^[!-9;-~]{1,255}$: compiling its
// 255-fold repetition cost every lazypod process 190 KB and 2-4 ms at
// init, before it could take its sockets.
func validFDName(name string) bool {
	if len(name) < 1 || len(name) > 255 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < '!' || c > '~' || c == ':' {
			return false
		}
	}
	return true
}

// CheckFDName checks a socket's name, as systemd's FileDescriptorName=.
func CheckFDName(name string) error {
	if !validFDName(name) {
		return fmt.Errorf("socket name %q must be 1-255 printable characters without ':' or spaces, as in FileDescriptorName=", name)
	}
	return nil
}

// Port is one --port of lazypod serve, [FDNAME=]PORT[/tcp|/udp]: the
// container port that the sockets named FDNAME (or, with no name, every
// socket) forward to.
type Port struct {
	FDName string
	Port   uint16
	Proto  Protocol // "" when not given: taken from the socket's type
}

// String returns the port as ParsePort reads it.
func (p Port) String() string {
	s := strconv.Itoa(int(p.Port))
	if p.Proto != "" {
		s += "/" + string(p.Proto)
	}
	return named(p.FDName, s)
}

// named is s after "FDNAME=", if there is a name.
func named(fdName, s string) string {
	if fdName == "" {
		return s
	}
	return fdName + "=" + s
}

// ParsePort parses a --port value.
func ParsePort(s string) (Port, error) {
	var p Port
	rest := s
	if name, after, ok := strings.Cut(s, "="); ok {
		if err := CheckFDName(name); err != nil {
			return p, err
		}
		p.FDName, rest = name, after
	}
	num, proto, hasProto := strings.Cut(rest, "/")
	if hasProto {
		switch Protocol(proto) {
		case ProtoTCP, ProtoUDP:
			p.Proto = Protocol(proto)
		default:
			return p, fmt.Errorf("protocol %q is not tcp or udp", proto)
		}
	}
	n, err := ParsePortNumber(num)
	if err != nil {
		return p, errors.New("want [FDNAME=]PORT[/tcp|/udp] with PORT from 1 to 65535, e.g. web=8080/tcp")
	}
	p.Port = n
	return p, nil
}

// Listen is one --listen of lazypod serve, [FDNAME=]ADDR: a socket to bind
// when systemd passes none.
type Listen struct {
	FDName  string
	Network string // "tcp", "unix" or "udp"
	Addr    string // "HOST:PORT", or a path for unix
}

// String returns the listener as ParseListen reads it.
func (l Listen) String() string {
	s := l.Addr
	if l.Network != "tcp" {
		s = l.Network + ":" + s
	}
	return named(l.FDName, s)
}

// ParseListen parses a --listen value: [FDNAME=]ADDR, where ADDR is
// HOST:PORT, tcp:HOST:PORT, unix:/PATH or udp:HOST:PORT.
func ParseListen(s string) (Listen, error) {
	var l Listen
	rest := s
	// A name comes before '=', and an address never holds '=' before its
	// scheme or host, so cut only when the part before '=' has no ':' or '/'.
	if name, after, ok := strings.Cut(s, "="); ok && !strings.ContainsAny(name, ":/") {
		if err := CheckFDName(name); err != nil {
			return l, err
		}
		l.FDName, rest = name, after
	}
	switch {
	case strings.HasPrefix(rest, "unix:"):
		l.Network, l.Addr = "unix", strings.TrimPrefix(rest, "unix:")
		if !strings.HasPrefix(l.Addr, "/") && !strings.HasPrefix(l.Addr, "@") {
			return l, errors.New("a unix socket needs an absolute path, e.g. unix:/run/app.sock")
		}
		return l, nil
	case strings.HasPrefix(rest, "udp:"):
		l.Network, l.Addr = "udp", strings.TrimPrefix(rest, "udp:")
	case strings.HasPrefix(rest, "tcp:"):
		l.Network, l.Addr = "tcp", strings.TrimPrefix(rest, "tcp:")
	default:
		l.Network, l.Addr = "tcp", rest
	}
	port, err := splitPort(l.Addr)
	if err != nil {
		return l, errors.New("want HOST:PORT, unix:/PATH or udp:HOST:PORT, e.g. 127.0.0.1:8080")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return l, fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return l, nil
}

// splitPort returns the port of HOST:PORT, with an IPv6 HOST in brackets.
func splitPort(addr string) (string, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", errors.New("missing port")
	}
	host, port := addr[:i], addr[i+1:]
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", errors.New("bad IPv6 literal")
		}
	} else if strings.Contains(host, ":") {
		return "", errors.New("IPv6 address needs brackets")
	}
	if port == "" {
		return "", errors.New("missing port")
	}
	return port, nil
}
