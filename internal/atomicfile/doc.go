// Package atomicfile replaces a file so that a reader, or a crash, sees
// either the old content or the new one, never a mix: the state files of
// package updater and the unit files lazypod writes go through it.
//
// Typical use:
//
//	if err := atomicfile.Write("/var/lib/lazypod/web.json", data, 0o600); err != nil {
//		return fmt.Errorf("saving state: %w", err)
//	}
//	// A file that only describes the running process: no sync.
//	err = atomicfile.Replace("/var/lib/lazypod/web.serve", live, 0o600)
//
// Limits: the directory must exist; a file is replaced by rename(2), so a
// symbolic link at path is replaced, not followed.
package atomicfile
