package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/lazypod/lazypod/internal/podman"
	"github.com/lazypod/lazypod/internal/spec"
	"github.com/lazypod/lazypod/internal/systemd"
)

const serveUsage = `usage: lazypod serve [flags] -- [PODMAN-RUN-OPTIONS...] IMAGE [COMMAND [ARG...]]
       lazypod serve --image REF [flags] [-- COMMAND [ARG...]]

Serves the sockets systemd passes (or --listen binds), starting the container
on the first connection and stopping it after --idle-timeout with no
connection open. After --, without --image, comes what podman run takes: its
options mean what they mean to podman --remote run.

flags:
`

// parseServe parses and checks the arguments of `lazypod serve`: its own
// flags with package spec, and the container's podman run options (those
// of serve's container flags, then those after --) with Podman's own
// parser. Every error matches errUsage and names the bad value.
func parseServe(args []string, stderr io.Writer) (*spec.Serve, podman.Run, error) {
	o, err := spec.ParseServe(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, serveUsage)
		spec.PrintServeFlags(stderr)
	}
	if err != nil {
		return nil, podman.Run{}, err
	}
	tail := o.Run
	if tail == nil {
		tail = append([]string{o.Image}, o.Command...)
	}
	run, err := podman.ParseRun(append(o.RunOptions(), tail...))
	if err != nil {
		return nil, podman.Run{}, err
	}
	o.Image, o.Command = run.Image, run.Command
	if o.Name == "" {
		if o.Name = spec.DefaultName(o.Image); spec.CheckName(o.Name) != nil {
			return nil, podman.Run{}, usagef("invalid --name %q (from the image): pass --name", o.Name)
		}
	}
	if err := o.CheckPolicy(); err != nil {
		return nil, podman.Run{}, err
	}
	// The container's own stop timeout and health check, unless serve's
	// flags say otherwise.
	if run.StopTimeout != nil && o.StopTimeout == spec.Defaults().StopTimeout {
		o.StopTimeout = *run.StopTimeout
	}
	if o.Ready.Kind == "" && run.HealthCmd {
		o.Ready = spec.Probe{Kind: spec.ProbeHealthcheck}
	}
	defaultLocations(&o.PodmanURL, &o.StateDir)
	return &o, run, nil
}

// defaultLocations fills in the defaults of --podman-url and --state-dir,
// for serve and the admin commands alike.
func defaultLocations(podmanURL, stateDir *string) {
	if *podmanURL == "" {
		*podmanURL = podman.DefaultURL()
	}
	if *stateDir == "" {
		*stateDir = systemd.StateDir()
	}
}
