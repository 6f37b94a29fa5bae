package spec

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Policy
		wantErr string
	}{
		{name: "registry", in: "registry", want: PolicyRegistry},
		{name: "local", in: "local", want: PolicyLocal},
		{name: "disabled", in: "disabled", want: PolicyDisabled},
		{name: "unknown", in: "daily", wantErr: `valid policies are "registry", "local", "disabled"`},
		{name: "empty", in: "", wantErr: `valid policies are "registry", "local", "disabled"`},
		{name: "case matters", in: "Registry", wantErr: `valid policies are`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePolicy(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePolicy(%q) = %q, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePolicy(%q) = %q, %v; want %q, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCheckImage(t *testing.T) {
	tests := []struct {
		name        string
		policy      Policy
		ref         string
		wantErr     string // substring; empty means no error
		unqualified bool
	}{
		{name: "qualified", policy: PolicyRegistry, ref: "docker.io/library/nginx:latest"},
		{name: "qualified no tag", policy: PolicyRegistry, ref: "quay.io/podman/stable"},
		{name: "localhost", policy: PolicyRegistry, ref: "localhost/app:v1"},
		{name: "host and port", policy: PolicyRegistry, ref: "127.0.0.1:5000/x:latest"},
		{name: "bare name", policy: PolicyRegistry, ref: "nginx", unqualified: true,
			wantErr: `name its registry, e.g. docker.io/library/nginx:latest`},
		{name: "bare name tagged", policy: PolicyRegistry, ref: "nginx:1.27", unqualified: true,
			wantErr: `e.g. docker.io/library/nginx:1.27`},
		{name: "user repo", policy: PolicyRegistry, ref: "library/nginx", unqualified: true,
			wantErr: `e.g. docker.io/library/nginx:latest`},
		{name: "digest", policy: PolicyRegistry,
			ref:     "docker.io/library/nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000",
			wantErr: "pinned by digest"},
		{name: "local bare name", policy: PolicyLocal, ref: "nginx"},
		{name: "disabled bare name", policy: PolicyDisabled, ref: "nginx"},
		{name: "invalid", policy: PolicyLocal, ref: "UPPER/case", wantErr: `repository name must be lowercase: use a reference like`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.CheckImage(tt.ref)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckImage(%q) = %v; want nil", tt.ref, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckImage(%q) = %v; want error containing %q", tt.ref, err, tt.wantErr)
			}
			if got := errors.Is(err, ErrUnqualified); got != tt.unqualified {
				t.Errorf("errors.Is(%v, ErrUnqualified) = %v; want %v", err, got, tt.unqualified)
			}
		})
	}
}
