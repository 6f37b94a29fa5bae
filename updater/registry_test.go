package updater

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.podman.io/image/v5/types"
)

// The registry integration tests start Debian's docker-registry on
// 127.0.0.1 with its storage in a temp dir, and push images with skopeo.
// They skip when either is missing, unless LAZYPOD_TEST_REQUIRE=1.

// needTools skips, or fails under LAZYPOD_TEST_REQUIRE=1, when a program
// is missing, and returns the programs' paths.
func needTools(t *testing.T, names ...string) []string {
	t.Helper()
	var paths []string
	for _, name := range names {
		p, err := exec.LookPath(name)
		if err != nil {
			if os.Getenv("LAZYPOD_TEST_REQUIRE") == "1" {
				t.Fatalf("%s not found but LAZYPOD_TEST_REQUIRE=1: install the Debian package of that name", name)
			}
			t.Skipf("integration test: %s not found (install the Debian package of that name)", name)
		}
		paths = append(paths, p)
	}
	return paths
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRegistry starts docker-registry on 127.0.0.1 and returns its
// host:port once it answers; it is killed when the test ends. extra is
// appended to its configuration file.
func startRegistry(t *testing.T, bin, extra string) string {
	t.Helper()
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken meanwhile
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		conf := filepath.Join(dir, fmt.Sprintf("config-%d.yml", attempt))
		yml := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n%s",
			filepath.Join(dir, "storage"), addr, extra)
		if err := os.WriteFile(conf, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		cmd := exec.Command(bin, "serve", conf)
		cmd.Stdout = &logs
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting docker-registry: %v", err)
		}
		exited := make(chan struct{})
		var waitErr error
		go func() {
			waitErr = cmd.Wait()
			close(exited)
		}()
		stop := func() {
			cmd.Process.Kill()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Errorf("docker-registry pid %d did not exit within 10s of SIGKILL", cmd.Process.Pid)
			}
		}
		lastErr = waitRegistry(addr, exited, &waitErr, 15*time.Second)
		if lastErr == nil {
			t.Cleanup(stop)
			return addr
		}
		stop()
		lastErr = fmt.Errorf("%w; its output: %s", lastErr, logs.String())
	}
	t.Fatalf("starting docker-registry: %v", lastErr)
	return ""
}

// waitRegistry polls GET /v2/ until it answers 200, the registry exits,
// or timeout passes.
func waitRegistry(addr string, exited <-chan struct{}, waitErr *error, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			// 401: up, and asking for credentials.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		select {
		case <-exited:
			return fmt.Errorf("docker-registry exited: %v", *waitErr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("docker-registry at %s not answering after %v: %v", addr, timeout, err)
		}
	}
}

// writeOCILayout writes a minimal OCI image layout in dir, tagged
// "latest": one empty layer and a config whose environment holds
// version, so each version has its own digest.
func writeOCILayout(t *testing.T, dir, version string) {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	blob := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(blobs, h), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return "sha256:" + h, len(b)
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	layer := make([]byte, 1024) // an empty tar archive: two zero blocks
	layerDigest, layerSize := blob(layer)
	config := mustJSON(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Env": []string{"VERSION=" + version}, "Cmd": []string{"/serve"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	configDigest, configSize := blob(config)
	manifest := mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": configSize},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": layerSize}},
	})
	manifestDigest, manifestSize := blob(manifest)
	index := mustJSON(map[string]any{
		"schemaVersion": 2,
		"manifests": []any{map[string]any{
			"mediaType":   "application/vnd.oci.image.manifest.v1+json",
			"digest":      manifestDigest,
			"size":        manifestSize,
			"annotations": map[string]string{"org.opencontainers.image.ref.name": "latest"},
		}},
	})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
}

