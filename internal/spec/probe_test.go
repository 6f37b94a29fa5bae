package spec

import (
	"strings"
	"testing"
)

func TestParseProbe(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Probe
		wantErr bool
		errMsg  string // if not the list of valid probes
	}{
		{name: "listening", in: "listening", want: Probe{Kind: ProbeListening}},
		{name: "listening with arg", in: "listening:80", wantErr: true},
		{name: "tcp", in: "tcp", want: Probe{Kind: ProbeTCP}},
		{name: "http", in: "http:/healthz", want: Probe{Kind: ProbeHTTP, Arg: "/healthz"}},
		{name: "http query", in: "http:/ready?full=1", want: Probe{Kind: ProbeHTTP, Arg: "/ready?full=1"}},
		{name: "exec", in: "exec:/testserver -check", want: Probe{Kind: ProbeExec, Arg: "/testserver -check"}},
		{name: "exec with colon", in: "exec:pg_isready -h 127.0.0.1:5432", want: Probe{Kind: ProbeExec, Arg: "pg_isready -h 127.0.0.1:5432"}},
		{name: "healthcheck", in: "healthcheck", want: Probe{Kind: ProbeHealthcheck}},
		{name: "notify", in: "notify", want: Probe{Kind: ProbeNotify}},
		{name: "none", in: "none", want: Probe{Kind: ProbeNone}},
		{name: "empty", in: "", wantErr: true},
		{name: "unknown", in: "x", wantErr: true},
		{name: "upper case", in: "TCP", wantErr: true},
		{name: "tcp with arg", in: "tcp:80", wantErr: true},
		{name: "tcp with empty arg", in: "tcp:", wantErr: true},
		{name: "http without path", in: "http", wantErr: true},
		{name: "http relative path", in: "http:healthz", wantErr: true},
		{name: "http with space", in: "http:/a b", wantErr: true},
		{name: "exec without command", in: "exec:", wantErr: true},
		{name: "exec blank command", in: "exec:   ", wantErr: true},
		{name: "none with arg", in: "none:x", wantErr: true},
		{name: "exec with quotes", in: `exec:sh -c "true"`, wantErr: true, errMsg: "the probe command is split on spaces, without quotes or escapes: write it without them, or run a script in the image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProbe(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseProbe(%q): got %+v, nil; want an error", tt.in, got)
				}
				want := `valid probes are "listening", "tcp", "http:/PATH", "exec:COMMAND", "healthcheck", "notify", "none"`
				if tt.errMsg != "" {
					want = tt.errMsg
				}
				if err.Error() != want {
					t.Errorf("ParseProbe(%q) error: got %q; want %q", tt.in, err, want)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseProbe(%q): got %+v, %v; want %+v, nil", tt.in, got, err, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("String: got %q; want %q", s, tt.in)
			}
		})
	}
}

func FuzzParseProbe(f *testing.F) {
	for _, s := range []string{
		"tcp", "http:/healthz", "http:/", "exec:/testserver -check", "exec:pg_isready -U postgres",
		"healthcheck", "notify", "none", "", "http:", "exec:", "tcp:1", "x:y:z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseProbe(s)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("ParseProbe(%q) error %q has several lines", s, err)
			}
			if p != (Probe{}) {
				t.Fatalf("ParseProbe(%q) = %+v with error %v; want the zero Probe", s, p, err)
			}
			return
		}
		if p.Check() != nil {
			t.Fatalf("ParseProbe(%q) = %+v, which does not validate", s, p)
		}
		again, err := ParseProbe(p.String())
		if err != nil || again != p {
			t.Fatalf("ParseProbe(%q).String() = %q parses to %+v, %v; want %+v", s, p.String(), again, err, p)
		}
	})
}
