package updater

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// fakeRegistry serves digests by reference.
type fakeRegistry struct {
	digests map[string]string
	err     error
	calls   int
}

func (r *fakeRegistry) Digest(ctx context.Context, ref string) (string, error) {
	r.calls++
	if r.err != nil {
		return "", r.err
	}
	d, ok := r.digests[ref]
	if !ok {
		return "", errors.New("manifest unknown")
	}
	return d, nil
}

// fakeImages is local storage: images by ID, tags naming IDs, and what a
// pull of a reference brings.
type fakeImages struct {
	images  map[string]Image  // by ID
	tags    map[string]string // reference -> ID
	remote  map[string]Image  // what Pull(ref) stores
	pullErr error
	pulls   []string
}

func (f *fakeImages) Image(ctx context.Context, nameOrID string) (Image, bool, error) {
	if id, ok := f.tags[nameOrID]; ok {
		nameOrID = id
	}
	img, ok := f.images[nameOrID]
	return img, ok, nil
}

func (f *fakeImages) Pull(ctx context.Context, ref string) error {
	f.pulls = append(f.pulls, ref)
	if f.pullErr != nil {
		return f.pullErr
	}
	img, ok := f.remote[ref]
	if !ok {
		return errors.New("manifest unknown")
	}
	if f.images == nil {
		f.images = map[string]Image{}
	}
	if f.tags == nil {
		f.tags = map[string]string{}
	}
	f.images[img.ID] = img
	f.tags[ref] = img.ID
	return nil
}

const (
	ref     = "docker.io/library/web:latest"
	dList1  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	dPlat1  = "sha256:1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dList2  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	dList3  = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	id1     = "1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d"
	id2     = "2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d"
	id3     = "3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d"
	repoRef = "docker.io/library/web"
)

var (
	img1 = Image{ID: id1, Digests: []string{repoRef + "@" + dList1, repoRef + "@" + dPlat1}}
	img2 = Image{ID: id2, Digests: []string{repoRef + "@" + dList2}}
	img3 = Image{ID: id3, Digests: []string{repoRef + "@" + dList3}}
)

