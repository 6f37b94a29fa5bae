package updater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lazypod/lazypod/internal/atomicfile"
	"github.com/lazypod/lazypod/internal/backoff"
	"github.com/lazypod/lazypod/internal/spec"
)

// DefaultLockTimeout is how long Update waits for another holder of a
// service's lock by default.
const DefaultLockTimeout = 30 * time.Second

// Store keeps each service's State in Dir, as NAME.json, and its lock as
// NAME.lock. Its zero value needs only Dir.
//
// Readers (Load, List) take no lock and change nothing: a save replaces
// the file by rename, so they read the old state or the new one. Writers
// go through Update, which holds the service's lock around a load, the
// change and a save, and only there is a corrupt file set aside.
type Store struct {
	// Dir is the state directory. Required. Update creates it, mode 0700,
	// if missing.
	Dir string
	// LockTimeout is how long Update waits for another holder of the
	// service's lock. If zero, DefaultLockTimeout. If negative, Update
	// waits until its ctx ends.
	LockTimeout time.Duration
	// Now gives the time used in names of set-aside files. If nil,
	// time.Now.
	Now func() time.Time

	liveMu sync.Mutex
	live   map[string]string // the state SetLive last wrote, by service
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

func checkName(name string) error {
	if err := spec.CheckName(name); err != nil {
		return fmt.Errorf("%w %q: %v", ErrInvalidName, name, err)
	}
	return nil
}

func (s *Store) path(name string) string { return filepath.Join(s.Dir, name+".json") }

// Load reads the state of the service name, without a lock. If there is
// none, the error matches fs.ErrNotExist. If the file cannot be parsed
// (torn, empty, garbage, or naming another service), Load returns a
// *CorruptError and leaves the file where it is: only Update, holding the
// lock, sets it aside.
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
		return nil, &CorruptError{Path: path, Err: err}
	}
	return st, nil
}

// Update changes the state of service name: it takes the service's lock,
// loads the state, calls change with it, and saves it if change returned
// nil and changed it. A missing state is passed to change as a State with
// only Name set. A corrupt file is set aside (NAME.json.corrupt-UNIXTIME)
// and reported as a *CorruptError without calling change; the next Update
// starts from nothing. Update returns the state as saved (or as loaded,
// when change failed or changed nothing).
//
// change runs under the lock: it must not block (no calls to Podman or a
// registry), or other lazypod processes wait for it and fail with
// ErrLocked after LockTimeout.
func (s *Store) Update(ctx context.Context, name string, change func(st *State) error) (*State, error) {
	unlock, err := s.lock(ctx, name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := s.Load(name)
	var cerr *CorruptError
	switch {
	case errors.As(err, &cerr):
		if aside, rerr := s.setAside(cerr.Path); rerr == nil {
			cerr.SetAside = aside
		} else {
			cerr.Err = fmt.Errorf("%w; setting it aside: %v", cerr.Err, rerr)
		}
		return nil, cerr
	case errors.Is(err, fs.ErrNotExist):
		st = &State{Name: name}
	case err != nil:
		return nil, err
	}
	before := st.clone()
	if err := change(st); err != nil {
		return before, err
	}
	if st.equal(before) {
		return st, nil
	}
	if err := s.save(st); err != nil {
		return before, err
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
		if _, err := spec.ParsePolicy(string(st.Policy)); err != nil {
			return nil, fmt.Errorf("policy %q: %v", st.Policy, err)
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
	return aside, atomicfile.SyncDir(filepath.Dir(path))
}

// save writes st to Dir/NAME.json atomically and durably, mode 0600, so a
// crash leaves either the old state or the new one.
func (s *Store) save(st *State) error {
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
	if err := atomicfile.Write(s.path(st.Name), b, 0o600); err != nil {
		return fmt.Errorf("saving state of %q: %w", st.Name, err)
	}
	return nil
}

// List loads every service's state in Dir, sorted by name, as Load does.
// Temporary and set-aside files are ignored. A file that fails to load
// does not stop the others: List returns the states it read and the
// errors joined. A missing Dir holds no states.
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

// lock takes the lock of service name, Dir/NAME.lock, as lockFile does.
func (s *Store) lock(ctx context.Context, name string) (unlock func(), err error) {
	return s.lockFile(ctx, name, name+".lock")
}

// lockFile takes flock(2) on Dir/file for service name, so that two
// lazypod processes (a serve and a timer's update) take turns. It waits
// for another holder until ctx ends or LockTimeout passes; on timeout the
// error matches ErrLocked. Call unlock when done; later calls do nothing.
// The lock is per call: two calls in one process exclude each other too.
func (s *Store) lockFile(ctx context.Context, name, file string) (unlock func(), err error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, file), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock of %q: %w", name, err)
	}
	if d := s.lockTimeout(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d, ErrLocked)
		defer cancel()
	}
	wait := backoff.Delay{Min: 5 * time.Millisecond, Max: 100 * time.Millisecond}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err == syscall.EWOULDBLOCK || err == syscall.EINTR {
			if backoff.Sleep(ctx.Done(), wait.Next()) {
				continue
			}
			err = context.Cause(ctx)
		}
		f.Close()
		return nil, fmt.Errorf("locking %q: %w", name, err)
	}
	// Closing the file releases the lock.
	return sync.OnceFunc(func() { f.Close() }), nil
}

