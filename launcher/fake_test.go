package launcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeRuntime is an in-memory Runtime. Its behaviour is set by the hook
// fields before use; calls are counted by method name.
type fakeRuntime struct {
	// startDelay is how long Start takes.
	startDelay time.Duration
	// afterStart, if set, runs (in Start's goroutine, unlocked) once the
	// container runs, e.g. to make it exit later.
	afterStart func(f *fakeRuntime, id string)
	// startErr, if set, is asked first by Start; an error it returns
	// fails the start.
	startErr func(id string) error
	// exec, if set, answers Exec; else exit code 0.
	exec func(id string, argv []string) (int, string, error)
	// health is the health check of created containers; nil means the
	// default, a check of "/bin/check" with Podman's default settings.
	health *HealthCheck
	// pullErr is what Pull returns; nil means the pull adds the image.
	pullErr error
	// logs is what Logs returns.
	logs []string
	// noHealthcheck makes created containers lack a healthcheck.
	noHealthcheck bool
	// pauseErr is what Pause returns; nil means it pauses.
	pauseErr error
	// pid is the PID of every running container's first process; 0: the
	// engine does not say.
	pid int
	// afterInspect, if set, runs (unlocked) after each Inspect of a
	// container, with what it returned.
	afterInspect func(f *fakeRuntime, info ContainerInfo)

	mu         sync.Mutex
	images     map[string]string         // ref or image ID → image ID
	behaviour  map[string]imageBehaviour // image ID → how its containers behave
	containers map[string]*fakeContainer
	nextID     int
	nextPort   uint16
	calls      map[string]int
}

// imageBehaviour is how the containers of one image behave, like the
// integration tests' images v3 (exits at start), v4 (never ready) and v5
// (crashes soon after ready).
type imageBehaviour struct {
	exitAtStart int           // if not zero, exits with this code as it starts
	neverReady  bool          // its exec probe always fails
	crashAfter  time.Duration // if not zero, exits with code 1 this long after it starts
}

type fakeContainer struct {
	info   ContainerInfo
	name   string
	spec   ContainerSpec
	exited chan struct{} // closed when the current run ends
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{
		images:     map[string]string{"img": "sha256:img1", "sha256:img1": "sha256:img1"},
		behaviour:  make(map[string]imageBehaviour),
		containers: make(map[string]*fakeContainer),
		nextPort:   40000,
		calls:      make(map[string]int),
	}
}

// addImage puts image id in local storage, under each of refs (which
// move to it if another image had them), with behaviour b.
func (f *fakeRuntime) addImage(id string, b imageBehaviour, refs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[id] = id
	for _, r := range refs {
		f.images[r] = id
	}
	f.behaviour[id] = b
}

// imageOf returns the image ID of the container with this name or ID, or
// "".
func (f *fakeRuntime) imageOf(nameOrID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.find(nameOrID); c != nil {
		return c.info.ImageID
	}
	return ""
}

func (f *fakeRuntime) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeRuntime) called(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[method]++
}

// find returns the container with this name or ID. f.mu is held.
func (f *fakeRuntime) find(nameOrID string) *fakeContainer {
	for _, c := range f.containers {
		if c.name == nameOrID || c.info.ID == nameOrID {
			return c
		}
	}
	return nil
}

// running reports whether the container with this name or ID runs.
func (f *fakeRuntime) running(nameOrID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(nameOrID)
	return c != nil && c.info.Running
}

// containerID returns the ID of the container called name, or "".
func (f *fakeRuntime) containerID(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.find(name); c != nil {
		return c.info.ID
	}
	return ""
}

// add puts a container in place as if someone else had created it.
func (f *fakeRuntime) add(name string, labels map[string]string, running bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	id := fmt.Sprintf("id%d", f.nextID)
	c := &fakeContainer{
		name:   name,
		info:   ContainerInfo{ID: id, ImageID: f.images["img"], Labels: labels},
		exited: make(chan struct{}),
	}
	f.containers[id] = c
	if running {
		f.run(c)
	}
	return id
}

