package systemd

import (
	"fmt"
	"net"
	"os"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/lazypod/lazypod/internal/spec"
)

// Socket is one listening socket, inherited or bound. Exactly one of
// Listener and Packet is set.
type Socket struct {
	Name     string // FileDescriptorName=, --listen's FDNAME, or a made-up one
	Desc     string // for messages: "fd 3 (web)" or "tcp:127.0.0.1:8080"
	Listener net.Listener
	Packet   net.PacketConn
}

// Proto is the socket's transport.
func (s Socket) Proto() spec.Protocol {
	if s.Packet != nil {
		return spec.ProtoUDP
	}
	return spec.ProtoTCP
}

// Close closes the socket.
func (s Socket) Close() {
	if s.Listener != nil {
		s.Listener.Close()
	}
	if s.Packet != nil {
		s.Packet.Close()
	}
}

// CloseAll closes every socket of socks.
func CloseAll(socks []Socket) {
	for _, s := range socks {
		s.Close()
	}
}

// Inherited takes the sockets systemd passed, once, and unsets the
// LISTEN_* variables so they leak to no child. It returns nil when there
// are none.
func Inherited() ([]Socket, error) {
	files := activation.Files(true)
	var socks []Socket
	for i, f := range files {
		s, err := fileSocket(f, 3+i)
		f.Close() // net.FileListener and net.FilePacketConn dup the fd
		if err != nil {
			CloseAll(socks)
			return nil, err
		}
		socks = append(socks, s)
	}
	return socks, nil
}

func fileSocket(f *os.File, fd int) (Socket, error) {
	name := f.Name()
	desc := fmt.Sprintf("fd %d (%s)", fd, name)
	if l, err := net.FileListener(f); err == nil {
		return Socket{Name: name, Desc: desc, Listener: l}, nil
	}
	if pc, err := net.FilePacketConn(f); err == nil {
		if _, ok := pc.(*net.UDPConn); !ok {
			pc.Close()
			return Socket{}, fmt.Errorf("taking inherited %s: only TCP, unix stream and UDP sockets are supported", desc)
		}
		return Socket{Name: name, Desc: desc, Packet: pc}, nil
	}
	return Socket{}, fmt.Errorf("taking inherited %s: not a listening stream or datagram socket (check ListenStream=/ListenDatagram= and Accept=no)", desc)
}

// Bind binds the --listen addresses, for use without socket activation.
// A listener without a name is called listenN, N its place.
func Bind(listens []spec.Listen) ([]Socket, error) {
	var socks []Socket
	for i, ls := range listens {
		s := Socket{Name: ls.FDName, Desc: ls.Network + ":" + ls.Addr}
		if s.Name == "" {
			s.Name = fmt.Sprintf("listen%d", i)
		}
		var err error
		if ls.Network == "udp" {
			s.Packet, err = net.ListenPacket("udp", ls.Addr)
		} else {
			s.Listener, err = net.Listen(ls.Network, ls.Addr)
		}
		if err != nil {
			CloseAll(socks)
			return nil, fmt.Errorf("binding --listen %s: %w", s.Desc, err)
		}
		socks = append(socks, s)
	}
	return socks, nil
}
