package podman

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/containers/podman/v5/libpod/define"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/specgen"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
	nettypes "go.podman.io/common/libnetwork/types"

	"github.com/lazypod/lazypod/internal/spec"
	"github.com/lazypod/lazypod/launcher"
)

// Inspect describes the container called name, and ok false if there is
// none.
func (c *Client) Inspect(ctx context.Context, name string) (launcher.ContainerInfo, bool, error) {
	cctx, err := c.call(ctx)
	if err != nil {
		return launcher.ContainerInfo{}, false, err
	}
	data, err := containers.Inspect(cctx, name, nil)
	if isNotFound(err) {
		return launcher.ContainerInfo{}, false, nil
	}
	if err != nil {
		return launcher.ContainerInfo{}, false, apiError(err)
	}
	info := launcher.ContainerInfo{ID: data.ID, ImageID: data.Image}
	if data.Config != nil {
		info.Labels = data.Config.Labels
		if h := data.Config.Healthcheck; h != nil && len(h.Test) > 0 && h.Test[0] != "NONE" {
			info.Health = &launcher.HealthCheck{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
				StartPeriod: h.StartPeriod, Retries: h.Retries}
		}
	}
	if data.State != nil {
		info.Running = data.State.Running
		info.Paused = data.State.Paused
		info.ExitCode = int(data.State.ExitCode)
		if info.Running || info.Paused {
			info.PID = data.State.Pid
		}
	}
	info.HostNetwork = data.HostConfig != nil && data.HostConfig.NetworkMode == "host"
	if data.NetworkSettings != nil && (info.Running || info.Paused) {
		info.HostPorts = make(map[launcher.ContainerPort]uint16)
		for key, bindings := range data.NetworkSettings.Ports {
			cp, err := parseContainerPort(key)
			if err != nil {
				continue
			}
			for _, b := range bindings {
				hp, err := strconv.ParseUint(b.HostPort, 10, 16)
				if err == nil && hp != 0 {
					info.HostPorts[cp] = uint16(hp)
					break
				}
			}
		}
	}
	return info, true, nil
}

// parseContainerPort parses Podman's "8080/tcp".
func parseContainerPort(s string) (launcher.ContainerPort, error) {
	port, proto, ok := strings.Cut(s, "/")
	if !ok {
		proto = string(spec.ProtoTCP)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return launcher.ContainerPort{}, fmt.Errorf("parsing port %q: %w", s, err)
	}
	return launcher.ContainerPort{Port: uint16(n), Proto: spec.Protocol(proto)}, nil
}

// Create creates a container from cs, without starting it, and returns its
// ID.
func (c *Client) Create(ctx context.Context, cs launcher.ContainerSpec) (string, error) {
	s, err := SpecGenerator(cs, false)
	if err != nil {
		return "", err
	}
	cctx, err := c.call(ctx)
	if err != nil {
		return "", err
	}
	resp, err := containers.CreateWithSpec(cctx, s, nil)
	if err != nil {
		return "", apiError(err)
	}
	return resp.ID, nil
}

