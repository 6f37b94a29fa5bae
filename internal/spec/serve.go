package spec

import (
	"strings"
	"time"
)

// Serve is what `lazypod serve` is told: the value of each of its flags,
// checked. Package units renders a definition's Serve as serve's command
// line and cmd/lazypod parses that back into a Serve; a test holds the two
// to giving the same value.
type Serve struct {
	Name    string   // --name: service and container name
	Image   string   // --image: the reference to run
	Command []string // after -- with --image: the container's command; nil for the image's
	// Run is what follows -- without --image: a podman run command line,
	// [OPTIONS...] IMAGE [COMMAND...], which Podman's own parser reads
	// (internal/podman's ParseRun). nil with --image.
	Run     []string
	Ports   []Port   // --port
	Listens []Listen // --listen: sockets to bind when systemd passes none

	IdleTimeout     time.Duration // --idle-timeout; 0: never stop
	UDPTimeout      time.Duration // --udp-timeout
	ExitOnIdle      *bool         // --exit-on-idle; nil: on when socket-activated
	IdleAction      IdleAction    // --idle-action; "": stop
	Ready           Probe         // --ready; zero: listening
	ReadyTimeout    time.Duration // --ready-timeout
	StopTimeout     time.Duration // --stop-timeout
	MaxConnections  int           // --max-connections; 0: auto, -1: no cap
	FlowIdleTimeout time.Duration // --flow-idle-timeout; 0: never
	PodmanURL       string        // --podman-url; "": the environment's default
	StateDir        string        // --state-dir; "": the environment's default
	LogLevel        string        // --log-level
	MetricsFile     string        // --metrics-file; "": none
	Needs           []string      // --needs: hold sockets of the services the container needs

	Env      []string // --env: KEY=VALUE
	EnvFiles []string // --env-file: read when serve starts
	Volumes  []Volume // --volume
	Labels   []string // --label: KEY=VALUE
	Memory   Size     // --memory; 0: no limit
	CPUs     float64  // --cpus; 0: no limit
	User     string   // --user: USER[:GROUP]; "": the image's
	Network  string   // --network; "": Podman's default

	AutoUpdate     Policy        // --auto-update
	AuthFile       string        // --authfile
	TLSVerify      *bool         // --tls-verify; nil: as registries.conf says
	RollbackWindow time.Duration // --rollback-window; 0: only probe failures roll back
	UpdateInterval time.Duration // --update-interval; 0: only lazypod update checks
}

// Defaults returns the settings of a `lazypod serve` given no flags.
func Defaults() Serve {
	return Serve{
		IdleTimeout:    5 * time.Minute,
		UDPTimeout:     30 * time.Second,
		ReadyTimeout:   60 * time.Second,
		StopTimeout:    10 * time.Second,
		LogLevel:       "info",
		IdleAction:     IdleStop,
		AutoUpdate:     PolicyDisabled,
		RollbackWindow: 10 * time.Second,
		UpdateInterval: time.Hour,
	}
}

// RunOptions returns the container settings of serve's own flags as the
// podman run options they stand for, so that they mean what they mean to
// podman run: --env, --env-file, --volume, --label, --memory, --cpus,
// --user and --network.
func (s Serve) RunOptions() []string {
	var out []string
	for _, g := range s.containerArgs() {
		out = append(out, g...)
	}
	return out
}

// LabelMap returns Labels by key; a key given twice takes its last value.
func (s Serve) LabelMap() map[string]string {
	m := make(map[string]string, len(s.Labels))
	for _, kv := range s.Labels {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
