// Package units turns a lazypod definition file, NAME.lazypod, into the
// systemd units that run it: socket units that listen, NAME.service that
// runs `lazypod serve` on the first connection, and with an update policy
// NAME-update.service and NAME-update.timer. Its functions are pure: they
// read a definition and return text; writing the files and talking to
// systemd is cmd/lazypod's business.
//
// A definition is in systemd unit syntax, read with go-systemd's unit
// parser. [Container] takes Quadlet's keys where the meaning is the same
// (Image=, ContainerName=, Exec=, Environment=, EnvironmentFile=, Volume=,
// Label=, User=, Group=, Network=, PublishPort=, AutoUpdate=, HealthCmd=,
// Notify=, Memory=); [Lazypod] takes lazypod serve's own settings
// (ListenUnix=, Ready=, ReadyTimeout=, IdleTimeout=, StopTimeout=,
// UDPTimeout=, MaxConnections=, FlowIdleTimeout=, ExitOnIdle=, RollbackWindow=, UpdateInterval=, AuthFile=,
// TLSVerify=, CPUs=, LogLevel=, PodmanURL=); [Unit], [Socket], [Service]
// and [Install] are appended to the generated units. Every value is
// checked as lazypod serve will check it, so a definition that parses
// gives a service that starts; a bad one is refused with an *Error naming
// the file, line, section and key, and how to fix it.
//
// Typical use:
//
//	d, err := units.ParseFile("/etc/containers/systemd/whoami.lazypod")
//	if err != nil {
//		return err // "whoami.lazypod:4: [Container] PublishPort=80: a host port is needed, ..."
//	}
//	files, err := units.Render(d, units.RenderOptions{Binary: "/usr/local/bin/lazypod"})
//	if err != nil {
//		return err
//	}
//	for _, f := range files { // whoami.service, whoami.socket, ...
//		err = os.WriteFile(filepath.Join(dir, f.Name), []byte(f.Content), 0o644)
//	}
//
// Each container port gets its own socket unit, because systemd gives one
// FileDescriptorName= to all the sockets of a unit: the first listener's
// port is NAME.socket, every other NAME-tcp-PORT.socket or
// NAME-udp-PORT.socket, each activating NAME.service. Enable all of them.
//
// Limits:
//   - Values are literal. systemd specifiers (%h, %t) and $VARIABLES in
//     a definition are not expanded: the generated ExecStart= escapes them,
//     and paths holding them are refused.
//   - Drop-in directories (NAME.lazypod.d) are not read, and a key of
//     [Container] or [Lazypod] set twice is an error rather than an
//     override. An empty value is an error too, not a reset.
//   - PublishPort= needs a host port and takes no ranges; a listener
//     binds a fixed address. Quadlet keys lazypod serve cannot honour
//     (Pod=, PodmanArgs=, HealthInterval=, ...) are unknown keys.
//   - HealthCmd= becomes lazypod's exec probe, which splits its command on
//     spaces with no quoting: quotes in it are refused.
//   - Files named in EnvironmentFile= and AuthFile= are read when the
//     service starts, not when the units are generated; under the system
//     units' PrivateTmp=yes, files in /tmp are not visible.
//   - Comments inside values continued with a backslash, and values ending
//     in an escaped backslash, are refused: go-systemd and systemd read
//     them differently.
package units
