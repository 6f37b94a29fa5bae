package updater

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// State is what lazypod remembers about one service's image between runs.
// It is stored as JSON with the keys shown.
type State struct {
	// Name is the service name, also the container name.
	Name string `json:"name"`
	// Image is the image reference the service runs, as configured.
	Image string `json:"image"`
	// Policy is the update policy the service was last checked with.
	Policy spec.Policy `json:"policy,omitempty"`
	// ImageID and Digest identify the image the container was created
	// from. Digest is empty for an image that came from no registry.
	ImageID string `json:"image_id"`
	Digest  string `json:"digest"`
	// PreviousImageID and PreviousDigest identify the image that ran
	// before the current one, kept for a rollback. Empty when none ran
	// before, or after a rollback to it.
	PreviousImageID string `json:"previous_image_id"`
	PreviousDigest  string `json:"previous_digest"`
	// PendingImageID and PendingDigest identify a pulled image that waits
	// for the next start.
	PendingImageID string `json:"pending_image_id"`
	PendingDigest  string `json:"pending_digest"`
	// FailedDigests are images that failed after a swap and are never
	// deployed again: manifest digests ("sha256:..."), or image IDs for
	// images with no digest.
	FailedDigests []string `json:"failed_digests"`
	// FailedImageIDs are the image IDs of the images in FailedDigests
	// recorded by digest, so that Choose, which knows local images only
	// by ID, refuses them too. An image is failed when its ID is here or
	// in FailedDigests, or one of its digests is in FailedDigests.
	FailedImageIDs []string `json:"failed_image_ids,omitempty"`
	// LastCheck is when the image was last checked for an update.
	LastCheck time.Time `json:"last_check,omitzero"`
	// LastCheckError is why the last check failed; empty if it did not.
	LastCheckError string `json:"last_check_error,omitempty"`
	// LastUpdateResult is the outcome of the last check, swap or rollback.
	LastUpdateResult Result `json:"last_update_result,omitempty"`
	// LastColdStart is how long the last start from stopped to ready took.
	LastColdStart Duration `json:"last_cold_start,omitzero"`
	// AuthFile is the registry credentials file the service's serve
	// uses (--authfile), so that "lazypod update" checks and pulls with
	// the same; empty for the default.
	AuthFile string `json:"auth_file,omitempty"`
	// TLSVerify is the serve's --tls-verify; nil if it was not given
	// (verify, unless registries.conf marks the registry insecure).
	TLSVerify *bool `json:"tls_verify,omitempty"`
	// Container is the service's container's name when it is not the
	// service's (Quadlet's ContainerName=, systemd-NAME by default).
	Container string `json:"container,omitempty"`
	// MetricsFile is the serve's --metrics-file, so that lazypod update
	// and rollback count what they do in the same file; empty for none.
	MetricsFile string `json:"metrics_file,omitempty"`
}

// ContainerName is the name of the service's container.
func (st *State) ContainerName() string {
	if st.Container != "" {
		return st.Container
	}
	return st.Name
}

// Duration is a time.Duration stored in JSON as a string such as
// "1.25s". A JSON number is read as milliseconds.
type Duration time.Duration

// MarshalJSON writes d as a string such as "1.25s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a string such as "1.25s", or a number of
// milliseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("parsing duration %s: want a string such as \"1.5s\" or milliseconds", b)
	}
	*d = Duration(time.Duration(ms * float64(time.Millisecond)))
	return nil
}

// Errors callers branch on; test with errors.Is.
var (
	// ErrCorrupt means a state file could not be parsed. The error is a
	// *CorruptError naming the file and where it was set aside.
	ErrCorrupt = errors.New("state file corrupt")
	// ErrLocked means another process held a service's lock for longer
	// than the lock timeout.
	ErrLocked = errors.New("service locked by another lazypod process")
	// ErrInvalidName means a service name cannot name a state file.
	ErrInvalidName = errors.New("invalid service name")
	// ErrNoService means the state directory holds no state of a
	// service: it never started there.
	ErrNoService = errors.New("no such service")
)

// CorruptError reports a state file that could not be parsed. It matches
// ErrCorrupt.
type CorruptError struct {
	Path     string // the state file
	SetAside string // where it was moved; empty if moving it failed
	Err      error  // why it could not be parsed
}

func (e *CorruptError) Error() string {
	if e.SetAside == "" {
		return fmt.Sprintf("reading state file %s: %v: %v", e.Path, ErrCorrupt, e.Err)
	}
	return fmt.Sprintf("reading state file %s: %v (moved to %s): %v", e.Path, ErrCorrupt, e.SetAside, e.Err)
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the parse error.
func (e *CorruptError) Unwrap() error { return e.Err }
