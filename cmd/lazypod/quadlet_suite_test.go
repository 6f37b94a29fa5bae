package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containers/podman/v5/pkg/specgen"
	"github.com/lazypod/lazypod/internal/podman"
	"github.com/lazypod/lazypod/internal/spec"
	"github.com/lazypod/lazypod/launcher"
	"github.com/lazypod/lazypod/units"
	"github.com/mattn/go-shellwords"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
)

// quadletRefused are the cases of Podman's Quadlet suite that Quadlet
// accepts and lazypod refuses, because they cannot apply to a container
// started on demand, with a word of the refusal. README lists them.
var quadletRefused = map[string]string{
	// Podman's global options and containers.conf modules act on the
	// podman command, not the container; the API takes neither.
	"globalargs.container":           "GlobalArgs=",
	"containersconfmodule.container": "ContainersConfModule=",
	// A oneshot service runs its container to the end; lazypod serves.
	"oneshot.container": "Type=oneshot",
	// No image: nothing for the updater to check and roll back.
	"rootfs.container": "Rootfs=",
	// A container in a pod has the pod's ports and starts with the pod.
	"startwithpod_no.container":  "Pod=",
	"startwithpod_yes.container": "Pod=",
	// Podman publishes no ports for a container in another's network
	// namespace, and lazypod forwards to published ports.
	"network.reuse.container":        "--network container:",
	"network.reuse.name.container":   "--network container:",
	"a.network.reuse.container":      "--network container:",
	"a.network.reuse.name.container": "--network container:",
	// Ports without a host port, or two on one host port: a socket
	// needs an address of its own.
	"ports.container":      "PublishPort=",
	"ports_ipv6.container": "PublishPort=",
}

// TestQuadletSuite runs every *.container case of Podman's own Quadlet
// test suite (test/e2e/quadlet of the podman module go.mod requires) as
// a lazypod definition, with a PublishPort= added where the case has
// none. A case Quadlet refuses must be refused. A case Quadlet accepts
// must be accepted, unless podman run itself would refuse its command
// line, or it is in quadletRefused; and the container lazypod creates
// must have exactly the settings of the one Quadlet's podman run would
// create: both specs are built by Podman's own code, from the command
// line Quadlet writes and from the one lazypod's units run, and compared
// whole, every assert-podman-args of the case checked to be in Quadlet's
// command line first.
func TestQuadletSuite(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/containers/podman/v5").Output()
	if err != nil {
		t.Fatalf("finding the podman module: %v", err)
	}
	root := filepath.Join(strings.TrimSpace(string(out)), "test", "e2e")
	cases, _ := filepath.Glob(filepath.Join(root, "quadlet", "*.container"))
	if len(cases) < 100 {
		t.Fatalf("found %d cases in %s; want Podman's suite", len(cases), root)
	}
	deps := suiteDeps(t, filepath.Join(root, "quadlet_test.go"))
	var n struct{ quadletRefuses, same, podmanRefuses, refused, asserts, settings int }
	for _, c := range cases {
		base := filepath.Base(c)
		t.Run(base, func(t *testing.T) {
			r := runSuiteCase(t, c, deps[base])
			switch {
			case r.quadletErr != nil:
				n.quadletRefuses++
				if r.lazypodErr == nil {
					t.Fatalf("Quadlet refuses it (%v); lazypod accepts it", r.quadletErr)
				}
			case r.podmanErr != nil:
				n.podmanRefuses++
				t.Logf("podman run refuses Quadlet's command line: %v", r.podmanErr)
				if r.lazypodErr == nil {
					t.Fatalf("podman run refuses Quadlet's command line (%v); lazypod accepts it", r.podmanErr)
				}
			case quadletRefused[base] != "":
				n.refused++
				if r.lazypodErr == nil || !strings.Contains(r.lazypodErr.Error(), quadletRefused[base]) {
					t.Fatalf("lazypod: %v; want it refused, naming %s", r.lazypodErr, quadletRefused[base])
				}
			case r.lazypodErr != nil:
				t.Fatalf("Quadlet accepts it; lazypod: %v", r.lazypodErr)
			default:
				n.same++
				n.asserts += r.asserts
				n.settings += r.settings
				if r.lazypodSpec != r.quadletSpec {
					t.Fatalf("the container lazypod creates differs from Quadlet's: %s", jsonDiff(r.lazypodSpec, r.quadletSpec))
				}
			}
		})
	}
	t.Logf("%d cases: Quadlet refuses %d, and lazypod too; of the %d it accepts, lazypod creates the same container for %d (%d assert-podman-args, %d of which set the container's settings), podman run refuses %d and lazypod too, lazypod refuses %d with a reason",
		len(cases), n.quadletRefuses, len(cases)-n.quadletRefuses, n.same, n.asserts, n.settings, n.podmanRefuses, n.refused)
	if n.refused != len(quadletRefused) {
		t.Errorf("%d cases refused with a reason; quadletRefused lists %d", n.refused, len(quadletRefused))
	}
}

