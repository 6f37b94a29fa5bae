package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/lazypod/lazypod/internal/metrics"
	"github.com/lazypod/lazypod/launcher"
	"github.com/lazypod/lazypod/proxy"
	"github.com/lazypod/lazypod/updater"
)

// metricsDelay is how long after a state change the metrics file is
// written: the changes of one start (or one burst of connections) make one
// write, and the write's disk work comes after the start, not during it.
const metricsDelay = time.Second

// metricsWriter writes serve's metrics file (--metrics-file) from a
// goroutine of its own, after each state change, and at exit. A nil
// *metricsWriter does nothing: no --metrics-file.
type metricsWriter struct {
	m      *metrics.Service
	log    *slog.Logger
	kick   chan struct{}
	failed bool // a write failed: the next failure is logged at debug
}

// newMetricsWriter returns the writer of file for service name, counting
// the flows of srv, or nil if file is "".
func newMetricsWriter(file, name string, log *slog.Logger) *metricsWriter {
	if file == "" {
		return nil
	}
	return &metricsWriter{
		m:    &metrics.Service{Path: file, Name: name},
		log:  log,
		kick: make(chan struct{}, 1),
	}
}

// watch counts srv's flows.
func (w *metricsWriter) watch(srv *proxy.Server) {
	if w == nil {
		return
	}
	w.m.Flows = func() []metrics.Flow { return flowMetrics(srv.Counts()) }
	w.m.Open = srv.Flows
}

// flowMetrics converts the proxy's counts.
func flowMetrics(cs []proxy.Counts) []metrics.Flow {
	out := make([]metrics.Flow, len(cs))
	for i, c := range cs {
		closed := make(map[string]uint64, len(c.Closed))
		for r, n := range c.Closed {
			closed[string(r)] = n
		}
		// A route is named NAME/PROTO (internal/systemd's Routes).
		socket, proto, _ := strings.Cut(c.Route, "/")
		out[i] = metrics.Flow{Socket: socket, Proto: proto, Held: c.Held, Forwarded: c.Forwarded, Closed: closed,
			BytesToContainer: c.BytesToBackend, BytesToClient: c.BytesToClient}
	}
	return out
}

// changed asks for a write, metricsDelay from now unless one is pending.
func (w *metricsWriter) changed() {
	if w == nil {
		return
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// started counts a start of the container.
func (w *metricsWriter) started(st launcher.Started) {
	if w == nil {
		return
	}
	w.m.Start(st.Took, st.Err)
	w.changed()
}

// updated counts an update's outcome; a rolled-back one is a rollback.
func (w *metricsWriter) updated(r updater.Result, err error) {
	if w == nil {
		return
	}
	w.m.Update(string(r), err)
	if r == updater.ResultRolledBack {
		w.m.Rollback()
	}
	w.changed()
}

// run writes the file after each change until ctx ends.
func (w *metricsWriter) run(ctx context.Context) {
	if w == nil {
		return
	}
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		}
		t.Reset(metricsDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		w.write(false)
	}
}

// write writes the file, final at exit, and logs a failure: the first at
// warn, until a write succeeds again.
func (w *metricsWriter) write(final bool) {
	if w == nil {
		return
	}
	err := w.m.Write(final)
	switch {
	case err == nil:
		w.failed = false
	case w.failed:
		w.log.Debug("writing metrics file", "path", w.m.Path, "err", err)
	default:
		w.failed = true
		w.log.Warn("writing metrics file: serving anyway; make its directory exist and be writable by the service (ReadWritePaths=)", "path", w.m.Path, "err", err)
	}
}
