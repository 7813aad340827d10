package persist

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Modes of private state: keys, certificates, secrets and the directories
// holding them are their owner's only.
const (
	PrivateFile = 0o600
	PrivateDir  = 0o700
)

// WriteFileAtomic writes data to path so that after a crash the file holds
// either the old or the new content: temp file in the same directory
// (named by TempPattern, mode perm), fsync, rename, fsync the directory.
// On error the temporary file is removed; a crash before the rename leaves
// it, and the store that owns the directory removes it with CleanTemp when
// it opens. Errors name the path, never the data.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, TempPattern(filepath.Base(path)))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	// CreateTemp uses 0600 already; set perm explicitly against odd umasks.
	if err := tmp.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// Remove deletes path and fsyncs its directory, so the removal survives a
// crash. A missing file is an error matching fs.ErrNotExist.
func Remove(path string) error {
	if err := os.Remove(path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// RemoveIfExists is Remove where a missing file is no error.
func RemoveIfExists(path string) error {
	if err := Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Rename moves from to to (in the same directory, replacing it) and fsyncs
// the directory. A missing from is an error matching fs.ErrNotExist.
func Rename(from, to string) error {
	if _, err := os.Lstat(from); err != nil {
		return err
	}
	if err := os.Rename(from, to); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(to))
}

// SyncDir fsyncs a directory so a rename or removal in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	err = d.Sync()
	cerr := d.Close()
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	if cerr != nil {
		return fmt.Errorf("sync directory %s: %w", dir, cerr)
	}
	return nil
}

// MkdirPrivate creates dir (mode 0700) and its parents, and tightens an
// existing dir that is group or world accessible.
func MkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, PrivateDir); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, PrivateDir); err != nil {
			return fmt.Errorf("restrict directory %s to its owner: %w", dir, err)
		}
	}
	return nil
}

// TempPattern is the os.CreateTemp pattern of the temporary file of a
// crash-safe write of the file name: ".NAME.tmp-RANDOM". Every durable
// writer of the agent names its temporary files so, and IsTemp knows them.
func TempPattern(name string) string { return "." + name + ".tmp-*" }

// IsTemp reports whether a directory entry is a temporary file of a
// crash-safe write (in flight, or left by a crash), which listings skip.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}

// CleanTemp removes the temporary files (IsTemp) a crash left in dir,
// not below it; a missing dir holds none. A store calls it when it opens
// its directory, before any write of its own can be in flight.
func CleanTemp(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove leftover temporary files in %s: %w", dir, err)
	}
	removed := false
	for _, e := range entries {
		if !e.Type().IsRegular() || !IsTemp(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove leftover temporary file %s: %w", filepath.Join(dir, e.Name()), err)
		}
		removed = true
	}
	if removed {
		return SyncDir(dir)
	}
	return nil
}

// List returns, sorted, the names (without ext) of the regular files in
// dir whose names end in ext, leaving out temporary files (IsTemp).
func List(dir, ext string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ext)
		if !ok || !e.Type().IsRegular() || IsTemp(e.Name()) {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}
