package units

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// needTool returns the path of a systemd tool, or skips the test saying
// why; under LAZYPOD_TEST_REQUIRE=1 a missing tool fails it.
func needTool(t *testing.T, name string, paths ...string) string {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("LAZYPOD_TEST_REQUIRE") == "1" {
		t.Fatalf("%s not found, and LAZYPOD_TEST_REQUIRE=1: install systemd", name)
	}
	t.Skipf("%s not found: install systemd to check the generated units with it", name)
	return ""
}

// writeUnits renders file with Binary=/bin/true, so that ExecStart= names
// a program that exists, into a new directory that any user can read.
func writeUnits(t *testing.T, file string, user bool) (string, *Definition, RenderOptions) {
	t.Helper()
	o := RenderOptions{Binary: "/bin/true", User: user}
	d, err := ParseFile(filepath.Join("testdata", file), o)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Render(d, o)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "lazypod-units-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if d.Template {
			// systemd checks a template's instance: 8081, a port.
			f.Name = strings.Replace(f.Name, "@.", "@8081.", 1)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), []byte(f.Content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, d, o
}

// analyzeVerify runs systemd-analyze verify on the unit files in dir and
// returns what it printed.
func analyzeVerify(t *testing.T, tool, dir string, user bool) string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no units in %s: %v", dir, err)
	}
	args := []string{"verify"}
	if user {
		args = []string{"--user", "verify"}
	}
	cmd := exec.Command(tool, append(args, paths...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_PAGER=")
	if user {
		// The user manager needs a runtime directory of its own.
		rt := t.TempDir()
		cmd.Env = append(cmd.Env, "XDG_RUNTIME_DIR="+rt)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out) + "\n" + err.Error())
	}
	return strings.TrimSpace(string(out))
}

// TestSystemdAnalyzeVerify checks every golden case with systemd-analyze
// verify: it must print nothing at all, not even a warning.
func TestSystemdAnalyzeVerify(t *testing.T) {
	tool := needTool(t, "systemd-analyze", "/usr/bin/systemd-analyze")

	// The check can fail: a unit with an unknown escape makes it talk.
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "bad.service"), []byte("[Service]\nExecStart=/bin/true \\q\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := analyzeVerify(t, tool, bad, false); out == "" {
		t.Fatalf("systemd-analyze verify printed nothing for a unit with a bad escape: this test cannot see problems")
	}

	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, _ := writeUnits(t, tc.file, tc.user)
			if out := analyzeVerify(t, tool, dir, tc.user); out != "" {
				t.Errorf("systemd-analyze verify:\n%s", out)
			}
		})
	}
}

// TestSystemdReadsExecStart has systemd itself parse the generated
// service (systemd --test dumps each unit's command line as it will run
// it) and compares its arguments with the ones Render meant, for the
// definitions whose values need quoting.
func TestSystemdReadsExecStart(t *testing.T) {
	systemd := needTool(t, "systemd", "/usr/lib/systemd/systemd", "/lib/systemd/systemd")
	var prefix []string
	if os.Geteuid() == 0 {
		// systemd --test refuses to run as root.
		prefix = []string{needTool(t, "setpriv", "/usr/bin/setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"}
	}
	for _, name := range []string{"full", "quoting", "mixed"} {
		t.Run(name, func(t *testing.T) {
			dir, d, o := writeUnits(t, name+".lazypod", false)
			args := append(slices.Clone(prefix), systemd, "--test", "--system", "--unit="+name+".service", "--log-target=console", "--no-pager")
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":", "SYSTEMD_LOG_COLOR=0")
			cmd.Dir = "/"
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("systemd --test: %v\n%s", err, out)
			}
			line, ok := dumpedCommandLine(out, name+".service")
			if !ok {
				t.Fatalf("no command line for %s.service in systemd --test's dump:\n%s", name, out)
			}
			got := dumpWords(t, line)
			want := []string{o.Binary, "serve"}
			for _, g := range serveGroups(d, o) {
				want = append(want, g...)
			}
			// systemd expands the specifiers when it loads the unit; the
			// environment references are left for when it runs it.
			expand := strings.NewReplacer("%%", "%", "%N", name, "%n", name+".service", "%p", name, "%h", "/root", "%t", "/run")
			for i, w := range want {
				want[i] = expand.Replace(w)
			}
			if !slices.Equal(got, want) {
				t.Errorf("systemd reads ExecStart= as\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// dumpedCommandLine finds the "Command Line:" of unit's ExecStart= in
// systemd --test's dump.
func dumpedCommandLine(dump []byte, unit string) (string, bool) {
	in := false
	for l := range bytes.Lines(dump) {
		s := strings.TrimSpace(string(l))
		if strings.HasPrefix(s, "-> Unit ") {
			in = s == "-> Unit "+unit+":"
			continue
		}
		if c, ok := strings.CutPrefix(s, "Command Line: "); ok && in {
			return c, true
		}
	}
	return "", false
}

// dumpWords splits a command line as systemd's dump quotes it (shell
// style: double quotes, with '$' and '`' escaped too). The environment
// references ($VAR, ${VAR}, $$) are as written: systemd expands them when
// it runs the command.
func dumpWords(t *testing.T, line string) []string {
	t.Helper()
	line = strings.ReplaceAll(line, `\$`, `\x24`)
	line = strings.ReplaceAll(line, "\\`", `\x60`)
	ws, err := splitWords(line)
	if err != nil {
		t.Fatalf("splitting %q: %v", line, err)
	}
	return ws
}
