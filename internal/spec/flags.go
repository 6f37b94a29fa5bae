package spec

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"
)

// ErrUsage marks errors in what a user typed: lazypod exits 2 for them.
var ErrUsage = errors.New("usage")

// FlagError is a bad value of one flag. It matches ErrUsage.
type FlagError struct {
	Flag  string // without dashes
	Value string
	Err   error // what is wrong: how to fix it
}

func (e *FlagError) Error() string {
	return fmt.Sprintf("invalid --%s %q: %v", e.Flag, e.Value, e.Err)
}

func (e *FlagError) Unwrap() error        { return e.Err }
func (e *FlagError) Is(target error) bool { return target == ErrUsage }

// usageError is any other problem with what a user typed. It matches
// ErrUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == ErrUsage }

// Usagef returns an error about what a user typed, one line that names the
// value and how to fix it; it matches ErrUsage.
func Usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// ParseServe parses the arguments of `lazypod serve` into serve's
// defaults: flags, then after "--" the container's command (with --image),
// or a podman run command line, [OPTIONS...] IMAGE [COMMAND...] (without),
// kept in Run for Podman's own parser. Every value is
// checked by this package's parser of its kind; an error matches ErrUsage
// and names the bad value. --help gives flag.ErrHelp. Name defaults to the
// image's; PodmanURL and StateDir stay empty for the caller's defaults.
// It reads no file: the files named (--env-file, --authfile) are read when
// serve starts.
func ParseServe(args []string) (Serve, error) {
	s := Defaults()
	fs := serveFlagSet(&s)
	if err := fs.parse(args); err != nil {
		return s, err
	}
	tail := fs.Args()
	if n := len(tail); n > 0 && (len(args) <= n || args[len(args)-n-1] != "--") {
		return s, Usagef("unexpected argument %q: put the container's command after --, e.g. lazypod serve --image IMG -- /bin/app --flag", tail[0])
	}
	if len(tail) > 0 && s.Image != "" {
		s.Command = tail
	} else if len(tail) > 0 {
		s.Run = tail
	}
	return s, s.check()
}

// PrintServeFlags writes the flags of `lazypod serve` and what they do.
func PrintServeFlags(w io.Writer) {
	var s Serve
	fs := serveFlagSet(&s)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// check checks what involves several flags.
func (s *Serve) check() error {
	if s.Image == "" && len(s.Run) == 0 {
		return Usagef("missing --image: name the container image to run, e.g. --image docker.io/library/nginx:latest, or give a podman run command line after --")
	}
	if s.Name == "" && s.Image != "" {
		s.Name = DefaultName(s.Image)
		if err := CheckName(s.Name); err != nil {
			return Usagef("invalid --name %q (from the image): %v: pass --name", s.Name, err)
		}
	}
	if len(s.Ports) == 0 {
		return Usagef("missing --port: name the container port each socket forwards to, e.g. --port 8080")
	}
	return s.CheckPolicy()
}

// CheckPolicy checks that the update policy can check the image.
func (s *Serve) CheckPolicy() error {
	if err := s.AutoUpdate.CheckImage(s.Image); s.Image != "" && err != nil {
		return Usagef("invalid image %q for --auto-update %s: %v", s.Image, s.AutoUpdate, err)
	}
	return nil
}

// flagSet is serve's flags, each checked as it is parsed.
type flagSet struct {
	*flag.FlagSet
	bad error // the first bad value
}

// value defines flag name, whose every value set checks and stores.
func (fs *flagSet) value(name, usage string, set func(string) error) {
	fs.Func(name, usage, func(v string) error {
		err := set(v)
		if err != nil && fs.bad == nil {
			fs.bad = &FlagError{Flag: name, Value: v, Err: err}
		}
		return err
	})
}

// duration defines a duration flag parsed by parse into dst.
func (fs *flagSet) duration(dst *time.Duration, name, usage string, parse func(string) (time.Duration, error)) {
	fs.value(name, usage, func(v string) (err error) {
		*dst, err = parse(v)
		return err
	})
}

// list defines a repeatable flag whose values check accepts.
func (fs *flagSet) list(dst *[]string, name, usage string, check func(string) error) {
	fs.value(name, usage, func(v string) error {
		*dst = append(*dst, v)
		return check(v)
	})
}

// boolean defines a flag given alone (--NAME) or with a value
// (--NAME=false), stored in *dst, which stays nil without the flag.
func (fs *flagSet) boolean(dst **bool, name, usage string) {
	fs.BoolFunc(name, usage, func(v string) error {
		b, err := ParseBool(v)
		if err != nil && fs.bad == nil {
			fs.bad = &FlagError{Flag: name, Value: v, Err: err}
		}
		*dst = &b
		return err
	})
}

func (fs *flagSet) parse(args []string) error {
	err := fs.Parse(args)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return err
	case fs.bad != nil:
		return fs.bad
	}
	return Usagef("%s: see lazypod serve --help", OneLine(err.Error()))
}

// OneLine returns s, quoted when it holds control characters, line or
// paragraph separators or invalid UTF-8, so that a message about what a
// user typed stays on one line.
func OneLine(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' || r == '\u2028' || r == '\u2029' || r == '\u0085' {
			return strconv.Quote(s)
		}
	}
	return s
}

