package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lazypod/lazypod/internal/podman"
	"github.com/lazypod/lazypod/internal/systemd"
	"github.com/lazypod/lazypod/units"
	"github.com/lazypod/lazypod/updater"
)

const unitsUsage = `usage: lazypod units COMMAND [flags] ...

commands:
  generate [--output DIR] [--user] [--bin PATH] FILE...
            write NAME.socket, NAME.service (and NAME-update.timer/.service when
            AutoUpdate= is set) for each definition file NAME.lazypod
  install [--user] [--now] [--bin PATH] FILE...
            generate into /etc/systemd/system (or ~/.config/systemd/user with
            --user), reload systemd and, with --now, enable and start the socket
  remove [--user] [--purge] [--podman-url URI] [--state-dir DIR] NAME...
            stop and disable NAME's units, delete them, reload systemd, and
            remove NAME's container and pin; --purge deletes its state too
  generator NORMAL_DIR [EARLY_DIR LATE_DIR]
            systemd generator mode (see lazypod(1), GENERATOR): also run as lazypod-generator
            or lazypod-user-generator from systemd's generator directories
`

// runUnits is `lazypod units`.
func runUnits(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, unitsUsage)
		return usagef("missing units command: generate, install, remove or generator")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "generate":
		return runUnitsGenerate(rest, stdout, stderr)
	case "install":
		return runUnitsInstall(ctx, rest, stdout, stderr)
	case "remove":
		return runUnitsRemove(ctx, rest, stdout, stderr)
	case "generator":
		return runGenerator(rest, false, stderr)
	case "user-generator":
		return runGenerator(rest, true, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, unitsUsage)
		return nil
	default:
		return usagef("unknown units command %q: valid commands are generate, install, remove, generator", cmd)
	}
}

// unitsFlags are the flags the units commands share.
type unitsFlags struct {
	output    string
	user      bool
	now       bool
	bin       string
	purge     bool
	podmanURL string
	stateDir  string
}

func parseUnitsFlags(cmd string, args []string, stderr io.Writer) (*unitsFlags, []string, error) {
	fs := newFlagSet("units " + cmd)
	var f unitsFlags
	fs.BoolVar(&f.user, "user", false, "user units (rootless Podman, systemctl --user)")
	switch cmd {
	case "generate":
		fs.StringVar(&f.output, "output", ".", "`DIR` to write the units into")
	case "install":
		fs.BoolVar(&f.now, "now", false, "enable and start the sockets (and update timers)")
	case "remove":
		fs.BoolVar(&f.purge, "purge", false, "also delete the service's state file (its failed digests)")
		fs.StringVar(&f.podmanURL, "podman-url", "", "Podman API `URI` (default: as lazypod serve's)")
		fs.StringVar(&f.stateDir, "state-dir", "", "state `DIR` (default: as lazypod serve's)")
	}
	if cmd != "remove" {
		fs.StringVar(&f.bin, "bin", "", "`PATH` of lazypod in ExecStart= (default: this lazypod's own path)")
	}
	if err := parseFlags(fs, args, unitsUsage, stderr); err != nil {
		return nil, nil, err
	}
	if err := checkPodmanURL(f.podmanURL); err != nil {
		return nil, nil, err
	}
	if err := f.checkBin(cmd); err != nil {
		return nil, nil, err
	}
	if fs.NArg() == 0 {
		what := "definition FILE"
		if cmd == "remove" {
			what = "service NAME"
		}
		return nil, nil, usagef("lazypod units %s: missing %s: see lazypod units --help", cmd, what)
	}
	defaultLocations(&f.podmanURL, &f.stateDir)
	return &f, fs.Args(), nil
}

// checkBin fills in --bin, which must be absolute.
func (f *unitsFlags) checkBin(cmd string) error {
	if cmd == "remove" {
		return nil
	}
	if f.bin == "" {
		var err error
		f.bin, err = selfPath()
		return err
	}
	if !filepath.IsAbs(f.bin) {
		return usagef("invalid --bin %q: systemd needs an absolute path, e.g. /usr/local/bin/lazypod", f.bin)
	}
	return nil
}

// selfPath is the absolute path of the running lazypod, symlinks resolved.
func selfPath() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding lazypod's own path: %w: pass --bin", err)
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return p, nil
}

// writeSet writes the units of set into dir, printing their paths.
func writeSet(dir string, set units.Set, stdout io.Writer) error {
	paths, err := set.Write(dir)
	for _, p := range paths {
		fmt.Fprintln(stdout, p)
	}
	return err
}

// runUnitsGenerate is `lazypod units generate`.
func runUnitsGenerate(args []string, stdout, stderr io.Writer) error {
	f, files, err := parseUnitsFlags("generate", args, stderr)
	if err != nil {
		return err
	}
	set, rerr := units.RenderFiles(files, units.RenderOptions{Binary: f.bin, User: f.user, Quadlet: units.SystemQuadlet(f.user)})
	return errors.Join(rerr, writeSet(f.output, set, stdout))
}

