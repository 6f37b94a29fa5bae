package updater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// State is what lazypod remembers about one service's image between runs.
// It is stored as JSON with the keys shown.
type State struct {
	// Name is the service name, also the container name.
	Name string `json:"name"`
	// Image is the image reference the service runs, as configured.
	Image string `json:"image"`
	// Policy is the update policy the service was last checked with.
	Policy Policy `json:"policy,omitempty"`
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

// DefaultLockTimeout is how long Lock waits by default.
const DefaultLockTimeout = 30 * time.Second

// Store keeps each service's State in Dir, as NAME.json, and its lock as
// NAME.lock. Its zero value needs only Dir.
type Store struct {
	// Dir is the state directory. Required. Save creates it, mode 0700,
	// if missing.
	Dir string
	// LockTimeout is how long Lock waits for another holder. If zero,
	// DefaultLockTimeout. If negative, Lock waits until its ctx ends.
	LockTimeout time.Duration
	// Now gives the time used in names of set-aside files. If nil,
	// time.Now.
	Now func() time.Time
}

func (s *Store) lockTimeout() time.Duration {
	if s.LockTimeout == 0 {
		return DefaultLockTimeout
	}
	return s.LockTimeout
}

func (s *Store) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// validName matches the names Podman accepts for containers.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func checkName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("%w %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", ErrInvalidName, name)
	}
	return nil
}

func (s *Store) path(name string) string { return filepath.Join(s.Dir, name+".json") }

// Load reads the state of the service name. If there is none, the error
// matches fs.ErrNotExist. If the file cannot be parsed (torn, empty,
// garbage, or naming another service), Load moves it to
// NAME.json.corrupt-UNIXTIME and returns a *CorruptError; it never returns
// an empty State in its place.
func (s *Store) Load(name string) (*State, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	path := s.path(name)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading state of %q: %w", name, err)
	}
	st, err := parseState(name, b)
	if err != nil {
		cerr := &CorruptError{Path: path, Err: err}
		if aside, rerr := s.setAside(path); rerr == nil {
			cerr.SetAside = aside
		} else {
			cerr.Err = fmt.Errorf("%w; setting it aside: %v", err, rerr)
		}
		return nil, cerr
	}
	return st, nil
}

// parseState parses and checks the state file of service name.
func parseState(name string, b []byte) (*State, error) {
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	if st.Name != name {
		return nil, fmt.Errorf("file names service %q, not %q", st.Name, name)
	}
	if st.Policy != "" {
		if _, err := ParsePolicy(string(st.Policy)); err != nil {
			return nil, fmt.Errorf("policy %q is not one of registry, local, disabled", st.Policy)
		}
	}
	return &st, nil
}

// setAside renames a corrupt file to path.corrupt-UNIXTIME, adding -N if
// that name is taken, and returns the new name.
func (s *Store) setAside(path string) (string, error) {
	base := path + ".corrupt-" + strconv.FormatInt(s.now().Unix(), 10)
	aside := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(aside); err != nil {
			break // free, or unusable: then Rename says why
		}
		aside = base + "-" + strconv.Itoa(i)
	}
	if err := os.Rename(path, aside); err != nil {
		return "", err
	}
	return aside, syncDir(filepath.Dir(path))
}

// Save writes st to Dir/NAME.json atomically, mode 0600: it writes a
// temporary file in Dir, syncs it, renames it over the old file and syncs
// Dir, so a crash leaves either the old state or the new one.
func (s *Store) Save(st *State) error {
	if err := checkName(st.Name); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding state of %q: %w", st.Name, err)
	}
	b = append(b, '\n')
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	if err := writeFileAtomic(s.path(st.Name), b); err != nil {
		return fmt.Errorf("saving state of %q: %w", st.Name, err)
	}
	return nil
}

// writeFileAtomic replaces path with data: temporary file, write, fsync,
// rename, fsync of the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// List loads every service's state in Dir, sorted by name. Temporary and
// set-aside files are ignored. A file that fails to load does not stop the
// others: List returns the states it read and the errors joined. A
// missing Dir holds no states.
func (s *Store) List() ([]*State, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing state directory: %w", err)
	}
	var states []*State
	var errs []error
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || checkName(name) != nil {
			continue
		}
		st, err := s.Load(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		states = append(states, st)
	}
	slices.SortFunc(states, func(a, b *State) int { return strings.Compare(a.Name, b.Name) })
	return states, errors.Join(errs...)
}

// Lock takes the lock of service name, Dir/NAME.lock, with flock(2), so
// that two lazypod processes (a serve and a timer's update) take turns
// with its image and state. It waits for another holder until ctx ends or
// LockTimeout passes; on timeout the error matches ErrLocked. Call unlock
// when done; later calls do nothing. The lock is per call: two Lock calls
// in one process exclude each other too.
func (s *Store) Lock(ctx context.Context, name string) (unlock func(), err error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	path := filepath.Join(s.Dir, name+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock of %q: %w", name, err)
	}
	if d := s.lockTimeout(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d, ErrLocked)
		defer cancel()
	}
	wait := 5 * time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			f.Close()
			return nil, fmt.Errorf("locking %q: %w", name, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("locking %q: %w", name, context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
	// Closing the file releases the lock.
	return sync.OnceFunc(func() { f.Close() }), nil
}
