package proxy

import (
	"os"
	"strings"
	"syscall"
)

// kernelBoundsConnect says that limitSYNs bounds a connect's wait.
const kernelBoundsConnect = true

// synRetries is how many times the kernel resends an unanswered SYN to the
// backend before the connect fails (TCP_SYNCNT): once, after a second, so
// a connect to a backend that drops SYNs (its accept queue is full) fails
// after about three seconds instead of the system's two minutes.
const synRetries = 1

// limitSYNs sets TCP_SYNCNT on a TCP socket about to connect.
func limitSYNs(network, _ string, c syscall.RawConn) error {
	if !strings.HasPrefix(network, "tcp") {
		return nil
	}
	var err error
	if cerr := c.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_SYNCNT, synRetries)
	}); cerr != nil {
		return cerr
	}
	if err != nil {
		return os.NewSyscallError("setsockopt TCP_SYNCNT", err)
	}
	return nil
}
