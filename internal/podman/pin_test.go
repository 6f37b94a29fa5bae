package podman

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/images"

	"github.com/lazypod/lazypod/launcher"
	"github.com/lazypod/lazypod/updater"
)

// unpinAtEnd removes service's pin container and its tag, if any, when
// the test ends.
func unpinAtEnd(t *testing.T, c *Client, service string) {
	removeAtEnd(t, c, PinName(service))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Untag(ctx, PinRef(service), pinRepo(service), pinTag); err != nil {
			t.Errorf("removing tag %s: %v", PinRef(service), err)
		}
	})
}

// labelledImage commits a container of image to a new image that bears
// label (KEY=VALUE) and no name, so that only this test uses it, and
// removes it when the test ends.
func labelledImage(t *testing.T, c *Client, image, label string) string {
	t.Helper()
	name := uniqueName(t, c)
	if _, err := c.Create(t.Context(), launcher.ContainerSpec{Name: name, Image: image, Network: "none"}); err != nil {
		t.Fatalf("creating container to commit: %v", err)
	}
	cctx, err := c.call(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := containers.Commit(cctx, name, new(containers.CommitOptions).WithChanges([]string{"LABEL " + label}))
	if err != nil {
		t.Fatalf("committing container %s: %v", name, apiError(err))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cctx, err := c.call(ctx)
		if err != nil {
			t.Errorf("removing image %s: %v", resp.ID, err)
			return
		}
		_, errs := images.Remove(cctx, []string{resp.ID}, new(images.RemoveOptions).WithForce(true).WithIgnore(true))
		for _, err := range errs {
			if !isNotFound(err) {
				t.Errorf("removing image %s: %v", resp.ID, apiError(err))
			}
		}
	})
	return resp.ID
}

