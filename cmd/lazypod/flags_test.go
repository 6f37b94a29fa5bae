package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lazypod/lazypod/launcher"
)

func TestParsePort(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    portSpec
		wantErr string
	}{
		{name: "bare", in: "8080", want: portSpec{Port: 8080}},
		{name: "proto", in: "53/udp", want: portSpec{Port: 53, Proto: "udp"}},
		{name: "named", in: "web=80/tcp", want: portSpec{FDName: "web", Port: 80, Proto: "tcp"}},
		{name: "zero", in: "0", wantErr: `invalid --port "0"`},
		{name: "too big", in: "70000", wantErr: "from 1 to 65535"},
		{name: "bad proto", in: "80/sctp", wantErr: `protocol "sctp" is not tcp or udp`},
		{name: "empty name", in: "=80", wantErr: `socket name ""`},
		{name: "name with colon", in: "a:b=80", wantErr: "without ':'"},
		{name: "words", in: "http", wantErr: "e.g. web=8080/tcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePort(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, errUsage) {
					t.Fatalf("parsePort(%q) error = %v; want usage error containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parsePort(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseListen(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    listenSpec
		wantErr string
	}{
		{name: "tcp", in: "127.0.0.1:8080", want: listenSpec{Network: "tcp", Addr: "127.0.0.1:8080"}},
		{name: "named tcp", in: "web=127.0.0.1:0", want: listenSpec{FDName: "web", Network: "tcp", Addr: "127.0.0.1:0"}},
		{name: "ipv6", in: "[::1]:80", want: listenSpec{Network: "tcp", Addr: "[::1]:80"}},
		{name: "any host", in: ":80", want: listenSpec{Network: "tcp", Addr: ":80"}},
		{name: "udp", in: "dns=udp:127.0.0.1:53", want: listenSpec{FDName: "dns", Network: "udp", Addr: "127.0.0.1:53"}},
		{name: "unix", in: "unix:/run/x.sock", want: listenSpec{Network: "unix", Addr: "/run/x.sock"}},
		{name: "relative unix", in: "unix:x.sock", wantErr: "absolute path"},
		{name: "no port", in: "localhost", wantErr: "want HOST:PORT"},
		{name: "bad port", in: "127.0.0.1:http", wantErr: `port "http" is not a number`},
		{name: "unbracketed ipv6", in: "::1:80", wantErr: "want HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseListen(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseListen(%q) error = %v; want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseListen(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseSizesAndDurations(t *testing.T) {
	tests := []struct {
		name    string
		parse   func() (any, error)
		want    any
		wantErr string
	}{
		{name: "duration", parse: func() (any, error) { return parseDuration("idle-timeout", "90s") }, want: 90 * time.Second},
		{name: "seconds", parse: func() (any, error) { return parseDuration("idle-timeout", "300") }, want: 5 * time.Minute},
		{name: "zero", parse: func() (any, error) { return parseDuration("idle-timeout", "0") }, want: time.Duration(0)},
		{name: "negative", parse: func() (any, error) { return parseDuration("idle-timeout", "-1s") }, wantErr: "must not be negative"},
		{name: "words", parse: func() (any, error) { return parseDuration("idle-timeout", "5 minutes") }, wantErr: `invalid --idle-timeout "5 minutes": use a duration like 90s`},
		{name: "memory m", parse: func() (any, error) { return parseMemory("512m") }, want: int64(512 << 20)},
		{name: "memory g", parse: func() (any, error) { return parseMemory("1.5G") }, want: int64(3 << 29)},
		{name: "memory bytes", parse: func() (any, error) { return parseMemory("10485760") }, want: int64(10 << 20)},
		{name: "memory tiny", parse: func() (any, error) { return parseMemory("1k") }, wantErr: "minimum is 6m"},
		{name: "memory junk", parse: func() (any, error) { return parseMemory("lots") }, wantErr: "use a size like 512m"},
		{name: "cpus", parse: func() (any, error) { return parseCPUs("0.5") }, want: 0.5},
		{name: "cpus zero", parse: func() (any, error) { return parseCPUs("0") }, wantErr: "positive number"},
		{name: "cpus nan", parse: func() (any, error) { return parseCPUs("NaN") }, wantErr: "positive number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestDefaultName(t *testing.T) {
	tests := []struct{ image, want string }{
		{"nginx", "nginx"},
		{"docker.io/library/nginx:1.27", "nginx"},
		{"localhost/lazypod-demo:latest", "lazypod-demo"},
		{"quay.io/org/app@sha256:" + strings.Repeat("a", 64), "app"},
		{"127.0.0.1:5000/x/y:v2", "y"},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			if got := defaultName(tt.image); got != tt.want {
				t.Fatalf("defaultName(%q) = %q; want %q", tt.image, got, tt.want)
			}
		})
	}
}

func TestReadEnvFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "env")
	t.Setenv("LAZYPOD_TEST_FROM_ENV", "inherited")
	content := "# comment\n\nA=1\nB=two words\nLAZYPOD_TEST_FROM_ENV\nLAZYPOD_TEST_UNSET_XYZ\n"
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readEnvFile(name)
	want := []string{"A=1", "B=two words", "LAZYPOD_TEST_FROM_ENV=inherited"}
	if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("readEnvFile = %q, %v; want %q", got, err, want)
	}

	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("OK=1\nnot a pair\n"), 0o600)
	if _, err := readEnvFile(bad); err == nil || !strings.Contains(err.Error(), bad+":2") {
		t.Fatalf("readEnvFile(bad) error = %v; want one naming %s:2", err, bad)
	}
	if _, err := readEnvFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("readEnvFile(missing) error = %v; want no such file", err)
	}
}

