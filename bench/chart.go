package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// drawChart draws the headline comparisons into png with gnuplot: on the
// left, throughput and request rate of proxyd and lazypod as ratios to
// direct; on the right, cold start times against doing it by hand. The data
// and script are kept beside, under prefix.
func drawChart(r *results, png, prefix string) error {
	if err := os.MkdirAll(filepath.Dir(png), 0o755); err != nil {
		return err
	}
	var left strings.Builder
	left.WriteString("# figure proxyd/direct lazypod/direct\n")
	for _, f := range []struct{ fig, label string }{
		{"bulk-1", "bulk\\n1 stream"}, {"bulk-8", "bulk\\n8 streams"},
		{"wrk-keepalive-rps", "req/s\\nkeep-alive"}, {"wrk-close-rps", "req/s\\nconn/req"},
		{"wrk-1conn-rps", "req/s\\n1 conn"},
	} {
		fmt.Fprintf(&left, "\"%s\" %.3f %.3f\n", f.label, r.ratioOf(f.fig, proxyd, direct), r.ratioOf(f.fig, lazypod, direct))
	}
	var right strings.Builder
	right.WriteString("# case by-hand-API lazypod by-hand-CLI\n")
	for _, f := range []struct{ fig, label string }{{"cold-stopped", "container\\nstopped"}, {"cold-removed", "container\\nremoved"}} {
		fmt.Fprintf(&right, "\"%s\" %.1f %.1f %.1f\n", f.label, r.med(f.fig, coldAPI), r.med(f.fig, coldLazypod), r.med(f.fig, coldCLI))
	}
	leftPath, rightPath := prefix+"-ratios.dat", prefix+"-cold.dat"
	if err := os.WriteFile(leftPath, []byte(left.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(rightPath, []byte(right.String()), 0o644); err != nil {
		return err
	}
	script := fmt.Sprintf(`set terminal pngcairo size 1200,560 font "DejaVu Sans,11"
set output %q
set multiplot layout 1,2 title "lazypod on loopback, %d cores, median of %d alternating rounds" font ",13"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics lc rgb "#dddddd"
set key top right opaque
set bmargin 5
set xtics nomirror scale 0
set ytics nomirror

set title "Throughput and request rate, ratio to direct (1.0 = client to container)"
set yrange [0:1.45]
set ylabel "ratio to direct (higher is better)"
plot %q using 2:xtic(1) title "systemd-socket-proxyd" lc rgb "#7f8c8d", \
     '' using 3 title "lazypod (warm)" lc rgb "#2e86c1", \
     '' using 0:2:(sprintf("%%.2f",$2)) with labels offset -2.2,0.6 notitle, \
     '' using 0:3:(sprintf("%%.2f",$3)) with labels offset 2.2,0.6 notitle, \
     1 with lines lc rgb "#c0392b" dt 2 title "direct"

set title "Cold start: connect to first response byte (ms)"
set yrange [0:*]
set ylabel "milliseconds (lower is better)"
set offsets 0,0,graph 0.35,0
plot %q using 2:xtic(1) title "podman start + probe by hand (API)" lc rgb "#7f8c8d", \
     '' using 3 title "lazypod (socket-activated)" lc rgb "#2e86c1", \
     '' using 4 title "by hand (podman CLI)" lc rgb "#bdc3c7", \
     '' using ($0-0.3):2:(sprintf("%%.0f",$2)) with labels offset 0,0.7 notitle, \
     '' using 0:3:(sprintf("%%.0f",$3)) with labels offset 0,0.7 notitle, \
     '' using ($0+0.3):4:(sprintf("%%.0f",$4)) with labels offset 0,0.7 notitle
unset multiplot
`, png, r.Machine.Cores, r.Rounds, leftPath, rightPath)
	scriptPath := prefix + ".gp"
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		return err
	}
	out, err := exec.Command("gnuplot", scriptPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("gnuplot %s: %w: %s", scriptPath, err, out)
	}
	return nil
}
