package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/podman"
	"github.com/lazypod/lazypod/internal/spec"
	"github.com/lazypod/lazypod/proxy"
	"github.com/lazypod/lazypod/updater"
)

// The fault tests break things on purpose around the built binary and the
// private Podman (issue 6): an idle exit racing new connections, a backend
// slow to listen or never ready, a container crashing mid-stream or in a
// loop, a Podman API that is down or hangs, signals during starts, swaps
// and rollbacks, and a state directory that is read-only or full. Each
// logs its figures as "FIGURE <name>: <value> (<how measured>)". They are
// sized for make test; LAZYPOD_SOAK=1 runs the heavy variants.

// soak reports whether the heavy variants run (make soak).
func soak() bool { return os.Getenv("LAZYPOD_SOAK") == "1" }

// figure logs one figure in the format RELIABILITY.md takes.
func figure(t *testing.T, name, value, how string) {
	t.Helper()
	t.Logf("FIGURE %s: %s (%s)", name, value, how)
}

// faultGet fetches url once on a new connection, without the retries of
// httpGet: every error is the answer.
func faultGet(url string, timeout time.Duration) (string, error) {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), err
}

// serveListen returns a `lazypod serve --listen` command for image on one
// new loopback port, with short timeouts and the given extra flags, and
// the URL it serves.
func (e e2eEnv) serveListen(t *testing.T, name, stateDir string, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	web := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	args := []string{"serve", "--image", e.image, "--name", name,
		"--listen", "web=" + web, "--port", "web=8080",
		"--podman-url", e.podmanURL, "--state-dir", stateDir,
		"--idle-timeout", "1s", "--stop-timeout", "1s"}
	return exec.Command(e.bin, append(args, extra...)...), "http://" + web + "/"
}

// waitLog waits up to d for the log to contain s.
func waitLog(t *testing.T, logs *lockedBuffer, s string, d time.Duration) bool {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(logs.String(), s) {
			return true
		}
	}
	return false
}

// ---- 1. Exit on idle racing new connections ----

// fakeSystemd plays systemd's part for one socket: it owns the listening
// socket and, when a client is waiting and no lazypod runs, spawns
// `lazypod serve` with the socket as fd 3 (LISTEN_FDS=1, LISTEN_FDNAMES=web,
// LISTEN_PID the child's own pid). A lazypod that exits is spawned again
// as soon as a client waits, as systemd does on the next connection.
type fakeSystemd struct {
	bin  string
	file *os.File
	args []string
	logs *lockedBuffer

	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	pending int
	cur     *exec.Cmd
	stopped bool
	spawns  int
	bad     []string // exits other than 0
}

// newFakeSystemd listens on a loopback port and starts the activation
// loop; the URL of the socket is returned with it. It is stopped when the
// test ends.
func newFakeSystemd(t *testing.T, bin string, args ...string) (*fakeSystemd, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	ln.Close() // f holds the socket
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeSystemd{bin: bin, file: f, args: args, logs: &lockedBuffer{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	t.Cleanup(func() {
		s.shutdown()
		f.Close()
		if t.Failed() || testing.Verbose() {
			t.Logf("lazypod output (every activation):\n%s", s.logs.String())
		}
	})
	return s, "http://" + ln.Addr().String() + "/"
}

// loop spawns lazypod whenever a client waits and none runs.
func (s *fakeSystemd) loop() {
	defer close(s.done)
	for {
		for !s.waiting() {
			select {
			case <-s.wake:
			case <-s.stop:
				return
			}
		}
		cmd := exec.Command("sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, s.bin}, s.args...)...)
		cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=web")
		cmd.ExtraFiles = []*os.File{s.file}
		cmd.Stdout, cmd.Stderr = s.logs, s.logs
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			return
		}
		err := cmd.Start()
		if err == nil {
			s.cur = cmd
			s.spawns++
		}
		s.mu.Unlock()
		if err != nil {
			s.mu.Lock()
			s.bad = append(s.bad, "spawn: "+err.Error())
			s.mu.Unlock()
			return
		}
		err = cmd.Wait()
		s.mu.Lock()
		s.cur = nil
		if err != nil && !s.stopped {
			s.bad = append(s.bad, err.Error())
		}
		s.mu.Unlock()
	}
}

func (s *fakeSystemd) waiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending > 0
}

// begin counts a client about to connect; end, one that is done.
func (s *fakeSystemd) begin() {
	s.mu.Lock()
	s.pending++
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *fakeSystemd) end() {
	s.mu.Lock()
	s.pending--
	s.mu.Unlock()
}

// shutdown stops the loop and the lazypod it runs, as systemctl stop.
func (s *fakeSystemd) shutdown() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	if s.cur != nil {
		s.cur.Process.Signal(syscall.SIGTERM)
	}
	s.mu.Unlock()
	close(s.stop)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.mu.Lock()
		if s.cur != nil {
			s.cur.Process.Kill()
		}
		s.mu.Unlock()
		<-s.done
	}
}