// serveFlagSet defines serve's flags, each setting its field of s.
func serveFlagSet(s *Serve) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet("serve", flag.ContinueOnError)}
	fs.SetOutput(io.Discard)
	fs.value("image", "container image `REF` to run (required)", func(v string) error {
		s.Image = v
		return CheckImage(v)
	})
	fs.value("name", "service and container `NAME` (default: the image's basename)", func(v string) error {
		s.Name = v
		return CheckName(v)
	})
	fs.value("port", "`[FDNAME=]PORT[/tcp|/udp]`: container port the socket FDNAME forwards to (repeatable)", func(v string) error {
		p, err := ParsePort(v)
		s.Ports = append(s.Ports, p)
		return err
	})
	fs.value("listen", "`[FDNAME=]ADDR`: bind HOST:PORT, unix:/PATH or udp:HOST:PORT when not socket-activated (repeatable)", func(v string) error {
		l, err := ParseListen(v)
		s.Listens = append(s.Listens, l)
		return err
	})
	fs.duration(&s.IdleTimeout, "idle-timeout", "stop the container after this `DURATION` with no open connection (0: never; default 5m)", ParseDuration)
	fs.duration(&s.UDPTimeout, "udp-timeout", "a UDP flow with no datagram either way for this `DURATION` is closed (default 30s)", ParsePositiveDuration)
	fs.boolean(&s.ExitOnIdle, "exit-on-idle", "exit after the idle stop (default: on when socket-activated, off with --listen)")
	fs.value("idle-action", "what to do with the container at idle: `ACTION` stop, or pause (freeze it: the next start only thaws it)", func(v string) (err error) {
		s.IdleAction, err = ParseIdleAction(v)
		return err
	})
	fs.value("ready", "readiness `PROBE`: listening, tcp, http:/PATH, exec:COMMAND, healthcheck, notify or none (default: listening)", func(v string) (err error) {
		s.Ready, err = ParseProbe(v)
		return err
	})
	fs.duration(&s.ReadyTimeout, "ready-timeout", "how long connections wait for readiness (`DURATION`, default 60s)", ParsePositiveDuration)
	fs.duration(&s.StopTimeout, "stop-timeout", "grace before the container is killed on stop (`DURATION`, default 10s)", ParsePositiveDuration)
	fs.value("max-connections", "at most `N` open TCP connections; more wait in the kernel's listen backlog (auto: sized to the open-file limit; -1: no cap)", func(v string) (err error) {
		s.MaxConnections, err = ParseMaxConnections(v)
		return err
	})
	fs.duration(&s.FlowIdleTimeout, "flow-idle-timeout", "close a TCP connection that moves no byte either way for this `DURATION` (0: never)", ParseDuration)
	fs.value("podman-url", "Podman API `URI` (default: $CONTAINER_HOST, else the rootless socket, else /run/podman/podman.sock)", func(v string) error {
		s.PodmanURL = v
		return CheckPodmanURL(v)
	})
	fs.StringVar(&s.StateDir, "state-dir", "", "state `DIR` (default: $STATE_DIRECTORY, else /var/lib/lazypod as root, else $XDG_STATE_HOME/lazypod)")
	fs.value("log-level", "`LEVEL` of logging: debug, info, warn or error (default info)", func(v string) (err error) {
		s.LogLevel, err = ParseLogLevel(v)
		return err
	})
	fs.value("metrics-file", "write counters and histograms to `FILE` in Prometheus' text format, for node_exporter's textfile collector: name it *.prom, in that collector's directory", func(v string) (err error) {
		if s.MetricsFile, err = filepath.Abs(v); err != nil {
			return err
		}
		return CheckMetricsFile(s.MetricsFile)
	})
	fs.value("needs", "hold socket `PATH` of a service the container needs (repeatable): that service is started first, and kept from its idle stop while this container runs", func(v string) error {
		p, err := filepath.Abs(v)
		s.Needs = append(s.Needs, p)
		if err != nil {
			return err
		}
		return CheckHoldPath(p)
	})
	containerFlags(fs, s)
	updateFlags(fs, s)
	return fs
}

// containerFlags defines the flags that set up the container.
func containerFlags(fs *flagSet, s *Serve) {
	fs.list(&s.Env, "env", "container environment `KEY=VALUE` (repeatable)", CheckKeyValue)
	fs.value("env-file", "read container environment from `FILE` when serve starts (repeatable)", func(v string) error {
		p, err := filepath.Abs(v)
		s.EnvFiles = append(s.EnvFiles, p)
		return err
	})
	fs.value("volume", "`SRC:DST[:OPTS]` mount, as podman run -v (repeatable)", func(v string) error {
		vol, err := ParseVolume(v)
		s.Volumes = append(s.Volumes, vol)
		return err
	})
	fs.list(&s.Labels, "label", "container label `KEY=VALUE` (repeatable)", CheckLabel)
	fs.value("memory", "memory limit `SIZE`, as podman run --memory: 512m, 2g, 512MiB", func(v string) (err error) {
		s.Memory, err = ParseSize(v)
		return err
	})
	fs.value("cpus", "CPU limit, `N` CPUs, e.g. 0.5", func(v string) (err error) {
		s.CPUs, err = ParseCPUs(v)
		return err
	})
	fs.value("user", "`USER[:GROUP]` to run the container's process as", func(v string) error {
		s.User = v
		return CheckUser(v)
	})
	fs.value("network", "Podman `NETWORK` mode (default: Podman's)", func(v string) error {
		s.Network = v
		return CheckNetwork(v)
	})
}

