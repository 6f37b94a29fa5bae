package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tests that need a process of their own (a lower file descriptor limit, a
// clean memory figure) run the test binary again as a child with
// childEnv set to a mode. The child serves on a loopback listener, prints
// "ADDR host:port", answers commands read from stdin one a line, and
// stops when stdin closes.
const childEnv = "LAZYPOD_PROXY_TEST_CHILD"

// child is the test binary running as a child process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout, one line each
	stderr *syncBuffer
}

// startChild runs test in a child process in mode, with the extra
// environment env. It is stopped in t.Cleanup.
func startChild(t *testing.T, test, mode string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(append(os.Environ(), childEnv+"="+mode), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 100), stderr: &syncBuffer{}}
	cmd.Stderr = ch.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go readLines(stdout, ch.lines)
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("child: %v; its stderr:\n%s", err, ch.stderr)
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("child still running 20s after its stdin closed; killed; its stderr:\n%s", ch.stderr)
		}
	})
	return ch
}

func readLines(r io.Reader, lines chan<- string) {
	defer close(lines)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines <- sc.Text()
	}
}

// expect returns the rest of the child's next stdout line that starts with
// prefix, skipping others, waiting up to 20s.
func (ch *child) expect(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-ch.lines:
			if !ok {
				t.Fatalf("child ended before printing %q; its stderr:\n%s", prefix, ch.stderr)
			}
			if rest, found := strings.CutPrefix(l, prefix); found {
				return rest
			}
		case <-timeout:
			t.Fatalf("child printed no %q line in 20s; its stderr:\n%s", prefix, ch.stderr)
		}
	}
}

// ask sends cmd to the child and returns its answer, the line that starts
// with cmd in upper case.
func (ch *child) ask(t *testing.T, cmd string) string {
	t.Helper()
	if _, err := fmt.Fprintln(ch.stdin, cmd); err != nil {
		t.Fatalf("asking child %q: %v", cmd, err)
	}
	return ch.expect(t, strings.ToUpper(cmd)+" ")
}

