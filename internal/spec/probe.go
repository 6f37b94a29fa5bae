package spec

import (
	"errors"
	"fmt"
	"strings"
)

// ProbeKind is a way to tell that a container is ready.
type ProbeKind string

const (
	// ProbeListening: every published port is bound inside the
	// container, as its own socket tables say (LISTEN for tcp, bound for
	// udp).
	ProbeListening ProbeKind = "listening"
	// ProbeTCP: a connection to the first published tcp port stays open
	// (or yields bytes) for a moment.
	ProbeTCP ProbeKind = "tcp"
	// ProbeHTTP: GET Arg on the first published tcp port answers 2xx or
	// 3xx.
	ProbeHTTP ProbeKind = "http"
	// ProbeExec: the command Arg, run inside the container, exits 0.
	ProbeExec ProbeKind = "exec"
	// ProbeHealthcheck: the image's HEALTHCHECK, run through the API,
	// reports healthy.
	ProbeHealthcheck ProbeKind = "healthcheck"
	// ProbeNotify: the container sends READY=1 to $NOTIFY_SOCKET.
	ProbeNotify ProbeKind = "notify"
	// ProbeNone: ready as soon as the container started.
	ProbeNone ProbeKind = "none"
)

// Probe is a readiness check. The zero Probe means the default:
// listening.
type Probe struct {
	Kind ProbeKind
	// Arg is the path for http ("/healthz") and the command for exec
	// ("/bin/check --quick", split on white space: no shell is involved).
	Arg string
}

// String returns the probe as ParseProbe reads it.
func (p Probe) String() string {
	if p.Arg == "" {
		return string(p.Kind)
	}
	return string(p.Kind) + ":" + p.Arg
}

// NeedsTCP reports whether the probe connects to the first published tcp
// port.
func (p Probe) NeedsTCP() bool { return p.Kind == ProbeTCP || p.Kind == ProbeHTTP }

const validProbes = `valid probes are "listening", "tcp", "http:/PATH", "exec:COMMAND", "healthcheck", "notify", "none"`

// ParseProbe parses a probe: "listening", "tcp", "http:/PATH", "exec:COMMAND",
// "healthcheck", "notify" or "none".
func ParseProbe(s string) (Probe, error) {
	kind, arg, hasArg := strings.Cut(s, ":")
	p := Probe{Kind: ProbeKind(kind), Arg: arg}
	if hasArg && arg == "" {
		return Probe{}, errors.New(validProbes)
	}
	if err := p.Check(); err != nil {
		return Probe{}, err
	}
	return p, nil
}

// Check reports whether p is well formed. The zero Probe is not: apply the
// default first.
func (p Probe) Check() error {
	ok := false
	switch p.Kind {
	case ProbeListening, ProbeTCP, ProbeHealthcheck, ProbeNotify, ProbeNone:
		ok = p.Arg == ""
	case ProbeHTTP:
		ok = strings.HasPrefix(p.Arg, "/") && !strings.ContainsAny(p.Arg, " \t\r\n")
	case ProbeExec:
		if len(strings.Fields(p.Arg)) > 0 {
			return CheckProbeCommand(p.Arg)
		}
	}
	if !ok {
		return errors.New(validProbes)
	}
	return nil
}

// CheckProbeCommand refuses what the exec probe would not understand: it
// splits its command on white space, with no quoting and no shell.
func CheckProbeCommand(s string) error {
	if strings.ContainsAny(s, "\"'\\") {
		return errors.New("the probe command is split on spaces, without quotes or escapes: write it without them, or run a script in the image")
	}
	return nil
}

// Policy says how a service's image is checked for updates.
type Policy string

const (
	// PolicyRegistry: an update is available when the registry's digest
	// for the image reference differs from every digest of the image the
	// service runs. The reference must be fully qualified.
	PolicyRegistry Policy = "registry"
	// PolicyLocal: an update is available when the local image the
	// reference names has a different ID from the one the service runs.
	PolicyLocal Policy = "local"
	// PolicyDisabled: no checks. The zero Policy means the same.
	PolicyDisabled Policy = "disabled"
)

// ErrUnqualified means the registry policy was given an image reference
// without a registry domain, such as "nginx".
var ErrUnqualified = errors.New("image reference not fully qualified")

// ParsePolicy returns the Policy named s. Its error lists the valid values:
//
//	valid policies are "registry", "local", "disabled"
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case PolicyRegistry, PolicyLocal, PolicyDisabled:
		return p, nil
	}
	return "", fmt.Errorf("valid policies are %q, %q, %q", PolicyRegistry, PolicyLocal, PolicyDisabled)
}

// Enabled reports whether the policy checks for updates.
func (p Policy) Enabled() bool { return p == PolicyRegistry || p == PolicyLocal }

// IdleAction is what becomes of the container when the service is idle.
type IdleAction string

const (
	// IdleStop stops the container; the next start starts it again.
	IdleStop IdleAction = "stop"
	// IdlePause freezes the container (podman pause): it keeps its
	// memory and uses no CPU, and the next start thaws it.
	IdlePause IdleAction = "pause"
)

// ParseIdleAction returns the IdleAction named s. Its error lists the
// valid values.
func ParseIdleAction(s string) (IdleAction, error) {
	switch a := IdleAction(s); a {
	case IdleStop, IdlePause:
		return a, nil
	}
	return "", fmt.Errorf("valid idle actions are %q, %q", IdleStop, IdlePause)
}