// SpecGenerator translates cs into what Podman's create endpoint takes:
// the settings podman --remote run makes of its Options, image and
// command (see Run), with cs's own settings over them. Ports are published
// on 127.0.0.1 only, at host ports Podman chooses; cs's labels, env
// entries and mounts are added to those of the options. Offline, it reads
// no file the options name, as CheckRun.
func SpecGenerator(cs launcher.ContainerSpec, offline bool) (*specgen.SpecGenerator, error) {
	s, err := Run{Options: cs.Options, Image: cs.Image, Command: cs.Command}.spec(offline)
	if err != nil {
		return nil, fmt.Errorf("applying the podman run options: %w", err)
	}
	s.Name = cs.Name
	if len(cs.Command) > 0 {
		s.Command = cs.Command
	}
	if cs.User != "" {
		s.User = cs.User
	}
	s.Labels = mergeMap(s.Labels, cs.Labels)
	if len(cs.Env) > 0 {
		env := make(map[string]string, len(cs.Env))
		for _, kv := range cs.Env {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		s.Env = mergeMap(s.Env, env)
	}
	s.PortMappings = nil
	for _, port := range cs.Ports {
		s.PortMappings = append(s.PortMappings, nettypes.PortMapping{
			HostIP:        "127.0.0.1",
			ContainerPort: port.Port,
			Protocol:      string(port.Proto),
		})
	}
	addMounts(s, cs.Mounts)
	setResources(s, cs)
	if cs.Network != "" {
		ns, networks, opts, err := specgen.ParseNetworkFlag([]string{cs.Network})
		if err != nil {
			return nil, fmt.Errorf("parsing network %q: %w", cs.Network, err)
		}
		s.NetNS, s.Networks, s.NetworkOptions = ns, networks, opts
	}
	return s, nil
}

// mergeMap returns base with over's entries added, over's winning.
func mergeMap(base, over map[string]string) map[string]string {
	if len(over) == 0 {
		return base
	}
	if base == nil {
		base = make(map[string]string, len(over))
	}
	maps.Copy(base, over)
	return base
}

// addMounts adds ms to s: a bind mount for an absolute source, else a
// named volume.
func addMounts(s *specgen.SpecGenerator, ms []spec.Volume) {
	for _, m := range ms {
		if m.IsBind() {
			s.Mounts = append(s.Mounts, rspec.Mount{Type: define.TypeBind, Source: m.Source, Destination: m.Target, Options: m.Options})
			continue
		}
		s.Volumes = append(s.Volumes, &specgen.NamedVolume{Name: m.Source, Dest: m.Target, Options: m.Options})
	}
}

// setResources sets cs's memory and CPU limits over those of the options.
func setResources(s *specgen.SpecGenerator, cs launcher.ContainerSpec) {
	if cs.Memory <= 0 && cs.CPUs <= 0 {
		return
	}
	if s.ResourceLimits == nil {
		s.ResourceLimits = &rspec.LinuxResources{}
	}
	if cs.Memory > 0 {
		s.ResourceLimits.Memory = &rspec.LinuxMemory{Limit: &cs.Memory}
	}
	if cs.CPUs > 0 {
		period := uint64(100000)
		quota := int64(cs.CPUs * float64(period))
		s.ResourceLimits.CPU = &rspec.LinuxCPU{Period: &period, Quota: &quota}
	}
}

// Start starts the created or stopped container id.
func (c *Client) Start(ctx context.Context, id string) error {
	cctx, err := c.call(ctx)
	if err != nil {
		return err
	}
	return apiError(containers.Start(cctx, id, nil))
}

// Pause freezes the running container id (podman pause).
func (c *Client) Pause(ctx context.Context, id string) error {
	cctx, err := c.call(ctx)
	if err != nil {
		return err
	}
	return apiError(containers.Pause(cctx, id, nil))
}

// Unpause thaws the paused container id (podman unpause).
func (c *Client) Unpause(ctx context.Context, id string) error {
	cctx, err := c.call(ctx)
	if err != nil {
		return err
	}
	return apiError(containers.Unpause(cctx, id, nil))
}

// Stop stops container id, killing it after timeout. A container that is
// not running or no longer exists is not an error.
func (c *Client) Stop(ctx context.Context, id string, timeout time.Duration) error {
	cctx, err := c.call(ctx)
	if err != nil {
		return err
	}
	opts := new(containers.StopOptions).WithIgnore(true).WithTimeout(seconds(timeout))
	return apiError(containers.Stop(cctx, id, opts))
}

// Remove removes container id, stopping it first (killing it after
// timeout) if it runs. A missing container is not an error.
func (c *Client) Remove(ctx context.Context, id string, timeout time.Duration) error {
	cctx, err := c.call(ctx)
	if err != nil {
		return err
	}
	opts := new(containers.RemoveOptions).WithForce(true).WithIgnore(true).WithTimeout(seconds(timeout))
	reports, err := containers.Remove(cctx, id, opts)
	if err != nil {
		return apiError(err)
	}
	var errs []error
	for _, r := range reports {
		if r.Err != nil {
			errs = append(errs, apiError(r.Err))
		}
	}
	return errors.Join(errs...)
}

// Wait blocks until container id is not running and returns its exit
// code; a container that no longer exists counts as exited with code -1.
func (c *Client) Wait(ctx context.Context, id string) (int, error) {
	cctx, err := c.call(ctx)
	if err != nil {
		return 0, err
	}
	opts := new(containers.WaitOptions).WithCondition([]define.ContainerStatus{
		define.ContainerStateStopped, define.ContainerStateExited,
	})
	code, err := containers.Wait(cctx, id, opts)
	if isNotFound(err) {
		return -1, nil
	}
	if err != nil {
		return 0, apiError(err)
	}
	return int(code), nil
}

// Logs returns up to the last n lines container id wrote to stdout and
// stderr.
func (c *Client) Logs(ctx context.Context, id string, n int) ([]string, error) {
	cctx, err := c.call(ctx)
	if err != nil {
		return nil, err
	}
	frames := make(chan string)
	done := make(chan []string)
	go collectLogs(frames, done)
	opts := new(containers.LogOptions).WithTail(strconv.Itoa(n)).WithStdout(true).WithStderr(true)
	err = containers.Logs(cctx, id, opts, frames, frames)
	close(frames)
	lines := <-done
	if err != nil {
		return lines, apiError(err)
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// collectLogs joins the log frames it receives into lines and sends them
// on done once frames is closed.
func collectLogs(frames <-chan string, done chan<- []string) {
	var b strings.Builder
	for f := range frames {
		b.WriteString(f)
	}
	var lines []string
	for line := range strings.SplitSeq(b.String(), "\n") {
		if line = strings.TrimRight(line, "\r"); line != "" {
			lines = append(lines, line)
		}
	}
	done <- lines
}
