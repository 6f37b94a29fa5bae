package updater

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

const (
	dList6 = "sha256:6666666666666666666666666666666666666666666666666666666666666666"
	id6    = "6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d"
	idX    = "7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e" // built locally, no digest
)

var img6 = Image{ID: id6, Digests: []string{repoRef + "@" + dList6}}

// stateEqual reports whether two states are equal, a nil and an empty
// FailedDigests alike.
func stateEqual(a, b State) bool {
	return reflect.DeepEqual(normalize(&a), normalize(&b))
}

func TestDeployed(t *testing.T) {
	const cold = 1500 * time.Millisecond
	tests := []struct {
		name        string
		state       State
		id, digest  string
		want        State // LastColdStart is set by the test
		wantChanged bool
	}{
		{
			name:  "first deploy",
			state: State{Name: "web", Image: ref},
			id:    id1, digest: dList1,
			want: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1},
		},
		{
			name:  "pending becomes current",
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, PendingImageID: id2, PendingDigest: dList2, LastUpdateResult: ResultPending},
			id:    id2, digest: dList2,
			want: State{Name: "web", Image: ref, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1,
				LastUpdateResult: ResultTrue},
			wantChanged: true,
		},
		{
			name:  "pending deployed without a digest takes the pending digest",
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, PendingImageID: id2, PendingDigest: dList2},
			id:    id2,
			want: State{Name: "web", Image: ref, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1,
				LastUpdateResult: ResultTrue},
			wantChanged: true,
		},
		{
			name: "previous replaced",
			state: State{Name: "web", Image: ref, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1,
				PendingImageID: id3, PendingDigest: dList3},
			id: id3, digest: dList3,
			want: State{Name: "web", Image: ref, ImageID: id3, Digest: dList3, PreviousImageID: id2, PreviousDigest: dList2,
				LastUpdateResult: ResultTrue},
			wantChanged: true,
		},
		{
			name: "redeploy of current changes only the cold start",
			state: State{Name: "web", Image: ref, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1,
				PendingImageID: id3, PendingDigest: dList3, LastUpdateResult: ResultRolledBack, FailedDigests: []string{dList6}},
			id: id2, digest: dList6,
			want: State{Name: "web", Image: ref, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1,
				PendingImageID: id3, PendingDigest: dList3, LastUpdateResult: ResultRolledBack, FailedDigests: []string{dList6}},
		},
		{
			name:  "local image without digest swapped in, not pending",
			state: State{Name: "web", Image: "localhost/web:dev", ImageID: id1, LastUpdateResult: ResultFalse},
			id:    idX,
			want: State{Name: "web", Image: "localhost/web:dev", ImageID: idX, PreviousImageID: id1,
				LastUpdateResult: ResultFalse},
			wantChanged: true,
		},
		{
			name:  "previous image deployed again swaps the two",
			state: State{Name: "web", Image: ref, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1},
			id:    id1, digest: dList1,
			want:        State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, PreviousImageID: id2, PreviousDigest: dList2},
			wantChanged: true,
		},
		{
			name:  "deploy after a rollback left nothing current keeps previous empty",
			state: State{Name: "web", Image: ref, FailedDigests: []string{dList2}, FailedImageIDs: []string{id2}, LastUpdateResult: ResultRolledBack},
			id:    id6, digest: dList6,
			want: State{Name: "web", Image: ref, ImageID: id6, Digest: dList6, FailedDigests: []string{dList2}, FailedImageIDs: []string{id2},
				LastUpdateResult: ResultRolledBack},
		},
		{
			name:  "empty image ID records only the cold start",
			state: State{Name: "web", Image: ref, ImageID: id1, PendingImageID: id2},
			want:  State{Name: "web", Image: ref, ImageID: id1, PendingImageID: id2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.state
			changed := st.Deployed(tt.id, tt.digest, cold)
			want := tt.want
			want.LastColdStart = Duration(cold)
			if changed != tt.wantChanged {
				t.Errorf("Deployed(%.4s, %.11s) = %v; want %v", tt.id, tt.digest, changed, tt.wantChanged)
			}
			if !stateEqual(st, want) {
				t.Errorf("state after Deployed = %+v; want %+v", st, want)
			}
		})
	}
}

