package podman

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/errorhandling"

	"github.com/lazypod/lazypod/launcher"
)

// connectTimeout bounds one attempt to reach the service.
const connectTimeout = 10 * time.Second

// callTimeout bounds the clean-up calls that run after their caller's ctx
// ended (removing an exec session, inspecting it).
const callTimeout = 30 * time.Second

// DefaultURL returns the Podman API address to use when none is given:
// $CONTAINER_HOST if set; else, for a non-root user,
// unix://$XDG_RUNTIME_DIR/podman/podman.sock if that socket exists; else
// unix:///run/podman/podman.sock.
func DefaultURL() string {
	return defaultURL(os.Getenv, os.Geteuid(), func(path string) bool {
		_, err := os.Stat(path)
		return err == nil
	})
}

func defaultURL(getenv func(string) string, euid int, exists func(string) bool) string {
	if u := getenv("CONTAINER_HOST"); u != "" {
		return u
	}
	if dir := getenv("XDG_RUNTIME_DIR"); euid != 0 && dir != "" {
		if path := filepath.Join(dir, "podman", "podman.sock"); exists(path) {
			return "unix://" + path
		}
	}
	return "unix:///run/podman/podman.sock"
}

// PullOptions are the registry settings of pulls.
type PullOptions struct {
	// AuthFile is the registry credentials file, in the format of
	// containers-auth.json(5), read in this process (as "podman --remote
	// pull --authfile" does). If empty, the default locations.
	AuthFile string
	// TLSVerify is podman --remote pull's --tls-verify: false skips HTTPS
	// and certificate verification, true verifies them; nil leaves it to
	// the registries.conf of the Podman service.
	TLSVerify *bool
}

// Client talks to one Podman service. It connects on first use. Its
// methods are safe for concurrent use.
type Client struct {
	conn *conn // shared with the copies WithPull makes
	pull PullOptions
}

// conn is the connection a Client and its copies share.
type conn struct {
	url string

	mu  lock            // guards ctx; held while connecting
	ctx context.Context // the bindings' connection, as context values; nil until made

	// exec is Exec's own connection, made on first use: the bindings'
	// attach replaces its client's transport, which must not race with
	// the other calls. execMu serialises Exec and guards exec.
	execMu lock
	exec   *execConn
}

// lock is a mutex that a caller stops waiting for when its ctx ends: a
// connect to a hanging service, or a hung exec, holds it for as long as
// its own ctx allows, which may be longer than a waiter's.
type lock chan struct{}

func newLock() lock { return make(lock, 1) }

// acquire takes the lock, or returns ctx's error if ctx ends first.
func (l lock) acquire(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l lock) release() { <-l }

// New returns a client of the Podman API at url ("unix:///run/podman/podman.sock",
// "tcp://host:port", "ssh://..."); if url is empty, DefaultURL. It does not
// connect: the first call does, or Connect.
func New(url string) *Client {
	if url == "" {
		url = DefaultURL()
	}
	return &Client{conn: &conn{url: url, mu: newLock(), execMu: newLock()}}
}

// WithPull returns a client sharing c's connection whose pulls use o.
func (c *Client) WithPull(o PullOptions) *Client {
	return &Client{conn: c.conn, pull: o}
}

// URL is the address of the service.
func (c *Client) URL() string { return c.conn.url }

// Connect connects now, if not yet connected. It returns an error wrapping
// launcher.ErrNoPodman if the socket is missing, refuses connections, or
// does not answer within 10s or before ctx ends.
func (c *Client) Connect(ctx context.Context) error {
	_, err := c.connect(ctx)
	return err
}

// connect returns the connection, making it if need be.
func (c *Client) connect(ctx context.Context) (context.Context, error) {
	cn := c.conn
	if err := cn.mu.acquire(ctx); err != nil {
		// Another call is connecting and got no answer yet.
		return nil, connectError(cn.url, err)
	}
	defer cn.mu.release()
	if cn.ctx != nil {
		return cn.ctx, nil
	}
	bc, err := dial(ctx, cn.url)
	if err != nil {
		return nil, err
	}
	cn.ctx = bc
	return bc, nil
}

// dial makes a bindings connection to url within connectTimeout.
func dial(ctx context.Context, url string) (context.Context, error) {
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	bc, err := bindings.NewConnection(cctx, url)
	if err != nil {
		return nil, connectError(url, err)
	}
	// The bindings keep the connection's context for its values only;
	// each call brings its own deadline and cancellation (see call).
	return context.WithoutCancel(bc), nil
}

// connectError wraps err, from connecting to url, with
// launcher.ErrNoPodman if it means that nothing answers there: the socket
// is missing or refuses connections, or no answer came in time.
func connectError(url string, err error) error {
	if isUnreachable(err) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("connecting to %s: %w: %v", url, launcher.ErrNoPodman, err)
	}
	return fmt.Errorf("connecting to %s: %w", url, err)
}

// call returns the context for one API call: ctx's deadline and
// cancellation, with the connection's values.
func (c *Client) call(ctx context.Context) (context.Context, error) {
	bc, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	return callContext{Context: ctx, conn: bc}, nil
}

// callContext is ctx (deadline, cancellation, values) that also answers
// the connection values the bindings look up.
type callContext struct {
	context.Context
	conn context.Context
}

func (c callContext) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.conn.Value(key)
}

// isUnreachable reports whether err means the API socket is missing or
// nobody listens on it.
func isUnreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// apiError trims what the bindings return: Podman's own message for errors
// the service sent, launcher.ErrNoPodman for a service that is gone.
func apiError(err error) error {
	if err == nil {
		return nil
	}
	var em *errorhandling.ErrorModel
	if errors.As(err, &em) {
		return errors.New(strings.TrimSpace(em.Message))
	}
	if isUnreachable(err) {
		return fmt.Errorf("%w: %v", launcher.ErrNoPodman, err)
	}
	return err
}

// isNotFound reports whether err is the service's 404.
func isNotFound(err error) bool {
	var em *errorhandling.ErrorModel
	return errors.As(err, &em) && em.ResponseCode == 404
}

// seconds rounds d up to whole seconds, as the API wants.
func seconds(d time.Duration) uint {
	return uint(math.Ceil(d.Seconds()))
}
