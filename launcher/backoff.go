package launcher

import (
	"context"
	"time"

	"github.com/lazypod/lazypod/internal/backoff"
)

// Crash-loop backoff: after a failed start, or an exit sooner than
// stableAfter after becoming ready, the next start waits backoffMin,
// doubling with each further failure up to backoffMax. A container that
// stays up for stableAfter clears the count.
const (
	backoffMin  = 500 * time.Millisecond
	backoffMax  = 30 * time.Second
	stableAfter = 10 * time.Second
)

// noteFailure counts a death at now. l.mu is held.
func (l *Launcher) noteFailure(now time.Time) {
	l.failures++
	l.lastFailure = now
}

// backoffDelay returns how long a start at now must wait. l.mu is held.
func (l *Launcher) backoffDelay(now time.Time) time.Duration {
	if l.failures == 0 {
		return 0
	}
	d := backoffMax
	if l.failures <= 16 {
		d = min(backoffMin<<(l.failures-1), backoffMax)
	}
	return max(0, l.lastFailure.Add(d).Sub(now))
}

// waitBackoff waits delay, calling announce first if there is any. It
// returns ctx's cause if ctx ends sooner.
func waitBackoff(ctx context.Context, delay time.Duration, announce func()) error {
	if delay <= 0 {
		return nil
	}
	announce()
	if !backoff.Sleep(ctx.Done(), delay) {
		return context.Cause(ctx)
	}
	return nil
}
