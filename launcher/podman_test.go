package launcher

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeService serves a minimal Podman API on a unix socket: it answers the
// ping, and hands every other request to handle.
func fakeService(t *testing.T, handle http.HandlerFunc) (url string, stop func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "podman.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			w.Header().Set("Libpod-API-Version", "4.3.1")
			w.Write([]byte("OK"))
			return
		}
		handle(w, r)
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			srv.Close()
			<-done
		}
	}
	t.Cleanup(stop)
	return "unix://" + path, stop
}

func TestNewPodmanUnreachable(t *testing.T) {
	tests := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{name: "socket missing", url: func(t *testing.T) string {
			return "unix://" + filepath.Join(t.TempDir(), "missing.sock")
		}},
		{name: "service hangs", url: func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "podman.sock")
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			return "unix://" + path // accepted by the kernel, never answered
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			began := time.Now()
			_, err := NewPodman(ctx, tt.url(t))
			if !errors.Is(err, ErrNoPodman) {
				t.Errorf("NewPodman: got %v; want ErrNoPodman", err)
			}
			if took := time.Since(began); took > 3*time.Second {
				t.Errorf("NewPodman took %s; want it bounded by ctx", took)
			}
		})
	}
}

func TestPodmanGoneAfterConnect(t *testing.T) {
	url, stop := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unexpected", http.StatusInternalServerError)
	})
	p, err := NewPodman(t.Context(), url)
	if err != nil {
		t.Fatalf("NewPodman: %v", err)
	}
	stop()

	// Through the launcher: Start fails with ErrNoPodman, promptly.
	l := runLauncher(t, Config{Name: "svc", Image: "img", Runtime: p})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = l.Start(ctx)
	if !errors.Is(err, ErrNoPodman) {
		t.Fatalf("Start: got %v; want ErrNoPodman", err)
	}
	if got := l.State(); got != StateStopped {
		t.Errorf("state: got %s; want %s", got, StateStopped)
	}
}

func TestPodmanHangingCallsEndAtDeadline(t *testing.T) {
	release := make(chan struct{})
	url, _ := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	p, err := NewPodman(t.Context(), url)
	if err != nil {
		t.Fatalf("NewPodman: %v", err)
	}
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{name: "ImageID", call: func(ctx context.Context) error { _, _, err := p.ImageID(ctx, "img"); return err }},
		{name: "Inspect", call: func(ctx context.Context) error { _, _, err := p.Inspect(ctx, "svc"); return err }},
		{name: "Start", call: func(ctx context.Context) error { return p.Start(ctx, "svc") }},
		{name: "Stop", call: func(ctx context.Context) error { return p.Stop(ctx, "svc", time.Second) }},
		{name: "Wait", call: func(ctx context.Context) error { _, err := p.Wait(ctx, "svc"); return err }},
		{name: "Exec", call: func(ctx context.Context) error { _, _, err := p.Exec(ctx, "svc", []string{"true"}); return err }},
		{name: "Logs", call: func(ctx context.Context) error { _, err := p.Logs(ctx, "svc", 10); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			began := time.Now()
			err := tt.call(ctx)
			if err == nil {
				t.Errorf("%s: got nil error from a hanging service; want one", tt.name)
			}
			// The bindings retry a failed request twice, sleeping
			// 100ms and 200ms: allow for that.
			if took := time.Since(began); took > 2*time.Second {
				t.Errorf("%s took %s; want it to end soon after the 200ms deadline", tt.name, took)
			}
		})
	}
}

