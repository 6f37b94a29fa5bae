package launcher

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// Runtime is the part of a container engine the launcher uses. Podman
// implements it over the Podman API; unit tests use a fake. Every method is
// called with a ctx that carries a deadline, except Wait, which runs until
// the container exits or ctx ends.
type Runtime interface {
	// ImageID returns the ID of image ref in local storage, and ok false
	// if local storage does not have it.
	ImageID(ctx context.Context, ref string) (id string, ok bool, err error)

	// Pull pulls ref into local storage. An image the registry does not
	// have gives an error wrapping ErrImageNotFound, a refusal for want of
	// credentials one wrapping ErrRegistryAuth; other failures (registry
	// down, a 5xx) are returned as they are.
	Pull(ctx context.Context, ref string) error

	// Inspect describes the container called name, and ok false if there
	// is none.
	Inspect(ctx context.Context, name string) (info ContainerInfo, ok bool, err error)

	// Create creates a container from spec, without starting it, and
	// returns its ID.
	Create(ctx context.Context, spec ContainerSpec) (id string, err error)

	// Start starts the created or stopped container id.
	Start(ctx context.Context, id string) error

	// Stop stops container id, killing it after timeout. Stopping a
	// container that is not running or no longer exists is not an error.
	Stop(ctx context.Context, id string, timeout time.Duration) error

	// Pause freezes the running container id; Unpause thaws it.
	Pause(ctx context.Context, id string) error
	Unpause(ctx context.Context, id string) error

	// Remove removes container id, stopping it first (killing it after
	// timeout) if it runs. Removing a missing container is not an error.
	Remove(ctx context.Context, id string, timeout time.Duration) error

	// Wait blocks until container id is not running and returns its exit
	// code. A container that no longer exists counts as exited with code
	// -1.
	Wait(ctx context.Context, id string) (exitCode int, err error)

	// Exec runs argv inside the running container id and returns its exit
	// code and combined output.
	Exec(ctx context.Context, id string, argv []string) (exitCode int, output string, err error)

	// Logs returns up to the last n lines the container id wrote to
	// stdout and stderr.
	Logs(ctx context.Context, id string, n int) ([]string, error)
}

// ContainerPort is a port inside a container.
type ContainerPort struct {
	Port  uint16
	Proto spec.Protocol
}

// String returns the Podman notation, "8080/tcp".
func (p ContainerPort) String() string {
	return fmt.Sprintf("%d/%s", p.Port, p.Proto)
}

// ContainerSpec is everything the launcher sets when it creates a
// container. Its canonical JSON, hashed, is the io.lazypod.hash label.
type ContainerSpec struct {
	Name  string
	Image string
	// Options are podman run options, as podman --remote run takes them;
	// the settings below apply over them.
	Options []string          `json:",omitempty"`
	Command []string          `json:",omitempty"`
	Env     []string          `json:",omitempty"` // KEY=VALUE
	Ports   []ContainerPort   `json:",omitempty"` // published on 127.0.0.1, host port chosen by the engine
	Mounts  []spec.Volume     `json:",omitempty"`
	Labels  map[string]string `json:",omitempty"`
	Memory  int64             `json:",omitempty"` // bytes
	CPUs    float64           `json:",omitempty"`
	User    string            `json:",omitempty"`
	Network string            `json:",omitempty"`
}

// ContainerInfo is what the launcher reads back from an existing container.
type ContainerInfo struct {
	ID      string
	ImageID string
	Labels  map[string]string
	// Running is a container whose processes run; a paused one is not
	// Running but Paused.
	Running bool
	// ExitCode is the exit code of the last run, when not Running.
	ExitCode int
	// Paused is a container that is frozen (podman pause).
	Paused bool
	// PID is the host's process ID of the container's first process,
	// while it runs or is paused; 0 if the engine does not say.
	PID int
	// Health is the container's health check, from its run options or
	// the image's HEALTHCHECK; nil if it has none.
	Health *HealthCheck
	// HostNetwork is a container in the host's network namespace: its
	// ports are the host's own, and the engine publishes none.
	HostNetwork bool
	// HostPorts maps each published container port to the host port the
	// engine chose. It is filled in only while the container runs or is
	// paused.
	HostPorts map[ContainerPort]uint16
}

// HealthCheck is a container's health check, as Podman keeps it.
type HealthCheck struct {
	// Test is the check: ["CMD-SHELL", "command line"], run with
	// /bin/sh -c, or ["CMD", "argv0", "argv1", ...], run as it is.
	Test        []string
	Interval    time.Duration // between checks; 0: Podman's default, 30s
	Timeout     time.Duration // of one check; 0: Podman's default, 30s
	StartPeriod time.Duration // failures before its end do not count
	Retries     int           // failures in a row that make it unhealthy; 0: Podman's default, 3
}

// Argv returns the command the check runs in the container, or nil if Test
// runs nothing (NONE, or malformed).
func (h *HealthCheck) Argv() []string {
	if h == nil || len(h.Test) < 2 {
		return nil
	}
	switch h.Test[0] {
	case "CMD-SHELL":
		return []string{"/bin/sh", "-c", strings.Join(h.Test[1:], " ")}
	case "CMD":
		return h.Test[1:]
	}
	return nil
}