// exit makes container id exit with code, if it runs.
func (f *fakeRuntime) exit(id string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.find(id); c != nil && c.info.Running {
		c.info.Running = false
		c.info.ExitCode = code
		c.info.HostPorts = nil
		close(c.exited)
	}
}

// run marks c running and publishes its ports. f.mu is held.
func (f *fakeRuntime) run(c *fakeContainer) {
	c.info.Running = true
	c.info.PID = f.pid
	c.exited = make(chan struct{})
	c.info.HostPorts = make(map[ContainerPort]uint16)
	for _, p := range c.spec.Ports {
		f.nextPort++
		c.info.HostPorts[p] = f.nextPort
	}
}

func (f *fakeRuntime) ImageID(ctx context.Context, ref string) (string, bool, error) {
	f.called("ImageID")
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.images[ref]
	return id, ok, nil
}

func (f *fakeRuntime) Pull(ctx context.Context, ref string) error {
	f.called("Pull")
	if f.pullErr != nil {
		return f.pullErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[ref] = "sha256:pulled"
	return nil
}

func (f *fakeRuntime) Inspect(ctx context.Context, name string) (ContainerInfo, bool, error) {
	f.called("Inspect")
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(name)
	if c == nil {
		return ContainerInfo{}, false, nil
	}
	info := c.info
	info.Labels = maps.Clone(c.info.Labels)
	info.HostPorts = maps.Clone(c.info.HostPorts)
	if f.afterInspect != nil {
		f.mu.Unlock()
		f.afterInspect(f, info)
		f.mu.Lock()
	}
	return info, true, nil
}

func (f *fakeRuntime) Create(ctx context.Context, spec ContainerSpec) (string, error) {
	f.called("Create")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.find(spec.Name) != nil {
		return "", fmt.Errorf("the container name %q is already in use", spec.Name)
	}
	f.nextID++
	id := fmt.Sprintf("id%d", f.nextID)
	f.containers[id] = &fakeContainer{
		name: spec.Name,
		spec: spec,
		info: ContainerInfo{
			ID:      id,
			ImageID: f.images[spec.Image],
			Labels:  maps.Clone(spec.Labels),
			Health:  f.healthCheck(),
		},
		exited: make(chan struct{}),
	}
	return id, nil
}

func (f *fakeRuntime) Start(ctx context.Context, id string) error {
	f.called("Start")
	if f.startDelay > 0 {
		select {
		case <-time.After(f.startDelay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.startErr != nil {
		if err := f.startErr(id); err != nil {
			return err
		}
	}
	f.mu.Lock()
	c := f.find(id)
	if c == nil {
		f.mu.Unlock()
		return errors.New("no such container")
	}
	if !c.info.Running {
		f.run(c)
	}
	b := f.behaviour[c.info.ImageID]
	f.mu.Unlock()
	switch {
	case b.exitAtStart != 0:
		f.exit(id, b.exitAtStart)
	case b.crashAfter > 0:
		go func() {
			time.Sleep(b.crashAfter)
			f.exit(id, 1)
		}()
	}
	if f.afterStart != nil {
		f.afterStart(f, id)
	}
	return nil
}

func (f *fakeRuntime) Stop(ctx context.Context, id string, timeout time.Duration) error {
	f.called("Stop")
	f.exit(id, 143)
	return nil
}

func (f *fakeRuntime) Pause(ctx context.Context, id string) error {
	f.called("Pause")
	if f.pauseErr != nil {
		return f.pauseErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(id)
	if c == nil || !c.info.Running {
		return fmt.Errorf("container %s is not running", id)
	}
	c.info.Running, c.info.Paused = false, true
	return nil
}

func (f *fakeRuntime) Unpause(ctx context.Context, id string) error {
	f.called("Unpause")
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(id)
	if c == nil || !c.info.Paused {
		return fmt.Errorf("container %s is not paused", id)
	}
	c.info.Running, c.info.Paused = true, false
	return nil
}

func (f *fakeRuntime) Remove(ctx context.Context, id string, timeout time.Duration) error {
	f.called("Remove")
	f.exit(id, 137)
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.containers, id)
	return nil
}

func (f *fakeRuntime) Wait(ctx context.Context, id string) (int, error) {
	f.mu.Lock()
	c := f.find(id)
	if c == nil {
		f.mu.Unlock()
		return -1, nil
	}
	ch := c.exited
	f.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return c.info.ExitCode, nil
}

func (f *fakeRuntime) Exec(ctx context.Context, id string, argv []string) (int, string, error) {
	f.called("Exec")
	f.mu.Lock()
	var b imageBehaviour
	if c := f.find(id); c != nil {
		b = f.behaviour[c.info.ImageID]
	}
	f.mu.Unlock()
	if b.neverReady {
		return 1, "connection refused", nil
	}
	if f.exec != nil {
		return f.exec(id, argv)
	}
	return 0, "", nil
}

// healthCheck is the health check of a created container.
func (f *fakeRuntime) healthCheck() *HealthCheck {
	switch {
	case f.noHealthcheck:
		return nil
	case f.health != nil:
		return f.health
	}
	return &HealthCheck{Test: []string{"CMD", "/bin/check"}}
}

func (f *fakeRuntime) Logs(ctx context.Context, id string, n int) ([]string, error) {
	f.called("Logs")
	return f.logs, nil
}

// mountSource returns where spec mounts target from, or "".
func mountSource(spec ContainerSpec, target string) string {
	for _, m := range spec.Mounts {
		if m.Target == target {
			return m.Source
		}
	}
	return ""
}

// notifyReady plays a container that sends READY=1 to its notify socket.
func (f *fakeRuntime) notifyReady(id string) error {
	f.mu.Lock()
	c := f.find(id)
	f.mu.Unlock()
	if c == nil {
		return errors.New("no such container")
	}
	conn, err := net.Dial("unixgram", mountSource(c.spec, NotifyPath))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte("STATUS=warming up\nREADY=1\n"))
	return err
}

// fakeSwapper is a Swapper that answers Choose from a list and records
// every call, failing the test if two calls overlap.
type fakeSwapper struct {
	t *testing.T
	// choices answer Choose in turn; the last one repeats.
	choices []choice
	// chooseErr, if set, is what Choose returns.
	chooseErr error
	// readyDelay is how long Ready takes.
	readyDelay time.Duration

	inCall atomic.Int32
	mu     sync.Mutex
	calls  []string // "choose", "ready IMAGE", "failed IMAGE"
	ready  []deployment
	failed []swapFailure
}

type swapFailure struct {
	image  string
	reason error
}

func (s *fakeSwapper) enter(call string) func() {
	if n := s.inCall.Add(1); n != 1 {
		s.t.Errorf("swapper call %q overlaps another: %d in progress", call, n)
	}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
	return func() { s.inCall.Add(-1) }
}

// choice is an answer of fakeSwapper.Choose.
type choice struct{ Image, Fallback string }

// deployment is a call of fakeSwapper.Ready.
type deployment struct {
	ImageID   string
	ColdStart time.Duration
}

func (s *fakeSwapper) Choose(ctx context.Context) (image, fallback string, err error) {
	defer s.enter("choose")()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.chooseErr != nil {
		return "", "", s.chooseErr
	}
	if len(s.choices) == 0 {
		return "", "", nil
	}
	c := s.choices[0]
	if len(s.choices) > 1 {
		s.choices = s.choices[1:]
	}
	return c.Image, c.Fallback, nil
}

func (s *fakeSwapper) Ready(ctx context.Context, imageID string, coldStart time.Duration) {
	d := deployment{ImageID: imageID, ColdStart: coldStart}
	defer s.enter("ready " + imageID)()
	if s.readyDelay > 0 {
		time.Sleep(s.readyDelay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = append(s.ready, d)
}

func (s *fakeSwapper) Failed(ctx context.Context, imageID string, reason error) {
	defer s.enter("failed " + imageID)()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed = append(s.failed, swapFailure{imageID, reason})
}

// history returns the calls so far.
func (s *fakeSwapper) history() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// failures returns the Failed calls so far.
func (s *fakeSwapper) failures() []swapFailure {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.failed)
}

// deployments returns the Ready calls so far.
func (s *fakeSwapper) deployments() []deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ready)
}
