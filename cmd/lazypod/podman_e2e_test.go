package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPodmanDownAtStart starts lazypod while the Podman API is not there:
// lazypod keeps serving, the connection that arrives is closed with the
// reason and what to do, and once the API appears the next connection is
// served. (Exiting instead would have systemd restart lazypod at every
// connection until the start limit fails the socket.)
func TestPodmanDownAtStart(t *testing.T) {
	e := needE2E(t)
	real, ok := strings.CutPrefix(e.podmanURL, "unix://")
	if !ok {
		t.Skipf("needs a unix socket Podman URL, have %s", e.podmanURL)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "podman.sock") // missing for now
	name := uniqueName(t)
	web := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	cmd := exec.Command(e.bin, "serve", "--image", e.image, "--name", name,
		"--listen", "web="+web, "--port", "web=8080", "--podman-url", "unix://"+sock,
		"--state-dir", t.TempDir(), "--idle-timeout", "2s", "--stop-timeout", "1s", "--env", "VERSION=podman-back")
	logs, done := e.startProcess(t, name, cmd)

	began := time.Now()
	if body, err := httpGet(t, "http://"+web+"/"); err == nil {
		t.Fatalf("request with no Podman API: answered %q; want the connection closed", body)
	}
	took := time.Since(began)
	select {
	case err := <-done:
		t.Fatalf("lazypod exited (%v) with the Podman API down; want it serving", err)
	default:
	}
	if out := logs.String(); !strings.Contains(out, "podman API not reachable") || !strings.Contains(out, "start the Podman API") {
		t.Fatalf("lazypod's log does not say the API is unreachable and what to do:\n%s", out)
	}
	figure(t, "podman-down-at-start", fmt.Sprintf("connection closed after %s with the reason logged; lazypod kept running", took.Round(time.Millisecond)),
		"--podman-url naming a socket that does not exist yet")

	if err := os.Symlink(real, sock); err != nil {
		t.Fatal(err)
	}
	if body, err := httpGet(t, "http://"+web+"/"); err != nil || body != "podman-back\n" {
		t.Fatalf("request once the API is there: %q, %v; want %q", body, err, "podman-back\n")
	}
}
