package podman

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
	"github.com/lazypod/lazypod/launcher"
)

// fakePodman serves a minimal Podman API on a unix socket: it answers the
// ping, counting them, and hands every other request to its handler.
type fakePodman struct {
	URL   string
	pings atomic.Int32

	srv      *http.Server
	done     chan struct{}
	stopOnce sync.Once
}

// fakeService serves handle on a new socket.
func fakeService(t *testing.T, handle http.HandlerFunc) *fakePodman {
	t.Helper()
	return serveFake(t, filepath.Join(t.TempDir(), "podman.sock"), handle)
}

// serveFake serves handle on a socket at path, until stop or the test's
// end.
func serveFake(t *testing.T, path string, handle http.HandlerFunc) *fakePodman {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePodman{URL: "unix://" + path, done: make(chan struct{})}
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			f.pings.Add(1)
			w.Header().Set("Libpod-API-Version", "4.3.1")
			w.Write([]byte("OK"))
			return
		}
		handle(w, r)
	})}
	go f.serve(ln)
	t.Cleanup(f.stop)
	return f
}

func (f *fakePodman) serve(ln net.Listener) {
	defer close(f.done)
	f.srv.Serve(ln)
}

// stop closes the service and its connections; the socket file goes too.
func (f *fakePodman) stop() {
	f.stopOnce.Do(func() {
		f.srv.Close()
		<-f.done
	})
}

// notFound answers every request with Podman's 404.
func notFound(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte(`{"cause":"no such object","message":"no such object","response":404}`))
}

// hangingService listens on a unix socket and accepts connections but
// never answers them. accepted is closed at the first connection.
func hangingService(t *testing.T) (url string, accepted <-chan struct{}) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "podman.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan struct{})
	done := make(chan struct{})
	go holdConns(ln, first, done)
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return "unix://" + path, first
}

// holdConns accepts connections on ln and keeps them open, unanswered,
// until ln is closed; it closes first at the first one.
func holdConns(ln net.Listener, first, done chan struct{}) {
	defer close(done)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if conns = append(conns, c); len(conns) == 1 {
			close(first)
		}
	}
}

// connected returns a client of url that has connected.
func connected(t *testing.T, url string) *Client {
	t.Helper()
	c := New(url)
	if err := c.Connect(t.Context()); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c
}

func TestConnectUnreachable(t *testing.T) {
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
			c := New(tt.url(t))
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			began := time.Now()
			err := c.Connect(ctx)
			if !errors.Is(err, launcher.ErrNoPodman) {
				t.Errorf("Connect: got %v; want ErrNoPodman", err)
			}
			// The bindings retry a failed request twice, sleeping
			// 100ms, 200ms and 300ms: allow for that.
			if took := time.Since(began); took > 3*time.Second {
				t.Errorf("Connect took %s; want it bounded by its 300ms ctx", took)
			}
		})
	}
}

// TestLazyConnect: New connects to nothing; a call made while the service
// is missing reports it, and the same client works once it appears.
func TestLazyConnect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "podman.sock")
	c := New("unix://" + path)
	if got, want := c.URL(), "unix://"+path; got != want {
		t.Errorf("URL: got %q; want %q", got, want)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	began := time.Now()
	_, _, err := c.ImageID(ctx, "img")
	if !errors.Is(err, launcher.ErrNoPodman) {
		t.Fatalf("ImageID with no service: got %v; want ErrNoPodman", err)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("ImageID with no service took %s; want the missing socket reported within the bindings' 600ms of retries", took)
	}

	f := serveFake(t, path, notFound)
	if _, ok, err := c.ImageID(t.Context(), "img"); ok || err != nil {
		t.Fatalf("ImageID once the service is up: got ok %v, %v; want false, nil", ok, err)
	}
	if err := c.Connect(t.Context()); err != nil {
		t.Errorf("Connect once connected: %v", err)
	}
	if got := f.pings.Load(); got != 1 {
		t.Errorf("pings: got %d; want 1 (connected once, then kept)", got)
	}
}

