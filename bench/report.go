package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	beginMarker = "<!-- bench:begin: written by make bench from build/bench/results.json; edit outside the markers -->"
	endMarker   = "<!-- bench:end -->"
	// equalWithin is how far below 1.00 a median ratio may be and still
	// count as "at least equal": the spread of repeated runs on these
	// shared machines.
	equalWithin = 0.02
)

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// vals returns the figure's values for contender c, by round.
func (r *results) vals(fig, c string) map[int]float64 {
	m := map[int]float64{}
	for _, s := range r.Samples {
		if s.Figure == fig && s.Contender == c {
			m[s.Round] = s.Value
		}
	}
	return m
}

// sorted returns the figure's values for contender c, in order.
func (r *results) sorted(fig, c string) []float64 {
	var xs []float64
	for _, v := range r.vals(fig, c) {
		xs = append(xs, v)
	}
	slices.Sort(xs)
	return xs
}

func (r *results) med(fig, c string) float64 { return median(r.sorted(fig, c)) }

// paired returns f(a, b) for every round that has both, the way ratios are
// taken: within a round, then the median over rounds.
func (r *results) paired(fig, a, b string, f func(x, y float64) float64) []float64 {
	va, vb := r.vals(fig, a), r.vals(fig, b)
	var out []float64
	for round, x := range va {
		if y, ok := vb[round]; ok {
			out = append(out, f(x, y))
		}
	}
	slices.Sort(out)
	return out
}

// pairedFigs returns figA − figB of contender c for every round that has
// both.
func (r *results) pairedFigs(figA, figB, c string) []float64 {
	va, vb := r.vals(figA, c), r.vals(figB, c)
	var out []float64
	for round, x := range va {
		if y, ok := vb[round]; ok {
			out = append(out, x-y)
		}
	}
	slices.Sort(out)
	return out
}

func ratio(x, y float64) float64 { return x / y }
func diff(x, y float64) float64  { return x - y }

// ratioOf is the median per-round ratio a/b.
func (r *results) ratioOf(fig, a, b string) float64 { return median(r.paired(fig, a, b, ratio)) }

// spread formats the median of xs with its range.
func spread(xs []float64, format string) string {
	if len(xs) == 0 {
		return "n/a"
	}
	m := fmt.Sprintf(format, median(xs))
	if len(xs) == 1 {
		return m
	}
	return fmt.Sprintf("**%s** ("+format+"–"+format+")", m, xs[0], xs[len(xs)-1])
}