// updateFlags defines the flags of automatic updates.
func updateFlags(fs *flagSet, s *Serve) {
	fs.value("auto-update", "update `POLICY`: registry, local or disabled (default disabled)", func(v string) (err error) {
		s.AutoUpdate, err = ParsePolicy(v)
		return err
	})
	fs.value("authfile", "registry credentials `FILE` for update checks and pulls, read when serve starts (default: $REGISTRY_AUTH_FILE, else Podman's auth.json)", func(v string) (err error) {
		s.AuthFile, err = filepath.Abs(v)
		return err
	})
	fs.boolean(&s.TLSVerify, "tls-verify", "verify the registry's TLS certificate (default: as registries.conf says, else true; false also allows plain HTTP)")
	fs.duration(&s.RollbackWindow, "rollback-window", "a new image that exits within this `DURATION` of becoming ready is rolled back (0: only probe failures; default 10s)", ParseDuration)
	fs.duration(&s.UpdateInterval, "update-interval", "with --auto-update, check for an update after this `DURATION` idle, and again every DURATION (0: only lazypod update does; default 1h)", ParseDuration)
}

// Args returns the arguments of `lazypod serve` that ParseServe reads back
// as s, a flag and its value per group: every setting that is not serve's
// default, and last the container's command after "--".
func (s Serve) Args() [][]string {
	def := Defaults()
	var out [][]string
	flag := func(name, value string) { out = append(out, []string{"--" + name, value}) }
	str := func(name, v, def string) {
		if v != def {
			flag(name, v)
		}
	}
	dur := func(name string, v, def time.Duration) {
		if v != def {
			flag(name, FormatDuration(v))
		}
	}
	boolean := func(name string, v *bool) {
		if v != nil {
			out = append(out, []string{"--" + name + "=" + strconv.FormatBool(*v)})
		}
	}
	str("name", s.Name, "")
	str("image", s.Image, "")
	for _, p := range s.Ports {
		flag("port", p.String())
	}
	for _, l := range s.Listens {
		flag("listen", l.String())
	}
	str("podman-url", s.PodmanURL, "")
	str("state-dir", s.StateDir, "")
	dur("idle-timeout", s.IdleTimeout, def.IdleTimeout)
	boolean("exit-on-idle", s.ExitOnIdle)
	str("idle-action", string(s.IdleAction), string(def.IdleAction))
	str("ready", s.Ready.String(), "")
	dur("ready-timeout", s.ReadyTimeout, def.ReadyTimeout)
	dur("stop-timeout", s.StopTimeout, def.StopTimeout)
	dur("udp-timeout", s.UDPTimeout, def.UDPTimeout)
	if s.MaxConnections != def.MaxConnections {
		flag("max-connections", strconv.Itoa(s.MaxConnections))
	}
	dur("flow-idle-timeout", s.FlowIdleTimeout, def.FlowIdleTimeout)
	str("log-level", s.LogLevel, def.LogLevel)
	str("metrics-file", s.MetricsFile, "")
	for _, n := range s.Needs {
		flag("needs", n)
	}
	out = append(out, s.containerArgs()...)
	str("auto-update", string(s.AutoUpdate), string(def.AutoUpdate))
	str("authfile", s.AuthFile, "")
	boolean("tls-verify", s.TLSVerify)
	dur("rollback-window", s.RollbackWindow, def.RollbackWindow)
	dur("update-interval", s.UpdateInterval, def.UpdateInterval)
	if len(s.Command) > 0 {
		out = append(out, append([]string{"--"}, s.Command...))
	}
	if len(s.Run) > 0 {
		out = append(out, append([]string{"--"}, s.Run...))
	}
	return out
}

// containerArgs returns the arguments of the container's settings.
func (s Serve) containerArgs() [][]string {
	var out [][]string
	each := func(name string, vs []string) {
		for _, v := range vs {
			out = append(out, []string{"--" + name, v})
		}
	}
	each("env-file", s.EnvFiles)
	each("env", s.Env)
	for _, v := range s.Volumes {
		out = append(out, []string{"--volume", v.String()})
	}
	each("label", s.Labels)
	if s.Memory != 0 {
		out = append(out, []string{"--memory", s.Memory.String()})
	}
	if s.CPUs != 0 {
		out = append(out, []string{"--cpus", strconv.FormatFloat(s.CPUs, 'f', -1, 64)})
	}
	if s.User != "" {
		out = append(out, []string{"--user", s.User})
	}
	if s.Network != "" {
		out = append(out, []string{"--network", s.Network})
	}
	return out
}
