//go:build !linux

package proxy

import "syscall"

// kernelBoundsConnect says that limitSYNs does not bound a connect's wait.
const kernelBoundsConnect = false

// limitSYNs leaves the system's SYN retries alone: TCP_SYNCNT is Linux's.
func limitSYNs(network, _ string, c syscall.RawConn) error { return nil }
