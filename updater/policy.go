package updater

import (
	"errors"
	"fmt"
	"strings"

	"go.podman.io/image/v5/docker/reference"
)

// Policy says how a service's image is checked for updates.
type Policy string

const (
	// PolicyRegistry: an update is available when the registry's digest
	// for the image reference differs from every digest of the image the
	// service runs. The reference must be fully qualified.
	PolicyRegistry Policy = "registry"
	// PolicyLocal: an update is available when the local image the
	// reference names has a different ID from the one the service runs.
	PolicyLocal Policy = "local"
	// PolicyDisabled: no checks. The zero Policy means the same.
	PolicyDisabled Policy = "disabled"
)

// policies lists the valid policies in the order error messages give them.
var policies = []Policy{PolicyRegistry, PolicyLocal, PolicyDisabled}

// ErrUnqualified means the registry policy was given an image reference
// without a registry domain, such as "nginx".
var ErrUnqualified = errors.New("image reference not fully qualified")

// ParsePolicy returns the Policy named s. Its error lists the valid values:
//
//	invalid --auto-update "daily": valid policies are "registry", "local", "disabled"
func ParsePolicy(s string) (Policy, error) {
	for _, p := range policies {
		if s == string(p) {
			return p, nil
		}
	}
	quoted := make([]string, len(policies))
	for i, p := range policies {
		quoted[i] = fmt.Sprintf("%q", p)
	}
	return "", fmt.Errorf("invalid --auto-update %q: valid policies are %s", s, strings.Join(quoted, ", "))
}

// CheckImage reports whether the image reference ref can be checked under
// policy p. Under the registry policy ref must name its registry, as in
// "docker.io/library/nginx:latest", and may not be pinned by digest (a
// pinned image never changes); an unqualified reference gives an error
// wrapping ErrUnqualified. A reference without a tag means ":latest".
// Under the local and disabled policies any reference that parses is
// accepted.
func (p Policy) CheckImage(ref string) error {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	if p != PolicyRegistry {
		return nil
	}
	if !hasDomain(ref) {
		return fmt.Errorf("checking image %q for the registry policy: %w: name its registry, e.g. %q",
			ref, ErrUnqualified, reference.TagNameOnly(named).String())
	}
	if _, ok := named.(reference.Digested); ok {
		return fmt.Errorf("checking image %q for the registry policy: a reference pinned by digest never updates: use a tag", ref)
	}
	return nil
}

// hasDomain reports whether a reference that parsed names its registry:
// as in the reference grammar, the first path component is a domain when
// it contains "." or ":" or is "localhost".
func hasDomain(ref string) bool {
	first, _, ok := strings.Cut(ref, "/")
	if !ok {
		return false
	}
	return strings.ContainsAny(first, ".:") || first == "localhost"
}
