package launcher

import (
	"math"
	"strings"
	"testing"

	"github.com/lazypod/lazypod/internal/spec"
)

func TestNewValidates(t *testing.T) {
	f := newFakeRuntime()
	base := func() Config {
		return Config{Name: "svc", Image: "img", Ports: []Port{{Route: "web", Port: 8080}}, Runtime: f}
	}
	tests := []struct {
		name    string
		change  func(c *Config)
		wantErr string // "" means valid
	}{
		{name: "minimal", change: func(*Config) {}},
		{name: "udp only defaults to none", change: func(c *Config) { c.Ports = []Port{{Route: "dns", Port: 53, Proto: spec.ProtoUDP}} }},
		{name: "no ports defaults to none", change: func(c *Config) { c.Ports = nil }},
		{name: "missing name", change: func(c *Config) { c.Name = "" }, wantErr: "missing container name"},
		{name: "bad name", change: func(c *Config) { c.Name = "-x" }, wantErr: `invalid service name "-x"`},
		{name: "bad container name", change: func(c *Config) { c.ContainerName = "-y" }, wantErr: `invalid container name "-y"`},
		{name: "missing image", change: func(c *Config) { c.Image = "" }, wantErr: "missing image"},
		{name: "missing runtime", change: func(c *Config) { c.Runtime = nil }, wantErr: "missing runtime"},
		{name: "duplicate route", change: func(c *Config) { c.Ports = append(c.Ports, Port{Route: "web", Port: 9000}) }, wantErr: `duplicate route "web"`},
		{name: "zero port", change: func(c *Config) { c.Ports[0].Port = 0 }, wantErr: "missing container port"},
		{name: "bad protocol", change: func(c *Config) { c.Ports[0].Proto = "sctp" }, wantErr: `invalid protocol "sctp"`},
		{name: "env without =", change: func(c *Config) { c.Env = []string{"HOME"} }, wantErr: `invalid env "HOME"`},
		{name: "env empty key", change: func(c *Config) { c.Env = []string{"=x"} }, wantErr: `invalid env "=x"`},
		{name: "bind volume", change: func(c *Config) {
			c.Volumes = []spec.Volume{{Source: "/srv/data", Target: "/data", Options: []string{"ro", "z"}}}
		}},
		{name: "named volume", change: func(c *Config) { c.Volumes = []spec.Volume{{Source: "data", Target: "/data"}} }},
		{name: "volume relative source", change: func(c *Config) { c.Volumes = []spec.Volume{{Source: "./data", Target: "/data"}} }, wantErr: "neither an absolute host path nor a volume name"},
		{name: "volume relative target", change: func(c *Config) { c.Volumes = []spec.Volume{{Source: "data", Target: "data"}} }, wantErr: "want SRC:DST[:OPTS] with an absolute DST"},
		{name: "volume empty option", change: func(c *Config) { c.Volumes = []spec.Volume{{Source: "data", Target: "/data", Options: []string{""}}} }, wantErr: "empty mount option"},
		{name: "reserved label", change: func(c *Config) { c.Labels = map[string]string{LabelHash: "x"} }, wantErr: "the io.lazypod. prefix is lazypod's own"},
		{name: "negative memory", change: func(c *Config) { c.Memory = -1 }, wantErr: "invalid memory limit"},
		{name: "NaN cpus", change: func(c *Config) { c.CPUs = math.NaN() }, wantErr: "invalid cpu limit"},
		{name: "negative timeout", change: func(c *Config) { c.StopTimeout = -1 }, wantErr: "invalid timeout"},
		{name: "bad probe", change: func(c *Config) { c.Ready = spec.Probe{Kind: "x"} }, wantErr: `invalid probe "x"`},
		{name: "tcp probe without tcp port", change: func(c *Config) {
			c.Ports = []Port{{Route: "dns", Port: 53, Proto: spec.ProtoUDP}}
			c.Ready = spec.Probe{Kind: spec.ProbeTCP}
		}, wantErr: "probe tcp needs a tcp port"},
		{name: "notify without runtime dir", change: func(c *Config) { c.Ready = spec.Probe{Kind: spec.ProbeNotify} }, wantErr: "needs a runtime directory"},
		{name: "notify path too long", change: func(c *Config) {
			c.Ready = spec.Probe{Kind: spec.ProbeNotify}
			c.RuntimeDir = "/run/" + strings.Repeat("x", 100)
		}, wantErr: "longer than 107 bytes: set RuntimeDirectory= / $RUNTIME_DIRECTORY to a shorter path or use a shorter --name"},
		{name: "notify", change: func(c *Config) { c.Ready = spec.Probe{Kind: spec.ProbeNotify}; c.RuntimeDir = "/run/lazypod" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.change(&c)
			_, err := New(c)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: got %v; want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New: got %v; want an error containing %q", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "configuring launcher: ") {
				t.Errorf("New: got %q; want it to start with configuring launcher: ", err)
			}
		})
	}
}

