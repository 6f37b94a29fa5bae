package podman

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
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
			want: Run{Options: []string{"--net", "host", "--healthcheck-command", "true"}, Image: "nginx", Command: []string{}}},
		{name: "no image", args: []string{"--env", "A=1"}, wantErr: "no image in the podman run command line"},
		{name: "unknown option", args: []string{"--frobnicate", "nginx"}, wantErr: "unknown flag: --frobnicate"},
		{name: "bad memory", args: []string{"--memory", "lots", "nginx"}, wantErr: "invalid value for memory"},
		{name: "publish", args: []string{"-p", "8080:80", "nginx"}, wantErr: "podman run option --publish does not apply to a container started on demand: lazypod listens on the host's ports itself"},
		{name: "name", args: []string{"--name", "x", "nginx"}, wantErr: "option --name does not apply"},
		{name: "pod", args: []string{"--pod", "p", "nginx"}, wantErr: "option --pod does not apply"},
		{name: "restart", args: []string{"--restart", "always", "nginx"}, wantErr: "option --restart does not apply"},
		{name: "sdnotify", args: []string{"--sdnotify=healthy", "nginx"}, wantErr: "use Notify= or Ready="},
		{name: "pull always", args: []string{"--pull=always", "nginx"}, wantErr: "--pull=always does not apply"},
		{name: "pull missing", args: []string{"--pull=missing", "nginx"},
			want: Run{Options: []string{"--pull=missing"}, Image: "nginx", Command: []string{}}},
		{name: "cgroups split", args: []string{"--cgroups=split", "nginx"}, wantErr: "--cgroups=split does not apply"},
		{name: "passthrough log driver", args: []string{"--log-driver", "passthrough", "nginx"}, wantErr: "--log-driver passthrough does not apply"},
		{name: "keep-groups", args: []string{"--group-add", "keep-groups", "nginx"}, wantErr: "not supported in remote mode"},
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
	s, err := r.spec()
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
	if s, err := exec.spec(); err != nil || !slices.Equal(s.HealthConfig.Test, []string{"CMD", "/bin/check", "--quick"}) {
		t.Errorf("a JSON array health command: %+v, %v; want exec form CMD", s.HealthConfig, err)
	}
}
