package units

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// base is the smallest valid [Container] section; tests add to it.
const base = "[Container]\nImage=docker.io/library/nginx:latest\nPublishPort=8080:80\n"

func parseString(t *testing.T, text string) (*Definition, error) {
	t.Helper()
	return Parse("/etc/containers/systemd/web.lazypod", strings.NewReader(text), RenderOptions{})
}

// serveGroups returns d's lazypod serve arguments, a flag and its value
// per group.
func serveGroups(d *Definition, o RenderOptions) [][]string { return d.Serve(o).Args() }

func dur(d time.Duration) *time.Duration { return &d }
func boolp(b bool) *bool                 { return &b }

// hasRun reports whether words holds want, in a row.
func hasRun(words, want []string) bool {
	for i := 0; i+len(want) <= len(words); i++ {
		if slices.Equal(words[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

// TestParseContainerKeys parses Quadlet keys: each must reach the podman
// run command line lazypod serve runs as Quadlet writes it, specifiers
// and environment references left for systemd.
func TestParseContainerKeys(t *testing.T) {
	tests := []struct {
		name string
		text string   // added to base
		run  []string // words that must be in Run, in a row
	}{
		{"default name", "", []string{"--name", "systemd-%N"}},
		{"ContainerName", "ContainerName=web-1\n", []string{"--name", "web-1"}},
		{"Exec", `Exec=/bin/app --title "two words" 'it''s' 100%% $HOME ${A}` + "\n",
			[]string{"docker.io/library/nginx:latest", "/bin/app", "--title", "two words", "its", "100%%", "$HOME", "${A}"}},
		{"Exec continued", "Exec=/bin/app \\\n  --flag \\\n  last\n", []string{"docker.io/library/nginx:latest", "/bin/app", "--flag", "last"}},
		{"Environment", "Environment=A=1 \"B=two words\"\n", []string{"--env", "A=1", "--env", "B=two words"}},
		{"EnvironmentFile with a specifier", "EnvironmentFile=%h/web.env\n", []string{"--env-file", "%h/web.env"}},
		{"EnvironmentFile relative", "EnvironmentFile=web.env\n", []string{"--env-file", "/etc/containers/systemd/web.env"}},
		{"Volume", "Volume=%h/data:/data:Z\n", []string{"-v", "%h/data:/data:Z"}},
		{"Label", "Label=a=1\n", []string{"--label", "a=1"}},
		{"User and Group", "User=1000\nGroup=100\n", []string{"--user", "1000:100"}},
		{"Network", "Network=host\n", []string{"--network", "host"}},
		{"HealthCmd shell form", "HealthCmd=curl -f http://localhost/ || exit 1\nHealthInterval=2s\nHealthRetries=3\nHealthStartPeriod=1s\nHealthOnFailure=kill\n",
			[]string{"--health-cmd", "curl -f http://localhost/ || exit 1", "--health-interval", "2s", "--health-on-failure", "kill", "--health-retries", "3", "--health-start-period", "1s"}},
		{"HealthCmd exec form", `HealthCmd=["/bin/check", "--quick"]` + "\n", []string{"--health-cmd", `["/bin/check", "--quick"]`}},
		{"Memory", "Memory=512m\n", []string{"--memory", "512m"}},
		{"ReadOnly and VolatileTmp", "ReadOnly=true\nVolatileTmp=true\n", []string{"--read-only"}},
		{"Entrypoint", "Entrypoint=/bin/sh\n", []string{"--entrypoint=/bin/sh"}},
		{"Secret", "Secret=token,type=env,target=TOKEN\n", []string{"--secret", "token,type=env,target=TOKEN"}},
		{"AddCapability", "AddCapability=NET_ADMIN\n", []string{"--cap-add", "net_admin"}},
		{"Ulimit", "Ulimit=nofile=1024:2048\n", []string{"--ulimit", "nofile=1024:2048"}},
		{"PodmanArgs", "PodmanArgs=--cpus 0.5 --pids-limit=100\n", []string{"--cpus", "0.5", "--pids-limit=100"}},
		{"Timezone", "Timezone=local\n", []string{"--tz", "local"}},
		{"UserNS", "UserNS=keep-id\n", []string{"--userns", "keep-id"}},
		{"Mount", "Mount=type=tmpfs,destination=/cache\n", []string{"--mount", "type=tmpfs,destination=/cache"}},
		{"StopTimeout", "StopTimeout=20\n", []string{"--stop-timeout", "20"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := parseString(t, base+tt.text)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !hasRun(d.Run, tt.run) {
				t.Errorf("Run = %q; want it to hold %q", d.Run, tt.run)
			}
			if d.Image != "docker.io/library/nginx:latest" {
				t.Errorf("Image = %q", d.Image)
			}
			for _, own := range []string{"--replace", "--rm", "-d", "--cgroups=split", "--publish"} {
				if slices.Contains(d.Run, own) {
					t.Errorf("Run = %q holds %s, which lazypod does itself", d.Run, own)
				}
			}
			if slices.ContainsFunc(d.Run, func(w string) bool { return strings.HasPrefix(w, "--sdnotify") }) {
				t.Errorf("Run = %q holds --sdnotify", d.Run)
			}
		})
	}
}

// TestParseKeys checks the keys lazypod reads itself: the field each
// sets and the lazypod serve flag it becomes.
func TestParseKeys(t *testing.T) {
	tests := []struct {
		name  string
		text  string // added to base
		field func(*Definition) any
		want  any
		flags [][]string // groups serve's arguments must hold
	}{
		{"service name", "", func(d *Definition) any { return d.Service() }, "web", [][]string{{"--name", "web"}}},
		{"container name", "", func(d *Definition) any { return d.ContainerName }, "systemd-%N", nil},
		{"PublishPort", "", func(d *Definition) any { return d.Listeners },
			[]Listener{{Network: NetworkTCP, Address: "8080", Port: 80}}, [][]string{{"--port", "tcp-80=80/tcp"}}},
		{"PublishPort IPv4", "PublishPort=127.0.0.1:8443:443/tcp\n", func(d *Definition) any { return d.Listeners[1] },
			Listener{Network: NetworkTCP, Address: "127.0.0.1:8443", Port: 443}, [][]string{{"--port", "tcp-443=443/tcp"}}},
		{"PublishPort IPv6", "PublishPort=[::1]:8443:443\n", func(d *Definition) any { return d.Listeners[1] },
			Listener{Network: NetworkTCP, Address: "[::1]:8443", Port: 443}, nil},
		{"PublishPort UDP", "PublishPort=5353:53/udp\n", func(d *Definition) any { return d.Listeners[1] },
			Listener{Network: NetworkUDP, Address: "5353", Port: 53}, [][]string{{"--port", "udp-53=53/udp"}}},
		{"PublishPort with a specifier", "PublishPort=127.0.0.1:%i:81\n", func(d *Definition) any { return d.Listeners[1] },
			Listener{Network: NetworkTCP, Address: "127.0.0.1:%i", Port: 81}, nil},
		{"PublishPort TCP and UDP on one port", "PublishPort=53:53/udp\nPublishPort=53:53/tcp\n",
			func(d *Definition) any { return len(d.Listeners) }, 3, [][]string{{"--port", "udp-53=53/udp"}, {"--port", "tcp-53=53/tcp"}}},
		{"PublishPort reset", "PublishPort=\nPublishPort=9090:90\n", func(d *Definition) any { return d.Listeners },
			[]Listener{{Network: NetworkTCP, Address: "9090", Port: 90}}, nil},
		{"AutoUpdate registry", "AutoUpdate=registry\n", func(d *Definition) any { return d.AutoUpdate }, spec.PolicyRegistry,
			[][]string{{"--auto-update", "registry"}}},
		{"AutoUpdate local", "AutoUpdate=local\n", func(d *Definition) any { return d.AutoUpdate }, spec.PolicyLocal, nil},
		{"no auto-update label", "AutoUpdate=local\n", func(d *Definition) any { return slices.Contains(d.Run, "io.containers.autoupdate=local") }, false, nil},
		{"HealthCmd: serve picks the healthcheck", "HealthCmd=/bin/check\n", func(d *Definition) any { return d.Probe().String() }, "", nil},
		{"Notify=healthy", "Notify=healthy\n", func(d *Definition) any { return d.Probe().String() }, "healthcheck",
			[][]string{{"--ready", "healthcheck"}}},
		{"Notify=yes", "Notify=yes\n", func(d *Definition) any { return d.Probe().String() }, "notify", [][]string{{"--ready", "notify"}}},
		{"Notify=yes with HealthCmd", "Notify=yes\nHealthCmd=/bin/check\n", func(d *Definition) any { return d.Probe().String() }, "notify", nil},
		{"Notify=false", "Notify=false\n", func(d *Definition) any { return d.Probe().String() }, "", nil},
		{"Ready wins", "HealthCmd=/bin/check\nNotify=yes\n[Lazypod]\nReady=none\n", func(d *Definition) any { return d.Probe().String() }, "none",
			[][]string{{"--ready", "none"}}},
		{"StopTimeout of the container", "StopTimeout=20\n", func(d *Definition) any { return d.StopTimeout }, dur(20 * time.Second), nil},
		{"StopTimeout of lazypod wins", "StopTimeout=20\n[Lazypod]\nStopTimeout=5s\n", func(d *Definition) any { return d.StopTimeout }, dur(5 * time.Second),
			[][]string{{"--stop-timeout", "5s"}}},
		{"ListenUnix", "[Lazypod]\nListenUnix=/run/web/web.sock:80\n", func(d *Definition) any { return d.Listeners[1] },
			Listener{Network: NetworkUnix, Address: "/run/web/web.sock", Port: 80}, [][]string{{"--port", "tcp-80=80/tcp"}}},
		{"ListenUnix with a specifier", "[Lazypod]\nListenUnix=%t/web.sock:80\n", func(d *Definition) any { return d.Listeners[1].Address }, "%t/web.sock", nil},
		{"Ready http", "[Lazypod]\nReady=http:/healthz\n", func(d *Definition) any { return d.Ready.String() }, "http:/healthz",
			[][]string{{"--ready", "http:/healthz"}}},
		{"Ready exec", "[Lazypod]\nReady=exec:/bin/check now\n", func(d *Definition) any { return d.Probe().String() }, "exec:/bin/check now", nil},
		{"ReadyTimeout", "[Lazypod]\nReadyTimeout=2m\n", func(d *Definition) any { return d.ReadyTimeout }, dur(2 * time.Minute),
			[][]string{{"--ready-timeout", "2m"}}},
		{"IdleTimeout seconds", "[Lazypod]\nIdleTimeout=600\n", func(d *Definition) any { return d.IdleTimeout }, dur(10 * time.Minute),
			[][]string{{"--idle-timeout", "10m"}}},
		{"IdleTimeout 0", "[Lazypod]\nIdleTimeout=0\n", func(d *Definition) any { return d.IdleTimeout }, dur(0), [][]string{{"--idle-timeout", "0"}}},
		{"later value wins", "[Lazypod]\nIdleTimeout=1m\nIdleTimeout=2m\n", func(d *Definition) any { return d.IdleTimeout }, dur(2 * time.Minute), nil},
		{"empty value resets", "[Lazypod]\nIdleTimeout=1m\nIdleTimeout=\n", func(d *Definition) any { return d.IdleTimeout }, (*time.Duration)(nil), nil},
		{"UDPTimeout", "[Lazypod]\nUDPTimeout=45s\n", func(d *Definition) any { return d.UDPTimeout }, dur(45 * time.Second),
			[][]string{{"--udp-timeout", "45s"}}},
		{"ExitOnIdle", "[Lazypod]\nExitOnIdle=off\n", func(d *Definition) any { return d.ExitOnIdle }, boolp(false),
			[][]string{{"--exit-on-idle=false"}}},
		{"RollbackWindow", "AutoUpdate=local\n[Lazypod]\nRollbackWindow=0\n", func(d *Definition) any { return d.RollbackWindow }, dur(0),
			[][]string{{"--rollback-window", "0"}}},
		{"UpdateInterval", "AutoUpdate=local\n[Lazypod]\nUpdateInterval=2h\n", func(d *Definition) any { return d.UpdateInterval }, dur(2 * time.Hour),
			[][]string{{"--update-interval", "2h"}}},
		{"AuthFile with a specifier", "[Lazypod]\nAuthFile=%h/auth.json\n", func(d *Definition) any { return d.AuthFile }, "%h/auth.json",
			[][]string{{"--authfile", "%h/auth.json"}}},
		{"MetricsFile", "[Lazypod]\nMetricsFile=/var/lib/prometheus/node-exporter/lazypod-%N.prom\n", func(d *Definition) any { return d.MetricsFile },
			"/var/lib/prometheus/node-exporter/lazypod-%N.prom", [][]string{{"--metrics-file", "/var/lib/prometheus/node-exporter/lazypod-%N.prom"}}},
		{"TLSVerify", "[Lazypod]\nTLSVerify=No\n", func(d *Definition) any { return d.TLSVerify }, boolp(false),
			[][]string{{"--tls-verify=false"}}},
		{"CPUs", "[Lazypod]\nCPUs=1.50\n", func(d *Definition) any { return d.CPUs }, 1.5, [][]string{{"--cpus", "1.5"}}},
		{"LogLevel", "[Lazypod]\nLogLevel=Warn\n", func(d *Definition) any { return d.LogLevel }, "warn", [][]string{{"--log-level", "warn"}}},
		{"MaxConnections", "[Lazypod]\nMaxConnections=-1\n", func(d *Definition) any { return d.MaxConnections }, -1,
			[][]string{{"--max-connections", "-1"}}},
		{"FlowIdleTimeout", "[Lazypod]\nFlowIdleTimeout=10m\n", func(d *Definition) any { return d.FlowIdleTimeout }, dur(10 * time.Minute),
			[][]string{{"--flow-idle-timeout", "10m"}}},
		{"PodmanURL", "[Lazypod]\nPodmanURL=tcp://127.0.0.1:8888\n", func(d *Definition) any { return d.PodmanURL }, "tcp://127.0.0.1:8888",
			[][]string{{"--podman-url", "tcp://127.0.0.1:8888"}}},
		{"default PodmanURL", "", func(d *Definition) any { return d.PodmanURL }, "",
			[][]string{{"--podman-url", "unix:///run/podman/podman.sock"}}},
		{"pass-through", "[Service]\nEnvironment=X=1\n[Unit]\nWants=a.service \\\n  b.service\n[Service]\nNice=5\n[X-Mine]\nKey=v\n",
			func(d *Definition) any { return d.Passthrough },
			map[string][]Entry{"Service": {{"Environment", "X=1"}, {"Nice", "5"}}, "Unit": {{"Wants", "a.service b.service"}}, "X-Mine": {{"Key", "v"}}}, nil},
		{"comments and blank lines", "# a comment\n; another\n\n  Network = host  \n", func(d *Definition) any { return hasRun(d.Run, []string{"--network", "host"}) }, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := parseString(t, base+tt.text)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := tt.field(d); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v; want %#v", deref(got), deref(tt.want))
			}
			groups := serveGroups(d, RenderOptions{Binary: "/usr/bin/lazypod"})
			for _, f := range tt.flags {
				if !slices.ContainsFunc(groups, func(g []string) bool { return slices.Equal(g, f) }) {
					t.Errorf("serve arguments %q; want them to hold %q", groups, f)
				}
			}
		})
	}
}

func deref(v any) any {
	switch p := v.(type) {
	case *time.Duration:
		if p != nil {
			return *p
		}
	case *bool:
		if p != nil {
			return *p
		}
	}
	return v
}

// TestParseErrors checks that every kind of mistake is refused with the
// file, the line, the key and a hint.
func TestParseErrors(t *testing.T) {
	const file = "/etc/containers/systemd/web.lazypod"
	tests := []struct {
		name string
		text string // the whole file
		want string // the error, whole
	}{
		// Structure, as Quadlet's parser reads it.
		{"text before a section", "Image=nginx\n[Container]\n",
			file + ": key file does not start with a group: write Key=Value lines under [Section] headers, as in a systemd unit"},
		{"no equals sign", base + "Network\n",
			file + ": file contains line 4: “Network” which is not a key-value pair, group, or comment: write Key=Value lines under [Section] headers, as in a systemd unit"},
		{"unknown key", base + "Ports=80\n",
			file + ":4: [Container] Ports=80: unknown key: [Container] takes the keys of podman-systemd.unit(5) (Podman 5.8)"},
		{"unknown Quadlet key", base + "[Quadlet]\nDefault=no\n",
			file + ":5: [Quadlet] Default=no: unknown key: [Quadlet] takes the keys of podman-systemd.unit(5) (Podman 5.8)"},
		{"unknown lazypod key", base + "[Lazypod]\nIdle=5m\n",
			file + ":5: [Lazypod] Idle=5m: unknown key: valid keys in [Lazypod] are AuthFile= CPUs= ExitOnIdle= FlowIdleTimeout= IdleAction= IdleTimeout= ListenUnix= LogLevel= MaxConnections= MetricsFile= Needs= PodmanURL= Ready= ReadyTimeout= RollbackWindow= StopTimeout= TLSVerify= UDPTimeout= UpdateInterval="},

		// As Quadlet refuses them.
		{"missing image", "[Container]\nPublishPort=80:80\n",
			file + ": [Container]: as Quadlet reads it: no Image or Rootfs key specified"},
		{"Group without User", base + "Group=100\n", file + ": [Container]: as Quadlet reads it: invalid Group set without User"},
		{"Quadlet network not there", base + "Network=db.network\n",
			file + ": [Container]: as Quadlet reads it: requested Quadlet unit db.network was not found"},

		// As podman run refuses them.
		{"bad podman option", base + "PodmanArgs=--no-such-flag\n",
			file + ": [Container]: podman run refuses the container's settings: unknown flag: --no-such-flag"},
		{"bad memory", base + "Memory=lots\n",
			file + ": [Container]: podman run refuses the container's settings: invalid value for memory: invalid size: 'lots'"},
		{"bad image reference", "[Container]\nImage=UPPER/case\nPublishPort=80:80\n",
			file + ": [Container]: invalid image \"UPPER/case\": invalid reference format: repository name must be lowercase: use a reference like docker.io/library/nginx:1.27 or localhost/app:latest"},
		{"bad container name", base + "ContainerName=-web\n",
			file + ": [Container]: invalid container name --name \"-web\": not a valid name: use up to 200 letters, digits, '_', '.' and '-', starting with a letter or digit"},
		{"unknown specifier", base + "Volume=%Q/data:/data\n",
			file + ": [Container]: in \"%Q/data:/data\": %Q is not a systemd specifier: write %% for a literal %"},

		// Keys that cannot apply on demand.
		{"Pod", base + "Pod=web.pod\n",
			file + ":4: [Container] Pod=web.pod: does not apply to a container started on demand: " + refusedKeys["Pod"]},
		{"Rootfs", "[Container]\nRootfs=/srv/root\nPublishPort=80:80\n",
			file + ":2: [Container] Rootfs=/srv/root: does not apply to a container started on demand: " + refusedKeys["Rootfs"]},
		{"GlobalArgs", base + "GlobalArgs=--log-level=debug\n",
			file + ":4: [Container] GlobalArgs=--log-level=debug: does not apply to a container started on demand: " + refusedKeys["GlobalArgs"]},
		{"Pull=always", base + "Pull=always\n",
			file + ": [Container]: --pull=always does not apply: lazypod pulls a missing image at the first start, and its updater pulls newer ones between starts: use AutoUpdate= (--auto-update)"},
		{"PodmanArgs publish", base + "PodmanArgs=-p 80:80\n",
			file + ": [Container]: --publish does not apply to a container started on demand: lazypod listens on the host's ports itself: use PublishPort= (--listen), and lazypod publishes the container's ports on 127.0.0.1"},
		{"network of another container", base + "Network=container:db\n",
			file + ": [Container]: --network container:db does not apply to a container started on demand: lazypod forwards to the container's ports, published on 127.0.0.1, and Podman publishes none in that network mode: use a network of the container's own (bridge, a named network, or host)"},

		// Whole-file checks.
		{"no listener", "[Container]\nImage=nginx\n",
			file + ": [Container]: no listener: add PublishPort=HOSTPORT:CONTAINERPORT to [Container] or ListenUnix=PATH:CONTAINERPORT to [Lazypod]"},
		{"registry policy, short name", "[Container]\nImage=nginx\nPublishPort=80:80\nAutoUpdate=registry\n",
			file + ":2: [Container] Image=nginx: image reference not fully qualified for the registry policy: name its registry, e.g. docker.io/library/nginx:latest"},
		{"RollbackWindow without updates", base + "[Lazypod]\nRollbackWindow=10s\n",
			file + ":5: [Lazypod] RollbackWindow=10s: only updates roll back: set AutoUpdate= in [Container] or remove the line"},
		{"tcp probe, only UDP", "[Container]\nImage=nginx\nPublishPort=53:53/udp\n[Lazypod]\nReady=http:/\n",
			file + ":5: [Lazypod] Ready=http:/: probe http needs a TCP or unix listener, and every listener is UDP: choose exec:COMMAND, healthcheck, notify or none"},

		// Values of lazypod's own reading.
		{"AutoUpdate bad", base + "AutoUpdate=daily\n",
			file + ":4: [Container] AutoUpdate=daily: valid policies are \"registry\", \"local\": remove the line for no updates"},
		{"Notify bad", base + "Notify=ready\n", file + ":4: [Container] Notify=ready: valid values are healthy, yes and no"},
		{"PublishPort container port only", base + "PublishPort=80\n",
			file + ":4: [Container] PublishPort=80: a host port is needed, systemd listens on it: want [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. 127.0.0.1:8080:80 or 53:53/udp"},
		{"PublishPort random host port", base + "PublishPort=127.0.0.1::80\n",
			file + ":4: [Container] PublishPort=127.0.0.1::80: a host port is needed, systemd listens on it: want [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. 127.0.0.1:8080:80 or 53:53/udp"},
		{"PublishPort range", base + "PublishPort=9000-9001:9000-9001\n",
			file + ":4: [Container] PublishPort=9000-9001:9000-9001: port ranges are not supported: write one PublishPort= per port"},
		{"PublishPort bad IP", base + "PublishPort=localhost:9000:80\n",
			file + ":4: [Container] PublishPort=localhost:9000:80: \"localhost\" is not an IP address: want [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. 127.0.0.1:8080:80 or 53:53/udp"},
		{"PublishPort duplicate", base + "PublishPort=8080:81\n",
			file + ":4: [Container] PublishPort=8080:81: binds the address of line 3 (tcp 8080) again: remove one or change its host port"},
		{"PublishPort specifier in the container port", base + "PublishPort=9000:%i\n",
			file + ":4: [Container] PublishPort=9000:%i: the container port must be a number, without specifiers: it names the socket"},
		{"PublishPort environment reference", base + "PublishPort=${PORT}:80\n",
			file + ":4: [Container] PublishPort=${PORT}:80: host port \"${PORT}\" is not a number from 1 to 65535: want [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. 127.0.0.1:8080:80 or 53:53/udp"},
		{"ListenUnix relative", base + "[Lazypod]\nListenUnix=web.sock:80\n",
			file + ":5: [Lazypod] ListenUnix=web.sock:80: want PATH:CONTAINERPORT with an absolute PATH, e.g. /run/app.sock:80"},
		{"ListenUnix in lazypod's runtime directory", base + "[Lazypod]\nListenUnix=%t/lazypod/web/web.sock:80\n",
			file + ":5: [Lazypod] ListenUnix=%t/lazypod/web/web.sock:80: lazypod's runtime directory holds the services' own files, and a service's is emptied when it stops: put the socket in a directory of its own, e.g. /run/db/db.sock"},
		{"ListenUnix duplicate", base + "[Lazypod]\nListenUnix=/run/web.sock:80\nListenUnix=/run/web.sock:81\n",
			file + ":6: [Lazypod] ListenUnix=/run/web.sock:81: line 5 listens on this path already: remove one"},
		{"Ready bad", base + "[Lazypod]\nReady=http\n",
			file + ":5: [Lazypod] Ready=http: valid probes are \"listening\", \"tcp\", \"http:/PATH\", \"exec:COMMAND\", \"healthcheck\", \"notify\", \"none\""},
		{"duration systemd style", base + "[Lazypod]\nIdleTimeout=5min\n",
			file + ":5: [Lazypod] IdleTimeout=5min: not a duration: use a duration like 90s, 5m or 1h30m, or a number of seconds (systemd's 5min is not understood)"},
		{"ReadyTimeout 0", base + "[Lazypod]\nReadyTimeout=0\n", file + ":5: [Lazypod] ReadyTimeout=0: must be more than 0, e.g. 30s"},
		{"boolean bad", base + "[Lazypod]\nExitOnIdle=maybe\n",
			file + ":5: [Lazypod] ExitOnIdle=maybe: not a boolean: use yes or no (also true/false, on/off, 1/0)"},
		{"AuthFile relative", base + "[Lazypod]\nAuthFile=auth.json\n",
			file + ":5: [Lazypod] AuthFile=auth.json: not an absolute path: write it from /, e.g. /etc/app/app.env"},
		{"AuthFile bad specifier", base + "[Lazypod]\nAuthFile=%Z/auth.json\n",
			file + ":5: [Lazypod] AuthFile=%Z/auth.json: %Z is not a systemd specifier: write %% for a literal %"},
		{"Needs a template", base + "[Lazypod]\nNeeds=db@main\n",
			file + ":5: [Lazypod] Needs=db@main: \"db@main\" is not a service lazypod runs: name another definition file, e.g. Needs=db for db.lazypod (templates cannot be needed)"},
		{"Needs itself", base + "[Lazypod]\nNeeds=web\n", file + ":5: [Lazypod] Needs=web: a service cannot need itself"},
		{"MetricsFile not .prom", base + "[Lazypod]\nMetricsFile=/var/lib/node-exporter/web.txt\n",
			file + ":5: [Lazypod] MetricsFile=/var/lib/node-exporter/web.txt: node_exporter's textfile collector reads only files named *.prom: name it so, e.g. lazypod-web.prom"},
		{"PodmanURL bad", base + "[Lazypod]\nPodmanURL=/run/podman/podman.sock\n",
			file + ":5: [Lazypod] PodmanURL=/run/podman/podman.sock: use unix:///PATH, tcp://HOST:PORT or ssh://USER@HOST/PATH, e.g. unix:///run/podman/podman.sock"},

		// Pass-through.
		{"pass-through ListenStream", base + "[Socket]\nListenStream=9090\n",
			file + ":5: [Socket] ListenStream=9090: lazypod writes this setting itself: use PublishPort= in [Container] or ListenUnix= in [Lazypod]"},
		{"pass-through ExecStart", base + "[Service]\nExecStart=/bin/sh\n",
			file + ":5: [Service] ExecStart=/bin/sh: lazypod writes this setting itself: set the container's command with Exec= in [Container]"},
		{"oneshot", base + "[Service]\nType=oneshot\n",
			file + ":5: [Service] Type=oneshot: lazypod writes this setting itself: " + managedKeys["Service"]["Type"]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := parseString(t, tt.text)
			if err == nil {
				t.Fatalf("Parse: got %+v, no error; want %q", d, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("got error %T; want *Error", err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q has several lines; want one", err)
			}
		})
	}
}

func TestParseFileName(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/etc/web.conf", "/etc/web.conf: not a definition file: name it NAME.lazypod"},
		{"/etc/-web.lazypod", "/etc/-web.lazypod: file name \"-web\" is not a valid name: use up to 200 letters, digits, '_', '.' and '-', starting with a letter or digit"},
		{"/etc/web@a b.lazypod", "/etc/web@a b.lazypod: instance \"a b\" of file name \"web@a b\" is not a unit instance name: use letters, digits and :_.\\-"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, err := Parse(tt.path, strings.NewReader(base), RenderOptions{})
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v; want %s", err, tt.want)
			}
		})
	}
	if _, err := ParseFile("testdata/missing.lazypod", RenderOptions{}); err == nil || !strings.HasPrefix(err.Error(), "reading definition: ") {
		t.Errorf("ParseFile of a missing file: got %v; want a reading error", err)
	}
}

