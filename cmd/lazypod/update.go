package main

import (
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
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o adminOptions
	fs.StringVar(&o.stateDir, "state-dir", "", "state `DIR` of the services (default: as lazypod serve's)")
	fs.StringVar(&o.podmanURL, "podman-url", "", "Podman API `URI` (default: as lazypod serve's)")
	if cmd != "rollback" {
		fs.StringVar(&o.format, "format", "table", "output `FORMAT`: table or json")
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, usagef("%v: see lazypod %s --help", err, cmd)
	}
	o.names = fs.Args()
	for _, n := range o.names {
		if err := checkServiceName(n); err != nil {
			return nil, err
		}
	}
	if o.format != "" && o.format != "table" && o.format != "json" {
		return nil, usagef("invalid --format %q: valid formats are \"table\", \"json\"", o.format)
	}
	if err := defaultLocations(&o.podmanURL, &o.stateDir); err != nil {
		return nil, err
	}
	return &o, nil
}

func checkServiceName(s string) error {
	if !containerNameRE.MatchString(s) || len(s) > 200 {
		return usagef("invalid service name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", s)
	}
	return nil
}

// states loads the states of the services named in o, or of every service
// in the state directory. Unreadable ones are reported in the error and
// left out.
func (o *adminOptions) states() ([]*updater.State, error) {
	store := &updater.Store{Dir: o.stateDir}
	if len(o.names) == 0 {
		return store.List()
	}
	var sts []*updater.State
	var errs []error
	for _, n := range o.names {
		st, err := store.Load(n)
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("reading state of %q: no such service in %s: check the name, or pass --state-dir", n, o.stateDir)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sts = append(sts, st)
	}
	return sts, errors.Join(errs...)
}

const updateUsage = `usage: lazypod update [--dry-run] [--format table|json] [flags] [NAME...]

Checks every service lazypod knows (or the NAMEs), running or idle, for a
newer image under its --auto-update policy, pulls it and leaves it pending:
it runs from the service's next start, and is rolled back if it fails its
readiness probe. lazypod-update.timer runs this daily.

flags:
`

// updateRow is one line of lazypod update's report.
type updateRow struct {
	Name      string         `json:"name"`
	Container string         `json:"container"`
	Image     string         `json:"image"`
	Policy    updater.Policy `json:"policy"`
	Updated   string         `json:"updated"`
	Error     string         `json:"error,omitempty"`
}