// TestReconnectAfterRestart: a connected client reports a service that
// went away, and picks it up again when it is back at the same socket.
func TestReconnectAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "podman.sock")
	f := serveFake(t, path, notFound)
	c := connected(t, f.URL)
	f.stop()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, _, err := c.ImageID(ctx, "img"); !errors.Is(err, launcher.ErrNoPodman) {
		t.Fatalf("ImageID with the service gone: got %v; want ErrNoPodman", err)
	}
	serveFake(t, path, notFound)
	if _, ok, err := c.ImageID(t.Context(), "img"); ok || err != nil {
		t.Errorf("ImageID with the service back: got ok %v, %v; want false, nil", ok, err)
	}
}

// TestWaitersGiveUpAtTheirDeadline: a call waiting for another that holds
// the connection (a connect to a hanging service, a hung exec) ends when
// its own ctx does, not when the other's does.
func TestWaitersGiveUpAtTheirDeadline(t *testing.T) {
	tests := []struct {
		name string
		// serve returns the service's URL, and a channel closed once
		// the first call reached it.
		serve func(t *testing.T) (string, <-chan struct{})
		call  func(ctx context.Context, c *Client) error
		// wantNoPodman: the waiter's error wraps ErrNoPodman, not
		// context.DeadlineExceeded.
		wantNoPodman bool
	}{
		{
			name:         "connect to a hanging service",
			serve:        hangingService,
			call:         func(ctx context.Context, c *Client) error { return c.Connect(ctx) },
			wantNoPodman: true,
		},
		{
			name: "exec while another hangs",
			serve: func(t *testing.T) (string, <-chan struct{}) {
				reached := make(chan struct{})
				var once sync.Once
				f := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
					once.Do(func() { close(reached) })
					<-r.Context().Done()
				})
				return f.URL, reached
			},
			call: func(ctx context.Context, c *Client) error {
				_, _, err := c.Exec(ctx, "svc", []string{"true"})
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, reached := tt.serve(t)
			c := New(url)
			hctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			held := make(chan error, 1)
			go func() { held <- tt.call(hctx, c) }()
			defer func() {
				cancel()
				<-held
			}()
			select {
			case <-reached:
			case <-time.After(10 * time.Second):
				t.Fatal("the first call did not reach the service within 10s")
			}

			ctx, wcancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer wcancel()
			began := time.Now()
			err := tt.call(ctx, c)
			if tt.wantNoPodman && !errors.Is(err, launcher.ErrNoPodman) {
				t.Errorf("waiting call: got %v; want ErrNoPodman", err)
			}
			if !tt.wantNoPodman && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("waiting call: got %v; want its deadline's error", err)
			}
			if took := time.Since(began); took > 2*time.Second {
				t.Errorf("waiting call took %s; want it to end soon after its 200ms deadline, not the other call's 20s", took)
			}
		})
	}
}

func TestPodmanGoneAfterConnect(t *testing.T) {
	f := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unexpected", http.StatusInternalServerError)
	})
	c := connected(t, f.URL)
	f.stop()

	// Through the launcher: Start fails with ErrNoPodman, promptly.
	l := runLauncher(t, launcher.Config{Name: "svc", Image: "img", Runtime: c})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := l.Start(ctx)
	if !errors.Is(err, launcher.ErrNoPodman) {
		t.Fatalf("Start: got %v; want ErrNoPodman", err)
	}
	if got := l.State(); got != launcher.StateStopped {
		t.Errorf("state: got %s; want %s", got, launcher.StateStopped)
	}
}

