package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/metrics"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// e2eEnv is what the end-to-end tests need from the test harness (make
// test): the built binary, a private Podman service and the test image.
type e2eEnv struct {
	bin, podmanURL, image string
}

func needE2E(t *testing.T) e2eEnv {
	t.Helper()
	e := e2eEnv{
		bin:       os.Getenv("LAZYPOD_BIN"),
		podmanURL: os.Getenv("LAZYPOD_TEST_PODMAN"),
		image:     os.Getenv("LAZYPOD_TEST_IMAGE"),
	}
	if e.bin == "" || e.podmanURL == "" || e.image == "" {
		msg := "end-to-end test needs LAZYPOD_BIN, LAZYPOD_TEST_PODMAN and LAZYPOD_TEST_IMAGE (run make test)"
		if os.Getenv("LAZYPOD_TEST_REQUIRE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return e
}

// podman runs the podman CLI against the test service.
func (e e2eEnv) podman(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "podman", append([]string{"--remote", "--url", e.podmanURL}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (e e2eEnv) containerRunning(t *testing.T, name string) bool {
	return e.podman(t, "inspect", "--format", "{{.State.Running}}", name) == "true"
}

func uniqueName(t *testing.T) string {
	return fmt.Sprintf("lazypod-e2e-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// lockedBuffer collects a child's stderr for the test to read.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startProcess starts cmd and makes sure it is gone, and its container
// removed, when the test ends.
func (e e2eEnv) startProcess(t *testing.T, name string, cmd *exec.Cmd) (*lockedBuffer, <-chan error) {
	t.Helper()
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// done yields the exit once and is then closed, so the clean-up below
	// does not wait for a value the test already took.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
		}
		exec.Command("podman", "--remote", "--url", e.podmanURL, "rm", "-f", "-t", "0", name).Run()
		if t.Failed() || testing.Verbose() {
			t.Logf("lazypod output:\n%s", logs.String())
		}
	})
	return logs, done
}

// httpGet fetches url with a new connection, retrying while nothing listens
// yet (the socket is bound a moment after the activator starts).
func httpGet(t *testing.T, url string) (string, error) {
	t.Helper()
	client := &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var lastErr error
	for range 100 {
		resp, err := client.Get(url)
		if err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "connection refused") {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return "", err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
		}
		return string(body), err
	}
	return "", lastErr
}

// TestSocketActivated runs the built binary under systemd-socket-activate
// with two named sockets: the first request starts the container, which
// waits a second before it listens; 100 requests arriving during that slow
// start are all held and answered, half-close
// passes through, and after the idle timeout the container is stopped and
// lazypod exits 0 so systemd would take the socket back.
func TestSocketActivated(t *testing.T) {
	e := needE2E(t)
	if _, err := exec.LookPath("systemd-socket-activate"); err != nil {
		t.Fatal("systemd-socket-activate not found: install the systemd package")
	}
	name := uniqueName(t)
	ports := freePorts(t, 2)
	web := fmt.Sprintf("127.0.0.1:%d", ports[0])
	echo := fmt.Sprintf("127.0.0.1:%d", ports[1])
	metricsFile := filepath.Join(t.TempDir(), "lazypod.prom")
	cmd := exec.Command("systemd-socket-activate", "-l", web, "-l", echo, "--fdname=web:echo",
		e.bin, "serve", "--image", e.image, "--name", name,
		"--port", "web=8080", "--port", "echo=9000",
		"--podman-url", e.podmanURL, "--state-dir", t.TempDir(),
		"--idle-timeout", "3s", "--ready", "http:/healthz", "--stop-timeout", "2s",
		"--env", "LISTEN_DELAY=1s", "--metrics-file", metricsFile)
	logs, done := e.startProcess(t, name, cmd)

	// Wait for the activator's socket without connecting to it (a connect
	// would activate lazypod).
	waitListening(t, ports[0])

	const clients = 100
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, err := httpGet(t, "http://"+web+"/")
			if err == nil && body != "v1\n" {
				err = fmt.Errorf("body %q; want %q", body, "v1\n")
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		failed++
		t.Log(err)
	}
	if failed > 0 {
		t.Fatalf("%d of %d clients held during the cold start got no answer", failed, clients)
	}
	if !e.containerRunning(t, name) {
		t.Fatalf("container %s is not running after requests were answered", name)
	}

	// Half-close: the client ends its side, then still reads the echo.
	c, err := net.Dial("tcp", echo)
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("half-close "), 100000)
	go func() {
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
	}()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("echo after half-close: read %d bytes, %v; want %d bytes back", len(got), err, len(payload))
	}

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("lazypod exited with %v; want exit 0 after the idle stop", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("lazypod did not exit within 60s of going idle")
	}
	if e.containerRunning(t, name) {
		t.Fatalf("container %s still running after the idle exit", name)
	}
	if out := logs.String(); !strings.Contains(out, "idle") {
		t.Errorf("log does not mention the idle stop:\n%s", out)
	}
	// Go code on one core unless GOMAXPROCS says otherwise (TestListenMode;
	// systemd-socket-activate passes none of the test's environment on).
	if out := logs.String(); !strings.Contains(out, " procs=1") {
		t.Errorf("serve's listening line does not say procs=1:\n%s", out)
	}
	checkActivationMetrics(t, metricsFile, name, clients, int64(len(payload)))
}

