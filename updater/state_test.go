package updater

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

func testState(name string) *State {
	tlsVerify := false
	return &State{
		Name:             name,
		Image:            "docker.io/library/nginx:latest",
		Policy:           spec.PolicyRegistry,
		ImageID:          "a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6",
		Digest:           "sha256:1111111111111111111111111111111111111111111111111111111111111111",
		PreviousImageID:  "3b25b682ea82b2db3cc4fd48db818be788ee3f902ac7378090cf2624ec2442df",
		PreviousDigest:   "sha256:0000000000000000000000000000000000000000000000000000000000000000",
		PendingImageID:   "e4c58958181a5925816faa528ce959e487632f4cfd192f8132f71b32df2744b4",
		PendingDigest:    "sha256:2222222222222222222222222222222222222222222222222222222222222222",
		FailedDigests:    []string{"sha256:3333333333333333333333333333333333333333333333333333333333333333"},
		FailedImageIDs:   []string{"f00df00df00df00df00df00df00df00df00df00df00df00df00df00df00df00d"},
		LastCheck:        time.Date(2026, 11, 21, 3, 0, 12, 345, time.UTC),
		LastCheckError:   "checking registry: connection refused",
		LastUpdateResult: ResultPending,
		LastColdStart:    Duration(1234 * time.Millisecond),
		AuthFile:         "/run/user/1000/containers/auth.json",
		TLSVerify:        &tlsVerify,
	}
}

func TestStoreRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		state *State
	}{
		{name: "full", state: testState("web")},
		{name: "minimal", state: &State{Name: "min", Image: "localhost/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Store{Dir: filepath.Join(t.TempDir(), "state")}
			if err := s.save(tt.state); err != nil {
				t.Fatalf("Save: %v", err)
			}
			got, err := s.Load(tt.state.Name)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(got, tt.state) {
				t.Errorf("Load = %+v; want %+v", got, tt.state)
			}
			fi, err := os.Stat(s.path(tt.state.Name))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("state file mode = %o; want 600", got)
			}
			fi, err = os.Stat(s.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o700 {
				t.Errorf("state dir mode = %o; want 700", got)
			}
		})
	}
}

func TestStateJSONKeys(t *testing.T) {
	b, err := json.Marshal(testState("web"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "image", "policy", "image_id", "digest", "previous_image_id",
		"previous_digest", "pending_image_id", "pending_digest", "failed_digests", "failed_image_ids", "last_check", "last_check_error",
		"last_update_result", "last_cold_start", "auth_file", "tls_verify"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing from %s", k, b)
		}
	}
	if got, want := m["last_cold_start"], "1.234s"; got != want {
		t.Errorf("last_cold_start = %v; want %q", got, want)
	}
	if got, want := m["last_update_result"], "pending"; got != want {
		t.Errorf("last_update_result = %v; want %q", got, want)
	}
	// A state never checked has no last_check or last_cold_start.
	b, err = json.Marshal(&State{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"last_check", "last_cold_start", "failed_image_ids", "auth_file", "tls_verify"} {
		if s := string(b); strings.Contains(s, k) {
			t.Errorf("zero state = %s; want no %s", s, k)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Duration
		wantErr bool
	}{
		{name: "string", in: `"1.5s"`, want: Duration(1500 * time.Millisecond)},
		{name: "milliseconds", in: `850`, want: Duration(850 * time.Millisecond)},
		{name: "fractional ms", in: `0.5`, want: Duration(500 * time.Microsecond)},
		{name: "bad string", in: `"soon"`, wantErr: true},
		{name: "bool", in: `true`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Duration
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Unmarshal(%s) = %v, nil; want error", tt.in, time.Duration(got))
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Unmarshal(%s) = %v, %v; want %v, nil", tt.in, time.Duration(got), err, time.Duration(tt.want))
			}
		})
	}
}

func TestLoadTestdata(t *testing.T) {
	s := &Store{Dir: "testdata"}
	states, err := s.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var names []string
	for _, st := range states {
		names = append(names, st.Name)
	}
	if got, want := strings.Join(names, ","), "api,new,web"; got != want {
		t.Fatalf("List names = %s; want %s", got, want)
	}
	if got, want := time.Duration(states[0].LastColdStart), 850*time.Millisecond; got != want {
		t.Errorf("api last_cold_start = %v; want %v", got, want)
	}
	if got, want := states[2].LastUpdateResult, ResultRolledBack; got != want {
		t.Errorf("web last_update_result = %q; want %q", got, want)
	}
}

func TestLoadMissing(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	_, err := s.Load("nope")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing service = %v; want fs.ErrNotExist", err)
	}
	if errors.Is(err, ErrCorrupt) {
		t.Errorf("Load of a missing service = %v; want not ErrCorrupt", err)
	}
}