// TestServeUsageErrors checks that bad input exits 2 with one line naming
// the value, before anything is started.
func TestServeUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no image", args: []string{"serve", "--port", "80"}, want: "lazypod: missing --image"},
		{name: "bad image", args: []string{"serve", "--image", "Bad Image", "--port", "80"}, want: `lazypod: invalid --image "Bad Image"`},
		{name: "no port", args: []string{"serve", "--image", "nginx"}, want: "lazypod: missing --port"},
		{name: "bad port", args: []string{"serve", "--image", "nginx", "--port", "x"}, want: `lazypod: invalid --port "x"`},
		{name: "bad probe", args: []string{"serve", "--image", "nginx", "--port", "80", "--ready", "daily"}, want: `"daily"`},
		{name: "bad duration", args: []string{"serve", "--image", "nginx", "--port", "80", "--idle-timeout", "soon"}, want: `lazypod: invalid --idle-timeout "soon"`},
		{name: "zero ready timeout", args: []string{"serve", "--image", "nginx", "--port", "80", "--ready-timeout", "0"}, want: "must be more than 0"},
		{name: "unknown flag", args: []string{"serve", "--image", "nginx", "--port", "80", "--frobnicate"}, want: "flag provided but not defined: -frobnicate"},
		{name: "stray argument", args: []string{"serve", "--image", "nginx", "--port", "80", "ls"}, want: `unexpected argument "ls": put the container's command after --`},
		{name: "bad name", args: []string{"serve", "--image", "nginx", "--port", "80", "--name", "-x"}, want: `invalid --name "-x"`},
		{name: "bad volume", args: []string{"serve", "--image", "nginx", "--port", "80", "--volume", "data"}, want: `invalid --volume "data"`},
		{name: "bad label", args: []string{"serve", "--image", "nginx", "--port", "80", "--label", "novalue"}, want: `invalid --label "novalue": want KEY=VALUE`},
		{name: "zero stop timeout", args: []string{"serve", "--image", "nginx", "--port", "80", "--stop-timeout", "0"}, want: `invalid --stop-timeout "0": must be more than 0`},
		{name: "bad podman url", args: []string{"serve", "--image", "nginx", "--port", "80", "--podman-url", "/run/podman/podman.sock"}, want: `invalid --podman-url "/run/podman/podman.sock": use unix:///PATH`},
		{name: "unknown command", args: []string{"frobnicate"}, want: `unknown command "frobnicate"`},
		{name: "bad policy", args: []string{"serve", "--image", "nginx", "--port", "80", "--auto-update", "daily"}, want: `invalid --auto-update "daily": valid policies are "registry", "local", "disabled"`},
		{name: "registry policy, unqualified image", args: []string{"serve", "--image", "nginx", "--port", "80", "--auto-update", "registry"}, want: `name its registry, e.g. "docker.io/library/nginx:latest"`},
		{name: "registry policy, digest", args: []string{"serve", "--image", "docker.io/library/nginx@sha256:" + strings.Repeat("a", 64), "--port", "80", "--auto-update", "registry"}, want: "pinned by digest never updates: use a tag"},
		{name: "bad tls-verify", args: []string{"serve", "--image", "nginx", "--port", "80", "--tls-verify=maybe"}, want: `invalid boolean value "maybe" for -tls-verify`},
		{name: "bad rollback window", args: []string{"serve", "--image", "nginx", "--port", "80", "--rollback-window", "-1s"}, want: `invalid --rollback-window "-1s"`},
		{name: "missing authfile", args: []string{"serve", "--image", "nginx", "--port", "80", "--authfile", "/nonexistent/auth.json"}, want: `invalid --authfile "/nonexistent/auth.json": no such file or directory`},
		{name: "bad max-connections", args: []string{"serve", "--image", "nginx", "--port", "80", "--max-connections", "0"}, want: `invalid --max-connections "0": want a number of connections from 1 up, auto, or -1 for no cap`},
		{name: "bad flow-idle-timeout", args: []string{"serve", "--image", "nginx", "--port", "80", "--flow-idle-timeout", "x"}, want: `invalid --flow-idle-timeout "x"`},
		{name: "update: bad format", args: []string{"update", "--format", "yaml"}, want: `invalid --format "yaml": valid formats are "table", "json"`},
		{name: "status: bad name", args: []string{"status", "-x"}, want: "flag provided but not defined: -x"},
		{name: "status: bad service name", args: []string{"status", "a/b"}, want: `invalid service name "a/b"`},
		{name: "rollback: no name", args: []string{"rollback"}, want: "lazypod rollback takes one service NAME, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != 2 {
				t.Errorf("exit code = %d; want 2", code)
			}
			out := stderr.String()
			if !strings.Contains(out, tt.want) || strings.Count(out, "\n") != 1 {
				t.Errorf("stderr = %q; want one line containing %q", out, tt.want)
			}
		})
	}
}

