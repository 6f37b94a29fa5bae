package launcher

import (
	"context"
	"time"

	"github.com/lazypod/lazypod/internal/backoff"
	"github.com/lazypod/lazypod/internal/spec"
)

// exitWatch reports the exit of one started container.
type exitWatch struct {
	done   chan struct{} // closed when the container has exited
	code   int           // its exit code, set before done is closed
	cancel context.CancelFunc
}

// exited reports whether the container has exited.
func (w *exitWatch) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// watchExit starts watching container id of generation gen, under Run's
// context. The start calls it once the container runs; it serves both the
// probe loop (an exit fails the start at once) and, after ready, the move
// back to stopped.
func (l *Launcher) watchExit(gen uint64, id string) *exitWatch {
	ctx, cancel := context.WithCancel(l.runCtx)
	w := &exitWatch{done: make(chan struct{}), cancel: cancel}
	l.wg.Add(1) // the calling start holds the group above zero
	go l.watchContainer(ctx, gen, id, w)
	return w
}

// watchContainer waits for container id to exit, retrying when the wait
// itself fails (a restarted Podman service, say), until ctx ends.
func (l *Launcher) watchContainer(ctx context.Context, gen uint64, id string, w *exitWatch) {
	defer l.wg.Done()
	defer w.cancel()
	retry := backoff.Delay{Min: 100 * time.Millisecond, Max: backoffMax}
	for {
		code, err := l.rt.Wait(ctx, id)
		if err == nil {
			w.code = code
			close(w.done)
			l.containerExited(ctx, gen, id, w)
			return
		}
		if ctx.Err() != nil {
			return
		}
		d := retry.Next()
		l.log.Warn("waiting for container exit", "container", spec.ShortID(id), "err", err, "retry_in", d)
		if !backoff.Sleep(ctx.Done(), d) {
			return
		}
	}
}

// containerExited moves the ready container id of generation gen, watched
// by w, that exited to stopped, so the next Start starts it again. Exits
// during a start are the start's to handle, and exits during or after a
// Stop are expected, as are those of a start's containers that are not
// the ready one (removed for a rollback).
// A container on trial that exits within the rollback window fails its
// image: the Swapper hears it before the next start chooses.
func (l *Launcher) containerExited(ctx context.Context, gen uint64, id string, w *exitWatch) {
	code := w.code
	l.mu.Lock()
	if l.gen != gen || l.state != StateReady || l.watch != w {
		l.mu.Unlock()
		return
	}
	up := time.Since(l.readyAt)
	if up < stableAfter {
		l.noteFailure(time.Now())
	} else {
		l.failures = 0
	}
	failed := ""
	var prev, done chan struct{}
	if l.trialImage != "" && up < l.cfg.rollbackWindow() {
		failed = l.trialImage
		prev, done = l.swapDone, make(chan struct{})
		l.swapDone = done
	}
	l.trialImage = ""
	l.setState(StateStopped)
	l.mu.Unlock()
	l.releaseNeeds()
	l.log.Warn("container exited", "container", spec.ShortID(id), "code", code, "uptime", up)
	l.status("container %s exited with code %d", l.cfg.Name, code)
	if failed == "" {
		return
	}
	defer close(done)
	if prev != nil {
		<-prev // this start's Ready, bounded by callTimeout
	}
	err := l.exitError(ctx, id, code)
	if ee, ok := err.(*ExitError); ok {
		ee.uptime = max(up, time.Nanosecond)
	}
	l.log.Warn("image failed within the rollback window", "image", spec.ShortID(failed), "uptime", up)
	l.swapperFailed(ctx, failed, err)
}
