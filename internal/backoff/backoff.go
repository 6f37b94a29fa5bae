package backoff

import (
	"cmp"
	"time"
)

// Defaults for the zero values of Delay.
const (
	DefaultMin = 10 * time.Millisecond
	DefaultMax = time.Second
)

// Delay is a delay that doubles at each Next, from Min up to Max.
type Delay struct {
	// Min is the first delay. If zero, DefaultMin.
	Min time.Duration
	// Max is the longest. If zero, DefaultMax.
	Max  time.Duration
	last time.Duration
}

// Next returns the next delay: Min at first, then twice the last, at most
// Max.
func (d *Delay) Next() time.Duration {
	if d.last == 0 {
		d.last = cmp.Or(d.Min, DefaultMin)
	} else {
		d.last = min(2*d.last, cmp.Or(d.Max, DefaultMax))
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
