package launcher

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors callers branch on. Errors returned by the launcher wrap them; test
// with errors.Is.
var (
	// ErrNoPodman means the Podman API socket is missing or refuses
	// connections.
	ErrNoPodman = errors.New("podman API not reachable")

	// ErrImageNotFound means the image is not in local storage and the
	// registry does not have it either.
	ErrImageNotFound = errors.New("image not found")

	// ErrRegistryAuth means the registry refused a pull for want of
	// credentials (or for wrong ones).
	ErrRegistryAuth = errors.New("registry refused the credentials")

	// ErrNotReady means the readiness probe did not pass within
	// Config.ReadyTimeout. The container was stopped.
	ErrNotReady = errors.New("container not ready")

	// ErrExited means the container exited while it was starting. The
	// error is an *ExitError with the exit code and the last log lines.
	ErrExited = errors.New("container exited")

	// ErrNotOurs means a container with the configured name exists but was
	// not created by lazypod for this service (it lacks the
	// io.lazypod.service label), so the launcher leaves it alone.
	ErrNotOurs = errors.New("container not created by lazypod")

	// ErrClosed means Run has returned, so the launcher starts nothing.
	ErrClosed = errors.New("launcher closed")

	// ErrRollback means an image chosen by the Swapper failed to start
	// and so did the rollback to its fallback image, or the fallback image
	// is not in local storage. No container is left running. The error
	// carries both reasons.
	ErrRollback = errors.New("rollback failed")
)

// ExitError reports a container that exited while it was starting, or,
// as told to Swapper.Failed, within the rollback window. It matches
// ErrExited.
type ExitError struct {
	Name string   // container name
	Code int      // exit code; -1 if the container vanished
	Logs []string // the last lines it wrote, oldest first

	uptime time.Duration // if not zero, how long after becoming ready it exited
}

func (e *ExitError) Error() string {
	var b strings.Builder
	if e.uptime > 0 {
		fmt.Fprintf(&b, "container %q exited with code %d %s after becoming ready", e.Name, e.Code, e.uptime.Round(time.Millisecond))
	} else {
		fmt.Fprintf(&b, "container %q exited with code %d while starting", e.Name, e.Code)
	}
	if len(e.Logs) > 0 {
		b.WriteString("; last log lines: ")
		b.WriteString(strings.Join(e.Logs, " | "))
	}
	return b.String()
}

// Is reports whether target is ErrExited.
func (e *ExitError) Is(target error) bool { return target == ErrExited }
