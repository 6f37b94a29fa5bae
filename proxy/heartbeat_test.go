package proxy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// beatLog records when Heartbeat was called.
type beatLog struct {
	mu sync.Mutex
	at []time.Time
}

func (b *beatLog) beat() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.at = append(b.at, time.Now())
}

// since returns the beats' times after t0.
func (b *beatLog) since(t0 time.Time) []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var d []time.Duration
	for _, at := range b.at {
		d = append(d, at.Sub(t0))
	}
	return d
}

// checkRegular fails unless beats (times since Run began) are 0, every,
// 2*every, ... up to at least until.
func checkRegular(t *testing.T, beats []time.Duration, every, until time.Duration) {
	t.Helper()
	for i, b := range beats {
		if want := time.Duration(i) * every; b != want {
			t.Fatalf("beat %d: got %v after Run began; want %v (beats %v)", i, b, want, beats)
		}
	}
	if len(beats) == 0 || beats[len(beats)-1] < until {
		t.Fatalf("beats: got %v; want them every %v until at least %v", beats, every, until)
	}
}

func TestHeartbeatWhileIdleAndServing(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		want     time.Duration
	}{
		{name: "set", interval: 10 * time.Second, want: 10 * time.Second},
		{name: "zero", interval: 0, want: DefaultHeartbeatInterval},
		{name: "negative", interval: -time.Second, want: DefaultHeartbeatInterval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, ln, be := bubbleServer(time.Hour, false)
				be.release = make(chan struct{})
				var beats beatLog
				srv.Heartbeat = beats.beat
				srv.HeartbeatInterval = tt.interval
				began := time.Now()
				r := startRun(t, srv)

				time.Sleep(35 * tt.want / 10) // idle
				c := ln.Dial()
				synctest.Wait()
				time.Sleep(3 * tt.want) // held while the backend starts
				close(be.release)
				pipeRoundTrip(t, c, "hello")
				time.Sleep(3 * tt.want) // serving
				c.Close()
				time.Sleep(2 * tt.want) // idle again
				end := time.Since(began)
				synctest.Wait()
				checkRegular(t, beats.since(began), tt.want, end.Truncate(tt.want))
				if err := r.Stop(); err != nil {
					t.Fatalf("Run: %v", err)
				}
			})
		})
	}
}

// TestHeartbeatStopsWhileStatusBlocks checks that the beats stand for the
// supervising goroutine: a Status callback that blocks (it is called from
// that goroutine) stops them, and they resume when it returns.
func TestHeartbeatStopsWhileStatusBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, ln, _ := bubbleServer(time.Hour, false)
		var beats beatLog
		srv.Heartbeat = beats.beat
		srv.HeartbeatInterval = 10 * time.Second
		unblock := make(chan struct{})
		srv.Status = func(line string) {
			if line == "serving 1 connection" {
				<-unblock
			}
		}
		began := time.Now()
		r := startRun(t, srv)

		time.Sleep(15 * time.Second)
		c := ln.Dial()
		pipeRoundTrip(t, c, "hello") // the next status line blocks, at 16s
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if got, want := beats.since(began), []time.Duration{0, 10 * time.Second}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("beats with Status blocked from 16s to 5m15s: got %v; want %v", got, want)
		}

		// Resumed at once, then on the ticker's beat.
		close(unblock)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		want := []time.Duration{0, 10 * time.Second, 315 * time.Second, 320 * time.Second, 330 * time.Second, 340 * time.Second}
		if got := beats.since(began); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("beats after Status returned at 5m15s: got %v; want %v", got, want)
		}
		c.Close()
		if err := r.Stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

// slowStopBackend is a fakeBackend whose Stop takes stopFor, or until its
// ctx ends unless ignoreCtx is set, as with a stuck backend.
type slowStopBackend struct {
	*fakeBackend
	stopFor   time.Duration
	ignoreCtx bool

	mu       sync.Mutex
	returned []time.Time // when each Stop returned
}

func (b *slowStopBackend) Stop(ctx context.Context) error {
	err := b.fakeBackend.Stop(ctx)
	done := ctx.Done()
	if b.ignoreCtx {
		done = nil
	}
	select {
	case <-time.After(b.stopFor):
	case <-done:
		err = ctx.Err()
	}
	b.mu.Lock()
	b.returned = append(b.returned, time.Now())
	b.mu.Unlock()
	return err
}

// Returned returns when each Stop call returned.
func (b *slowStopBackend) Returned() []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.returned...)
}

