package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/lazypod/lazypod/launcher"
	"github.com/lazypod/lazypod/proxy"
)

// errNoSockets: neither systemd passed sockets nor --listen named any.
var errNoSockets = errors.New("no sockets passed by systemd (LISTEN_FDS unset)")

// socket is one listening socket, inherited or bound, before it is matched
// to a container port.
type socket struct {
	name     string // FileDescriptorName=, --listen's FDNAME, or a made-up one
	desc     string // for messages: "fd 3 (web)" or "127.0.0.1:8080"
	listener net.Listener
	packet   net.PacketConn
}

func (s socket) proto() launcher.Protocol {
	if s.packet != nil {
		return launcher.ProtoUDP
	}
	return launcher.ProtoTCP
}

func (s socket) close() {
	if s.listener != nil {
		s.listener.Close()
	}
	if s.packet != nil {
		s.packet.Close()
	}
}

// inheritedSockets takes the sockets systemd passed, once, and unsets the
// LISTEN_* variables so they leak to no child. It returns nil when there are
// none.
func inheritedSockets() ([]socket, error) {
	files := activation.Files(true)
	var socks []socket
	for i, f := range files {
		s, err := fileSocket(f, 3+i)
		f.Close() // net.FileListener and net.FilePacketConn dup the fd
		if err != nil {
			closeSockets(socks)
			return nil, err
		}
		socks = append(socks, s)
	}
	return socks, nil
}

func fileSocket(f *os.File, fd int) (socket, error) {
	name := f.Name()
	desc := fmt.Sprintf("fd %d (%s)", fd, name)
	if l, err := net.FileListener(f); err == nil {
		return socket{name: name, desc: desc, listener: l}, nil
	}
	if pc, err := net.FilePacketConn(f); err == nil {
		if _, ok := pc.(*net.UDPConn); !ok {
			pc.Close()
			return socket{}, fmt.Errorf("taking inherited %s: only TCP, unix stream and UDP sockets are supported", desc)
		}
		return socket{name: name, desc: desc, packet: pc}, nil
	}
	return socket{}, fmt.Errorf("taking inherited %s: not a listening stream or datagram socket (check ListenStream=/ListenDatagram= and Accept=no)", desc)
}

// boundSockets binds the --listen addresses.
func boundSockets(specs []listenSpec) ([]socket, error) {
	var socks []socket
	for i, ls := range specs {
		s := socket{name: ls.FDName, desc: ls.Network + ":" + ls.Addr}
		if s.name == "" {
			s.name = fmt.Sprintf("listen%d", i)
		}
		var err error
		switch ls.Network {
		case "udp":
			s.packet, err = net.ListenPacket("udp", ls.Addr)
		default:
			s.listener, err = net.Listen(ls.Network, ls.Addr)
		}
		if err != nil {
			closeSockets(socks)
			return nil, fmt.Errorf("binding --listen %s: %w", s.desc, err)
		}
		socks = append(socks, s)
	}
	return socks, nil
}

func closeSockets(socks []socket) {
	for _, s := range socks {
		s.close()
	}
}

// matchPorts pairs every socket with the container port it forwards to and
// returns the proxy routes and launcher ports. A --port with FDNAME serves
// the sockets of that name; a single --port without one serves every socket.
// Every socket needs a port and every port a socket.
func matchPorts(socks []socket, specs []portSpec) ([]proxy.Route, []launcher.Port, error) {
	if len(specs) == 0 {
		return nil, nil, usagef("missing --port: name the container port each socket forwards to, e.g. --port 8080")
	}
	byName := map[string]portSpec{}
	var unnamed []portSpec
	for _, p := range specs {
		if p.FDName == "" {
			unnamed = append(unnamed, p)
			continue
		}
		if prev, ok := byName[p.FDName]; ok {
			return nil, nil, usagef("invalid --port %q: socket %q already forwards to --port %q", p, p.FDName, prev)
		}
		byName[p.FDName] = p
	}
	if len(unnamed) > 0 && len(specs) > 1 {
		return nil, nil, usagef("invalid --port %q: with several --port flags each needs its socket's name, e.g. --port %s=%d (sockets: %s)",
			unnamed[0], socks[0].name, unnamed[0].Port, socketNames(socks))
	}

	var routes []proxy.Route
	var ports []launcher.Port
	used := map[string]bool{}
	for _, s := range socks {
		p, ok := byName[s.name]
		if !ok && len(unnamed) == 1 {
			p, ok = unnamed[0], true
		}
		if !ok {
			return nil, nil, usagef("socket %s has no --port: add --port %s=PORT", s.desc, s.name)
		}
		used[p.String()] = true
		if p.Proto == "" {
			p.Proto = s.proto()
		}
		if p.Proto != s.proto() {
			return nil, nil, usagef("invalid --port %q: socket %s is %s, not %s", p, s.desc, s.proto(), p.Proto)
		}
		// A TCP and a UDP socket may share a name (ListenStream=53 and
		// ListenDatagram=53 in one unit): the route is name and protocol.
		route := s.name + "/" + string(p.Proto)
		routes = append(routes, proxy.Route{Name: route, Listener: s.listener, PacketConn: s.packet})
		ports = appendPort(ports, launcher.Port{Route: route, Port: p.Port, Proto: p.Proto})
	}
	for _, p := range specs {
		if !used[p.String()] {
			return nil, nil, usagef("invalid --port %q: no socket is named %q (sockets: %s)", p, p.FDName, socketNames(socks))
		}
	}
	return routes, ports, nil
}

// appendPort adds p unless a port with the same route is there already
// (several sockets of one name share their container port).
func appendPort(ports []launcher.Port, p launcher.Port) []launcher.Port {
	for _, q := range ports {
		if q.Route == p.Route {
			return ports
		}
	}
	return append(ports, p)
}

func socketNames(socks []socket) string {
	names := make([]string, len(socks))
	for i, s := range socks {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}
