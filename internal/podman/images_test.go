package podman

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
	"github.com/lazypod/lazypod/launcher"
)

// versionImages returns the IDs of localhost/lazypod-testserver:v1..v6,
// which scripts/build-images.sh builds, indexed by version number.
func versionImages(t *testing.T, c *Client) map[int]string {
	t.Helper()
	ids := make(map[int]string)
	for v := 1; v <= 6; v++ {
		ref := fmt.Sprintf("localhost/lazypod-testserver:v%d", v)
		img, ok, err := c.Image(t.Context(), ref)
		if err != nil {
			t.Fatalf("Image(%s): %v", ref, err)
		}
		if !ok {
			t.Fatalf("image %s missing: build it with scripts/build-images.sh DIR testserver", ref)
		}
		for w, id := range ids {
			if id == img.ID {
				t.Fatalf("images v%d and v%d: both %s; want distinct images", w, v, spec.ShortID(id))
			}
		}
		ids[v] = img.ID
	}
	return ids
}

func TestIntegrationImageTagUntag(t *testing.T) {
	c, _ := integrationClient(t)
	ids := versionImages(t, c)
	var b [4]byte
	rand.Read(b[:])
	repo := "localhost/lztest-tag-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Untag(ctx, ids[2], repo, "prev"); err != nil {
			t.Errorf("Untag in cleanup: %v", err)
		}
	})
	if err := c.Tag(t.Context(), ids[2], repo, "prev"); err != nil {
		t.Fatalf("Tag: %v", err)
	}
	info, ok, err := c.Image(t.Context(), repo+":prev")
	if err != nil || !ok || info.ID != ids[2] {
		t.Fatalf("Image(%s:prev): got %+v, ok %v, %v; want v2's ID", repo, info, ok, err)
	}
	t.Logf("v2: digests %q", info.Digests)
	for _, d := range info.Digests {
		if !strings.Contains(d, "sha256:") {
			t.Errorf("digest %q: want sha256:...", d)
		}
	}
	if err := c.Untag(t.Context(), ids[2], repo, "prev"); err != nil {
		t.Fatalf("Untag: %v", err)
	}
	if _, ok, err := c.Image(t.Context(), repo+":prev"); ok || err != nil {
		t.Errorf("Image after Untag: got ok %v, %v; want false, nil", ok, err)
	}
	if err := c.Untag(t.Context(), ids[2], repo, "prev"); err != nil {
		t.Errorf("Untag of a name the image lacks: got %v; want nil", err)
	}
	if err := c.Untag(t.Context(), strings.Repeat("0", 64), repo, "prev"); err != nil {
		t.Errorf("Untag of a missing image: got %v; want nil", err)
	}
}

// fakeRegistry serves handle as a registry on loopback, over plain HTTP,
// until the test ends, and returns its host:port.
func fakeRegistry(t *testing.T, handle http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handle}
	done := make(chan struct{})
	go serveRegistry(srv, ln, done)
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

func serveRegistry(srv *http.Server, ln net.Listener, done chan struct{}) {
	defer close(done)
	srv.Serve(ln)
}

// registryError answers the registry's ping (GET /v2/) with 200 and every
// other request with status and, if code is set, a registry error body.
func registryError(status int, code, message string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if code != "" {
			fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q,"detail":{}}]}`, code, message)
		}
	}
}

// tokenRefused asks for a bearer token, and refuses to give one.
func tokenRefused(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+r.Host+`/token",service="lztest"`)
	w.WriteHeader(http.StatusUnauthorized)
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestIntegrationPullErrors pulls from registries on loopback through real
// Podman: what the registry says it lacks is ErrImageNotFound, a refusal
// for credentials ErrRegistryAuth, and nothing else is either (the review
// finding: every pull error used to be ErrImageNotFound).
func TestIntegrationPullErrors(t *testing.T) {
	c, _ := integrationClient(t)
	tests := []struct {
		name     string
		registry func(t *testing.T) string // host:port
		verify   bool                      // verify TLS, as registries.conf says (TLSVerify nil)
		want     error                     // nil: neither sentinel
	}{
		{name: "manifest unknown", want: launcher.ErrImageNotFound, registry: func(t *testing.T) string {
			return fakeRegistry(t, registryError(http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown"))
		}},
		{name: "name unknown", want: launcher.ErrImageNotFound, registry: func(t *testing.T) string {
			return fakeRegistry(t, registryError(http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry"))
		}},
		{name: "access denied", want: launcher.ErrImageNotFound, registry: func(t *testing.T) string {
			return fakeRegistry(t, registryError(http.StatusUnauthorized, "DENIED", "requested access to the resource is denied"))
		}},
		{name: "manifest 404 without a body", want: launcher.ErrImageNotFound, registry: func(t *testing.T) string {
			return fakeRegistry(t, registryError(http.StatusNotFound, "", ""))
		}},
		{name: "unauthorized", want: launcher.ErrRegistryAuth, registry: func(t *testing.T) string {
			return fakeRegistry(t, registryError(http.StatusUnauthorized, "UNAUTHORIZED", "authentication required"))
		}},
		{name: "token refused", want: launcher.ErrRegistryAuth, registry: func(t *testing.T) string {
			return fakeRegistry(t, tokenRefused)
		}},
		{name: "nothing listens", registry: closedPort},
		{name: "status 500", registry: func(t *testing.T) string {
			return fakeRegistry(t, registryError(http.StatusInternalServerError, "", ""))
		}},
		{name: "no registry there", registry: func(t *testing.T) string {
			return fakeRegistry(t, http.NotFound)
		}},
		{name: "plain http", verify: true, registry: func(t *testing.T) string {
			return fakeRegistry(t, registryError(http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := tt.registry(t) + "/lztest/missing:1"
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			var verify *bool // nil: as registries.conf says
			if !tt.verify {
				verify = ptrBool(false)
			}
			err := c.WithPull(PullOptions{TLSVerify: verify}).Pull(ctx, ref)
			if err == nil {
				t.Fatalf("Pull(%s): got nil; want an error", ref)
			}
			t.Logf("Pull(%s): %v", ref, err)
			if errors.Is(err, launcher.ErrNoPodman) {
				t.Errorf("Pull: got %v; the Podman API answered, want no ErrNoPodman", err)
			}
			for _, sentinel := range []error{launcher.ErrImageNotFound, launcher.ErrRegistryAuth} {
				if got := errors.Is(err, sentinel); got != (sentinel == tt.want) {
					t.Errorf("errors.Is(%v): got %v; want %v", sentinel, got, !got)
				}
			}
		})
	}
}
