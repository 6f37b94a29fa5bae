// Package units turns a lazypod definition file, NAME.lazypod, into the
// systemd units that run it: socket units that listen, NAME.service that
// runs `lazypod serve` on the first connection, and with an update policy
// NAME-update.service and NAME-update.timer (for a template NAME@.lazypod,
// NAME@.socket, NAME@.service, ...). Its functions return text; writing
// the files and talking to systemd is cmd/lazypod's business.
//
// A definition is a Quadlet .container file with a PublishPort= that has
// a host port, read as Quadlet reads one, by Podman's own code: its unit
// file parser (continuation lines, quoting, drop-ins) and
// quadlet.ConvertContainer, which turns [Container] and [Quadlet] into
// the podman run command line that lazypod serve runs after "--". Every
// Quadlet key so means what it means to Quadlet. Lazypod reads three
// keys itself: PublishPort= (its sockets), AutoUpdate= (its updater) and
// Notify= (its readiness probe). [Lazypod] takes lazypod serve's own
// settings; [Unit] becomes NAME.service's as Quadlet writes it; [Service]
// and other sections are appended to NAME.service, [Socket] and [Install]
// to every socket unit. Values are unit-file values: systemd expands the
// specifiers (%h, %i) and, in the command line, $VAR. Parse checks the
// command line with Podman's run flags (specifiers expanded to samples),
// so that a definition that parses gives a service that starts; a bad
// one is refused with an *Error naming the file, line, section and key,
// and how to fix it.
//
// Typical use:
//
//	o := units.RenderOptions{Binary: "/usr/local/bin/lazypod", Quadlet: units.SystemQuadlet(false)}
//	d, err := units.ParseFile("/etc/containers/systemd/whoami.lazypod", o)
//	if err != nil {
//		return err // "whoami.lazypod:4: [Container] PublishPort=80: a host port is needed, ..."
//	}
//	files, err := units.Render(d, o)
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
//   - Keys that cannot apply to a container started on demand are
//     refused: Pod=, Rootfs=, GlobalArgs=, ContainersConfModule=, and the
//     podman run options lazypod serve refuses (internal/podman's
//     ParseRun).
//   - PublishPort= needs a host port and takes no ranges; a listener
//     binds a fixed address (specifiers allowed, $VAR not).
//   - Drop-ins are read from the definition's own directory.
//   - Quadlet units a definition names (.network, .volume, ...) are found
//     in Quadlet's directories, and refused where Podman has no Quadlet.
//   - A command line holding $VAR that Podman's flags refuse once the
//     samples are in is left for lazypod serve to check at start.
package units