// checkActivationMetrics reads the metrics file TestSocketActivated's
// serve left, with the Prometheus library's own parser, and checks it
// counted what the test did: one activation and one cold start of over a
// second (LISTEN_DELAY), the web clients held and forwarded, the echo's
// bytes each way, every connection done, and serve gone.
func checkActivationMetrics(t *testing.T, path, name string, clients int, echoed int64) {
	t.Helper()
	get, fams := metricsOf(t, path, name)
	wantMetrics(t, "", get, []metricWant{
		{metrics.Activations, nil, 1},
		{metrics.Starts, []string{"result", "ready"}, 1},
		{metrics.Starts, []string{"result", "failed"}, 0},
		{metrics.ColdStart, nil, 1},
		{metrics.Forwarded, []string{"socket", "web"}, float64(clients)},
		{metrics.Forwarded, []string{"socket", "echo"}, 1},
		{metrics.Closed, []string{"socket", "echo", "reason", "done"}, 1},
		{metrics.Bytes, []string{"socket", "echo", "direction", "to_container"}, float64(echoed)},
		{metrics.Bytes, []string{"socket", "echo", "direction", "to_client"}, float64(echoed)},
		{metrics.Serving, nil, 0},
		{metrics.OpenFlows, nil, 0},
	})
	// A client that closes while its response's FIN is on the way may
	// end in a reset: done or reset, each web flow ended once.
	if n := get(metrics.Closed, "socket", "web", "reason", "done") + get(metrics.Closed, "socket", "web", "reason", "reset"); n != float64(clients) {
		t.Errorf("web flows done or reset: got %g; want %d", n, clients)
	}
	// Most of the clients arrive during the slow start; some may come
	// after the container is ready.
	if held := get(metrics.Held, "socket", "web"); held < 1 || held > float64(clients) {
		t.Errorf("%s{socket=web}: got %g; want 1 to %d", metrics.Held, held, clients)
	}
	if sum := fams[metrics.ColdStart].Metric[0].Histogram.GetSampleSum(); sum < 1 {
		t.Errorf("cold start: got %gs; want over the 1s LISTEN_DELAY", sum)
	}
	if b := get(metrics.Bytes, "socket", "web", "direction", "to_client"); b < float64(clients*len("v1\n")) {
		t.Errorf("bytes to web clients: got %g; want at least the %d bodies", b, clients)
	}
}

// waitListening waits until something listens on the loopback TCP port,
// reading /proc/net/tcp instead of connecting.
func waitListening(t *testing.T, port int) {
	t.Helper()
	waitInTable(t, "tcp", fmt.Sprintf(":%04X 00000000:0000 0A", port), port)
}

// waitBoundUDP waits until a UDP socket is bound to the loopback port,
// reading /proc/net/udp instead of sending (which would activate lazypod).
func waitBoundUDP(t *testing.T, port int) {
	t.Helper()
	waitInTable(t, "udp", fmt.Sprintf("0100007F:%04X ", port), port)
}

