package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The quick start's image and port, as README has them. There is no
// registry here: the image is the test server answering whoamiBody on :80,
// built in the host's private Podman; the port is in the host's network,
// which the machine shares.
const (
	whoamiImage = "docker.io/traefik/whoami:latest"
	whoamiBody  = "whoami stand-in"
	whoamiPort  = 8080
)

// TestDebQuickStart proves README's quick start on the installed package:
// the package make deb builds is installed with apt, offline, in a Debian
// 12 machine booted with systemd (scripts/machine.sh: its
// podman-host-standin package provides podman), then the sh blocks of
// README's "## Quick start" run there as written, one command at a time
// and in order: each must exit 0, but systemctl status of an inactive unit
// (3). The first request is answered by the container; the service is then
// active (running) and lazypod status shows whoami ready; after the sleep
// the service is inactive, the container stopped and the socket
// listening; list-timers lists whoami-update.timer. Last, dpkg --purge
// lazypod must leave nothing of the package's: none of its files, no
// generated unit, no unit systemd still knows, no state; the definition
// file, the user's, stays.
func TestDebQuickStart(t *testing.T) {
	e := needE2E(t)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := quickStart(string(readme))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	needMakeDeb(t)

	// The names are the quick start's, not unique: what an interrupted run
	// left is removed first, and all of it at the end, after the machine is
	// stopped (registered before it).
	removeWhoami := func() error {
		var errs []error
		for _, args := range [][]string{
			{"rm", "--force", "--ignore", "--time", "0", "systemd-whoami", "whoami.lazypod-pin"},
			{"rmi", "--ignore", whoamiImage, "localhost/lazypod-pin/whoami:previous"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			out, err := exec.CommandContext(ctx, "podman", append([]string{"--remote", "--url", e.podmanURL}, args...)...).CombinedOutput()
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("podman %s: %w\n%s", strings.Join(args, " "), err, out))
			}
		}
		return errors.Join(errs...)
	}
	t.Cleanup(func() {
		if err := removeWhoami(); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})

	// No lazypod bound in: the package's /usr/bin/lazypod is the one.
	m := needMachine(t, e2eEnv{podmanURL: e.podmanURL, image: e.image}, uniqueName(t))
	t.Cleanup(func() {
		if !t.Failed() || m.stopped {
			return
		}
		t.Logf("the machine's journal:\n%s", m.journal("whoami.socket", "whoami.service", "podman.service"))
		// Stopping the service before the machine leaves Podman's API up for its stop.
		m.exec("systemctl", "stop", "whoami.socket", "whoami.service")
	})
	if err := removeWhoami(); err != nil {
		t.Fatalf("removing what an earlier run left: %v", err)
	}
	if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", whoamiPort)); err != nil {
		t.Fatalf("the quick start's port is taken here (%v): stop what listens on it (make demo?)", err)
	} else {
		l.Close()
	}

	start := time.Now()
	deb := makeDeb(t)
	e.podman(t, "build", "--format", "docker", "-t", whoamiImage, whoamiContext(t, e.image))
	t.Logf("made %s and %s in %s", filepath.Base(deb), whoamiImage, time.Since(start).Round(time.Millisecond))

	// Installed as README's Install section says, from ./build/deb.
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	m.run(t, "mkdir", "-p", "/root/build/deb")
	m.writeFile(t, "/root/build/deb/"+filepath.Base(deb), b)
	t.Logf("apt install:\n%s", m.run(t, "bash", "-c", "cd /root && apt install ./build/deb/lazypod_*.deb"))
	if bin := m.run(t, "bash", "-c", "command -v lazypod"); bin != "/usr/bin/lazypod" {
		t.Fatalf("lazypod is %q in the machine after apt install; want the package's /usr/bin/lazypod", bin)
	}

	// What the quick start's commands must show, in the order they come:
	// each check is of the next command that begins with prefix.
	checks := []struct {
		prefix, when string
		verify       func(out string)
	}{
		{"curl ", "the first request", func(out string) {
			if out != whoamiBody {
				t.Fatalf("the first request was answered %q; want %q, the container's", out, whoamiBody)
			}
			if c := runningContainers(t, e, "systemd-whoami"); c != "systemd-whoami" {
				t.Fatalf("running containers named systemd-whoami: %q after the first request; want it running", c)
			}
		}},
		{"systemctl status whoami.service", "after the first request", func(out string) {
			if !strings.Contains(out, "Active: active (running)") {
				t.Errorf("systemctl status whoami.service after the first request does not say active (running):\n%s", out)
			}
		}},
		{"lazypod status", "after the first request", func(out string) {
			if s := statusState(out, "whoami"); s != "ready" {
				t.Errorf("lazypod status after the first request shows whoami %q; want ready (running):\n%s", s, out)
			}
		}},
		{"systemctl status whoami.service", "after the idle stop", func(out string) {
			if !strings.Contains(out, "Active: inactive (dead)") {
				t.Errorf("systemctl status whoami.service after the sleep does not say inactive (dead):\n%s", out)
			}
			if c := runningContainers(t, e, "systemd-whoami"); c != "" {
				t.Errorf("container %s still runs after the sleep", c)
			}
			if pids := m.lazypodPIDs(t); len(pids) > 0 {
				t.Errorf("lazypod still runs in the machine (pids %v) after the sleep", pids)
			}
			if s := m.state("whoami.socket"); s != "active" {
				t.Errorf("whoami.socket is %q after the sleep; want active", s)
			}
			waitListening(t, whoamiPort)
		}},
		{"lazypod status", "after the idle stop", func(out string) {
			if s := statusState(out, "whoami"); s != "idle" {
				t.Errorf("lazypod status after the sleep shows whoami %q; want idle (stopped):\n%s", s, out)
			}
		}},
		{"systemctl list-timers whoami-update.timer", "the update timer", func(out string) {
			if !regexp.MustCompile(`(?m)\swhoami-update\.timer\s+whoami-update\.service$`).MatchString(out) {
				t.Errorf("systemctl list-timers does not list whoami-update.timer:\n%s", out)
			}
		}},
	}
	next := 0
	for i, cmd := range cmds {
		start := time.Now()
		out, code := m.shell(t, cmd)
		t.Logf("quick start %d/%d: %s\n%s\n(exit %d, %s)", i+1, len(cmds), cmd, out, code, time.Since(start).Round(time.Millisecond))
		inactive := code == 3 && strings.HasPrefix(cmd, "systemctl status ") && strings.Contains(out, "Active: inactive")
		if code != 0 && !inactive {
			first, _, _ := strings.Cut(cmd, "\n")
			t.Fatalf("quick start %d/%d, %s, exited %d; want 0 (3 only for systemctl status of an inactive unit):\n%s", i+1, len(cmds), first, code, out)
		}
		if next < len(checks) && strings.HasPrefix(cmd, checks[next].prefix) {
			checks[next].verify(out)
			next++
		}
	}
	if next < len(checks) {
		t.Fatalf("the quick start has no command beginning %q for %s after the ones checked before", checks[next].prefix, checks[next].when)
	}

	// The purge.
	// Its files, less "/.", the root.
	files := slices.DeleteFunc(strings.Split(m.run(t, "dpkg", "-L", "lazypod"), "\n"), func(f string) bool { return f == "/." })
	const generated = "find /run/systemd/generator /run/systemd/generator.early /run/systemd/generator.late -name 'whoami*' 2>/dev/null || true"
	if g := m.run(t, "sh", "-c", generated); !strings.Contains(g, "/whoami.socket") {
		t.Fatalf("no whoami.socket among the generator's files before the purge:\n%s", g)
	}
	t.Logf("dpkg --purge lazypod:\n%s", m.run(t, "dpkg", "--purge", "lazypod"))
	// A directory may stay if another package has it too (/lib too, a
	// link to usr/lib), or if it holds what is not the package's (the
	// user's definition in /etc/containers/systemd).
	left := m.run(t, append([]string{"sh", "-c", `for f; do
		if [ -d "$f" ]; then dpkg -S "$f" >/dev/null 2>&1 || [ -n "$(ls -A "$f")" ] || echo "$f"
		elif [ -e "$f" ] || [ -L "$f" ]; then echo "$f"; fi
	done`, "sh"}, files...)...)
	if left != "" {
		t.Errorf("dpkg --purge lazypod left files of its own:\n%s", left)
	}
	if g := m.run(t, "sh", "-c", generated); g != "" {
		t.Errorf("the generator's units are still there after the purge:\n%s", g)
	}
	for _, args := range [][]string{
		{"systemctl", "list-units", "--all", "--plain", "--no-legend", "whoami*"},
		{"systemctl", "list-unit-files", "--no-legend", "whoami*"},
	} {
		if out, _ := m.exec(args...); out != "" { // list-unit-files exits 1 when none match
			t.Errorf("systemd still knows whoami units after the purge (%s):\n%s", strings.Join(args, " "), out)
		}
	}
	if listeningNow(t, whoamiPort) {
		t.Errorf("port %d still listening after the purge", whoamiPort)
	}
	if out, err := m.exec("ls", "-A", "/var/lib/lazypod"); err == nil {
		t.Errorf("/var/lib/lazypod, lazypod's state, is still there after the purge:\n%s", out)
	}
	if _, err := m.exec("test", "-f", "/etc/containers/systemd/whoami.lazypod"); err != nil {
		t.Errorf("the purge removed /etc/containers/systemd/whoami.lazypod, the user's definition")
	}
	t.Logf("left in Podman after the purge: %q",
		e.podman(t, "ps", "--all", "--filter", "name=whoami", "--format", "{{.Names}} ({{.Status}})"))
}

