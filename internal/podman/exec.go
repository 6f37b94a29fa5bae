package podman

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/containers/podman/v5/pkg/api/handlers"
	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
)

// Exec runs argv in container id and returns its exit code and output.
// Execs run one at a time over their own connection; one that waits for
// another gives up when its ctx ends. When ctx ends, a hung exec is
// abandoned by closing that connection (Podman before 4.8 cannot remove
// the session; it ends when the container stops).
func (c *Client) Exec(ctx context.Context, id string, argv []string) (int, string, error) {
	cn := c.conn
	if err := cn.execMu.acquire(ctx); err != nil {
		return 0, "", fmt.Errorf("waiting for the exec in progress: %w", err)
	}
	defer cn.execMu.release()
	if cn.exec == nil {
		e, err := newExecConn(ctx, cn.url)
		if err != nil {
			return 0, "", fmt.Errorf("connecting for exec: %w", err)
		}
		cn.exec = e
	}
	e := cn.exec
	e.reset()
	// Nothing is in use between execs. Closing it all also closes the
	// idle connections of the transports the attach replaced.
	defer e.closeAll()
	call := func(ctx context.Context) context.Context {
		return callContext{Context: ctx, conn: e.conn}
	}

	cfg := new(handlers.ExecCreateConfig)
	cfg.Cmd = argv
	cfg.AttachStdout = true
	cfg.AttachStderr = true
	session, err := containers.ExecCreate(call(ctx), id, cfg)
	if err != nil {
		return 0, "", fmt.Errorf("creating exec session: %w", apiError(err))
	}
	// Cleanup runs even after ctx has ended, bounded on its own.
	bounded := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	}
	defer func() {
		// Removing the session needs Podman 4.8; older services drop
		// it when the container stops. Force kills a hung process.
		rctx, cancel := bounded()
		defer cancel()
		containers.ExecRemove(call(rctx), session, new(containers.ExecRemoveOptions).WithForce(true)) //nolint:errcheck
	}()

	var out lockedBuffer
	opts := new(containers.ExecStartAndAttachOptions).
		WithOutputStream(&out).WithErrorStream(&out).
		WithAttachOutput(true).WithAttachError(true)
	// Once hijacked, the attach ignores ctx: end it by closing the
	// connections under it.
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(closed)
		e.closeAll()
	})
	err = containers.ExecStartAndAttach(call(ctx), session, opts)
	if !stop() {
		<-closed
		return 0, out.String(), fmt.Errorf("running exec session: %w", context.Cause(ctx))
	}
	if err != nil {
		return 0, out.String(), fmt.Errorf("running exec session: %w", apiError(err))
	}
	ictx, cancel := bounded()
	defer cancel()
	inspect, err := containers.ExecInspect(call(ictx), session, nil)
	if err != nil {
		return 0, out.String(), fmt.Errorf("inspecting exec session: %w", apiError(err))
	}
	return inspect.ExitCode, out.String(), nil
}

// lockedBuffer is a bytes.Buffer the exec attach may write from two
// streams.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// execConn is a bindings connection whose every network connection is
// tracked, so that an exec attach, which ignores its ctx once hijacked,
// can be ended by closing them.
type execConn struct {
	conn   context.Context
	client *bindings.Connection
	base   *http.Transport // the transport each exec begins with

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// newExecConn connects to uri again, for Exec alone.
func newExecConn(ctx context.Context, uri string) (*execConn, error) {
	conn, err := dial(ctx, uri)
	if err != nil {
		return nil, err
	}
	client, err := bindings.GetClient(conn)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", uri, err)
	}
	orig, ok := client.Client.Transport.(*http.Transport)
	if !ok || orig.DialContext == nil {
		return nil, fmt.Errorf("connecting to %s: unexpected transport %T", uri, client.Client.Transport)
	}
	orig.CloseIdleConnections()
	e := &execConn{conn: conn, client: client, conns: make(map[net.Conn]struct{})}
	dial := orig.DialContext
	e.base = orig.Clone()
	e.base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, e: e}
		e.mu.Lock()
		e.conns[tc] = struct{}{}
		e.mu.Unlock()
		return tc, nil
	}
	return e, nil
}

// reset gives the client a fresh transport over the tracking dialer, so
// the attach's replacement wraps it once and not every earlier one.
func (e *execConn) reset() {
	e.client.Client.Transport = e.base.Clone()
}

// closeAll closes every open connection, hijacked ones included.
func (e *execConn) closeAll() {
	e.mu.Lock()
	conns := make([]net.Conn, 0, len(e.conns))
	for c := range e.conns {
		conns = append(conns, c)
	}
	e.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// open returns how many connections are open.
func (e *execConn) open() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.conns)
}

// trackedConn leaves its execConn's set when closed.
type trackedConn struct {
	net.Conn
	e    *execConn
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.e.mu.Lock()
		delete(c.e.conns, c)
		c.e.mu.Unlock()
	})
	return c.Conn.Close()
}

// CloseWrite half-closes, as the attach's stdin copy may ask.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