// TestTemplate parses NAME@.lazypod and an instance of it.
func TestTemplate(t *testing.T) {
	d, err := Parse("/etc/containers/systemd/web@.lazypod", strings.NewReader(base+"PublishPort=127.0.0.1:%i:81\n"), RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Template || d.Name != "web@" || d.Service() != "web-%i" || d.ContainerName != "systemd-%p_%i" {
		t.Errorf("template: Template %v, Name %q, Service %q, ContainerName %q; want true, web@, web-%%i, systemd-%%p_%%i",
			d.Template, d.Name, d.Service(), d.ContainerName)
	}
	d, err = Parse("/etc/containers/systemd/web@blue.lazypod", strings.NewReader(base), RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Template || d.Name != "web@blue" || d.Service() != "web-%i" {
		t.Errorf("instance: Template %v, Name %q, Service %q; want false, web@blue, web-%%i", d.Template, d.Name, d.Service())
	}
}

// TestDropins merges drop-ins as Quadlet does: NAME.lazypod.d over
// lazypod.d, in name order, a later value winning.
func TestDropins(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("web-app.lazypod", base)
	write("lazypod.d/10-all.conf", "[Container]\nEnvironment=LEVEL=all\nLabel=a=1\n")
	write("web-.lazypod.d/10-all.conf", "[Container]\nEnvironment=LEVEL=web-\n") // hides lazypod.d's 10-all.conf
	write("web-app.lazypod.d/20-mem.conf", "[Container]\nMemory=256m\n[Lazypod]\nIdleTimeout=1m\n")
	write("web-app.lazypod.d/notes.txt", "[Container]\nMemory=1g\n")
	d, err := ParseFile(filepath.Join(dir, "web-app.lazypod"), RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasRun(d.Run, []string{"--env", "LEVEL=web-"}) || !hasRun(d.Run, []string{"--memory", "256m"}) || hasRun(d.Run, []string{"--label", "a=1"}) {
		t.Errorf("Run = %q; want LEVEL=web- and --memory 256m from the drop-ins, not lazypod.d's hidden 10-all.conf", d.Run)
	}
	if d.IdleTimeout == nil || *d.IdleTimeout != time.Minute {
		t.Errorf("IdleTimeout = %v; want 1m from the drop-in", deref(d.IdleTimeout))
	}
}

// TestQuadletUnits names Quadlet units: Quadlet's own names and
// dependencies, and with no Quadlet on the machine a refusal that says
// what to do.
func TestQuadletUnits(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"db.network":      "[Network]\n",
		"data.volume":     "[Volume]\nVolumeName=appdata\n",
		"cache.container": "[Container]\nImage=docker.io/library/redis:7\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := base + "Network=db.network\nVolume=data.volume:/data\n[Unit]\nAfter=cache.container\n"
	d, err := Parse("/etc/containers/systemd/web.lazypod", strings.NewReader(text), RenderOptions{Quadlet: &Quadlet{Dirs: []string{dir}}})
	if err != nil {
		t.Fatal(err)
	}
	if !hasRun(d.Run, []string{"--network", "systemd-db"}) || !hasRun(d.Run, []string{"-v", "appdata:/data"}) {
		t.Errorf("Run = %q; want Quadlet's names systemd-db and appdata", d.Run)
	}
	for _, e := range []Entry{{"Requires", "db-network.service"}, {"After", "db-network.service"}, {"Requires", "data-volume.service"}, {"After", "cache.service"}} {
		if !slices.Contains(d.Unit, e) {
			t.Errorf("[Unit] = %v; want %v", d.Unit, e)
		}
	}
	_, err = Parse("/etc/containers/systemd/web.lazypod", strings.NewReader(text), RenderOptions{Quadlet: &Quadlet{Dirs: []string{dir}, Missing: true}})
	if err == nil || !strings.Contains(err.Error(), "Podman here has no Quadlet") {
		t.Errorf("without Quadlet: %v; want a refusal saying Podman has no Quadlet", err)
	}
}

func TestSample(t *testing.T) {
	for in, want := range map[string]string{"%h/a": "/root/a", "100%%": "100%", "%i-%p": "1-x", "plain": "plain"} {
		if got, err := sample(in); err != nil || got != want {
			t.Errorf("sample(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"%", "a%", "%Q"} {
		if _, err := sample(bad); err == nil {
			t.Errorf("sample(%q): no error", bad)
		}
	}
	if hasSpecifier("100%%") || !hasSpecifier("%%%i") {
		t.Error("hasSpecifier: %% is no specifier, %i is")
	}
}
