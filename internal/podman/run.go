package podman

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containers/podman/v5/cmd/podman/common"
	"github.com/containers/podman/v5/cmd/podman/utils"
	"github.com/containers/podman/v5/libpod/define"
	"github.com/containers/podman/v5/pkg/domain/entities"
	"github.com/containers/podman/v5/pkg/specgen"
	"github.com/containers/podman/v5/pkg/specgenutil"
	"github.com/lazypod/lazypod/internal/spec"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Run is a podman run command line, as lazypod serve takes it after "--":
// options, IMAGE, COMMAND... The options mean what they mean to podman
// --remote run: Podman's own flag definitions parse them and Podman's own
// code turns them into the container's settings.
type Run struct {
	Options []string // podman run options, as written
	Image   string
	Command []string

	// What ParseRun found in Options that lazypod itself reads:
	Name        string         // --name: the container's name, "" if not given
	StopTimeout *time.Duration // --stop-timeout, if given
	// HostNetwork: --network host. Podman publishes no ports then: the
	// container listens on the host's own.
	HostNetwork bool
	HealthCmd   bool // --health-cmd given (and not "none")
}

// refusedOptions are the podman run options that cannot apply to a
// container lazypod creates and starts on demand, with what to do instead.
var refusedOptions = map[string]string{
	"publish":        "lazypod listens on the host's ports itself: use PublishPort= (--listen), and lazypod publishes the container's ports on 127.0.0.1",
	"publish-all":    "lazypod publishes only the ports it forwards to: name them with PublishPort= (--port)",
	"pod":            "lazypod runs one container per service, which it starts and stops alone: remove Pod=",
	"pod-id-file":    "lazypod runs one container per service, which it starts and stops alone: remove it",
	"sdnotify":       "lazypod tells systemd the service is ready when its sockets listen and waits for the container itself: use Notify= or Ready=",
	"restart":        "lazypod starts the container again at the next connection, and systemd restarts lazypod: remove it",
	"detach":         "lazypod always creates the container detached: remove it",
	"detach-keys":    "lazypod attaches to nothing: remove it",
	"attach":         "lazypod attaches to nothing: remove it",
	"sig-proxy":      "lazypod attaches to nothing: remove it",
	"cidfile":        "lazypod knows its container by name: remove it",
	"conmon-pidfile": "lazypod does not run conmon itself: remove it",
	"pidfile":        "lazypod does not run conmon itself: remove it",
	"replace":        "lazypod replaces an outdated container of its own by itself, and leaves other containers alone: remove it",
	"rmi":            "lazypod keeps the image for the next start and for rollbacks: remove it",
	"init-ctr":       "lazypod runs one container per service, outside pods: remove it",
	"rootfs":         "lazypod runs images, which its updater checks and rolls back: use Image=",
	"preserve-fds":   "file descriptors cannot pass through the Podman API: remove it",
	"preserve-fd":    "file descriptors cannot pass through the Podman API: remove it",
	"authfile":       "lazypod pulls with its own settings: use AuthFile= in [Lazypod] (--authfile)",
	"tls-verify":     "lazypod pulls with its own settings: use TLSVerify= in [Lazypod] (--tls-verify)",
	"creds":          "lazypod pulls with its own settings: log in with podman login and use AuthFile= (--authfile)",
	"cert-dir":       "lazypod pulls with its own settings, and Podman's registries.conf: remove it",
}

// RunError is what Podman's own parser or checks say of a podman run
// command line. It matches spec.ErrUsage.
type RunError struct {
	What string   // "parsing" or "checking"
	Args []string // the command line, or its options
	Msg  string   // Podman's message, one line
}

func (e *RunError) Error() string {
	return fmt.Sprintf("%s the podman run options %q: %s", e.What, strings.Join(e.Args, " "), e.Msg)
}

func (e *RunError) Is(target error) bool { return target == spec.ErrUsage }

// ParseRun splits args, what follows "podman run" (options, IMAGE,
// COMMAND...), with Podman's own flag definitions, and checks the options
// as podman --remote run does. An option that cannot apply to a container
// lazypod starts on demand is refused, naming it and what to write instead
// (see refusedOptions); so are --pull=always and --pull=newer (lazypod's
// updater pulls newer images: use AutoUpdate=), a cgroups mode of split,
// and a passthrough log driver, which remote Podman refuses too. Errors
// match spec.ErrUsage.
func ParseRun(args []string) (Run, error) { return parseRun(args, false) }

