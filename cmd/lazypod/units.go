package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/lazypod/lazypod/units"
)

const unitsUsage = `usage: lazypod units COMMAND [flags] ...

commands:
  generate [--output DIR] [--user] [--bin PATH] FILE...
            write NAME.socket, NAME.service (and NAME-update.timer/.service when
            AutoUpdate= is set) for each definition file NAME.lazypod
  install [--user] [--now] [--bin PATH] FILE...
            generate into /etc/systemd/system (or ~/.config/systemd/user with
            --user), reload systemd and, with --now, enable and start the socket
  remove [--user] NAME...
            stop and disable NAME's units, delete them, reload systemd
  generator NORMAL_DIR [EARLY_DIR LATE_DIR]
            systemd generator mode (see README): also run as lazypod-generator
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
	output string
	user   bool
	now    bool
	bin    string
}

func parseUnitsFlags(cmd string, args []string, stderr io.Writer, withOutput, withNow bool) (*unitsFlags, []string, error) {
	fs := flag.NewFlagSet("units "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f unitsFlags
	if withOutput {
		fs.StringVar(&f.output, "output", ".", "`DIR` to write the units into")
	}
	fs.BoolVar(&f.user, "user", false, "user units (rootless Podman, systemctl --user)")
	if withNow {
		fs.BoolVar(&f.now, "now", false, "enable and start the sockets (and update timers)")
	}
	if cmd != "remove" {
		fs.StringVar(&f.bin, "bin", "", "`PATH` of lazypod in ExecStart= (default: this lazypod's own path)")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, unitsUsage)
			return nil, nil, err
		}
		return nil, nil, usagef("%v: see lazypod units --help", err)
	}
	if cmd != "remove" {
		if f.bin == "" {
			var err error
			if f.bin, err = selfPath(); err != nil {
				return nil, nil, err
			}
		} else if !filepath.IsAbs(f.bin) {
			return nil, nil, usagef("invalid --bin %q: systemd needs an absolute path, e.g. /usr/local/bin/lazypod", f.bin)
		}
	}
	if fs.NArg() == 0 {
		what := "definition FILE"
		if cmd == "remove" {
			what = "service NAME"
		}
		return nil, nil, usagef("lazypod units %s: missing %s: see lazypod units --help", cmd, what)
	}
	return &f, fs.Args(), nil
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

// renderAll parses and renders every definition file. A bad file does not
// stop the others: their errors are joined.
func renderAll(paths []string, o units.RenderOptions) (map[string][]units.File, []string, error) {
	out := make(map[string][]units.File)
	var names []string
	var errs []error
	seen := make(map[string]string)
	for _, p := range paths {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs // the units' header names the file to edit
		}
		d, err := units.ParseFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, ok := seen[d.Name]; ok {
			errs = append(errs, fmt.Errorf("%s: service %q is also defined by %s: rename one of the files", p, d.Name, prev))
			continue
		}
		seen[d.Name] = p
		files, err := units.Render(d, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		out[d.Name] = files
		names = append(names, d.Name)
	}
	return out, names, errors.Join(errs...)
}

// writeUnits writes files into dir, each atomically, mode 0644, and
// returns their paths.
func writeUnits(dir string, files []units.File) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating unit directory: %w", err)
	}
	var paths []string
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		tmp, err := os.CreateTemp(dir, "."+f.Name+".tmp-*")
		if err != nil {
			return paths, fmt.Errorf("writing %s: %w", p, err)
		}
		_, err = tmp.WriteString(f.Content)
		if err == nil {
			err = tmp.Chmod(0o644)
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), p)
		}
		if err != nil {
			os.Remove(tmp.Name())
			return paths, fmt.Errorf("writing %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// runUnitsGenerate is `lazypod units generate`.
func runUnitsGenerate(args []string, stdout, stderr io.Writer) error {
	f, files, err := parseUnitsFlags("generate", args, stderr, true, false)
	if err != nil {
		return err
	}
	rendered, names, rerr := renderAll(files, units.RenderOptions{Binary: f.bin, User: f.user})
	for _, n := range names {
		paths, err := writeUnits(f.output, rendered[n])
		for _, p := range paths {
			fmt.Fprintln(stdout, p)
		}
		if err != nil {
			return errors.Join(rerr, err)
		}
	}
	return rerr
}

// unitDir is where install writes units: /etc/systemd/system, or the
// user's ~/.config/systemd/user.
func unitDir(user bool) (string, error) {
	if !user {
		return "/etc/systemd/system", nil
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "systemd", "user"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the user unit directory: %w: set XDG_CONFIG_HOME or HOME", err)
	}
	return filepath.Join(home, ".config", "systemd", "user"), nil
}

// connectSystemd connects to the system's service manager (root: its
// private socket, which needs no D-Bus daemon) or the user's.
// The connection lives as long as ctx: godbus closes it when ctx ends.
func connectSystemd(ctx context.Context, user bool) (*sddbus.Conn, error) {
	var (
		c   *sddbus.Conn
		err error
	)
	if user {
		c, err = sddbus.NewUserConnectionContext(ctx)
	} else {
		c, err = sddbus.NewSystemdConnectionContext(ctx)
	}
	if err != nil {
		who := "systemd"
		if user {
			who = "the user's systemd (is XDG_RUNTIME_DIR set and a user session running?)"
		}
		return nil, fmt.Errorf("connecting to %s over D-Bus: %w", who, err)
	}
	return c, nil
}

// runUnitsInstall is `lazypod units install`.
func runUnitsInstall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// Bounds every call to systemd, a hung one included.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	f, files, err := parseUnitsFlags("install", args, stderr, false, true)
	if err != nil {
		return err
	}
	dir, err := unitDir(f.user)
	if err != nil {
		return err
	}
	rendered, names, rerr := renderAll(files, units.RenderOptions{Binary: f.bin, User: f.user})
	if len(names) == 0 {
		return rerr
	}
	for _, n := range names {
		paths, err := writeUnits(dir, rendered[n])
		for _, p := range paths {
			fmt.Fprintln(stdout, p)
		}
		if err != nil {
			return errors.Join(rerr, err)
		}
	}
	c, err := connectSystemd(ctx, f.user)
	if err != nil {
		return errors.Join(rerr, fmt.Errorf("%w: the units are written in %s; run systemctl daemon-reload yourself", err, dir))
	}
	defer c.Close()
	if err := c.ReloadContext(ctx); err != nil {
		return errors.Join(rerr, fmt.Errorf("reloading systemd: %w", err))
	}
	if !f.now {
		for _, n := range names {
			fmt.Fprintf(stdout, "installed %s: start it with systemctl%s enable --now %s.socket\n", n, userFlag(f.user), n)
		}
		return rerr
	}
	var errs []error
	for _, n := range names {
		start := enableOnStart(rendered[n])
		if _, _, err := c.EnableUnitFilesContext(ctx, start, false, true); err != nil {
			errs = append(errs, fmt.Errorf("enabling %s: %w", strings.Join(start, ", "), err))
			continue
		}
		for _, u := range start {
			if err := runJob(ctx, u, c.StartUnitContext); err != nil {
				errs = append(errs, fmt.Errorf("starting %s: %w: systemctl%s status %s says why", u, err, userFlag(f.user), u))
			}
		}
		fmt.Fprintf(stdout, "started %s\n", strings.Join(start, ", "))
	}
	return errors.Join(append([]error{rerr}, errs...)...)
}

// runJob runs a systemd job (start or stop of unit) and waits for its
// result.
func runJob(ctx context.Context, unit string, job func(context.Context, string, string, chan<- string) (int, error)) error {
	ch := make(chan string, 1)
	if _, err := job(ctx, unit, "replace", ch); err != nil {
		return err
	}
	select {
	case r := <-ch:
		if r != "done" {
			return fmt.Errorf("job %s", r)
		}
		return nil
	case <-time.After(90 * time.Second):
		return errors.New("job still running after 90s")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func userFlag(user bool) string {
	if user {
		return " --user"
	}
	return ""
}

// enableOnStart names the units of files that are enabled and started:
// every socket (one per container port) and the update timer, if any.
func enableOnStart(files []units.File) []string {
	var names []string
	for _, f := range files {
		if strings.HasSuffix(f.Name, ".socket") || strings.HasSuffix(f.Name, ".timer") {
			names = append(names, f.Name)
		}
	}
	return names
}

// generatedHeader starts every unit lazypod writes; remove deletes only
// such files.
const generatedHeader = "# Generated by lazypod"

// runUnitsRemove is `lazypod units remove`.
func runUnitsRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// Bounds every call to systemd, a hung one included.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	f, names, err := parseUnitsFlags("remove", args, stderr, false, false)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := checkServiceName(n); err != nil {
			return err
		}
	}
	dir, err := unitDir(f.user)
	if err != nil {
		return err
	}
	c, err := connectSystemd(ctx, f.user)
	if err != nil {
		return err
	}
	defer c.Close()
	var errs []error
	for _, n := range names {
		// Timers and sockets first, so that nothing starts the
		// service again while it stops.
		unitNames := []string{n + "-update.timer", n + ".socket"}
		extra, _ := filepath.Glob(filepath.Join(dir, n+"-[tu][cd]p-*.socket"))
		for _, p := range extra {
			unitNames = append(unitNames, filepath.Base(p))
		}
		unitNames = append(unitNames, n+".service", n+"-update.service")
		var ours []string
		for _, u := range unitNames {
			p := filepath.Join(dir, u)
			b, err := os.ReadFile(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("reading %s: %w", p, err))
				continue
			}
			if !strings.HasPrefix(string(b), generatedHeader) {
				errs = append(errs, fmt.Errorf("removing %s: not written by lazypod (no %q header): leaving it", p, generatedHeader))
				continue
			}
			if slices.Contains(extra, p) && !strings.Contains(string(b), "\nService="+n+".service\n") {
				continue // another service's socket
			}
			ours = append(ours, u)
		}
		if len(ours) == 0 {
			errs = append(errs, fmt.Errorf("removing %q: no units of it in %s: check the name (and --user)", n, dir))
			continue
		}
		for _, u := range ours {
			if err := runJob(ctx, u, c.StopUnitContext); err != nil {
				errs = append(errs, fmt.Errorf("stopping %s: %w", u, err))
			}
		}
		if _, err := c.DisableUnitFilesContext(ctx, ours, false); err != nil {
			errs = append(errs, fmt.Errorf("disabling %s: %w", strings.Join(ours, ", "), err))
		}
		for _, u := range ours {
			if err := os.Remove(filepath.Join(dir, u)); err != nil {
				errs = append(errs, fmt.Errorf("removing unit: %w", err))
				continue
			}
			fmt.Fprintln(stdout, "removed", filepath.Join(dir, u))
		}
	}
	if err := c.ReloadContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("reloading systemd: %w", err))
	}
	return errors.Join(errs...)
}

// generatorDirs are where the generator looks for definition files, in
// order; a file in an earlier directory hides one of the same name in a
// later one (as Quadlet's directories do).
func generatorDirs(user bool) []string {
	if !user {
		return []string{"/run/containers/systemd", "/etc/containers/systemd", "/usr/share/containers/systemd"}
	}
	var dirs []string
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		dirs = append(dirs, filepath.Join(d, "containers", "systemd"))
	} else if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".config", "containers", "systemd"))
	}
	return append(dirs, fmt.Sprintf("/etc/containers/systemd/users/%d", os.Getuid()), "/etc/containers/systemd/users")
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
	seen := make(map[string]bool)
	var paths []string
	for _, d := range generatorDirs(user) {
		m, _ := filepath.Glob(filepath.Join(d, "*.lazypod"))
		slices.Sort(m)
		for _, p := range m {
			if b := filepath.Base(p); !seen[b] {
				seen[b] = true
				paths = append(paths, p)
			}
		}
	}
	rendered, names, rerr := renderAll(paths, units.RenderOptions{Binary: bin, User: user})
	var errs []error
	for _, n := range names {
		if _, err := writeUnits(normal, rendered[n]); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, unit := range enableOnStart(rendered[n]) {
			wants := "sockets.target.wants"
			if strings.HasSuffix(unit, ".timer") {
				wants = "timers.target.wants"
			}
			wd := filepath.Join(normal, wants)
			if err := os.MkdirAll(wd, 0o755); err != nil {
				errs = append(errs, err)
				continue
			}
			link := filepath.Join(wd, unit)
			os.Remove(link)
			if err := os.Symlink(filepath.Join("..", unit), link); err != nil {
				errs = append(errs, fmt.Errorf("enabling %s: %w", unit, err))
			}
		}
	}
	if err := errors.Join(append([]error{rerr}, errs...)...); err != nil {
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
