//go:build !linux

package proxy

import (
	"errors"
	"syscall"
	"time"
)

// tcpInfoSupported says whether tcpIdle works here.
const tcpInfoSupported = false

// tcpIdle needs Linux's TCP_INFO.
func tcpIdle(c syscall.RawConn) (time.Duration, error) {
	return 0, errors.ErrUnsupported
}