func TestPodmanNotFound(t *testing.T) {
	url, _ := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"cause":"no such container","message":"no container with name or ID \"svc\" found: no such container","response":404}`))
	})
	p, err := NewPodman(t.Context(), url)
	if err != nil {
		t.Fatalf("NewPodman: %v", err)
	}
	if _, ok, err := p.Inspect(t.Context(), "svc"); ok || err != nil {
		t.Errorf("Inspect of a missing container: got ok %v, %v; want false, nil", ok, err)
	}
	if _, ok, err := p.ImageID(t.Context(), "img"); ok || err != nil {
		t.Errorf("ImageID of a missing image: got ok %v, %v; want false, nil", ok, err)
	}
	if code, err := p.Wait(t.Context(), "svc"); code != -1 || err != nil {
		t.Errorf("Wait on a missing container: got %d, %v; want -1, nil", code, err)
	}
	err = p.Start(t.Context(), "svc")
	if got, want := err.Error(), `no container with name or ID "svc" found: no such container`; got != want {
		t.Errorf("Start error: got %q; want Podman's message %q", got, want)
	}
}

func TestSpecGenerator(t *testing.T) {
	cs := ContainerSpec{
		Name:    "svc",
		Image:   "img",
		Command: []string{"serve"},
		Env:     []string{"A=1", "B=x=y", "A=2"},
		Ports:   []ContainerPort{{Port: 8080, Proto: ProtoTCP}, {Port: 53, Proto: ProtoUDP}},
		Mounts: []Mount{
			{Source: "/srv", Target: "/srv", Options: []string{"ro"}},
			{Source: "data", Target: "/data"},
		},
		Labels: map[string]string{LabelService: "svc"},
		Memory: 64 << 20,
		CPUs:   1.5,
		User:   "1000:1000",
	}
	s, err := specGenerator(cs)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "svc" || s.Image != "img" || s.User != "1000:1000" || strings.Join(s.Command, " ") != "serve" {
		t.Errorf("name, image, user, command: got %q %q %q %q", s.Name, s.Image, s.User, s.Command)
	}
	if got := s.Env; got["A"] != "2" || got["B"] != "x=y" || len(got) != 2 {
		t.Errorf("env: got %v; want A=2 (last wins), B=x=y", got)
	}
	if got := len(s.PortMappings); got != 2 {
		t.Fatalf("port mappings: got %d; want 2", got)
	}
	for i, want := range []struct {
		port  uint16
		proto string
	}{{8080, "tcp"}, {53, "udp"}} {
		pm := s.PortMappings[i]
		if pm.HostIP != "127.0.0.1" || pm.HostPort != 0 || pm.ContainerPort != want.port || pm.Protocol != want.proto {
			t.Errorf("port mapping %d: got %+v; want 127.0.0.1:0 → %d/%s", i, pm, want.port, want.proto)
		}
	}
	if len(s.Mounts) != 1 || s.Mounts[0].Type != "bind" || s.Mounts[0].Source != "/srv" || s.Mounts[0].Options[0] != "ro" {
		t.Errorf("bind mounts: got %+v; want /srv bound ro", s.Mounts)
	}
	if len(s.Volumes) != 1 || s.Volumes[0].Name != "data" || s.Volumes[0].Dest != "/data" {
		t.Errorf("named volumes: got %+v; want data at /data", s.Volumes)
	}
	if got := *s.ResourceLimits.Memory.Limit; got != 64<<20 {
		t.Errorf("memory limit: got %d; want %d", got, 64<<20)
	}
	if q, p := *s.ResourceLimits.CPU.Quota, *s.ResourceLimits.CPU.Period; q != 150000 || p != 100000 {
		t.Errorf("cpu quota/period: got %d/%d; want 150000/100000", q, p)
	}
	if s.NetNS.NSMode != "" {
		t.Errorf("network mode with no Network: got %q; want the service's default", s.NetNS.NSMode)
	}

	networks := []struct {
		network  string
		wantMode string
		wantNet  string
	}{
		{network: "host", wantMode: "host"},
		{network: "none", wantMode: "none"},
		{network: "mynet", wantMode: "bridge", wantNet: "mynet"},
	}
	for _, tt := range networks {
		t.Run("network "+tt.network, func(t *testing.T) {
			s, err := specGenerator(ContainerSpec{Name: "svc", Image: "img", Network: tt.network})
			if err != nil {
				t.Fatal(err)
			}
			if got := string(s.NetNS.NSMode); got != tt.wantMode {
				t.Errorf("mode: got %q; want %q", got, tt.wantMode)
			}
			if _, ok := s.Networks[tt.wantNet]; tt.wantNet != "" && !ok {
				t.Errorf("networks: got %v; want %s", s.Networks, tt.wantNet)
			}
		})
	}
}

func TestPodmanImage(t *testing.T) {
	id := strings.Repeat("a", 64)
	url, _ := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/images/app/json"):
			w.Write([]byte(`{"Id":"` + id + `","Digest":"sha256:bbbb",` +
				`"RepoTags":["reg.example/app:1"],` +
				`"RepoDigests":["reg.example/app@sha256:bbbb","reg.example/app@sha256:bbbb","other.example/app@sha256:cccc"]}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"cause":"image not known","message":"missing: image not known","response":404}`))
		}
	})
	p, err := NewPodman(t.Context(), url)
	if err != nil {
		t.Fatalf("NewPodman: %v", err)
	}
	info, ok, err := p.Image(t.Context(), "app")
	if err != nil || !ok {
		t.Fatalf("Image(app): got ok %v, %v; want true, nil", ok, err)
	}
	wantDigests := []string{"reg.example/app@sha256:bbbb", "other.example/app@sha256:cccc", "sha256:bbbb"}
	if info.ID != id || !equalStrings(info.Names, []string{"reg.example/app:1"}) || !equalStrings(info.Digests, wantDigests) {
		t.Errorf("Image(app): got %+v; want ID %s, names [reg.example/app:1], digests %q", info, id, wantDigests)
	}
	if _, ok, err := p.Image(t.Context(), "missing"); ok || err != nil {
		t.Errorf("Image(missing): got ok %v, %v; want false, nil", ok, err)
	}
}

func TestPodmanTagUntag(t *testing.T) {
	var got []string
	url, _ := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		got = append(got, r.URL.Path[strings.LastIndex(r.URL.Path, "/images/"):]+" "+r.Form.Get("repo")+":"+r.Form.Get("tag"))
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.Contains(r.URL.Path, "/images/gone/"):
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"cause":"image not known","message":"gone: image not known","response":404}`))
		case strings.Contains(r.URL.Path, "/images/other/"):
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"cause":"tag not known","message":"localhost/app:prev: tag not known","response":500}`))
		case strings.Contains(r.URL.Path, "/images/broken/"):
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"cause":"disk on fire","message":"writing storage: disk on fire","response":500}`))
		default:
			w.WriteHeader(http.StatusCreated)
		}
	})
	p, err := NewPodman(t.Context(), url)
	if err != nil {
		t.Fatalf("NewPodman: %v", err)
	}
	if err := p.Tag(t.Context(), "abc", "localhost/app", "prev"); err != nil {
		t.Errorf("Tag: %v", err)
	}
	if err := p.Untag(t.Context(), "abc", "localhost/app", "prev"); err != nil {
		t.Errorf("Untag: %v", err)
	}
	for _, id := range []string{"gone", "other"} {
		if err := p.Untag(t.Context(), id, "localhost/app", "prev"); err != nil {
			t.Errorf("Untag(%s) of a missing name: got %v; want nil", id, err)
		}
	}
	if err := p.Untag(t.Context(), "broken", "localhost/app", "prev"); err == nil || err.Error() != "writing storage: disk on fire" {
		t.Errorf("Untag(broken): got %v; want Podman's message", err)
	}
	want := []string{"/images/abc/tag localhost/app:prev", "/images/abc/untag localhost/app:prev"}
	if len(got) < 2 || !equalStrings(got[:2], want) {
		t.Errorf("requests: got %q; want %q first", got, want)
	}
}

