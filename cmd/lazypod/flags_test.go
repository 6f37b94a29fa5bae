package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
	"github.com/lazypod/lazypod/units"
)

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
		{name: "bad label", args: []string{"serve", "--image", "nginx", "--port", "80", "--label", "novalue"}, want: `invalid --label "novalue": "novalue" is not KEY=VALUE`},
		{name: "zero stop timeout", args: []string{"serve", "--image", "nginx", "--port", "80", "--stop-timeout", "0"}, want: `invalid --stop-timeout "0": must be more than 0`},
		{name: "bad podman url", args: []string{"serve", "--image", "nginx", "--port", "80", "--podman-url", "/run/podman/podman.sock"}, want: `invalid --podman-url "/run/podman/podman.sock": use unix:///PATH`},
		{name: "unknown command", args: []string{"frobnicate"}, want: `unknown command "frobnicate"`},
		{name: "bad policy", args: []string{"serve", "--image", "nginx", "--port", "80", "--auto-update", "daily"}, want: `invalid --auto-update "daily": valid policies are "registry", "local", "disabled"`},
		{name: "registry policy, unqualified image", args: []string{"serve", "--image", "nginx", "--port", "80", "--auto-update", "registry"}, want: `name its registry, e.g. docker.io/library/nginx:latest`},
		{name: "registry policy, digest", args: []string{"serve", "--image", "docker.io/library/nginx@sha256:" + strings.Repeat("a", 64), "--port", "80", "--auto-update", "registry"}, want: "cannot update an image pinned by digest: use a tag"},
		{name: "bad tls-verify", args: []string{"serve", "--image", "nginx", "--port", "80", "--tls-verify=maybe"}, want: `invalid --tls-verify "maybe": not a boolean`},
		{name: "bad rollback window", args: []string{"serve", "--image", "nginx", "--port", "80", "--rollback-window", "-1s"}, want: `invalid --rollback-window "-1s"`},
		{name: "missing authfile", args: []string{"serve", "--image", "nginx", "--port", "80", "--authfile", "/nonexistent/auth.json", "--listen", "127.0.0.1:0"}, want: `invalid --authfile "/nonexistent/auth.json": no such file or directory`},
		{name: "bad max-connections", args: []string{"serve", "--image", "nginx", "--port", "80", "--max-connections", "0"}, want: `invalid --max-connections "0": want a number of connections from 1 up, auto, or -1 for no cap`},
		{name: "bad flow-idle-timeout", args: []string{"serve", "--image", "nginx", "--port", "80", "--flow-idle-timeout", "x"}, want: `invalid --flow-idle-timeout "x"`},
		{name: "update: bad format", args: []string{"update", "--format", "yaml"}, want: `invalid --format "yaml": valid formats are "table", "json"`},
		{name: "update: bad timeout", args: []string{"update", "--timeout", "0"}, want: `invalid --timeout "0": must be more than 0`},
		{name: "serve: bad env file", args: []string{"serve", "--image", "nginx", "--port", "80", "--env-file", "/nonexistent/env", "--listen", "127.0.0.1:0"}, want: `checking the podman run options "--env-file /nonexistent/env": parsing file "/nonexistent/env": open /nonexistent/env: no such file or directory`},
		{name: "serve: podman run options", args: []string{"serve", "--port", "80", "--", "--publish", "80:80", "nginx"}, want: `podman run option --publish does not apply to a container started on demand`},
		{name: "serve: podman run, no image", args: []string{"serve", "--port", "80", "--", "--env", "A=1"}, want: `no image in the podman run command line "--env A=1"`},
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
	o, _, err := parseServe([]string{"--image", "docker.io/library/nginx:latest", "--port", "80", "--", "nginx", "-g", "daemon off;"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(o.Command, "|"); got != "nginx|-g|daemon off;" {
		t.Errorf("command = %q; want nginx|-g|daemon off;", got)
	}
	if o.Name != "nginx" || o.IdleTimeout != 5*time.Minute || o.ReadyTimeout != time.Minute || o.StopTimeout != 10*time.Second {
		t.Errorf("defaults = name %q idle %v ready %v stop %v; want nginx 5m 1m 10s", o.Name, o.IdleTimeout, o.ReadyTimeout, o.StopTimeout)
	}
	if o.ExitOnIdle != nil {
		t.Errorf("ExitOnIdle = %v; want unset", *o.ExitOnIdle)
	}
	if o.Ready != (spec.Probe{}) {
		t.Errorf("Ready = %v; want unset, so the launcher picks its default, listening", o.Ready)
	}
	if o.StateDir != "/state/a" {
		t.Errorf("StateDir = %q; want /state/a", o.StateDir)
	}
	o, _, err = parseServe([]string{"--image", "nginx", "--port", "80", "--exit-on-idle=false"}, &bytes.Buffer{})
	if err != nil || o.ExitOnIdle == nil || *o.ExitOnIdle {
		t.Fatalf("--exit-on-idle=false: got %v, %v; want explicit false", o.ExitOnIdle, err)
	}
}

// TestRenderedExecStartParsesBack renders every definition of the units'
// test data, takes its ExecStart= apart as systemd does (quotes, escapes,
// %% and $$), and parses it with serve's flags: the settings must be the
// ones the definition gives, so units and serve agree on every flag.
func TestRenderedExecStartParsesBack(t *testing.T) {
	defs, _ := filepath.Glob("../../units/testdata/*.lazypod")
	if len(defs) < 3 {
		t.Fatalf("found %d definitions in units/testdata; want the test data", len(defs))
	}
	for _, path := range defs {
		for _, user := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s user=%v", filepath.Base(path), user), func(t *testing.T) {
				o := units.RenderOptions{Binary: "/usr/bin/lazypod", User: user}
				d, err := units.ParseFile(path, o)
				if err != nil {
					t.Fatal(err)
				}
				files, err := units.Render(d, o)
				if err != nil {
					t.Fatal(err)
				}
				unit := d.Name // as systemd expands the specifiers, for an instance
				if strings.HasSuffix(unit, "@") {
					unit += "inst"
				}
				args := expand(execStart(t, files, d.Name+".service"), unit)
				if args[0] != "/usr/bin/lazypod" || args[1] != "serve" {
					t.Fatalf("ExecStart = %q; want /usr/bin/lazypod serve ...", args)
				}
				got, err := spec.ParseServe(args[2:])
				if err != nil {
					t.Fatalf("parsing ExecStart %q: %v", args, err)
				}
				want, err := spec.ParseServe(expand(slices.Concat(d.Serve(o).Args()...), unit))
				if err != nil {
					t.Fatalf("the definition's serve arguments: %v", err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("ExecStart parses to\n%+v\nwant the definition's\n%+v", got, want)
				}
			})
		}
	}
}

// execStart returns the words of unit's ExecStart=, read the way systemd
// reads them; systemd-analyze verify (units' own tests) holds the
// rendering to systemd's parser.
func execStart(t *testing.T, files []units.File, unit string) []string {
	t.Helper()
	for _, f := range files {
		_, v, ok := strings.Cut(f.Content, "\nExecStart=")
		if f.Name != unit || !ok {
			continue
		}
		v = strings.ReplaceAll(v, "\\\n\t", " ") // continuation lines
		v, _, _ = strings.Cut(v, "\n")
		words, err := units.SplitCommand(v)
		if err != nil {
			t.Fatalf("splitting ExecStart %q: %v", v, err)
		}
		return words
	}
	t.Fatalf("no ExecStart= in %s", unit)
	return nil
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
