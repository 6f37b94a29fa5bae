// Command lazypod runs a container on demand behind sockets that systemd
// holds: it starts the container on the first connection, forwards traffic,
// and stops it when nothing has flowed for a while.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/lazypod/lazypod/internal/podman"
	"github.com/lazypod/lazypod/internal/spec"
	"github.com/lazypod/lazypod/launcher"
	"github.com/lazypod/lazypod/proxy"
	"github.com/lazypod/lazypod/updater"
)

var (
	_ proxy.Backend      = (*launcher.Launcher)(nil)
	_ proxy.Backend      = hinted{}
	_ proxy.Readier      = hinted{}
	_ proxy.Idler        = hinted{}
	_ launcher.Swapper   = (*updater.Service)(nil)
	_ launcher.Runtime   = (*podman.Client)(nil)
	_ updater.Images     = (*podman.Client)(nil)
	_ updater.Pins       = (*podman.Client)(nil)
	_ updater.Containers = (*podman.Client)(nil)
)

// version is set at build time with -ldflags "-X main.version=..." (the
// Makefile gives git describe's); else the module's, as go install sets it.
var version = ""

const usage = `usage: lazypod COMMAND [flags]

commands:
  serve     serve sockets, starting the container on the first connection
  update    check services for newer images and pull them for their next start
  status    show each service's state, images and last update
  rollback  run a service's previous image from its next start
  units     turn NAME.lazypod definition files into .socket and .service units
  version   print lazypod's version

Run 'lazypod COMMAND --help' for a command's flags.
`

func main() {
	args := os.Args[1:]
	// Installed as a systemd generator (a symlink in
	// /usr/lib/systemd/system-generators or user-generators), lazypod is
	// run by that name with the generator's directories.
	switch filepath.Base(os.Args[0]) {
	case "lazypod-generator":
		args = append([]string{"units", "generator"}, args...)
	case "lazypod-user-generator":
		args = append([]string{"units", "user-generator"}, args...)
	}
	if len(args) > 0 && args[0] == "serve" {
		oneProc()
	}
	os.Exit(run(context.Background(), args, os.Stdout, os.Stderr))
}

// oneProc has the serve process run Go code on one core at a time, unless
// the GOMAXPROCS environment variable says otherwise. A proxy's work is in
// the kernel (accept, connect, splice); with one P the Go scheduler hands
// goroutines to no other thread and spins none. On a 2-core machine
// lazypod spent 5-21% less CPU per request than with two, at request rates
// as high within the spread between rounds (BENCHMARKS.md). It costs some
// bulk throughput (about 5-8% with one to eight parallel 1 GiB streams),
// which a real network link caps far lower anyway. A definition file's
// [Service] section can set Environment=GOMAXPROCS=N to change it.
func oneProc() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// run executes one lazypod command and returns the exit code: 0 on success,
// 2 for usage errors, 1 for anything else.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		var o *spec.Serve
		var r podman.Run
		if o, r, err = parseServe(rest, stderr); err == nil {
			err = serve(ctx, o, r)
		}
	case "update":
		err = runUpdate(ctx, rest, stdout, stderr)
	case "status":
		err = runStatus(ctx, rest, stdout, stderr)
	case "rollback":
		err = runRollback(ctx, rest, stdout, stderr)
	case "units":
		err = runUnits(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, versionLine())
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = usagef("unknown command %q: run lazypod help", cmd)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errGeneratorReported):
		return 1
	}
	fmt.Fprintf(stderr, "lazypod: %s\n", withHint(err))
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// hinted is the launcher as the proxy's backend, with what to do added to
// the errors that reach the journal per connection.
type hinted struct{ *launcher.Launcher }

func (h hinted) Start(ctx context.Context) error {
	if err := h.Launcher.Start(ctx); err != nil {
		if hint := hintFor(err); hint != "" {
			return fmt.Errorf("%w: %s", err, hint)
		}
		return err
	}
	return nil
}

// withHint is err's message with what to do about it, for the errors that
// have a known remedy.
func withHint(err error) string {
	if hint := hintFor(err); hint != "" {
		return err.Error() + ": " + hint
	}
	return err.Error()
}

// hintFor says how to fix err, or "" when there is nothing to add.
func hintFor(err error) string {
	switch {
	case errors.Is(err, errNoSockets):
		return "start lazypod from its .socket unit or pass --listen"
	case errors.Is(err, launcher.ErrNoPodman):
		return "start the Podman API (systemctl enable --now podman.socket, or with --user as that user) or pass --podman-url"
	case errors.Is(err, launcher.ErrNotOurs):
		return "remove that container or choose another --name"
	case errors.Is(err, launcher.ErrRollback):
		return "lazypod status shows the images; make one available (podman pull, or push a fixed image and run lazypod update) and connect again"
	case errors.Is(err, updater.ErrCorrupt):
		if cerr := (*updater.CorruptError)(nil); errors.As(err, &cerr) && cerr.SetAside != "" {
			return "the file was set aside; the next start runs the image the service's container last ran and writes a new state"
		}
		return "the service's next start sets the file aside and runs the image its container last ran; or move the file away yourself"
	case errors.Is(err, updater.ErrNoService):
		return "check the name, or pass --state-dir"
	case errors.Is(err, updater.ErrLocked):
		return "another lazypod process (serve or update) holds the service; try again"
	case errors.Is(err, launcher.ErrImageNotFound):
		return "check --image, use a fully qualified name, and for a private registry run podman login"
	case errors.Is(err, launcher.ErrRegistryAuth):
		return "run podman login for the registry (as the user that runs the service), or pass --authfile"
	case errors.Is(err, updater.ErrNotPin):
		return "that container is not lazypod's: remove or rename it, and lazypod makes its own"
	}
	return ""
}
