package podman

import (
	"errors"
	"fmt"
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
	StopTimeout *time.Duration // --stop-timeout, if given
	HealthCmd   bool           // --health-cmd given (and not "none")
}

// refusedOptions are the podman run options that cannot apply to a
// container lazypod creates and starts on demand, with what to do instead.
var refusedOptions = map[string]string{
	"publish":        "lazypod listens on the host's ports itself: use PublishPort= (--listen), and lazypod publishes the container's ports on 127.0.0.1",
	"publish-all":    "lazypod publishes only the ports it forwards to: name them with PublishPort= (--port)",
	"name":           "lazypod names the container: use ContainerName= (--name)",
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

// ParseRun splits args, what follows "podman run" (options, IMAGE,
// COMMAND...), with Podman's own flag definitions, and checks the options
// as podman --remote run does. An option that cannot apply to a container
// lazypod starts on demand is refused, naming it and what to write instead
// (see refusedOptions); so are --pull=always and --pull=newer (lazypod's
// updater pulls newer images: use AutoUpdate=), a cgroups mode of split,
// and a passthrough log driver, which remote Podman refuses too. Errors
// match spec.ErrUsage.
func ParseRun(args []string) (Run, error) {
	cmd, vals := runFlags()
	if err := cmd.Flags().Parse(args); err != nil {
		return Run{}, spec.Usagef("parsing the podman run options %q: %s", strings.Join(args, " "), spec.OneLine(err.Error()))
	}
	rest := cmd.Flags().Args()
	if len(rest) == 0 {
		return Run{}, spec.Usagef("no image in the podman run command line %q: put the image after the options, e.g. -- --env A=1 docker.io/library/nginx:latest", strings.Join(args, " "))
	}
	r := Run{Options: args[:len(args)-len(rest)], Image: rest[0], Command: rest[1:]}
	if err := refuse(cmd, vals); err != nil {
		return Run{}, err
	}
	if cmd.Flags().Changed("stop-timeout") {
		d := time.Duration(vals.StopTimeout) * time.Second
		r.StopTimeout = &d
	}
	r.HealthCmd = vals.HealthCmd != "" && vals.HealthCmd != "none"
	if err := spec.CheckImage(r.Image); err != nil {
		return Run{}, spec.Usagef("invalid image %q: %v", r.Image, err)
	}
	if _, err := r.spec(); err != nil {
		return Run{}, spec.Usagef("checking the podman run options %q: %s", strings.Join(r.Options, " "), spec.OneLine(err.Error()))
	}
	return r, nil
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
	flags.SetNormalizeFunc(utils.AliasFlags)
	return cmd, vals
}

// spec builds the container settings podman --remote run would send for
// r, as cmd/podman's create does: parse, fill in the network options, the
// checks of its CreateInit, FillOutSpecGen, and the health check given by
// flags over the image's.
func (r Run) spec() (*specgen.SpecGenerator, error) {
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
	s := specgen.NewSpecGenerator(r.Image, false)
	if err := specgenutil.FillOutSpecGen(s, vals, append([]string{r.Image}, r.Command...)); err != nil {
		return nil, err
	}
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
	if changed("group-add") && slices.Contains(vals.GroupAdd, "keep-groups") {
		return errors.New("the '--group-add keep-groups' option is not supported in remote mode")
	}
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
