package systemd

import (
	"fmt"
	"strings"

	"github.com/lazypod/lazypod/internal/spec"
)

// Route is a socket and the container port its flows go to.
type Route struct {
	// Name is the socket's name and the port's protocol, "web/tcp": a TCP
	// and a UDP socket may share a name (ListenStream=53 and
	// ListenDatagram=53 in one unit).
	Name   string
	Socket Socket
	Port   spec.Port // its Proto set; zero for a hold socket
	// Hold is set for a hold socket (named spec.HoldSocket), which
	// forwards nowhere and needs no --port.
	Hold bool
}

// Routes pairs every socket with the --port it forwards to. A port with
// FDNAME serves the sockets of that name; a single port without one serves
// every socket. Every socket needs a port and every port a socket; errors
// match spec.ErrUsage and say which flag to add or change.
func Routes(socks []Socket, ports []spec.Port) ([]Route, error) {
	bad := func(p spec.Port, format string, args ...any) error {
		return &spec.FlagError{Flag: "port", Value: p.String(), Err: fmt.Errorf(format, args...)}
	}
	byName := map[string]spec.Port{}
	var unnamed []spec.Port
	for _, p := range ports {
		if p.FDName == "" {
			unnamed = append(unnamed, p)
			continue
		}
		if prev, ok := byName[p.FDName]; ok {
			return nil, bad(p, "socket %q already forwards to --port %q", p.FDName, prev)
		}
		byName[p.FDName] = p
	}
	if len(unnamed) > 0 && len(ports) > 1 {
		return nil, bad(unnamed[0], "with several --port flags each needs its socket's name, e.g. --port %s=%d (sockets: %s)",
			socks[0].Name, unnamed[0].Port, Names(socks))
	}
	var routes []Route
	used := map[string]bool{}
	for _, s := range socks {
		if s.Name == spec.HoldSocket && s.Listener != nil {
			routes = append(routes, Route{Name: s.Name, Socket: s, Hold: true})
			continue
		}
		p, ok := byName[s.Name]
		if !ok && len(unnamed) == 1 {
			p, ok = unnamed[0], true
		}
		if !ok {
			return nil, spec.Usagef("socket %s has no --port: add --port %s=PORT", s.Desc, s.Name)
		}
		used[p.String()] = true
		if p.Proto == "" {
			p.Proto = s.Proto()
		}
		if p.Proto != s.Proto() {
			return nil, bad(p, "socket %s is %s, not %s", s.Desc, s.Proto(), p.Proto)
		}
		routes = append(routes, Route{Name: s.Name + "/" + string(p.Proto), Socket: s, Port: p})
	}
	for _, p := range ports {
		if !used[p.String()] {
			return nil, bad(p, "no socket is named %q (sockets: %s)", p.FDName, Names(socks))
		}
	}
	return routes, nil
}

// Names lists the sockets' names, for messages.
func Names(socks []Socket) string {
	names := make([]string, len(socks))
	for i, s := range socks {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}