// skopeo runs skopeo with an accept-anything signature policy and returns
// its standard output.
func skopeo(t *testing.T, bin string, args ...string) string {
	t.Helper()
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--policy", policy}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// push pushes a new image version to ref on the registry and returns the
// manifest digest skopeo inspect reports for ref afterwards. creds is
// USER:PASSWORD, or empty for none.
func push(t *testing.T, bin, ref, version, creds string) string {
	t.Helper()
	layout := t.TempDir()
	writeOCILayout(t, layout, version)
	copyArgs := []string{"copy", "--quiet", "--dest-tls-verify=false"}
	inspectArgs := []string{"inspect", "--tls-verify=false"}
	if creds != "" {
		copyArgs = append(copyArgs, "--dest-creds", creds)
		inspectArgs = append(inspectArgs, "--creds", creds)
	}
	skopeo(t, bin, append(copyArgs, "oci:"+layout+":latest", "docker://"+ref)...)
	var info struct{ Digest string }
	out := skopeo(t, bin, append(inspectArgs, "docker://"+ref)...)
	if err := json.Unmarshal([]byte(out), &info); err != nil || !strings.HasPrefix(info.Digest, "sha256:") {
		t.Fatalf("skopeo inspect %s: digest %q, %v in %s", ref, info.Digest, err, out)
	}
	return info.Digest
}

// emptyAuthFile returns an auth file with no credentials, so the tests do
// not read the user's.
func emptyAuthFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(p, []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDockerRegistryDigest(t *testing.T) {
	bins := needTools(t, "docker-registry", "skopeo")
	addr := startRegistry(t, bins[0], "")
	r := &DockerRegistry{AuthFile: emptyAuthFile(t), TLSVerify: ptr(false), Timeout: 20 * time.Second}
	ref := addr + "/lazypod/web:latest"

	tests := []struct {
		name    string
		version string
	}{
		{name: "first push", version: "v1"},
		{name: "changed push", version: "v2"},
	}
	var prev string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := push(t, bins[1], ref, tt.version, "")
			got, err := r.Digest(t.Context(), ref)
			if err != nil {
				t.Fatalf("Digest(%s): %v", ref, err)
			}
			if got != want {
				t.Errorf("Digest(%s) = %s; want %s (skopeo inspect)", ref, got, want)
			}
			if got == prev {
				t.Errorf("Digest(%s) = %s after a changed push; want a new digest", ref, got)
			}
			prev = got
		})
	}

	t.Run("no tag means latest", func(t *testing.T) {
		got, err := r.Digest(t.Context(), addr+"/lazypod/web")
		if err != nil || got != prev {
			t.Errorf("Digest without tag = %s, %v; want %s, nil", got, err, prev)
		}
	})
	t.Run("unknown tag", func(t *testing.T) {
		got, err := r.Digest(t.Context(), addr+"/lazypod/web:nope")
		if err == nil {
			t.Fatalf("Digest of an unknown tag = %s, nil; want an error", got)
		}
		t.Logf("Digest error: %v", err)
		if !strings.Contains(err.Error(), addr+"/lazypod/web:nope") {
			t.Errorf("error %q does not name the reference", err)
		}
	})
	t.Run("tls verified", func(t *testing.T) {
		// The registry speaks plain HTTP: with TLS verification on, the
		// check fails rather than fall back.
		r := &DockerRegistry{AuthFile: emptyAuthFile(t), Timeout: 10 * time.Second}
		got, err := r.Digest(t.Context(), ref)
		if err == nil {
			t.Fatalf("Digest with TLS verification of a plain HTTP registry = %s, nil; want an error", got)
		}
		t.Logf("Digest error: %v", err)
	})
}

// The password in testdata/htpasswd.
const testCreds = "lazypod:lazypod-secret"

