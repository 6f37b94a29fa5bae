package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
)

// jobTimeout bounds the wait for one job's result.
const jobTimeout = 90 * time.Second

// UnitDir is where installed units go: /etc/systemd/system, or the user's
// ~/.config/systemd/user.
func UnitDir(user bool) (string, error) {
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

// Want links each unit of units into sockets.target.wants (a socket) or
// timers.target.wants (a timer) in dir, as enabling them would: what a
// generator does for the units it writes.
func Want(dir string, units []string) error {
	var errs []error
	for _, unit := range units {
		wants := "sockets.target.wants"
		if strings.HasSuffix(unit, ".timer") {
			wants = "timers.target.wants"
		}
		wd := filepath.Join(dir, wants)
		if err := os.MkdirAll(wd, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		link := filepath.Join(wd, unit)
		os.Remove(link)
		if err := os.Symlink(filepath.Join("..", unitFile(dir, unit)), link); err != nil {
			errs = append(errs, fmt.Errorf("enabling %s: %w", unit, err))
		}
	}
	return errors.Join(errs...)
}

// unitFile is the file in dir that defines unit: its own, or for an
// instance with no file of its own (web@8081.socket) its template's
// (web@.socket).
func unitFile(dir, unit string) string {
	if _, err := os.Stat(filepath.Join(dir, unit)); err == nil {
		return unit
	}
	prefix, rest, ok := strings.Cut(unit, "@")
	if !ok {
		return unit
	}
	return prefix + "@" + rest[strings.LastIndexByte(rest, '.'):]
}

// Manager is a connection to a service manager over D-Bus.
type Manager struct {
	conn *sddbus.Conn
	user bool
}

// Connect connects to the system's service manager (root: its private
// socket, which needs no D-Bus daemon) or, with user, the user's. The
// connection lives as long as ctx: godbus closes it when ctx ends.
func Connect(ctx context.Context, user bool) (*Manager, error) {
	connect := sddbus.NewSystemdConnectionContext
	who := "systemd"
	if user {
		connect = sddbus.NewUserConnectionContext
		who = "the user's systemd (is XDG_RUNTIME_DIR set and a user session running?)"
	}
	c, err := connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s over D-Bus: %w", who, err)
	}
	return &Manager{conn: c, user: user}, nil
}

// Close closes the connection.
func (m *Manager) Close() { m.conn.Close() }

// Reload makes the manager read the unit files again (daemon-reload).
func (m *Manager) Reload(ctx context.Context) error {
	if err := m.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("reloading systemd: %w", err)
	}
	return nil
}

// EnableAndStart enables units and starts each of them.
func (m *Manager) EnableAndStart(ctx context.Context, units []string) error {
	if _, _, err := m.conn.EnableUnitFilesContext(ctx, units, false, true); err != nil {
		return fmt.Errorf("enabling %s: %w", strings.Join(units, ", "), err)
	}
	var errs []error
	for _, u := range units {
		if err := runJob(ctx, u, m.conn.StartUnitContext); err != nil {
			errs = append(errs, fmt.Errorf("starting %s: %w: systemctl%s status %s says why", u, err, m.userFlag(), u))
		}
	}
	return errors.Join(errs...)
}

// StopAndDisable stops each of units, in order, and disables them.
func (m *Manager) StopAndDisable(ctx context.Context, units []string) error {
	var errs []error
	for _, u := range units {
		if err := runJob(ctx, u, m.conn.StopUnitContext); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", u, err))
		}
	}
	if _, err := m.conn.DisableUnitFilesContext(ctx, units, false); err != nil {
		errs = append(errs, fmt.Errorf("disabling %s: %w", strings.Join(units, ", "), err))
	}
	return errors.Join(errs...)
}

func (m *Manager) userFlag() string {
	if m.user {
		return " --user"
	}
	return ""
}

// runJob runs a job (start or stop of unit) and waits for its result.
func runJob(ctx context.Context, unit string, job func(context.Context, string, string, chan<- string) (int, error)) error {
	ch := make(chan string, 1)
	if _, err := job(ctx, unit, "replace", ch); err != nil {
		return err
	}
	t := time.NewTimer(jobTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r != "done" {
			return fmt.Errorf("job %s", r)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("job still running after %s", jobTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}