// get is one client of the socket.
func (s *fakeSystemd) get(url string) (string, error) {
	s.begin()
	defer s.end()
	return faultGet(url, 30*time.Second)
}

// TestFaultIdleExitRace connects, many times over, at the moment a
// socket-activated lazypod decides it is idle and exits: from just before
// the idle deadline to after the container stop. Every connection must be
// answered, by the exiting lazypod or by the next activation; none may be
// accepted and then dropped.
func TestFaultIdleExitRace(t *testing.T) {
	e := needE2E(t)
	name := uniqueName(t)
	const idle = 2 * time.Second // lazypod's floor under exit-on-idle (minIdleExit)
	sd, url := newFakeSystemd(t, e.bin, "serve", "--image", e.image, "--name", name,
		"--port", "web=8080", "--podman-url", e.podmanURL, "--state-dir", t.TempDir(),
		"--idle-timeout", idle.String(), "--stop-timeout", "1s", "--ready", "http:/healthz")
	t.Cleanup(func() {
		exec.Command("podman", "--remote", "--url", e.podmanURL, "rm", "-f", "-t", "0", name).Run()
	})

	budget := 20 * time.Second
	if soak() {
		budget = 6 * time.Minute
	}
	// Offsets from the idle deadline, which is idle after the last
	// response: before it, at it, and through the container's stop
	// (a few hundred ms) and the exit.
	offsets := []time.Duration{-30, -5, 0, 2, 5, 10, 20, 40, 80, 120, 200, 300, 450, 600}
	var attempts, lost, iterations int
	var lostErrs []string
	record := func(body string, err error) {
		attempts++
		if err == nil && body != "v1\n" {
			err = fmt.Errorf("body %q; want v1", body)
		}
		if err != nil {
			lost++
			lostErrs = append(lostErrs, err.Error())
		}
	}
	start := time.Now()
	for i := 0; time.Since(start) < budget; i++ {
		iterations++
		record(sd.get(url))
		last := time.Now()
		off := offsets[i%len(offsets)] * time.Millisecond
		time.Sleep(time.Until(last.Add(idle + off)))
		// Three clients a few ms apart straddle the instant.
		var wg sync.WaitGroup
		var mu sync.Mutex
		for k := range 3 {
			wg.Go(func() {
				time.Sleep(time.Duration(k) * 3 * time.Millisecond)
				body, err := sd.get(url)
				mu.Lock()
				record(body, err)
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	sd.shutdown()
	sd.mu.Lock()
	spawns, bad := sd.spawns, sd.bad
	sd.mu.Unlock()
	figure(t, "idle-exit race", fmt.Sprintf("%d connections lost of %d attempts, %d activations", lost, attempts, spawns),
		fmt.Sprintf("fake systemd owning the socket; --idle-timeout %s; %d rounds of 3 connections at -30ms..+600ms around the idle deadline, in %s",
			idle, iterations, time.Since(start).Round(time.Second)))
	if lost > 0 {
		t.Errorf("%d of %d connections lost (reset or EOF without an answer): %q", lost, attempts, lostErrs)
	}
	if len(bad) > 0 {
		t.Errorf("lazypod exited other than 0: %q", bad)
	}
	if spawns < 3 {
		t.Errorf("%d activations in %d rounds; want lazypod to have exited on idle several times", spawns, iterations)
	}
}

// ---- 2. Backend slow to listen, and never ready ----

// TestFaultSlowBackend starts a backend that listens only after a delay:
// the held connection is answered, after about that delay. A backend that
// never listens has its held connections closed after --ready-timeout,
// with the reason in the log.
func TestFaultSlowBackend(t *testing.T) {
	e := needE2E(t)
	delays := []time.Duration{100 * time.Millisecond, time.Second}
	if soak() {
		delays = append(delays, 10*time.Second)
	}
	for _, d := range delays {
		t.Run("listen-delay-"+d.String(), func(t *testing.T) {
			name := uniqueName(t)
			cmd, url := e.serveListen(t, name, t.TempDir(), "--ready-timeout", "30s", "--env", "LISTEN_DELAY="+d.String())
			e.startProcess(t, name, cmd)
			waitListeningURL(t, url)
			began := time.Now()
			body, err := faultGet(url, 60*time.Second)
			took := time.Since(began)
			if err != nil || body != "v1\n" {
				t.Fatalf("GET with the backend listening after %s: %q, %v; want v1", d, body, err)
			}
			figure(t, "slow listen "+d.String(), "answered in "+took.Round(10*time.Millisecond).String(),
				"first request of a cold start, backend LISTEN_DELAY="+d.String()+", tcp probe")
			if took < d {
				t.Errorf("answered in %s, before the backend listened (%s)", took, d)
			}
		})
	}
	t.Run("never-ready", func(t *testing.T) {
		name := uniqueName(t)
		cmd, url := e.serveListen(t, name, t.TempDir(), "--ready-timeout", "2s", "--env", "NEVER_LISTEN=1")
		logs, _ := e.startProcess(t, name, cmd)
		waitListeningURL(t, url)
		const clients = 5
		var wg sync.WaitGroup
		took := make([]time.Duration, clients)
		errs := make([]error, clients)
		began := time.Now()
		for i := range clients {
			wg.Go(func() {
				_, errs[i] = faultGet(url, 60*time.Second)
				took[i] = time.Since(began)
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err == nil {
				t.Fatalf("client %d got an answer from a backend that never listens", i)
			}
		}
		longest := slices.Max(took)
		if !waitLog(t, logs, "not ready within 2s", 10*time.Second) {
			t.Fatalf("log does not say why the held connections were closed:\n%s", logs.String())
		}
		figure(t, "never ready", fmt.Sprintf("%d held connections closed after %s at most, reason logged", clients, longest.Round(10*time.Millisecond)),
			"NEVER_LISTEN=1, --ready-timeout 2s; the log says \"not ready within 2s\"")
		// The launcher's deadline ends the start; the proxy's (ready
		// timeout plus a grace) only bounds the wait on top of it.
		if limit := 2*time.Second + readyGrace; longest > limit {
			t.Errorf("held connections closed after %s; want within --ready-timeout plus %s", longest, readyGrace)
		}
		if longest < 2*time.Second {
			t.Errorf("held connections closed after %s, before --ready-timeout 2s", longest)
		}
		e.waitStopped(t, name)
	})
}

// waitListeningURL waits until the --listen socket of url is bound.
func waitListeningURL(t *testing.T, url string) {
	t.Helper()
	_, port, _ := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/"))
	p, _ := strconv.Atoi(port)
	waitListening(t, p)
}

// ---- 3. Crash mid-stream and crash loops ----

// TestFaultCrashMidStream lets the container crash while a client streams
// through it: the client sees EOF or a reset, and the next connection
// starts it again and is answered.
func TestFaultCrashMidStream(t *testing.T) {
	e := needE2E(t)
	name := uniqueName(t)
	ports := freePorts(t, 2)
	web := fmt.Sprintf("127.0.0.1:%d", ports[0])
	echo := fmt.Sprintf("127.0.0.1:%d", ports[1])
	cmd := exec.Command(e.bin, "serve", "--image", e.image, "--name", name,
		"--listen", "web="+web, "--listen", "echo="+echo, "--port", "web=8080", "--port", "echo=9000",
		"--podman-url", e.podmanURL, "--state-dir", t.TempDir(),
		"--idle-timeout", "1s", "--stop-timeout", "1s", "--env", "CRASH_AFTER=2s", "--log-level", "debug")
	logs, _ := e.startProcess(t, name, cmd)
	waitListening(t, ports[1])

	c, err := net.Dial("tcp", echo)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	began := time.Now()
	buf := make([]byte, 64)
	rounds := 0
	var streamErr error
	for time.Since(began) < 30*time.Second {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			streamErr = err
			break
		}
		n, err := io.ReadFull(c, buf[:5])
		if err != nil {
			streamErr = err
			break
		}
		if string(buf[:n]) != "ping\n" {
			t.Fatalf("echo: %q; want ping", buf[:n])
		}
		rounds++
		time.Sleep(50 * time.Millisecond)
	}
	ended := time.Since(began)
	how := "other"
	switch {
	case errors.Is(streamErr, io.EOF), errors.Is(streamErr, io.ErrUnexpectedEOF):
		how = "EOF"
	case errors.Is(streamErr, syscall.ECONNRESET), errors.Is(streamErr, syscall.EPIPE):
		how = "reset"
	}
	if how == "other" || rounds == 0 {
		t.Fatalf("stream through a crashing container: %d echoes, then %v; want echoes, then EOF or a reset", rounds, streamErr)
	}
	// A connection right after the crash, before Podman has reported the
	// exit (about 0.7s): the launcher still says ready, and the
	// container's host port leads nowhere (conmon's port reservation, or
	// a DNAT to a dead address). Its fate is a figure, not asserted: see
	// the report on issue 6.
	windowDone := make(chan string, 1)
	go func() {
		began := time.Now()
		body, err := faultGet("http://"+web+"/", 60*time.Second)
		if err != nil || body != "v1\n" {
			windowDone <- fmt.Sprintf("lost after %s (%v)", time.Since(began).Round(10*time.Millisecond), err)
			return
		}
		windowDone <- fmt.Sprintf("answered in %s", time.Since(began).Round(10*time.Millisecond))
	}()
	if !waitLog(t, logs, "container exited", 30*time.Second) {
		t.Fatalf("log does not report the crash:\n%s", logs.String())
	}
	// Once the exit is known, the next connection starts it again.
	began = time.Now()
	body, err := faultGet("http://"+web+"/", 60*time.Second)
	if err != nil || body != "v1\n" {
		t.Fatalf("request after the crash was reported: %q, %v; want the container started again", body, err)
	}
	took := time.Since(began)
	window := <-windowDone
	figure(t, "crash mid-stream", fmt.Sprintf("stream ended with %s after %d echoes (%s); a connection at once after the crash: %s; the next connection after the exit was reported answered in %s",
		how, rounds, ended.Round(10*time.Millisecond), window, took.Round(10*time.Millisecond)),
		"TCP echo held open while the container exits 2s after listening (CRASH_AFTER=2s); then one GET at once and one after the log says container exited")
}

// TestFaultCrashLoop keeps connections arriving at a container that exits
// at every start: the starts back off (500ms doubling up to 30s), the
// delay is logged and sent to systemd as STATUS=, and the container is not
// restarted hundreds of times a minute.
func TestFaultCrashLoop(t *testing.T) {
	e := needE2E(t)
	name := uniqueName(t)
	notify := listenNotifySocket(t)
	cmd, url := e.serveListen(t, name, t.TempDir(), "--ready-timeout", "5s", "--log-level", "debug", "--env", "EXIT_AT_START=7")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify.path)
	logs, _ := e.startProcess(t, name, cmd)
	waitListeningURL(t, url)

	window := 10 * time.Second
	if soak() {
		window = 2 * time.Minute
	}
	// Two clients always waiting.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var answered, closed int
	var mu sync.Mutex
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := faultGet(url, 60*time.Second)
				mu.Lock()
				if err == nil {
					answered++
				} else {
					closed++
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(window)
	starts := logTimes(logs.String(), "to=starting")
	close(stop)
	wg.Wait()
	if answered > 0 {
		t.Fatalf("%d requests answered by a container that exits at start", answered)
	}
	var gaps []string
	for i := 1; i < len(starts); i++ {
		gaps = append(gaps, starts[i].Sub(starts[i-1]).Round(100*time.Millisecond).String())
	}
	perMin := float64(len(starts)) * float64(time.Minute) / float64(window)
	delays := strings.Count(logs.String(), "delaying start: container keeps dying")
	figure(t, "crash loop", fmt.Sprintf("%d starts in %s (%.0f a minute at this point of the backoff; gaps %s), %d delays logged",
		len(starts), window, perMin, strings.Join(gaps, " "), delays),
		"EXIT_AT_START=7, two clients always waiting; starts counted from lazypod's log (state changed to starting)")
	// Without backoff a start that fails in about 1.2s would run 8 times
	// in 10s; with it: 0, +0.5s, +1s, +2s, +4s after each failure.
	if limit := 6 + int(window/(30*time.Second)); len(starts) > limit {
		t.Errorf("%d starts in %s; want at most %d with the backoff", len(starts), window, limit)
	}
	if len(starts) < 3 {
		t.Fatalf("%d starts in %s; want the crash loop to have been tried a few times", len(starts), window)
	}
	// Each gap is the time Podman takes to report the exit (about 1.2 to
	// 1.8s, as the machine goes) plus the delay before the next start:
	// the delays logged must double, and the gaps grow with them.
	var logged []time.Duration
	for _, m := range regexp.MustCompile(`keeps dying" service=\S+ delay=(\S+)`).FindAllStringSubmatch(logs.String(), -1) {
		if d, err := time.ParseDuration(m[1]); err == nil {
			logged = append(logged, d)
		}
	}
	// They stop at the launcher's 30s cap (reached in soak's longer run).
	const capped = 29 * time.Second
	for i := 1; i < len(logged); i++ {
		if logged[i] < logged[i-1]*3/2 && logged[i] < capped {
			t.Errorf("delays logged do not grow up to the 30s cap: %v", logged)
			break
		}
	}
	// The first start also creates the container, which takes up to a
	// second more on a fresh machine: with enough starts, the gaps are
	// compared from the second one.
	i0 := 0
	if len(starts) >= 4 {
		i0 = 1
	}
	// Each gap also holds Podman's report of the exit, which varies by
	// some tenths of a second from one start to the next: the last gap
	// must be longer than the first, not longer by a set amount.
	if first, last := starts[i0+1].Sub(starts[i0]), starts[len(starts)-1].Sub(starts[len(starts)-2]); len(logged) > 1 && last <= first {
		t.Errorf("gaps between starts do not grow with the delays %v: first %s, last %s", logged, first, last)
	}
	if delays == 0 {
		t.Errorf("log does not report the backoff:\n%s", logs.String())
	}
	if s := notify.logs.String(); !strings.Contains(s, "it keeps dying") {
		t.Errorf("STATUS= lines sent to systemd do not report the backoff:\n%s", s)
	} else {
		figure(t, "crash loop status", strconv.Quote(lastLineWith(s, "keeps dying")), "STATUS= line sent to $NOTIFY_SOCKET")
	}
	if !strings.Contains(logs.String(), "exited with code 7") {
		t.Errorf("log does not give the exit code:\n%s", logs.String())
	}
}

// notifySocket is a fake $NOTIFY_SOCKET collecting what lazypod sends.
type notifySocket struct {
	path string
	logs *lockedBuffer
}

func listenNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	pc, err := net.ListenPacket("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{path: path, logs: &lockedBuffer{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			n.logs.Write(append(buf[:k:k], '\n'))
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return n
}

// logTimes returns the time= of each log line containing s.
func logTimes(logs, s string) []time.Time {
	var ts []time.Time
	re := regexp.MustCompile(`^time=(\S+)`)
	for line := range strings.SplitSeq(logs, "\n") {
		if !strings.Contains(line, s) {
			continue
		}
		if m := re.FindStringSubmatch(line); m != nil {
			if tm, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
				ts = append(ts, tm)
			}
		}
	}
	return ts
}

func lastLineWith(s, sub string) string {
	last := ""
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			last = line
		}
	}
	return last
}

// ---- 4. Podman API down, restarted, hanging ----

// apiFault is a unix-socket proxy between lazypod and the Podman API that
// passes, refuses (its socket gone, its connections closed, as when the
// service stopped) or hangs (accepts and forwards nothing, on new and open
// connections alike) on demand.
type apiFault struct {
	path, target string

	mu    sync.Mutex
	ln    net.Listener
	gate  chan struct{} // closed unless hanging
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newAPIFault(t *testing.T, target string) *apiFault {
	t.Helper()
	dir, err := os.MkdirTemp("", "lzfault")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &apiFault{path: filepath.Join(dir, "api.sock"), target: target,
		gate: make(chan struct{}), conns: make(map[net.Conn]struct{})}
	close(f.gate)
	if err := f.pass(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.close)
	return f
}

// pass forwards again: listening if refused, releasing held bytes if hung.
func (f *apiFault) pass() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.gate:
	default:
		close(f.gate)
	}
	if f.ln != nil {
		return nil
	}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		return err
	}
	f.ln = ln
	f.wg.Add(1)
	go f.accept(ln)
	return nil
}

