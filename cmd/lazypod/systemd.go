package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifier tells systemd what lazypod is doing. Without NOTIFY_SOCKET every
// call is a no-op: SdNotify reports (false, nil) and that is fine.
type notifier struct {
	logger *slog.Logger
}

func (n notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.logger.Debug("notifying systemd", "state", state, "err", err)
	}
}

func (n notifier) ready(status string) { n.send(daemon.SdNotifyReady + "\nSTATUS=" + status) }
func (n notifier) status(line string)  { n.send("STATUS=" + line) }
func (n notifier) stopping()           { n.send(daemon.SdNotifyStopping + "\nSTATUS=stopping") }

// watchdog pings systemd at half of WatchdogSec= until ctx is done. It
// returns at once when no watchdog is set.
func (n notifier) watchdog(ctx context.Context) error {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return nil
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			n.send(daemon.SdNotifyWatchdog)
		}
	}
}

// newLogger logs text to stderr; under journald, which stamps every line
// itself, without the time.
func newLogger(level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
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
