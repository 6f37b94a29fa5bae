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

const serveUsage = `usage: lazypod serve --image REF [flags] [-- COMMAND ARGS...]

Serves the sockets systemd passes (or --listen binds), starting the container
on the first connection and stopping it after --idle-timeout with no
connection open.

flags:
`

// parseServe parses and checks the arguments of `lazypod serve`. Every
// error matches errUsage and names the bad value.
func parseServe(args []string, stderr io.Writer) (*spec.Serve, error) {
	o, err := spec.ParseServe(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, serveUsage)
		spec.PrintServeFlags(stderr)
	}
	if err != nil {
		return nil, err
	}
	defaultLocations(&o.PodmanURL, &o.StateDir)
	return &o, nil
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
