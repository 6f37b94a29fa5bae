package units

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenCases are the definitions in testdata rendered into
// testdata/golden/NAME: every definition as system units, and some as
// user units too.
var goldenCases = []struct {
	name, file string
	user       bool
}{
	{"minimal", "minimal.lazypod", false},
	{"minimal-user", "minimal.lazypod", true},
	{"full", "full.lazypod", false},
	{"full-user", "full.lazypod", true},
	{"mixed", "mixed.lazypod", false},
	{"mixed-user", "mixed.lazypod", true},
	{"passthrough", "passthrough.lazypod", false},
	{"quoting", "quoting.lazypod", false},
	{"template", "template@.lazypod", false},
}

func renderFile(t *testing.T, file string, o RenderOptions) []File {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	// A fixed path: Quadlet writes it (SourcePath=) and resolves relative
	// paths against it.
	d, err := Parse("/etc/containers/systemd/"+file, bytes.NewReader(b), o)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	files, err := Render(d, o)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return files
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			files := renderFile(t, tc.file, RenderOptions{Binary: "/usr/local/bin/lazypod", User: tc.user})
			dir := filepath.Join("testdata", "golden", tc.name)
			if *update {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, f := range files {
					if err := os.WriteFile(filepath.Join(dir, f.Name), []byte(f.Content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatalf("reading golden files (run go test -update to write them): %v", err)
			}
			var want, got []string
			for _, e := range entries {
				want = append(want, e.Name())
			}
			for _, f := range files {
				got = append(got, f.Name)
				golden, err := os.ReadFile(filepath.Join(dir, f.Name))
				if err != nil {
					continue // reported by the names' comparison
				}
				if f.Content != string(golden) {
					t.Errorf("%s differs from %s (run go test -update if the change is meant):\ngot:\n%s\nwant:\n%s", f.Name, dir, f.Content, golden)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("got files %q; want %q", got, want)
			}
		})
	}
}

// TestRenderStable renders twice: same output, sorted by name.
func TestRenderStable(t *testing.T) {
	o := RenderOptions{Binary: "/usr/local/bin/lazypod"}
	a := renderFile(t, "mixed.lazypod", o)
	b := renderFile(t, "mixed.lazypod", o)
	if !slices.Equal(a, b) {
		t.Errorf("two renders differ")
	}
	if !slices.IsSortedFunc(a, func(x, y File) int { return strings.Compare(x.Name, y.Name) }) {
		t.Errorf("files not sorted by name")
	}
}

func TestRenderUnits(t *testing.T) {
	tests := []struct {
		name string
		text string
		o    RenderOptions
		file string
		want []string // lines the file must hold, ExecStart= ones without " \\"
		not  []string // lines it must not
	}{
		{"stop timeout", base + "[Lazypod]\nStopTimeout=1500ms\n", RenderOptions{}, "web.service",
			[]string{"TimeoutStopSec=33s"}, nil},
		{"default stop timeout", base, RenderOptions{}, "web.service", []string{"TimeoutStopSec=50s"}, nil},
		{"huge stop timeout", base + "[Lazypod]\nStopTimeout=2000000h\n", RenderOptions{}, "web.service",
			[]string{"TimeoutStopSec=infinity"}, nil},
		{"odd stop timeout", base + "[Lazypod]\nStopTimeout=1234567us\n", RenderOptions{}, "web.service",
			[]string{"TimeoutStopSec=32470ms", "\t--stop-timeout 1.234567s"}, nil},
		{"user podman socket", base, RenderOptions{User: true}, "web.service",
			[]string{"Wants=podman.socket", "After=podman.socket", "\t--podman-url unix://%t/podman/podman.sock", "NoNewPrivileges=yes"},
			[]string{"Requires=podman.socket", "ProtectSystem=strict"}},
		{"system podman socket", base, RenderOptions{}, "web.service",
			[]string{"Wants=podman.socket", "\t--podman-url unix:///run/podman/podman.sock", "ProtectSystem=strict", "CapabilityBoundingSet="}, []string{"Requires=podman.socket"}},
		{"own podman URL", base + "[Lazypod]\nPodmanURL=unix:///srv/100%%/podman.sock\n", RenderOptions{}, "web.service",
			[]string{"\t--podman-url unix:///srv/100%%/podman.sock"}, []string{"Requires=podman.socket", "After=podman.socket"}},
		{"unix path with percent", base + "[Lazypod]\nListenUnix=/run/100%%/web.sock:81\n", RenderOptions{}, "web-tcp-81.socket",
			[]string{"ListenStream=/run/100%%/web.sock", "FileDescriptorName=tcp-81", "Service=web.service"}, nil},
		{"metrics file writable", base + "AutoUpdate=local\n[Lazypod]\nMetricsFile=/var/lib/node-exporter/web.prom\n", RenderOptions{}, "web.service",
			[]string{"ReadWritePaths=-/var/lib/node-exporter", "\t--metrics-file /var/lib/node-exporter/web.prom"}, nil},
		{"metrics file writable by the update", base + "AutoUpdate=local\n[Lazypod]\nMetricsFile=/var/lib/node-exporter/web.prom\n", RenderOptions{}, "web-update.service",
			[]string{"ReadWritePaths=-/var/lib/node-exporter"}, nil},
		{"first socket is NAME.socket", base, RenderOptions{}, "web.socket",
			[]string{"ListenStream=8080", "FileDescriptorName=tcp-80", "WantedBy=sockets.target"}, []string{"Service=web.service"}},
		{"several sockets", base + "PublishPort=53:53/udp\n", RenderOptions{}, "web.service",
			[]string{"Requires=web.socket web-udp-53.socket", "Wants=web-hold.socket", "After=web.socket web-udp-53.socket web-hold.socket",
				"Sockets=web.socket web-udp-53.socket web-hold.socket"}, nil},
		{"hold socket", base, RenderOptions{}, "web-hold.socket",
			[]string{"ListenStream=%t/lazypod/web.hold", "SocketMode=0600", "FileDescriptorName=lazypod-hold", "Service=web.service", "WantedBy=sockets.target"}, nil},
		{"template hold socket", base + "PublishPort=127.0.0.1:%i:53/udp\n", RenderOptions{}, "web-hold@.socket",
			[]string{"ListenStream=%t/lazypod/web-%i.hold", "Service=web@%i.service"}, nil},
		{"needs", base + "[Lazypod]\nNeeds=db cache.lazypod\nNeeds=db\n", RenderOptions{}, "web.service",
			[]string{"Wants=web-hold.socket db-hold.socket cache-hold.socket", "After=web.socket web-hold.socket db-hold.socket cache-hold.socket",
				"\t--needs %t/lazypod/db.hold", "\t--needs %t/lazypod/cache.hold"}, nil},
		{"own Description", base + "[Unit]\nDescription=Web\n", RenderOptions{}, "web.service",
			[]string{"Description=Web"}, []string{"Description=web: docker.io/library/nginx:latest on demand (lazypod)"}},
		{"update service", "[Container]\nImage=docker.io/library/nginx:latest\nContainerName=nginx\nPublishPort=80:80\nAutoUpdate=registry\n",
			RenderOptions{Binary: "/opt/lazy pod/lazypod"}, "web-update.service",
			[]string{`ExecStart="/opt/lazy pod/lazypod" update --podman-url unix:///run/podman/podman.sock web`, "Type=oneshot", "StateDirectory=lazypod"}, nil},
		{"template service", base + "PublishPort=127.0.0.1:%i:53/udp\n", RenderOptions{}, "web@.service",
			[]string{"Requires=web@%i.socket web-udp-53@%i.socket", "Wants=web-hold@%i.socket", "Sockets=web@%i.socket web-udp-53@%i.socket web-hold@%i.socket", "\t--name web-%i",
				"\t-- --name systemd-%p_%i docker.io/library/nginx:latest", "RuntimeDirectory=lazypod/web@%i"}, nil},
		{"template with ServiceName", base + "ServiceName=site\n", RenderOptions{}, "site@.service",
			[]string{"Requires=site@%i.socket", "\t--name site-%i"}, nil},
		{"template socket", base + "PublishPort=127.0.0.1:%i:53/udp\n", RenderOptions{}, "web-udp-53@.socket",
			[]string{"ListenDatagram=127.0.0.1:%i", "Service=web@%i.service"}, nil},
		{"template update", base + "AutoUpdate=local\n", RenderOptions{}, "web-update@.service",
			[]string{"ExecStart=/usr/local/bin/lazypod update --podman-url unix:///run/podman/podman.sock web-%i"}, nil},
		{"update timer", base + "AutoUpdate=local\n", RenderOptions{}, "web-update.timer",
			[]string{"OnCalendar=daily", "RandomizedDelaySec=900", "Persistent=true", "WantedBy=timers.target"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/etc/containers/systemd/web.lazypod"
			if strings.HasPrefix(tt.name, "template") {
				path = "/etc/containers/systemd/web@.lazypod"
			}
			d, err := Parse(path, strings.NewReader(tt.text), RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if tt.o.Binary == "" {
				tt.o.Binary = "/usr/local/bin/lazypod"
			}
			files, err := Render(d, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(files, func(f File) bool { return f.Name == tt.file })
			if i < 0 {
				t.Fatalf("no %s among %v", tt.file, files)
			}
			// ExecStart= lines compare without their continuation.
			var lines []string
			for l := range strings.SplitSeq(files[i].Content, "\n") {
				lines = append(lines, strings.TrimSuffix(l, " \\"))
			}
			for _, w := range tt.want {
				if !slices.Contains(lines, w) {
					t.Errorf("%s:\n%s\nwant the line %q", tt.file, files[i].Content, w)
				}
			}
			for _, n := range tt.not {
				if slices.Contains(lines, n) {
					t.Errorf("%s:\n%s\nwant no line %q", tt.file, files[i].Content, n)
				}
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	d, err := parseString(t, base)
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"", "lazypod", "/usr/bin/lazy\npod"} {
		if _, err := Render(d, RenderOptions{Binary: bin}); err == nil {
			t.Errorf("Render with Binary %q: no error; want one", bin)
		}
	}
	if _, err := Render(&Definition{Name: "web"}, RenderOptions{Binary: "/bin/true"}); !errors.Is(err, errIncomplete) {
		t.Errorf("Render of an empty definition: got %v; want %v", err, errIncomplete)
	}
	long, err := Parse("/etc/"+strings.Repeat("w", 40)+".lazypod", strings.NewReader(base+"Notify=yes\n"), RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Render(long, RenderOptions{Binary: "/bin/true"}); err != nil {
		t.Errorf("Render of system units with a 101-byte notify socket path: %v", err)
	}
	_, err = Render(long, RenderOptions{Binary: "/bin/true", User: true})
	if err == nil || !strings.Contains(err.Error(), "notify probe's socket path") || !strings.Contains(err.Error(), "shorter file name") {
		t.Errorf("Render of user units with a long notify socket path: got %v; want an error asking for a shorter file name", err)
	}
}

func TestRenderFilesCollisions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	web := write("web.lazypod", base+"AutoUpdate=local\n")
	webUpdate := write("web-update.lazypod", "[Container]\nImage=docker.io/library/nginx:latest\nPublishPort=8081:80\n")
	other := write("other.lazypod", "[Container]\nImage=docker.io/library/nginx:latest\nPublishPort=8082:80\n")
	set, err := RenderFiles([]string{web, webUpdate, other}, RenderOptions{Binary: "/usr/bin/lazypod"})
	want := webUpdate + ": its unit web-update.service is also written by " + web + ": rename one of the files"
	if err == nil || err.Error() != want {
		t.Fatalf("RenderFiles error = %v; want %q", err, want)
	}
	if got := strings.Join(set.Names, ","); got != "web,other" {
		t.Errorf("rendered %s; want web,other (the colliding file refused, the others kept)", got)
	}
}

func TestGeneratedFromAndContainerOf(t *testing.T) {
	d, err := parseString(t, base+"ContainerName=web-1\n")
	if err != nil {
		t.Fatal(err)
	}
	files, err := Render(d, RenderOptions{Binary: "/usr/bin/lazypod"})
	if err != nil {
		t.Fatal(err)
	}
	var svc string
	for _, f := range files {
		if f.Name == "web.service" {
			svc = f.Content
		}
	}
	if p, ok := GeneratedFrom(svc); !ok || p != "/etc/containers/systemd/web.lazypod" {
		t.Errorf("GeneratedFrom = %q, %v; want the definition's path", p, ok)
	}
	if _, ok := GeneratedFrom("[Unit]\n"); ok {
		t.Error("GeneratedFrom of a unit without the header: ok; want not lazypod's")
	}
	if name, ok := ContainerOf(svc, "web.service"); !ok || name != "web-1" {
		t.Errorf("ContainerOf = %q, %v; want web-1", name, ok)
	}
	// The default name, systemd-%N, and a template's, as systemd expands
	// them for the unit.
	for _, tt := range []struct{ run, unit, want string }{
		{"--name systemd-%N", "web.service", "systemd-web"},
		{"--name systemd-%p_%i", "web@a.service", "systemd-web_a"},
		{"--name c-%n", "web.service", "c-web.service"},
		{"--name 100%%-%N", "web.service", "100%-web"},
		{"--name c-%H", "web.service", ""},
	} {
		svc := "[Service]\nExecStart=/usr/bin/lazypod serve --name web -- " + tt.run + " img\n"
		if name, _ := ContainerOf(svc, tt.unit); name != tt.want {
			t.Errorf("ContainerOf(%q, %s) = %q; want %q", tt.run, tt.unit, name, tt.want)
		}
	}
}

// TestEnabledTemplate: a template's sockets and timer are enabled as the
// instance DefaultInstance= names, or not at all.
func TestEnabledTemplate(t *testing.T) {
	for _, tt := range []struct {
		install string
		want    []string
	}{
		{"", nil},
		{"[Install]\nDefaultInstance=8081\n", []string{"web-hold@8081.socket", "web-udp-53@8081.socket", "web-update@8081.timer", "web@8081.socket"}},
	} {
		d, err := Parse("/etc/containers/systemd/web@.lazypod", strings.NewReader(base+"PublishPort=53:53/udp\nAutoUpdate=local\n"+tt.install), RenderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		files, err := Render(d, RenderOptions{Binary: "/usr/bin/lazypod"})
		if err != nil {
			t.Fatal(err)
		}
		if got := Enabled(files); !slices.Equal(got, tt.want) {
			t.Errorf("Enabled with %q = %q; want %q", tt.install, got, tt.want)
		}
	}
	if got := Enabled(renderFile(t, "mixed.lazypod", RenderOptions{Binary: "/usr/bin/lazypod"})); len(got) != 5 {
		t.Errorf("Enabled(mixed) = %q; want its three sockets, its hold socket and its timer", got)
	}
}
