package launcher

import (
	"context"
	"fmt"
)

// Needs holds, while the container runs, the services it needs: other
// lazypod services, held through their hold sockets, so that each is
// started before this container and kept from its idle stop until this
// container stops. cmd/lazypod's holds satisfies it.
type Needs interface {
	// Acquire makes every needed service ready and holds it. It returns
	// once all are, or with the first failure, having let go of what it
	// held. Holding already, it returns at once.
	Acquire(ctx context.Context) error
	// Release lets go of what Acquire holds. Holding nothing, it does
	// nothing.
	Release()
}

// acquireNeeds holds the needed services, if any, for a start.
func (l *Launcher) acquireNeeds(ctx context.Context) error {
	if l.cfg.Needs == nil {
		return nil
	}
	l.status("starting the services container %s needs", l.cfg.Name)
	if err := l.cfg.Needs.Acquire(ctx); err != nil {
		return fmt.Errorf("starting the services it needs: %w", err)
	}
	return nil
}

// releaseNeeds lets go of the needed services: the container stopped, or
// its start failed.
func (l *Launcher) releaseNeeds() {
	if l.cfg.Needs != nil {
		l.cfg.Needs.Release()
	}
}
