package proxy

import (
	"context"
	"net"
	"syscall"
	"testing"
)

// The backend dialer sends no keep-alive probes and gives up on an
// unanswered connect after synRetries retransmissions.
func TestBackendDialerOptions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Through the Server's own dial, as flows dial.
	c, err := (&Server{}).dial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"TCP_SYNCNT", syscall.IPPROTO_TCP, syscall.TCP_SYNCNT, synRetries},
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 0},
	} {
		var got int
		var gerr error
		if err := raw.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), o.level, o.opt) }); err != nil {
			t.Fatal(err)
		}
		if gerr != nil || got != o.want {
			t.Errorf("%s = %d, %v; want %d", o.name, got, gerr, o.want)
		}
	}
}
