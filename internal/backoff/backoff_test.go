package backoff

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestDelay(t *testing.T) {
	d := Delay{Min: 5 * time.Millisecond, Max: 30 * time.Millisecond}
	var got []time.Duration
	for range 5 {
		got = append(got, d.Next())
	}
	want := []time.Duration{5, 10, 20, 30, 30}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays = %v; want %v ms", got, want)
		}
	}
	d.Reset()
	if got := d.Next(); got != 5*time.Millisecond {
		t.Errorf("Next after Reset = %v; want 5ms", got)
	}
}

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !Sleep(make(chan struct{}), time.Second) || time.Since(start) != time.Second {
			t.Errorf("Sleep(1s) with nothing done: slept %v; want all of it", time.Since(start))
		}
		done := make(chan struct{})
		time.AfterFunc(100*time.Millisecond, func() { close(done) })
		start = time.Now()
		if Sleep(done, time.Hour) || time.Since(start) != 100*time.Millisecond {
			t.Errorf("Sleep(1h) ended by done after %v: want false at 100ms", time.Since(start))
		}
	})
}