func TestPodmanPullOptions(t *testing.T) {
	authFile := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(authFile, []byte(`{"auths":{"reg.example":{"auth":"dTpw"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		authFile   string
		skipTLS    bool
		wantAuth   bool
		wantVerify string
		wantErr    bool
	}{
		{name: "defaults", wantVerify: ""},
		{name: "auth file and no tls verify", authFile: authFile, skipTLS: true, wantAuth: true, wantVerify: "false"},
		{name: "missing auth file", authFile: authFile + ".missing", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var auth, verify string
			pulls := 0
			url, _ := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
				pulls++
				auth = r.Header.Get("X-Registry-Auth")
				verify = r.URL.Query().Get("tlsVerify")
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"id":"abc","images":["abc"]}` + "\n"))
			})
			p, err := NewPodman(t.Context(), url)
			if err != nil {
				t.Fatalf("NewPodman: %v", err)
			}
			p.AuthFile = tt.authFile
			p.SkipTLSVerify = tt.skipTLS
			err = p.Pull(t.Context(), "reg.example/app:1")
			if (err != nil) != tt.wantErr {
				t.Fatalf("Pull: got %v; want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				if pulls != 0 || errors.Is(err, ErrImageNotFound) {
					t.Errorf("Pull with a missing auth file: got %d requests, %v; want none, not ErrImageNotFound", pulls, err)
				}
				return
			}
			// The header is base64 JSON of the credentials by registry.
			decoded, _ := base64.URLEncoding.DecodeString(auth)
			if got := strings.Contains(string(decoded), "reg.example"); got != tt.wantAuth {
				t.Errorf("X-Registry-Auth with the auth file's credentials: got %v (%q); want %v", got, decoded, tt.wantAuth)
			}
			if verify != tt.wantVerify {
				t.Errorf("tlsVerify: got %q; want %q", verify, tt.wantVerify)
			}
		})
	}
}