// refuse removes the socket and closes every connection.
func (f *apiFault) refuse() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln != nil {
		f.ln.Close()
		f.ln = nil
	}
	for c := range f.conns {
		c.Close()
	}
}

// hang stops forwarding bytes, on the open connections and new ones.
func (f *apiFault) hang() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.gate:
		f.gate = make(chan struct{})
	default:
	}
}

func (f *apiFault) close() {
	f.refuse()
	f.pass() //nolint:errcheck // releases held goroutines
	f.refuse()
	f.wg.Wait()
}

func (f *apiFault) accept(ln net.Listener) {
	defer f.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.forward(c)
	}
}

func (f *apiFault) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln == nil { // refused meanwhile
		c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *apiFault) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *apiFault) forward(c net.Conn) {
	defer f.wg.Done()
	if !f.track(c) {
		return
	}
	defer f.untrack(c)
	u, err := net.Dial("unix", f.target)
	if err != nil {
		return
	}
	if !f.track(u) {
		return
	}
	defer f.untrack(u)
	done := make(chan struct{})
	go func() { f.pipe(c, u); close(done) }()
	f.pipe(u, c)
	<-done
}

// pipe copies src to dst, holding each chunk while the API hangs; the
// first direction to end closes both.
func (f *apiFault) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.mu.Lock()
			gate := f.gate
			f.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// procStats reads a process's threads, resident memory and open fds.
