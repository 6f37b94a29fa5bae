package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lazypod/lazypod/internal/podman"
	"github.com/lazypod/lazypod/internal/spec"
	"github.com/lazypod/lazypod/internal/systemd"
	"github.com/lazypod/lazypod/launcher"
	"github.com/lazypod/lazypod/updater"
)

// adminOptions are the flags update, status and rollback share.
type adminOptions struct {
	stateDir  string
	podmanURL string
	format    string
	names     []string
}

// parseAdmin parses the flags of an admin command; extra adds the
// command's own.
func parseAdmin(cmd, usage string, args []string, stderr io.Writer, extra func(fs *flag.FlagSet)) (*adminOptions, error) {
	fs := newFlagSet(cmd)
	var o adminOptions
	fs.StringVar(&o.stateDir, "state-dir", "", "state `DIR` of the services (default: as lazypod serve's)")
	fs.StringVar(&o.podmanURL, "podman-url", "", "Podman API `URI` (default: as lazypod serve's)")
	if cmd != "rollback" {
		fs.StringVar(&o.format, "format", "table", "output `FORMAT`: table or json")
	}
	if extra != nil {
		extra(fs)
	}
	if err := parseFlags(fs, args, usage, stderr); err != nil {
		return nil, err
	}
	o.names = fs.Args()
	if err := checkServiceNames(o.names); err != nil {
		return nil, err
	}
	if o.format != "" && o.format != "table" && o.format != "json" {
		return nil, usagef("invalid --format %q: valid formats are \"table\", \"json\"", o.format)
	}
	if err := checkPodmanURL(o.podmanURL); err != nil {
		return nil, err
	}
	defaultLocations(&o.podmanURL, &o.stateDir)
	return &o, nil
}

// store is the services' state store.
func (o *adminOptions) store() *updater.Store {
	return &updater.Store{Dir: o.stateDir, LockTimeout: stateLockTimeout}
}

const updateUsage = `usage: lazypod update [--dry-run] [--format table|json] [flags] [NAME...]

Checks every service lazypod knows (or the NAMEs), running or idle, for a
newer image under its --auto-update policy, pulls it and leaves it pending:
it runs from the service's next start, and is rolled back if it fails its
readiness probe. lazypod-update.timer runs this daily.

flags:
`

// runUpdate is `lazypod update`.
func runUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		dryRun    bool
		authFile  string
		tlsVerify *bool
		timeout   = updater.DefaultCheckTimeout
		badValue  error // a bad --timeout or --tls-verify, as lazypod words it
	)
	o, err := parseAdmin("update", updateUsage, args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&dryRun, "dry-run", false, "report what would be updated; pull and change nothing")
		fs.StringVar(&authFile, "authfile", "", "registry credentials `FILE` (default: each service's --authfile, else $REGISTRY_AUTH_FILE or Podman's auth.json)")
		fs.BoolFunc("tls-verify", "verify registries' TLS certificates (default: each service's --tls-verify)", func(s string) error {
			b, err := spec.ParseBool(s)
			tlsVerify = &b
			badValue = cmp.Or(badValue, flagError("tls-verify", s, err))
			return err
		})
		fs.Func("timeout", "give up on a service's check and pull after this `DURATION` (default 10m)", func(s string) (err error) {
			timeout, err = spec.ParsePositiveDuration(s)
			badValue = cmp.Or(badValue, flagError("timeout", s, err))
			return err
		})
	})
	if err != nil {
		return cmp.Or(badValue, err)
	}
	sts, lerr := o.store().Services(o.names...)
	if len(sts) == 0 {
		if lerr == nil {
			// The timer runs before any service has started: not a failure.
			fmt.Fprintf(stderr, "lazypod update: no services in %s yet: a service appears after its first start\n", o.stateDir)
		}
		return lerr
	}
	pm := podman.New(o.podmanURL)
	if err := pm.Connect(ctx); err != nil {
		return err
	}
	var rows []updater.Report
	errs := []error{lerr}
	for _, st := range sts {
		if authFile != "" {
			st.AuthFile = authFile
		}
		if tlsVerify != nil {
			st.TLSVerify = tlsVerify
		}
		row, err := checkOne(ctx, o, pm, st, &updater.Checker{DryRun: dryRun, Timeout: timeout})
		if err != nil {
			errs = append(errs, fmt.Errorf("updating %q: %w", st.Name, err))
		}
		rows = append(rows, row)
	}
	if err := printUpdate(stdout, o.format, rows); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// checkOne checks service st for an update with c, using st's registry
