// Package atomicfile writes and removes key files crash-safely: a reader
// sees the old content or the new, never a torn file.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkiagent/pkiagent/internal/persist"
)

// File and directory modes of key material.
const (
	FileMode = 0o600
	DirMode  = 0o700
)

// MkdirAll creates dir (mode 0700) and its parents, and tightens an existing
// dir that is group or world accessible.
func MkdirAll(dir string) error {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("stat key directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("key directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, DirMode); err != nil {
			return fmt.Errorf("restrict key directory to its owner: %w", err)
		}
	}
	return nil
}

// Write stores data as path, mode 0600: a temporary file in the same
// directory is written and fsynced, renamed over path, and the directory is
// fsynced. On error nothing is left behind. Errors never contain data.
func Write(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, persist.TempPattern(base))
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp already uses 0600; make it explicit against odd umasks.
	if err = f.Chmod(FileMode); err != nil {
		return fmt.Errorf("set mode of temporary file: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write temporary file: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync temporary file: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close temporary file: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	if err = SyncDir(dir); err != nil {
		// The file is in place; only its durability is in doubt.
		return err
	}
	return nil
}

// Remove deletes path and fsyncs its directory. A missing file is reported
// with an error matching fs.ErrNotExist.
func Remove(path string) error {
	if err := os.Remove(path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a directory so that renames and removals in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory for fsync: %w", err)
	}
	err = d.Sync()
	cerr := d.Close()
	if err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("close directory: %w", cerr)
	}
	return nil
}

// IsTemp reports whether a directory entry is a temporary file of Write
// (in flight, or left by a crash), which listings must skip. Write names
// its temporary files as every durable writer of the agent does
// (persist.TempPattern).
func IsTemp(name string) bool { return persist.IsTemp(name) }

// CleanTemp removes the temporary files a crash left in dir. Call it when
// opening a store, before any Write can be in flight.
func CleanTemp(dir string) error {
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("list key directory: %w", err)
	}
	return persist.CleanTemp(dir)
}

// List returns, sorted, the names (without ext) of the regular files in dir
// that end in ext and pass valid, leaving out temporary files of Write.
func List(dir, ext string, valid func(string) error) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list keys in %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ext)
		if !ok || !e.Type().IsRegular() || IsTemp(e.Name()) || valid(n) != nil {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Rename moves from to to (in the same directory) and fsyncs the
// directory. A missing from is reported with an error matching
// fs.ErrNotExist.
func Rename(from, to string) error {
	if _, err := os.Lstat(from); err != nil {
		return err
	}
	if err := os.Rename(from, to); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(to))
}