// CheckRun is ParseRun for a command line that runs later, maybe on
// another machine: it reads no file the options name (--env-file,
// --label-file) and looks up no user's ID ranges (--subuidname).
func CheckRun(args []string) (Run, error) { return parseRun(args, true) }

func parseRun(args []string, offline bool) (Run, error) {
	cmd, vals := runFlags()
	if err := cmd.Flags().Parse(args); err != nil {
		return Run{}, &RunError{What: "parsing", Args: args, Msg: spec.OneLine(err.Error())}
	}
	rest := cmd.Flags().Args()
	if len(rest) == 0 {
		return Run{}, spec.Usagef("no image in the podman run command line %q: put the image after the options, e.g. -- --env A=1 docker.io/library/nginx:latest", strings.Join(args, " "))
	}
	r := Run{Options: args[:len(args)-len(rest)], Image: rest[0], Command: rest[1:]}
	if err := refuse(cmd, vals); err != nil {
		return Run{}, err
	}
	if cmd.Flags().Changed("name") {
		r.Name = vals.Name
		if err := spec.CheckName(r.Name); err != nil {
			return Run{}, spec.Usagef("invalid container name --name %q: %v", r.Name, err)
		}
	}
	if cmd.Flags().Changed("stop-timeout") {
		d := time.Duration(vals.StopTimeout) * time.Second
		r.StopTimeout = &d
	}
	r.HealthCmd = vals.HealthCmd != "" && vals.HealthCmd != "none"
	if err := spec.CheckImage(r.Image); err != nil {
		return Run{}, spec.Usagef("invalid image %q: %v", r.Image, err)
	}
	sg, err := r.spec(offline)
	if err != nil {
		return Run{}, &RunError{What: "checking", Args: r.Options, Msg: spec.OneLine(err.Error())}
	}
	switch ns := sg.NetNS; {
	case ns.NSMode == specgen.Host:
		r.HostNetwork = true
	case ns.IsContainer() || ns.NSMode == specgen.NoNetwork || ns.NSMode == specgen.Path || ns.IsPod():
		return Run{}, spec.Usagef("podman run option --network %s does not apply to a container started on demand: lazypod forwards to the container's ports, published on 127.0.0.1, and Podman publishes none in that network mode: use a network of the container's own (bridge, a named network, or host)", netMode(ns))
	}
	return r, nil
}

