// Package backoff is the one shape of lazypod's retry loops: a delay that
// doubles from a first value up to a cap, and a sleep that ends early.
// The proxy's accept and connect retries, the launcher's exit watcher and
// crash-loop delay, and the updater's lock polling use it.
//
// Typical use:
//
//	delay := backoff.Delay{Min: 5 * time.Millisecond, Max: time.Second}
//	for {
//		if err := try(); err == nil {
//			delay.Reset()
//			continue
//		}
//		if !backoff.Sleep(ctx.Done(), delay.Next()) {
//			return ctx.Err()
//		}
//	}
//
// Limits: no jitter; the loops it serves retry a local peer (a Podman
// socket, a listener, a file lock), not a crowd of remote clients.
package backoff

import "time"

// Delay is a delay that doubles at each Next, from Min up to Max. Its
// zero value is not useful: set both.
type Delay struct {
	Min, Max time.Duration
	last     time.Duration
}

// Next returns the next delay: Min at first, then twice the last, at most
// Max.
func (d *Delay) Next() time.Duration {
	if d.last == 0 {
		d.last = d.Min
	} else {
		d.last = min(2*d.last, d.Max)
	}
	return d.last
}

// Reset makes the next delay Min again.
func (d *Delay) Reset() { d.last = 0 }

// Sleep waits for d, or until done is closed (a ctx.Done(), a stop
// channel); it reports whether it waited for all of d.
func Sleep(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		return true
	}
}