func TestPodmanHangingCallsEndAtDeadline(t *testing.T) {
	release := make(chan struct{})
	f := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	c := connected(t, f.URL)
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{name: "ImageID", call: func(ctx context.Context) error { _, _, err := c.ImageID(ctx, "img"); return err }},
		{name: "Image", call: func(ctx context.Context) error { _, _, err := c.Image(ctx, "img"); return err }},
		{name: "Pull", call: func(ctx context.Context) error { return c.Pull(ctx, "reg.example/app:1") }},
		{name: "Inspect", call: func(ctx context.Context) error { _, _, err := c.Inspect(ctx, "svc"); return err }},
		{name: "Create", call: func(ctx context.Context) error {
			_, err := c.Create(ctx, launcher.ContainerSpec{Name: "svc", Image: "img"})
			return err
		}},
		{name: "Start", call: func(ctx context.Context) error { return c.Start(ctx, "svc") }},
		{name: "Stop", call: func(ctx context.Context) error { return c.Stop(ctx, "svc", time.Second) }},
		{name: "Remove", call: func(ctx context.Context) error { return c.Remove(ctx, "svc", time.Second) }},
		{name: "Wait", call: func(ctx context.Context) error { _, err := c.Wait(ctx, "svc"); return err }},
		{name: "Exec", call: func(ctx context.Context) error { _, _, err := c.Exec(ctx, "svc", []string{"true"}); return err }},
		{name: "Logs", call: func(ctx context.Context) error { _, err := c.Logs(ctx, "svc", 10); return err }},
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
	f := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"cause":"no such container","message":"no container with name or ID \"svc\" found: no such container","response":404}`))
	})
	c := New(f.URL)
	if _, ok, err := c.Inspect(t.Context(), "svc"); ok || err != nil {
		t.Errorf("Inspect of a missing container: got ok %v, %v; want false, nil", ok, err)
	}
	if _, ok, err := c.ImageID(t.Context(), "img"); ok || err != nil {
		t.Errorf("ImageID of a missing image: got ok %v, %v; want false, nil", ok, err)
	}
	if code, err := c.Wait(t.Context(), "svc"); code != -1 || err != nil {
		t.Errorf("Wait on a missing container: got %d, %v; want -1, nil", code, err)
	}
	err := c.Start(t.Context(), "svc")
	if err == nil {
		t.Fatal("Start of a missing container: got nil; want Podman's error")
	}
	if got, want := err.Error(), `no container with name or ID "svc" found: no such container`; got != want {
		t.Errorf("Start error: got %q; want Podman's message %q", got, want)
	}
}

func TestSpecGenerator(t *testing.T) {
	cs := launcher.ContainerSpec{
		Name:    "svc",
		Image:   "img",
		Command: []string{"serve"},
		Env:     []string{"A=1", "B=x=y", "A=2"},
		Ports:   []launcher.ContainerPort{{Port: 8080, Proto: spec.ProtoTCP}, {Port: 53, Proto: spec.ProtoUDP}},
		Mounts: []spec.Volume{
			{Source: "/srv", Target: "/srv", Options: []string{"ro"}},
			{Source: "data", Target: "/data"},
		},
		Labels: map[string]string{launcher.LabelService: "svc"},
		Memory: 64 << 20,
		CPUs:   1.5,
		User:   "1000:1000",
	}
	s, err := SpecGenerator(cs, false)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "svc" || s.Image != "img" || s.User != "1000:1000" || strings.Join(s.Command, " ") != "serve" {
		t.Errorf("name, image, user, command: got %q %q %q %q", s.Name, s.Image, s.User, s.Command)
	}
	if got := s.Labels[launcher.LabelService]; got != "svc" {
		t.Errorf("label %s: got %q; want svc", launcher.LabelService, got)
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
	if len(s.Mounts) != 1 || s.Mounts[0].Type != "bind" || s.Mounts[0].Source != "/srv" || s.Mounts[0].Destination != "/srv" ||
		!slices.Equal(s.Mounts[0].Options, []string{"ro"}) {
		t.Errorf("bind mounts: got %+v; want /srv bound ro at /srv", s.Mounts)
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
			s, err := SpecGenerator(launcher.ContainerSpec{Name: "svc", Image: "img", Network: tt.network}, false)
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
	f := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
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
	c := New(f.URL)
	img, ok, err := c.Image(t.Context(), "app")
	if err != nil || !ok {
		t.Fatalf("Image(app): got ok %v, %v; want true, nil", ok, err)
	}
	wantDigests := []string{"reg.example/app@sha256:bbbb", "other.example/app@sha256:cccc", "sha256:bbbb"}
	if img.ID != id || !slices.Equal(img.Digests, wantDigests) {
		t.Errorf("Image(app): got %+v; want ID %s, digests %q (repo digests without duplicates, then the manifest's)", img, id, wantDigests)
	}
	if got, ok, err := c.ImageID(t.Context(), "app"); got != id || !ok || err != nil {
		t.Errorf("ImageID(app): got %q, ok %v, %v; want %s, true, nil", got, ok, err, id)
	}
	if _, ok, err := c.Image(t.Context(), "missing"); ok || err != nil {
		t.Errorf("Image(missing): got ok %v, %v; want false, nil", ok, err)
	}
}

func TestPodmanTagUntag(t *testing.T) {
	var got []string
	f := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
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
	c := New(f.URL)
	if err := c.Tag(t.Context(), "abc", "localhost/app", "prev"); err != nil {
		t.Errorf("Tag: %v", err)
	}
	if err := c.Untag(t.Context(), "abc", "localhost/app", "prev"); err != nil {
		t.Errorf("Untag: %v", err)
	}
	for _, id := range []string{"gone", "other"} {
		if err := c.Untag(t.Context(), id, "localhost/app", "prev"); err != nil {
			t.Errorf("Untag(%s) of a missing name: got %v; want nil", id, err)
		}
	}
	if err := c.Untag(t.Context(), "broken", "localhost/app", "prev"); err == nil || err.Error() != "writing storage: disk on fire" {
		t.Errorf("Untag(broken): got %v; want Podman's message", err)
	}
	want := []string{"/images/abc/tag localhost/app:prev", "/images/abc/untag localhost/app:prev"}
	if len(got) < 2 || !slices.Equal(got[:2], want) {
		t.Errorf("requests: got %q; want %q first", got, want)
	}
}

// pullRequest is what the fake service saw of one pull.
type pullRequest struct {
	auth   bool   // X-Registry-Auth carried reg.example's credentials
	verify string // the tlsVerify query parameter
}

// pullService serves pulls, recording each by reference, and answers
// with the image ID "abc".
func pullService(t *testing.T) (*fakePodman, func() map[string]pullRequest) {
	t.Helper()
	var mu sync.Mutex
	seen := make(map[string]pullRequest)
	f := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/images/pull") {
			http.Error(w, "unexpected", http.StatusInternalServerError)
			return
		}
		// The header is base64 JSON of the credentials by registry.
		decoded, _ := base64.URLEncoding.DecodeString(r.Header.Get("X-Registry-Auth"))
		mu.Lock()
		seen[r.URL.Query().Get("reference")] = pullRequest{
			auth:   strings.Contains(string(decoded), "reg.example"),
			verify: r.URL.Query().Get("tlsVerify"),
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"abc","images":["abc"]}` + "\n"))
	})
	return f, func() map[string]pullRequest {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(seen)
	}
}

