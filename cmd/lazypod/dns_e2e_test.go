package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFirstDNSQuery: Debian's dnsmasq, in an image imported from a
// debootstrapped rootfs (scripts/build-rootfs-images.sh), behind a
// socket-activated lazypod on a UDP socket. Each of three activations
// finds the container stopped, and dig's one query (+tries=1: no retry)
// through the cold start is answered: the default probe waits until
// dnsmasq has bound port 53, and the held datagram is sent then.
func TestFirstDNSQuery(t *testing.T) {
	e := needE2E(t)
	if _, err := exec.LookPath("dig"); err != nil {
		t.Fatal("dig not found: install the Debian package bind9-dnsutils (scripts/deps.sh does)")
	}
	image := os.Getenv("LAZYPOD_TEST_DNS_IMAGE")
	if image == "" {
		image = "localhost/lazypod-dnsmasq:latest"
	}
	name := uniqueName(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	state := t.TempDir()
	for i := range 3 {
		cmd := exec.Command("systemd-socket-activate", "--datagram", "-l", fmt.Sprintf("127.0.0.1:%d", port),
			e.bin, "serve", "--image", image, "--name", name, "--port", "53/udp",
			"--podman-url", e.podmanURL, "--state-dir", state,
			"--idle-timeout", "2s", "--udp-timeout", "1s", "--stop-timeout", "2s")
		logs, done := e.startProcess(t, name, cmd)
		waitBoundUDP(t, port)
		if e.podman(t, "ps", "--filter", "name=^"+name+"$", "--format", "{{.Names}}") != "" {
			t.Fatalf("activation %d: container %s runs before the first query; want it stopped", i+1, name)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		began := time.Now()
		out, _ := exec.CommandContext(ctx, "dig", "@127.0.0.1", "-p", strconv.Itoa(port), "lazypod.test",
			"+tries=1", "+timeout=5", "+short").CombinedOutput()
		cancel()
		took := time.Since(began)
		if got := strings.TrimSpace(string(out)); got != "10.1.2.3" {
			t.Fatalf("activation %d: dig's one query through the cold start: %q after %s; want 10.1.2.3\n%s", i+1, got, took.Round(time.Millisecond), logs.String())
		}
		t.Logf("FIGURE activation %d: first query answered in %s", i+1, took.Round(time.Millisecond))
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("activation %d: lazypod exited with %v; want 0 after the idle stop", i+1, err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("activation %d: lazypod did not exit within 60s of going idle", i+1)
		}
	}
}
