package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The wake contenders: one app's container, stopped or paused at idle,
// woken by the first request of an activation of lazypod serve with its
// default probe.
const (
	wakeStopped = "cold from stopped"
	wakePaused  = "wake from pause"
)

// apps are the servers whose wake from pause is measured against their
// cold start: the Go test server, and a JVM HTTP server (a few lines of
// com.sun.net.httpserver on Debian's openjdk-17), whose start-up is most
// of its cold start.
func (b *bench) apps() []struct{ name, image, port, body string } {
	return []struct{ name, image, port, body string }{
		{"go", b.cfg.Image, "8080", wantBody},
		{"jvm", b.cfg.JVMImage, "8080", "jvm"},
	}
}

// wakes measures, for each app, one cold start from stopped and one wake
// from pause, in round r's order.
func (b *bench) wakes(ctx context.Context, r int) error {
	for _, app := range b.apps() {
		fig := "wake-" + app.name
		for _, c := range order([]string{wakeStopped, wakePaused}, r) {
			d, err := b.wake(ctx, "lzbench-wake-"+app.name, app.image, app.port, app.body, c == wakePaused)
			if err != nil {
				return fmt.Errorf("%s %s: %w", fig, c, err)
			}
			b.add(fig, c, r, ms(d))
			b.logf("  %-14s %-18s %8.1f ms", fig, c, ms(d))
		}
	}
	return nil
}

// wake activates lazypod for container name (image, HTTP on port) with its
// container stopped or, with paused, paused at idle by an earlier
// activation, and returns connect to first byte of GET /. lazypod's
// SIGTERM then stops the container.
func (b *bench) wake(ctx context.Context, name, image, port, body string, paused bool) (time.Duration, error) {
	if err := b.ensureStopped(ctx, name); err != nil && !strings.Contains(err.Error(), "404") {
		return 0, err
	}
	if paused {
		// An activation that pauses the container at idle and exits
		// (the idle timeout's floor is 2s with exit on idle).
		p, addr, err := b.startApp(name, image, port, "pause", "2s")
		if err != nil {
			return 0, err
		}
		if _, got, err := firstByte(ctx, addr); err != nil || got != body {
			p.terminate(60 * time.Second)
			return 0, fmt.Errorf("preparing the pause: body %q, %v (see %s)", got, err, p.log)
		}
		if !p.waitExit(60 * time.Second) {
			p.terminate(10 * time.Second)
			return 0, fmt.Errorf("lazypod did not exit on idle (see %s)", p.log)
		}
		if state, err := b.pm.cli(ctx, "inspect", "--format", "{{.State.Status}}", name); err != nil || strings.TrimSpace(state) != "paused" {
			return 0, fmt.Errorf("container %s is %q after the idle pause, %v (see %s)", name, strings.TrimSpace(state), err, p.log)
		}
	}
	p, addr, err := b.startApp(name, image, port, "stop", "30m")
	if err != nil {
		return 0, err
	}
	d, got, err := firstByte(ctx, addr)
	if err == nil && got != body {
		err = fmt.Errorf("body %q; want %q", got, body)
	}
	if termErr := p.terminate(60 * time.Second); err == nil {
		err = termErr
	}
	if err != nil {
		return 0, fmt.Errorf("first request to %s: %w (see %s)", name, err, p.log)
	}
	return d, nil
}

// startApp socket-activates lazypod serve for container name of image on
// a free port forwarding to the container's port, with its default probe,
// and returns it and the address to connect to.
func (b *bench) startApp(name, image, port, idleAction, idle string) (*proc, string, error) {
	lp, err := freePort()
	if err != nil {
		return nil, "", err
	}
	args := activated([]int{lp}, nil, b.cfg.Lazypod, "serve", "--image", image, "--name", name,
		"--port", port, "--podman-url", b.cfg.PodmanURL, "--state-dir", b.path("state-"+name),
		"--idle-timeout", idle, "--idle-action", idleAction, "--stop-timeout", "5s")
	p, err := b.procs.spawn(name, b.path(name+".log"), args...)
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(lp, 10*time.Second); err != nil {
		p.terminate(10 * time.Second)
		return nil, "", err
	}
	return p, loop(lp), nil
}

// dnsProbes are the readiness probes of the first-query figure: none, the
// default for UDP ports before the listening probe, and listening.
var dnsProbes = []string{"none", "listening"}

// dnsAnswer is what dnsmasq in the DNS image answers for dnsName.
const (
	dnsName   = "lazypod.test"
	dnsAnswer = "10.1.2.3"
)

// firstQueries sends one DNS query with dig (+tries=1: no retry) through a
// cold start of dnsmasq behind lazypod on a UDP socket, FirstQueries times
// for each probe, and counts the queries answered.
func (b *bench) firstQueries(ctx context.Context) error {
	for i := range b.cfg.FirstQueries {
		for _, probe := range order(dnsProbes, i) {
			took, answered, err := b.firstQuery(ctx, probe)
			if err != nil {
				return fmt.Errorf("first query, probe %s: %w", probe, err)
			}
			b.add("dns-first-"+probe, "lazypod", i, ms(took))
			v := 0.0
			if answered {
				v = 1
			}
			b.add("dns-answered-"+probe, "lazypod", i, v)
			b.logf("  first query, probe %-9s answered %-5v in %7.1f ms", probe, answered, ms(took))
		}
	}
	return nil
}

// firstQuery activates lazypod for the DNS container, stopped, on a UDP
// socket, and asks dig once with a 5s timeout.
func (b *bench) firstQuery(ctx context.Context, probe string) (time.Duration, bool, error) {
	const name = "lzbench-dns"
	if err := b.ensureStopped(ctx, name); err != nil && !strings.Contains(err.Error(), "404") {
		return 0, false, err
	}
	port, err := freeUDPPort()
	if err != nil {
		return 0, false, err
	}
	args := []string{"systemd-socket-activate", "--datagram", "-l", fmt.Sprintf("127.0.0.1:%d", port),
		b.cfg.Lazypod, "serve", "--image", b.cfg.DNSImage, "--name", name, "--port", "53/udp",
		"--podman-url", b.cfg.PodmanURL, "--state-dir", b.path("state-" + name), "--ready", probe,
		"--idle-timeout", "30m", "--stop-timeout", "5s"}
	p, err := b.procs.spawn(name, b.path(name+".log"), args...)
	if err != nil {
		return 0, false, err
	}
	defer p.terminate(60 * time.Second)
	if err := waitBoundUDP(port, 10*time.Second); err != nil {
		return 0, false, err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(dctx, "dig", "@127.0.0.1", "-p", strconv.Itoa(port), dnsName,
		"+tries=1", "+timeout=5", "+short").CombinedOutput()
	took := time.Since(start)
	if err != nil && dctx.Err() != nil {
		return 0, false, fmt.Errorf("dig: %w", err)
	}
	// dig exits 9 when no answer came within its timeout.
	return took, strings.TrimSpace(string(out)) == dnsAnswer, nil
}
