package proxy

import "context"

// Backend is what the proxy forwards flows to: something that can be made
// ready, names the address behind each route, and can be stopped when idle.
// The launcher satisfies it.
type Backend interface {
	// Start makes the backend ready to take flows and returns nil once it
	// is, or the reason it cannot be. Concurrent calls share one start, and
	// a caller whose ctx ends stops waiting without cancelling the start for
	// the others. It is cheap when the backend is already ready.
	Start(ctx context.Context) error

	// Addr returns the "host:port" to dial for route, the name of the
	// listener a flow arrived on. It is valid after Start returned nil.
	Addr(route string) (string, error)

	// Stop stops the backend. The proxy calls it after the idle timeout and
	// on shutdown. A Start after Stop starts the backend again.
	Stop(ctx context.Context) error
}

// Idler is a Backend with its own way to go idle: the proxy calls Idle
// instead of Stop after the idle timeout (Stop still on shutdown). The
// launcher's Idle stops or pauses the container, as it is configured.
type Idler interface {
	Idle(ctx context.Context) error
}