func TestFailed(t *testing.T) {
	tests := []struct {
		name        string
		state       State
		id, digest  string
		want        State
		wantChanged bool
	}{
		{
			name:  "pending fails at start, current still runs",
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, PendingImageID: id3, PendingDigest: dList3},
			id:    id3, digest: dList3,
			want: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, FailedDigests: []string{dList3}, FailedImageIDs: []string{id3},
				LastUpdateResult: ResultRolledBack},
		},
		{
			name:  "pending fails, digest taken from the state",
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, PendingImageID: id3, PendingDigest: dList3},
			id:    id3,
			want: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, FailedDigests: []string{dList3}, FailedImageIDs: []string{id3},
				LastUpdateResult: ResultRolledBack},
		},
		{
			name:  "image without a digest recorded by ID",
			state: State{Name: "web", Image: "localhost/web:dev", ImageID: id1, PendingImageID: idX},
			id:    idX,
			want: State{Name: "web", Image: "localhost/web:dev", ImageID: id1, FailedDigests: []string{idX},
				LastUpdateResult: ResultRolledBack},
		},
		{
			name:  "repo@digest recorded bare",
			state: State{Name: "web", Image: ref, ImageID: id1},
			id:    id3, digest: repoRef + "@" + dList3,
			want: State{Name: "web", Image: ref, ImageID: id1, FailedDigests: []string{dList3}, FailedImageIDs: []string{id3},
				LastUpdateResult: ResultRolledBack},
		},
		{
			name:  "no duplicates",
			state: State{Name: "web", Image: ref, ImageID: id1, FailedDigests: []string{dList6, id3, repoRef + "@" + dList3}},
			id:    id3, digest: dList3,
			want: State{Name: "web", Image: ref, ImageID: id1, FailedDigests: []string{dList6, id3, repoRef + "@" + dList3},
				FailedImageIDs: []string{id3}, LastUpdateResult: ResultRolledBack},
		},
		{
			name: "no duplicate IDs",
			state: State{Name: "web", Image: ref, ImageID: id1, FailedDigests: []string{dList6},
				FailedImageIDs: []string{id3}},
			id: id3, digest: dList3,
			want: State{Name: "web", Image: ref, ImageID: id1, FailedDigests: []string{dList6, dList3},
				FailedImageIDs: []string{id3}, LastUpdateResult: ResultRolledBack},
		},
		{
			name: "current exits within the rollback window: previous becomes current",
			state: State{Name: "web", Image: ref, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1,
				LastUpdateResult: ResultTrue},
			id: id2, digest: dList2,
			want: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, FailedDigests: []string{dList2}, FailedImageIDs: []string{id2},
				LastUpdateResult: ResultRolledBack},
			wantChanged: true,
		},
		{
			name:  "current fails with no previous: nothing current",
			state: State{Name: "web", Image: ref, ImageID: id2, Digest: dList2},
			id:    id2,
			want: State{Name: "web", Image: ref, FailedDigests: []string{dList2}, FailedImageIDs: []string{id2},
				LastUpdateResult: ResultRolledBack},
		},
		{
			name:  "previous fails: no rollback to it",
			state: State{Name: "web", Image: ref, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1},
			id:    id1,
			want: State{Name: "web", Image: ref, ImageID: id2, Digest: dList2, FailedDigests: []string{dList1}, FailedImageIDs: []string{id1},
				LastUpdateResult: ResultRolledBack},
			wantChanged: true,
		},
		{
			name: "local swap fails, pending of another image kept",
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, PreviousImageID: id6, PreviousDigest: dList6,
				PendingImageID: id2, PendingDigest: dList2},
			id: idX,
			want: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, PreviousImageID: id6, PreviousDigest: dList6,
				PendingImageID: id2, PendingDigest: dList2, FailedDigests: []string{idX}, LastUpdateResult: ResultRolledBack},
		},
		{
			name:  "pending with the failed digest under another ID cleared",
			state: State{Name: "web", Image: ref, ImageID: id1, PendingImageID: id2, PendingDigest: dList3},
			id:    id3, digest: dList3,
			want: State{Name: "web", Image: ref, ImageID: id1, FailedDigests: []string{dList3}, FailedImageIDs: []string{id3},
				LastUpdateResult: ResultRolledBack},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.state
			st.FailedDigests = append([]string(nil), tt.state.FailedDigests...)
			changed := st.Failed(tt.id, tt.digest)
			if changed != tt.wantChanged {
				t.Errorf("Failed(%.4s, %.11s) = %v; want %v", tt.id, tt.digest, changed, tt.wantChanged)
			}
			if !stateEqual(st, tt.want) {
				t.Errorf("state after Failed = %+v; want %+v", st, tt.want)
			}
		})
	}
}

