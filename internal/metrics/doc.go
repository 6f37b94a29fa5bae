// Package metrics counts what lazypod does for a service (activations,
// container starts and their cold-start time, connections held, forwarded
// and closed by reason, bytes each way, rollbacks, update outcomes) and
// writes it to the service's metrics file in Prometheus' text exposition
// format, for node_exporter's textfile collector. lazypod serve exits when
// idle, so a file that outlives it fits where an HTTP endpoint would be
// gone at each scrape.
//
// Counters and histograms count across activations: each Write adds what
// the process counted since its previous Write to what the file holds, so
// lazypod serve, lazypod update and lazypod rollback can all count into
// one file. The encoding and parsing are Prometheus' own (prometheus/common
// expfmt over client_model's types).
//
// Typical use:
//
//	m := &metrics.Service{Path: "/var/lib/node_exporter/lazypod-web.prom", Name: "web",
//		Flows: flowCounts, Open: srv.Flows}
//	m.Activation()
//	m.Start(took, err)     // at the end of each container start
//	err := m.Write(false)  // at each state change
//	err = m.Write(true)    // at exit: lazypod_serving becomes 0
//
// Limits: the file's directory must exist and be writable (its flock is
// the writers' lock). A connection's bytes are counted as each direction
// ends, not while it flows. Metrics of other programs in the file are not
// kept.
package metrics