// SortOptions orders podman run options by flag name, --name first, a
// flag's values in the order given, each flag with its value. The
// container's settings do not depend on the order of different flags, so
// the settings stay; the text becomes stable (Quadlet writes some keys in
// the order of a Go map), and with it the container's hash. Options it
// cannot read are returned as they are.
func SortOptions(opts []string) []string {
	cmd, _ := runFlags()
	flags := cmd.Flags()
	type group struct {
		name  string
		words []string
	}
	var groups []group
	for i := 0; i < len(opts); i++ {
		t := opts[i]
		var f *pflag.Flag
		needsNext := false
		switch {
		case strings.HasPrefix(t, "--"):
			name, _, inline := strings.Cut(t[2:], "=")
			if f = flags.Lookup(name); f != nil {
				needsNext = !inline && f.NoOptDefVal == ""
			}
		case strings.HasPrefix(t, "-") && len(t) >= 2:
			// -abc: flags a, b, c; the first that takes a value takes the
			// rest of the word, or the next word.
			for j := 1; j < len(t); j++ {
				sf := flags.ShorthandLookup(t[j : j+1])
				if sf == nil {
					return opts
				}
				if f == nil {
					f = sf
				}
				if sf.NoOptDefVal == "" {
					needsNext = j == len(t)-1
					break
				}
			}
		}
		if f == nil {
			return opts
		}
		g := group{name: f.Name, words: []string{t}}
		if needsNext {
			if i+1 == len(opts) {
				return opts
			}
			i++
			g.words = append(g.words, opts[i])
		}
		groups = append(groups, g)
	}
	slices.SortStableFunc(groups, func(a, b group) int {
		switch {
		case a.name == b.name:
			return 0
		case a.name == "name":
			return -1
		case b.name == "name":
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	out := make([]string, 0, len(opts))
	for _, g := range groups {
		out = append(out, g.words...)
	}
	return out
}

// netMode writes a network mode as --network takes it.
func netMode(ns specgen.Namespace) string {
	if ns.Value != "" {
		return string(ns.NSMode) + ":" + ns.Value
	}
	return string(ns.NSMode)
}

// refuse reports the first option given that cannot apply.
func refuse(cmd *cobra.Command, vals *entities.ContainerCreateOptions) error {
	var given []string
	cmd.Flags().Visit(func(f *pflag.Flag) { given = append(given, f.Name) })
	slices.Sort(given)
	for _, name := range given {
		if why, ok := refusedOptions[name]; ok {
			return spec.Usagef("podman run option --%s does not apply to a container started on demand: %s", name, why)
		}
	}
	switch {
	case cmd.Flags().Changed("pull") && (vals.Pull == "always" || vals.Pull == "newer"):
		return spec.Usagef("podman run option --pull=%s does not apply: lazypod pulls a missing image at the first start, and its updater pulls newer ones between starts: use AutoUpdate= (--auto-update)", vals.Pull)
	case cmd.Flags().Changed("cgroups") && vals.CgroupsMode == "split":
		return spec.Usagef("podman run option --cgroups=split does not apply: the container is created through the Podman API, not under the service's cgroup: remove CgroupsMode= or choose enabled, disabled or no-conmon")
	case vals.LogDriver == define.PassthroughLogging || vals.LogDriver == define.PassthroughTTYLogging:
		return spec.Usagef("podman run option --log-driver %s does not apply: the container is created through the Podman API, as podman --remote, which refuses it: use journald or k8s-file", vals.LogDriver)
	}
	return nil
}

// runFlags returns a command with podman run's flags and the options they
// fill, with the defaults podman --remote run starts from.
func runFlags() (*cobra.Command, *entities.ContainerCreateOptions) {
	vals := new(entities.ContainerCreateOptions)
	cmd := &cobra.Command{Use: "run"}
	flags := cmd.Flags()
	flags.SetInterspersed(false)
	common.DefineCreateDefaults(vals)
	common.DefineCreateFlags(cmd, vals, entities.CreateMode)
	common.DefineNetFlags(cmd)
	if flags.Lookup("env-host") == nil { // podman --remote lacks it; see hostEnv
		flags.BoolVar(&vals.EnvHost, "env-host", false, "use all of lazypod's environment in the container")
	}
	flags.SetNormalizeFunc(utils.AliasFlags)
	return cmd, vals
}

// spec builds the container settings podman --remote run would send for
// r, as cmd/podman's create does: parse, fill in the network options, the
// checks of its CreateInit, FillOutSpecGen, and the health check given by
// flags over the image's.
func (r Run) spec(offline bool) (*specgen.SpecGenerator, error) {
	cmd, vals := runFlags()
	if err := cmd.Flags().Parse(r.Options); err != nil {
		return nil, err
	}
	var err error
	if vals.Net, err = common.NetFlagsToNetOptions(nil, *cmd.Flags()); err != nil {
		return nil, err
	}
	if cmd.Flags().Changed("image-volume") {
		vals.ImageVolume = cmd.Flag("image-volume").Value.String()
	}
	if err := createInit(cmd, vals); err != nil {
		return nil, err
	}
	if offline {
		vals.EnvFile, vals.LabelFile = nil, nil
		vals.SubUIDName, vals.SubGIDName = "", ""
	}
	s := specgen.NewSpecGenerator(r.Image, false)
	if err := specgenutil.FillOutSpecGen(s, vals, append([]string{r.Image}, r.Command...)); err != nil {
		return nil, err
	}
	hostEnv(s, vals)
	if s.HealthConfig == nil {
		if s.HealthConfig, err = common.GetHealthCheckOverrideConfig(cmd, vals); err != nil {
			return nil, err
		}
		// Nothing to override: leave the image's HEALTHCHECK alone. A
		// Podman 5 service reads an empty override so; Podman 4 would
		// take it for "no health check".
		if h := s.HealthConfig; len(h.Test) == 0 && h.Interval == 0 && h.Timeout == 0 && h.StartPeriod == 0 && h.Retries == 0 {
			s.HealthConfig = nil
		}
	}
	// lazypod waits for the container itself (spec.Probe); systemd's
	// notify socket is the Podman service's, not lazypod's.
	s.SdNotifyMode = ""
	return s, nil
}

// hostEnv gives the container the environment podman run takes from its
// own, as Quadlet's podman run takes the service's: all of it with
// --env-host, and the proxy variables unless --http-proxy=false. lazypod
// serve runs in the service's environment (minus what systemd passes it
// alone: the notify socket and the listening sockets); a Podman service
// would use its own, so the values go in the container's environment,
// under those of --env and --env-file.
func hostEnv(s *specgen.SpecGenerator, vals *entities.ContainerCreateOptions) {
	no := false
	s.EnvHost, s.HTTPProxy = &no, &no
	var add []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "NOTIFY_SOCKET" || strings.HasPrefix(k, "LISTEN_"):
		case vals.EnvHost:
			add = append(add, kv)
		case vals.HTTPProxy && slices.Contains(proxyVars, k):
			add = append(add, kv)
		}
	}
	for _, kv := range add {
		k, v, _ := strings.Cut(kv, "=")
		if _, set := s.Env[k]; !set {
			if s.Env == nil {
				s.Env = map[string]string{}
			}
			s.Env[k] = v
		}
	}
}

// proxyVars are the variables podman run --http-proxy passes on.
var proxyVars = []string{"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ftp_proxy", "FTP_PROXY", "no_proxy", "NO_PROXY"}

// createInit is what cmd/podman's CreateInit checks and fills in for a
// container that is not a pod's infra container, for podman --remote
// (Podman 5.8's, reading vals where it reads its package's global).
func createInit(c *cobra.Command, vals *entities.ContainerCreateOptions) error {
	changed := c.Flags().Changed
	if len(vals.UIDMap) > 0 || len(vals.GIDMap) > 0 || vals.SubUIDName != "" || vals.SubGIDName != "" {
		if changed("userns") {
			return errors.New("--userns and --uidmap/--gidmap/--subuidname/--subgidname are mutually exclusive")
		}
		vals.UserNS = "private"
	} else {
		vals.UserNS = c.Flag("userns").Value.String()
	}
	if changed("cpu-period") && changed("cpus") {
		return errors.New("--cpu-period and --cpus cannot be set together")
	}
	if changed("cpu-quota") && changed("cpus") {
		return errors.New("--cpu-quota and --cpus cannot be set together")
	}
	vals.IPC = c.Flag("ipc").Value.String()
	vals.PID = c.Flag("pid").Value.String()
	vals.CgroupNS = c.Flag("cgroupns").Value.String()
	// --group-add keep-groups: podman --remote refuses it, as its caller's
	// groups are not the service's; lazypod's Podman service is the one
	// Quadlet's podman would use, rootful or the user's.
	if changed("oom-score-adj") {
		val, err := c.Flags().GetInt("oom-score-adj")
		if err != nil {
			return err
		}
		vals.OOMScoreAdj = &val
	}
	if changed("pids-limit") {
		var limit int64
		if _, err := fmt.Sscan(c.Flag("pids-limit").Value.String(), &limit); err != nil {
			return err
		}
		vals.PIDsLimit = &limit
	}
	if changed("env") {
		env, err := c.Flags().GetStringArray("env")
		if err != nil {
			return fmt.Errorf("retrieve env flag: %w", err)
		}
		vals.Env = env
	}
	if changed("shm-size") {
		vals.ShmSize = c.Flag("shm-size").Value.String()
	}
	if changed("shm-size-systemd") {
		vals.ShmSizeSystemd = c.Flag("shm-size-systemd").Value.String()
	}
	if (changed("dns") || changed("dns-option") || changed("dns-search")) && vals.Net != nil &&
		(vals.Net.Network.NSMode == specgen.NoNetwork || vals.Net.Network.IsContainer()) {
		return errors.New("conflicting options: dns and the network mode: " + string(vals.Net.Network.NSMode))
	}
	noHosts, err := c.Flags().GetBool("no-hosts")
	if err != nil {
		return err
	}
	if noHosts && changed("add-host") {
		return errors.New("--no-hosts and --add-host cannot be set together")
	}
	if noHosts && changed("hosts-file") {
		return errors.New("--no-hosts and --hosts-file cannot be set together")
	}
	if changed("entrypoint") {
		val := c.Flag("entrypoint").Value.String()
		vals.Entrypoint = &val
	}
	return nil
}
