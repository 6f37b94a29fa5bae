package spec

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// full is a Serve with every setting away from its default.
func full() Serve {
	yes, no := true, false
	return Serve{
		Name: "web", Image: "docker.io/library/nginx:1.27", Command: []string{"nginx", "-g", "daemon off;"},
		Ports:       []Port{{FDName: "web", Port: 80, Proto: ProtoTCP}, {FDName: "dns", Port: 53, Proto: ProtoUDP}},
		Listens:     []Listen{{FDName: "web", Network: "tcp", Addr: "127.0.0.1:8080"}, {Network: "udp", Addr: "[::1]:53"}},
		IdleTimeout: 90 * time.Second, UDPTimeout: time.Minute, ExitOnIdle: &yes, IdleAction: IdlePause,
		Ready: Probe{Kind: ProbeHTTP, Arg: "/healthz"}, ReadyTimeout: 1500 * time.Millisecond, StopTimeout: 3 * time.Second,
		MaxConnections: -1, FlowIdleTimeout: time.Hour, PodmanURL: "unix:///run/podman/podman.sock", StateDir: "/var/lib/x",
		LogLevel: "debug", MetricsFile: "/var/lib/prometheus/node-exporter/web.prom",
		Needs: []string{"/run/lazypod/db.hold", "/run/lazypod/cache.hold"}, Env: []string{"A=1", "B=two words=x"}, EnvFiles: []string{"/etc/a.env"},
		Volumes: []Volume{{Source: "/srv", Target: "/data", Options: []string{"ro", "z"}}, {Source: "cache", Target: "/cache"}},
		Labels:  []string{"team=web"}, Memory: 512 << 20, CPUs: 1.5, User: "1000:100", Network: "host",
		AutoUpdate: PolicyRegistry, AuthFile: "/etc/auth.json", TLSVerify: &no,
		RollbackWindow: 0, UpdateInterval: 36 * time.Hour,
	}
}

func flatten(groups [][]string) []string { return slices.Concat(groups...) }

func TestServeArgsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		s    Serve
	}{
		{name: "every setting", s: full()},
		{name: "defaults", s: func() Serve { s := Defaults(); s.Name, s.Image, s.Ports = "x", "x", []Port{{Port: 1}}; return s }()},
		{name: "a podman run command line", s: func() Serve {
			s := Defaults()
			s.Name, s.Ports = "web", []Port{{Port: 80}}
			s.Run = []string{"--env", "A=1", "--health-cmd", "curl -f http://localhost/ || exit 1", "docker.io/library/nginx:latest", "nginx", "-g", "daemon off;"}
			return s
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := flatten(tt.s.Args())
			got, err := ParseServe(args)
			if err != nil {
				t.Fatalf("ParseServe(%q): %v", args, err)
			}
			if !reflect.DeepEqual(got, tt.s) {
				t.Errorf("ParseServe(Args()) =\n%+v\nwant\n%+v", got, tt.s)
			}
		})
	}
	if n := len(flatten(Serve{Name: "x", Image: "x", Ports: []Port{{Port: 1}}}.Args())); n == 0 {
		t.Error("Args of a zero Serve with a name, image and port is empty")
	}
}

func TestParseServeErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no image", args: []string{"--port", "80"}, want: "missing --image"},
		{name: "stray argument", args: []string{"--port", "80", "nginx"}, want: `unexpected argument "nginx": put the container's command after --`},
		{name: "bad memory", args: []string{"--image", "x", "--port", "80", "--memory", "lots"}, want: `invalid --memory "lots": not a size`},
		{name: "bad boolean", args: []string{"--image", "x", "--port", "80", "--exit-on-idle=maybe"}, want: `invalid --exit-on-idle "maybe": not a boolean`},
		{name: "metrics file not .prom", args: []string{"--image", "x", "--port", "80", "--metrics-file", "/tmp/web.txt"},
			want: `invalid --metrics-file "/tmp/web.txt": node_exporter's textfile collector reads only files named *.prom`},
		{name: "needs not a hold socket", args: []string{"--image", "x", "--port", "80", "--needs", "/run/postgresql/.s.PGSQL.5432"},
			want: `invalid --needs "/run/postgresql/.s.PGSQL.5432": not a hold socket`},
		{name: "bad user", args: []string{"--image", "x", "--port", "80", "--user", "a b"}, want: `invalid --user "a b": want USER[:GROUP]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseServe(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrUsage) {
				t.Fatalf("ParseServe(%q) = %v; want a usage error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

// FuzzParseServe: whatever ParseServe accepts, Args gives back, and
// ParseServe reads that to the same settings.
func FuzzParseServe(f *testing.F) {
	f.Add(strings.Join(flatten(full().Args()), "\x00"))
	f.Add("--image\x00nginx\x00--port\x0080")
	f.Add("--image\x00nginx\x00--port\x00web=80/tcp\x00--memory\x001.5g\x00--\x00sh")
	f.Fuzz(func(t *testing.T, joined string) {
		s, err := ParseServe(strings.Split(joined, "\x00"))
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n") {
				t.Fatalf("error %q has several lines", err)
			}
			return
		}
		back, err := ParseServe(flatten(s.Args()))
		if err != nil || !reflect.DeepEqual(back, s) {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", joined, s, flatten(s.Args()), back, err)
		}
	})
}
