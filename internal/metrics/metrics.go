package metrics

import (
	"slices"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The metrics' names. Each has the label service; the flow metrics also
// socket, the systemd socket's FileDescriptorName=, and proto.
const (
	Activations  = "lazypod_activations_total"
	Starts       = "lazypod_container_starts_total"
	ColdStart    = "lazypod_cold_start_seconds"
	Held         = "lazypod_connections_held_total"
	Forwarded    = "lazypod_connections_forwarded_total"
	Closed       = "lazypod_connections_closed_total"
	Bytes        = "lazypod_bytes_total"
	Rollbacks    = "lazypod_rollbacks_total"
	Updates      = "lazypod_updates_total"
	Serving      = "lazypod_serving"
	OpenFlows    = "lazypod_connections_open"
	metricPrefix = "lazypod_"
)

// ColdStartBuckets are the upper bounds of the cold-start histogram's
// buckets, in seconds: from a small image on a fast machine to a pull on a
// slow link.
var ColdStartBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// The label values a metric always has, at zero until counted, so that
// rate() and increase() see a series from its first scrape.
var (
	startResults  = []string{"ready", "failed"}
	closeReasons  = []string{"done", "reset", "not_ready", "unreachable", "flow_idle", "shutdown"}
	updateResults = []string{"false", "pending", "true", "rolled_back", "failed", "error"}
)

// Flow is one socket's flows since the process began, as package proxy
// counts them (its Counts, by route).
type Flow struct {
	// Socket is the socket's FileDescriptorName=, Proto tcp or udp (a
	// unix socket's is its container port's).
	Socket, Proto   string
	Held, Forwarded uint64
	// Closed counts the flows that ended, by reason: done, reset,
	// not_ready, unreachable, flow_idle, shutdown.
	Closed                          map[string]uint64
	BytesToContainer, BytesToClient uint64
}

// Service counts what one lazypod process does for one service, and
// merges it into the service's metrics file at each Write (see Write).
// The zero value with Path and Name set is ready to use; its methods may
// be called from any goroutine.
type Service struct {
	// Path is the metrics file. Required.
	Path string
	// Name is the service, the value of every metric's service label.
	// Required.
	Name string
	// Flows, if set, returns each socket's flow counts since the process
	// began: lazypod serve's proxy.
	Flows func() []Flow
	// Open, if set, returns how many flows are open now. A Service with
	// Open is the service's serve: its Write sets the gauges
	// lazypod_serving and lazypod_connections_open, which the writes of
	// other processes (lazypod update, rollback) leave as they are.
	Open func() int

	mu          sync.Mutex
	activations uint64
	rollbacks   uint64
	starts      map[string]uint64
	updates     map[string]uint64
	coldCount   uint64
	coldSum     float64
	coldBuckets []uint64 // per bucket of ColdStartBuckets, not cumulative
	exited      bool

	wmu     sync.Mutex                   // one Write at a time
	written map[string]*dto.MetricFamily // what the last Write had counted
}

// Activation counts a start of lazypod serve.
func (s *Service) Activation() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.activations++
}

// Start counts a start of the container that took took: ready if err is
// nil (observed in the cold-start histogram too), else failed.
func (s *Service) Start(took time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.starts == nil {
		s.starts = make(map[string]uint64)
	}
	if err != nil {
		s.starts["failed"]++
		return
	}
	s.starts["ready"]++
	sec := took.Seconds()
	s.coldCount++
	s.coldSum += sec
	if s.coldBuckets == nil {
		s.coldBuckets = make([]uint64, len(ColdStartBuckets))
	}
	if i, _ := slices.BinarySearch(ColdStartBuckets, sec); i < len(ColdStartBuckets) {
		s.coldBuckets[i]++
	}
}

// Rollback counts a rollback: a new image that failed, or lazypod
// rollback.
func (s *Service) Rollback() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollbacks++
}