func TestCheckRegistry(t *testing.T) {
	now := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	running := State{Name: "web", Image: ref, ImageID: id1, Digest: dList1}
	tests := []struct {
		name      string
		state     State
		registry  string // digest the registry serves for ref
		regErr    error
		local     map[string]Image
		tags      map[string]string
		remote    Image // what a pull brings
		pullErr   error
		dryRun    bool
		want      Result
		wantErr   string
		wantPulls int
		wantState State // with LastCheck etc. filled in by the test
	}{
		{
			name: "same list digest", state: running, registry: dList1,
			local: map[string]Image{id1: img1}, want: ResultFalse,
			wantState: running,
		},
		{
			name: "same platform digest", state: running, registry: dPlat1,
			local: map[string]Image{id1: img1}, want: ResultFalse,
			wantState: running,
		},
		{
			name: "bare digests", state: running, registry: dPlat1,
			local: map[string]Image{id1: {ID: id1, Digests: []string{dList1, dPlat1}}}, want: ResultFalse,
			wantState: running,
		},
		{
			name: "new digest pulled", state: running, registry: dList2,
			local: map[string]Image{id1: img1}, remote: img2, want: ResultPending, wantPulls: 1,
			wantState: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, PendingImageID: id2, PendingDigest: dList2},
		},
		{
			name: "new digest dry run", state: running, registry: dList2, dryRun: true,
			local: map[string]Image{id1: img1}, remote: img2, want: ResultPending,
			wantState: running,
		},
		{
			name:  "failed digest not pulled",
			state: State{Name: "web", Image: ref, ImageID: id1, FailedDigests: []string{dList3}}, registry: dList3,
			local: map[string]Image{id1: img1}, remote: img3, want: ResultFailed,
			wantState: State{Name: "web", Image: ref, ImageID: id1, FailedDigests: []string{dList3}},
		},
		{
			name:  "new digest after failed one",
			state: State{Name: "web", Image: ref, ImageID: id1, FailedDigests: []string{dList3}}, registry: dList2,
			local: map[string]Image{id1: img1}, remote: img2, want: ResultPending, wantPulls: 1,
			wantState: State{Name: "web", Image: ref, ImageID: id1, FailedDigests: []string{dList3}, PendingImageID: id2, PendingDigest: dList2},
		},
		{
			name:  "already pending",
			state: State{Name: "web", Image: ref, ImageID: id1, PendingImageID: id2, PendingDigest: dList2}, registry: dList2,
			local: map[string]Image{id1: img1, id2: img2}, want: ResultPending,
			wantState: State{Name: "web", Image: ref, ImageID: id1, PendingImageID: id2, PendingDigest: dList2},
		},
		{
			name:  "pending image removed is pulled again",
			state: State{Name: "web", Image: ref, ImageID: id1, PendingImageID: id2, PendingDigest: dList2}, registry: dList2,
			local: map[string]Image{id1: img1}, remote: img2, want: ResultPending, wantPulls: 1,
			wantState: State{Name: "web", Image: ref, ImageID: id1, PendingImageID: id2, PendingDigest: dList2},
		},
		{
			name:  "newer than pending replaces it",
			state: State{Name: "web", Image: ref, ImageID: id1, PendingImageID: id2, PendingDigest: dList2}, registry: dList3,
			local: map[string]Image{id1: img1, id2: img2}, remote: img3, want: ResultPending, wantPulls: 1,
			wantState: State{Name: "web", Image: ref, ImageID: id1, PendingImageID: id3, PendingDigest: dList3},
		},
		{
			name:  "registry back to current clears pending",
			state: State{Name: "web", Image: ref, ImageID: id1, PendingImageID: id2, PendingDigest: dList2}, registry: dList1,
			local: map[string]Image{id1: img1, id2: img2}, want: ResultFalse,
			wantState: State{Name: "web", Image: ref, ImageID: id1},
		},
		{
			name:  "nothing deployed and nothing local",
			state: State{Name: "web", Image: ref}, registry: dList1, want: ResultFalse,
			wantState: State{Name: "web", Image: ref},
		},
		{
			name:  "nothing deployed, compares the local image",
			state: State{Name: "web", Image: ref}, registry: dList1,
			local: map[string]Image{id1: img1}, tags: map[string]string{ref: id1}, want: ResultFalse,
			wantState: State{Name: "web", Image: ref},
		},
		{
			name: "pull gives the running image", state: running, registry: dList2,
			local: map[string]Image{id1: img1}, remote: img1, want: ResultFalse, wantPulls: 1,
			wantState: running,
		},
		{
			name: "registry moved between check and pull", state: running, registry: dList2,
			local: map[string]Image{id1: img1}, remote: img3, want: ResultPending, wantPulls: 1,
			wantState: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, PendingImageID: id3, PendingDigest: dList3},
		},
		{
			name: "registry down", state: running, regErr: errors.New("dial tcp 127.0.0.1:5000: connection refused"),
			local:   map[string]Image{id1: img1},
			wantErr: `checking registry for "docker.io/library/web:latest": dial tcp 127.0.0.1:5000: connection refused`,
			wantState: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1,
				LastCheckError: `checking registry for "docker.io/library/web:latest": dial tcp 127.0.0.1:5000: connection refused`},
		},
		{
			name: "pull interrupted records nothing pending", state: running, registry: dList2,
			local: map[string]Image{id1: img1}, pullErr: errors.New("unexpected EOF"), wantPulls: 1,
			wantErr: `pulling "docker.io/library/web:latest": unexpected EOF`,
			wantState: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1,
				LastCheckError: `pulling "docker.io/library/web:latest": unexpected EOF`},
		},
		{
			name: "pending failed by ID is dropped, not pulled again",
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1,
				PendingImageID: id2, PendingDigest: dList2, FailedDigests: []string{id2}},
			registry: dList2, local: map[string]Image{id1: img1, id2: img2}, remote: img2, want: ResultFailed,
			wantState: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, FailedDigests: []string{id2}},
		},
		{
			name: "pending failed by digest is dropped",
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1,
				PendingImageID: id2, PendingDigest: dList2, FailedDigests: []string{dList2}},
			registry: dList2, local: map[string]Image{id1: img1, id2: img2}, remote: img2, want: ResultFailed,
			wantState: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, FailedDigests: []string{dList2}},
		},
		{
			name: "pending failed dry run reports failed and changes nothing", dryRun: true,
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1,
				PendingImageID: id2, PendingDigest: dList2, FailedDigests: []string{id2}},
			registry: dList2, local: map[string]Image{id1: img1, id2: img2}, remote: img2, want: ResultFailed,
			wantState: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1,
				PendingImageID: id2, PendingDigest: dList2, FailedDigests: []string{id2}},
		},
		{
			name: "pending failed, registry moved on to a new image",
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1,
				PendingImageID: id2, PendingDigest: dList2, FailedDigests: []string{dList2, id2}},
			registry: dList3, local: map[string]Image{id1: img1, id2: img2}, remote: img3, want: ResultPending, wantPulls: 1,
			wantState: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1,
				PendingImageID: id3, PendingDigest: dList3, FailedDigests: []string{dList2, id2}},
		},
		{
			name: "failed digest given as repo@digest",
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1,
				FailedDigests: []string{repoRef + "@" + dList3}},
			registry: dList3, local: map[string]Image{id1: img1}, remote: img3, want: ResultFailed,
			wantState: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1,
				FailedDigests: []string{repoRef + "@" + dList3}},
		},
		{
			name: "pending failed by FailedImageIDs is dropped",
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1,
				PendingImageID: id2, PendingDigest: dList2, FailedImageIDs: []string{id2}},
			registry: dList2, local: map[string]Image{id1: img1, id2: img2}, remote: img2, want: ResultFailed,
			wantState: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, FailedImageIDs: []string{id2}},
		},
		{
			name:     "pull brings an image failed by FailedImageIDs",
			state:    State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, FailedImageIDs: []string{id3}},
			registry: dList2, local: map[string]Image{id1: img1}, remote: img3, want: ResultFailed, wantPulls: 1,
			wantState: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, FailedImageIDs: []string{id3}},
		},
		{
			name:     "pull brings a failed image ID under a new digest",
			state:    State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, FailedDigests: []string{id3}},
			registry: dList2, local: map[string]Image{id1: img1}, remote: img3, want: ResultFailed, wantPulls: 1,
			wantState: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, FailedDigests: []string{id3}},
		},
		{
			name: "failed pending dropped even when the registry is down",
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1,
				PendingImageID: id2, PendingDigest: dList2, FailedDigests: []string{dList2}},
			regErr: errors.New("connection refused"), local: map[string]Image{id1: img1, id2: img2},
			wantErr: "connection refused",
			wantState: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, FailedDigests: []string{dList2},
				LastCheckError: `checking registry for "docker.io/library/web:latest": connection refused`},
		},
		{
			name:  "unqualified reference",
			state: State{Name: "web", Image: "web:latest", ImageID: id1}, registry: dList2,
			wantErr: `e.g. docker.io/library/web:latest`,
			wantState: State{Name: "web", Image: "web:latest", ImageID: id1,
				LastCheckError: `checking image "web:latest": image reference not fully qualified for the registry policy: name its registry, e.g. docker.io/library/web:latest`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := &fakeRegistry{digests: map[string]string{ref: tt.registry}, err: tt.regErr}
			local := map[string]Image{}
			for k, v := range tt.local {
				local[k] = v
			}
			imgs := &fakeImages{images: local, tags: tt.tags, remote: map[string]Image{ref: tt.remote}, pullErr: tt.pullErr}
			c := &Checker{Registry: reg, Images: imgs, DryRun: tt.dryRun, Now: func() time.Time { return now }}
			st := tt.state
			st.FailedDigests = append([]string(nil), tt.state.FailedDigests...)
			got, err := c.Check(t.Context(), &st, spec.PolicyRegistry)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Check = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
			} else if err != nil || got != tt.want {
				t.Fatalf("Check = %q, %v; want %q, nil", got, err, tt.want)
			}
			if len(imgs.pulls) != tt.wantPulls {
				t.Errorf("pulls = %v; want %d", imgs.pulls, tt.wantPulls)
			}
			want := tt.wantState
			if !tt.dryRun {
				want.Policy = spec.PolicyRegistry
				want.LastCheck = now
				if tt.wantErr == "" {
					want.LastUpdateResult = tt.want
				}
			}
			if len(want.FailedDigests) == 0 {
				want.FailedDigests = nil
			}
			if len(st.FailedDigests) == 0 {
				st.FailedDigests = nil
			}
			if !reflect.DeepEqual(normalize(&st), normalize(&want)) {
				t.Errorf("state after Check = %+v; want %+v", st, want)
			}
		})
	}
}