// runUnitsInstall is `lazypod units install`.
func runUnitsInstall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// Bounds every call to systemd, a hung one included.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	f, files, err := parseUnitsFlags("install", args, stderr)
	if err != nil {
		return err
	}
	dir, err := systemd.UnitDir(f.user)
	if err != nil {
		return err
	}
	set, rerr := units.RenderFiles(files, units.RenderOptions{Binary: f.bin, User: f.user, Quadlet: units.SystemQuadlet(f.user)})
	if len(set.Names) == 0 {
		return rerr
	}
	if err := writeSet(dir, set, stdout); err != nil {
		return errors.Join(rerr, err)
	}
	m, err := systemd.Connect(ctx, f.user)
	if err != nil {
		return errors.Join(rerr, fmt.Errorf("%w: the units are written in %s; run systemctl daemon-reload yourself", err, dir))
	}
	defer m.Close()
	if err := m.Reload(ctx); err != nil {
		return errors.Join(rerr, err)
	}
	errs := []error{rerr}
	for _, n := range set.Names {
		start := units.Enabled(set.Files[n])
		if !f.now {
			fmt.Fprintf(stdout, "installed %s: start it with systemctl%s enable --now %s.socket\n", n, userFlag(f.user), n)
			continue
		}
		errs = append(errs, m.EnableAndStart(ctx, start))
		fmt.Fprintf(stdout, "started %s\n", strings.Join(start, ", "))
	}
	return errors.Join(errs...)
}

func userFlag(user bool) string {
	if user {
		return " --user"
	}
	return ""
}

// runUnitsRemove is `lazypod units remove`.
func runUnitsRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// Bounds every call to systemd and Podman, a hung one included.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	f, names, err := parseUnitsFlags("remove", args, stderr)
	if err != nil {
		return err
	}
	if err := checkServiceNames(names); err != nil {
		return err
	}
	dir, err := systemd.UnitDir(f.user)
	if err != nil {
		return err
	}
	m, err := systemd.Connect(ctx, f.user)
	if err != nil {
		return err
	}
	defer m.Close()
	var errs []error
	for _, n := range names {
		errs = append(errs, removeService(ctx, m, f, dir, n, stdout))
	}
	return errors.Join(append(errs, m.Reload(ctx))...)
}

// removeService stops, disables and deletes the units of definition n in
// dir, then removes what its service left in Podman and says what it kept.
func removeService(ctx context.Context, m *systemd.Manager, f *unitsFlags, dir, n string, stdout io.Writer) error {
	ours, container, err := units.Installed(dir, n)
	if len(ours) == 0 {
		return errors.Join(err, fmt.Errorf("removing %q: no units of it in %s: check the name (and --user)", n, dir))
	}
	errs := []error{err, m.StopAndDisable(ctx, ours)}
	for _, u := range ours {
		if err := os.Remove(filepath.Join(dir, u)); err != nil {
			errs = append(errs, fmt.Errorf("removing unit: %w", err))
			continue
		}
		fmt.Fprintln(stdout, "removed", filepath.Join(dir, u))
	}
	return errors.Join(append(errs, removeLeftovers(ctx, f, n, container, stdout))...)
}

// removeLeftovers removes the stopped service's container (if its name
// is known) and its pin from Podman, and deletes its state file with
// --purge, else says where it stays.
func removeLeftovers(ctx context.Context, f *unitsFlags, name, container string, stdout io.Writer) error {
	pm := podman.New(f.podmanURL)
	var errs []error
	if container == "" {
		fmt.Fprintf(stdout, "kept the container of %s: its name depends on the host (a specifier); remove it with podman rm\n", name)
	} else if id, ok, err := pm.ContainerImage(ctx, container, name); err != nil {
		errs = append(errs, fmt.Errorf("removing container %s: %w: remove it with podman rm", container, err))
	} else if ok {
		if err := pm.Remove(ctx, container, 10*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("removing container %s: %w", container, err))
		} else {
			fmt.Fprintf(stdout, "removed container %s (image %s stays in local storage)\n", container, id)
		}
	}
	if err := pm.Unpin(ctx, name); err != nil {
		errs = append(errs, fmt.Errorf("removing the pin of %s: %w", name, err))
	}
	store := &updater.Store{Dir: f.stateDir}
	path := filepath.Join(f.stateDir, name+".json")
	if _, err := store.Load(name); errors.Is(err, fs.ErrNotExist) {
		return errors.Join(errs...)
	}
	if !f.purge {
		fmt.Fprintf(stdout, "kept %s (the images it ran and the digests that failed): delete it with --purge\n", path)
		return errors.Join(errs...)
	}
	if err := os.Remove(path); err != nil {
		return errors.Join(append(errs, fmt.Errorf("deleting state: %w", err))...)
	}
	fmt.Fprintln(stdout, "deleted", path)
	return errors.Join(errs...)
}

// runGenerator is the systemd generator: it renders every *.lazypod file
// of the generator directories into normalDir and enables each socket (and
// update timer) there, as a WantedBy= would. A bad file is reported and
// skipped; the others are still generated.
func runGenerator(args []string, user bool, stderr io.Writer) error {
	if len(args) != 1 && len(args) != 3 {
		return usagef("lazypod units generator takes NORMAL_DIR [EARLY_DIR LATE_DIR], got %d arguments", len(args))
	}
	normal := args[0]
	bin, err := selfPath()
	if err != nil {
		return err
	}
	set, rerr := units.RenderFiles(units.Find(units.SearchDirs(user)), units.RenderOptions{Binary: bin, User: user, Quadlet: units.SystemQuadlet(user)})
	errs := []error{rerr}
	for _, n := range set.Names {
		if _, err := units.Write(normal, set.Files[n]); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, systemd.Want(normal, units.Enabled(set.Files[n])))
	}
	if err := errors.Join(errs...); err != nil {
		// The journal shows a generator's stderr; one line per problem.
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "lazypod-generator: %s\n", line)
		}
		return errGeneratorReported
	}
	return nil
}

// errGeneratorReported ends a generator run whose problems were already
// written to stderr.
var errGeneratorReported = errors.New("some definition files were not generated")
