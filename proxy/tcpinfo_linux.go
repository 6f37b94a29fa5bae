package proxy

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// tcpInfoSupported says whether tcpIdle works here.
const tcpInfoSupported = true

// tcpIdle returns how long ago the TCP socket c last sent or received data,
// whichever is later, from the kernel's TCP_INFO (millisecond resolution,
// at the kernel's clock tick). Keepalive probes and bare ACKs do not count.
func tcpIdle(c syscall.RawConn) (time.Duration, error) {
	var (
		info *unix.TCPInfo
		err  error
	)
	cerr := c.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if cerr != nil {
		return 0, cerr
	}
	if err != nil {
		return 0, err
	}
	ms := min(info.Last_data_recv, info.Last_data_sent)
	return time.Duration(ms) * time.Millisecond, nil
}