// Update counts an update's outcome, as lazypod update's UPDATED column
// words it ("rolled back" is counted as rolled_back), or error if err is
// not nil.
func (s *Service) Update(result string, err error) {
	if err != nil {
		result = "error"
	}
	if result == "rolled back" {
		result = "rolled_back"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.updates == nil {
		s.updates = make(map[string]uint64)
	}
	s.updates[result]++
}

// families returns what the process has counted, as metric families.
func (s *Service) families() []*dto.MetricFamily {
	var flows []Flow
	if s.Flows != nil {
		flows = s.Flows()
	}
	open := 0
	if s.Open != nil {
		open = s.Open()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := []string{"service", s.Name}
	fams := []*dto.MetricFamily{
		counterFamily(Activations, "Times lazypod serve started for the service: socket activations, and restarts.", counter(float64(s.activations), svc...)),
		counterFamily(Starts, "Starts of the container from stopped, by how they ended (result: ready, failed).",
			byValue(s.starts, startResults, "result", svc)...),
		histogramFamily(ColdStart, "Time from a start's beginning to the container passing its readiness probe (image pull, create, start, probe), of the starts that got ready.",
			s.histogram(svc)),
		counterFamily(Rollbacks, "New images rolled back: they failed their readiness probe or exited within the rollback window, or lazypod rollback was run.", counter(float64(s.rollbacks), svc...)),
		counterFamily(Updates, "Update outcomes (result: false, no update; pending, a newer image pulled; failed, a newer image that failed before; error, the check failed; true, a new image got ready; rolled_back, a new image failed).",
			byValue(s.updates, updateResults, "result", svc)...),
	}
	if len(flows) > 0 {
		fams = append(fams, flowFamilies(flows, svc)...)
	}
	if s.Open != nil {
		serving := 1.0
		if s.exited {
			serving, open = 0, 0
		}
		fams = append(fams,
			gaugeFamily(Serving, "1 while lazypod serve runs for the service, 0 once it exited (after an idle stop, until the next connection).", gauge(serving, svc...)),
			gaugeFamily(OpenFlows, "Connections (and UDP flows) open now, held or forwarded; 0 once lazypod serve exited.", gauge(float64(open), svc...)),
		)
	}
	return fams
}

// histogram returns the cold-start histogram, labelled lv.
func (s *Service) histogram(lv []string) *dto.Metric {
	h := &dto.Histogram{SampleCount: ptr(s.coldCount), SampleSum: ptr(s.coldSum)}
	var cum uint64
	for i, ub := range ColdStartBuckets {
		if s.coldBuckets != nil {
			cum += s.coldBuckets[i]
		}
		h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: ptr(ub), CumulativeCount: ptr(cum)})
	}
	return &dto.Metric{Label: labels(lv...), Histogram: h}
}

// flowFamilies returns the flow metrics of flows.
func flowFamilies(flows []Flow, svc []string) []*dto.MetricFamily {
	held := counterFamily(Held, "Connections (and UDP flows) that waited for the container to get ready.")
	fwd := counterFamily(Forwarded, "Connections (and UDP flows) forwarded to the container, at once or after waiting.")
	closed := counterFamily(Closed, "Connections (and UDP flows) that ended, by reason: done (both sides finished; a UDP flow timed out), reset, not_ready (the container did not get ready), unreachable, flow_idle (--flow-idle-timeout), shutdown.")
	bytes := counterFamily(Bytes, "Bytes forwarded, by direction (to_container, to_client); a connection's are counted as each direction ends.")
	for _, f := range flows {
		lv := append(slices.Clip(svc), "socket", f.Socket, "proto", f.Proto)
		held.Metric = append(held.Metric, counter(float64(f.Held), lv...))
		fwd.Metric = append(fwd.Metric, counter(float64(f.Forwarded), lv...))
		closed.Metric = append(closed.Metric, byValue(f.Closed, closeReasons, "reason", lv)...)
		bytes.Metric = append(bytes.Metric,
			counter(float64(f.BytesToContainer), append(slices.Clip(lv), "direction", "to_container")...),
			counter(float64(f.BytesToClient), append(slices.Clip(lv), "direction", "to_client")...))
	}
	return []*dto.MetricFamily{held, fwd, closed, bytes}
}

// byValue returns a counter for each of the values known, and any other in
// counts, labelled lv and key=value.
func byValue(counts map[string]uint64, known []string, key string, lv []string) []*dto.Metric {
	var out []*dto.Metric
	for _, v := range known {
		out = append(out, counter(float64(counts[v]), append(slices.Clip(lv), key, v)...))
	}
	for v, n := range counts {
		if !slices.Contains(known, v) {
			out = append(out, counter(float64(n), append(slices.Clip(lv), key, v)...))
		}
	}
	return out
}

func counterFamily(name, help string, ms ...*dto.Metric) *dto.MetricFamily {
	return &dto.MetricFamily{Name: ptr(name), Help: ptr(help), Type: dto.MetricType_COUNTER.Enum(), Metric: ms}
}

func gaugeFamily(name, help string, ms ...*dto.Metric) *dto.MetricFamily {
	return &dto.MetricFamily{Name: ptr(name), Help: ptr(help), Type: dto.MetricType_GAUGE.Enum(), Metric: ms}
}

func histogramFamily(name, help string, ms ...*dto.Metric) *dto.MetricFamily {
	return &dto.MetricFamily{Name: ptr(name), Help: ptr(help), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: ms}
}

func counter(v float64, lv ...string) *dto.Metric {
	return &dto.Metric{Label: labels(lv...), Counter: &dto.Counter{Value: ptr(v)}}
}

func gauge(v float64, lv ...string) *dto.Metric {
	return &dto.Metric{Label: labels(lv...), Gauge: &dto.Gauge{Value: ptr(v)}}
}

// labels makes label pairs of name, value, name, value...
func labels(lv ...string) []*dto.LabelPair {
	out := make([]*dto.LabelPair, 0, len(lv)/2)
	for i := 0; i+1 < len(lv); i += 2 {
		out = append(out, &dto.LabelPair{Name: ptr(lv[i]), Value: ptr(lv[i+1])})
	}
	return out
}

func ptr[T any](v T) *T { return &v }
