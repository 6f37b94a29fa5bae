package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lazypod/lazypod/internal/backoff"
	"github.com/lazypod/lazypod/internal/spec"
	"github.com/lazypod/lazypod/launcher"
	"github.com/lazypod/lazypod/proxy"
	"golang.org/x/sync/errgroup"
)

// holds is the launcher's Needs over the hold sockets of the services the
// container needs (--needs): Acquire connects to each, all at once, and
// waits until each says its container is ready; the connections then stay
// open, holding those services up (their lazypod counts each as an open
// connection, so it does not stop its container for being idle), until
// Release closes them.
//
// If a needed service's lazypod closes a held connection (it was stopped
// or restarted), holds connects again, with a delay that doubles up to
// rehold.Max, until it holds it again or Release.
type holds struct {
	paths   []string      // the hold sockets
	timeout time.Duration // bounds an Acquire: the container's ready timeout
	log     *slog.Logger

	mu    sync.Mutex
	conns []net.Conn // held; nil when not holding
	gen   int        // changed by each Acquire and Release
	// done is closed by Release, ending the watches of what was held.
	done chan struct{}
}

var _ launcher.Needs = (*holds)(nil)

// reholdMax is the longest pause between attempts to hold a needed
// service again.
const reholdMax = 30 * time.Second

// Acquire holds every needed service once it is ready.
func (h *holds) Acquire(ctx context.Context) error {
	h.mu.Lock()
	held := h.conns != nil
	h.mu.Unlock()
	if held {
		return nil
	}
	began := time.Now()
	if h.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.timeout)
		defer cancel()
	}
	conns := make([]net.Conn, len(h.paths))
	var g errgroup.Group
	for i, p := range h.paths {
		g.Go(func() (err error) {
			conns[i], err = hold(ctx, p)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		closeAll(conns)
		return err
	}
	h.mu.Lock()
	h.conns, h.done = conns, make(chan struct{})
	h.gen++
	gen, done := h.gen, h.done
	h.mu.Unlock()
	h.log.Info("needed services ready", "services", strings.Join(names(h.paths), ", "), "took", time.Since(began))
	for i, c := range conns {
		go h.watch(gen, done, i, c)
	}
	return nil
}

// Release closes what Acquire holds.
func (h *holds) Release() {
	h.mu.Lock()
	conns, done := h.conns, h.done
	h.conns, h.done = nil, nil
	h.gen++
	h.mu.Unlock()
	if done != nil {
		close(done)
	}
	closeAll(conns)
}

// watch waits until the needed service i closes the held connection c,
// and holds it again, unless Release came first.
func (h *holds) watch(gen int, done <-chan struct{}, i int, c net.Conn) {
	io.Copy(io.Discard, c) // nothing comes: this returns at a close
	p := h.paths[i]
	delay := backoff.Delay{Min: time.Second, Max: reholdMax}
	for {
		select {
		case <-done:
			return
		default:
		}
		h.log.Warn("needed service let go of its hold (its lazypod stopped): holding it again", "service", spec.HoldName(p))
		if !backoff.Sleep(done, delay.Next()) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
		nc, err := hold(ctx, p)
		cancel()
		if err != nil {
			h.log.Warn("holding needed service", "err", err)
			continue
		}
		h.mu.Lock()
		if h.gen != gen {
			h.mu.Unlock()
			nc.Close()
			return
		}
		h.conns[i] = nc
		h.mu.Unlock()
		c = nc
		delay.Reset()
		io.Copy(io.Discard, c)
	}
}

// hold connects to the hold socket at path and waits until the service
// behind it says it is ready. The connection, left open, holds it up.
func hold(ctx context.Context, path string) (net.Conn, error) {
	name := spec.HoldName(path)
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("service %q has no hold socket at %s: install its units (lazypod units install %s.lazypod) and start %s-hold.socket", name, path, name, name)
		}
		return nil, fmt.Errorf("holding service %q: %w", name, err)
	}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	line, err := bufio.NewReader(c).ReadString('\n')
	if !stop() {
		err = context.Cause(ctx)
	}
	switch {
	case line == proxy.HoldReady:
		c.SetReadDeadline(time.Time{})
		return c, nil
	case strings.HasPrefix(line, "error: "):
		err = errors.New(strings.TrimSpace(strings.TrimPrefix(line, "error: ")))
	case err == nil || errors.Is(err, io.EOF):
		err = fmt.Errorf("it closed its hold socket: see journalctl -u %s.service", name)
	}
	c.Close()
	return nil, fmt.Errorf("service %q not ready: %w", name, err)
}

// names returns the services of the hold sockets paths.
func names(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = spec.HoldName(p)
	}
	return out
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}
