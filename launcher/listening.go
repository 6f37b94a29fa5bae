package launcher

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/lazypod/lazypod/internal/spec"
)

// The listening probe reads the socket tables of the container's network
// namespace from the host: /proc/PID/net/{tcp,tcp6,udp,udp6} of its first
// process list every socket of the namespace that PID is in. It needs no
// connection to the app and no tool in the image, and it sees a UDP
// server bind its port, which no connection can tell.

// tcpListen is the st column of a listening tcp socket (TCP_LISTEN).
const tcpListen = "0A"

// errNoSocketTables is why the listening probe cannot be used for a
// container; the launcher falls back to the tcp probe, or none.
var errNoSocketTables = errors.New("cannot read the container's socket tables")

// socketTables checks that the socket tables of the container whose first
// process is pid can be read, and are the container's: pid 0 (the engine
// did not say), a /proc without it (lazypod in another pid namespace than
// Podman's) or a pid in lazypod's own network namespace when the container
// has one of its own all mean they cannot.
func socketTables(proc string, pid int, hostNetwork bool) error {
	if pid <= 0 {
		return fmt.Errorf("%w: the engine gave no pid", errNoSocketTables)
	}
	dir := fmt.Sprintf("%s/%d", proc, pid)
	if _, err := os.Stat(dir + "/net/tcp"); err != nil {
		return fmt.Errorf("%w: %w", errNoSocketTables, err)
	}
	if hostNetwork {
		return nil
	}
	theirs, err1 := os.Readlink(dir + "/ns/net")
	ours, err2 := os.Readlink(proc + "/self/ns/net")
	if err1 == nil && err2 == nil && theirs == ours {
		return fmt.Errorf("%w: pid %d is in lazypod's own network namespace, not the container's (is lazypod in another pid namespace than Podman?)", errNoSocketTables, pid)
	}
	return nil
}

// unbound returns the ports of want that no socket in the network
// namespace of pid is bound to: for tcp, a listening socket; for udp, any
// socket. A socket bound to a loopback address counts only with
// loopbackOK (a container in the host's network, which lazypod reaches on
// 127.0.0.1): Podman forwards published ports to the container's own
// address, which a server on 127.0.0.1 inside does not answer.
func unbound(proc string, pid int, want []ContainerPort, loopbackOK bool) ([]ContainerPort, error) {
	var missing []ContainerPort
	tables := map[string][]byte{}
	for _, cp := range want {
		found := false
		for _, v := range []string{"", "6"} {
			name := string(cp.Proto) + v
			b, ok := tables[name]
			if !ok {
				var err error
				b, err = os.ReadFile(fmt.Sprintf("%s/%d/net/%s", proc, pid, name))
				if err != nil && !(v == "6" && errors.Is(err, os.ErrNotExist)) { // no IPv6 in the kernel
					return nil, fmt.Errorf("reading the container's socket table: %w", err)
				}
				tables[name] = b
			}
			if boundIn(b, cp.Port, cp.Proto == spec.ProtoTCP, loopbackOK) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, cp)
		}
	}
	return missing, nil
}

// boundIn reports whether table, the text of a /proc/net/{tcp,udp}{,6}
// file, has a socket bound to port: listening, if listen is set; on an
// address other than loopback, unless loopbackOK.
func boundIn(table []byte, port uint16, listen, loopbackOK bool) bool {
	suffix := fmt.Sprintf(":%04X", port)
	for line := range bytes.Lines(table) {
		// "  sl  local_address rem_address   st ..." then one socket per
		// line: "   0: 00000000:1F90 00000000:0000 0A ..."
		f := strings.Fields(string(line))
		if len(f) < 4 || !strings.HasSuffix(f[1], suffix) {
			continue
		}
		if listen && f[3] != tcpListen {
			continue
		}
		if !loopbackOK && isLoopbackHex(strings.TrimSuffix(f[1], suffix)) {
			continue
		}
		return true
	}
	return false
}

// isLoopbackHex reports whether addr, an address as /proc/net prints it
// (each 32-bit word in host byte order, in hex), is a loopback address:
// 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. Only little-endian hosts'
// order is read; on others nothing counts as loopback.
func isLoopbackHex(addr string) bool {
	switch len(addr) {
	case 8: // 127.x.y.z is 0xzzyyxx7F
		return strings.HasSuffix(addr, "7F")
	case 32:
		if addr == "00000000000000000000000001000000" {
			return true // ::1
		}
		return strings.HasPrefix(addr, "0000000000000000FFFF0000") && strings.HasSuffix(addr, "7F")
	}
	return false
}

// portList prints ports as "53/udp, 8080/tcp".
func portList(ports []ContainerPort) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
