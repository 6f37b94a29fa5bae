package podman

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
	"github.com/lazypod/lazypod/launcher"
	"github.com/lazypod/lazypod/updater"
)

// LabelPin marks the container that pins a service's previous image; its
// value is the service's name.
const LabelPin = "io.lazypod.pin"

// PinName is the name of the container that pins service's image.
func PinName(service string) string { return service + ".lazypod-pin" }

// pinRepo is the repository of the tag on a pinned image.
func pinRepo(service string) string { return "localhost/lazypod-pin/" + strings.ToLower(service) }

// pinTag is the tag on a pinned image.
const pinTag = "previous"

// PinRef is the name the image service's pin holds is tagged with, for
// people reading podman images: localhost/lazypod-pin/NAME:previous.
func PinRef(service string) string { return pinRepo(service) + ":" + pinTag }

// Pinned returns the ID of the image service's pin container holds, "" if
// there is no pin. A container of the pin's name that is not lazypod's pin
// is an error wrapping updater.ErrNotPin.
func (c *Client) Pinned(ctx context.Context, service string) (string, error) {
	info, ok, err := c.pin(ctx, service)
	if err != nil || !ok {
		return "", err
	}
	return info.ImageID, nil
}

// pin inspects service's pin container.
func (c *Client) pin(ctx context.Context, service string) (launcher.ContainerInfo, bool, error) {
	name := PinName(service)
	info, ok, err := c.Inspect(ctx, name)
	if err != nil {
		return info, false, fmt.Errorf("inspecting pin container %s: %w", name, err)
	}
	if ok && info.Labels[LabelPin] != service {
		return info, false, fmt.Errorf("%w: container %s lacks the label %s=%s: remove it", updater.ErrNotPin, name, LabelPin, service)
	}
	return info, ok, nil
}

// Pin makes service's pin container hold image imageID, replacing an
// earlier pin, and tags the image localhost/lazypod-pin/NAME:previous.
func (c *Client) Pin(ctx context.Context, service, imageID string) error {
	if err := c.Unpin(ctx, service); err != nil {
		return err
	}
	name := PinName(service)
	_, err := c.Create(ctx, launcher.ContainerSpec{
		Name:    name,
		Image:   imageID,
		Command: []string{"/lazypod-pin-never-started"},
		Network: "none",
		Labels:  map[string]string{LabelPin: service},
	})
	if err != nil {
		return fmt.Errorf("creating pin container %s for image %s: %w", name, spec.ShortID(imageID), err)
	}
	// The tag is for people reading podman images; the container is
	// what protects the image.
	c.Tag(ctx, imageID, pinRepo(service), pinTag) //nolint:errcheck
	return nil
}

// Unpin removes service's pin container and its image's tag, if any.
func (c *Client) Unpin(ctx context.Context, service string) error {
	info, ok, err := c.pin(ctx, service)
	if err != nil || !ok {
		return err
	}
	if err := c.Remove(ctx, info.ID, time.Second); err != nil {
		return fmt.Errorf("removing pin container %s: %w", PinName(service), err)
	}
	c.Untag(ctx, info.ImageID, pinRepo(service), pinTag) //nolint:errcheck
	return nil
}

// ContainerImage returns the image ID the container called container was
// created from, and ok false if there is no such container that lazypod
// made for service.
func (c *Client) ContainerImage(ctx context.Context, container, service string) (string, bool, error) {
	info, ok, err := c.Inspect(ctx, container)
	if err != nil || !ok || info.Labels[launcher.LabelService] != service {
		return "", false, err
	}
	return info.ImageID, true, nil
}