func TestInvalidName(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	for _, name := range []string{"", "../x", "a/b", ".hidden", "-x", "a b"} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Load(name); !errors.Is(err, ErrInvalidName) {
				t.Errorf("Load(%q) = %v; want ErrInvalidName", name, err)
			}
			if err := s.save(&State{Name: name}); !errors.Is(err, ErrInvalidName) {
				t.Errorf("Save(%q) = %v; want ErrInvalidName", name, err)
			}
			if _, err := s.lock(t.Context(), name); !errors.Is(err, ErrInvalidName) {
				t.Errorf("Lock(%q) = %v; want ErrInvalidName", name, err)
			}
		})
	}
}

// A crash between writing the temporary file and renaming it leaves a
// stray temporary file: the old state must still load, and List must not
// see the stray.
func TestSaveCrashLeavesOldState(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	old := testState("web")
	if err := s.save(old); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(s.Dir, ".web.json.tmp-12345")
	if err := os.WriteFile(stray, []byte(`{"name":"web","ima`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load("web")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(got, old) {
		t.Errorf("Load = %+v; want %+v", got, old)
	}
	states, err := s.List()
	if err != nil || len(states) != 1 {
		t.Fatalf("List = %d states, %v; want 1, nil", len(states), err)
	}
	// The next Save still works and leaves no temporary file of its own.
	next := testState("web")
	next.ImageID = "new"
	if err := s.save(next); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got, want := strings.Join(names, ","), ".web.json.tmp-12345,web.json"; got != want {
		t.Errorf("files = %s; want %s", got, want)
	}
}

func TestLoadCorrupt(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{name: "empty", content: ""},
		{name: "torn", content: `{"name":"web","image":"docker.io/libr`},
		{name: "garbage", content: "\x00\x00\x00\x00"},
		{name: "trailing", content: `{"name":"web"}{"name":"web"}`},
		{name: "other service", content: `{"name":"api"}`},
		{name: "bad policy", content: `{"name":"web","policy":"daily"}`},
		{name: "bad type", content: `{"name":"web","failed_digests":"sha256:x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1700000000, 0)
			s := &Store{Dir: t.TempDir(), Now: func() time.Time { return now }}
			path := filepath.Join(s.Dir, "web.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			// A reader reports it and leaves it where it is.
			st, err := s.Load("web")
			var cerr *CorruptError
			if !errors.Is(err, ErrCorrupt) || !errors.As(err, &cerr) {
				t.Fatalf("Load = %+v, %v; want a *CorruptError", st, err)
			}
			if cerr.Path != path || cerr.SetAside != "" {
				t.Errorf("Load: CorruptError{Path: %s, SetAside: %s}; want {%s, \"\"}", cerr.Path, cerr.SetAside, path)
			}
			if b, err := os.ReadFile(path); err != nil || string(b) != tt.content {
				t.Errorf("after Load the file holds %q, %v; want it untouched", b, err)
			}
			// Update, holding the lock, sets it aside.
			changed := false
			_, err = s.Update(t.Context(), "web", func(*State) error { changed = true; return nil })
			if !errors.As(err, &cerr) {
				t.Fatalf("Update = %v; want a *CorruptError", err)
			}
			if changed {
				t.Error("Update called change on a corrupt state")
			}
			wantAside := path + ".corrupt-1700000000"
			if cerr.Path != path || cerr.SetAside != wantAside {
				t.Errorf("Update: CorruptError{Path: %s, SetAside: %s}; want {%s, %s}", cerr.Path, cerr.SetAside, path, wantAside)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			b, rerr := os.ReadFile(wantAside)
			if rerr != nil || string(b) != tt.content {
				t.Errorf("set-aside file = %q, %v; want %q", b, rerr, tt.content)
			}
			// Never silently reset: the next Load says there is no state.
			if _, err := s.Load("web"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("second Load = %v; want fs.ErrNotExist", err)
			}
		})
	}
}

func TestCorruptSetAsideTwiceInOneSecond(t *testing.T) {
	now := time.Unix(1700000000, 0)
	s := &Store{Dir: t.TempDir(), Now: func() time.Time { return now }}
	path := filepath.Join(s.Dir, "web.json")
	for i, want := range []string{path + ".corrupt-1700000000", path + ".corrupt-1700000000-1"} {
		if err := os.WriteFile(path, []byte("torn"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := s.Update(t.Context(), "web", func(*State) error { return nil })
		var cerr *CorruptError
		if !errors.As(err, &cerr) || cerr.SetAside != want {
			t.Errorf("Update %d = %v; want set aside at %s", i, err, want)
		}
	}
}

func TestListKeepsGoing(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	for _, name := range []string{"c", "a"} {
		if err := s.save(&State{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "b.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	states, err := s.List()
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("List error = %v; want ErrCorrupt", err)
	}
	if len(states) != 2 || states[0].Name != "a" || states[1].Name != "c" {
		t.Errorf("List = %v; want a, c", states)
	}
}

func TestListMissingDir(t *testing.T) {
	s := &Store{Dir: filepath.Join(t.TempDir(), "none")}
	states, err := s.List()
	if err != nil || len(states) != 0 {
		t.Errorf("List = %v, %v; want none, nil", states, err)
	}
}

func TestLockInProcess(t *testing.T) {
	s := &Store{Dir: t.TempDir(), LockTimeout: 50 * time.Millisecond}
	unlock, err := s.lock(t.Context(), "web")
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	start := time.Now()
	if _, err := s.lock(t.Context(), "web"); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Lock = %v; want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Lock took %v; want about 50ms", d)
	}
	// Another service's lock is independent.
	unlockAPI, err := s.lock(t.Context(), "api")
	if err != nil {
		t.Fatalf("Lock(api): %v", err)
	}
	unlockAPI()

	// A canceled ctx ends the wait with its cause.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.lock(ctx, "web"); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock with canceled ctx = %v; want context.Canceled", err)
	}

	// A waiter gets the lock once it is released.
	got := make(chan error, 1)
	go func() {
		s := &Store{Dir: s.Dir, LockTimeout: 10 * time.Second}
		u, err := s.lock(t.Context(), "web")
		if err == nil {
			u()
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	unlock()
	unlock() // a second call does nothing
	select {
	case err := <-got:
		if err != nil {
			t.Errorf("waiting Lock = %v; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiting Lock did not return within 10s of the unlock")
	}
}

// TestLockHelperProcess is not a test: TestLockAcrossProcesses runs the
// test binary again with LAZYPOD_LOCK_HELPER=DIR to hold the lock of
// service "web" in a second process until its stdin closes.
func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv("LAZYPOD_LOCK_HELPER")
	if dir == "" {
		t.Skip("helper process for TestLockAcrossProcesses")
	}
	s := &Store{Dir: dir}
	unlock, err := s.lock(context.Background(), "web")
	if err != nil {
		t.Fatalf("helper Lock: %v", err)
	}
	os.Stdout.WriteString("locked\n")
	io.Copy(io.Discard, os.Stdin)
	unlock()
}

func TestLockAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), "LAZYPOD_LOCK_HELPER="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper said %q, %v; want \"locked\"", line, err)
	}

	s := &Store{Dir: dir, LockTimeout: 100 * time.Millisecond}
	if _, err := s.lock(ctx, "web"); !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock while the helper holds it = %v; want ErrLocked", err)
	}
	stdin.Close() // the helper unlocks and exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	s.LockTimeout = 10 * time.Second
	unlock, err := s.lock(ctx, "web")
	if err != nil {
		t.Fatalf("Lock after the helper exited = %v; want nil", err)
	}
	unlock()
}

// FuzzLoad feeds Load arbitrary state files, seeded with the real ones in
// testdata. Load must either return a state that survives a save and Load
// unchanged, or report ErrCorrupt and leave the file alone.
func FuzzLoad(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.json")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata: %v", err)
	}
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.TrimSuffix(filepath.Base(path), ".json"), b)
	}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		if checkName(name) != nil {
			return
		}
		s := &Store{Dir: t.TempDir()}
		path := filepath.Join(s.Dir, name+".json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Skip("name not usable as a file name here")
		}
		st, err := s.Load(name)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Load = %v; want nil or ErrCorrupt", err)
			}
			if b, serr := os.ReadFile(path); serr != nil || string(b) != string(data) {
				t.Fatalf("Load changed the corrupt file at %s: %v", path, serr)
			}
			return
		}
		if st.Name != name {
			t.Fatalf("Load name = %q; want %q", st.Name, name)
		}
		if err := s.save(st); err != nil {
			t.Fatalf("Save: %v", err)
		}
		again, err := s.Load(name)
		if err != nil {
			t.Fatalf("Load after Save: %v", err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(st)) {
			t.Fatalf("Load after Save = %+v; want %+v", again, st)
		}
	})
}

// normalize makes states compare equal across a JSON round trip: an empty
// and a nil list, and times in different locations.
func normalize(st *State) *State {
	c := *st
	if len(c.FailedDigests) == 0 {
		c.FailedDigests = nil
	}
	if len(c.FailedImageIDs) == 0 {
		c.FailedImageIDs = nil
	}
	c.LastCheck = c.LastCheck.UTC()
	return &c
}