// writeAuthFile writes an auth file with credentials for reg.example.
func writeAuthFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(path, []byte(`{"auths":{"reg.example":{"auth":"dTpw"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPodmanPullOptions(t *testing.T) {
	authFile := writeAuthFile(t)
	tests := []struct {
		name    string
		opts    PullOptions
		want    pullRequest
		wantErr bool
	}{
		{name: "defaults", want: pullRequest{verify: ""}},
		{name: "auth file and no tls verify", opts: PullOptions{AuthFile: authFile, TLSVerify: ptrBool(false)}, want: pullRequest{auth: true, verify: "false"}},
		{name: "tls verify", opts: PullOptions{TLSVerify: ptrBool(true)}, want: pullRequest{verify: "true"}},
		{name: "missing auth file", opts: PullOptions{AuthFile: authFile + ".missing"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, pulls := pullService(t)
			err := New(f.URL).WithPull(tt.opts).Pull(t.Context(), "reg.example/app:1")
			if (err != nil) != tt.wantErr {
				t.Fatalf("Pull: got %v; want error %v", err, tt.wantErr)
			}
			got := pulls()
			if tt.wantErr {
				if len(got) != 0 || !errors.Is(err, os.ErrNotExist) || errors.Is(err, launcher.ErrImageNotFound) {
					t.Errorf("Pull with a missing auth file: got %d requests, %v; want none, a missing file, not ErrImageNotFound", len(got), err)
				}
				return
			}
			if got := got["reg.example/app:1"]; got != tt.want {
				t.Errorf("pull request: got %+v; want %+v", got, tt.want)
			}
		})
	}
}

// TestWithPull: copies made by WithPull share one connection (one ping)
// but pull with their own options; the client copied is unchanged.
func TestWithPull(t *testing.T) {
	authFile := writeAuthFile(t)
	f, pulls := pullService(t)
	base := New(f.URL)
	loose := base.WithPull(PullOptions{AuthFile: authFile, TLSVerify: ptrBool(false)})
	plain := loose.WithPull(PullOptions{})
	for _, p := range []struct {
		c   *Client
		ref string
	}{{loose, "reg.example/loose:1"}, {base, "reg.example/base:1"}, {plain, "reg.example/plain:1"}} {
		if err := p.c.Pull(t.Context(), p.ref); err != nil {
			t.Fatalf("Pull(%s): %v", p.ref, err)
		}
	}
	want := map[string]pullRequest{
		"reg.example/loose:1": {auth: true, verify: "false"},
		"reg.example/base:1":  {},
		"reg.example/plain:1": {},
	}
	if got := pulls(); !maps.Equal(got, want) {
		t.Errorf("pull requests: got %+v; want %+v", got, want)
	}
	if got := f.pings.Load(); got != 1 {
		t.Errorf("pings: got %d; want 1 (one connection for the client and its copies)", got)
	}
	if loose.URL() != base.URL() || plain.URL() != base.URL() {
		t.Errorf("URL of copies: got %q, %q; want %q", loose.URL(), plain.URL(), base.URL())
	}
}

// pullError is an error Podman answered a pull with, and what Pull should
// make of it.
type pullError struct {
	name string
	msg  string
	want error // nil: neither ErrImageNotFound nor ErrRegistryAuth
}

// pullErrors are what real Podman (4.3.1) answered pulls from registries
// on loopback with (see TestIntegrationPullErrors), and two it answers
// other registries with.
var pullErrors = []pullError{
	{name: "manifest unknown", want: launcher.ErrImageNotFound,
		msg: "initializing source docker://127.0.0.1:46777/x:1: reading manifest 1 in 127.0.0.1:46777/x: manifest unknown: manifest unknown"},
	{name: "name unknown", want: launcher.ErrImageNotFound,
		msg: "initializing source docker://127.0.0.1:44363/x:1: reading manifest 1 in 127.0.0.1:44363/x: name unknown: repository name not known to registry"},
	{name: "access denied", want: launcher.ErrImageNotFound,
		msg: "initializing source docker://127.0.0.1:38481/x:1: reading manifest 1 in 127.0.0.1:38481/x: denied: requested access to the resource is denied"},
	{name: "manifest 404 without a body", want: launcher.ErrImageNotFound,
		msg: "initializing source docker://127.0.0.1:39577/x:1: reading manifest 1 in 127.0.0.1:39577/x: StatusCode: 404, "},
	{name: "unauthorized", want: launcher.ErrRegistryAuth,
		msg: "initializing source docker://127.0.0.1:39477/x:1: reading manifest 1 in 127.0.0.1:39477/x: unauthorized: authentication required"},
	{name: "token refused", want: launcher.ErrRegistryAuth,
		msg: "initializing source docker://127.0.0.1:46833/x:1: unable to retrieve auth token: invalid username/password: unauthorized: authentication required"},
	{name: "connection refused",
		msg: `initializing source docker://127.0.0.1:1/x:1: pinging container registry 127.0.0.1:1: Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused`},
	{name: "https refused", msg: "initializing source docker://localhost/lazypod-does-not-exist:latest: pinging container registry localhost: " +
		`Get "https://localhost/v2/": dial tcp 127.0.0.1:443: connect: connection refused`},
	{name: "image named like an error, unreachable", msg: "initializing source docker://127.0.0.1:1/unauthorized/denied:1: " +
		`pinging container registry 127.0.0.1:1: Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused`},
	{name: "status 500",
		msg: "initializing source docker://127.0.0.1:37839/x:1: reading manifest 1 in 127.0.0.1:37839/x: received unexpected HTTP status: 500 Internal Server Error"},
	{name: "ping 500",
		msg: "initializing source docker://127.0.0.1:42123/x:1: pinging container registry 127.0.0.1:42123: invalid status code from registry 500 (Internal Server Error)"},
	{name: "no registry there",
		msg: "initializing source docker://127.0.0.1:37229/x:1: pinging container registry 127.0.0.1:37229: invalid status code from registry 404 (Not Found)"},
	{name: "plain http",
		msg: `initializing source docker://127.0.0.1:44039/x:1: pinging container registry 127.0.0.1:44039: Get "https://127.0.0.1:44039/v2/": http: server gave HTTP response to HTTPS client`},
	{name: "x509", msg: `initializing source docker://reg.example/app:1: pinging container registry reg.example: ` +
		`Get "https://reg.example/v2/": tls: failed to verify certificate: x509: certificate signed by unknown authority`},
	{name: "forbidden token",
		msg: "initializing source docker://127.0.0.1:38127/x:1: Requesting bearer token: invalid status code from registry 403 (Forbidden)"},
}

func TestClassifyPull(t *testing.T) {
	for _, tt := range pullErrors {
		t.Run(tt.name, func(t *testing.T) {
			err := classifyPull(errors.New(tt.msg))
			checkPullError(t, err, tt.msg, tt.want)
		})
	}
}

// TestPullClassifies: Pull marks what the service answers.
func TestPullClassifies(t *testing.T) {
	f := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("reference")
		i := slices.IndexFunc(pullErrors, func(e pullError) bool { return e.name == name })
		w.Header().Set("Content-Type", "application/json")
		if i < 0 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"error": pullErrors[i].msg})
	})
	c := New(f.URL)
	for _, tt := range pullErrors {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Pull(t.Context(), tt.name)
			checkPullError(t, err, tt.msg, tt.want)
		})
	}
}