// quickStart returns the commands of the sh blocks of readme's "## Quick
// start" section, in order. The section must say that TestDebQuickStart
// runs them.
func quickStart(readme string) ([]string, error) {
	_, section, ok := strings.Cut(readme, "\n## Quick start\n")
	if !ok {
		return nil, errors.New(`no "## Quick start" section`)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	if !strings.Contains(section, "TestDebQuickStart") {
		return nil, errors.New("the quick start does not say that TestDebQuickStart runs it")
	}
	var cmds []string
	for rest := section; ; {
		var block string
		if _, rest, ok = strings.Cut(rest, "\n```sh\n"); !ok {
			break
		}
		if block, rest, ok = strings.Cut(rest, "\n```\n"); !ok {
			return nil, errors.New("the quick start has an sh block with no end")
		}
		c, err := shellCommands(block)
		if err != nil {
			return nil, fmt.Errorf("the quick start's sh block %q: %w", block, err)
		}
		cmds = append(cmds, c...)
	}
	if len(cmds) == 0 {
		return nil, errors.New("no sh block in the quick start")
	}
	return cmds, nil
}

// heredoc finds a here-document's operator (not a here-string's <<<) and
// its delimiter, quoted or not.
var heredoc = regexp.MustCompile(`(?:^|[^<])<<(-?)\s*(?:'(\w+)'|"(\w+)"|(\w+))`)

// shellCommands splits a block of shell into its commands: one a line,
// with a line that ends in a backslash joined to the next and a
// here-document kept with its command. Blank lines and lines of comment
// only are left out; a comment after a command stays with it.
func shellCommands(block string) ([]string, error) {
	lines := strings.Split(block, "\n")
	var cmds []string
	for i := 0; i < len(lines); i++ {
		cmd := lines[i]
		if t := strings.TrimSpace(cmd); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		for strings.HasSuffix(cmd, `\`) && i+1 < len(lines) {
			i++
			cmd += "\n" + lines[i]
		}
		if m := heredoc.FindStringSubmatch(cmd); m != nil {
			delim := m[2] + m[3] + m[4]
			for {
				i++
				if i == len(lines) {
					return nil, fmt.Errorf("no %s ending the here-document of %q", delim, lines[0])
				}
				cmd += "\n" + lines[i]
				if l := lines[i]; l == delim || m[1] == "-" && strings.TrimLeft(l, "\t") == delim {
					break
				}
			}
		}
		cmds = append(cmds, cmd)
	}
	return cmds, nil
}

// shell runs cmd with bash in the machine and returns its output, trimmed,
// and its exit status.
func (m *machine) shell(t *testing.T, cmd string) (string, int) {
	t.Helper()
	out, err := m.exec("bash", "-c", cmd)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return out, exit.ExitCode()
	}
	t.Fatalf("in the machine, %s: %v\n%s", cmd, err, out)
	return "", 0
}

// statusState returns the STATE of service name in lazypod status's table,
// or "" if it has no row.
func statusState(table, name string) string {
	for line := range strings.Lines(table) {
		if f := strings.Fields(line); len(f) > 1 && f[0] == name {
			return f[1]
		}
	}
	return ""
}

// makeDeb builds the package with make deb into a temporary DEBDIR and
// returns its path.
func makeDeb(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "make", "-C", "../..", "--no-print-directory", "-o", "build", "deb", "DEBDIR="+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "lazypod_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %q; want one lazypod_*.deb", debs)
	}
	return debs[0]
}

// whoamiContext writes the build context of the quick start's image: the
// test server from base, answering whoamiBody on :80.
func whoamiContext(t *testing.T, base string) string {
	t.Helper()
	dir := t.TempDir()
	containerfile := fmt.Sprintf(`# A stand-in for %s: no registry here.
FROM %s
EXPOSE 80
HEALTHCHECK NONE
ENTRYPOINT ["/testserver", "-http", ":80", "-version", %q]
`, whoamiImage, base, whoamiBody)
	if err := os.WriteFile(filepath.Join(dir, "Containerfile"), []byte(containerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// listeningNow says whether something listens on the loopback TCP port
// now, reading /proc/net/tcp.
func listeningNow(t *testing.T, port int) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), fmt.Sprintf(":%04X 00000000:0000 0A", port))
}

// TestShellCommands splits sh blocks as TestDebQuickStart does.
func TestShellCommands(t *testing.T) {
	tests := []struct {
		name, block string
		want        []string
	}{
		{"lines", "a\n\nb # says b\n", []string{"a", "b # says b"}},
		{"comment lines", "# first\na\n  # indented\n", []string{"a"}},
		{"continuation", "a \\\n  b\nc", []string{"a \\\n  b", "c"}},
		{"heredoc", "cat >f <<'EOF'\nx\n# not a comment\n\nEOF\nb", []string{"cat >f <<'EOF'\nx\n# not a comment\n\nEOF", "b"}},
		{"heredoc unquoted", "cat <<END >f\nEOF\nEND", []string{"cat <<END >f\nEOF\nEND"}},
		{"heredoc tabs", "cat <<-EOF\n\tx\n\tEOF\nb", []string{"cat <<-EOF\n\tx\n\tEOF", "b"}},
		{"here-string", "cat <<<x", []string{"cat <<<x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := shellCommands(tt.block)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
	if _, err := shellCommands("cat <<EOF\nx\n"); err == nil {
		t.Error("got no error for a here-document with no end; want one")
	}
}
