package keystore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/pkiagent/pkiagent/internal/persist"
)

// Reservations claims key names for the writes in flight of a file-backed
// store (a Generate, a Rename), so two of them never write one name and
// neither overwrites a key on disk. The zero value is ready to use; it is
// safe for concurrent use.
type Reservations struct {
	mu      sync.Mutex
	pending map[string]bool
}

// Reserve claims name, whose key lives at path. It fails with ErrExists
// when the file exists or the name is claimed already.
func (r *Reservations) Reserve(name, path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending[name] {
		return fmt.Errorf("key %s: %w (being generated)", name, ErrExists)
	}
	switch _, err := os.Lstat(path); {
	case err == nil:
		return fmt.Errorf("key %s: %w", name, ErrExists)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("key %s: check for an existing key: %w", name, err)
	}
	if r.pending == nil {
		r.pending = map[string]bool{}
	}
	r.pending[name] = true
	return nil
}

// Release gives back a name Reserve claimed.
func (r *Reservations) Release(name string) {
	r.mu.Lock()
	delete(r.pending, name)
	r.mu.Unlock()
}

// List returns, sorted, the key names of the files in dir ending in ext,
// leaving out temporary files and names ValidateName refuses.
func List(dir, ext string) ([]string, error) {
	all, err := persist.List(dir, ext)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	names := all[:0]
	for _, n := range all {
		if ValidateName(n) == nil {
			names = append(names, n)
		}
	}
	return names, nil
}