// suiteResult is what a case gives Quadlet, podman run and lazypod.
type suiteResult struct {
	quadletErr, podmanErr, lazypodErr error
	quadletSpec, lazypodSpec          string // the container's settings, as JSON
	asserts, settings                 int
}

// runSuiteCase runs one case in a directory of its own, with the units
// Podman's test gives it (deps), as Podman's test does.
func runSuiteCase(t *testing.T, path string, deps []string) suiteResult {
	var r suiteResult
	base := filepath.Base(path)
	qdir := t.TempDir()
	copyCase(t, path, qdir, base)
	for _, d := range deps {
		copyCase(t, filepath.Join(filepath.Dir(path), d), qdir, d)
	}
	q := &units.Quadlet{Dirs: []string{qdir}}
	text, _ := os.ReadFile(path)

	// lazypod's units, from a definition next to the case: relative
	// paths are the same directory's.
	name := strings.TrimSuffix(base, ".container")
	def := string(text)
	if !strings.Contains(def, "PublishPort=") {
		def += "\n[Container]\nPublishPort=18080:80\n"
	}
	if err := os.WriteFile(filepath.Join(qdir, name+units.Ext), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	copyDropins(t, filepath.Dir(path), qdir, base, units.Ext)
	o := units.RenderOptions{Binary: "/usr/bin/lazypod", Quadlet: q}
	d, err := units.ParseFile(filepath.Join(qdir, name+units.Ext), o)
	var files []units.File
	if err == nil {
		files, err = units.Render(d, o)
	}
	r.lazypodErr = err

	// Quadlet's command line.
	var qargs []string
	f, err := units.LoadQuadlet(filepath.Join(qdir, base))
	if err == nil {
		var svc interface {
			LookupLastArgs(string, string) ([]string, bool, error)
		}
		if svc, err = q.Convert(f, false); err == nil {
			qargs, _, err = svc.LookupLastArgs("Service", "ExecStart")
		}
	}
	if r.quadletErr = err; err != nil {
		return r
	}
	for _, a := range assertions(t, string(text)) {
		if !containsRun(qargs, a) && !containsRun(qargs, cUnescape(a)) {
			t.Fatalf("Quadlet's command line %q lacks %q, which the case asserts", qargs, a)
		}
		r.asserts++
	}

	// What podman run makes of Quadlet's command line, less the parts
	// lazypod does itself.
	unit := strings.Replace(name, "@.", "@inst.", 1)
	if strings.HasSuffix(unit, "@") {
		unit += "inst"
	}
	run := slices.Index(qargs, "run") // after podman's global options
	qrun, err := podman.CheckRun(expand(stripQuadlet(qargs[run+1:], strings.Contains(def, "AutoUpdate=")), unit))
	if err != nil && !strings.Contains(err.Error(), "does not apply") {
		r.podmanErr = err
	}
	if err != nil || r.lazypodErr != nil {
		return r
	}

	// The container lazypod's units create: ExecStart= as systemd runs
	// it, lazypod serve's parse, the launcher's container, the adapter's
	// spec.
	args := execStart(t, files, d.Name+".service")
	o2, err := spec.ParseServe(expand(args[2:], unit))
	if err != nil {
		t.Fatalf("lazypod serve %q: %v", args[2:], err)
	}
	lrun, err := podman.CheckRun(o2.Run)
	if err != nil {
		t.Fatalf("lazypod serve's command line %q: %v", o2.Run, err)
	}
	s := &server{o: &o2, podmanRun: lrun}
	var ports []launcher.Port
	for _, p := range o2.Ports {
		ports = append(ports, launcher.Port{Route: p.FDName, Port: p.Port, Proto: p.Proto})
	}
	cfg := s.launcherConfig(ports, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.lazypodSpec = specJSON(t, cfg)

	// Quadlet's container, with lazypod's own settings (its ports on
	// 127.0.0.1, its labels, its probe) over it.
	cfg.ContainerName, cfg.Image, cfg.Options, cfg.Command = qrun.Name, qrun.Image, podman.SortOptions(qrun.Options), qrun.Command
	r.quadletSpec = specJSON(t, cfg)

	// How many assertions set a container setting: the spec of IMAGE
	// differs from that of the asserted words and IMAGE.
	plain := specJSON(t, launcher.Config{Name: "x", Image: qrun.Image})
	for _, a := range assertions(t, string(text)) {
		ar, err := podman.CheckRun(append(expand(a, unit), qrun.Image))
		if err == nil && specJSON(t, launcher.Config{Name: "x", ContainerName: ar.Name, Image: ar.Image, Options: ar.Options}) != plain {
			r.settings++
		}
	}
	return r
}

// jsonDiff names the top-level fields where two JSON objects differ.
func jsonDiff(a, b string) string {
	var ma, mb map[string]json.RawMessage
	_ = json.Unmarshal([]byte(a), &ma)
	_ = json.Unmarshal([]byte(b), &mb)
	var out []string
	for k := range mb {
		if _, ok := ma[k]; !ok {
			ma[k] = nil
		}
	}
	for k, v := range ma {
		if string(v) != string(mb[k]) {
			out = append(out, fmt.Sprintf("%s: lazypod %s, quadlet %s", k, v, mb[k]))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// specJSON is the spec the adapter sends Podman to create cfg's container.
func specJSON(t *testing.T, cfg launcher.Config) string {
	t.Helper()
	s, err := podman.SpecGenerator(cfg.ContainerSpec(), true)
	if err != nil {
		t.Fatalf("spec of %+v: %v", cfg, err)
	}
	// Podman orders mounts as a map gives them: in no order.
	slices.SortFunc(s.Mounts, func(a, b rspec.Mount) int { return strings.Compare(a.Destination, b.Destination) })
	slices.SortFunc(s.Volumes, func(a, b *specgen.NamedVolume) int { return strings.Compare(a.Dest, b.Dest) })
	slices.SortFunc(s.ImageVolumes, func(a, b *specgen.ImageVolume) int { return strings.Compare(a.Destination, b.Destination) })
	slices.SortFunc(s.OverlayVolumes, func(a, b *specgen.OverlayVolume) int { return strings.Compare(a.Destination, b.Destination) })
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stripQuadlet removes from Quadlet's podman run options what lazypod
// does itself: --replace, --rm, -d, --cgroups=split, --sdnotify, the
// published ports and the auto-update label.
func stripQuadlet(args []string, autoUpdate bool) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--replace" || a == "--rm" || a == "-d" || a == "--cgroups=split" || strings.HasPrefix(a, "--sdnotify="):
		case a == "--publish" && i+1 < len(args):
			i++
		case autoUpdate && a == "--label" && i+1 < len(args) && strings.HasPrefix(args[i+1], "io.containers.autoupdate="):
			i++
		default:
			out = append(out, a)
		}
	}
	return out
}

// expand expands the specifiers of the service unit NAME.service, as
// systemd would.
func expand(words []string, unit string) []string {
	prefix, instance, _ := strings.Cut(unit, "@")
	r := strings.NewReplacer("%%", "%", "%N", unit, "%n", unit+".service", "%p", prefix, "%P", prefix,
		"%i", instance, "%I", instance, "%h", "/root", "%t", "/run", "%U", "0", "%u", "root")
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = r.Replace(w)
	}
	return out
}

// assertions returns the words of the case's "## assert-podman-args" and
// "## assert-podman-final-args" lines, split as Podman's test splits them.
func assertions(t *testing.T, text string) [][]string {
	var out [][]string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "##") {
			continue
		}
		words, err := shellwords.Parse(line[2:])
		if err != nil {
			t.Fatalf("splitting %q: %v", line, err)
		}
		if len(words) > 1 && (words[0] == "assert-podman-args" || words[0] == "assert-podman-final-args") {
			out = append(out, words[1:])
		}
	}
	return out
}

