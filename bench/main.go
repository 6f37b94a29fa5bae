// Command bench measures lazypod against the client talking to the container
// directly and against systemd-socket-proxyd, in one run, alternating the
// contenders round by round, and writes the figures (medians over rounds and
// median per-round ratios) into BENCHMARKS.md and a PNG chart.
//
// Typical use, from the repository root (make bench does all of it):
//
//	scripts/podman-service.sh start build/bench-podman
//	scripts/build-images.sh build/bench-podman testserver
//	go run ./bench -podman-url unix://$PWD/build/bench-podman/podman.sock
//
// and, to lay out the report and chart again from a run's saved results:
//
//	go run ./bench -render build/bench/results.json
//
// It talks to loopback only, bounds every loop and wait, and ends every
// process and container it started, whatever happens. Containers are named
// lzbench-*.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

type config struct {
	PodmanURL string
	Lazypod   string
	Proxyd    string
	Image     string
	JVMImage  string // the JVM server of the wake figure
	DNSImage  string // dnsmasq, for the first-query figure
	Rounds    int
	// FirstQueries is how many cold starts each probe of the first-query
	// figure gets.
	FirstQueries int
	BulkBytes    int64
	WrkTime      time.Duration
	WorkDir      string
	Report       string // BENCHMARKS.md
	Chart        string // PNG
	Command      string // how the run was started, for the report
}

func main() {
	var cfg config
	var render string
	rounds, _ := strconv.Atoi(os.Getenv("ROUNDS"))
	if rounds <= 0 {
		rounds = 6
	}
	flag.StringVar(&cfg.PodmanURL, "podman-url", "", "Podman API `URI` (unix:///PATH) of the bench's private Podman (required)")
	flag.StringVar(&cfg.Lazypod, "lazypod", "build/lazypod", "lazypod `BINARY`")
	flag.StringVar(&cfg.Proxyd, "proxyd", "/lib/systemd/systemd-socket-proxyd", "systemd-socket-proxyd `BINARY`")
	flag.StringVar(&cfg.Image, "image", "localhost/lazypod-testserver:latest", "test server `IMAGE`")
	flag.StringVar(&cfg.JVMImage, "jvm-image", "localhost/lazypod-jvm:latest", "JVM HTTP server `IMAGE` (scripts/build-rootfs-images.sh)")
	flag.StringVar(&cfg.DNSImage, "dns-image", "localhost/lazypod-dnsmasq:latest", "dnsmasq `IMAGE` answering lazypod.test (scripts/build-rootfs-images.sh)")
	flag.IntVar(&cfg.FirstQueries, "first-queries", 10, "`N` cold starts per probe for the first DNS query figure")
	flag.IntVar(&cfg.Rounds, "rounds", rounds, "`N` alternating rounds (default: $ROUNDS, else 6; a multiple of 6 balances the order of three contenders)")
	flag.Int64Var(&cfg.BulkBytes, "bulk-bytes", 1<<30, "`BYTES` of one bulk transfer (split over the streams)")
	flag.DurationVar(&cfg.WrkTime, "wrk-duration", 3*time.Second, "`DURATION` of each wrk run")
	flag.StringVar(&cfg.WorkDir, "work", "build/bench", "`DIR` for logs, state and results.json")
	flag.StringVar(&cfg.Report, "report", "BENCHMARKS.md", "report `FILE`: the part between the bench markers is replaced")
	flag.StringVar(&cfg.Chart, "chart", "docs/bench.png", "chart `FILE` (PNG, drawn with gnuplot)")
	flag.StringVar(&cfg.Command, "command", "make bench", "the command that ran the bench, for the report")
	flag.StringVar(&render, "render", "", "only write the report and chart from this `results.json`")
	flag.Parse()

	if render != "" {
		if err := renderFile(render, cfg); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if cfg.PodmanURL == "" {
		fmt.Fprintln(os.Stderr, "bench: -podman-url is required: start a private Podman with scripts/podman-service.sh")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runAll(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func renderFile(path string, cfg config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var res results
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return writeOutputs(&res, cfg)
}

func runAll(ctx context.Context, cfg config) error {
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return err
	}
	b, err := newBench(cfg)
	if err != nil {
		return err
	}
	res, runErr := b.run(ctx)
	cleanErr := b.cleanup()
	if runErr != nil {
		return fmt.Errorf("%w (logs in %s)", runErr, cfg.WorkDir)
	}
	if cleanErr != nil {
		return fmt.Errorf("cleaning up: %w", cleanErr)
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	resPath := filepath.Join(cfg.WorkDir, "results.json")
	if err := os.WriteFile(resPath, data, 0o644); err != nil {
		return err
	}
	fmt.Printf("==> results in %s\n", resPath)
	return writeOutputs(res, cfg)
}
