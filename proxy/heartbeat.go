package proxy

import (
	"log/slog"
	"time"
)

const (
	// DefaultHeartbeatInterval is the HeartbeatInterval that a zero or
	// negative value stands for. It suits any systemd WatchdogSec= of 2s
	// or more and costs one notification a second.
	DefaultHeartbeatInterval = time.Second

	// HeartbeatGrace is how long past its own bound the supervising
	// goroutine keeps calling Heartbeat while it waits on work with such
	// a bound: Backend.Stop past StopTimeout, open flows past DrainTimeout
	// (and the moment they take to close). A Stop that heeds its ctx
	// returns well within it; one that hangs makes the beats stop.
	HeartbeatGrace = 5 * time.Second
)

// heart calls Server.Heartbeat for the supervising goroutine, and only
// from it: the beats stand for that goroutine's liveness.
type heart struct {
	fn   func()
	tick <-chan time.Time // every HeartbeatInterval; nil without Heartbeat
	log  *slog.Logger
}

// on reports whether there is a Heartbeat to call.
func (h *heart) on() bool { return h.fn != nil }

// beat calls Heartbeat.
func (h *heart) beat() { h.fn() }

// await waits until done is closed, for work that should end within bound
// (done closes once it has, whatever its result). Meanwhile it beats on
// every tick, until bound plus HeartbeatGrace has passed: then the work
// has overrun, so it logs that once and beats no more, and systemd's
// watchdog restarts the process if the work never ends. what names the
// work for the log.
func (h *heart) await(done <-chan struct{}, bound time.Duration, what string) {
	if !h.on() {
		<-done
		return
	}
	limit := bound + HeartbeatGrace
	overrun := time.NewTimer(limit)
	defer overrun.Stop()
	tick := h.tick
	for {
		select {
		case <-done:
			return
		case <-tick:
			h.beat()
		case <-overrun.C:
			h.log.Error("overran its time limit; stopping watchdog heartbeats", "work", what, "limit", limit)
			tick = nil
		}
	}
}