// cUnescape undoes the C escapes (\n, \t) left in words.
func cUnescape(words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = w
		if u, err := strconv.Unquote(`"` + strings.ReplaceAll(w, `"`, `\"`) + `"`); err == nil {
			out[i] = u
		}
	}
	return out
}

// containsRun reports whether args holds the words of a, in a row.
func containsRun(args, a []string) bool {
	for i := 0; i+len(a) <= len(args); i++ {
		if slices.Equal(args[i:i+len(a)], a) {
			return true
		}
	}
	return false
}

// suiteDeps reads the units each case needs from Podman's quadlet_test.go:
// the []string of its Entry.
func suiteDeps(t *testing.T, path string) map[string][]string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	re := regexp.MustCompile(`(?s)Entry\(\s*"[^"]*",\s*"([^"]+)",\s*\[\]string\{([^}]*)\}`)
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		for _, d := range regexp.MustCompile(`"([^"]+)"`).FindAllStringSubmatch(m[2], -1) {
			out[m[1]] = append(out[m[1]], d[1])
		}
	}
	// A file that is not a case of its own gets the cases that need it
	// (startwithpod_yes.container, the pod of startwithpod.pod).
	cases := map[string]bool{}
	for _, m := range regexp.MustCompile(`Entry\(\s*"[^"]*",\s*"([^"]+)"`).FindAllStringSubmatch(string(b), -1) {
		cases[m[1]] = true
	}
	for c, ds := range maps.Clone(out) {
		for _, d := range ds {
			if !cases[d] {
				out[d] = append(out[d], c)
			}
		}
	}
	if len(out["dependent.container"]) == 0 {
		t.Fatalf("no dependencies of dependent.container in %s: its format changed", path)
	}
	return out
}

// copyCase copies a suite file into dir, with its drop-ins.
func copyCase(t *testing.T, src, dir, name string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	copyDropins(t, filepath.Dir(src), dir, name, filepath.Ext(name))
}

// copyDropins copies the drop-in directories of the suite file name from
// src into dir: NAME.EXT.d, and for an instance the template's
// PREFIX@.EXT.d; their extension becomes ext.
func copyDropins(t *testing.T, src, dir, name, ext string) {
	t.Helper()
	from := filepath.Ext(name)
	prefix, _, at := strings.Cut(strings.TrimSuffix(name, from), "@")
	names := []string{name + ".d"}
	if at {
		names = append(names, prefix+"@"+from+".d")
	}
	for _, n := range names {
		entries, err := os.ReadDir(filepath.Join(src, n))
		if err != nil {
			continue
		}
		out := filepath.Join(dir, strings.TrimSuffix(n, from+".d")+ext+".d")
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(src, n, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