func TestRollback(t *testing.T) {
	tests := []struct {
		name    string
		state   State
		want    State
		wantErr string // with ErrNoPrevious
	}{
		{
			name:  "to previous",
			state: State{Name: "web", Image: ref, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1, LastUpdateResult: ResultTrue},
			want: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, FailedDigests: []string{dList2}, FailedImageIDs: []string{id2},
				LastUpdateResult: ResultRolledBack},
		},
		{
			name: "a pending image is dropped: the person asked for the previous one",
			state: State{Name: "web", Image: ref, ImageID: idX, PreviousImageID: id1, PreviousDigest: dList1,
				PendingImageID: id6, PendingDigest: dList6},
			want: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1,
				FailedDigests: []string{idX}, LastUpdateResult: ResultRolledBack},
		},
		{
			name:    "no previous",
			state:   State{Name: "web", Image: ref, ImageID: id2, Digest: dList2, LastUpdateResult: ResultRolledBack},
			want:    State{Name: "web", Image: ref, ImageID: id2, Digest: dList2, LastUpdateResult: ResultRolledBack},
			wantErr: `rolling back "web": no previous image to roll back to: it runs image 2d2d2d2d2d2d and keeps no other; push or tag the image you want as docker.io/library/web:latest and run lazypod update`,
		},
		{
			name:    "nothing ran",
			state:   State{Name: "web", Image: ref},
			want:    State{Name: "web", Image: ref},
			wantErr: `rolling back "web": no previous image to roll back to: it has run no image yet`,
		},
		{
			name:  "nothing current, previous kept",
			state: State{Name: "web", Image: ref, PreviousImageID: id1, PreviousDigest: dList1},
			want:  State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, LastUpdateResult: ResultRolledBack},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.state
			err := st.Rollback()
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNoPrevious) || err.Error() != tt.wantErr {
					t.Errorf("Rollback = %v; want %s (ErrNoPrevious)", err, tt.wantErr)
				}
			} else if err != nil {
				t.Errorf("Rollback = %v; want nil", err)
			}
			if !stateEqual(st, tt.want) {
				t.Errorf("state after Rollback = %+v; want %+v", st, tt.want)
			}
		})
	}
}

// existsIn returns an exists function for Choose over the IDs given.
func existsIn(ids ...string) func(string) bool {
	return func(id string) bool {
		for _, x := range ids {
			if x == id {
				return true
			}
		}
		return false
	}
}