// authFile returns an auth file holding testCreds for registry addr.
func authFile(t *testing.T, addr string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auth.json")
	b, err := json.Marshal(map[string]any{"auths": map[string]any{
		addr: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(testCreds))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDockerRegistryAuth(t *testing.T) {
	bins := needTools(t, "docker-registry", "skopeo")
	htpasswd, err := filepath.Abs("testdata/htpasswd")
	if err != nil {
		t.Fatal(err)
	}
	addr := startRegistry(t, bins[0], fmt.Sprintf("auth:\n  htpasswd:\n    realm: lazypod-test\n    path: %s\n", htpasswd))
	ref := addr + "/lazypod/private:latest"
	want := push(t, bins[1], ref, "v1", testCreds)
	good := authFile(t, addr)
	empty := emptyAuthFile(t)

	tests := []struct {
		name     string
		authFile string
		env      map[string]string
		wantErr  string
	}{
		{name: "auth file", authFile: good},
		{name: "REGISTRY_AUTH_FILE", env: map[string]string{"REGISTRY_AUTH_FILE": good}},
		{name: "auth file wins over REGISTRY_AUTH_FILE", authFile: good, env: map[string]string{"REGISTRY_AUTH_FILE": empty}},
		{name: "no credentials", authFile: empty, wantErr: "authentication required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Keep the user's own auth files out of it.
			t.Setenv("REGISTRY_AUTH_FILE", "")
			t.Setenv("DOCKER_CONFIG", t.TempDir())
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			r := &DockerRegistry{AuthFile: tt.authFile, TLSVerify: ptr(false), Timeout: 20 * time.Second}
			got, err := r.Digest(t.Context(), ref)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Digest = %s, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != want {
				t.Errorf("Digest = %s, %v; want %s, nil", got, err, want)
			}
		})
	}
}

func TestSystemContext(t *testing.T) {
	tests := []struct {
		name       string
		r          DockerRegistry
		env        map[string]string
		wantAuth   string
		wantDocker string
		wantSkip   types.OptionalBool // Undefined: as registries.conf says
	}{
		{name: "defaults"},
		{name: "auth file", r: DockerRegistry{AuthFile: "/a.json"}, env: map[string]string{"REGISTRY_AUTH_FILE": "/env.json"}, wantAuth: "/a.json"},
		{name: "REGISTRY_AUTH_FILE", env: map[string]string{"REGISTRY_AUTH_FILE": "/env.json", "DOCKER_CONFIG": "/d"}, wantAuth: "/env.json"},
		{name: "DOCKER_CONFIG", env: map[string]string{"DOCKER_CONFIG": "/d"}, wantDocker: "/d/config.json"},
		{name: "tls-verify=false", r: DockerRegistry{TLSVerify: ptr(false)}, wantSkip: types.OptionalBoolTrue},
		{name: "tls-verify=true", r: DockerRegistry{TLSVerify: ptr(true)}, wantSkip: types.OptionalBoolFalse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := tt.r.systemContext(func(k string) string { return tt.env[k] })
			if sys.AuthFilePath != tt.wantAuth || sys.DockerCompatAuthFilePath != tt.wantDocker {
				t.Errorf("auth paths = %q, %q; want %q, %q", sys.AuthFilePath, sys.DockerCompatAuthFilePath, tt.wantAuth, tt.wantDocker)
			}
			if got := sys.DockerInsecureSkipTLSVerify; got != tt.wantSkip {
				t.Errorf("DockerInsecureSkipTLSVerify = %v; want %v", got, tt.wantSkip)
			}
		})
	}
}

func TestDockerRegistryDown(t *testing.T) {
	refused := fmt.Sprintf("127.0.0.1:%d", freePort(t))

	hanging, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hanging.Close() })
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := hanging.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	t.Cleanup(func() {
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	})

	tests := []struct {
		name    string
		addr    string
		timeout time.Duration
		within  time.Duration
		wantErr string
	}{
		{name: "refused", addr: refused, timeout: 10 * time.Second, within: 5 * time.Second, wantErr: "connection refused"},
		{name: "never answers", addr: hanging.Addr().String(), timeout: 500 * time.Millisecond, within: 5 * time.Second, wantErr: "no answer within 500ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &DockerRegistry{AuthFile: emptyAuthFile(t), TLSVerify: ptr(false), Timeout: tt.timeout}
			ref := tt.addr + "/lazypod/web:latest"
			start := time.Now()
			got, err := r.Digest(t.Context(), ref)
			took := time.Since(start)
			if err == nil {
				t.Fatalf("Digest = %s, nil; want an error", got)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), ref) {
				t.Errorf("Digest error = %q; want it to name %s and contain %q", err, ref, tt.wantErr)
			}
			t.Logf("Digest error after %v: %v", took.Round(time.Millisecond), err)
			if took > tt.within {
				t.Errorf("Digest took %v; want under %v", took, tt.within)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestDockerRegistryRegistriesConf checks the registry settings of
// registries.conf as podman pull reads them: the file
// CONTAINERS_REGISTRIES_CONF names, the registries.conf.d drop-ins (here
// the user's, under $HOME), insecure = true letting a plain-HTTP loopback
// registry answer when TLSVerify is unset, --tls-verify=true verifying
// anyway, and blocked = true refusing the registry.
func TestDockerRegistryRegistriesConf(t *testing.T) {
	bins := needTools(t, "docker-registry", "skopeo")
	addr := startRegistry(t, bins[0], "")
	ref := addr + "/lazypod/web:latest"
	want := push(t, bins[1], ref, "v1", "")
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := write("empty.conf", "")
	insecure := write("insecure.conf", fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", addr))
	blocked := write("blocked.conf", fmt.Sprintf("[[registry]]\nlocation = %q\nblocked = true\n", addr))
	home := filepath.Join(dir, "home")
	write("home/.config/containers/registries.conf.d/50-local.conf", fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", addr))
	tests := []struct {
		name, conf, home string
		verify           *bool
		wantErr          string // "" for the digest
	}{
		{name: "not insecure: HTTPS expected", conf: empty, home: dir, wantErr: "server gave HTTP response to HTTPS client"},
		{name: "insecure in the file named", conf: insecure, home: dir},
		{name: "tls-verify=true over insecure", conf: insecure, home: dir, verify: ptr(true), wantErr: "server gave HTTP response to HTTPS client"},
		{name: "tls-verify=false", conf: empty, home: dir, verify: ptr(false)},
		{name: "blocked", conf: blocked, home: dir, verify: ptr(false), wantErr: "is blocked in " + blocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CONTAINERS_REGISTRIES_CONF", tt.conf)
			t.Setenv("HOME", tt.home)
			r := &DockerRegistry{AuthFile: emptyAuthFile(t), TLSVerify: tt.verify, Timeout: 20 * time.Second}
			got, err := r.Digest(t.Context(), ref)
			switch {
			case tt.wantErr == "" && (err != nil || got != want):
				t.Errorf("Digest = %q, %v; want %s", got, err, want)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Digest = %q, %v; want an error containing %q", got, err, tt.wantErr)
			}
		})
	}
	// The user's drop-ins are under $HOME, which the library reads once
	// per process: a process of its own.
	t.Run("insecure in a drop-in", func(t *testing.T) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRegistryDigestHelper$", "-test.v")
		cmd.Env = append(os.Environ(), "HOME="+home, "CONTAINERS_REGISTRIES_CONF="+empty, "LAZYPOD_DIGEST_OF="+ref)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "digest "+want) {
			t.Errorf("Digest with the drop-in: %v\n%s\nwant %s", err, out, want)
		}
	})
}

// TestRegistryDigestHelper prints the digest of $LAZYPOD_DIGEST_OF, for
// TestDockerRegistryRegistriesConf; it does nothing otherwise.
func TestRegistryDigestHelper(t *testing.T) {
	ref := os.Getenv("LAZYPOD_DIGEST_OF")
	if ref == "" {
		return
	}
	d, err := (&DockerRegistry{AuthFile: emptyAuthFile(t), Timeout: 20 * time.Second}).Digest(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("digest %s", d)
}
