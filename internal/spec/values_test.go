package spec

import (
	"strings"
	"testing"
	"time"
)

func TestParsePort(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Port
		wantErr string
	}{
		{name: "bare", in: "8080", want: Port{Port: 8080}},
		{name: "proto", in: "53/udp", want: Port{Port: 53, Proto: "udp"}},
		{name: "named", in: "web=80/tcp", want: Port{FDName: "web", Port: 80, Proto: "tcp"}},
		{name: "zero", in: "0", wantErr: `want [FDNAME=]PORT[/tcp|/udp] with PORT from 1 to 65535`},
		{name: "too big", in: "70000", wantErr: "from 1 to 65535"},
		{name: "bad proto", in: "80/sctp", wantErr: `protocol "sctp" is not tcp or udp`},
		{name: "empty name", in: "=80", wantErr: `socket name ""`},
		{name: "name with colon", in: "a:b=80", wantErr: "without ':'"},
		{name: "words", in: "http", wantErr: "e.g. web=8080/tcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePort(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePort(%q) error = %v; want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePort(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseListen(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Listen
		wantErr string
	}{
		{name: "tcp", in: "127.0.0.1:8080", want: Listen{Network: "tcp", Addr: "127.0.0.1:8080"}},
		{name: "named tcp", in: "web=127.0.0.1:0", want: Listen{FDName: "web", Network: "tcp", Addr: "127.0.0.1:0"}},
		{name: "ipv6", in: "[::1]:80", want: Listen{Network: "tcp", Addr: "[::1]:80"}},
		{name: "any host", in: ":80", want: Listen{Network: "tcp", Addr: ":80"}},
		{name: "udp", in: "dns=udp:127.0.0.1:53", want: Listen{FDName: "dns", Network: "udp", Addr: "127.0.0.1:53"}},
		{name: "unix", in: "unix:/run/x.sock", want: Listen{Network: "unix", Addr: "/run/x.sock"}},
		{name: "relative unix", in: "unix:x.sock", wantErr: "absolute path"},
		{name: "no port", in: "localhost", wantErr: "want HOST:PORT"},
		{name: "bad port", in: "127.0.0.1:http", wantErr: `port "http" is not a number`},
		{name: "unbracketed ipv6", in: "::1:80", wantErr: "want HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseListen(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseListen(%q) error = %v; want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseListen(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
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
		{name: "duration", parse: func() (any, error) { return ParseDuration("90s") }, want: 90 * time.Second},
		{name: "seconds", parse: func() (any, error) { return ParseDuration("300") }, want: 5 * time.Minute},
		{name: "zero", parse: func() (any, error) { return ParseDuration("0") }, want: time.Duration(0)},
		{name: "negative", parse: func() (any, error) { return ParseDuration("-1s") }, wantErr: "negative duration"},
		{name: "words", parse: func() (any, error) { return ParseDuration("5 minutes") }, wantErr: "not a duration: use a duration like 90s"},
		{name: "memory m", parse: func() (any, error) { return ParseSize("512m") }, want: Size(512 << 20)},
		{name: "memory g", parse: func() (any, error) { return ParseSize("1.5G") }, want: Size(3 << 29)},
		{name: "memory bytes", parse: func() (any, error) { return ParseSize("10485760") }, want: Size(10 << 20)},
		{name: "memory tiny", parse: func() (any, error) { return ParseSize("1k") }, wantErr: "minimum of 6m"},
		{name: "memory in tebibytes", parse: func() (any, error) { return ParseSize("1t") }, want: Size(1 << 40)},
		{name: "memory MiB", parse: func() (any, error) { return ParseSize("512MiB") }, want: Size(512 << 20)},
		{name: "memory with a space", parse: func() (any, error) { return ParseSize("64 MB") }, want: Size(64 << 20)},
		{name: "memory junk", parse: func() (any, error) { return ParseSize("lots") }, wantErr: "use a size like 512m"},
		{name: "cpus", parse: func() (any, error) { return ParseCPUs("0.5") }, want: 0.5},
		{name: "cpus zero", parse: func() (any, error) { return ParseCPUs("0") }, wantErr: "positive number"},
		{name: "cpus nan", parse: func() (any, error) { return ParseCPUs("NaN") }, wantErr: "positive number"},
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
			if got := DefaultName(tt.image); got != tt.want {
				t.Fatalf("DefaultName(%q) = %q; want %q", tt.image, got, tt.want)
			}
		})
	}
}

func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"8080", "web=80/tcp", "dns=53/udp", "=1", "a=0/x", "65535", "65536"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePort(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParsePort(%q) error %q has several lines", s, err)
			}
			return
		}
		if p.Port == 0 {
			t.Fatalf("ParsePort(%q) accepted port 0", s)
		}
		back, err := ParsePort(p.String())
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
		l, err := ParseListen(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseListen(%q) error %q has several lines", s, err)
			}
			return
		}
		switch l.Network {
		case "tcp", "udp", "unix":
		default:
			t.Fatalf("ParseListen(%q) network = %q", s, l.Network)
		}
	})
}
