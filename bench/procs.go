package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a process the bench started. Every proc is ended by the bench
// before it exits (procs.stopAll), and gets SIGTERM if the bench dies first.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// procs owns every process the bench starts.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

// spawn starts args with its output in logPath.
func (ps *procs) spawn(name, logPath string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go waitProc(p)
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

func waitProc(p *proc) {
	p.cmd.Wait()
	close(p.done)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitExit waits up to timeout for the process to exit on its own.
func (p *proc) waitExit(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// terminate sends SIGTERM, waits up to timeout, then kills.
func (p *proc) terminate(timeout time.Duration) error {
	if p.exited() {
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if p.waitExit(timeout) {
		return nil
	}
	p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s (pid %d) ignored SIGTERM for %s; killed", p.name, p.pid(), timeout)
}

// stopAll terminates every process still running.
func (ps *procs) stopAll() error {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	var errs []error
	for _, p := range list {
		if err := p.terminate(30 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// activated returns the command line that socket-activates program on
// 127.0.0.1 ports, as systemd-socket-activate does: it listens, and on the
// first connection execs program with the sockets. fdnames, if not empty,
// names them.
func activated(ports []int, fdnames []string, program ...string) []string {
	args := []string{"systemd-socket-activate"}
	// It passes the program no environment but its own few variables.
	if os.Getenv("GOMAXPROCS") != "" {
		args = append(args, "-E", "GOMAXPROCS")
	}
	for _, p := range ports {
		args = append(args, "-l", fmt.Sprintf("127.0.0.1:%d", p))
	}
	if len(fdnames) > 0 {
		args = append(args, "--fdname="+strings.Join(fdnames, ":"))
	}
	return append(args, program...)
}

// freePort returns a loopback port nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until something listens on 127.0.0.1:port, reading
// /proc/net/tcp: connecting would activate the service.
func waitListening(port int, timeout time.Duration) error {
	return waitTable("tcp", "0A", port, timeout)
}

// waitBoundUDP waits until a UDP socket is bound to 127.0.0.1:port,
// reading /proc/net/udp: sending would activate the service.
func waitBoundUDP(port int, timeout time.Duration) error {
	return waitTable("udp", "", port, timeout)
}

// waitTable waits until /proc/net/TABLE has a socket on 127.0.0.1:port, in
// state st if st is not empty.
func waitTable(table, st string, port int, timeout time.Duration) error {
	want := fmt.Sprintf("0100007F:%04X", port)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile("/proc/net/" + table)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && f[1] == want && (st == "" || f[3] == st) {
				return nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("nothing bound to %s 127.0.0.1:%d after %s", table, port, timeout)
}

// freeUDPPort returns a loopback UDP port nothing is bound to now.
func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// rssKB returns a process's resident set in kB.
func rssKB(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.Fields(v)[0])
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// cpuDuring runs f and returns the CPU time p used meanwhile, or 0 if p is
// nil.
func cpuDuring(p *proc, f func() error) (time.Duration, error) {
	if p == nil {
		return 0, f()
	}
	before, err := cpuTime(p.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	if err := f(); err != nil {
		return 0, err
	}
	after, err := cpuTime(p.cmd.Process.Pid)
	return after - before, err
}

// cpuTime returns the CPU time (user and system) a process has used, all
// its threads together, from /proc/PID/stat in clock ticks of 10ms.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14 and stime 15.
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %q", pid, data)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// fdCount returns how many descriptors a process has open.
func fdCount(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// exeName returns the base name of the program a process runs.
func exeName(pid int) string {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return ""
	}
	return exe[strings.LastIndexByte(exe, '/')+1:]
}

var tookRE = regexp.MustCompile(`msg="container ready".* took=([0-9.]+[a-zµ]+)`)

// launcherTook returns the last "container ready ... took=" duration in a
// lazypod log: the launcher's own create/start/probe time.
func launcherTook(logPath string) (time.Duration, error) {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return 0, err
	}
	m := tookRE.FindAllStringSubmatch(string(data), -1)
	if len(m) == 0 {
		return 0, fmt.Errorf("no \"container ready\" line in %s", logPath)
	}
	return time.ParseDuration(m[len(m)-1][1])
}

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit; children
// inherit it.
func raiseNoFile() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	return r.Cur, nil
}
