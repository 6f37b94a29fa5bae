package launcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// notifySocket is the host end of the notify probe: a unixgram socket
// bind-mounted into the container at NotifyPath, where the service sends
// sd_notify messages.
type notifySocket struct {
	conn *net.UnixConn
	path string
}

// listenNotify makes the socket at path, replacing a stale one. Its
// directory is made 0700 (created if missing); the socket itself is 0666 so a
// container user of any UID can send to it.
func listenNotify(path string) (*notifySocket, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("making notify socket directory: %w", err)
	}
	// The socket itself is 0666 (see above), so the directory is what
	// keeps other local users from sending READY=1: systemd makes a
	// RuntimeDirectory= 0755.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("making notify socket directory private: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale notify socket: %w", err)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("making notify socket: %w", err)
	}
	// Closing a unixgram socket leaves its file, which the container's
	// bind mount refers to; the next start replaces it.
	if err := os.Chmod(path, 0o666); err != nil {
		conn.Close()
		return nil, fmt.Errorf("making notify socket: %w", err)
	}
	return &notifySocket{conn: conn, path: path}, nil
}

// wait reads messages until one has a READY=1 line, or ctx's deadline (a
// probe interval) passes.
func (n *notifySocket) wait(ctx context.Context) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Second)
	}
	if err := n.conn.SetReadDeadline(deadline); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		k, _, err := n.conn.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return errors.New("no READY=1 on the notify socket yet")
			}
			return fmt.Errorf("reading notify socket: %w", err)
		}
		for line := range bytes.SplitSeq(buf[:k], []byte("\n")) {
			if string(line) == "READY=1" {
				return nil
			}
		}
	}
}

func (n *notifySocket) Close() error {
	return n.conn.Close()
}
