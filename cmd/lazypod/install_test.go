package main

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// needMakeDeb fails the test without make and dpkg-deb, and skips it
// (fails it under LAZYPOD_TEST_REQUIRE=1) without the binary make built:
// make install and make deb use it without building it again (-o build),
// as make test's other tests run it meanwhile.
func needMakeDeb(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"make", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: %v", tool, err)
		}
	}
	if _, err := os.Stat("../../build/lazypod"); err != nil {
		if os.Getenv("LAZYPOD_TEST_REQUIRE") == "1" {
			t.Fatalf("no build/lazypod: %v", err)
		}
		t.Skipf("no build/lazypod (%v): run make build", err)
	}
}

// installed lists the files and links under root, relative to it.
func installed(t *testing.T, root string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			got = append(got, "/"+rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

// TestMakeInstall: make install puts the binary, its man pages, the
// generator links, the update units (pointing at the installed binary)
// and the bash completion under DESTDIR, and make uninstall removes every
// one of them; make deb packs the same tree with its dependencies.
func TestMakeInstall(t *testing.T) {
	needMakeDeb(t)
	dest, debdir := t.TempDir(), t.TempDir()
	make := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("make", append([]string{"-C", "../..", "--no-print-directory", "-o", "build"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	dirs := []string{"PREFIX=/usr", "SYSTEMDUNITDIR=/lib/systemd/system", "SYSTEMDUSERUNITDIR=/usr/lib/systemd/user",
		"SYSTEMDGENERATORDIR=/lib/systemd/system-generators", "SYSTEMDUSERGENERATORDIR=/usr/lib/systemd/user-generators"}
	make(append([]string{"install", "DESTDIR=" + dest}, dirs...)...)
	want := []string{
		"/lib/systemd/system-generators/lazypod-generator",
		"/lib/systemd/system/lazypod-update.service",
		"/lib/systemd/system/lazypod-update.timer",
		"/usr/bin/lazypod",
		"/usr/lib/systemd/user-generators/lazypod-user-generator",
		"/usr/lib/systemd/user/lazypod-update.service",
		"/usr/lib/systemd/user/lazypod-update.timer",
		"/usr/share/bash-completion/completions/lazypod",
		"/usr/share/man/man1/lazypod.1",
		"/usr/share/man/man5/lazypod.unit.5",
	}
	if got := installed(t, dest); !slices.Equal(got, want) {
		t.Errorf("make install put:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, link := range []string{"/lib/systemd/system-generators/lazypod-generator", "/usr/lib/systemd/user-generators/lazypod-user-generator"} {
		if target, err := os.Readlink(dest + link); err != nil || target != "/usr/bin/lazypod" {
			t.Errorf("%s -> %q, %v; want a link to /usr/bin/lazypod", link, target, err)
		}
	}
	unit, err := os.ReadFile(dest + "/lib/systemd/system/lazypod-update.service")
	if err != nil || !strings.Contains(string(unit), "\nExecStart=/usr/bin/lazypod update\n") {
		t.Errorf("lazypod-update.service's ExecStart= does not run /usr/bin/lazypod:\n%s", unit)
	}
	if out, err := exec.Command(dest+"/usr/bin/lazypod", "version").Output(); err != nil || !strings.HasPrefix(string(out), "lazypod ") {
		t.Errorf("the installed lazypod version: %q, %v", out, err)
	}
	if man, err := os.ReadFile(dest + "/usr/share/man/man5/lazypod.unit.5"); err != nil || !strings.Contains(string(man), "\n.TH LAZYPOD.UNIT 5") {
		t.Errorf("lazypod.unit.5 is not a section-5 man page: %.200q, %v", man, err)
	}
	make(append([]string{"uninstall", "DESTDIR=" + dest}, dirs...)...)
	if got := installed(t, dest); len(got) > 0 {
		t.Errorf("make uninstall left:\n%s", strings.Join(got, "\n"))
	}

	make("deb", "DEBDIR="+debdir)
	debs, _ := filepath.Glob(filepath.Join(debdir, "lazypod_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %q; want one lazypod_*.deb", debs)
	}
	info, err := exec.Command("dpkg-deb", "--field", debs[0], "Package", "Depends", "Installed-Size").Output()
	if err != nil || !strings.Contains(string(info), "Depends: podman (>= 4.3)") || !regexp.MustCompile(`Installed-Size: [1-9][0-9]{3,}\n`).Match(info) {
		t.Errorf("the package's fields: %s, %v; want Depends: podman (>= 4.3) and its size in KiB", info, err)
	}
	contents, err := exec.Command("dpkg-deb", "--contents", debs[0]).Output()
	for _, f := range append(want, "/etc/containers/systemd/") {
		if err != nil || !strings.Contains(string(contents), "."+f) {
			t.Errorf("the package lacks %s (%v)", f, err)
		}
	}
}
