package updater

// Result is the outcome of an update for one service, as the UPDATED
// column of "lazypod update" shows it.
type Result string

const (
	// ResultFalse: no update available, or nothing to check.
	ResultFalse Result = "false"
	// ResultPending: a newer image is available; after a check that is
	// not a dry run it is pulled and waits for the service's next start.
	ResultPending Result = "pending"
	// ResultTrue: the pending image was swapped in and passed its probe.
	ResultTrue Result = "true"
	// ResultRolledBack: the pending image was swapped in, failed, and the
	// previous image runs again.
	ResultRolledBack Result = "rolled back"
	// ResultFailed: the image available is one that failed before; it is
	// neither pulled nor deployed.
	ResultFailed Result = "failed"
)
