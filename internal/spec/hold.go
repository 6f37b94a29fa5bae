package spec

import (
	"errors"
	"path"
	"strings"
)

// HoldSocket is the FileDescriptorName= of a service's hold socket: a
// unix socket where another service's lazypod holds this service up (its
// container started and kept from the idle stop) while its own container,
// which needs this one, runs. A socket of this name needs no --port.
const HoldSocket = "lazypod-hold"

// HoldPath is where the units lazypod writes put service name's hold
// socket, under runtimeDir (systemd's %t: /run, or a user's
// $XDG_RUNTIME_DIR).
func HoldPath(runtimeDir, name string) string {
	return path.Join(runtimeDir, "lazypod", name+".hold")
}

// HoldName is the service whose hold socket is at p, for messages: its
// file name without .hold.
func HoldName(p string) string {
	return strings.TrimSuffix(path.Base(p), ".hold")
}

// CheckHoldPath checks a --needs value: a hold socket's path, NAME.hold.
func CheckHoldPath(p string) error {
	if !strings.HasSuffix(p, ".hold") || CheckName(HoldName(p)) != nil {
		return errors.New("not a hold socket: want the path of a service's NAME.hold, e.g. /run/lazypod/db.hold")
	}
	return nil
}