func TestCheckLocal(t *testing.T) {
	now := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	const local = "localhost/web:dev"
	built2 := Image{ID: id2} // built locally: no digests
	tests := []struct {
		name      string
		state     State
		tagged    string // the ID the reference names locally; "" for none
		dryRun    bool
		want      Result
		wantState State
	}{
		{
			name: "same ID", state: State{Name: "web", Image: local, ImageID: id1}, tagged: id1,
			want: ResultFalse, wantState: State{Name: "web", Image: local, ImageID: id1},
		},
		{
			name: "rebuilt", state: State{Name: "web", Image: local, ImageID: id1}, tagged: id2,
			want: ResultPending, wantState: State{Name: "web", Image: local, ImageID: id1, PendingImageID: id2},
		},
		{
			name: "pulled by hand has a digest", state: State{Name: "web", Image: local, ImageID: id1}, tagged: id3,
			want: ResultPending, wantState: State{Name: "web", Image: local, ImageID: id1, PendingImageID: id3, PendingDigest: dList3},
		},
		{
			name: "rebuilt dry run", state: State{Name: "web", Image: local, ImageID: id1}, tagged: id2, dryRun: true,
			want: ResultPending, wantState: State{Name: "web", Image: local, ImageID: id1},
		},
		{
			name:   "failed image ID",
			state:  State{Name: "web", Image: local, ImageID: id1, FailedDigests: []string{id2}},
			tagged: id2, want: ResultFailed,
			wantState: State{Name: "web", Image: local, ImageID: id1, FailedDigests: []string{id2}},
		},
		{
			name:   "failed digest",
			state:  State{Name: "web", Image: local, ImageID: id1, FailedDigests: []string{dList3}},
			tagged: id3, want: ResultFailed,
			wantState: State{Name: "web", Image: local, ImageID: id1, FailedDigests: []string{dList3}},
		},
		{
			name: "tag removed", state: State{Name: "web", Image: local, ImageID: id1},
			want: ResultFalse, wantState: State{Name: "web", Image: local, ImageID: id1},
		},
		{
			name: "nothing deployed", state: State{Name: "web", Image: local}, tagged: id2,
			want: ResultFalse, wantState: State{Name: "web", Image: local},
		},
		{
			name:   "back to current clears pending",
			state:  State{Name: "web", Image: local, ImageID: id1, PendingImageID: id2},
			tagged: id1, want: ResultFalse,
			wantState: State{Name: "web", Image: local, ImageID: id1},
		},
		{
			name:   "pending failed by ID is dropped",
			state:  State{Name: "web", Image: local, ImageID: id1, PendingImageID: id2, FailedDigests: []string{id2}},
			tagged: id2, want: ResultFailed,
			wantState: State{Name: "web", Image: local, ImageID: id1, FailedDigests: []string{id2}},
		},
		{
			name: "pending failed by its digest is dropped",
			state: State{Name: "web", Image: local, ImageID: id1, PendingImageID: id3, PendingDigest: dList3,
				FailedDigests: []string{dList3}},
			tagged: id3, want: ResultFailed,
			wantState: State{Name: "web", Image: local, ImageID: id1, FailedDigests: []string{dList3}},
		},
		{
			name: "pending failed dry run reports failed and changes nothing", dryRun: true,
			state:  State{Name: "web", Image: local, ImageID: id1, PendingImageID: id2, FailedDigests: []string{id2}},
			tagged: id2, want: ResultFailed,
			wantState: State{Name: "web", Image: local, ImageID: id1, PendingImageID: id2, FailedDigests: []string{id2}},
		},
		{
			name:   "image failed by FailedImageIDs",
			state:  State{Name: "web", Image: local, ImageID: id1, FailedDigests: []string{dList6}, FailedImageIDs: []string{id3}},
			tagged: id3, want: ResultFailed,
			wantState: State{Name: "web", Image: local, ImageID: id1, FailedDigests: []string{dList6}, FailedImageIDs: []string{id3}},
		},
		{
			name: "good pending kept when the tag moves to a failed image",
			state: State{Name: "web", Image: local, ImageID: id1, PendingImageID: id2,
				FailedDigests: []string{dList3}},
			tagged: id3, want: ResultFailed,
			wantState: State{Name: "web", Image: local, ImageID: id1, PendingImageID: id2, FailedDigests: []string{dList3}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imgs := &fakeImages{images: map[string]Image{id1: img1, id2: built2, id3: img3}, tags: map[string]string{}}
			if tt.tagged != "" {
				imgs.tags[local] = tt.tagged
			} else {
				imgs.tags[local] = "none"
			}
			reg := &fakeRegistry{err: errors.New("the local policy must not ask the registry")}
			c := &Checker{Registry: reg, Images: imgs, DryRun: tt.dryRun, Now: func() time.Time { return now }}
			st := tt.state
			got, err := c.Check(t.Context(), &st, spec.PolicyLocal)
			if err != nil || got != tt.want {
				t.Fatalf("Check = %q, %v; want %q, nil", got, err, tt.want)
			}
			if reg.calls != 0 || len(imgs.pulls) != 0 {
				t.Errorf("registry calls = %d, pulls = %v; want none", reg.calls, imgs.pulls)
			}
			want := tt.wantState
			if !tt.dryRun {
				want.Policy = spec.PolicyLocal
				want.LastCheck = now
				want.LastUpdateResult = tt.want
			}
			if !reflect.DeepEqual(st, want) {
				t.Errorf("state after Check = %+v; want %+v", st, want)
			}
		})
	}
}