func size(n int64) string {
	if n < 1e6 {
		return fmt.Sprintf("%.0f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

func passFail(ok bool) string {
	if ok {
		return "**PASS**"
	}
	return "**FAIL**"
}

func writeOutputs(r *results, cfg config) error {
	chartRel, err := filepath.Rel(filepath.Dir(cfg.Report), cfg.Chart)
	if err != nil {
		chartRel = cfg.Chart
	}
	if err := drawChart(r, cfg.Chart, filepath.Join(cfg.WorkDir, "chart")); err != nil {
		return fmt.Errorf("drawing %s: %w", cfg.Chart, err)
	}
	block := reportBlock(r, chartRel)
	old, err := os.ReadFile(cfg.Report)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	i, j := strings.Index(text, beginMarker), strings.Index(text, endMarker)
	if i >= 0 && j > i {
		text = text[:i] + block + text[j+len(endMarker):]
	} else {
		text = "# Benchmarks\n\n" + block + "\n" + text
	}
	if err := os.WriteFile(cfg.Report, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Printf("==> wrote %s and %s\n", cfg.Report, cfg.Chart)
	return nil
}

func reportBlock(r *results, chart string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	m := r.Machine
	w(beginMarker)
	w("")
	w("Measured with `%s` (%d alternating rounds; the whole suite took %s) on %s.", r.Command, r.Rounds, r.Took, m.Date)
	w("")
	w("| machine | |")
	w("|---|---|")
	w("| CPU | %d cores, %s |", m.Cores, m.CPU)
	w("| kernel | %s |", m.Kernel)
	w("| Go | %s |", m.Go)
	w("| Podman | %s |", m.Podman)
	w("| systemd | %s |", m.Systemd)
	w("| wrk | %s |", m.Wrk)
	w("| RLIMIT_NOFILE | %d (bench, lazypod and proxyd) |", m.NoFile)
	w("")
	w("![lazypod against direct and systemd-socket-proxyd](%s)", chart)
	w("")
	writeTargets(&b, r)
	writeThroughput(&b, r)
	writeWrk(&b, r)
	writeMetricsCost(&b, r)
	writeCold(&b, r)
	writeHeld(&b, r)
	writeFootprint(&b, r)
	if len(r.Notes) > 0 {
		w("### Notes from the run")
		w("")
		for _, n := range r.Notes {
			w("- %s", n)
		}
		w("")
	}
	b.WriteString(endMarker)
	return b.String()
}

// coldTarget is the cold-start target: lazypod (its default probe) at
// most 5 ms over by hand, through the API.
const coldTarget = 5.0

// wakeTarget is how many times faster the JVM app's wake from pause must
// be than its cold start from stopped.
const wakeTarget = 10.0

// rssTarget is the most lazypod's RSS while serving may be, as a multiple
// of systemd-socket-proxyd's.
const rssTarget = 2.0

func writeTargets(b *strings.Builder, r *results) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	w("### Targets")
	w("")
	w("Ratios are taken within each round, then the median over rounds is reported. The contenders")
	w("alternate: each goes first in turn and runs right after each other one equally often, as a run of new")
	w("connections leaves sockets in TIME_WAIT that slow the next run's connects. \"At least equal\" allows")
	w("%.0f%% below 1.00: the spread between rounds on these shared machines.", equalWithin*100)
	w("")
	w("| target | figure | measured | result |")
	w("|---|---|---|---|")
	for _, f := range []struct{ fig, label string }{
		{"bulk-1", "bulk, 1 stream"}, {"bulk-8", "bulk, 8 streams"},
		{"wrk-keepalive-rps", "requests/s, keep-alive"}, {"wrk-close-rps", "requests/s, new connection per request"},
		{"wrk-1conn-rps", "requests/s, 1 connection"},
	} {
		x := r.ratioOf(f.fig, lazypod, proxyd)
		w("| throughput and request rate ≥ systemd-socket-proxyd's | %s | lazypod/proxyd %.3f | %s |", f.label, x, passFail(x >= 1-equalWithin))
	}
	for _, f := range []struct{ fig, label string }{{"cold-stopped", "container stopped"}, {"cold-removed", "container removed"}} {
		l, h := r.med(f.fig, coldLazypodDef), r.med(f.fig, coldAPI)
		d := median(r.paired(f.fig, coldLazypodDef, coldAPI, diff))
		w("| cold start at most %.0f ms over `podman start` + probe by hand (API) | %s, default probe | %.0f ms vs %.0f ms: %+.1f ms | %s |",
			coldTarget, f.label, l, h, d, passFail(d <= coldTarget))
	}
	answered, asked := 0, 0
	for _, v := range r.vals("dns-answered-listening", lazypod) {
		answered += int(v)
		asked++
	}
	w("| the first UDP query through a cold start answered | dnsmasq, `dig +tries=1 +timeout=5`, one per cold start | %d of %d | %s |",
		answered, asked, passFail(asked >= 10 && answered == asked))
	x := median(r.paired("wake-jvm", wakeStopped, wakePaused, ratio))
	w("| wake from pause at least %.0f× faster than the cold start from stopped | JVM app | cold/wake %.1f× | %s |", wakeTarget, x, passFail(x >= wakeTarget))
	if lz, pd := r.footprintOf("lazypod"), r.footprintOf("systemd-socket-proxyd"); lz != nil && pd != nil {
		x := float64(lz.IdleRSSKB) / float64(pd.IdleRSSKB)
		w("| RSS while serving at most %.0f× systemd-socket-proxyd's | idle, container running | %.1f MB vs %.1f MB: %.2f× | %s |",
			rssTarget, float64(lz.IdleRSSKB)/1024, float64(pd.IdleRSSKB)/1024, x, passFail(x <= rssTarget))
	}
	all, total := 0, 0
	for _, h := range r.Held {
		all += h.Answered
		total += h.Clients
	}
	w("| all held connections answered | 1, 100, 1000 clients in one cold start | %d of %d | %s |", all, total, passFail(all == total && total > 0))
	idleOK := len(r.Idle) > 0
	for _, x := range r.Idle {
		idleOK = idleOK && x.Exited && x.ContainerStopped
	}
	w("| zero processes when idle (exit on idle) | lazypod --idle-timeout 2s | %s | %s |", idleSummary(r), passFail(idleOK))
	w("")
}

// footprintOf returns the footprint of the named contender, or nil.
func (r *results) footprintOf(name string) *footprint {
	for i := range r.Footprint {
		if r.Footprint[i].Name == name {
			return &r.Footprint[i]
		}
	}
	return nil
}

func idleSummary(r *results) string {
	for _, x := range r.Idle {
		if x.Name == "lazypod" {
			return fmt.Sprintf("exited %v, %s after the last close; container stopped %v", x.Exited, x.ExitedAfter, x.ContainerStopped)
		}
	}
	return "not measured"
}

func writeThroughput(b *strings.Builder, r *results) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	w("### 1. Bulk throughput")
	w("")
	w("%d MiB sent through the test server's TCP echo and read back (one stream, or split over 8 parallel",
		r.BulkBytes>>20)
	w("streams), in Go: one writer and one reader per stream, 1 MiB buffers. MiB/s each way, median over rounds;")
	w("ratios as median (min–max) of the per-round ratios.")
	w("")
	w("| streams | direct | systemd-socket-proxyd | lazypod | lazypod/direct | lazypod/proxyd | proxyd/direct |")
	w("|---|---|---|---|---|---|---|")
	for _, s := range []string{"1", "8"} {
		fig := "bulk-" + s
		w("| %s | %.0f | %.0f | %.0f | %s | %s | %s |", s, r.med(fig, direct), r.med(fig, proxyd), r.med(fig, lazypod),
			spread(r.paired(fig, lazypod, direct, ratio), "%.3f"), spread(r.paired(fig, lazypod, proxyd, ratio), "%.3f"),
			spread(r.paired(fig, proxyd, direct, ratio), "%.3f"))
	}
	w("")
}

// writeMetricsCost reports lazypod with --metrics-file against lazypod
// without, measured side by side in each round.
func writeMetricsCost(b *strings.Builder, r *results) {
	if len(r.sorted("metrics-bulk-8", lazypodMetrics)) == 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	w("### 2b. What --metrics-file costs the forwarding path")
	w("")
	w("Two warm lazypods, one writing a metrics file, measured one after the other in each round: wrk with a new")
	w("connection per request (2 threads, 16 connections), where counting adds most per byte forwarded, and bulk")
	w("through 8 echo streams. Ratio with/without: median (min–max) of the per-round ratios; 1.000 is no cost.")
	w("")
	w("| figure | lazypod | lazypod --metrics-file | with/without |")
	w("|---|---|---|---|")
	for _, f := range []struct{ fig, name, format string }{
		{"metrics-wrk-close-rps", "requests/s, new connection per request", "%.0f"},
		{"metrics-wrk-close-cpu", "CPU µs per request (its own)", "%.1f"},
		{"metrics-bulk-8", "MiB/s each way, 8 streams", "%.0f"},
	} {
		w("| %s | "+f.format+" | "+f.format+" | %s |", f.name, r.med(f.fig, lazypod), r.med(f.fig, lazypodMetrics),
			spread(r.paired(f.fig, lazypodMetrics, lazypod, ratio), "%.3f"))
	}
	w("")
}

func writeWrk(b *strings.Builder, r *results) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	w("### 2. Request rate and latency (wrk)")
	w("")
	w("`wrk --latency -d %s` against `GET /` (a 3-byte answer); keep-alive `-t2 -c16`, new connection per",
		r.WrkTime)
	w("request `-t2 -c16 -H 'Connection: close'`, and one keep-alive connection `-t1 -c1` (latency without")
	w("queueing). wrk, the proxy and the server share the 2 cores.")
	w("")
	w("| mode | | direct | systemd-socket-proxyd | lazypod | lazypod/direct | lazypod/proxyd | proxyd/direct |")
	w("|---|---|---|---|---|---|---|---|")
	for _, m := range wrkModes {
		fig := m.figure + "-rps"
		w("| %s | requests/s | %.0f | %.0f | %.0f | %s | %s | %s |", modeName(m.figure), r.med(fig, direct), r.med(fig, proxyd), r.med(fig, lazypod),
			spread(r.paired(fig, lazypod, direct, ratio), "%.3f"), spread(r.paired(fig, lazypod, proxyd, ratio), "%.3f"),
			spread(r.paired(fig, proxyd, direct, ratio), "%.3f"))
		for _, p := range []string{"p50", "p99"} {
			fig := m.figure + "-" + p
			w("| | %s µs | %.0f | %.0f | %.0f | %s | %s | %s |", p, r.med(fig, direct), r.med(fig, proxyd), r.med(fig, lazypod),
				spread(r.paired(fig, lazypod, direct, ratio), "%.2f"), spread(r.paired(fig, lazypod, proxyd, ratio), "%.2f"),
				spread(r.paired(fig, proxyd, direct, ratio), "%.2f"))
		}
	}
	w("")
	w("CPU time of the proxy process itself (user and system, all threads, from `/proc/PID/stat` before and")
	w("after each wrk run) per request answered, in µs: what forwarding costs the machine. It counts the")
	w("kernel's work in the proxy's system calls, such as delivering loopback packets to their receiver.")
	w("")
	w("| mode | systemd-socket-proxyd | lazypod | lazypod/proxyd |")
	w("|---|---|---|---|")
	for _, m := range wrkModes {
		fig := m.figure + "-cpu"
		w("| %s | %.1f | %.1f | %s |", modeName(m.figure), r.med(fig, proxyd), r.med(fig, lazypod),
			spread(r.paired(fig, lazypod, proxyd, ratio), "%.3f"))
	}
	w("")
	w("Added latency against direct (median of per-round differences, µs):")
	w("")
	w("| mode | lazypod p50 | lazypod p99 | proxyd p50 | proxyd p99 |")
	w("|---|---|---|---|---|")
	for _, m := range wrkModes {
		row := []string{modeName(m.figure)}
		for _, c := range []string{lazypod, proxyd} {
			for _, p := range []string{"p50", "p99"} {
				row = append(row, fmt.Sprintf("%+.0f", median(r.paired(m.figure+"-"+p, c, direct, diff))))
			}
		}
		w("| %s |", strings.Join(row, " | "))
	}
	w("")
}

func modeName(fig string) string {
	switch fig {
	case "wrk-keepalive":
		return "keep-alive, 16 conns"
	case "wrk-close":
		return "new conn per request, 16 at once"
	case "wrk-1conn":
		return "keep-alive, 1 conn"
	}
	return fig
}

func writeCold(b *strings.Builder, r *results) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	w("### 3. Cold start")
	w("")
	w("lazypod: a fresh `systemd-socket-activate` listening, container stopped (or removed); from the")
	w("client's `connect()` to the first byte of the answer to `GET /`. This includes exec'ing lazypod,")
	w("the Podman API calls, the readiness probe and forwarding the held request. By hand: from the")
	w("start of the API call (`POST /libpod/containers/NAME/start`, or create + start + inspect for the")
	w("port) or of the `podman --remote start` (`podman run -d` + `podman port`) command to the first")
	w("byte of an answer to `GET /`, polled every %s. Milliseconds, median (min–max) over rounds.", pollEvery)
	w("")
	w("| container | lazypod, --ready listening (default) | lazypod, --ready tcp | lazypod, --ready http:/ | by hand, API | by hand, CLI | lazypod (default) − by hand (API) | lazypod (default)/by hand (API) | launcher's share (http:/) | rest of lazypod (http:/) |")
	w("|---|---|---|---|---|---|---|---|---|---|")
	for _, f := range []struct{ fig, label string }{{"cold-stopped", "stopped"}, {"cold-removed", "removed"}} {
		cell := func(c string) string { return spread(r.sorted(f.fig, c), "%.0f") }
		orNot := func(c string) string {
			if len(r.vals(f.fig, c)) == 0 {
				return "not measured"
			}
			return cell(c)
		}
		launcher := r.med(f.fig+"-launcher", coldLazypod)
		rest := median(r.pairedFigs(f.fig, f.fig+"-launcher", coldLazypod))
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %.0f ms | %.0f ms |", f.label, orNot(coldLazypodDef), orNot(coldLazypodTCP), cell(coldLazypod), cell(coldAPI), cell(coldCLI),
			spread(r.paired(f.fig, coldLazypodDef, coldAPI, diff), "%+.1f"), spread(r.paired(f.fig, coldLazypodDef, coldAPI, ratio), "%.3f"),
			launcher, rest)
	}
	w("")
	w("The launcher's share is lazypod's own `took=` (image check, create, start, inspect, probe) from its")
	w("log; the rest is exec, flag parsing, taking the sockets, accepting, dialing and forwarding.")
	w("")
	w("Wake from pause against the cold start from stopped (`--idle-action pause`): a fresh activation,")
	w("connect to first byte of `GET /`, the default probe; the paused container was paused at idle by")
	w("the activation before. Milliseconds, median (min–max) over rounds; the ratio per round.")
	w("")
	w("| app | cold from stopped | wake from pause | cold/wake |")
	w("|---|---|---|---|")
	for _, app := range []string{"go", "jvm"} {
		fig := "wake-" + app
		cell := func(c string) string { return spread(r.sorted(fig, c), "%.0f") }
		w("| %s | %s | %s | %s |", app, cell(wakeStopped), cell(wakePaused), spread(r.paired(fig, wakeStopped, wakePaused, ratio), "%.1f"))
	}
	w("")
	w("The first DNS query through a cold start: dnsmasq (Debian's, in an image from a debootstrapped")
	w("rootfs) behind lazypod on a UDP socket, container stopped, one `dig +tries=1 +timeout=5` per")
	w("activation (no retry: glibc's resolver waits 5 s before its next try).")
	w("")
	w("| probe | answered | median time to the answer (or to dig's timeout) |")
	w("|---|---|---|")
	for _, p := range dnsProbes {
		n, k := 0, 0
		for _, v := range r.vals("dns-answered-"+p, lazypod) {
			n += int(v)
			k++
		}
		name := p
		if p == "none" {
			name = "none (the default for UDP before `listening`)"
		}
		w("| %s | %d of %d | %.0f ms |", name, n, k, r.med("dns-first-"+p, lazypod))
	}
	w("")
}

