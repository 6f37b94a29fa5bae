package launcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containers/podman/v5/libpod/define"
	"github.com/containers/podman/v5/pkg/api/handlers"
	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/images"
	"github.com/containers/podman/v5/pkg/errorhandling"
	"github.com/containers/podman/v5/pkg/specgen"
	spec "github.com/opencontainers/runtime-spec/specs-go"
	nettypes "go.podman.io/common/libnetwork/types"
)

// connectTimeout bounds NewPodman's first contact with the service.
const connectTimeout = 10 * time.Second

// DefaultPodmanURL returns the Podman API address to use when none is
// given: $CONTAINER_HOST if set; else, for a non-root user,
// unix://$XDG_RUNTIME_DIR/podman/podman.sock if that socket exists; else
// unix:///run/podman/podman.sock.
func DefaultPodmanURL() string {
	return defaultPodmanURL(os.Getenv, os.Geteuid(), func(path string) bool {
		_, err := os.Stat(path)
		return err == nil
	})
}

func defaultPodmanURL(getenv func(string) string, euid int, exists func(string) bool) string {
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

// Podman is the Runtime over the Podman REST API (the podman.socket
// service), rootful or rootless. It is safe for concurrent use.
type Podman struct {
	// conn carries the connection made by bindings.NewConnection as
	// context values. Its cancellation is never used: each call brings
	// its own ctx, see call.
	conn context.Context
	uri  string

	// AuthFile is the registry credentials file Pull reads (in this
	// process, as "podman --remote pull --authfile" does), in the format
	// of containers-auth.json(5). If empty, the default locations.
	AuthFile string
	// SkipTLSVerify makes Pull skip HTTPS and certificate verification.
	// If false, the registries.conf of the Podman service decides.
	SkipTLSVerify bool

	// exec is Exec's own connection, made on first use: the bindings'
	// attach replaces its client's transport, which must not race with
	// the other calls. execMu serialises Exec and guards exec.
	execMu sync.Mutex
	exec   *execConn
}

var _ Runtime = (*Podman)(nil)

// NewPodman connects to the Podman API at uri ("unix:///run/podman/podman.sock",
// "tcp://host:port", "ssh://..."); if uri is empty, DefaultPodmanURL. It
// returns an error wrapping ErrNoPodman if the socket is missing, refuses
// connections, or does not answer within 10s.
func NewPodman(ctx context.Context, uri string) (*Podman, error) {
	if uri == "" {
		uri = DefaultPodmanURL()
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := bindings.NewConnection(cctx, uri)
	if err != nil {
		if isUnreachable(err) || errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("connecting to %s: %w: %v", uri, ErrNoPodman, err)
		}
		return nil, fmt.Errorf("connecting to %s: %w", uri, err)
	}
	return &Podman{conn: conn, uri: uri}, nil
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

func (p *Podman) call(ctx context.Context) context.Context {
	return callContext{Context: ctx, conn: p.conn}
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
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := bindings.NewConnection(cctx, uri)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", uri, apiError(err))
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

// isUnreachable reports whether err means the API socket is missing or
// nobody listens on it.
func isUnreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// apiError trims what the bindings return: Podman's own message for errors
// the service sent, ErrNoPodman for a service that is gone.
func apiError(err error) error {
	if err == nil {
		return nil
	}
	var em *errorhandling.ErrorModel
	if errors.As(err, &em) {
		return errors.New(strings.TrimSpace(em.Message))
	}
	if isUnreachable(err) {
		return fmt.Errorf("%w: %v", ErrNoPodman, err)
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

func (p *Podman) ImageID(ctx context.Context, ref string) (string, bool, error) {
	img, err := images.GetImage(p.call(ctx), ref, nil)
	if isNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, apiError(err)
	}
	return img.ID, true, nil
}

// Image describes image nameOrID (a reference or an ID) in local storage,
// and ok false if local storage does not have it.
func (p *Podman) Image(ctx context.Context, nameOrID string) (ImageInfo, bool, error) {
	img, err := images.GetImage(p.call(ctx), nameOrID, nil)
	if isNotFound(err) {
		return ImageInfo{}, false, nil
	}
	if err != nil {
		return ImageInfo{}, false, apiError(err)
	}
	if img == nil || img.ImageData == nil {
		return ImageInfo{}, false, fmt.Errorf("inspecting image %s: empty answer", nameOrID)
	}
	info := ImageInfo{ID: img.ID, Names: img.RepoTags}
	for _, d := range append(slices.Clone(img.RepoDigests), img.Digest.String()) {
		if d != "" && !slices.Contains(info.Digests, d) {
			info.Digests = append(info.Digests, d)
		}
	}
	return info, true, nil
}

// Tag adds the name repo:tag to image id. A name another image had moves
// to this one.
func (p *Podman) Tag(ctx context.Context, id, repo, tag string) error {
	return apiError(images.Tag(p.call(ctx), id, tag, repo, nil))
}

// Untag removes the name repo:tag from image id. An image that does not
// exist or lacks that name is not an error.
func (p *Podman) Untag(ctx context.Context, id, repo, tag string) error {
	err := images.Untag(p.call(ctx), id, tag, repo, nil)
	if err == nil || isNotFound(err) {
		return nil
	}
	err = apiError(err)
	if strings.Contains(err.Error(), "tag not known") {
		return nil
	}
	return err
}

// PullOptions are the registry settings of one pull.
type PullOptions struct {
	// AuthFile is the registry credentials file, read in this process
	// (as "podman --remote pull --authfile" does). If empty, the default
	// locations.
	AuthFile string
	// SkipTLSVerify skips HTTPS and certificate verification. If false,
	// the registries.conf of the Podman service decides.
	SkipTLSVerify bool
}

// Pull pulls ref with the AuthFile and SkipTLSVerify fields' settings.
func (p *Podman) Pull(ctx context.Context, ref string) error {
	return p.PullWith(ctx, ref, PullOptions{AuthFile: p.AuthFile, SkipTLSVerify: p.SkipTLSVerify})
}

// PullWith pulls ref with settings o, as Pull does: an error the service
// answers wraps ErrImageNotFound.
func (p *Podman) PullWith(ctx context.Context, ref string, o PullOptions) error {
	opts := new(images.PullOptions).WithQuiet(true)
	if o.AuthFile != "" {
		// Read here, not by the service: a missing file is this
		// side's problem, not the registry's.
		if _, err := os.Stat(o.AuthFile); err != nil {
			return fmt.Errorf("reading auth file: %w", err)
		}
		opts.WithAuthfile(o.AuthFile)
	}
	if o.SkipTLSVerify {
		opts.WithSkipTLSVerify(true)
	}
	_, err := images.Pull(p.call(ctx), ref, opts)
	if err == nil {
		return nil
	}
	err = apiError(err)
	if errors.Is(err, ErrNoPodman) || ctx.Err() != nil {
		return err
	}
	return fmt.Errorf("%w: %v", ErrImageNotFound, err)
}

func (p *Podman) Inspect(ctx context.Context, name string) (ContainerInfo, bool, error) {
	data, err := containers.Inspect(p.call(ctx), name, nil)
	if isNotFound(err) {
		return ContainerInfo{}, false, nil
	}
	if err != nil {
		return ContainerInfo{}, false, apiError(err)
	}
	info := ContainerInfo{
		ID:      data.ID,
		ImageID: data.Image,
	}
	if data.Config != nil {
		info.Labels = data.Config.Labels
		info.HasHealthcheck = data.Config.Healthcheck != nil && len(data.Config.Healthcheck.Test) > 0 &&
			data.Config.Healthcheck.Test[0] != "NONE"
	}
	if data.State != nil {
		info.Running = data.State.Running
		info.ExitCode = int(data.State.ExitCode)
	}
	if data.NetworkSettings != nil && info.Running {
		info.HostPorts = make(map[ContainerPort]uint16)
		for key, bindings := range data.NetworkSettings.Ports {
			cp, err := parseContainerPort(key)
			if err != nil {
				continue
			}
			for _, b := range bindings {
				hp, err := strconv.ParseUint(b.HostPort, 10, 16)
				if err == nil && hp != 0 {
					info.HostPorts[cp] = uint16(hp)
					break
				}
			}
		}
	}
	return info, true, nil
}

// parseContainerPort parses Podman's "8080/tcp".
func parseContainerPort(s string) (ContainerPort, error) {
	port, proto, ok := strings.Cut(s, "/")
	if !ok {
		proto = string(ProtoTCP)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return ContainerPort{}, fmt.Errorf("parsing port %q: %w", s, err)
	}
	return ContainerPort{Port: uint16(n), Proto: Protocol(proto)}, nil
}

func (p *Podman) Create(ctx context.Context, cs ContainerSpec) (string, error) {
	s, err := specGenerator(cs)
	if err != nil {
		return "", err
	}
	resp, err := containers.CreateWithSpec(p.call(ctx), s, nil)
	if err != nil {
		return "", apiError(err)
	}
	return resp.ID, nil
}

// specGenerator translates cs into what Podman's create endpoint takes.
func specGenerator(cs ContainerSpec) (*specgen.SpecGenerator, error) {
	s := specgen.NewSpecGenerator(cs.Image, false)
	s.Name = cs.Name
	s.Command = cs.Command
	s.Labels = cs.Labels
	s.User = cs.User
	if len(cs.Env) > 0 {
		s.Env = make(map[string]string, len(cs.Env))
		for _, kv := range cs.Env {
			k, v, _ := strings.Cut(kv, "=")
			s.Env[k] = v
		}
	}
	for _, port := range cs.Ports {
		s.PortMappings = append(s.PortMappings, nettypes.PortMapping{
			HostIP:        "127.0.0.1",
			ContainerPort: port.Port,
			Protocol:      string(port.Proto),
		})
	}
	for _, m := range cs.Mounts {
		if filepath.IsAbs(m.Source) {
			s.Mounts = append(s.Mounts, spec.Mount{
				Type:        define.TypeBind,
				Source:      m.Source,
				Destination: m.Target,
				Options:     m.Options,
			})
			continue
		}
		s.Volumes = append(s.Volumes, &specgen.NamedVolume{
			Name:    m.Source,
			Dest:    m.Target,
			Options: m.Options,
		})
	}
	if cs.Memory > 0 || cs.CPUs > 0 {
		s.ResourceLimits = &spec.LinuxResources{}
		if cs.Memory > 0 {
			s.ResourceLimits.Memory = &spec.LinuxMemory{Limit: &cs.Memory}
		}
		if cs.CPUs > 0 {
			period := uint64(100000)
			quota := int64(cs.CPUs * float64(period))
			s.ResourceLimits.CPU = &spec.LinuxCPU{Period: &period, Quota: &quota}
		}
	}
	if cs.Network != "" {
		ns, networks, opts, err := specgen.ParseNetworkFlag([]string{cs.Network})
		if err != nil {
			return nil, fmt.Errorf("parsing network %q: %w", cs.Network, err)
		}
		s.NetNS = ns
		s.Networks = networks
		s.NetworkOptions = opts
	}
	return s, nil
}

func (p *Podman) Start(ctx context.Context, id string) error {
	return apiError(containers.Start(p.call(ctx), id, nil))
}

func (p *Podman) Stop(ctx context.Context, id string, timeout time.Duration) error {
	opts := new(containers.StopOptions).WithIgnore(true).WithTimeout(seconds(timeout))
	return apiError(containers.Stop(p.call(ctx), id, opts))
}

func (p *Podman) Remove(ctx context.Context, id string, timeout time.Duration) error {
	opts := new(containers.RemoveOptions).WithForce(true).WithIgnore(true).WithTimeout(seconds(timeout))
	reports, err := containers.Remove(p.call(ctx), id, opts)
	if err != nil {
		return apiError(err)
	}
	var errs []error
	for _, r := range reports {
		if r.Err != nil {
			errs = append(errs, apiError(r.Err))
		}
	}
	return errors.Join(errs...)
}

func (p *Podman) Wait(ctx context.Context, id string) (int, error) {
	opts := new(containers.WaitOptions).WithCondition([]define.ContainerStatus{
		define.ContainerStateStopped, define.ContainerStateExited,
	})
	code, err := containers.Wait(p.call(ctx), id, opts)
	if isNotFound(err) {
		return -1, nil
	}
	if err != nil {
		return 0, apiError(err)
	}
	return int(code), nil
}

// Exec runs argv in container id and returns its exit code and output.
// Execs run one at a time over their own connection. When ctx ends, a
// hung exec is abandoned by closing that connection (Podman before 4.8
// cannot remove the session; it ends when the container stops).
func (p *Podman) Exec(ctx context.Context, id string, argv []string) (int, string, error) {
	p.execMu.Lock()
	defer p.execMu.Unlock()
	if p.exec == nil {
		e, err := newExecConn(ctx, p.uri)
		if err != nil {
			return 0, "", fmt.Errorf("connecting for exec: %w", err)
		}
		p.exec = e
	}
	e := p.exec
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

func (p *Podman) HealthCheck(ctx context.Context, id string) (string, error) {
	res, err := containers.RunHealthCheck(p.call(ctx), id, nil)
	if err != nil {
		return "", apiError(err)
	}
	return res.Status, nil
}

func (p *Podman) Logs(ctx context.Context, id string, n int) ([]string, error) {
	frames := make(chan string)
	done := make(chan []string)
	go collectLogs(frames, done)
	opts := new(containers.LogOptions).WithTail(strconv.Itoa(n)).WithStdout(true).WithStderr(true)
	err := containers.Logs(p.call(ctx), id, opts, frames, frames)
	close(frames)
	lines := <-done
	if err != nil {
		return lines, apiError(err)
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// collectLogs joins the log frames it receives into lines and sends them
// on done once frames is closed.
func collectLogs(frames <-chan string, done chan<- []string) {
	var b strings.Builder
	for f := range frames {
		b.WriteString(f)
	}
	var lines []string
	for line := range strings.SplitSeq(b.String(), "\n") {
		if line = strings.TrimRight(line, "\r"); line != "" {
			lines = append(lines, line)
		}
	}
	done <- lines
}