// runUpdate is `lazypod update`.
func runUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		dryRun    bool
		authFile  string
		tlsVerify tlsFlag
	)
	o, err := parseAdmin("update", updateUsage, args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&dryRun, "dry-run", false, "report what would be updated; pull and change nothing")
		fs.StringVar(&authFile, "authfile", "", "registry credentials `FILE` (default: each service's --authfile, else $REGISTRY_AUTH_FILE or Podman's auth.json)")
		fs.Var(&tlsVerify, "tls-verify", "verify registries' TLS certificates (default: each service's --tls-verify)")
	})
	if err != nil {
		return err
	}
	sts, lerr := o.states()
	if len(sts) == 0 {
		if lerr == nil {
			// The timer runs before any service has started: not a failure.
			fmt.Fprintf(stderr, "lazypod update: no services in %s yet: a service appears after its first start\n", o.stateDir)
		}
		return lerr
	}
	pm, err := connectPodman(ctx, o.podmanURL)
	if err != nil {
		return err
	}
	store := &updater.Store{Dir: o.stateDir, LockTimeout: stateLockTimeout}
	var rows []updateRow
	errs := []error{lerr}
	for _, st := range sts {
		row := updateRow{Name: st.Name, Container: st.Name, Image: st.Image, Policy: st.Policy, Updated: string(updater.ResultFalse)}
		if row.Policy == "" {
			row.Policy = updater.PolicyDisabled
		}
		set := registrySettings{authFile: st.AuthFile, tlsVerify: st.TLSVerify}
		if authFile != "" {
			set.authFile = authFile
		}
		if tlsVerify.set {
			set.tlsVerify = &tlsVerify.value
		}
		svc := &service{name: st.Name, policy: row.Policy, store: store, pm: pm, log: newLogger(slog.LevelWarn)}
		c := &updater.Checker{Registry: set.registry(), Images: podmanImages{pm: pm, set: set}, DryRun: dryRun}
		r, err := svc.check(ctx, c)
		if err != nil {
			row.Updated = string(updater.ResultFailed)
			row.Error = err.Error()
			errs = append(errs, fmt.Errorf("updating %q: %w", st.Name, err))
		} else {
			row.Updated = string(r)
			// Every check overwrites the last result, so a swap or a
			// rollback recorded in the state happened since the last
			// check: report it, as podman auto-update reports its own.
			if r == updater.ResultFalse && (st.LastUpdateResult == updater.ResultTrue || st.LastUpdateResult == updater.ResultRolledBack) {
				row.Updated = string(st.LastUpdateResult)
			}
		}
		rows = append(rows, row)
	}
	if o.format == "json" {
		if err := writeJSON(stdout, rows); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 8, 3, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCONTAINER\tIMAGE\tPOLICY\tUPDATED")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Container, r.Image, r.Policy, r.Updated)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

const statusUsage = `usage: lazypod status [--format table|json] [flags] [NAME...]

Shows each service lazypod knows (or the NAMEs): whether it is idle or
serving, its image, what runs, what ran before, what is pending, which
digests failed, the last update check and the last cold start.

flags:
`

// statusRow is one service in lazypod status.
type statusRow struct {
	Name             string         `json:"name"`
	State            string         `json:"state"`
	Container        string         `json:"container"`
	Image            string         `json:"image"`
	Policy           updater.Policy `json:"policy"`
	ImageID          string         `json:"image_id"`
	Digest           string         `json:"digest"`
	PreviousImageID  string         `json:"previous_image_id"`
	PendingImageID   string         `json:"pending_image_id"`
	FailedDigests    []string       `json:"failed_digests"`
	LastCheck        *time.Time     `json:"last_check"`
	LastCheckError   string         `json:"last_check_error,omitempty"`
	LastUpdateResult updater.Result `json:"last_update_result"`
	LastColdStart    string         `json:"last_cold_start"`
}

// runStatus is `lazypod status`.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseAdmin("status", statusUsage, args, stderr, nil)
	if err != nil {
		return err
	}
	sts, lerr := o.states()
	rows := make([]statusRow, 0, len(sts))
	for _, st := range sts {
		r := statusRow{
			Name: st.Name, State: "idle", Container: st.Name, Image: st.Image, Policy: st.Policy,
			ImageID: st.ImageID, Digest: st.Digest, PreviousImageID: st.PreviousImageID,
			PendingImageID: st.PendingImageID, FailedDigests: st.FailedDigests,
			LastCheckError: st.LastCheckError, LastUpdateResult: st.LastUpdateResult,
		}
		if r.Policy == "" {
			r.Policy = updater.PolicyDisabled
		}
		if r.FailedDigests == nil {
			r.FailedDigests = []string{}
		}
		if !st.LastCheck.IsZero() {
			t := st.LastCheck
			r.LastCheck = &t
		}
		if st.LastColdStart != 0 {
			r.LastColdStart = time.Duration(st.LastColdStart).Round(time.Millisecond).String()
		}
		if ls, ok := readLive(o.stateDir, st.Name); ok {
			r.State = liveWord(ls.State)
		}
		rows = append(rows, r)
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
			failed[i] = shortImageID(d)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Name, r.State, r.Image, r.Policy, dash(shortImageID(r.ImageID)), dash(shortImageID(r.Digest)),
			dash(shortImageID(r.PreviousImageID)), dash(shortImageID(r.PendingImageID)),
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

// liveWord is the state word status shows: idle for a stopped container.
func liveWord(s launcher.State) string {
	if s == launcher.StateStopped {
		return "idle"
	}
	return string(s)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

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
	store := &updater.Store{Dir: o.stateDir, LockTimeout: stateLockTimeout}
	if _, err := store.Load(name); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rolling back %q: no such service in %s: check the name, or pass --state-dir", name, o.stateDir)
		}
		return fmt.Errorf("rolling back %q: %w", name, err)
	}
	pm, err := connectPodman(ctx, o.podmanURL)
	if err != nil {
		return err
	}
	svc := &service{name: name, store: store, pm: pm, log: newLogger(slog.LevelWarn)}
	from := ""
	if st, err := store.Load(name); err == nil {
		from = st.ImageID
	}
	st, err := svc.rollback(ctx)
	if err != nil {
		return err
	}
	when := "at its next start"
	if ls, ok := readLive(o.stateDir, name); ok && ls.State != launcher.StateStopped {
		when = "at its next start (it is " + string(ls.State) + " now and is not interrupted: systemctl stop " + name + ".service to apply it now)"
	}
	fmt.Fprintf(stdout, "%s: rolled back from image %s to %s; digest %s will not be deployed again; runs %s\n",
		name, shortImageID(from), shortImageID(st.ImageID), shortImageID(lastOr(st.FailedDigests)), when)
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

// connectPodman connects to the Podman API at url, within 30s.
func connectPodman(ctx context.Context, url string) (*launcher.Podman, error) {
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return launcher.NewPodman(pctx, url)
}

// registrySettings are how a service reaches its registry.
type registrySettings struct {
	authFile  string
	tlsVerify *bool // nil: verify
}

func (r registrySettings) skipTLSVerify() bool { return r.tlsVerify != nil && !*r.tlsVerify }

func (r registrySettings) registry() *updater.DockerRegistry {
	return &updater.DockerRegistry{AuthFile: r.authFile, InsecureSkipTLSVerify: r.skipTLSVerify()}
}

// podmanImages is local image storage as the updater sees it.
type podmanImages struct {
	pm  podmanAPI
	set registrySettings
}

func (p podmanImages) Image(ctx context.Context, nameOrID string) (updater.Image, bool, error) {
	img, ok, err := p.pm.Image(ctx, nameOrID)
	if err != nil || !ok {
		return updater.Image{}, ok, err
	}
	return updater.Image{ID: img.ID, Digests: img.Digests}, true, nil
}

func (p podmanImages) Pull(ctx context.Context, ref string) error {
	return p.pm.PullWith(ctx, ref, launcher.PullOptions{AuthFile: p.set.authFile, SkipTLSVerify: p.set.skipTLSVerify()})
}

// tlsFlag is a boolean flag that knows whether it was set.
type tlsFlag struct{ set, value bool }

func (f *tlsFlag) String() string   { return fmt.Sprint(f.value) }
func (f *tlsFlag) IsBoolFlag() bool { return true }
func (f *tlsFlag) Set(s string) error {
	switch strings.ToLower(s) {
	case "true", "1", "t":
		f.value = true
	case "false", "0", "f":
		f.value = false
	default:
		return fmt.Errorf("invalid value %q: use true or false", s)
	}
	f.set = true
	return nil
}
