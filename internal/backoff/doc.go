// Package backoff is the one shape of lazypod's retry loops: a delay that
// doubles from a first value up to a cap, and a sleep that ends early.
// The proxy's accept and connect retries, the launcher's exit watcher and
// crash-loop delay, and the updater's lock polling use it.
//
// Typical use:
//
//	delay := backoff.Delay{Min: 5 * time.Millisecond, Max: time.Second}
//	for {
//		if err := try(); err == nil {
//			delay.Reset()
//			continue
//		}
//		if !backoff.Sleep(ctx.Done(), delay.Next()) {
//			return ctx.Err()
//		}
//	}
//
// Limits: no jitter; the loops it serves retry a local peer (a Podman
// socket, a listener, a file lock), not a crowd of remote clients.
package backoff