func TestCheckDisabledAndInvalid(t *testing.T) {
	tests := []struct {
		name    string
		policy  spec.Policy
		want    Result
		wantErr string
	}{
		{name: "disabled", policy: spec.PolicyDisabled, want: ResultFalse},
		{name: "zero", policy: "", want: ResultFalse},
		{name: "invalid", policy: "daily", wantErr: `policy "daily": valid policies are`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := &fakeRegistry{}
			imgs := &fakeImages{}
			c := &Checker{Registry: reg, Images: imgs}
			st := State{Name: "web", Image: ref, ImageID: id1}
			orig := st
			got, err := c.Check(t.Context(), &st, tt.policy)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Check = %q, %v; want error %q", got, err, tt.wantErr)
				}
			} else if err != nil || got != tt.want {
				t.Fatalf("Check = %q, %v; want %q, nil", got, err, tt.want)
			}
			if reg.calls != 0 || len(imgs.pulls) != 0 {
				t.Errorf("registry calls = %d, pulls = %v; want none", reg.calls, imgs.pulls)
			}
			if !reflect.DeepEqual(st, orig) {
				t.Errorf("state = %+v; want unchanged %+v", st, orig)
			}
		})
	}
}

// hangingImages is local storage whose pull never ends by itself.
type hangingImages struct{ fakeImages }

func (h *hangingImages) Pull(ctx context.Context, ref string) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestCheckTimeout: a pull that hangs ends at the check's timeout, so a
// timer's lazypod update cannot hang forever (review risk 3).
func TestCheckTimeout(t *testing.T) {
	imgs := &hangingImages{fakeImages{images: map[string]Image{id1: img1}, tags: map[string]string{ref: id1}}}
	c := &Checker{
		Registry: &fakeRegistry{digests: map[string]string{ref: dList2}},
		Images:   imgs,
		Timeout:  50 * time.Millisecond,
	}
	st := &State{Name: "web", Image: ref, ImageID: id1, Digest: dList1}
	done := make(chan error, 1)
	go func() {
		_, err := c.Check(context.Background(), st, spec.PolicyRegistry)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "check timed out after 50ms") {
			t.Fatalf("Check = %v; want it to say the check timed out after 50ms", err)
		}
		if !strings.Contains(st.LastCheckError, "timed out") {
			t.Errorf("LastCheckError = %q; want the timeout recorded", st.LastCheckError)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Check with a hanging pull did not end within 10s")
	}
}
