package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data, mode perm: it writes a temporary file in
// path's directory, syncs it, renames it over path and syncs the
// directory, so that the new content survives a crash once Write returns.
// On failure path is untouched and the temporary file removed.
func Write(path string, data []byte, perm os.FileMode) error {
	return replace(path, data, perm, true)
}

// Replace is Write without waiting for the disk: readers see the old
// content or the new, but a crash may leave either, or an empty file. It
// is for files that describe a running process and need not survive it,
// written where a sync would cost too much (a cold start's path).
func Replace(path string, data []byte, perm os.FileMode) error {
	return replace(path, data, perm, false)
}

func replace(path string, data []byte, perm os.FileMode, durable bool) (err error) {
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
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if durable {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if !durable {
		return nil
	}
	return SyncDir(dir)
}

// SyncDir makes the renames done in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
