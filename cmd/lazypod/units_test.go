package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lazypod/lazypod/units"
)

const testDefinition = `[Container]
Image=localhost/web:latest
PublishPort=127.0.0.1:8080:80
PublishPort=127.0.0.1:5353:53/udp
AutoUpdate=local
`

func writeDefinition(t *testing.T, dir, name, body string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnitsGenerate(t *testing.T) {
	dir := t.TempDir()
	def := writeDefinition(t, dir, "web.lazypod", testDefinition)
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"units", "generate", "--output", out, "--bin", "/usr/local/bin/lazypod", def}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("units generate: exit %d: %s", code, stderr.String())
	}
	want := []string{"web-hold.socket", "web-udp-53.socket", "web-update.service", "web-update.timer", "web.service", "web.socket"}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		got = append(got, filepath.Base(line))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("units generate wrote %q; want %q", got, want)
	}
	b, err := os.ReadFile(filepath.Join(out, "web.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{units.Header + def, "ExecStart=/usr/local/bin/lazypod serve", "--auto-update local"} {
		if !strings.Contains(string(b), s) {
			t.Errorf("web.service lacks %q:\n%s", s, b)
		}
	}
}

func TestUnitsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := writeDefinition(t, dir, "bad.lazypod", "[Container]\nImage=nginx\nPublishPort=80\n")
	good := writeDefinition(t, dir, "good.lazypod", testDefinition)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", []string{"units"}, 2, "missing units command"},
		{"unknown command", []string{"units", "frob"}, 2, `unknown units command "frob"`},
		{"no file", []string{"units", "generate"}, 2, "missing definition FILE"},
		{"relative bin", []string{"units", "generate", "--bin", "lazypod", good}, 2, `invalid --bin "lazypod": systemd needs an absolute path`},
		{"bad file", []string{"units", "generate", "--output", dir, bad}, 1, bad + ":3: [Container] PublishPort=80: a host port is needed"},
		{"missing file", []string{"units", "generate", "--output", dir, filepath.Join(dir, "none.lazypod")}, 1, "none.lazypod"},
		{"remove: no name", []string{"units", "remove"}, 2, "missing service NAME"},
		{"generator: bad args", []string{"units", "generator", "a", "b"}, 2, "takes NORMAL_DIR [EARLY_DIR LATE_DIR], got 2"},
		// web.lazypod with AutoUpdate= writes web-update.service, and
		// so would web-update.lazypod: neither may overwrite the other.
		{"units of one name", []string{"units", "generate", "--output", filepath.Join(dir, "out"), good,
			writeDefinition(t, dir, "good-update.lazypod", "[Container]\nImage=nginx\nPublishPort=8090:80\n")},
			1, filepath.Join(dir, "good-update.lazypod") + ": its unit good-update.service is also written by " + good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("run = %d, %q; want %d and %q", code, stderr.String(), tt.code, tt.want)
			}
		})
	}
}

// TestUserGenerator runs the generator as systemd's user manager would:
// it reads ~/.config/containers/systemd, writes the units into the output
// directory and enables the sockets and the timer there; a bad file is
// reported and the others still generated.
func TestUserGenerator(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	src := filepath.Join(home, "containers", "systemd")
	writeDefinition(t, src, "web.lazypod", testDefinition)
	writeDefinition(t, src, "bad.lazypod", "[Container]\nImage=nginx\nFrobnicate=yes\nPublishPort=80:80\n")
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"units", "user-generator", out, t.TempDir(), t.TempDir()}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "lazypod-generator: "+filepath.Join(src, "bad.lazypod")+":3: [Container] Frobnicate=yes") {
		t.Errorf("generator with a bad file: exit %d, %q; want 1 and the bad file's line", code, stderr.String())
	}
	for _, p := range []string{"web.service", "web.socket", "web-udp-53.socket", "web-hold.socket", "sockets.target.wants/web.socket",
		"sockets.target.wants/web-udp-53.socket", "sockets.target.wants/web-hold.socket", "timers.target.wants/web-update.timer"} {
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			t.Errorf("generator output: %v", err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "web.service")); !strings.Contains(string(b), "%t/podman/podman.sock") {
		t.Errorf("user unit does not use the user's Podman socket:\n%s", b)
	}
}

// TestUnitsInstalled: units remove finds only the units generated from the
// definition it names, not those of another definition whose names start
// the same, and the container name from the service's ExecStart=.
func TestUnitsInstalled(t *testing.T) {
	dir := t.TempDir()
	web := writeDefinition(t, dir, "web.lazypod", testDefinition+"ContainerName=web-c\n")
	other := writeDefinition(t, dir, "web-update.lazypod", "[Container]\nImage=nginx\nPublishPort=8090:80\n")
	out, webOut := filepath.Join(dir, "out"), filepath.Join(dir, "web-out")
	for _, g := range [][2]string{{other, out}, {web, webOut}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"units", "generate", "--output", g[1], "--bin", "/usr/bin/lazypod", g[0]}, &stdout, &stderr); code != 0 {
			t.Fatalf("generate %s: exit %d: %s", g[0], code, stderr.String())
		}
	}
	// A directory with both: web's units but for web-update.service,
	// which is web-update.lazypod's.
	for _, u := range []string{"web.socket", "web-udp-53.socket", "web.service", "web-update.timer"} {
		b, err := os.ReadFile(filepath.Join(webOut, u))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, u), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, container, err := units.Installed(out, "web")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"web-update.timer", "web.socket", "web-udp-53.socket", "web.service"}
	if strings.Join(got, " ") != strings.Join(want, " ") || container != "web-c" {
		t.Errorf("Installed = %q, %q; want %q, web-c (not web-update.lazypod's web-update.service)", got, container, want)
	}
}

// TestUnitsGenerateRefusesAnotherDefinitionsUnit: a unit written from one
// definition is not overwritten by a later run for another definition
// whose unit has the same name, nor is a unit lazypod did not write.
func TestUnitsGenerateRefusesAnotherDefinitionsUnit(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	web := writeDefinition(t, dir, "web.lazypod", testDefinition)
	other := writeDefinition(t, dir, "web-update.lazypod", "[Container]\nImage=nginx\nPublishPort=8090:80\n")
	gen := func(def string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"units", "generate", "--output", out, "--bin", "/usr/bin/lazypod", def}, &stdout, &stderr)
		return code, stderr.String()
	}
	if code, errOut := gen(web); code != 0 {
		t.Fatalf("generate %s: exit %d: %s", web, code, errOut)
	}
	before, _ := os.ReadFile(filepath.Join(out, "web-update.service"))
	code, errOut := gen(other)
	want := "writing " + filepath.Join(out, "web-update.service") + ": it is the unit of " + web + ": rename one of the definition files"
	if code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("generate %s over %s's units: exit %d, %q; want 1 and %q", other, web, code, errOut, want)
	}
	if after, _ := os.ReadFile(filepath.Join(out, "web-update.service")); string(after) != string(before) {
		t.Error("web-update.service was overwritten")
	}
	if err := os.WriteFile(filepath.Join(out, "web.socket"), []byte("[Socket]\nListenStream=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, errOut := gen(web); code != 1 || !strings.Contains(errOut, "a unit lazypod did not write is there") {
		t.Errorf("generate over a unit lazypod did not write: exit %d, %q; want 1 and a refusal", code, errOut)
	}
}
