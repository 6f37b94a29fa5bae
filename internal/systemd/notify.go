package systemd

import (
	"log/slog"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier tells systemd what lazypod is doing. Without NOTIFY_SOCKET every
// call is a no-op: SdNotify reports (false, nil) and that is fine.
type Notifier struct {
	// Logger receives failures to notify, at debug level. Required.
	Logger *slog.Logger
}

func (n Notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.Logger.Debug("notifying systemd", "state", state, "err", err)
	}
}

// Ready says the service is ready (READY=1), with a status line.
func (n Notifier) Ready(status string) { n.send(daemon.SdNotifyReady + "\nSTATUS=" + status) }

// Status sets the line systemctl status shows.
func (n Notifier) Status(line string) { n.send("STATUS=" + line) }

// Stopping says the service is stopping (STOPPING=1).
func (n Notifier) Stopping() { n.send(daemon.SdNotifyStopping + "\nSTATUS=stopping") }

// Watchdog returns the ping for systemd's watchdog and how often to send
// it, half of WatchdogSec=; nil and 0 when no watchdog is set. The caller
// sends it from the goroutine whose liveness it stands for.
func (n Notifier) Watchdog() (ping func(), every time.Duration) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return nil, 0
	}
	return func() { n.send(daemon.SdNotifyWatchdog) }, interval / 2
}

// Logger logs text to stderr at level (debug, info, warn or error; else
// info). Under journald (JOURNAL_STREAM set), which stamps every line
// itself, it leaves out the time.
func Logger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: l}
	if os.Getenv("JOURNAL_STREAM") != "" {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