func writeHeld(b *strings.Builder, r *results) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	w("### 4. Held connections")
	w("")
	w("N clients released at once against a fresh socket-activated lazypod with its container stopped;")
	w("each sends `GET /` and must read the whole answer (`v1`). Wait: connect to first byte. One cold")
	w("start per N.")
	w("")
	w("| clients | answered | longest wait | median wait | first error |")
	w("|---|---|---|---|---|")
	for _, h := range r.Held {
		e := h.FirstErr
		if e == "" {
			e = "none"
		}
		w("| %d | %d | %s | %s | %s |", h.Clients, h.Answered, h.Longest.Round(time.Millisecond), h.Median.Round(time.Millisecond), e)
	}
	w("")
}

func writeFootprint(b *strings.Builder, r *results) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	w("### 5. Footprint")
	w("")
	w("RSS and open descriptors of the serving process (from `/proc`), socket-activated, container running,")
	w("no flow for 2 s after the rounds' load; then with %d echo flows open (each has carried a byte both ways).", flowCount)
	w("")
	w("| | binary | links | RSS idle | fds idle | RSS, %d flows | fds, %d flows | fds per flow | RSS per flow |", flowCount, flowCount)
	w("|---|---|---|---|---|---|---|---|---|")
	for _, f := range r.Footprint {
		n := float64(f.Flows)
		w("| %s | %s | %s | %.1f MB | %d | %.1f MB | %d | %.2f | %.1f kB |", f.Name, size(f.BinaryBytes), f.Linked,
			float64(f.IdleRSSKB)/1024, f.IdleFDs, float64(f.FlowsRSSKB)/1024, f.FlowsFDs,
			float64(f.FlowsFDs-f.IdleFDs)/n, float64(f.FlowsRSSKB-f.IdleRSSKB)/n)
	}
	w("")
	w("Exit on idle (one request, then nothing):")
	w("")
	w("| | exited | after the last close | container stopped | processes left |")
	w("|---|---|---|---|---|")
	for _, x := range r.Idle {
		stopped := fmt.Sprint(x.ContainerStopped)
		if x.Name != "lazypod" {
			stopped = "n/a (never starts it)"
		}
		w("| %s | %v | %s | %s | %d |", x.Name, x.Exited, x.ExitedAfter, stopped, x.ProcessesLeft)
	}
	w("")
}
