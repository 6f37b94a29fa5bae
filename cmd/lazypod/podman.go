package main

import (
	"context"
	"sync"
	"time"

	"github.com/lazypod/lazypod/launcher"
)

// podmanAPI is the Podman client serve and the admin commands use: the
// launcher's runtime plus images, tags and pulls with options.
type podmanAPI interface {
	launcher.Runtime
	Image(ctx context.Context, nameOrID string) (launcher.ImageInfo, bool, error)
	Tag(ctx context.Context, id, repo, tag string) error
	Untag(ctx context.Context, id, repo, tag string) error
	PullWith(ctx context.Context, ref string, o launcher.PullOptions) error
}

var (
	_ podmanAPI = (*launcher.Podman)(nil)
	_ podmanAPI = (*lazyPodman)(nil)
)

// connectTimeout bounds one attempt to reach the Podman API.
const connectTimeout = 10 * time.Second

// lazyPodman connects to the Podman API on first use, and again on the next
// call after an attempt failed, so that serve starts, and keeps serving,
// while Podman's API is down: each start reports the API as unreachable
// (closing the waiting connections with that reason) instead of lazypod
// exiting, which under socket activation would fail the socket unit after
// a few quick restarts. Once connected, each call dials the API socket
// afresh, so a restarted Podman is picked up too.
type lazyPodman struct {
	url  string
	pull launcher.PullOptions // applied to the client once connected

	mu sync.Mutex
	pm *launcher.Podman
}

func (l *lazyPodman) get(ctx context.Context) (*launcher.Podman, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pm != nil {
		return l.pm, nil
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	pm, err := launcher.NewPodman(cctx, l.url)
	if err != nil {
		return nil, err
	}
	pm.AuthFile, pm.SkipTLSVerify = l.pull.AuthFile, l.pull.SkipTLSVerify
	l.pm = pm
	return pm, nil
}

func (l *lazyPodman) ImageID(ctx context.Context, ref string) (string, bool, error) {
	pm, err := l.get(ctx)
	if err != nil {
		return "", false, err
	}
	return pm.ImageID(ctx, ref)
}

func (l *lazyPodman) Image(ctx context.Context, nameOrID string) (launcher.ImageInfo, bool, error) {
	pm, err := l.get(ctx)
	if err != nil {
		return launcher.ImageInfo{}, false, err
	}
	return pm.Image(ctx, nameOrID)
}

func (l *lazyPodman) Pull(ctx context.Context, ref string) error {
	pm, err := l.get(ctx)
	if err != nil {
		return err
	}
	return pm.Pull(ctx, ref)
}

func (l *lazyPodman) PullWith(ctx context.Context, ref string, o launcher.PullOptions) error {
	pm, err := l.get(ctx)
	if err != nil {
		return err
	}
	return pm.PullWith(ctx, ref, o)
}

func (l *lazyPodman) Tag(ctx context.Context, id, repo, tag string) error {
	pm, err := l.get(ctx)
	if err != nil {
		return err
	}
	return pm.Tag(ctx, id, repo, tag)
}

func (l *lazyPodman) Untag(ctx context.Context, id, repo, tag string) error {
	pm, err := l.get(ctx)
	if err != nil {
		return err
	}
	return pm.Untag(ctx, id, repo, tag)
}

func (l *lazyPodman) Inspect(ctx context.Context, name string) (launcher.ContainerInfo, bool, error) {
	pm, err := l.get(ctx)
	if err != nil {
		return launcher.ContainerInfo{}, false, err
	}
	return pm.Inspect(ctx, name)
}

func (l *lazyPodman) Create(ctx context.Context, spec launcher.ContainerSpec) (string, error) {
	pm, err := l.get(ctx)
	if err != nil {
		return "", err
	}
	return pm.Create(ctx, spec)
}

func (l *lazyPodman) Start(ctx context.Context, id string) error {
	pm, err := l.get(ctx)
	if err != nil {
		return err
	}
	return pm.Start(ctx, id)
}

func (l *lazyPodman) Stop(ctx context.Context, id string, timeout time.Duration) error {
	pm, err := l.get(ctx)
	if err != nil {
		return err
	}
	return pm.Stop(ctx, id, timeout)
}

func (l *lazyPodman) Remove(ctx context.Context, id string, timeout time.Duration) error {
	pm, err := l.get(ctx)
	if err != nil {
		return err
	}
	return pm.Remove(ctx, id, timeout)
}

func (l *lazyPodman) Wait(ctx context.Context, id string) (int, error) {
	pm, err := l.get(ctx)
	if err != nil {
		return 0, err
	}
	return pm.Wait(ctx, id)
}

func (l *lazyPodman) Exec(ctx context.Context, id string, argv []string) (int, string, error) {
	pm, err := l.get(ctx)
	if err != nil {
		return 0, "", err
	}
	return pm.Exec(ctx, id, argv)
}

func (l *lazyPodman) HealthCheck(ctx context.Context, id string) (string, error) {
	pm, err := l.get(ctx)
	if err != nil {
		return "", err
	}
	return pm.HealthCheck(ctx, id)
}

func (l *lazyPodman) Logs(ctx context.Context, id string, n int) ([]string, error) {
	pm, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return pm.Logs(ctx, id, n)
}
