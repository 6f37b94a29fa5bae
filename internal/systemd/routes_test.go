package systemd

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/lazypod/lazypod/internal/spec"
)

func TestRoutes(t *testing.T) {
	tcp := func(name string) Socket {
		return Socket{Name: name, Desc: "fd (" + name + ")", Listener: &net.TCPListener{}}
	}
	udp := func(name string) Socket { return Socket{Name: name, Desc: "fd (" + name + ")", Packet: &net.UDPConn{}} }
	port := func(s string) spec.Port {
		p, err := spec.ParsePort(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		socks   []Socket
		ports   []spec.Port
		want    []string
		wantErr string
	}{
		{name: "one to one", socks: []Socket{tcp("LISTEN_FD_3")}, ports: []spec.Port{port("8080")},
			want: []string{"LISTEN_FD_3/tcp 8080/tcp"}},
		{name: "one port for two sockets", socks: []Socket{tcp("web"), tcp("web")}, ports: []spec.Port{port("80")},
			want: []string{"web/tcp 80/tcp"}},
		{name: "named", socks: []Socket{tcp("web"), udp("dns")}, ports: []spec.Port{port("dns=53"), port("web=80/tcp")},
			want: []string{"web/tcp 80/tcp", "dns/udp 53/udp"}},
		{name: "udp inferred", socks: []Socket{udp("x")}, ports: []spec.Port{port("53")},
			want: []string{"x/udp 53/udp"}},
		{name: "tcp and udp of one name", socks: []Socket{tcp("dns"), udp("dns")}, ports: []spec.Port{port("dns=53")},
			want: []string{"dns/tcp 53/tcp", "dns/udp 53/udp"}},
		{name: "hold socket needs no port", socks: []Socket{tcp("web"), tcp("lazypod-hold")}, ports: []spec.Port{port("80")},
			want: []string{"web/tcp 80/tcp", "lazypod-hold hold"}},
		{name: "proto mismatch", socks: []Socket{udp("x")}, ports: []spec.Port{port("53/tcp")}, wantErr: "is udp, not tcp"},
		{name: "unnamed among several", socks: []Socket{tcp("a"), tcp("b")}, ports: []spec.Port{port("80"), port("b=81")}, wantErr: "each needs its socket's name"},
		{name: "socket without port", socks: []Socket{tcp("a"), tcp("b")}, ports: []spec.Port{port("a=80")}, wantErr: "socket fd (b) has no --port: add --port b=PORT"},
		{name: "port without socket", socks: []Socket{tcp("a")}, ports: []spec.Port{port("a=80"), port("c=81")}, wantErr: `no socket is named "c" (sockets: a)`},
		{name: "same name twice", socks: []Socket{tcp("a")}, ports: []spec.Port{port("a=80"), port("a=81")}, wantErr: `socket "a" already forwards`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			routes, err := Routes(tt.socks, tt.ports)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, spec.ErrUsage) {
					t.Fatalf("Routes error = %v; want a usage error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(routes) != len(tt.socks) {
				t.Errorf("got %d routes; want %d", len(routes), len(tt.socks))
			}
			var got []string
			for _, r := range routes {
				s := fmt.Sprintf("%s %d/%s", r.Name, r.Port.Port, r.Port.Proto)
				if r.Hold {
					s = r.Name + " hold"
				}
				if !slices.Contains(got, s) {
					got = append(got, s)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("routes = %q; want %q", got, tt.want)
			}
		})
	}
}