type procStats struct {
	threads, fds int
	rssKB        int
}

func readProcStats(t *testing.T, pid int) procStats {
	t.Helper()
	var st procStats
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "Threads":
			st.threads, _ = strconv.Atoi(f[0])
		case "VmRSS":
			st.rssKB, _ = strconv.Atoi(f[0])
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	st.fds = len(fds)
	return st
}

// fdTargets lists what a process's fds point to, for a leak report.
func fdTargets(pid int) string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, _ := os.ReadDir(dir)
	var ts []string
	for _, fd := range fds {
		target, _ := os.Readlink(filepath.Join(dir, fd.Name()))
		ts = append(ts, fd.Name()+"->"+target)
	}
	return strings.Join(ts, " ")
}

func (s procStats) String() string {
	return fmt.Sprintf("%d threads, %d fds, RSS %.1f MB", s.threads, s.fds, float64(s.rssKB)/1024)
}

// liveStateOf reads the state a serve process publishes in the state
// directory, or "" if none.
func liveStateOf(stateDir, name string) string {
	l, _ := (&updater.Store{Dir: stateDir}).Live(name)
	return l.State
}

// waitLiveState waits up to d for the serve's state to be want.
func waitLiveState(t *testing.T, stateDir, name, want string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if liveStateOf(stateDir, name) == want {
			return
		}
	}
	t.Fatalf("serve state %q after %s; want %q", liveStateOf(stateDir, name), d, want)
}