func TestChoose(t *testing.T) {
	running := State{Name: "web", Image: ref, ImageID: id1, Digest: dList1}
	swapped := State{Name: "web", Image: ref, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1}
	withPending := func(st State, id, digest string, failed ...string) State {
		st.PendingImageID, st.PendingDigest, st.FailedDigests = id, digest, failed
		return st
	}
	tests := []struct {
		name    string
		state   State
		policy  spec.Policy
		localID string
		exists  []string
		want    Choice
		wantErr string // with ErrNoImage
	}{
		// 1. disabled
		{name: "disabled follows the reference", state: withPending(running, id2, dList2), policy: spec.PolicyDisabled,
			localID: id2, exists: []string{id1, id2}, want: Choice{}},
		{name: "zero policy is disabled", state: withPending(running, id2, dList2), policy: "",
			exists: []string{id1, id2}, want: Choice{}},
		{name: "invalid policy", state: running, policy: "daily", wantErr: `policy "daily": valid policies are`},
		// 2. nothing deployed
		{name: "nothing deployed runs the reference", state: State{Name: "web", Image: ref}, policy: spec.PolicyRegistry,
			want: Choice{}},
		{name: "nothing deployed, reference local", state: State{Name: "web", Image: ref}, policy: spec.PolicyLocal,
			localID: id1, exists: []string{id1}, want: Choice{}},
		{name: "nothing deployed, reference names a failed image",
			state:  State{Name: "web", Image: ref, FailedDigests: []string{dList2}, FailedImageIDs: []string{id2}},
			policy: spec.PolicyRegistry, localID: id2, exists: []string{id2},
			wantErr: `no image to run for "web": docker.io/library/web:latest names image 2d2d2d2d2d2d, which failed before, and no other image has run: push a fixed image and run lazypod update, or podman pull a good one`},
		// 3. pending
		{name: "pending with current as fallback", state: withPending(running, id2, dList2), policy: spec.PolicyRegistry,
			localID: id2, exists: []string{id1, id2}, want: Choice{Image: id2, Fallback: id1}},
		{name: "pending under local policy", state: withPending(running, idX, ""), policy: spec.PolicyLocal,
			localID: idX, exists: []string{id1, idX}, want: Choice{Image: idX, Fallback: id1}},
		{name: "pending failed by digest", state: withPending(running, id3, dList3, dList3), policy: spec.PolicyRegistry,
			localID: id3, exists: []string{id1, id3}, want: Choice{Image: id1}},
		{name: "pending failed by ID", state: withPending(running, id3, dList3, id3), policy: spec.PolicyRegistry,
			localID: id3, exists: []string{id1, id3}, want: Choice{Image: id1}},
		{name: "pending gone", state: withPending(running, id2, dList2), policy: spec.PolicyRegistry,
			exists: []string{id1}, want: Choice{Image: id1}},
		{name: "pending is current", state: withPending(running, id1, dList1), policy: spec.PolicyRegistry,
			exists: []string{id1}, want: Choice{Image: id1}},
		{name: "pending, current gone: previous is the fallback", state: withPending(swapped, id3, dList3), policy: spec.PolicyRegistry,
			localID: id3, exists: []string{id1, id3}, want: Choice{Image: id3, Fallback: id1}},
		{name: "pending, current gone, previous failed: local image is the fallback",
			state:  withPending(swapped, id3, dList3, dList1),
			policy: spec.PolicyRegistry, localID: id6, exists: []string{id1, id3, id6}, want: Choice{Image: id3, Fallback: id6}},
		{name: "pending, nothing to fall back to", state: withPending(running, id3, dList3), policy: spec.PolicyRegistry,
			localID: id3, exists: []string{id3}, want: Choice{Image: id3}},
		// 4. local policy
		{name: "local image rebuilt", state: running, policy: spec.PolicyLocal,
			localID: idX, exists: []string{id1, idX}, want: Choice{Image: idX, Fallback: id1}},
		{name: "local image failed by ID", state: withPending(running, "", "", idX), policy: spec.PolicyLocal,
			localID: idX, exists: []string{id1, idX}, want: Choice{Image: id1}},
		{name: "local image with a digest failed by ID", policy: spec.PolicyLocal,
			state:   State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, FailedDigests: []string{dList3}, FailedImageIDs: []string{id3}},
			localID: id3, exists: []string{id1, id3}, want: Choice{Image: id1}},
		{name: "pending failed by FailedImageIDs", policy: spec.PolicyRegistry,
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, PendingImageID: id3, PendingDigest: dList6,
				FailedImageIDs: []string{id3}},
			localID: id3, exists: []string{id1, id3}, want: Choice{Image: id1}},
		{name: "local image failed by the digest the state knows", state: withPending(running, id3, dList3, dList3), policy: spec.PolicyLocal,
			localID: id3, exists: []string{id1, id3}, want: Choice{Image: id1}},
		{name: "local image is current", state: running, policy: spec.PolicyLocal,
			localID: id1, exists: []string{id1}, want: Choice{Image: id1}},
		{name: "local image retagged to previous", state: swapped, policy: spec.PolicyLocal,
			localID: id1, exists: []string{id1, id2}, want: Choice{Image: id1, Fallback: id2}},
		{name: "local image, current gone: previous is the fallback", state: swapped, policy: spec.PolicyLocal,
			localID: idX, exists: []string{id1, idX}, want: Choice{Image: idX, Fallback: id1}},
		{name: "registry policy ignores a newer local image", state: running, policy: spec.PolicyRegistry,
			localID: id2, exists: []string{id1, id2}, want: Choice{Image: id1}},
		// 5. current
		{name: "current", state: running, policy: spec.PolicyRegistry,
			localID: id1, exists: []string{id1}, want: Choice{Image: id1}},
		{name: "current with previous: no fallback", state: swapped, policy: spec.PolicyRegistry,
			localID: id2, exists: []string{id1, id2}, want: Choice{Image: id2}},
		// 6. current gone
		{name: "current gone, reference local", state: running, policy: spec.PolicyRegistry,
			localID: id2, exists: []string{id2}, want: Choice{Image: id2}},
		// 7. nothing to run
		{name: "current gone, reference not local", state: running, policy: spec.PolicyRegistry,
			wantErr: `no image to run for "web": image 1d1d1d1d1d1d it ran is gone from local storage and docker.io/library/web:latest is not there either: run lazypod update, or podman pull (or build) docker.io/library/web:latest`},
		{name: "current gone, reference names a failed image",
			state:  State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, FailedDigests: []string{dList3}, FailedImageIDs: []string{id3}},
			policy: spec.PolicyRegistry, localID: id3, exists: []string{id3},
			wantErr: `no image to run for "web": image 1d1d1d1d1d1d it ran is gone from local storage and docker.io/library/web:latest names image 3d3d3d3d3d3d, which failed before: push a fixed image and run lazypod update, or podman pull a good one`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.state
			before := st
			got, err := st.Choose(tt.policy, tt.localID, existsIn(tt.exists...))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Choose = %+v, %v; want error %s", got, err, tt.wantErr)
				}
				if strings.HasPrefix(tt.wantErr, "no image") && !errors.Is(err, ErrNoImage) {
					t.Errorf("Choose = %v; want ErrNoImage", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Choose = %+v, %v; want %+v, nil", got, err, tt.want)
			}
			if !reflect.DeepEqual(st, before) {
				t.Errorf("Choose changed the state to %+v", st)
			}
		})
	}
}