func TestValidateSkipsRuntime(t *testing.T) {
	c := Config{Name: "svc", Image: "img"}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate without a runtime: got %v; want nil", err)
	}
	c.Image = ""
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "missing image") {
		t.Errorf("Validate without an image: got %v; want missing image", err)
	}
}

func TestDefaultProbe(t *testing.T) {
	tests := []struct {
		name  string
		ports []Port
		want  spec.Probe
	}{
		{name: "tcp port", ports: []Port{{Route: "dns", Port: 53, Proto: spec.ProtoUDP}, {Route: "web", Port: 80}}, want: spec.Probe{Kind: spec.ProbeTCP}},
		{name: "udp only", ports: []Port{{Route: "dns", Port: 53, Proto: spec.ProtoUDP}}, want: spec.Probe{Kind: spec.ProbeNone}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Ports: tt.ports}
			if got := c.ready(); got.Kind != spec.ProbeListening {
				t.Errorf("ready: got %+v; want listening", got)
			}
			if got := c.fallback(); got != tt.want {
				t.Errorf("fallback: got %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestContainerSpec(t *testing.T) {
	c := Config{
		Name:    "svc",
		Image:   "img",
		Command: []string{"serve", "--fast"},
		Ports: []Port{
			{Route: "web", Port: 8080},
			{Route: "web-alt", Port: 8080, Proto: spec.ProtoTCP},
			{Route: "dns", Port: 53, Proto: spec.ProtoUDP},
		},
		Env:        []string{"A=1"},
		Volumes:    []spec.Volume{{Source: "/srv", Target: "/srv", Options: []string{"ro"}}, {Source: "data", Target: "/data"}},
		Labels:     map[string]string{"team": "a"},
		Ready:      spec.Probe{Kind: spec.ProbeNotify},
		RuntimeDir: "/run/lz",
	}
	s := c.ContainerSpec()
	if got, want := len(s.Ports), 2; got != want {
		t.Errorf("published ports: got %v; want %d (8080/tcp once, 53/udp)", s.Ports, want)
	}
	if got := s.Labels[LabelService]; got != "svc" {
		t.Errorf("service label: got %q; want svc", got)
	}
	if got := s.Labels["team"]; got != "a" {
		t.Errorf("user label: got %q; want a", got)
	}
	if got, want := s.Env, []string{"A=1", "NOTIFY_SOCKET=" + NotifyPath}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("env: got %q; want %q", got, want)
	}
	if got := mountSource(s, NotifyPath); got != "/run/lz/svc.notify" {
		t.Errorf("notify mount: got %q; want /run/lz/svc.notify", got)
	}
	if got := mountSource(s, "/srv"); got != "/srv" {
		t.Errorf("bind mount: got %q; want /srv", got)
	}
	if len(c.Env) != 1 {
		t.Errorf("config env changed to %q; want it left alone", c.Env)
	}
}

func TestSpecHash(t *testing.T) {
	base := func() Config {
		return Config{
			Name: "svc", Image: "img",
			Ports:  []Port{{Route: "web", Port: 8080}},
			Env:    []string{"A=1", "B=2"},
			Labels: map[string]string{"x": "1", "y": "2", "z": "3"},
		}
	}
	hash := func(c Config) string { return c.ContainerSpec().Labels[LabelHash] }
	want := hash(base())
	if len(want) != 64 {
		t.Fatalf("hash: got %q; want 64 hex digits", want)
	}
	for range 20 { // map order varies from run to run
		if got := hash(base()); got != want {
			t.Fatalf("hash of equal settings: got %s; want %s", got, want)
		}
	}
	changes := []struct {
		name   string
		change func(c *Config)
	}{
		{name: "env value", change: func(c *Config) { c.Env[1] = "B=3" }},
		{name: "env order", change: func(c *Config) { c.Env = []string{"B=2", "A=1"} }},
		{name: "image", change: func(c *Config) { c.Image = "img2" }},
		{name: "command", change: func(c *Config) { c.Command = []string{"x"} }},
		{name: "port", change: func(c *Config) { c.Ports[0].Port = 8081 }},
		{name: "label", change: func(c *Config) { c.Labels["x"] = "9" }},
		{name: "volume", change: func(c *Config) { c.Volumes = []spec.Volume{{Source: "d", Target: "/d"}} }},
		{name: "memory", change: func(c *Config) { c.Memory = 1 << 20 }},
		{name: "cpus", change: func(c *Config) { c.CPUs = 0.5 }},
		{name: "user", change: func(c *Config) { c.User = "1000" }},
		{name: "network", change: func(c *Config) { c.Network = "host" }},
	}
	for _, tt := range changes {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.change(&c)
			if got := hash(c); got == want {
				t.Errorf("hash unchanged after changing %s", tt.name)
			}
		})
	}
	// Settings that do not reach the container leave it alone.
	c := base()
	c.ReadyTimeout = 1
	c.StopTimeout = 1
	c.Ports[0].Route = "renamed"
	if got := hash(c); got != want {
		t.Errorf("hash changed with route names or timeouts; want it unchanged")
	}
}
