package podman

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containers/podman/v5/pkg/specgen"
	"github.com/lazypod/lazypod/internal/spec"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseRun(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    Run
		wantErr string
	}{
		{name: "image only", args: []string{"docker.io/library/nginx:latest"},
			want: Run{Options: []string{}, Image: "docker.io/library/nginx:latest", Command: []string{}}},
		{name: "options, image, command", args: []string{"--env", "A=1", "-v", "/srv:/data:ro", "--tty", "nginx", "nginx", "-g", "daemon off;"},
			want: Run{Options: []string{"--env", "A=1", "-v", "/srv:/data:ro", "--tty"}, Image: "nginx", Command: []string{"nginx", "-g", "daemon off;"}}},
		{name: "an option after the image is the command's", args: []string{"nginx", "--env", "A=1"},
			want: Run{Options: []string{}, Image: "nginx", Command: []string{"--env", "A=1"}}},
		{name: "old flag names", args: []string{"--net", "host", "--healthcheck-command", "true", "nginx"},
			want: Run{Options: []string{"--net", "host", "--healthcheck-command", "true"}, Image: "nginx", Command: []string{}, HostNetwork: true}},
		{name: "no image", args: []string{"--env", "A=1"}, wantErr: "no image in the podman run command line"},
		{name: "unknown option", args: []string{"--frobnicate", "nginx"}, wantErr: "unknown flag: --frobnicate"},
		{name: "bad memory", args: []string{"--memory", "lots", "nginx"}, wantErr: "invalid value for memory"},
		{name: "publish", args: []string{"-p", "8080:80", "nginx"}, wantErr: "podman run option --publish does not apply to a container started on demand: lazypod listens on the host's ports itself"},
		{name: "name", args: []string{"--name", "-x", "nginx"}, wantErr: `invalid container name --name "-x"`},
		{name: "network of another container", args: []string{"--network", "container:db", "nginx"}, wantErr: "--network container:db does not apply"},
		{name: "no network", args: []string{"--network", "none", "nginx"}, wantErr: "--network none does not apply"},
		{name: "pod", args: []string{"--pod", "p", "nginx"}, wantErr: "option --pod does not apply"},
		{name: "restart", args: []string{"--restart", "always", "nginx"}, wantErr: "option --restart does not apply"},
		{name: "sdnotify", args: []string{"--sdnotify=healthy", "nginx"}, wantErr: "use Notify= or Ready="},
		{name: "pull always", args: []string{"--pull=always", "nginx"}, wantErr: "--pull=always does not apply"},
		{name: "pull missing", args: []string{"--pull=missing", "nginx"},
			want: Run{Options: []string{"--pull=missing"}, Image: "nginx", Command: []string{}}},
		{name: "cgroups split", args: []string{"--cgroups=split", "nginx"}, wantErr: "--cgroups=split does not apply"},
		{name: "passthrough log driver", args: []string{"--log-driver", "passthrough", "nginx"}, wantErr: "--log-driver passthrough does not apply"},
		{name: "cpus and cpu-period", args: []string{"--cpus", "1", "--cpu-period", "1000", "nginx"}, wantErr: "--cpu-period and --cpus cannot be set together"},
		{name: "bad image", args: []string{"Bad Image"}, wantErr: `invalid image "Bad Image"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRun(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, spec.ErrUsage) {
					t.Fatalf("ParseRun(%q) = %+v, %v; want a usage error containing %q", tt.args, got, err, tt.wantErr)
				}
				if strings.ContainsAny(err.Error(), "\n") {
					t.Errorf("error %q has several lines", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRun(%q): %v", tt.args, err)
			}
			if !slices.Equal(got.Options, tt.want.Options) || got.Image != tt.want.Image || !slices.Equal(got.Command, tt.want.Command) {
				t.Errorf("ParseRun(%q) = %+v; want %+v", tt.args, got, tt.want)
			}
		})
	}
}

// TestRunSpec checks that the options reach the settings Podman's own code
// makes of them, as podman --remote run sends them.
func TestRunSpec(t *testing.T) {
	r, err := ParseRun([]string{"--env", "A=1", "--memory", "512MiB", "--health-cmd", "curl -f http://localhost/ || exit 1",
		"--health-interval", "5s", "--health-retries", "2", "--health-start-period", "1s", "--read-only", "--cap-add", "net_admin",
		"--ulimit", "nofile=100:200", "--workdir", "/srv", "--hostname", "web", "--entrypoint", "/bin/app", "nginx", "serve"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.spec(false)
	if err != nil {
		t.Fatal(err)
	}
	if s.Env["A"] != "1" || *s.ResourceLimits.Memory.Limit != 512<<20 || *s.ResourceLimits.Memory.Swap != 1<<30 {
		t.Errorf("env %v, memory %v swap %v; want A=1, 512MiB and Podman's swap of twice that", s.Env, *s.ResourceLimits.Memory.Limit, *s.ResourceLimits.Memory.Swap)
	}
	hc := s.HealthConfig
	if hc == nil || !slices.Equal(hc.Test, []string{"CMD-SHELL", "curl -f http://localhost/ || exit 1"}) ||
		hc.Interval != 5*time.Second || hc.Retries != 2 || hc.StartPeriod != time.Second {
		t.Errorf("health config %+v; want a shell command, 5s, 2 retries, start period 1s", hc)
	}
	if s.ReadOnlyFilesystem == nil || !*s.ReadOnlyFilesystem || !slices.Contains(s.CapAdd, "net_admin") || len(s.Rlimits) != 1 ||
		s.WorkDir != "/srv" || s.Hostname != "web" || !slices.Equal(s.Entrypoint, []string{"/bin/app"}) || !slices.Equal(s.Command, []string{"serve"}) {
		t.Errorf("spec: read-only %v caps %v rlimits %v workdir %q hostname %q entrypoint %q command %q",
			s.ReadOnlyFilesystem, s.CapAdd, s.Rlimits, s.WorkDir, s.Hostname, s.Entrypoint, s.Command)
	}
	if s.SdNotifyMode != "" {
		t.Errorf("sd_notify mode %q; want none: lazypod waits for the container itself", s.SdNotifyMode)
	}
	exec, _ := ParseRun([]string{"--health-cmd", `["/bin/check", "--quick"]`, "nginx"})
	if s, err := exec.spec(false); err != nil || !slices.Equal(s.HealthConfig.Test, []string{"CMD", "/bin/check", "--quick"}) {
		t.Errorf("a JSON array health command: %+v, %v; want exec form CMD", s.HealthConfig, err)
	}
}

// TestRunReads checks what ParseRun reads for lazypod itself: the
// container's name and the host network.
func TestRunReads(t *testing.T) {
	r, err := ParseRun([]string{"--name", "systemd-web", "--network", "host", "nginx"})
	if err != nil || r.Name != "systemd-web" || !r.HostNetwork {
		t.Errorf("ParseRun = %+v, %v; want Name systemd-web and HostNetwork", r, err)
	}
	if r, _ := ParseRun([]string{"nginx"}); r.Name != "" || r.HostNetwork {
		t.Errorf("ParseRun(nginx) = %+v; want no name, no host network", r)
	}
}

// TestCheckRunReadsNoFile: the files an option names are read when the
// container is created, not when a command line is checked.
func TestCheckRunReadsNoFile(t *testing.T) {
	args := []string{"--env-file", "/nonexistent/app.env", "--label-file", "/nonexistent/labels", "nginx"}
	if _, err := CheckRun(args); err != nil {
		t.Errorf("CheckRun: %v; want no error: the files are read at the start", err)
	}
	if _, err := ParseRun(args); err == nil || !strings.Contains(err.Error(), "/nonexistent/app.env") {
		t.Errorf("ParseRun: %v; want an error naming the missing file", err)
	}
}

// TestHostEnv: --env-host gives the container lazypod's environment (the
// service's, as Quadlet's podman run would), and --http-proxy (on by
// default) its proxy variables; --env wins over both, and systemd's own
// variables for lazypod stay out.
func TestHostEnv(t *testing.T) {
	t.Setenv("LAZYPOD_TEST_HOST", "from-host")
	t.Setenv("HTTP_PROXY", "http://proxy:3128")
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	spec := func(args ...string) map[string]string {
		t.Helper()
		r, err := ParseRun(append(args, "nginx"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := r.spec(false)
		if err != nil {
			t.Fatal(err)
		}
		if *s.EnvHost || *s.HTTPProxy {
			t.Errorf("EnvHost %v, HTTPProxy %v; want both off: the Podman service would use its own environment", *s.EnvHost, *s.HTTPProxy)
		}
		return s.Env
	}
	if env := spec(); env["HTTP_PROXY"] != "http://proxy:3128" || env["LAZYPOD_TEST_HOST"] != "" {
		t.Errorf("default: env %v; want the proxy variable only", env)
	}
	if env := spec("--http-proxy=false"); env["HTTP_PROXY"] != "" {
		t.Errorf("--http-proxy=false: env %v; want no proxy variable", env)
	}
	env := spec("--env-host", "--env", "LAZYPOD_TEST_HOST=mine")
	if env["LAZYPOD_TEST_HOST"] != "mine" || env["PATH"] == "" || env["NOTIFY_SOCKET"] != "" {
		t.Errorf("--env-host: env %v; want the host's, --env over it, no NOTIFY_SOCKET", env)
	}
}

// TestSortOptions: flags sorted by name, --name first, each with its
// value, the values of one flag in their order; the settings stay.
func TestSortOptions(t *testing.T) {
	in := []string{"--memory", "512m", "-v", "/a:/a", "--name", "web", "--read-only", "-e", "A=1", "--env=B=2", "-v/b:/b", "--hostname=h"}
	want := []string{"--name", "web", "-e", "A=1", "--env=B=2", "--hostname=h", "--memory", "512m", "--read-only", "-v", "/a:/a", "-v/b:/b"}
	if got := SortOptions(in); !slices.Equal(got, want) {
		t.Errorf("SortOptions = %q; want %q", got, want)
	}
	a, _ := Run{Options: in, Image: "nginx"}.spec(false)
	b, _ := Run{Options: want, Image: "nginx"}.spec(false)
	for _, s := range []*specgen.SpecGenerator{a, b} { // Podman orders mounts as a map does
		slices.SortFunc(s.Mounts, func(x, y rspec.Mount) int { return strings.Compare(x.Destination, y.Destination) })
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("sorted options give other settings:\n%+v\n%+v", a, b)
	}
	if odd := []string{"--frobnicate", "x"}; !slices.Equal(SortOptions(odd), odd) {
		t.Errorf("SortOptions of an unknown flag changed it")
	}
}