// A chosen image that fails is never chosen again, whatever digest the
// caller knew for it.
func TestChooseAfterFailed(t *testing.T) {
	tests := []struct {
		name    string
		policy  spec.Policy
		state   State
		localID string
		digest  string // what the caller passes to Failed
	}{
		{name: "registry pending", policy: spec.PolicyRegistry, localID: id3, digest: dList3,
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, PendingImageID: id3, PendingDigest: dList3}},
		{name: "registry pending, caller knows no digest", policy: spec.PolicyRegistry, localID: id3,
			state: State{Name: "web", Image: ref, ImageID: id1, Digest: dList1, PendingImageID: id3, PendingDigest: dList3}},
		{name: "local pending built locally", policy: spec.PolicyLocal, localID: idX,
			state: State{Name: "web", Image: "localhost/web:dev", ImageID: id1, PendingImageID: idX}},
		{name: "local pending pulled by hand", policy: spec.PolicyLocal, localID: id3, digest: dList3,
			state: State{Name: "web", Image: "localhost/web:dev", ImageID: id1, PendingImageID: id3, PendingDigest: dList3}},
		{name: "local image pulled by hand, never pending", policy: spec.PolicyLocal, localID: id3, digest: dList3,
			state: State{Name: "web", Image: "localhost/web:dev", ImageID: id1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.state
			exists := existsIn(id1, tt.localID)
			first, err := st.Choose(tt.policy, tt.localID, exists)
			if err != nil || first != (Choice{Image: tt.localID, Fallback: id1}) {
				t.Fatalf("first Choose = %+v, %v; want %s with fallback %s", first, err, tt.localID, id1)
			}
			st.Failed(first.Image, tt.digest)
			st.Deployed(first.Fallback, "", time.Second)
			got, err := st.Choose(tt.policy, tt.localID, exists)
			if err != nil || got != (Choice{Image: id1}) {
				t.Errorf("Choose after Failed = %+v, %v; want %s, no fallback", got, err, id1)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	base := State{Name: "web", Image: ref, Policy: spec.PolicyRegistry, ImageID: id1, Digest: dList1,
		LastCheck: t0, LastUpdateResult: ResultFalse, LastColdStart: Duration(time.Second)}
	with := func(st State, f func(*State)) State {
		f(&st)
		return st
	}
	checkedPending := with(base, func(st *State) {
		st.LastCheck, st.PendingImageID, st.PendingDigest, st.LastUpdateResult = t1, id2, dList2, ResultPending
	})
	tests := []struct {
		name    string
		base    State
		cur     State
		checked State
		want    State
	}{
		{
			name: "nothing happened meanwhile: the check's result is taken",
			base: base, cur: base, checked: checkedPending,
			want: checkedPending,
		},
		{
			name: "policy changed by the check",
			base: base, cur: base, checked: with(checkedPending, func(st *State) { st.Policy = spec.PolicyLocal }),
			want: with(checkedPending, func(st *State) { st.Policy = spec.PolicyLocal }),
		},
		{
			name: "check cleared a pending image",
			base: with(base, func(st *State) { st.PendingImageID, st.PendingDigest = id2, dList2 }),
			cur:  with(base, func(st *State) { st.PendingImageID, st.PendingDigest = id2, dList2 }),
			checked: with(base, func(st *State) {
				st.LastCheck = t1
			}),
			want: with(base, func(st *State) { st.LastCheck = t1 }),
		},
		{
			name: "redeploy meanwhile: cold start kept",
			base: base, cur: with(base, func(st *State) { st.LastColdStart = Duration(2 * time.Second) }), checked: checkedPending,
			want: with(checkedPending, func(st *State) { st.LastColdStart = Duration(2 * time.Second) }),
		},
		{
			name: "check failed: result of a rollback meanwhile kept",
			base: base,
			cur: with(base, func(st *State) {
				st.FailedDigests, st.LastUpdateResult = []string{idX}, ResultRolledBack
			}),
			checked: with(base, func(st *State) { st.LastCheck, st.LastCheckError = t1, "registry down" }),
			want: with(base, func(st *State) {
				st.FailedDigests, st.LastUpdateResult = []string{idX}, ResultRolledBack
				st.LastCheck, st.LastCheckError = t1, "registry down"
			}),
		},
		{
			name: "swapped meanwhile: only the check time and error",
			base: base,
			cur: with(base, func(st *State) {
				st.ImageID, st.Digest, st.PreviousImageID, st.PreviousDigest = id6, dList6, id1, dList1
				st.LastUpdateResult, st.LastCheckError = ResultTrue, "old error"
			}),
			checked: checkedPending,
			want: with(base, func(st *State) {
				st.ImageID, st.Digest, st.PreviousImageID, st.PreviousDigest = id6, dList6, id1, dList1
				st.LastUpdateResult = ResultTrue
				st.LastCheck = t1
			}),
		},
		{
			name: "pending failed meanwhile: not pending again",
			base: with(base, func(st *State) { st.PendingImageID, st.PendingDigest = id2, dList2 }),
			cur: with(base, func(st *State) {
				st.FailedDigests, st.FailedImageIDs, st.LastUpdateResult = []string{dList2}, []string{id2}, ResultRolledBack
			}),
			checked: checkedPending,
			want: with(base, func(st *State) {
				st.FailedDigests, st.FailedImageIDs, st.LastUpdateResult = []string{dList2}, []string{id2}, ResultRolledBack
				st.LastCheck = t1
			}),
		},
		{
			name: "image the check made pending failed meanwhile by digest",
			base: base,
			cur: with(base, func(st *State) {
				st.FailedDigests, st.LastUpdateResult = []string{dList2}, ResultRolledBack
			}),
			checked: checkedPending,
			want: with(base, func(st *State) {
				st.FailedDigests, st.LastUpdateResult = []string{dList2}, ResultRolledBack
				st.LastCheck = t1
			}),
		},
		{
			name: "image the check made pending failed meanwhile by ID",
			base: base,
			cur: with(base, func(st *State) {
				st.FailedDigests = []string{id2}
			}),
			checked: checkedPending,
			want: with(base, func(st *State) {
				st.FailedDigests = []string{id2}
				st.LastCheck = t1
			}),
		},
		{
			name: "rolled back meanwhile: only the check time",
			base: with(base, func(st *State) {
				st.ImageID, st.Digest, st.PreviousImageID, st.PreviousDigest = id6, dList6, id1, dList1
			}),
			cur: with(base, func(st *State) {
				st.FailedDigests, st.FailedImageIDs, st.LastUpdateResult = []string{dList6}, []string{id6}, ResultRolledBack
			}),
			checked: with(checkedPending, func(st *State) {
				st.ImageID, st.Digest, st.PreviousImageID, st.PreviousDigest = id6, dList6, id1, dList1
			}),
			want: with(base, func(st *State) {
				st.FailedDigests, st.FailedImageIDs, st.LastUpdateResult = []string{dList6}, []string{id6}, ResultRolledBack
				st.LastCheck = t1
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur, b, checked := tt.cur, tt.base, tt.checked
			Merge(&cur, &b, &checked)
			if !stateEqual(cur, tt.want) {
				t.Errorf("Merge = %+v; want %+v", cur, tt.want)
			}
			if !stateEqual(b, tt.base) || !stateEqual(checked, tt.checked) {
				t.Errorf("Merge changed base or checked")
			}
		})
	}
}

// TestSwapSequence follows one service through the life the e2e tests give
// it: v1 deployed, v2 pending, v2 deployed, v3 pending, v3 failed, v3
// reported failed by the next check, v6 pending, v6 deployed.
func TestSwapSequence(t *testing.T) {
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	reg := &fakeRegistry{digests: map[string]string{}}
	imgs := &fakeImages{remote: map[string]Image{}}
	c := &Checker{Registry: reg, Images: imgs, Now: func() time.Time { return now }}
	st := &State{Name: "web", Image: ref}

	// publish makes the registry serve img under ref.
	publish := func(img Image, digest string) {
		reg.digests[ref] = digest
		imgs.remote[ref] = img
	}
	exists := func(id string) bool { _, ok := imgs.images[id]; return ok }
	choose := func(t *testing.T, want Choice) {
		t.Helper()
		got, err := st.Choose(spec.PolicyRegistry, imgs.tags[ref], exists)
		if err != nil || got != want {
			t.Fatalf("Choose = %+v, %v; want %+v, nil", got, err, want)
		}
	}
	check := func(t *testing.T, want Result) {
		t.Helper()
		work := *st // as lazypod update does: check a copy, merge under the lock
		work.FailedDigests = append([]string(nil), st.FailedDigests...)
		got, err := c.Check(t.Context(), &work, spec.PolicyRegistry)
		if err != nil || got != want {
			t.Fatalf("Check = %q, %v; want %q, nil", got, err, want)
		}
		base := *st
		Merge(st, &base, &work)
	}
	deployed := func(t *testing.T, id, digest string, wantChanged bool) {
		t.Helper()
		if got := st.Deployed(id, digest, time.Second); got != wantChanged {
			t.Fatalf("Deployed(%.4s) = %v; want %v", id, got, wantChanged)
		}
	}
	want := func(t *testing.T, w State) {
		t.Helper()
		w.Name, w.Image = "web", ref
		if w.LastCheck.IsZero() && !st.LastCheck.IsZero() {
			w.LastCheck = now
		}
		if w.LastColdStart == 0 {
			w.LastColdStart = Duration(time.Second)
		}
		if !stateEqual(*st, w) {
			t.Fatalf("state = %+v; want %+v", *st, w)
		}
	}

	t.Run("v1 deployed", func(t *testing.T) {
		publish(img1, dList1)
		choose(t, Choice{}) // nothing deployed: the launcher pulls the reference
		if err := imgs.Pull(t.Context(), ref); err != nil {
			t.Fatal(err)
		}
		deployed(t, id1, dList1, false)
		want(t, State{ImageID: id1, Digest: dList1})
		check(t, ResultFalse)
		want(t, State{Policy: spec.PolicyRegistry, ImageID: id1, Digest: dList1, LastUpdateResult: ResultFalse})
	})
	t.Run("v2 pending", func(t *testing.T) {
		publish(img2, dList2)
		check(t, ResultPending)
		want(t, State{Policy: spec.PolicyRegistry, ImageID: id1, Digest: dList1, PendingImageID: id2, PendingDigest: dList2,
			LastUpdateResult: ResultPending})
		choose(t, Choice{Image: id2, Fallback: id1})
	})
	t.Run("v2 deployed", func(t *testing.T) {
		deployed(t, id2, dList2, true)
		want(t, State{Policy: spec.PolicyRegistry, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1,
			LastUpdateResult: ResultTrue})
		choose(t, Choice{Image: id2})
	})
	t.Run("v3 pending", func(t *testing.T) {
		publish(img3, dList3)
		check(t, ResultPending)
		want(t, State{Policy: spec.PolicyRegistry, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1,
			PendingImageID: id3, PendingDigest: dList3, LastUpdateResult: ResultPending})
		choose(t, Choice{Image: id3, Fallback: id2})
	})
	t.Run("v3 failed", func(t *testing.T) {
		// The launcher: v3 not ready, Failed(v3), then v2 ready as the fallback.
		if st.Failed(id3, dList3) {
			t.Error("Failed(v3) = true; want false: the previous image is still v1")
		}
		deployed(t, id2, dList2, false)
		want(t, State{Policy: spec.PolicyRegistry, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1,
			FailedDigests: []string{dList3}, FailedImageIDs: []string{id3}, LastUpdateResult: ResultRolledBack})
		choose(t, Choice{Image: id2}) // v3, still in local storage, is not chosen again
	})
	t.Run("v3 check reports failed", func(t *testing.T) {
		pulls := len(imgs.pulls)
		check(t, ResultFailed)
		if len(imgs.pulls) != pulls {
			t.Errorf("pulls = %v; want no new pull of a failed digest", imgs.pulls)
		}
		want(t, State{Policy: spec.PolicyRegistry, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1,
			FailedDigests: []string{dList3}, FailedImageIDs: []string{id3}, LastUpdateResult: ResultFailed})
		choose(t, Choice{Image: id2})
	})
	t.Run("v6 pending", func(t *testing.T) {
		publish(img6, dList6)
		check(t, ResultPending)
		want(t, State{Policy: spec.PolicyRegistry, ImageID: id2, Digest: dList2, PreviousImageID: id1, PreviousDigest: dList1,
			PendingImageID: id6, PendingDigest: dList6, FailedDigests: []string{dList3}, FailedImageIDs: []string{id3}, LastUpdateResult: ResultPending})
		choose(t, Choice{Image: id6, Fallback: id2})
	})
	t.Run("v6 deployed", func(t *testing.T) {
		deployed(t, id6, dList6, true)
		want(t, State{Policy: spec.PolicyRegistry, ImageID: id6, Digest: dList6, PreviousImageID: id2, PreviousDigest: dList2,
			FailedDigests: []string{dList3}, FailedImageIDs: []string{id3}, LastUpdateResult: ResultTrue})
		choose(t, Choice{Image: id6})
	})
	t.Run("rollback to v2", func(t *testing.T) {
		if err := st.Rollback(); err != nil {
			t.Fatalf("Rollback = %v; want nil", err)
		}
		want(t, State{Policy: spec.PolicyRegistry, ImageID: id2, Digest: dList2,
			FailedDigests: []string{dList3, dList6}, FailedImageIDs: []string{id3, id6}, LastUpdateResult: ResultRolledBack})
		choose(t, Choice{Image: id2})
		if err := st.Rollback(); !errors.Is(err, ErrNoPrevious) {
			t.Errorf("second Rollback = %v; want ErrNoPrevious", err)
		}
		check(t, ResultFailed) // the registry still serves v6
	})
}
