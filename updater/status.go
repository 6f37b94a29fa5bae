package updater

import (
	"time"

	"github.com/lazypod/lazypod/internal/spec"
)

// Status is what lazypod status shows of a service, with the JSON keys of
// its --format json.
type Status struct {
	Name             string      `json:"name"`
	State            string      `json:"state"` // idle, starting, ready or stopping
	Container        string      `json:"container"`
	Image            string      `json:"image"`
	Policy           spec.Policy `json:"policy"`
	ImageID          string      `json:"image_id"`
	Digest           string      `json:"digest"`
	PreviousImageID  string      `json:"previous_image_id"`
	PendingImageID   string      `json:"pending_image_id"`
	FailedDigests    []string    `json:"failed_digests"`
	LastCheck        *time.Time  `json:"last_check"`
	LastCheckError   string      `json:"last_check_error,omitempty"`
	LastUpdateResult Result      `json:"last_update_result"`
	LastColdStart    string      `json:"last_cold_start"` // e.g. "1.234s"; "" if none
}

// Status returns what lazypod status shows of the service whose state is
// st: its state, and whether its serve runs now (else idle).
func (s *Store) Status(st *State) Status {
	r := Status{
		Name: st.Name, State: "idle", Container: st.ContainerName(), Image: st.Image, Policy: st.Policy,
		ImageID: st.ImageID, Digest: st.Digest, PreviousImageID: st.PreviousImageID,
		PendingImageID: st.PendingImageID, FailedDigests: st.FailedDigests,
		LastCheckError: st.LastCheckError, LastUpdateResult: st.LastUpdateResult,
	}
	if r.Policy == "" {
		r.Policy = spec.PolicyDisabled
	}
	if r.FailedDigests == nil {
		r.FailedDigests = []string{}
	}
	if !st.LastCheck.IsZero() {
		t := st.LastCheck
		r.LastCheck = &t
	}
	if st.LastColdStart != 0 {
		r.LastColdStart = time.Duration(st.LastColdStart).Round(time.Millisecond).String()
	}
	if l, ok := s.Live(st.Name); ok && l.State != "stopped" {
		r.State = l.State
	}
	return r
}

// Report is one line of lazypod update's report, with the JSON keys of its
// --format json.
type Report struct {
	Name      string      `json:"name"`
	Container string      `json:"container"`
	Image     string      `json:"image"`
	Policy    spec.Policy `json:"policy"`
	Updated   string      `json:"updated"` // a Result
	Error     string      `json:"error,omitempty"`
}

// NewReport reports the check of the service whose state was st before
// it: result r, or err. As podman auto-update does, it reports a swap or
// a rollback recorded since the last check (every check overwrites the
// last result) when the check found nothing new.
func NewReport(st *State, r Result, err error) Report {
	rep := Report{Name: st.Name, Container: st.ContainerName(), Image: st.Image, Policy: st.Policy, Updated: string(r)}
	if rep.Policy == "" {
		rep.Policy = spec.PolicyDisabled
	}
	switch {
	case err != nil:
		rep.Updated, rep.Error = string(ResultFailed), err.Error()
	case r == ResultFalse && (st.LastUpdateResult == ResultTrue || st.LastUpdateResult == ResultRolledBack):
		rep.Updated = string(st.LastUpdateResult)
	}
	return rep
}