func TestServeNoSockets(t *testing.T) {
	t.Setenv("LISTEN_FDS", "")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "--image", "nginx", "--port", "80", "--state-dir", t.TempDir()}, &stdout, &stderr)
	want := "lazypod: no sockets passed by systemd (LISTEN_FDS unset): start lazypod from its .socket unit or pass --listen\n"
	if code != 1 || stderr.String() != want {
		t.Fatalf("run = %d, %q; want 1, %q", code, stderr.String(), want)
	}
}

func TestParseServeCommandAndDefaults(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/state/a:/state/b")
	o, err := parseServe([]string{"--image", "docker.io/library/nginx:latest", "--port", "80", "--", "nginx", "-g", "daemon off;"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(o.command, "|"); got != "nginx|-g|daemon off;" {
		t.Errorf("command = %q; want nginx|-g|daemon off;", got)
	}
	if o.name != "nginx" || o.idleTimeout != 5*time.Minute || o.readyTimeout != time.Minute || o.stopTimeout != 10*time.Second {
		t.Errorf("defaults = name %q idle %v ready %v stop %v; want nginx 5m 1m 10s", o.name, o.idleTimeout, o.readyTimeout, o.stopTimeout)
	}
	if o.exitOnIdle != nil {
		t.Errorf("exitOnIdle = %v; want unset", *o.exitOnIdle)
	}
	if o.ready != (launcher.Probe{}) {
		t.Errorf("ready = %v; want unset, so the launcher picks tcp, or none for UDP-only services", o.ready)
	}
	if o.stateDir != "/state/a" {
		t.Errorf("stateDir = %q; want /state/a", o.stateDir)
	}
	o, err = parseServe([]string{"--image", "nginx", "--port", "80", "--exit-on-idle=false"}, &bytes.Buffer{})
	if err != nil || o.exitOnIdle == nil || *o.exitOnIdle {
		t.Fatalf("--exit-on-idle=false: got %v, %v; want explicit false", o.exitOnIdle, err)
	}
}

func TestMatchPorts(t *testing.T) {
	tcp := func(name string) socket {
		return socket{name: name, desc: "fd (" + name + ")", listener: &net.TCPListener{}}
	}
	udp := func(name string) socket { return socket{name: name, desc: "fd (" + name + ")", packet: &net.UDPConn{}} }
	port := func(s string) portSpec {
		p, err := parsePort(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		socks   []socket
		ports   []portSpec
		want    []launcher.Port
		wantErr string
	}{
		{name: "one to one", socks: []socket{tcp("LISTEN_FD_3")}, ports: []portSpec{port("8080")},
			want: []launcher.Port{{Route: "LISTEN_FD_3/tcp", Port: 8080, Proto: "tcp"}}},
		{name: "one port for two sockets", socks: []socket{tcp("web"), tcp("web")}, ports: []portSpec{port("80")},
			want: []launcher.Port{{Route: "web/tcp", Port: 80, Proto: "tcp"}}},
		{name: "named", socks: []socket{tcp("web"), udp("dns")}, ports: []portSpec{port("dns=53"), port("web=80/tcp")},
			want: []launcher.Port{{Route: "web/tcp", Port: 80, Proto: "tcp"}, {Route: "dns/udp", Port: 53, Proto: "udp"}}},
		{name: "udp inferred", socks: []socket{udp("x")}, ports: []portSpec{port("53")},
			want: []launcher.Port{{Route: "x/udp", Port: 53, Proto: "udp"}}},
		{name: "tcp and udp of one name", socks: []socket{tcp("dns"), udp("dns")}, ports: []portSpec{port("dns=53")},
			want: []launcher.Port{{Route: "dns/tcp", Port: 53, Proto: "tcp"}, {Route: "dns/udp", Port: 53, Proto: "udp"}}},
		{name: "proto mismatch", socks: []socket{udp("x")}, ports: []portSpec{port("53/tcp")}, wantErr: "is udp, not tcp"},
		{name: "unnamed among several", socks: []socket{tcp("a"), tcp("b")}, ports: []portSpec{port("80"), port("b=81")}, wantErr: "each needs its socket's name"},
		{name: "socket without port", socks: []socket{tcp("a"), tcp("b")}, ports: []portSpec{port("a=80")}, wantErr: "socket fd (b) has no --port: add --port b=PORT"},
		{name: "port without socket", socks: []socket{tcp("a")}, ports: []portSpec{port("a=80"), port("c=81")}, wantErr: `no socket is named "c" (sockets: a)`},
		{name: "same name twice", socks: []socket{tcp("a")}, ports: []portSpec{port("a=80"), port("a=81")}, wantErr: `socket "a" already forwards`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			routes, got, err := matchPorts(tt.socks, tt.ports)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("matchPorts error = %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(routes) != len(tt.socks) {
				t.Errorf("got %d routes; want %d", len(routes), len(tt.socks))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ports = %+v; want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("port %d = %+v; want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"8080", "web=80/tcp", "dns=53/udp", "=1", "a=0/x", "65535", "65536"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePort(s)
		if err != nil {
			if !errors.Is(err, errUsage) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("parsePort(%q) error %q is not a one-line usage error", s, err)
			}
			return
		}
		if p.Port == 0 {
			t.Fatalf("parsePort(%q) accepted port 0", s)
		}
		back, err := parsePort(p.String())
		if err != nil || back != p {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", s, p, p.String(), back, err)
		}
	})
}

func FuzzParseListen(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8080", "web=[::1]:80", "udp:127.0.0.1:53", "unix:/run/a.sock", "x=unix:@abstract", ":0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := parseListen(s)
		if err != nil {
			if !errors.Is(err, errUsage) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("parseListen(%q) error %q is not a one-line usage error", s, err)
			}
			return
		}
		switch l.Network {
		case "tcp", "udp", "unix":
		default:
			t.Fatalf("parseListen(%q) network = %q", s, l.Network)
		}
	})
}

func TestAdminCommandsOnMissingServices(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args    []string
		code    int
		wantErr string
		wantOut string
	}{
		// The daily timer before any service started: nothing to do, not a failure.
		{args: []string{"update"}, code: 0, wantErr: "no services in " + dir + " yet"},
		{args: []string{"status"}, code: 0, wantOut: "NAME"},
		{args: []string{"status", "web"}, code: 1, wantErr: `reading state of "web": no such service in ` + dir},
		{args: []string{"update", "web"}, code: 1, wantErr: `reading state of "web": no such service in ` + dir},
		{args: []string{"rollback", "web"}, code: 1, wantErr: `rolling back "web": no such service in ` + dir},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{tt.args[0], "--state-dir", dir, "--podman-url", "unix:///nonexistent.sock"}, tt.args[1:]...)
			code := run(context.Background(), args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.wantErr) || !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("run = %d, stdout %q, stderr %q; want %d, stdout with %q, stderr with %q", code, stdout.String(), stderr.String(), tt.code, tt.wantOut, tt.wantErr)
			}
		})
	}
}

func TestPickDigest(t *testing.T) {
	const (
		list  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
		inst  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
		other = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	)
	tests := []struct {
		name    string
		ref     string
		digests []string
		want    string
	}{
		{name: "the reference's repository wins", ref: "docker.io/library/nginx:latest",
			digests: []string{"quay.io/x/nginx@" + other, "docker.io/library/nginx@" + list}, want: list},
		{name: "short names are normalised", ref: "nginx", digests: []string{"docker.io/library/nginx@" + inst}, want: inst},
		{name: "else the first repo digest", ref: "localhost/app:1", digests: []string{"quay.io/x/nginx@" + other}, want: other},
		{name: "a bare digest", ref: "localhost/app:1", digests: []string{inst}, want: inst},
		{name: "none", ref: "localhost/app:1", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickDigest(tt.ref, tt.digests); got != tt.want {
				t.Errorf("pickDigest(%q, %q) = %q; want %q", tt.ref, tt.digests, got, tt.want)
			}
		})
	}
}
