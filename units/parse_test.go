package units

import (
	"errors"
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
	return Parse("/etc/containers/systemd/web.lazypod", strings.NewReader(text))
}

// serveGroups renders d's lazypod serve arguments without quoting.
func serveGroups(d *Definition, o RenderOptions) [][]string {
	r := renderer{d: d, o: o, sockets: groupSockets(d)}
	var out [][]string
	for _, g := range r.serveArgs() {
		var ws []string
		for _, a := range g {
			ws = append(ws, a.s)
		}
		out = append(out, ws)
	}
	return out
}

func dur(d time.Duration) *time.Duration { return &d }
func boolp(b bool) *bool                 { return &b }

// TestParseKeys parses every key and checks both the field it sets and the
// lazypod serve flag it becomes.
func TestParseKeys(t *testing.T) {
	tests := []struct {
		name  string
		text  string // appended to base
		field func(d *Definition) any
		want  any
		flags [][]string // each must be among the serve arguments
	}{
		{"Image", "", func(d *Definition) any { return d.Image }, "docker.io/library/nginx:latest",
			[][]string{{"--image", "docker.io/library/nginx:latest"}}},
		{"default ContainerName", "", func(d *Definition) any { return d.ContainerName }, "web",
			[][]string{{"--name", "web"}}},
		{"ContainerName", "ContainerName=web-1\n", func(d *Definition) any { return d.ContainerName }, "web-1",
			[][]string{{"--name", "web-1"}}},
		{"Exec", `Exec=/bin/app --title "two words" 'it''s' a\"b 100% $HOME` + "\n",
			func(d *Definition) any { return d.Exec }, []string{"/bin/app", "--title", "two words", "its", `a"b`, "100%", "$HOME"},
			[][]string{{"--", "/bin/app", "--title", "two words", "its", `a"b`, "100%", "$HOME"}}},
		{"Exec continued", "Exec=/bin/app \\\n  --flag \\\n  last\n",
			func(d *Definition) any { return d.Exec }, []string{"/bin/app", "--flag", "last"}, nil},
		{"Environment", "Environment=A=1 \"B=two words\"\nEnvironment=C=\nEnvironment=D=x\\ny\n",
			func(d *Definition) any { return d.Environment }, []string{"A=1", "B=two words", "C=", "D=x\ny"},
			[][]string{{"--env", "A=1"}, {"--env", "B=two words"}, {"--env", "C="}, {"--env", "D=x\ny"}}},
		{"EnvironmentFile", "EnvironmentFile=/etc/web.env\nEnvironmentFile=/etc/web 2.env\n",
			func(d *Definition) any { return d.EnvironmentFiles }, []string{"/etc/web.env", "/etc/web 2.env"},
			[][]string{{"--env-file", "/etc/web.env"}, {"--env-file", "/etc/web 2.env"}}},
		{"Volume", "Volume=/srv:/data:ro,z\nVolume=cache:/cache\n",
			func(d *Definition) any { return d.Volumes }, []string{"/srv:/data:ro,z", "cache:/cache"},
			[][]string{{"--volume", "/srv:/data:ro,z"}, {"--volume", "cache:/cache"}}},
		{"Label", "Label=a=1 \"b=x y\"\nLabel=c=\n",
			func(d *Definition) any { return d.Labels }, []string{"a=1", "b=x y", "c="},
			[][]string{{"--label", "a=1"}, {"--label", "b=x y"}, {"--label", "c="}}},
		{"User", "User=web\n", func(d *Definition) any { return d.User }, "web", [][]string{{"--user", "web"}}},
		{"User and Group", "User=1000\nGroup=100\n", func(d *Definition) any { return d.Group }, "100",
			[][]string{{"--user", "1000:100"}}},
		{"Network", "Network=host\n", func(d *Definition) any { return d.Network }, "host", [][]string{{"--network", "host"}}},
		{"PublishPort", "", func(d *Definition) any { return d.Listeners },
			[]Listener{{Network: NetworkTCP, Address: "8080", Port: 80}}, [][]string{{"--port", "tcp-80=80/tcp"}}},
		{"PublishPort IPv4", "PublishPort=127.0.0.1:8443:443/tcp\n", func(d *Definition) any { return d.Listeners[1] },
			Listener{Network: NetworkTCP, Address: "127.0.0.1:8443", Port: 443}, [][]string{{"--port", "tcp-443=443/tcp"}}},
		{"PublishPort IPv6", "PublishPort=[::1]:8443:443\n", func(d *Definition) any { return d.Listeners[1] },
			Listener{Network: NetworkTCP, Address: "[::1]:8443", Port: 443}, nil},
		{"PublishPort UDP", "PublishPort=5353:53/udp\n", func(d *Definition) any { return d.Listeners[1] },
			Listener{Network: NetworkUDP, Address: "5353", Port: 53}, [][]string{{"--port", "udp-53=53/udp"}}},
		{"PublishPort TCP and UDP on one port", "PublishPort=53:53/udp\nPublishPort=53:53/tcp\n",
			func(d *Definition) any { return len(d.Listeners) }, 3,
			[][]string{{"--port", "udp-53=53/udp"}, {"--port", "tcp-53=53/tcp"}}},
		{"PublishPort same container port twice", "PublishPort=127.0.0.1:9090:80\n",
			func(d *Definition) any { return len(groupSockets(d)) }, 1, [][]string{{"--port", "tcp-80=80/tcp"}}},
		{"AutoUpdate registry", "AutoUpdate=registry\n", func(d *Definition) any { return d.AutoUpdate }, spec.PolicyRegistry,
			[][]string{{"--auto-update", "registry"}}},
		{"AutoUpdate local", "AutoUpdate=local\n", func(d *Definition) any { return d.AutoUpdate }, spec.PolicyLocal,
			[][]string{{"--auto-update", "local"}}},
		{"HealthCmd", "HealthCmd=/bin/check  --quick\n", func(d *Definition) any { return d.Probe().String() }, "exec:/bin/check  --quick",
			[][]string{{"--ready", "exec:/bin/check  --quick"}}},
		{"HealthCmd with Notify=healthy", "HealthCmd=/bin/check\nNotify=healthy\n", func(d *Definition) any { return d.Probe().String() }, "exec:/bin/check", nil},
		{"Notify=healthy", "Notify=healthy\n", func(d *Definition) any { return d.Probe().String() }, "healthcheck",
			[][]string{{"--ready", "healthcheck"}}},
		{"Notify=yes", "Notify=yes\n", func(d *Definition) any { return d.Probe().String() }, "notify", [][]string{{"--ready", "notify"}}},
		{"Notify=false", "Notify=false\n", func(d *Definition) any { return d.Probe().String() }, "", nil},
		{"Ready wins", "HealthCmd=/bin/check\nNotify=yes\n[Lazypod]\nReady=none\n", func(d *Definition) any { return d.Probe().String() }, "none",
			[][]string{{"--ready", "none"}}},
		{"Memory", "Memory=1g\n", func(d *Definition) any { return d.Memory }, spec.Size(1 << 30), [][]string{{"--memory", "1g"}}},
		{"ListenUnix", "[Lazypod]\nListenUnix=/run/web/web.sock:80\n", func(d *Definition) any { return d.Listeners[1] },
			Listener{Network: NetworkUnix, Address: "/run/web/web.sock", Port: 80}, [][]string{{"--port", "tcp-80=80/tcp"}}},
		{"Ready http", "[Lazypod]\nReady=http:/healthz\n", func(d *Definition) any { return d.Ready.String() }, "http:/healthz",
			[][]string{{"--ready", "http:/healthz"}}},
		{"Ready exec", "[Lazypod]\nReady=exec:/bin/check now\n", func(d *Definition) any { return d.Probe().String() }, "exec:/bin/check now",
			[][]string{{"--ready", "exec:/bin/check now"}}},
		{"Ready tcp", "[Lazypod]\nReady=tcp\n", func(d *Definition) any { return d.Probe().String() }, "tcp", nil},
		{"ReadyTimeout", "[Lazypod]\nReadyTimeout=2m\n", func(d *Definition) any { return d.ReadyTimeout }, dur(2 * time.Minute),
			[][]string{{"--ready-timeout", "2m"}}},
		{"IdleTimeout seconds", "[Lazypod]\nIdleTimeout=600\n", func(d *Definition) any { return d.IdleTimeout }, dur(10 * time.Minute),
			[][]string{{"--idle-timeout", "10m"}}},
		{"IdleTimeout 0", "[Lazypod]\nIdleTimeout=0\n", func(d *Definition) any { return d.IdleTimeout }, dur(0),
			[][]string{{"--idle-timeout", "0"}}},
		{"StopTimeout", "[Lazypod]\nStopTimeout=1500ms\n", func(d *Definition) any { return d.StopTimeout }, dur(1500 * time.Millisecond),
			[][]string{{"--stop-timeout", "1.5s"}}},
		{"UDPTimeout", "[Lazypod]\nUDPTimeout=45s\n", func(d *Definition) any { return d.UDPTimeout }, dur(45 * time.Second),
			[][]string{{"--udp-timeout", "45s"}}},
		{"ExitOnIdle", "[Lazypod]\nExitOnIdle=off\n", func(d *Definition) any { return d.ExitOnIdle }, boolp(false),
			[][]string{{"--exit-on-idle=false"}}},
		{"RollbackWindow", "AutoUpdate=local\n[Lazypod]\nRollbackWindow=0\n", func(d *Definition) any { return d.RollbackWindow }, dur(0),
			[][]string{{"--rollback-window", "0"}}},
		{"UpdateInterval", "AutoUpdate=local\n[Lazypod]\nUpdateInterval=2h\n", func(d *Definition) any { return d.UpdateInterval }, dur(2 * time.Hour),
			[][]string{{"--update-interval", "2h"}}},
		{"AuthFile", "[Lazypod]\nAuthFile=/etc/auth.json\n", func(d *Definition) any { return d.AuthFile }, "/etc/auth.json",
			[][]string{{"--authfile", "/etc/auth.json"}}},
		{"TLSVerify", "[Lazypod]\nTLSVerify=No\n", func(d *Definition) any { return d.TLSVerify }, boolp(false),
			[][]string{{"--tls-verify=false"}}},
		{"TLSVerify true", "[Lazypod]\nTLSVerify=1\n", func(d *Definition) any { return d.TLSVerify }, boolp(true),
			[][]string{{"--tls-verify=true"}}},
		{"CPUs", "[Lazypod]\nCPUs=1.50\n", func(d *Definition) any { return d.CPUs }, 1.5, [][]string{{"--cpus", "1.5"}}},
		{"LogLevel", "[Lazypod]\nLogLevel=Warn\n", func(d *Definition) any { return d.LogLevel }, "warn",
			[][]string{{"--log-level", "warn"}}},
		{"PodmanURL", "[Lazypod]\nPodmanURL=tcp://127.0.0.1:8888\n", func(d *Definition) any { return d.PodmanURL }, "tcp://127.0.0.1:8888",
			[][]string{{"--podman-url", "tcp://127.0.0.1:8888"}}},
		{"default PodmanURL", "", func(d *Definition) any { return d.PodmanURL }, "",
			[][]string{{"--podman-url", "unix:///run/podman/podman.sock"}}},
		{"pass-through", "[Service]\nEnvironment=X=1\n[Unit]\nWants=a.service \\\n  b.service\n[Service]\nNice=5\n",
			func(d *Definition) any { return d.Passthrough },
			map[string][]Entry{"Service": {{"Environment", "X=1"}, {"Nice", "5"}}, "Unit": {{"Wants", "a.service  b.service"}}}, nil},
		{"comments and blank lines", "# a comment\n; another\n\n  Network = host  \n", func(d *Definition) any { return d.Network }, "host", nil},
		{"sections in any order and repeated", "[Lazypod]\nCPUs=2\n[Container]\nNetwork=none\n", func(d *Definition) any { return d.Network }, "none", nil},
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
		// Structure.
		{"text before a section", "Image=nginx\n[Container]\n",
			file + ":1: text before the first section: put keys under [Container] or [Lazypod]"},
		{"unknown section", base + "[Containers]\nImage=x\n",
			file + ":4: [Containers]: unknown section: valid sections are [Container], [Lazypod], and [Unit], [Socket], [Service], [Install] to pass through to the units"},
		{"header without bracket", "[Container\nImage=x\n",
			file + ":1: section header without ']': write [Container], [Lazypod], [Unit], [Socket], [Service] or [Install]"},
		{"text after header", "[Container] x\n", file + ":1: text after the section header: put it on its own line"},
		{"no equals sign", base + "Network\n", file + ":4: [Container]: not a Key=Value line: write Key=Value, or start a comment with #"},
		{"comment ending in backslash", base + "# note \\\nNetwork=host\n",
			file + ":4: [Container]: comment ends in a backslash, which would hide the next line from lazypod but not from systemd: remove the backslash"},
		{"comment inside continuation", base + "Exec=/bin/app \\\n# the flag\n  --flag\n",
			file + ":5: [Container]: comment inside a value continued with a backslash: move the comment above the key"},
		{"escaped backslash at end", base + "Exec=/bin/app C:\\\\\n",
			file + ":4: [Container] Exec=: value ends in an escaped backslash (\\\\), which systemd and lazypod read differently: quote the word, e.g. \"C:\\\\\""},
		{"control character", base + "Network=a\x01b\n",
			file + ":4: [Container]: line holds a control character: remove it (use escapes such as \\n inside quoted words)"},
		{"carriage return inside a line", base + "Network=a\rb\n",
			file + ":4: [Container]: line holds a control character: remove it (use escapes such as \\n inside quoted words)"},
		{"invalid UTF-8", base + "Network=\xff\n", file + ":4: [Container]: line is not valid UTF-8: save the file as UTF-8"},
		{"line too long", base + "Network=" + strings.Repeat("a", 2050) + "\n",
			file + ":4: [Container]: line is 2048 bytes or longer: split the value over lines ending in a backslash"},
		{"unknown key", base + "Ports=80\n",
			file + ":4: [Container] Ports=80: unknown key: valid keys in [Container] are AutoUpdate= ContainerName= Environment= EnvironmentFile= Exec= Group= HealthCmd= Image= Label= Memory= Network= Notify= PublishPort= User= Volume="},
		{"unknown lazypod key", base + "[Lazypod]\nIdle=5m\n",
			file + ":5: [Lazypod] Idle=5m: unknown key: valid keys in [Lazypod] are AuthFile= CPUs= ExitOnIdle= FlowIdleTimeout= IdleTimeout= ListenUnix= LogLevel= MaxConnections= PodmanURL= Ready= ReadyTimeout= RollbackWindow= StopTimeout= TLSVerify= UDPTimeout= UpdateInterval="},
		{"key set twice", base + "Image=docker.io/library/httpd:2\n",
			file + ":4: [Container] Image=docker.io/library/httpd:2: set twice (also on line 2): keep one"},
		{"empty value", base + "Network=\n",
			file + ":4: [Container] Network=: empty value: give a value, or remove the line for the default"},
		{"empty repeatable value", base + "Volume=\n",
			file + ":4: [Container] Volume=: empty value: give a value, or remove the line for the default"},

		// Whole-file checks.
		{"missing image", "[Container]\nPublishPort=80:80\n",
			file + ": [Container]: missing Image=: name the image to run, e.g. Image=docker.io/library/nginx:latest"},
		{"no listener", "[Container]\nImage=nginx\n",
			file + ": [Container]: no listener: add PublishPort=HOSTPORT:CONTAINERPORT to [Container] or ListenUnix=PATH:CONTAINERPORT to [Lazypod]"},
		{"Group without User", base + "Group=100\n",
			file + ":4: [Container] Group=100: Group= needs User=: add User=, e.g. User=1000"},
		{"registry policy, short name", "[Container]\nImage=nginx\nPublishPort=80:80\nAutoUpdate=registry\n",
			file + ":2: [Container] Image=nginx: image reference not fully qualified for the registry policy: name its registry, e.g. docker.io/library/nginx:latest"},
		{"registry policy, digest", "[Container]\nImage=docker.io/library/nginx@sha256:" + strings.Repeat("a", 64) + "\nPublishPort=80:80\nAutoUpdate=registry\n",
			file + ":2: [Container] Image=docker.io/library/nginx@sha256:" + strings.Repeat("a", 64) + ": the registry policy cannot update an image pinned by digest: use a tag"},
		{"RollbackWindow without updates", base + "[Lazypod]\nRollbackWindow=10s\n",
			file + ":5: [Lazypod] RollbackWindow=10s: only updates roll back: set AutoUpdate= in [Container] or remove the line"},
		{"UpdateInterval without updates", base + "[Lazypod]\nUpdateInterval=1h\n",
			file + ":5: [Lazypod] UpdateInterval=1h: only updates are checked: set AutoUpdate= in [Container] or remove the line"},
		{"HealthCmd and Notify=yes", base + "HealthCmd=/bin/check\nNotify=yes\n",
			file + ":5: [Container] Notify=yes: HealthCmd= and Notify=yes both say when the container is ready: keep one, or choose with Ready= in [Lazypod]"},
		{"tcp probe, only UDP", "[Container]\nImage=nginx\nPublishPort=53:53/udp\n[Lazypod]\nReady=http:/\n",
			file + ":5: [Lazypod] Ready=http:/: probe http needs a TCP or unix listener, and every listener is UDP: choose exec:COMMAND, healthcheck, notify or none"},

		// Values.
		{"bad image", base + "[Container]\nContainerName=x\n[Container]\nImage=Nginx\n",
			file + ":7: [Container] Image=Nginx: set twice (also on line 2): keep one"},
		{"bad image reference", "[Container]\nImage=UPPER/case\nPublishPort=80:80\n",
			file + ":2: [Container] Image=UPPER/case: invalid reference format: repository name must be lowercase: use a reference like docker.io/library/nginx:1.27 or localhost/app:latest"},
		{"bad container name", base + "ContainerName=-web\n",
			file + ":4: [Container] ContainerName=-web: not a valid name: use up to 200 letters, digits, '_', '.' and '-', starting with a letter or digit"},
		{"Exec unterminated quote", base + "Exec=/bin/app \"oops\n",
			file + ":4: [Container] Exec=/bin/app \"oops: unterminated \" quote: quote words as systemd does, e.g. /bin/app --title \"two words\""},
		{"Exec unknown escape", base + "Exec=/bin/app \\q\n",
			file + ":4: [Container] Exec=/bin/app \\q: unknown escape \\q: write \\\\ for a backslash: quote words as systemd does, e.g. /bin/app --title \"two words\""},
		{"Exec NUL", base + "Exec=/bin/app \\x00\n",
			file + ":4: [Container] Exec=/bin/app \\x00: bad \\x escape: want \\xHH with HH two hex digits, not 00: quote words as systemd does, e.g. /bin/app --title \"two words\""},
		{"Exec only quotes of nothing", base + "Exec=   \\\n  \n", file + ":4: [Container] Exec=: empty value: give a value, or remove the line for the default"},
		{"Environment not KEY=VALUE", base + "Environment=A=1 B\n",
			file + ":4: [Container] Environment=A=1 B: \"B\" is not KEY=VALUE: quote a pair that holds spaces, e.g. \"KEY=two words\""},
		{"Environment empty key", base + "Environment==1\n",
			file + ":4: [Container] Environment==1: \"=1\" is not KEY=VALUE: quote a pair that holds spaces, e.g. \"KEY=two words\""},
		{"EnvironmentFile relative", base + "EnvironmentFile=web.env\n",
			file + ":4: [Container] EnvironmentFile=web.env: not an absolute path: write it from /, e.g. /etc/app/app.env"},
		{"EnvironmentFile specifier", base + "EnvironmentFile=%h/web.env\n",
			file + ":4: [Container] EnvironmentFile=%h/web.env: not an absolute path (systemd specifiers such as %h are not expanded): write it from /, e.g. /etc/app/app.env"},
		{"Volume relative destination", base + "Volume=/srv:data\n",
			file + ":4: [Container] Volume=/srv:data: want SRC:DST[:OPTS] with an absolute DST, e.g. /srv/data:/data:ro or data:/data"},
		{"Volume relative source", base + "Volume=./data:/data\n",
			file + ":4: [Container] Volume=./data:/data: \"./data\" is neither an absolute host path nor a volume name: write the absolute path, e.g. /srv/data:/data"},
		{"Volume specifier", base + "Volume=%h/data:/data\n",
			file + ":4: [Container] Volume=%h/data:/data: \"%h/data\" is neither an absolute host path nor a volume name: write the absolute path, e.g. /srv/data:/data (systemd specifiers such as %h are not expanded)"},
		{"Volume empty option", base + "Volume=/srv:/data:ro,,z\n",
			file + ":4: [Container] Volume=/srv:/data:ro,,z: empty mount option: separate options with single commas, e.g. ro,z"},
		{"Volume too many parts", base + "Volume=/a:/b:ro:z\n",
			file + ":4: [Container] Volume=/a:/b:ro:z: want SRC:DST[:OPTS] with an absolute DST, e.g. /srv/data:/data:ro or data:/data"},
		{"Label reserved", base + "Label=io.lazypod.hash=x\n",
			file + ":4: [Container] Label=io.lazypod.hash=x: label \"io.lazypod.hash=x\": the io.lazypod. prefix is lazypod's own: use another prefix"},
		{"User with group", base + "User=1000:100\n",
			file + ":4: [Container] User=1000:100: want one user or group name or number, without ':': put the group in Group="},
		{"Network with space", base + "Network=a b\n",
			file + ":4: [Container] Network=a b: want one Podman network mode, e.g. bridge, host or a network's name"},
		{"PublishPort container port only", base + "PublishPort=80\n",
			file + ":4: [Container] PublishPort=80: a host port is needed, systemd listens on it: want [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. 127.0.0.1:8080:80 or 53:53/udp"},
		{"PublishPort random host port", base + "PublishPort=127.0.0.1::80\n",
			file + ":4: [Container] PublishPort=127.0.0.1::80: a host port is needed, systemd listens on it: want [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. 127.0.0.1:8080:80 or 53:53/udp"},
		{"PublishPort port 0", base + "PublishPort=0:80\n",
			file + ":4: [Container] PublishPort=0:80: host port \"0\" is not a number from 1 to 65535: want [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. 127.0.0.1:8080:80 or 53:53/udp"},
		{"PublishPort port too big", base + "PublishPort=8081:65536\n",
			file + ":4: [Container] PublishPort=8081:65536: container port \"65536\" is not a number from 1 to 65535: want [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. 127.0.0.1:8080:80 or 53:53/udp"},
		{"PublishPort range", base + "PublishPort=9000-9001:9000-9001\n",
			file + ":4: [Container] PublishPort=9000-9001:9000-9001: port ranges are not supported: write one PublishPort= per port"},
		{"PublishPort sctp", base + "PublishPort=9000:9000/sctp\n",
			file + ":4: [Container] PublishPort=9000:9000/sctp: protocol \"sctp\" is not tcp or udp: want [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. 127.0.0.1:8080:80 or 53:53/udp"},
		{"PublishPort bad IP", base + "PublishPort=localhost:9000:80\n",
			file + ":4: [Container] PublishPort=localhost:9000:80: \"localhost\" is not an IP address: want [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], e.g. 127.0.0.1:8080:80 or 53:53/udp"},
		{"PublishPort IPv6 without brackets", base + "PublishPort=::1:9000:80\n",
			file + ":4: [Container] PublishPort=::1:9000:80: an IPv6 address needs brackets, e.g. [::1]:8080:80"},
		{"PublishPort IPv4 in brackets", base + "PublishPort=[127.0.0.1]:9000:80\n",
			file + ":4: [Container] PublishPort=[127.0.0.1]:9000:80: only IPv6 addresses go in brackets, e.g. 127.0.0.1:8080:80"},
		{"PublishPort duplicate", base + "PublishPort=8080:81\n",
			file + ":4: [Container] PublishPort=8080:81: binds the address of line 3 (tcp 8080) again: remove one or change its host port"},
		{"PublishPort covered by all addresses", base + "PublishPort=127.0.0.1:8080:80\n",
			file + ":4: [Container] PublishPort=127.0.0.1:8080:80: binds the address of line 3 (tcp 8080) again: remove one or change its host port"},
		{"PublishPort covered by 0.0.0.0", "[Container]\nImage=nginx\nPublishPort=0.0.0.0:80:80\nPublishPort=10.0.0.1:80:80\n",
			file + ":4: [Container] PublishPort=10.0.0.1:80:80: binds the address of line 3 (tcp 0.0.0.0:80) again: remove one or change its host port"},
		{"AutoUpdate bad", base + "AutoUpdate=daily\n",
			file + ":4: [Container] AutoUpdate=daily: valid policies are \"registry\", \"local\": remove the line for no updates"},
		{"HealthCmd none", base + "HealthCmd=none\n",
			file + ":4: [Container] HealthCmd=none: HealthCmd=none: to start serving without a probe, set Ready=none in [Lazypod]"},
		{"HealthCmd quoted", base + "HealthCmd=/bin/sh -c \"true\"\n",
			file + ":4: [Container] HealthCmd=/bin/sh -c \"true\": the probe command is split on spaces, without quotes or escapes: write it without them, or run a script in the image"},
		{"Notify bad", base + "Notify=ready\n", file + ":4: [Container] Notify=ready: valid values are healthy, yes and no"},
		{"Memory bad", base + "Memory=lots\n", file + ":4: [Container] Memory=lots: not a size: use a size like 512m, 2g or 512MiB"},
		{"Memory too small", base + "Memory=1m\n", file + ":4: [Container] Memory=1m: below the minimum of 6m a container starts with: use 6m or more"},
		{"ListenUnix relative", base + "[Lazypod]\nListenUnix=web.sock:80\n",
			file + ":5: [Lazypod] ListenUnix=web.sock:80: want PATH:CONTAINERPORT with an absolute PATH, e.g. /run/app.sock:80"},
		{"ListenUnix no port", base + "[Lazypod]\nListenUnix=/run/web.sock\n",
			file + ":5: [Lazypod] ListenUnix=/run/web.sock: want PATH:CONTAINERPORT with an absolute PATH, e.g. /run/app.sock:80"},
		{"ListenUnix unclean", base + "[Lazypod]\nListenUnix=/run//web.sock:80\n",
			file + ":5: [Lazypod] ListenUnix=/run//web.sock:80: path is not clean: write /run/web.sock"},
		{"ListenUnix long", base + "[Lazypod]\nListenUnix=/" + strings.Repeat("a", 107) + ":80\n",
			file + ":5: [Lazypod] ListenUnix=/" + strings.Repeat("a", 107) + ":80: path is longer than 107 bytes, a unix socket's limit: use a shorter one"},
		{"ListenUnix duplicate", base + "[Lazypod]\nListenUnix=/run/web.sock:80\nListenUnix=/run/web.sock:81\n",
			file + ":6: [Lazypod] ListenUnix=/run/web.sock:81: line 5 listens on this path already: remove one"},
		{"Ready bad", base + "[Lazypod]\nReady=http\n",
			file + ":5: [Lazypod] Ready=http: valid probes are \"tcp\", \"http:/PATH\", \"exec:COMMAND\", \"healthcheck\", \"notify\", \"none\""},
		{"Ready http without slash", base + "[Lazypod]\nReady=http:health\n",
			file + ":5: [Lazypod] Ready=http:health: valid probes are \"tcp\", \"http:/PATH\", \"exec:COMMAND\", \"healthcheck\", \"notify\", \"none\""},
		{"Ready exec empty", base + "[Lazypod]\nReady=exec:\n",
			file + ":5: [Lazypod] Ready=exec:: valid probes are \"tcp\", \"http:/PATH\", \"exec:COMMAND\", \"healthcheck\", \"notify\", \"none\""},
		{"Ready tcp with argument", base + "[Lazypod]\nReady=tcp:80\n",
			file + ":5: [Lazypod] Ready=tcp:80: valid probes are \"tcp\", \"http:/PATH\", \"exec:COMMAND\", \"healthcheck\", \"notify\", \"none\""},
		{"duration systemd style", base + "[Lazypod]\nIdleTimeout=5min\n",
			file + ":5: [Lazypod] IdleTimeout=5min: not a duration: use a duration like 90s, 5m or 1h30m, or a number of seconds (systemd's 5min is not understood)"},
		{"duration negative", base + "[Lazypod]\nIdleTimeout=-1s\n",
			file + ":5: [Lazypod] IdleTimeout=-1s: negative duration: use 0 or more, e.g. 30s"},
		{"ReadyTimeout 0", base + "[Lazypod]\nReadyTimeout=0\n", file + ":5: [Lazypod] ReadyTimeout=0: must be more than 0, e.g. 30s"},
		{"StopTimeout 0", base + "[Lazypod]\nStopTimeout=0s\n", file + ":5: [Lazypod] StopTimeout=0s: must be more than 0, e.g. 30s"},
		{"UDPTimeout 0", base + "[Lazypod]\nUDPTimeout=0\n", file + ":5: [Lazypod] UDPTimeout=0: must be more than 0, e.g. 30s"},
		{"boolean bad", base + "[Lazypod]\nExitOnIdle=maybe\n",
			file + ":5: [Lazypod] ExitOnIdle=maybe: not a boolean: use yes or no (also true/false, on/off, 1/0)"},
		{"TLSVerify bad", base + "[Lazypod]\nTLSVerify=2\n",
			file + ":5: [Lazypod] TLSVerify=2: not a boolean: use yes or no (also true/false, on/off, 1/0)"},
		{"AuthFile relative", base + "[Lazypod]\nAuthFile=auth.json\n",
			file + ":5: [Lazypod] AuthFile=auth.json: not an absolute path: write it from /, e.g. /etc/app/app.env"},
		{"CPUs bad", base + "[Lazypod]\nCPUs=-1\n", file + ":5: [Lazypod] CPUs=-1: not a number of CPUs: use a positive number like 0.5 or 2"},
		{"LogLevel bad", base + "[Lazypod]\nLogLevel=trace\n",
			file + ":5: [Lazypod] LogLevel=trace: valid levels are \"debug\", \"info\", \"warn\", \"error\""},
		{"PodmanURL bad", base + "[Lazypod]\nPodmanURL=/run/podman/podman.sock\n",
			file + ":5: [Lazypod] PodmanURL=/run/podman/podman.sock: use unix:///PATH, tcp://HOST:PORT or ssh://USER@HOST/PATH, e.g. unix:///run/podman/podman.sock"},

		// Pass-through.
		{"pass-through ListenStream", base + "[Socket]\nListenStream=9090\n",
			file + ":5: [Socket] ListenStream=9090: lazypod writes this setting itself: use PublishPort= in [Container] or ListenUnix= in [Lazypod]"},
		{"pass-through ExecStart", base + "[Service]\nExecStart=/bin/sh\n",
			file + ":5: [Service] ExecStart=/bin/sh: lazypod writes this setting itself: set the container's command with Exec= in [Container]"},
		{"pass-through bad key", base + "[Unit]\nWants it=x\n",
			file + ":5: [Unit] Wants it=x: not a systemd setting name: use letters, digits, '_' and '-'"},
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
		{"/etc/web@1.lazypod", "/etc/web@1.lazypod: file name \"web@1\" is not a valid name: use up to 200 letters, digits, '_', '.' and '-', starting with a letter or digit"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, err := Parse(tt.path, strings.NewReader(base))
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v; want %s", err, tt.want)
			}
		})
	}
	if _, err := ParseFile("testdata/missing.lazypod"); err == nil || !strings.HasPrefix(err.Error(), "reading definition: ") {
		t.Errorf("ParseFile of a missing file: got %v; want a reading error", err)
	}
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a b\tc", []string{"a", "b", "c"}},
		{`"a b" 'c d'`, []string{"a b", "c d"}},
		{`a"b c"d`, []string{"ab cd"}},
		{`"" ''`, []string{"", ""}},
		{`"a\"b" 'a\'b' "it's"`, []string{`a"b`, `a'b`, "it's"}},
		{`\\ \n \t \s \x41 \u00e9 \U0001F600 \101`, []string{`\`, "\n", "\t", " ", "A", "é", "😀", "A"}},
		{`"tab\there"`, []string{"tab\there"}},
		{"  lead and trail  ", []string{"lead", "and", "trail"}},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := splitWords(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`"open`, `'open`, `end\`, `\q`, `\x0`, `\x00`, `\000`, `\u12`, `\xff`} {
		if got, err := splitWords(bad); err == nil {
			t.Errorf("splitWords(%q) = %q; want an error", bad, got)
		}
	}
}

func TestJoinValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a", "a"},
		{"a \\\n  b", "a  b"},
		{"a\\\nb\\\n\tc", "a b c"},
		{"a \\\n", "a"},
	}
	for _, tt := range tests {
		if got := joinValue(tt.in); got != tt.want {
			t.Errorf("joinValue(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
