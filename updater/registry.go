package updater

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containers/podman/v5/cmd/podman/common"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/types"
)

// DefaultRegistryTimeout bounds one registry check.
const DefaultRegistryTimeout = 30 * time.Second

// DockerRegistry asks registries for manifest digests over the Docker
// Registry HTTP API v2, without pulling. It satisfies Registry. Its zero
// value uses the usual auth files and verifies TLS.
type DockerRegistry struct {
	// AuthFile is the auth file holding registry credentials, as
	// "podman --authfile". If empty, where Podman looks: the file
	// $REGISTRY_AUTH_FILE names; else $DOCKER_CONFIG/config.json if
	// DOCKER_CONFIG is set; else $XDG_RUNTIME_DIR/containers/auth.json,
	// then ~/.config/containers/auth.json, ~/.docker/config.json and
	// ~/.dockercfg.
	AuthFile string
	// TLSVerify is podman's --tls-verify: false accepts any certificate
	// and falls back to plain HTTP (for local registries), true verifies
	// whatever registries.conf says; nil does as registries.conf says of
	// the registry (insecure = true: as false).
	TLSVerify *bool
	// Timeout bounds one Digest call. If zero, DefaultRegistryTimeout. If
	// negative, only ctx bounds it.
	Timeout time.Duration
}

func (r *DockerRegistry) timeout() time.Duration {
	if r.Timeout == 0 {
		return DefaultRegistryTimeout
	}
	return r.Timeout
}

// systemContext returns the settings for the docker client. Like
// Podman's, it reads REGISTRY_AUTH_FILE and DOCKER_CONFIG, which the
// client does not read itself, and CONTAINERS_REGISTRIES_CONF (with
// Podman's own code): the registries.conf to read, with the
// registries.conf.d drop-ins, for the registry's insecure and blocked
// settings.
func (r *DockerRegistry) systemContext(getenv func(string) string) *types.SystemContext {
	sys := &types.SystemContext{AuthFilePath: r.AuthFile}
	if sys.AuthFilePath == "" {
		if f := getenv("REGISTRY_AUTH_FILE"); f != "" {
			sys.AuthFilePath = f
		} else if d := getenv("DOCKER_CONFIG"); d != "" {
			sys.DockerCompatAuthFilePath = filepath.Join(d, "config.json")
		}
	}
	if r.TLSVerify != nil {
		sys.DockerInsecureSkipTLSVerify = types.NewOptionalBool(!*r.TLSVerify)
	}
	common.SetRegistriesConfPath(sys)
	return sys
}

// Digest returns the manifest digest the registry serves for ref, a
// reference such as "docker.io/library/nginx:latest" (no tag means
// ":latest"), with one HEAD request. For a multi-platform image it is the
// manifest list's digest.
func (r *DockerRegistry) Digest(ctx context.Context, ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	named = reference.TagNameOnly(named)
	iref, err := docker.NewReference(named)
	if err != nil {
		return "", fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	sys := r.systemContext(os.Getenv)
	callCtx := ctx
	if d := r.timeout(); d > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	d, err := docker.GetDigest(callCtx, sys, iref)
	if err != nil {
		if ctx.Err() == nil && callCtx.Err() != nil {
			return "", fmt.Errorf("getting manifest digest of %s: no answer within %v: %w", named, r.timeout(), err)
		}
		return "", fmt.Errorf("getting manifest digest of %s: %w", named, err)
	}
	return d.String(), nil
}
