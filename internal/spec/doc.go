// Package spec holds the values a lazy service is specified with, and the
// one check of each: service and container names, image references, sizes,
// durations, volumes, ports, listeners, environment entries, readiness
// probes and update policies, and Serve, the settings of `lazypod serve`
// that they make up. lazypod serve's flags (cmd/lazypod), the definition
// files (package units) and the launcher all take their values from here,
// so a value one of them accepts, the others accept too.
//
// Each parser returns an error that says only what is wrong with the value
// and how to fix it ("not a size: use a size like 512m or 2g"); the caller
// adds where the value came from ("invalid --memory \"x\": ..." or
// "web.lazypod:4: [Container] Memory=x: ...").
//
// Typical use:
//
//	size, err := spec.ParseSize("512MiB") // Podman's own parser: 512m, 1g, 1t, 512MiB
//	if err != nil {
//		return fmt.Errorf("invalid --memory %q: %w", s, err)
//	}
//	p, err := spec.ParseProbe("http:/healthz")
//	pol, err := spec.ParsePolicy("registry")
//	if err := pol.CheckImage("nginx"); errors.Is(err, spec.ErrUnqualified) { ... }
//
// Limits:
//   - Values are checked one at a time. What involves several of them (a
//     probe that needs a TCP port, a policy and its image) is checked by
//     the caller, which knows the flag or key names to put in the message.
//   - Names follow Podman's container-name rule and are at most 200
//     characters; Podman itself allows longer ones.
package spec
