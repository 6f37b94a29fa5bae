package podman

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/containers/podman/v5/pkg/bindings/images"

	"github.com/lazypod/lazypod/launcher"
	"github.com/lazypod/lazypod/updater"
)

// ImageID returns the ID of image ref in local storage, and ok false if
// local storage does not have it.
func (c *Client) ImageID(ctx context.Context, ref string) (string, bool, error) {
	img, ok, err := c.Image(ctx, ref)
	return img.ID, ok, err
}

// Image describes image nameOrID (a reference or an ID) in local storage,
// and ok false if local storage does not have it. Its Digests are its repo
// digests ("registry/repo@sha256:...") and its manifest digest
// ("sha256:..."), without duplicates.
func (c *Client) Image(ctx context.Context, nameOrID string) (updater.Image, bool, error) {
	cctx, err := c.call(ctx)
	if err != nil {
		return updater.Image{}, false, err
	}
	img, err := images.GetImage(cctx, nameOrID, nil)
	if isNotFound(err) {
		return updater.Image{}, false, nil
	}
	if err != nil {
		return updater.Image{}, false, apiError(err)
	}
	if img == nil || img.ImageData == nil {
		return updater.Image{}, false, fmt.Errorf("inspecting image %s: empty answer", nameOrID)
	}
	info := updater.Image{ID: img.ID}
	for _, d := range append(slices.Clone(img.RepoDigests), img.Digest.String()) {
		if d != "" && !slices.Contains(info.Digests, d) {
			info.Digests = append(info.Digests, d)
		}
	}
	return info, true, nil
}

// Pull pulls ref with the client's PullOptions. An image the registry does
// not have wraps launcher.ErrImageNotFound; a refusal for want of
// credentials wraps launcher.ErrRegistryAuth.
func (c *Client) Pull(ctx context.Context, ref string) error {
	opts := new(images.PullOptions).WithQuiet(true)
	if c.pull.AuthFile != "" {
		// Read here, not by the service: a missing file is this
		// side's problem, not the registry's.
		if _, err := os.Stat(c.pull.AuthFile); err != nil {
			return fmt.Errorf("reading auth file: %w", err)
		}
		opts.WithAuthfile(c.pull.AuthFile)
	}
	if v := c.pull.TLSVerify; v != nil {
		opts.WithSkipTLSVerify(!*v)
	}
	cctx, err := c.call(ctx)
	if err != nil {
		return err
	}
	_, err = images.Pull(cctx, ref, opts)
	if err == nil {
		return nil
	}
	err = apiError(err)
	if errors.Is(err, launcher.ErrNoPodman) || ctx.Err() != nil {
		return err
	}
	return classifyPull(err)
}

// classifyPull marks a pull error the registry answered with what it
// means: the image is not there, or not without credentials. Podman ends
// such an error with the registry's own code and message, e.g.
// "reading manifest 1 in reg.example/app: manifest unknown: manifest
// unknown". Only whole ": "-separated parts are compared, which no image
// reference or host name can make up (references hold no spaces):
// reg.example/unauthorized:1 that cannot be reached is not an auth error.
// Anything else (a registry that is down, answers 5xx, speaks plain HTTP,
// or a server that is no registry) passes unmarked.
func classifyPull(err error) error {
	msg := strings.ToLower(err.Error())
	parts := strings.Split(msg, ": ")
	has := func(words ...string) bool {
		return slices.ContainsFunc(parts, func(p string) bool { return slices.Contains(words, strings.TrimSpace(p)) })
	}
	// A registry that answers a manifest's 404 with no error body.
	noManifest := strings.Contains(msg, ": statuscode: 404,") &&
		slices.ContainsFunc(parts, func(p string) bool { return strings.HasPrefix(p, "reading manifest ") })
	switch {
	case has("unauthorized", "authentication required", "invalid username/password", "incorrect username or password"):
		return fmt.Errorf("%w: %v", launcher.ErrRegistryAuth, err)
	case has("manifest unknown", "name unknown", "denied", "requested access to the resource is denied") || noManifest:
		return fmt.Errorf("%w: %v", launcher.ErrImageNotFound, err)
	}
	return err
}

// Tag adds the name repo:tag to image id. A name another image had moves
// to this one.
func (c *Client) Tag(ctx context.Context, id, repo, tag string) error {
	cctx, err := c.call(ctx)
	if err != nil {
		return err
	}
	return apiError(images.Tag(cctx, id, tag, repo, nil))
}

// Untag removes the name repo:tag from image id. An image that does not
// exist or lacks that name is not an error.
func (c *Client) Untag(ctx context.Context, id, repo, tag string) error {
	cctx, err := c.call(ctx)
	if err != nil {
		return err
	}
	err = images.Untag(cctx, id, tag, repo, nil)
	if err == nil || isNotFound(err) {
		return nil
	}
	err = apiError(err)
	if strings.Contains(err.Error(), "tag not known") {
		return nil
	}
	return err
}