// goroutineDump ends lazypod with SIGQUIT (GOTRACEBACK=all in its
// environment) and returns how many goroutines its dump lists.
func goroutineDump(t *testing.T, cmd *exec.Cmd, logs *lockedBuffer, done <-chan error) (int, string) {
	t.Helper()
	before := len(logs.String())
	cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("lazypod did not exit within 20s of SIGQUIT")
	}
	dump := logs.String()[before:]
	return len(regexp.MustCompile(`(?m)^\s*goroutine [1-9]\d* .*\[`).FindAllString(dump, -1)), dump
}

// TestFaultPodmanAPI puts a fault-injecting proxy between lazypod and the
// Podman API. Refused: a start fails at once with an error that says the
// API is not reachable. Hanging: the held connection is closed within the
// proxy's bound, not held forever. Back: the next connection is served.
// No goroutine, fd or thread is left behind by the faulted starts: the
// faulted lazypod ends with as many goroutines as one that had none.
func TestFaultPodmanAPI(t *testing.T) {
	e := needE2E(t)
	target, ok := strings.CutPrefix(e.podmanURL, "unix://")
	if !ok {
		t.Skipf("the fault proxy needs a unix socket Podman URL, not %s", e.podmanURL)
	}
	f := newAPIFault(t, target)
	name := uniqueName(t)
	stateDir := t.TempDir()
	// --ready-timeout 2s: the proxy holds a connection for 2s + 5s grace.
	cmd, url := e.serveListen(t, name, stateDir, "--ready-timeout", "2s")
	for i, a := range cmd.Args {
		if a == e.podmanURL {
			cmd.Args[i] = "unix://" + f.path
		}
	}
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	logs, done := e.startProcess(t, name, cmd)
	waitListeningURL(t, url)

	// A control lazypod without faults, for the goroutine count.
	ctlName := uniqueName(t) + "-ctl"
	ctlDir := t.TempDir()
	ctl, ctlURL := e.serveListen(t, ctlName, ctlDir, "--ready-timeout", "2s")
	ctl.Env = cmd.Env
	ctlLogs, ctlDone := e.startProcess(t, ctlName, ctl)
	waitListeningURL(t, ctlURL)

	get := func(what string, want bool) time.Duration {
		t.Helper()
		began := time.Now()
		body, err := faultGet(url, 60*time.Second)
		took := time.Since(began)
		if want && (err != nil || body != "v1\n") {
			t.Fatalf("%s: %q, %v after %s; want v1", what, body, err, took)
		}
		if !want && err == nil {
			t.Fatalf("%s: answered %q; want the connection closed", what, body)
		}
		return took
	}

	get("API passing", true)
	if _, err := faultGet(ctlURL, 60*time.Second); err != nil {
		t.Fatalf("control lazypod: %v", err)
	}
	waitLiveState(t, stateDir, name, "stopped", 30*time.Second)
	// Past lazypod's trim a second after the last flow closed, which
	// empties Go's pool of splice pipes: fds counted then are not pooled.
	time.Sleep(2 * proxy.QuietAfter)
	base := readProcStats(t, cmd.Process.Pid)

	rounds := 2
	if soak() {
		rounds = 6
	}
	var refused, hung, back []time.Duration
	for r := range rounds {
		// Down, as when podman.service stopped.
		f.refuse()
		refused = append(refused, get("API down", false))
		if r == 0 && !waitLog(t, logs, "podman API not reachable", 5*time.Second) {
			t.Errorf("log does not say the API is not reachable:\n%s", logs.String())
		}
		if err := f.pass(); err != nil {
			t.Fatal(err)
		}
		back = append(back, get("API back after being down", true))
		waitLiveState(t, stateDir, name, "stopped", 30*time.Second)

		// Hanging: accepts, answers nothing.
		f.hang()
		hung = append(hung, get("API hanging", false))
		if r == 0 && !waitLog(t, logs, "waiting 7s for backend to start", 5*time.Second) {
			t.Errorf("log does not say why the connection held during the hang was closed:\n%s", logs.String())
		}
		if soak() && r == 0 {
			// The start itself ends at its call's deadline (30s): a
			// connection that joins it late hears why.
			began := time.Now()
			get("API hanging, joining the hung start", false)
			if !waitLog(t, logs, "context deadline exceeded", 45*time.Second) {
				t.Errorf("a start during the hang did not end with a deadline error:\n%s", logs.String())
			}
			figure(t, "podman API hanging, start deadline", "the hung start ended with a deadline error "+time.Since(began).Round(time.Second).String()+" after a second connection joined it", "the launcher's 30s call deadline")
		}
		if err := f.pass(); err != nil {
			t.Fatal(err)
		}
		back = append(back, get("API back after hanging", true))
		waitLiveState(t, stateDir, name, "stopped", 30*time.Second)
	}
	time.Sleep(2 * proxy.QuietAfter)
	after := readProcStats(t, cmd.Process.Pid)

	round := func(ds []time.Duration) string {
		var s []string
		for _, d := range ds {
			s = append(s, d.Round(10*time.Millisecond).String())
		}
		return strings.Join(s, " ")
	}
	figure(t, "podman API down", "start failed, connection closed after "+round(refused), "fault proxy refusing; log says podman API not reachable")
	figure(t, "podman API hanging", "connection closed after "+round(hung), "fault proxy accepting and forwarding nothing; --ready-timeout 2s, so held for 2s + 5s grace")
	figure(t, "podman API back", "next connection answered in "+round(back), "fault proxy passing again; includes the crash-loop backoff the failed start earned")
	figure(t, "podman API leak", fmt.Sprintf("before %s; after %d faulted starts %s", base, 2*rounds, after), "/proc of lazypod, idle, container stopped")
	if after.fds > base.fds+2 {
		t.Errorf("fds grew from %d to %d over %d faulted starts: %s", base.fds, after.fds, 2*rounds, fdTargets(cmd.Process.Pid))
	}

	// Goroutines: SIGQUIT both, idle, and compare their dumps.
	waitLiveState(t, ctlDir, ctlName, "stopped", 30*time.Second)
	n, dump := goroutineDump(t, cmd, logs, done)
	nc, ctlDump := goroutineDump(t, ctl, ctlLogs, ctlDone)
	figure(t, "podman API goroutines", fmt.Sprintf("%d after %d faulted starts, %d in a lazypod without faults", n, 2*rounds, nc),
		"goroutines in the SIGQUIT dump (GOTRACEBACK=all), both idle")
	if n > nc+2 {
		t.Errorf("%d goroutines after the faults; %d without: leaked\n%s\n--- without faults:\n%s", n, nc, dump, ctlDump)
	}
}