// settings, and returns its report line.
func checkOne(ctx context.Context, o *adminOptions, pm *podman.Client, st *updater.State, c *updater.Checker) (updater.Report, error) {
	c.Images = pm.WithPull(podman.PullOptions{AuthFile: st.AuthFile, TLSVerify: st.TLSVerify})
	c.Registry = &updater.DockerRegistry{AuthFile: st.AuthFile, TLSVerify: st.TLSVerify}
	log := systemd.Logger("warn")
	svc := &updater.Service{Name: st.Name, Store: o.store(), Images: c.Images, Pins: pm, Logger: log}
	// What a dry run finds is not an update's outcome: not counted, and
	// the file not rewritten.
	m := serviceMetrics(st, log)
	if c.DryRun {
		m = nil
	}
	if m != nil {
		svc.Results = m.updated
	}
	r, err := svc.Check(ctx, c)
	m.write(true)
	return updater.NewReport(st, r, err), err
}

// serviceMetrics returns the writer of the metrics file the serve of st
// writes, for an admin command to count what it did there, or nil if it
// has none.
func serviceMetrics(st *updater.State, log *slog.Logger) *metricsWriter {
	return newMetricsWriter(st.MetricsFile, st.Name, log)
}

// printUpdate writes lazypod update's report.
func printUpdate(w io.Writer, format string, rows []updater.Report) error {
	if format == "json" {
		return writeJSON(w, rows)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCONTAINER\tIMAGE\tPOLICY\tUPDATED")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Container, r.Image, r.Policy, r.Updated)
	}
	return tw.Flush()
}

const statusUsage = `usage: lazypod status [--format table|json] [flags] [NAME...]

Shows each service lazypod knows (or the NAMEs): whether it is idle or
serving, its image, what runs, what ran before, what is pending, which
digests failed, the last update check and the last cold start.

flags:
`

// runStatus is `lazypod status`.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseAdmin("status", statusUsage, args, stderr, nil)
	if err != nil {
		return err
	}
	sts, lerr := o.store().Services(o.names...)
	rows := make([]updater.Status, 0, len(sts))
	for _, st := range sts {
		rows = append(rows, o.store().Status(st))
	}
	if o.format == "json" {
		if err := writeJSON(stdout, rows); err != nil {
			return err
		}
		return lerr
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tIMAGE\tPOLICY\tIMAGE ID\tDIGEST\tPREVIOUS\tPENDING\tFAILED\tLAST CHECK\tRESULT\tCOLD START")
	for _, r := range rows {
		check := "-"
		if r.LastCheck != nil {
			check = r.LastCheck.Local().Format(time.DateTime)
			if r.LastCheckError != "" {
				check += " (error)"
			}
		}
		failed := make([]string, len(r.FailedDigests))
		for i, d := range r.FailedDigests {
			failed[i] = spec.ShortID(d)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Name, r.State, r.Image, r.Policy, dash(r.ImageID), dash(r.Digest), dash(r.PreviousImageID), dash(r.PendingImageID),
			dash(strings.Join(failed, ",")), check, dash(string(r.LastUpdateResult)), dash(r.LastColdStart))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if r.LastCheckError != "" {
			fmt.Fprintf(stderr, "%s: last check failed: %s\n", r.Name, r.LastCheckError)
		}
	}
	return lerr
}

// dash is how the status table shows a value: an ID shortened, "-" for
// none.
func dash(s string) string { return cmp.Or(spec.ShortID(s), "-") }

const rollbackUsage = `usage: lazypod rollback [flags] NAME

Rolls service NAME back to the image it ran before its last update: the
current image's digest is recorded as failed (never deployed again) and the
previous image runs from the next start. A container that is serving is not
touched; stop the service (systemctl stop NAME.service) to apply it now.

flags:
`

// runRollback is `lazypod rollback NAME`.
func runRollback(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseAdmin("rollback", rollbackUsage, args, stderr, nil)
	if err != nil {
		return err
	}
	if len(o.names) != 1 {
		return usagef("lazypod rollback takes one service NAME, got %d: see lazypod status for the names", len(o.names))
	}
	name := o.names[0]
	store := o.store()
	st, err := store.Load(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rolling back %q: %w in %s", name, updater.ErrNoService, o.stateDir)
		}
		return fmt.Errorf("rolling back %q: %w", name, err)
	}
	pm := podman.New(o.podmanURL)
	if err := pm.Connect(ctx); err != nil {
		return err
	}
	svc := &updater.Service{Name: name, Store: store, Images: pm, Pins: pm, Logger: systemd.Logger("warn")}
	// Bounds every call to Podman, a hung one included.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	before, after, err := svc.Rollback(ctx)
	if err != nil {
		return err
	}
	if m := serviceMetrics(st, svc.Logger); m != nil {
		m.m.Rollback()
		m.write(true)
	}
	when := "at its next start"
	if ls, ok := store.Live(name); ok && ls.State != string(launcher.StateStopped) {
		when = "at its next start (it is " + ls.State + " now and is not interrupted: systemctl stop " + name + ".service to apply it now)"
	}
	fmt.Fprintf(stdout, "%s: rolled back from image %s to %s; digest %s will not be deployed again; runs %s\n",
		name, spec.ShortID(before.ImageID), spec.ShortID(after.ImageID), spec.ShortID(lastOr(after.FailedDigests)), when)
	return nil
}

func lastOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