// prune runs `podman image prune -a --filter label=LABEL`: it removes the
// images with that label that no container uses, tagged or not.
func prune(t *testing.T, c *Client, label string) {
	t.Helper()
	cctx, err := c.call(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	opts := new(images.PruneOptions).WithAll(true).WithFilters(map[string][]string{"label": {label}})
	if _, err := images.Prune(cctx, opts); err != nil {
		t.Fatalf("pruning images labelled %s: %v", label, apiError(err))
	}
}

// hasImage reports whether local storage has image id.
func hasImage(t *testing.T, c *Client, id string) bool {
	t.Helper()
	_, ok, err := c.Image(t.Context(), id)
	if err != nil {
		t.Fatalf("Image(%s): %v", id, err)
	}
	return ok
}

// TestIntegrationPin: a pin holds its image against `podman image prune -a`,
// which a tag alone does not; it survives Pinned, is replaced by a second
// Pin (which lets the first image go) and removed with its tag by Unpin.
func TestIntegrationPin(t *testing.T) {
	c, _ := integrationClient(t)
	ids := versionImages(t, c)
	service := uniqueName(t, c)
	unpinAtEnd(t, c, service)
	label := "io.lazypod.test=" + service
	held := labelledImage(t, c, ids[1], label)
	ctx := t.Context()

	if got, err := c.Pinned(ctx, service); got != "" || err != nil {
		t.Fatalf("Pinned before any Pin: got %q, %v; want \"\", nil", got, err)
	}
	if err := c.Pin(ctx, service, held); err != nil {
		t.Fatalf("Pin: %v", err)
	}
	for i := range 2 {
		if got, err := c.Pinned(ctx, service); got != held || err != nil {
			t.Fatalf("Pinned, call %d: got %q, %v; want %s", i+1, got, err, held)
		}
	}
	first, ok, err := c.Inspect(ctx, PinName(service))
	if err != nil || !ok || first.Labels[LabelPin] != service || first.Running || first.ImageID != held {
		t.Errorf("Inspect(%s): got %+v, ok %v, %v; want created, not running, labelled %s=%s, of the pinned image",
			PinName(service), first, ok, err, LabelPin, service)
	}
	if img, ok, err := c.Image(ctx, PinRef(service)); err != nil || !ok || img.ID != held {
		t.Errorf("Image(%s): got %+v, ok %v, %v; want the pinned image", PinRef(service), img, ok, err)
	}
	prune(t, c, label)
	if !hasImage(t, c, held) {
		t.Fatalf("pinned image %s: pruned; want it kept", held)
	}

	// A second Pin replaces the first, which no longer holds its image.
	if err := c.Pin(ctx, service, ids[2]); err != nil {
		t.Fatalf("second Pin: %v", err)
	}
	if got, err := c.Pinned(ctx, service); got != ids[2] || err != nil {
		t.Errorf("Pinned after a second Pin: got %q, %v; want %s", got, err, ids[2])
	}
	second, ok, err := c.Inspect(ctx, PinName(service))
	if err != nil || !ok || second.ID == first.ID || second.ImageID != ids[2] {
		t.Errorf("Inspect(%s) after a second Pin: got %+v, ok %v, %v; want a new container of v2", PinName(service), second, ok, err)
	}
	if img, ok, err := c.Image(ctx, PinRef(service)); err != nil || !ok || img.ID != ids[2] {
		t.Errorf("Image(%s) after a second Pin: got %+v, ok %v, %v; want v2", PinRef(service), img, ok, err)
	}
	prune(t, c, label)
	if hasImage(t, c, held) {
		t.Errorf("image %s pinned first: kept by prune; want it removed once the pin moved on", held)
	}

	if err := c.Unpin(ctx, service); err != nil {
		t.Fatalf("Unpin: %v", err)
	}
	if got, err := c.Pinned(ctx, service); got != "" || err != nil {
		t.Errorf("Pinned after Unpin: got %q, %v; want \"\", nil", got, err)
	}
	if _, ok, err := c.Inspect(ctx, PinName(service)); ok || err != nil {
		t.Errorf("Inspect(%s) after Unpin: got ok %v, %v; want false, nil", PinName(service), ok, err)
	}
	if _, ok, err := c.Image(ctx, PinRef(service)); ok || err != nil {
		t.Errorf("Image(%s) after Unpin: got ok %v, %v; want the tag gone", PinRef(service), ok, err)
	}
	if !hasImage(t, c, ids[2]) {
		t.Errorf("image v2 after Unpin: gone; want only its pin tag removed")
	}
	if err := c.Unpin(ctx, service); err != nil {
		t.Errorf("Unpin with no pin: got %v; want nil", err)
	}
}

// TestIntegrationNotPin: a container of the pin's name that is not the
// service's pin gives ErrNotPin to Pinned, Pin and Unpin, and is left
// alone.
func TestIntegrationNotPin(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
	}{
		{name: "no label"},
		{name: "another service's pin", labels: map[string]string{LabelPin: "someone-else"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, image := integrationClient(t)
			ids := versionImages(t, c)
			service := uniqueName(t, c)
			unpinAtEnd(t, c, service)
			ctx := t.Context()
			id, err := c.Create(ctx, launcher.ContainerSpec{Name: PinName(service), Image: image, Network: "none", Labels: tt.labels})
			if err != nil {
				t.Fatalf("creating someone else's container: %v", err)
			}
			if got, err := c.Pinned(ctx, service); got != "" || !errors.Is(err, updater.ErrNotPin) {
				t.Errorf("Pinned: got %q, %v; want ErrNotPin", got, err)
			}
			if err := c.Pin(ctx, service, ids[2]); !errors.Is(err, updater.ErrNotPin) {
				t.Errorf("Pin: got %v; want ErrNotPin", err)
			}
			if err := c.Unpin(ctx, service); !errors.Is(err, updater.ErrNotPin) {
				t.Errorf("Unpin: got %v; want ErrNotPin", err)
			}
			info, ok, err := c.Inspect(ctx, PinName(service))
			if err != nil || !ok || info.ID != id || info.Labels[LabelPin] != tt.labels[LabelPin] {
				t.Errorf("the other container: got %+v, ok %v, %v; want %s left alone", info, ok, err, id)
			}
			if _, ok, err := c.Image(ctx, PinRef(service)); ok || err != nil {
				t.Errorf("Image(%s): got ok %v, %v; want no pin tag", PinRef(service), ok, err)
			}
		})
	}
}

// TestIntegrationContainerImage: the image of the service's container, if
// lazypod made it.
func TestIntegrationContainerImage(t *testing.T) {
	c, _ := integrationClient(t)
	ids := versionImages(t, c)
	tests := []struct {
		name   string
		create bool
		labels func(name string) map[string]string
		want   bool
	}{
		{name: "none"},
		{name: "lazypod's", create: true, want: true, labels: func(name string) map[string]string {
			return map[string]string{launcher.LabelService: name}
		}},
		{name: "someone else's", create: true, labels: func(string) map[string]string { return nil }},
		{name: "another service's", create: true, labels: func(string) map[string]string {
			return map[string]string{launcher.LabelService: "someone-else"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			service := uniqueName(t, c)
			if tt.create {
				cs := launcher.ContainerSpec{Name: service, Image: ids[3], Network: "none", Labels: tt.labels(service)}
				if _, err := c.Create(t.Context(), cs); err != nil {
					t.Fatalf("Create: %v", err)
				}
			}
			got, ok, err := c.ContainerImage(t.Context(), service, service)
			want := ""
			if tt.want {
				want = ids[3]
			}
			if got != want || ok != tt.want || err != nil {
				t.Errorf("ContainerImage: got %q, ok %v, %v; want %q, %v, nil", got, ok, err, want, tt.want)
			}
		})
	}
}