// ---- 9. SIGTERM and SIGKILL during a start, a swap, a rollback ----

// TestFaultSignalTerm and TestFaultSignalKill signal lazypod during a
// start, during the start that swaps in a new image, and during the
// rollback from an image that exits at start; after a new lazypod's next
// start, the good image answers, exactly one container of the service
// exists (and its pin), and the state file reads.
func TestFaultSignalTerm(t *testing.T) { testSignals(t, syscall.SIGTERM) }

func TestFaultSignalKill(t *testing.T) { testSignals(t, syscall.SIGKILL) }

func testSignals(t *testing.T, sig syscall.Signal) {
	e := needE2E(t)
	name := uniqueName(t)
	ref := "localhost/" + name + "-svc:latest"
	tag := func(v string) { t.Helper(); e.podman(t, "tag", "localhost/lazypod-testserver:"+v, ref) }
	stateDir := t.TempDir()
	web := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	url := "http://" + web + "/"
	t.Cleanup(func() {
		exec.Command("podman", "--remote", "--url", e.podmanURL, "rm", "-f", "-t", "0", podman.PinName(name)).Run()
		// Only this name: "untag IMAGE" alone would strip every name of
		// the shared test image behind it.
		exec.Command("podman", "--remote", "--url", e.podmanURL, "untag", ref, ref).Run()
		pin := podman.PinRef(name)
		exec.Command("podman", "--remote", "--url", e.podmanURL, "untag", pin, pin).Run()
	})
	serve := func() (*exec.Cmd, *lockedBuffer, <-chan error) {
		cmd := exec.Command(e.bin, "serve", "--image", ref, "--name", name, "--auto-update", "local",
			"--listen", "web="+web, "--port", "web=8080", "--podman-url", e.podmanURL, "--state-dir", stateDir,
			"--idle-timeout", "1s", "--ready-timeout", "4s", "--stop-timeout", "1s", "--log-level", "debug")
		logs, done := e.startProcess(t, name, cmd)
		waitListening(t, freePortOf(web))
		return cmd, logs, done
	}
	// containers lists the service's containers: NAME, and its pin.
	containers := func() []string {
		out := e.podman(t, "ps", "-a", "--format", "{{.Names}}", "--filter", "label=io.lazypod.service="+name)
		pins := e.podman(t, "ps", "-a", "--format", "{{.Names}}", "--filter", "label="+podman.LabelPin+"="+name)
		names := append(strings.Fields(out), strings.Fields(pins)...)
		slices.Sort(names)
		return names
	}
	// interrupt starts a request, signals lazypod once its log says
	// marker, and checks the aftermath with a new lazypod.
	interrupt := func(what, marker, want string) {
		t.Helper()
		cmd, logs, done := serve()
		reqDone := make(chan struct{})
		go func() { defer close(reqDone); faultGet(url, 60*time.Second) }()
		if !waitLog(t, logs, marker, 30*time.Second) {
			t.Fatalf("%s: log never said %q:\n%s", what, marker, logs.String())
		}
		cmd.Process.Signal(sig)
		var exitErr error
		select {
		case exitErr = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: lazypod did not exit within 30s of %v", what, sig)
		}
		<-reqDone
		left := containers()

		next, _, nextDone := serve()
		began := time.Now()
		body, err := faultGet(url, 60*time.Second)
		if err != nil || body != want+"\n" {
			t.Fatalf("%s: next start answered %q, %v; want %s", what, body, err, want)
		}
		took := time.Since(began)
		got := containers()
		st := e.statusOf(t, stateDir, name) // fails the test unless it reads
		// The pin holds the previous image (or the current one) of a
		// service that updates.
		wantNames := []string{name, podman.PinName(name)}
		slices.Sort(wantNames)
		figure(t, fmt.Sprintf("%v during %s", sig, what),
			fmt.Sprintf("lazypod exit %v; containers left %q; next start answered %s in %s; containers then %q; state readable (image %s)",
				exitDesc(exitErr), left, want, took.Round(10*time.Millisecond), got, spec.ShortID(st.ImageID)),
			"signalled when the log said "+strconv.Quote(marker)+"; then a new lazypod and one request")
		if !slices.Equal(got, wantNames) {
			t.Errorf("%s: containers after the next start %q; want %q", what, got, wantNames)
		}
		if sig == syscall.SIGTERM && exitErr != nil {
			t.Errorf("%s: lazypod exited with %v after SIGTERM; want 0", what, exitErr)
		}
		// End the new lazypod, so that the next step's is alone on
		// the port; SIGTERM stops the container.
		next.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-nextDone:
			if err != nil {
				t.Errorf("%s: the next lazypod exited with %v after SIGTERM; want 0", what, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: the next lazypod did not exit within 30s of SIGTERM", what)
		}
	}

	tag("v1")
	// A start: the container is being created or started.
	interrupt("a start", "to=starting", "v1")
	// A swap: a new image is tagged, the start swaps it in.
	tag("v2")
	interrupt("a swap start", "swapping in a new image", "v2")
	// A rollback: v3 exits at start, the start rolls back to v2.
	tag("v3")
	interrupt("a rollback", "rolling back", "v2")
	if st := e.statusOf(t, stateDir, name); len(st.FailedDigests) == 0 {
		t.Errorf("after the interrupted rollback from v3: no failed image recorded: %+v", st)
	}
}

func exitDesc(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "0"
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by signal " + strconv.Itoa(int(ws.Signal()))
		}
		return strconv.Itoa(ee.ExitCode())
	}
	return err.Error()
}

