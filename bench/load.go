package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

const ioTimeout = 120 * time.Second // bound on any one transfer or request

// echoBulk sends total bytes through addr (the test server's TCP echo) split
// over streams connections, reads every byte back, and returns the time from
// the first dial to the last byte back.
func echoBulk(ctx context.Context, addr string, total int64, streams int) (time.Duration, error) {
	per := total / int64(streams)
	errs := make(chan error, streams)
	start := time.Now()
	var wg sync.WaitGroup
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echoStream(ctx, addr, per)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return took, nil
}

// echoStream writes n bytes to one echo connection and reads them back.
// It does not half-close: systemd-socket-proxyd closes both directions when
// a client half-closes, cutting off the echo still in flight.
func echoStream(ctx context.Context, addr string, n int64) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	werr := make(chan error, 1)
	go writeN(c, n, werr)
	buf := make([]byte, 1<<20)
	var got int64
	for got < n {
		k, err := c.Read(buf)
		got += int64(k)
		if err != nil {
			return fmt.Errorf("reading echo from %s after %d of %d bytes: %w", addr, got, n, err)
		}
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("writing to echo %s: %w", addr, err)
	}
	if got != n {
		return fmt.Errorf("echo %s: got %d bytes back; want %d", addr, got, n)
	}
	return nil
}

func writeN(c net.Conn, n int64, done chan<- error) {
	buf := bytes.Repeat([]byte{'x'}, 1<<20)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := c.Write(buf[:k]); err != nil {
			done <- err
			return
		}
		n -= k
	}
	done <- nil
}

// firstByte dials addr, sends GET / over HTTP/1.0, and returns the time
// from the dial to the first byte of the answer, and the answer's body.
func firstByte(ctx context.Context, addr string) (time.Duration, string, error) {
	start := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return 0, "", err
	}
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		return 0, "", err
	}
	took := time.Since(start)
	rest, err := io.ReadAll(c)
	if err != nil {
		return took, "", err
	}
	resp := string(first[:]) + string(rest)
	status, _, _ := strings.Cut(resp, "\r\n")
	if !strings.Contains(status, " 200 ") {
		return took, "", fmt.Errorf("GET / from %s: %q", addr, status)
	}
	_, body, _ := strings.Cut(resp, "\r\n\r\n")
	return took, strings.TrimSpace(body), nil
}

// pollFirstByte is what a person's script does after `podman start`: try
// GET / every `every` until it is answered, within timeout.
func pollFirstByte(ctx context.Context, addr string, every, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, _, err := firstByte(ctx, addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer from %s within %s: %w", addr, timeout, err)
		}
		time.Sleep(every)
	}
}

// wrkResult is one wrk run: requests per second and latency percentiles.
type wrkResult struct {
	RPS      float64
	Requests int64   // completed in the run
	P50, P99 float64 // microseconds
	Errors   int     // socket errors and non-2xx answers
}

var (
	wrkRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkCount  = regexp.MustCompile(`(\d+) requests in `)
	wrkPct    = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkErrors = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// runWrk runs wrk against url with the given threads, connections and
// duration; closeConn adds "Connection: close", a new connection per request.
func runWrk(ctx context.Context, url string, threads, conns int, dur time.Duration, closeConn bool) (wrkResult, error) {
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", int(dur.Seconds())), "--timeout", "5s", "--latency"}
	if closeConn {
		args = append(args, "-H", "Connection: close")
	}
	args = append(args, url)
	ctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "wrk", args...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return parseWrk(string(out))
}

func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output: %s", out)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkCount.FindStringSubmatch(out); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "ms":
			v *= 1e3
		case "s":
			v *= 1e6
		}
		if m[1] == "50" {
			r.P50 = v
		} else {
			r.P99 = v
		}
	}
	if m := wrkErrors.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.Errors += n
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.Errors += n
	}
	if r.P50 == 0 || r.P99 == 0 {
		return r, fmt.Errorf("no latency distribution in wrk output: %s", out)
	}
	return r, nil
}

// heldResult is n clients connecting at once during one cold start.
type heldResult struct {
	Clients  int
	Answered int
	Longest  time.Duration // the longest connect-to-first-byte of an answered client
	Median   time.Duration
	FirstErr string `json:",omitempty"`
}

// held releases n clients at once against addr, each sending GET / and
// waiting for the whole answer, and counts the answers whose body is want.
func held(ctx context.Context, addr string, n int, want string) heldResult {
	type res struct {
		d   time.Duration
		err error
	}
	results := make(chan res, n)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			d, body, err := firstByte(ctx, addr)
			if err == nil && body != want {
				err = fmt.Errorf("body %q; want %q", body, want)
			}
			results <- res{d, err}
		}()
	}
	close(gate)
	wg.Wait()
	close(results)
	r := heldResult{Clients: n}
	var ds []float64
	for x := range results {
		if x.err != nil {
			if r.FirstErr == "" {
				r.FirstErr = x.err.Error()
			}
			continue
		}
		r.Answered++
		ds = append(ds, float64(x.d))
		r.Longest = max(r.Longest, x.d)
	}
	if len(ds) > 0 {
		r.Median = time.Duration(median(ds))
	}
	return r
}

// openFlows opens n echo connections to addr and makes each carry one byte
// both ways, so the proxy has dialed and is copying every flow. The caller
// closes them.
func openFlows(ctx context.Context, addr string, n int) ([]net.Conn, error) {
	var conns []net.Conn
	var d net.Dialer
	for range n {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("opening flow %d to %s: %w", len(conns)+1, addr, err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Write([]byte{'x'}); err != nil {
			closeAll(conns)
			return nil, err
		}
	}
	for i, c := range conns {
		if _, err := bufio.NewReader(c).ReadByte(); err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("reading echo of flow %d from %s: %w", i+1, addr, err)
		}
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}
