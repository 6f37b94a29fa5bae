package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lazypod/lazypod/internal/atomicfile"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/sys/unix"
)

// Write merges what the process counted since its last Write into the
// metrics file: counters and histograms are added to the file's (so they
// count across activations, and across the processes that write the
// file), and with Open the serve's gauges are set. Writers take turns
// under a lock on the file's directory, and the file is replaced
// atomically, in Prometheus' text format, for node_exporter's textfile
// collector (which reads *.prom: name the file so).
//
// With final, the process is exiting: lazypod_serving and
// lazypod_connections_open become 0, and the file is synced to disk.
// Other writes are not synced, sparing a start the disk's latency.
//
// A file that is not in the text format is moved aside to PATH.bad and a
// new one started; Write then returns an error that says so, after
// writing.
func (s *Service) Write(final bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if final {
		s.mu.Lock()
		s.exited = true
		s.mu.Unlock()
	}
	now := s.families()
	delta := subtract(now, s.written)

	unlock, err := lockDir(filepath.Dir(s.Path))
	if err != nil {
		return err
	}
	defer unlock()
	file, badErr := s.read()
	merged := merge(file, delta)
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range merged {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("encoding metric %s: %w", mf.GetName(), err)
		}
	}
	write := atomicfile.Replace
	if final {
		write = atomicfile.Write
	}
	if err := write(s.Path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing metrics file: %w", err)
	}
	s.written = index(now)
	return badErr
}

// read returns the metric families of the file, none if it does not
// exist. A file that is not in the text format is moved aside to
// PATH.bad, and the error says so.
func (s *Service) read() ([]*dto.MetricFamily, error) {
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading metrics file: %w", err)
	}
	fams, perr := Parse(data)
	if perr == nil {
		return fams, nil
	}
	bad := s.Path + ".bad"
	if err := os.Rename(s.Path, bad); err != nil {
		return nil, fmt.Errorf("metrics file %s is not in Prometheus' text format (%v), and moving it aside failed: %w", s.Path, perr, err)
	}
	return nil, fmt.Errorf("metrics file %s was not in Prometheus' text format (%v): moved it to %s and started a new one", s.Path, perr, bad)
}

// Parse reads metric families in Prometheus' text format, with expfmt's
// own parser, sorted by name. The +Inf bucket of a histogram is dropped:
// the encoder writes it from the sample count.
func Parse(data []byte) ([]*dto.MetricFamily, error) {
	var p expfmt.TextParser
	m, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var out []*dto.MetricFamily
	for _, mf := range m {
		for _, x := range mf.Metric {
			if h := x.Histogram; h != nil {
				h.Bucket = slices.DeleteFunc(h.Bucket, func(b *dto.Bucket) bool { return math.IsInf(b.GetUpperBound(), 1) })
			}
		}
		out = append(out, mf)
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, nil
}

// lockDir takes an exclusive flock(2) on dir, which every writer of a
// metrics file there takes: the file itself is replaced by rename, so it
// cannot carry the lock, and a lock file beside it would show in the
// textfile collector's directory.
func lockDir(dir string) (unlock func(), err error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening metrics directory: %w", &fs.PathError{Op: "open", Path: dir, Err: err})
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("locking metrics directory %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}

// key identifies a metric within its family by its labels.
func key(m *dto.Metric) string {
	var b strings.Builder
	for _, l := range m.Label {
		b.WriteString(l.GetName())
		b.WriteByte('=')
		b.WriteString(l.GetValue())
		b.WriteByte(0)
	}
	return b.String()
}

// index returns fams by name.
func index(fams []*dto.MetricFamily) map[string]*dto.MetricFamily {
	m := make(map[string]*dto.MetricFamily, len(fams))
	for _, mf := range fams {
		m[mf.GetName()] = mf
	}
	return m
}

// subtract returns now less before: each counter's and histogram's
// increase since before, and the gauges as they are now.
func subtract(now []*dto.MetricFamily, before map[string]*dto.MetricFamily) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(now))
	for _, mf := range now {
		prev := map[string]*dto.Metric{}
		if b := before[mf.GetName()]; b != nil {
			for _, m := range b.Metric {
				prev[key(m)] = m
			}
		}
		d := &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type}
		for _, m := range mf.Metric {
			d.Metric = append(d.Metric, combine(m, prev[key(m)], -1))
		}
		out = append(out, d)
	}
	return out
}

// merge returns file with delta added (see Write): a family or metric the
// file lacks is added as delta has it; gauges take delta's value; a
// family whose type changed takes delta's. The result is sorted by name,
// and each family's metrics by labels.
func merge(file, delta []*dto.MetricFamily) []*dto.MetricFamily {
	byName := index(file)
	for _, d := range delta {
		f := byName[d.GetName()]
		if f == nil || f.GetType() != d.GetType() {
			byName[d.GetName()] = d
			continue
		}
		f.Help = d.Help
		have := make(map[string]int, len(f.Metric))
		for i, m := range f.Metric {
			have[key(m)] = i
		}
		for _, m := range d.Metric {
			if i, ok := have[key(m)]; ok {
				f.Metric[i] = combine(f.Metric[i], m, 1)
			} else {
				f.Metric = append(f.Metric, m)
			}
		}
	}
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		if !strings.HasPrefix(mf.GetName(), metricPrefix) || len(mf.Metric) == 0 {
			continue // not lazypod's: a file written by hand is not kept
		}
		slices.SortFunc(mf.Metric, func(a, b *dto.Metric) int { return strings.Compare(key(a), key(b)) })
		out = append(out, mf)
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// combine returns a plus sign times b, for counters and histograms; for a
// gauge, b's value with sign 1 and a's with -1. A nil b leaves a as it is.
// Histograms whose buckets differ (another version's) restart from a's
// when subtracting, and take b's when adding.
func combine(a, b *dto.Metric, sign float64) *dto.Metric {
	if b == nil {
		return a
	}
	switch {
	case a.Counter != nil && b.Counter != nil:
		return &dto.Metric{Label: a.Label, Counter: &dto.Counter{Value: ptr(a.Counter.GetValue() + sign*b.Counter.GetValue())}}
	case a.Gauge != nil:
		if sign > 0 && b.Gauge != nil {
			return b
		}
		return a
	case a.Histogram != nil && b.Histogram != nil:
		return &dto.Metric{Label: a.Label, Histogram: combineHistograms(a.Histogram, b.Histogram, sign)}
	}
	if sign > 0 {
		return b
	}
	return a
}

func combineHistograms(a, b *dto.Histogram, sign float64) *dto.Histogram {
	if !sameBuckets(a, b) {
		if sign > 0 {
			return b
		}
		return a
	}
	add := func(x, y uint64) uint64 {
		if sign < 0 {
			return x - y
		}
		return x + y
	}
	h := &dto.Histogram{
		SampleCount: ptr(add(a.GetSampleCount(), b.GetSampleCount())),
		SampleSum:   ptr(a.GetSampleSum() + sign*b.GetSampleSum()),
	}
	for i, ab := range a.Bucket {
		h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: ab.UpperBound, CumulativeCount: ptr(add(ab.GetCumulativeCount(), b.Bucket[i].GetCumulativeCount()))})
	}
	return h
}

func sameBuckets(a, b *dto.Histogram) bool {
	return slices.EqualFunc(a.Bucket, b.Bucket, func(x, y *dto.Bucket) bool { return x.GetUpperBound() == y.GetUpperBound() })
}