func freePortOf(addr string) int {
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return p
}

// ---- 10. Read-only and full state directory ----

// TestFaultStateDir runs a service whose state directory is read-only (a
// read-only bind mount: chmod does not stop root) or full (a 64k tmpfs
// filled up): requests are still answered, with what the state already
// knows, and the write failure is logged clearly.
func TestFaultStateDir(t *testing.T) {
	e := needE2E(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting a read-only or a tiny state directory needs root")
	}
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string)
		want    string // in the log
	}{
		{"read-only", func(t *testing.T, dir string) {
			mountFor(t, "--bind", dir, dir)
			if out, err := exec.Command("mount", "-o", "remount,bind,ro", dir).CombinedOutput(); err != nil {
				t.Fatalf("remounting %s read-only: %v: %s", dir, err, out)
			}
		}, "read-only file system"},
		{"full", func(t *testing.T, dir string) {
			fillDir(t, dir)
		}, "no space left on device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := uniqueName(t)
			dir := t.TempDir()
			if tc.name == "full" {
				mountFor(t, "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir)
			}
			// What is known: one start recorded.
			cmd, url := e.serveListen(t, name, dir, "--auto-update", "disabled")
			_, done := e.startProcess(t, name, cmd)
			waitListeningURL(t, url)
			if body, err := faultGet(url, 60*time.Second); err != nil || body != "v1\n" {
				t.Fatalf("first start: %q, %v", body, err)
			}
			e.waitStatus(t, dir, name, func(st updater.Status) bool { return st.ImageID != "" })
			cmd.Process.Signal(syscall.SIGTERM)
			<-done

			tc.prepare(t, dir)
			cmd, url = e.serveListen(t, name, dir, "--auto-update", "disabled")
			logs, _ := e.startProcess(t, name, cmd)
			waitListeningURL(t, url)
			const n = 3
			answered := 0
			var errs []error
			for range n {
				body, err := faultGet(url, 60*time.Second)
				if err == nil && body == "v1\n" {
					answered++
				} else {
					errs = append(errs, err)
				}
				e.waitStopped(t, name)
				waitLiveStateOrNone(t, dir, name)
			}
			logged := lastLineWith(logs.String(), tc.want)
			figure(t, "state dir "+tc.name, fmt.Sprintf("%d of %d cold starts answered; logged: %s", answered, n, strings.TrimSpace(logged)),
				"state written by a first serve, then the directory made "+tc.name+"; three requests, each a cold start")
			if answered != n {
				t.Errorf("%d of %d requests answered with the state directory %s: %v\n%s", answered, n, tc.name, errs, logs.String())
			}
			if logged == "" {
				t.Errorf("log does not say %q:\n%s", tc.want, logs.String())
			}
			if _, _, code := e.lazypod(t, "status", "--state-dir", dir, name); code != 0 {
				t.Errorf("lazypod status with the state directory %s: exit %d; want what is known", tc.name, code)
			}
		})
	}
}

// waitLiveStateOrNone gives the serve a moment to settle after an idle
// stop; with a state directory it cannot write, there is no live state.
func waitLiveStateOrNone(t *testing.T, dir, name string) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if s := liveStateOf(dir, name); s == "" || s == "stopped" {
			return
		}
	}
}

// mountFor runs mount(8) and unmounts when the test ends.
func mountFor(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v: %s", strings.Join(args, " "), err, out)
	}
	dir := args[len(args)-1]
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// fillDir writes to dir until it is full.
func fillDir(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return
		}
	}
}