// checkPullError checks that err keeps Podman's message msg and wraps
// want, or, if want is nil, neither of the pull sentinels.
func checkPullError(t *testing.T, err error, msg string, want error) {
	t.Helper()
	if err == nil {
		t.Fatal("got nil; want an error")
	}
	if !strings.Contains(err.Error(), strings.TrimSpace(msg)) {
		t.Errorf("message: got %q; want it to keep Podman's %q", err, msg)
	}
	for _, sentinel := range []error{launcher.ErrImageNotFound, launcher.ErrRegistryAuth} {
		if got := errors.Is(err, sentinel); got != (sentinel == want) {
			t.Errorf("errors.Is(%v): got %v; want %v", sentinel, got, !got)
		}
	}
}

func TestDefaultURL(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		euid   int
		exists bool
		want   string
	}{
		{name: "CONTAINER_HOST wins", env: map[string]string{"CONTAINER_HOST": "tcp://h:1", "XDG_RUNTIME_DIR": "/run/user/1000"}, euid: 1000, exists: true, want: "tcp://h:1"},
		{name: "rootless socket", env: map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, euid: 1000, exists: true, want: "unix:///run/user/1000/podman/podman.sock"},
		{name: "rootless socket missing", env: map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, euid: 1000, exists: false, want: "unix:///run/podman/podman.sock"},
		{name: "root", env: map[string]string{"XDG_RUNTIME_DIR": "/run/user/0"}, euid: 0, exists: true, want: "unix:///run/podman/podman.sock"},
		{name: "nothing set", euid: 1000, exists: true, want: "unix:///run/podman/podman.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := defaultURL(func(k string) string { return tt.env[k] }, tt.euid, func(string) bool { return tt.exists })
			if got != tt.want {
				t.Errorf("defaultURL: got %q; want %q", got, tt.want)
			}
		})
	}
}

func TestNewEmptyURL(t *testing.T) {
	t.Setenv("CONTAINER_HOST", "unix:///somewhere/podman.sock")
	if got, want := New("").URL(), "unix:///somewhere/podman.sock"; got != want {
		t.Errorf("New(\"\").URL: got %q; want DefaultURL's %q", got, want)
	}
}

func ptrBool(b bool) *bool { return &b }
