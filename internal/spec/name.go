package spec

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"

	"go.podman.io/image/v5/docker/reference"
)

// MaxNameLen is the longest service or container name lazypod accepts.
const MaxNameLen = 200

// nameRE is Podman's rule for container names; lazypod uses it for
// service names too, which name the state files.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// CheckName checks a service or container name.
func CheckName(s string) error {
	if !nameRE.MatchString(s) || len(s) > MaxNameLen {
		return fmt.Errorf("not a valid name: use up to %d letters, digits, '_', '.' and '-', starting with a letter or digit", MaxNameLen)
	}
	return nil
}

// CheckImage checks an image reference the way Podman reads it.
func CheckImage(s string) error {
	if s == "" {
		return errors.New("missing image: name the image to run, e.g. docker.io/library/nginx:latest")
	}
	if _, err := reference.ParseNormalizedNamed(s); err != nil {
		return fmt.Errorf("%v: use a reference like docker.io/library/nginx:1.27 or localhost/app:latest", err)
	}
	return nil
}

// DefaultName derives a service name from an image reference: its last
// path element without tag or digest ("docker.io/library/nginx:1.27" →
// "nginx").
func DefaultName(image string) string {
	name := image
	if named, err := reference.ParseNormalizedNamed(image); err == nil {
		name = reference.Path(named)
	}
	name = path.Base(name)
	if i := strings.IndexAny(name, ":@"); i >= 0 {
		name = name[:i]
	}
	return name
}

// ShortID returns the 12-character form of an image or container ID, as
// podman ps and podman images show it, without "sha256:". Anything that is
// not hex (a reference) is returned as it is.
func ShortID(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) < 12 || strings.Trim(h, "0123456789abcdef") != "" {
		return id
	}
	return h[:12]
}

// IsImageID reports whether s is a full image ID, 64 hex digits with or
// without "sha256:".
func IsImageID(s string) bool {
	h := strings.TrimPrefix(s, "sha256:")
	return len(h) == 64 && strings.Trim(h, "0123456789abcdef") == ""
}

// CheckImage reports whether the image reference ref can be checked under
// policy p. Under the registry policy ref must name its registry, as in
// "docker.io/library/nginx:latest", and may not be pinned by digest (a
// pinned image never changes); an unqualified reference gives an error
// wrapping ErrUnqualified. A reference without a tag means ":latest".
// Under the local and disabled policies any reference that parses is
// accepted.
func (p Policy) CheckImage(ref string) error {
	if err := CheckImage(ref); err != nil {
		return err
	}
	if p != PolicyRegistry {
		return nil
	}
	named, _ := reference.ParseNormalizedNamed(ref)
	if !hasDomain(ref) {
		return fmt.Errorf("%w for the registry policy: name its registry, e.g. %s",
			ErrUnqualified, reference.TagNameOnly(named).String())
	}
	if _, ok := named.(reference.Digested); ok {
		return errors.New("the registry policy cannot update an image pinned by digest: use a tag")
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

// CheckPodmanURL checks a Podman API address; the bindings accept unix,
// tcp and ssh.
func CheckPodmanURL(s string) error {
	for _, scheme := range []string{"unix://", "tcp://", "ssh://"} {
		if strings.HasPrefix(s, scheme) && len(s) > len(scheme) {
			return nil
		}
	}
	return errors.New("use unix:///PATH, tcp://HOST:PORT or ssh://USER@HOST/PATH, e.g. unix:///run/podman/podman.sock")
}