// TestHeartbeatDuringStop checks that the beats go on while Backend.Stop
// runs within StopTimeout plus HeartbeatGrace, at the idle stop and on
// shutdown, and stop when it overruns that: a Stop that ignores its ctx
// and hangs leaves the watchdog to restart the process.
func TestHeartbeatDuringStop(t *testing.T) {
	const (
		interval    = 10 * time.Second
		stopTimeout = time.Minute
		stopAt      = 53 * time.Second // the idle stop, or the shutdown: off the beat
	)
	tests := []struct {
		name      string
		shutdown  bool // stop on shutdown, not for being idle
		stopFor   time.Duration
		ignoreCtx bool
		hangs     bool // the Stop overruns its bound and grace
	}{
		{name: "idle stop within its time", stopFor: 50 * time.Second},
		{name: "idle stop cut short by its ctx", stopFor: time.Hour},
		{name: "idle stop ignoring ctx within grace", stopFor: stopTimeout + HeartbeatGrace - time.Second, ignoreCtx: true},
		{name: "idle stop hangs", stopFor: 24 * time.Hour, ignoreCtx: true, hangs: true},
		{name: "shutdown stop within its time", shutdown: true, stopFor: 50 * time.Second},
		{name: "shutdown stop hangs", shutdown: true, stopFor: 24 * time.Hour, ignoreCtx: true, hangs: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				idle := stopAt
				if tt.shutdown {
					idle = -1
				}
				srv, ln, fake := bubbleServer(idle, false)
				be := &slowStopBackend{fakeBackend: fake, stopFor: tt.stopFor, ignoreCtx: tt.ignoreCtx}
				srv.Backend = be
				srv.StopTimeout = stopTimeout
				var beats beatLog
				srv.Heartbeat = beats.beat
				srv.HeartbeatInterval = interval
				logger, logs := bufferLogger()
				srv.Logger = logger
				began := time.Now()
				r := startRun(t, srv)

				c := ln.Dial()
				pipeRoundTrip(t, c, "hello")
				c.Close()
				time.Sleep(stopAt)
				if tt.shutdown {
					r.cancel()
				}
				time.Sleep(10 * time.Minute)
				synctest.Wait()
				if len(be.Stops()) == 0 {
					t.Fatal("Stop calls: got none; want one")
				}
				got := beats.since(began)
				overran := strings.Contains(logs.String(), `level=ERROR msg="overran its time limit; stopping watchdog heartbeats" work="stopping backend" limit=1m5s`)

				if tt.hangs {
					// Beats until the Stop's bound and grace have passed,
					// none since.
					limit := stopAt + stopTimeout + HeartbeatGrace
					checkRegular(t, got, interval, limit.Truncate(interval))
					if last := got[len(got)-1]; last > limit {
						t.Errorf("last beat: got %v after Run began; want none after %v (Stop began at %v, StopTimeout %v, grace %v)",
							last, limit, stopAt, stopTimeout, HeartbeatGrace)
					}
					if len(be.Returned()) != 0 {
						t.Fatal("the hanging Stop returned")
					}
					if !overran {
						t.Errorf("log: got %q; want the overrun reported", logs)
					}
					return // the cleanup waits for the Stop to end
				}
				returned := be.Returned() // more than one if Stop failed and was retried
				if len(returned) == 0 {
					t.Fatal("Stop returns: got none; want one")
				}
				// Beats every interval throughout, and after if Run goes on.
				checkRegular(t, got, interval, returned[0].Sub(began).Truncate(interval))
				if overran {
					t.Errorf("log: got %q; want no overrun", logs)
				}
			})
		})
	}
}

// stuckStartBackend is a fakeBackend whose Start waits for unstick,
// ignoring its ctx, as a backend that hangs would.
type stuckStartBackend struct {
	*fakeBackend
	unstick chan struct{}
}

func (b *stuckStartBackend) Start(ctx context.Context) error {
	<-b.unstick
	return nil
}

// TestHeartbeatDuringDrain checks that the beats go on while open flows
// drain on shutdown, and stop if a flow does not end within HeartbeatGrace
// once DrainTimeout has passed and it was told to.
func TestHeartbeatDuringDrain(t *testing.T) {
	const (
		interval = 10 * time.Second
		drain    = 30 * time.Second
		cancelAt = 13 * time.Second // off the beat
	)
	tests := []struct {
		name  string
		stuck bool // the flow is held by a Start that ignores its ctx
	}{
		{name: "flow ends within drain"},
		{name: "flow outlasts drain and closes"},
		{name: "flow stuck", stuck: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, ln, fake := bubbleServer(-1, false)
				srv.DrainTimeout = drain
				be := &stuckStartBackend{fakeBackend: fake, unstick: make(chan struct{})}
				srv.Backend = be
				var beats beatLog
				srv.Heartbeat = beats.beat
				srv.HeartbeatInterval = interval
				began := time.Now()
				r := startRun(t, srv)

				c := ln.Dial()
				defer c.Close()
				if !tt.stuck {
					close(be.unstick)
					pipeRoundTrip(t, c, "hello")
				}
				if tt.name == "flow ends within drain" {
					time.AfterFunc(cancelAt+drain/2, func() { c.Close() })
				}
				time.Sleep(cancelAt)
				r.cancel()
				time.Sleep(10 * time.Minute)
				synctest.Wait()
				got := beats.since(began)

				if tt.stuck {
					limit := cancelAt + drain + HeartbeatGrace
					checkRegular(t, got, interval, limit.Truncate(interval))
					if last := got[len(got)-1]; last > limit {
						t.Errorf("last beat: got %v after Run began; want none after %v (cancelled at %v, DrainTimeout %v, grace %v)",
							last, limit, cancelAt, drain, HeartbeatGrace)
					}
					if r.Returned() {
						t.Fatal("Run returned with a flow stuck")
					}
					close(be.unstick)
					<-r.done
					return
				}
				<-r.done
				if r.err != nil {
					t.Fatalf("Run: %v", r.err)
				}
				want := cancelAt + drain
				if tt.name == "flow ends within drain" {
					want = cancelAt + drain/2
				}
				checkRegular(t, got, interval, want.Truncate(interval))
			})
		})
	}
}
