package metrics

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// read parses the file at path with expfmt's parser, by family name.
func read(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fams, err := Parse(data)
	if err != nil {
		t.Fatalf("parsing %s: %v\n%s", path, err, data)
	}
	return index(fams)
}

// value returns the value of the counter or gauge of family name whose
// labels include lv (name, value, ...), failing the test if there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, lv ...string) float64 {
	t.Helper()
	mf := fams[name]
	if mf == nil {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range mf.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(lv); i += 2 {
			if have[lv[i]] != lv[i+1] {
				continue next
			}
		}
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	t.Fatalf("no %s with labels %v", name, lv)
	return 0
}

func TestWriteAndReadBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lazypod-web.prom")
	flows := []Flow{{Socket: "web", Held: 2, Forwarded: 3, Closed: map[string]uint64{"done": 3, "reset": 1}, BytesToContainer: 100, BytesToClient: 2000}}
	open := 4
	s := &Service{Path: path, Name: "web", Flows: func() []Flow { return flows }, Open: func() int { return open }}
	s.Activation()
	s.Start(80*time.Millisecond, nil)
	s.Start(3*time.Second, nil)
	s.Start(time.Second, errors.New("probe timed out"))
	s.Rollback()
	s.Update("rolled back", nil)
	s.Update("", errors.New("registry down"))
	if err := s.Write(false); err != nil {
		t.Fatal(err)
	}
	f := read(t, path)
	for _, c := range []struct {
		name string
		lv   []string
		want float64
	}{
		{Activations, []string{"service", "web"}, 1},
		{Starts, []string{"result", "ready"}, 2},
		{Starts, []string{"result", "failed"}, 1},
		{Rollbacks, nil, 1},
		{Updates, []string{"result", "rolled_back"}, 1},
		{Updates, []string{"result", "error"}, 1},
		{Updates, []string{"result", "pending"}, 0},
		{Held, []string{"socket", "web"}, 2},
		{Forwarded, []string{"socket", "web"}, 3},
		{Closed, []string{"reason", "done"}, 3},
		{Closed, []string{"reason", "reset"}, 1},
		{Closed, []string{"reason", "not_ready"}, 0},
		{Bytes, []string{"direction", "to_container"}, 100},
		{Bytes, []string{"direction", "to_client"}, 2000},
		{Serving, nil, 1},
		{OpenFlows, nil, 4},
	} {
		if got := value(t, f, c.name, c.lv...); got != c.want {
			t.Errorf("%s%v: got %g; want %g", c.name, c.lv, got, c.want)
		}
	}
	h := f[ColdStart].Metric[0].Histogram
	if h.GetSampleCount() != 2 || h.GetSampleSum() != 3.08 {
		t.Errorf("cold start: count %d, sum %g; want 2, 3.08", h.GetSampleCount(), h.GetSampleSum())
	}
	for _, b := range h.Bucket {
		want := uint64(0)
		switch {
		case b.GetUpperBound() >= 5:
			want = 2
		case b.GetUpperBound() >= 0.1:
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("cold start bucket le=%g: got %d; want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}

	// The next activation's process adds to the file; its exit zeroes
	// the gauges.
	flows2 := []Flow{{Socket: "web", Held: 1, Forwarded: 1, Closed: map[string]uint64{"done": 1}, BytesToContainer: 10, BytesToClient: 20}}
	s2 := &Service{Path: path, Name: "web", Flows: func() []Flow { return flows2 }, Open: func() int { return 1 }}
	s2.Activation()
	s2.Start(200*time.Millisecond, nil)
	if err := s2.Write(false); err != nil {
		t.Fatal(err)
	}
	flows2[0].Forwarded, flows2[0].BytesToClient = 2, 50 // counted since
	if err := s2.Write(true); err != nil {
		t.Fatal(err)
	}
	f = read(t, path)
	for _, c := range []struct {
		name string
		lv   []string
		want float64
	}{
		{Activations, nil, 2},
		{Starts, []string{"result", "ready"}, 3},
		{Forwarded, nil, 5},
		{Bytes, []string{"direction", "to_client"}, 2050},
		{Serving, nil, 0},
		{OpenFlows, nil, 0},
	} {
		if got := value(t, f, c.name, c.lv...); got != c.want {
			t.Errorf("after the second activation: %s%v: got %g; want %g", c.name, c.lv, got, c.want)
		}
	}
	if n := f[ColdStart].Metric[0].Histogram.GetSampleCount(); n != 3 {
		t.Errorf("cold starts after the second activation: got %d; want 3", n)
	}
}

// TestOtherWritersKeepGauges: lazypod update counts into the serve's file
// and leaves the serve's gauges alone.
func TestOtherWritersKeepGauges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.prom")
	serve := &Service{Path: path, Name: "web", Open: func() int { return 7 }}
	serve.Activation()
	if err := serve.Write(false); err != nil {
		t.Fatal(err)
	}
	update := &Service{Path: path, Name: "web"}
	update.Update("pending", nil)
	if err := update.Write(true); err != nil {
		t.Fatal(err)
	}
	serve.Activation() // a restart
	if err := serve.Write(false); err != nil {
		t.Fatal(err)
	}
	f := read(t, path)
	if got := value(t, f, Serving); got != 1 {
		t.Errorf("serving after update wrote: got %g; want 1", got)
	}
	if got := value(t, f, OpenFlows); got != 7 {
		t.Errorf("open after update wrote: got %g; want 7", got)
	}
	if got := value(t, f, Updates, "result", "pending"); got != 1 {
		t.Errorf("updates pending: got %g; want 1", got)
	}
	if got := value(t, f, Activations); got != 2 {
		t.Errorf("activations: got %g; want 2", got)
	}
}

// TestConcurrentWriters: processes writing one file at once lose no count.
func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.prom")
	const writers, rounds = 4, 25
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &Service{Path: path, Name: "web"}
			for range rounds {
				s.Rollback()
				if err := s.Write(false); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := value(t, read(t, path), Rollbacks); got != writers*rounds {
		t.Errorf("rollbacks: got %g; want %d", got, writers*rounds)
	}
}

func TestBadFileMovedAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.prom")
	if err := os.WriteFile(path, []byte("not { metrics\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Service{Path: path, Name: "web"}
	s.Activation()
	err := s.Write(false)
	if err == nil || !strings.Contains(err.Error(), path+".bad") {
		t.Errorf("Write over a bad file: got %v; want an error naming %s.bad", err, path)
	}
	if data, _ := os.ReadFile(path + ".bad"); string(data) != "not { metrics\n" {
		t.Errorf("moved-aside file: got %q", data)
	}
	if got := value(t, read(t, path), Activations); got != 1 {
		t.Errorf("activations in the new file: got %g; want 1", got)
	}
}

func TestMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "web.prom")
	err := (&Service{Path: path, Name: "web"}).Write(false)
	if err == nil || !strings.Contains(err.Error(), filepath.Dir(path)) {
		t.Errorf("Write into a missing directory: got %v; want an error naming it", err)
	}
}