// waitInTable waits up to 5s until /proc/net/TABLE holds want.
func waitInTable(t *testing.T, table, want string, port int) {
	t.Helper()
	for range 200 {
		b, _ := os.ReadFile("/proc/net/" + table)
		if strings.Contains(string(b), want) {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("nothing on %s 127.0.0.1:%d after 5s", table, port)
}

// TestListenMode runs lazypod with sockets it binds itself, TCP and UDP:
// after the idle stop it keeps listening, and the next request starts the
// container again; SIGTERM stops the container and exits 0.
func TestListenMode(t *testing.T) {
	e := needE2E(t)
	name := uniqueName(t)
	ports := freePorts(t, 1)
	web := fmt.Sprintf("127.0.0.1:%d", ports[0])
	udpConn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dns := udpConn.LocalAddr().String()
	udpConn.Close()
	cmd := exec.Command(e.bin, "serve", "--image", e.image, "--name", name,
		"--listen", "web="+web, "--listen", "dns=udp:"+dns,
		"--port", "web=8080", "--port", "dns=9000/udp",
		"--podman-url", e.podmanURL, "--state-dir", t.TempDir(),
		"--idle-timeout", "2s", "--udp-timeout", "1s", "--stop-timeout", "1s", "--env", "VERSION=listen-mode")
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2") // overrides serve's one core
	logs, done := e.startProcess(t, name, cmd)

	if body, err := httpGet(t, "http://"+web+"/"); err != nil || body != "listen-mode\n" {
		t.Fatalf("first request: %q, %v; want %q", body, err, "listen-mode\n")
	}
	u, err := net.Dial("udp", dns)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	buf := make([]byte, 100)
	u.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := u.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if n, err := u.Read(buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("udp echo: %q, %v; want ping", buf[:n], err)
	}
	if out := logs.String(); !strings.Contains(out, " procs=2") {
		t.Errorf("with GOMAXPROCS=2, serve's listening line does not say procs=2:\n%s", out)
	}

	// The UDP flow is reaped after its own timeout; then the idle clock runs.
	deadline := time.Now().Add(90 * time.Second)
	for e.containerRunning(t, name) {
		if time.Now().After(deadline) {
			t.Fatal("container still running 90s after the last request")
		}
		time.Sleep(250 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("lazypod exited (%v) after the idle stop; with --listen it should keep listening", err)
	default:
	}
	if body, err := httpGet(t, "http://"+web+"/"); err != nil || body != "listen-mode\n" {
		t.Fatalf("request after the idle stop: %q, %v; want the container started again", body, err)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("lazypod exited with %v after SIGTERM; want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lazypod did not exit within 30s of SIGTERM")
	}
	if e.containerRunning(t, name) {
		t.Fatalf("container %s still running after SIGTERM", name)
	}
	_ = logs
}

// TestNeverReady: a container that never listens makes the held clients
// close after --ready-timeout, the log says why, and no container is left
// running.
func TestNeverReady(t *testing.T) {
	e := needE2E(t)
	name := uniqueName(t)
	web := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	cmd := exec.Command(e.bin, "serve", "--image", e.image, "--name", name,
		"--listen", web, "--port", "8080", "--env", "NEVER_LISTEN=1",
		"--podman-url", e.podmanURL, "--state-dir", t.TempDir(),
		"--ready-timeout", "2s", "--stop-timeout", "1s")
	logs, _ := e.startProcess(t, name, cmd)

	const clients = 10
	var wg sync.WaitGroup
	results := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := httpGet(t, "http://"+web+"/")
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	for err := range results {
		if err == nil {
			t.Fatal("a client got an answer from a container that never listens")
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "not ready within 2s") {
		if time.Now().After(deadline) {
			t.Fatalf("log does not say why the held connections were closed:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for e.containerRunning(t, name) {
		if time.Now().After(deadline) {
			t.Fatalf("container %s left running after it failed its readiness probe", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metricsOf reads the metrics file at path with the Prometheus library's
// own parser (expfmt), and returns the families and a getter of service's
// values: a counter's or gauge's value, a histogram's count, of the
// family's metric whose labels include lv (name, value, ...).
func metricsOf(t *testing.T, path, service string) (get func(family string, lv ...string) float64, fams map[string]*dto.MetricFamily) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading metrics file: %v", err)
	}
	var p expfmt.TextParser
	if fams, err = p.TextToMetricFamilies(bytes.NewReader(data)); err != nil {
		t.Fatalf("parsing metrics file: %v\n%s", err, data)
	}
	get = func(family string, lv ...string) float64 {
		t.Helper()
		mf := fams[family]
		if mf == nil {
			t.Fatalf("no %s in the metrics file:\n%s", family, data)
		}
	next:
		for _, m := range mf.Metric {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			if have["service"] != service {
				continue
			}
			for i := 0; i+1 < len(lv); i += 2 {
				if have[lv[i]] != lv[i+1] {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("no %s%v for service %s in the metrics file:\n%s", family, lv, service, data)
		return 0
	}
	return get, fams
}

// metricWant is a value a metrics file must hold: family's, of the metric
// whose labels include lv.
type metricWant struct {
	family string
	lv     []string
	want   float64
}

// wantMetrics checks each of wants with get (see metricsOf); when says
// when, for the messages.
func wantMetrics(t *testing.T, when string, get func(string, ...string) float64, wants []metricWant) {
	t.Helper()
	for _, c := range wants {
		if got := get(c.family, c.lv...); got != c.want {
			t.Errorf("metrics%s: %s%v: got %g; want %g", when, c.family, c.lv, got, c.want)
		}
	}
}
