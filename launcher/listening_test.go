package launcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// Socket tables as Linux prints them (taken from a container running the
// test server and dnsmasq), with lines of other ports and states.
const (
	tcpTable = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31015 1 0000000000000000 100 0 0 10 0
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31016 1 0000000000000000 100 0 0 10 0
   2: 0558000A:1F90 0158000A:C35A 01 00000000:00000000 00:00000000 00000000     0        0 31019 1 0000000000000000 20 4 30 10 -1
   3: 0558000A:2328 0158000A:9C40 01 00000000:00000000 00:00000000 00000000     0        0 31020 1 0000000000000000 20 4 30 10 -1
`
	tcp6Table = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:2328 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31017 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1A0A 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31018 1 0000000000000000 100 0 0 10 0
`
	udpTable = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  711: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40100 2 0000000000000000 0
  712: 0100007F:0036 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40101 2 0000000000000000 0
`
)

func TestBoundIn(t *testing.T) {
	for _, tt := range []struct {
		name       string
		table      string
		port       uint16
		listen     bool
		loopbackOK bool
		want       bool
	}{
		{"tcp wildcard listening", tcpTable, 8080, true, false, true},
		{"tcp only connected", tcpTable, 9000, true, false, false}, // 0x2328 as a local port of an established flow
		{"tcp6 wildcard listening", tcp6Table, 9000, true, false, true},
		{"tcp loopback only", tcpTable, 9090, true, false, false},
		{"tcp loopback, host network", tcpTable, 9090, true, true, true},
		{"tcp6 loopback only", tcp6Table, 6666, true, false, false},
		{"tcp not there", tcpTable, 80, true, false, false},
		{"no false suffix match", tcpTable, 0x90, true, false, false},
		{"udp wildcard bound", udpTable, 53, false, false, true},
		{"udp loopback only", udpTable, 54, false, false, false},
		{"udp loopback, host network", udpTable, 54, false, true, true},
		{"empty table", "", 53, false, false, false},
		{"header only", strings.SplitN(udpTable, "\n", 2)[0], 53, false, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := boundIn([]byte(tt.table), tt.port, tt.listen, tt.loopbackOK); got != tt.want {
				t.Errorf("boundIn(port %d, listen %v, loopbackOK %v) = %v; want %v", tt.port, tt.listen, tt.loopbackOK, got, tt.want)
			}
		})
	}
}

func TestIsLoopbackHex(t *testing.T) {
	for addr, want := range map[string]bool{
		"0100007F":                         true,  // 127.0.0.1
		"0505057F":                         true,  // 127.5.5.5
		"00000000":                         false, // 0.0.0.0
		"7F000001":                         false, // 1.0.0.127
		"0558000A":                         false, // 10.0.88.5
		"00000000000000000000000001000000": true,  // ::1
		"0000000000000000FFFF00000100007F": true,  // ::ffff:127.0.0.1
		"0000000000000000FFFF00000558000A": false, // ::ffff:10.0.88.5
		"00000000000000000000000000000000": false, // ::
		"":                                 false,
	} {
		if got := isLoopbackHex(addr); got != want {
			t.Errorf("isLoopbackHex(%q) = %v; want %v", addr, got, want)
		}
	}
}

// fakeProc makes a proc tree in a temporary directory with pid's socket
// tables (a missing one is not written) and its and our net namespace
// links.
func fakeProc(t *testing.T, pid int, tables map[string]string, theirNS, ourNS string) string {
	t.Helper()
	proc := t.TempDir()
	dir := filepath.Join(proc, fmt.Sprint(pid))
	for _, d := range []string{dir + "/net", dir + "/ns", proc + "/self/ns"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range tables {
		if err := os.WriteFile(filepath.Join(dir, "net", name), []byte(content), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{dir + "/ns/net": theirNS, proc + "/self/ns/net": ourNS} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	return proc
}

func TestUnbound(t *testing.T) {
	proc := fakeProc(t, 42, map[string]string{"tcp": tcpTable, "tcp6": tcp6Table, "udp": udpTable}, "net:[2]", "net:[1]")
	web, echo, dns := ContainerPort{8080, spec.ProtoTCP}, ContainerPort{9000, spec.ProtoTCP}, ContainerPort{53, spec.ProtoUDP}
	missing, err := unbound(proc, 42, []ContainerPort{web, echo, dns}, false)
	if err != nil || len(missing) != 0 {
		t.Errorf("unbound(8080/tcp, 9000/tcp (tcp6), 53/udp) = %v, %v; want none (udp6 missing is no error)", missing, err)
	}
	other := ContainerPort{5353, spec.ProtoUDP}
	missing, err = unbound(proc, 42, []ContainerPort{web, other, {9090, spec.ProtoTCP}}, false)
	if err != nil || portList(missing) != "5353/udp, 9090/tcp" {
		t.Errorf("unbound = %v, %v; want 5353/udp, 9090/tcp", missing, err)
	}
	if _, err := unbound(proc, 43, []ContainerPort{web}, false); err == nil {
		t.Error("unbound of a pid that is gone: nil error; want one")
	}
}

func TestSocketTables(t *testing.T) {
	tables := map[string]string{"tcp": tcpTable}
	for _, tt := range []struct {
		name        string
		proc        string
		pid         int
		hostNetwork bool
		wantErr     string
	}{
		{"own namespace", fakeProc(t, 42, tables, "net:[2]", "net:[1]"), 42, false, ""},
		{"no pid", fakeProc(t, 42, tables, "net:[2]", "net:[1]"), 0, false, "the engine gave no pid"},
		{"no such process", fakeProc(t, 42, tables, "net:[2]", "net:[1]"), 43, false, "no such file"},
		{"our namespace", fakeProc(t, 42, tables, "net:[1]", "net:[1]"), 42, false, "lazypod's own network namespace"},
		{"our namespace, host network", fakeProc(t, 42, tables, "net:[1]", "net:[1]"), 42, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := socketTables(tt.proc, tt.pid, tt.hostNetwork)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("socketTables = %v; want nil", err)
				}
				return
			}
			if !errors.Is(err, errNoSocketTables) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("socketTables = %v; want errNoSocketTables saying %q", err, tt.wantErr)
			}
		})
	}
}

// TestListeningProbe: the default probe waits until the published port is
// listening in the container's socket tables, and says which port is not
// when the start times out.
func TestListeningProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		f.pid = 4242
		proc := fakeProc(t, 4242, map[string]string{"tcp": tcpTable[:strings.Index(tcpTable, "\n")+1]}, "net:[2]", "net:[1]")
		f.afterStart = func(f *fakeRuntime, id string) {
			go func() {
				time.Sleep(300 * time.Millisecond)
				if err := os.WriteFile(filepath.Join(proc, "4242/net/tcp"), []byte(tcpTable), 0o444); err != nil {
					t.Error(err)
				}
			}()
		}
		cfg := testConfig(t, f)
		cfg.Ready, cfg.ProcDir = spec.Probe{}, proc
		cfg.DialContext = func(context.Context, string, string) (net.Conn, error) {
			t.Error("the listening probe dialed")
			return nil, errors.New("no dial")
		}
		l := runLauncher(t, cfg)
		if err := l.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if got := l.LastColdStart(); got < 300*time.Millisecond || got > 400*time.Millisecond {
			t.Errorf("LastColdStart: got %s; want just after the port is bound at 300ms", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		f.pid = 4242
		proc := fakeProc(t, 4242, map[string]string{"tcp": tcpTable, "udp": "", "udp6": ""}, "net:[2]", "net:[1]")
		cfg := testConfig(t, f)
		cfg.Ready, cfg.ProcDir, cfg.ReadyTimeout = spec.Probe{}, proc, 2*time.Second
		cfg.Ports = append(cfg.Ports, Port{Route: "dns", Port: 53, Proto: spec.ProtoUDP})
		l := runLauncher(t, cfg)
		err := l.Start(t.Context())
		if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "not bound in the container: 53/udp") {
			t.Errorf("Start with 53/udp never bound: %v; want not ready, naming 53/udp", err)
		}
	})
	// A container that exits between the inspect and the look at its
	// /proc: reported as the exit it is, not probed otherwise.
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRuntime()
		f.pid = 4343 // not in the fake /proc
		proc := fakeProc(t, 4242, map[string]string{"tcp": tcpTable}, "net:[2]", "net:[1]")
		f.afterInspect = func(f *fakeRuntime, info ContainerInfo) {
			if info.Running {
				f.exit(info.ID, 7)
			}
		}
		cfg := testConfig(t, f)
		cfg.Ready, cfg.ProcDir = spec.Probe{}, proc
		l := runLauncher(t, cfg)
		err := l.Start(t.Context())
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != 7 {
			t.Errorf("Start of a container that exited at once: %v; want its exit, code 7", err)
		}
		if l.warnedListening {
			t.Error("warned of probing otherwise than listening for a container that had exited")
		}
	})
}
