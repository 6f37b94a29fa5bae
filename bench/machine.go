package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// describeMachine records what the figures were measured on.
func describeMachine(ctx context.Context, pm *podman, nofile uint64) machine {
	m := machine{
		Cores:   runtime.NumCPU(),
		CPU:     cpuModel(),
		Kernel:  firstLine("uname", "-sr"),
		Go:      firstLine("go", "version"),
		Podman:  pm.version(ctx) + " (API service, runc, cgroupfs, netavark)",
		Systemd: firstLine("systemctl", "--version"),
		Wrk:     firstLine("wrk", "-v"),
		NoFile:  nofile,
		Date:    time.Now().UTC().Format("2006-01-02 15:04 MST"),
	}
	if m.Go == "" {
		m.Go = runtime.Version() + " (the bench's own)"
	}
	return m
}

func firstLine(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// linkedLibs says whether bin is static or which shared libraries it loads.
func linkedLibs(bin string) string {
	out, _ := exec.Command("ldd", bin).CombinedOutput()
	s := string(out)
	if strings.Contains(s, "not a dynamic executable") || strings.Contains(s, "statically linked") {
		return "static"
	}
	var libs []string
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == "=>" {
			libs = append(libs, f[0])
		}
	}
	if len(libs) == 0 {
		return "dynamic"
	}
	return fmt.Sprintf("dynamic: %s and %d more shared libraries", libs[0], len(libs)-1)
}