// equal reports whether st and o hold the same state.
func (st *State) equal(o *State) bool { return reflect.DeepEqual(st, o) }

// clone returns a deep copy of st.
func (st *State) clone() *State {
	c := *st
	c.FailedDigests = slices.Clone(st.FailedDigests)
	c.FailedImageIDs = slices.Clone(st.FailedImageIDs)
	if st.TLSVerify != nil {
		v := *st.TLSVerify
		c.TLSVerify = &v
	}
	return &c
}

// Live is what a running lazypod serve tells other lazypod commands about
// its service, in Dir/NAME.serve.
type Live struct {
	PID   int       `json:"pid"`
	State string    `json:"state"` // the launcher's state: stopped, starting, ready or stopping
	Since time.Time `json:"since"`
}

func (s *Store) livePath(name string) string { return filepath.Join(s.Dir, name+".serve") }

// SetLive records that the serve process of service name (this one) is
// in state (the launcher's: stopped, starting, ready or stopping), unless
// it last recorded the same. It need not survive a crash, so it is written
// without a sync: it is on a cold start's path. Calls may come from
// several goroutines.
func (s *Store) SetLive(name, state string) error {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	if s.live[name] == state {
		return nil
	}
	b, err := json.Marshal(Live{PID: os.Getpid(), State: state, Since: time.Now()})
	if err != nil {
		return err
	}
	if err := atomicfile.Replace(s.livePath(name), b, 0o600); err != nil {
		return err
	}
	if s.live == nil {
		s.live = make(map[string]string)
	}
	s.live[name] = state
	return nil
}

// ClearLive removes the live state of service name, when its serve exits.
func (s *Store) ClearLive(name string) error {
	err := os.Remove(s.livePath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Live returns the live state of service name, and ok false when no
// serve process runs for it.
func (s *Store) Live(name string) (Live, bool) {
	b, err := os.ReadFile(s.livePath(name))
	if err != nil {
		return Live{}, false
	}
	var l Live
	if json.Unmarshal(b, &l) != nil || l.PID <= 0 {
		return Live{}, false
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(l.PID))); err != nil {
		return Live{}, false
	}
	return l, true
}

// Services loads the states of the services names, or with none every
// service's, as List does. A name without a state is reported in the
// error, with how to fix it, and left out.
func (s *Store) Services(names ...string) ([]*State, error) {
	if len(names) == 0 {
		return s.List()
	}
	var sts []*State
	var errs []error
	for _, n := range names {
		st, err := s.Load(n)
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("reading state of %q: %w in %s", n, ErrNoService, s.Dir)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sts = append(sts, st)
	}
	return sts, errors.Join(errs...)
}