// serveChild is the child's side: it runs srv on a new loopback listener,
// prints its address, and answers commands on stdin with answer until
// stdin closes.
func serveChild(t *testing.T, srv *Server, answer func(cmd string) string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv.Routes = []Route{{Name: "web", Listener: ln}}
	srv.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &running{cancel: cancel, done: make(chan struct{})}
	go r.run(ctx, srv)
	fmt.Printf("ADDR %s\n", ln.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fmt.Printf("%s %s\n", strings.ToUpper(sc.Text()), answer(sc.Text()))
	}
	if err := r.Stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestEMFILEBackoff floods a Server whose process may open only 64
// descriptors with more connections than that: Accept fails with EMFILE,
// and the accept loop must back off rather than spin. Once the flood's
// connections close, new connections are served again.
func TestEMFILEBackoff(t *testing.T) {
	const nofile = 64
	if os.Getenv(childEnv) == "emfile" {
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		lim.Cur = nofile
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		srv := &Server{
			Backend:        &fakeBackend{addr: os.Getenv("LAZYPOD_TEST_BACKEND")},
			MaxConnections: -1, // no cap, so the fds do run out
			IdleTimeout:    -1,
			// Accepted flows that cannot dial hold a descriptor until
			// they give up: keep that short, or freed descriptors go to
			// accepting the backlog rather than to dials for a while.
			ReadyTimeout: 500 * time.Millisecond,
		}
		serveChild(t, srv, func(cmd string) string {
			return strconv.FormatInt(int64(cpuTime()), 10)
		})
		return
	}

	const flood, window = 150, 2 * time.Second
	backend := startTestServer(t, echo)
	ch := startChild(t, "TestEMFILEBackoff", "emfile", "LAZYPOD_TEST_BACKEND="+backend.Addr())
	addr := ch.expect(t, "ADDR ")

	conns := make([]net.Conn, 0, flood)
	for range flood {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dialing with %d connections open: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	eventually(t, "the child runs out of descriptors", func() bool {
		return strings.Contains(ch.stderr.String(), "too many open files")
	})
	before := childCPU(t, ch)
	time.Sleep(window)
	used := childCPU(t, ch) - before
	share := float64(used) / float64(window)
	served := backend.accepted.Load()

	for _, c := range conns {
		c.Close()
	}
	freed := time.Now()
	var took time.Duration
	for attempt := 1; ; attempt++ {
		err := echoOnce(addr, fmt.Sprintf("after the flood %d", attempt))
		if err == nil {
			took = time.Since(freed)
			break
		}
		if time.Since(freed) > 15*time.Second {
			t.Fatalf("no connection served 15s after the flood closed: %v; child's stderr:\n%s", err, ch.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	log := ch.stderr.String()
	t.Logf("FIGURE emfile: %.1f%% of one core over %v while %d connections flooded a %d-descriptor limit (%d reached the backend, Accept failing with EMFILE; child's getrusage), served again %v after the flood closed",
		100*share, window, flood, nofile, served, took.Round(time.Millisecond))
	if share > 0.2 {
		t.Errorf("CPU while out of descriptors: %.1f%% of one core; want under 20%% (a busy accept loop)", 100*share)
	}
	if !strings.Contains(log, `msg="accepting connection; backing off" route=web err="accept tcp 127.0.0.1:`) {
		t.Errorf("child's log: got %q; want the EMFILE backoff logged", log)
	}
}

// childCPU asks the child for its CPU time.
func childCPU(t *testing.T, ch *child) time.Duration {
	t.Helper()
	ns, err := strconv.ParseInt(ch.ask(t, "cpu"), 10, 64)
	if err != nil {
		t.Fatalf("child's CPU time: %v", err)
	}
	return time.Duration(ns)
}

// echoOnce sends msg through addr to an echo backend and checks the reply.
func echoOnce(addr, msg string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo: got %q; want %q", got, msg)
	}
	return nil
}

// TestHeldFlowMemory measures what 1000 connected, silent TCP flows cost a
// Server in a process of its own, with FlowIdleTimeout on.
func TestHeldFlowMemory(t *testing.T) {
	if os.Getenv(childEnv) == "memory" {
		srv := &Server{
			// Ready, as the launcher is once its container runs: flows
			// take the path that grows their stack before the dial.
			Backend:         &fakeBackend{addr: os.Getenv("LAZYPOD_TEST_BACKEND"), ready: true},
			MaxConnections:  -1,
			IdleTimeout:     -1,
			FlowIdleTimeout: time.Hour,
		}
		serveChild(t, srv, func(cmd string) string {
			runtime.GC()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return fmt.Sprintf("%d %d %d %d", srv.Flows(), ms.HeapInuse, ms.StackInuse, rss())
		})
		return
	}

	const warm, flows = 20, 1000
	backend := startTestServer(t, func(c *net.TCPConn) {
		c.SetDeadline(time.Time{})
		io.Copy(io.Discard, struct{ io.Reader }{c}) // no splice: fewer fds
	})
	ch := startChild(t, "TestHeldFlowMemory", "memory", "LAZYPOD_TEST_BACKEND="+backend.Addr())
	addr := ch.expect(t, "ADDR ")

	// Warm up, so one-time costs (code paged in, pools) are not counted.
	for range warm {
		c := dialTCP(t, addr)
		c.Write([]byte("x"))
		c.Close()
	}
	eventually(t, "the warm-up flows reach the backend", func() bool { return backend.accepted.Load() == warm })
	var base memFigures
	eventually(t, "the warm-up flows end", func() bool {
		base = childMem(t, ch)
		return base.flows == 0
	})

	for range flows {
		dialTCP(t, addr) // closed in t.Cleanup
	}
	eventually(t, "every flow reaches the backend", func() bool { return backend.accepted.Load() == warm+flows })
	time.Sleep(200 * time.Millisecond) // both copies of each flow wait for data
	held := childMem(t, ch)
	if held.flows != flows {
		t.Fatalf("child's flows: got %d; want %d", held.flows, flows)
	}
	heap, stack := (held.heap-base.heap)/flows, (held.stack-base.stack)/flows
	goMem := heap + stack
	rssPer := (held.rss - base.rss) / flows
	t.Logf("FIGURE held-flow-memory: %d bytes/flow (Go heap %d + goroutine stacks %d, in use after GC, %d connected silent TCP flows with FlowIdleTimeout on, in a child process; RSS grew %d bytes/flow%s; kernel socket buffers and splice pipes not counted)",
		goMem, heap, stack, flows, rssPer, raceNote())
	if goMem > 32<<10 {
		t.Errorf("Go memory per held flow: %d bytes; want at most 32 KiB", goMem)
	}
}

// memFigures is what the memory child reports.
type memFigures struct {
	flows            int
	heap, stack, rss int64
}

func childMem(t *testing.T, ch *child) memFigures {
	t.Helper()
	var m memFigures
	if _, err := fmt.Sscan(ch.ask(t, "mem"), &m.flows, &m.heap, &m.stack, &m.rss); err != nil {
		t.Fatalf("child's memory figures: %v", err)
	}
	return m
}

// rss returns the process's resident set size in bytes, or -1.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for l := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}
