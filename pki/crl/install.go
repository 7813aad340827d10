package crl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkiagent/pkiagent/internal/persist"
)

// InstalledDir is the directory, inside Config.Dir, of installed CRL
// bundles (gNSI certz uploads): InstalledDir/BUNDLE/SHA.crl, one DER file
// per CRL, named by the first 16 bytes of its SHA-256.
//
// Each file is a source file://PATH that the manager polls like any other:
// verified against the trusted CAs, indexed, kept in the master list, with
// the same events, state and alarms. Installed sources are added to every
// SetSources and survive restarts (the directory is their record).
const InstalledDir = "installed"

// Install verifies every CRL of a bundle (DER or PEM) against the trusted
// CAs as a fetched CRL is verified and, if all pass, makes them the CRLs
// of bundle, replacing those it had; it returns once they answer
// IsRevoked. An empty crls removes the bundle. prev is the bundle's
// previous CRLs (DER), to reinstall for an undo. On error nothing changed.
// Calls for one bundle must not overlap.
func (m *Manager) Install(ctx context.Context, bundle string, crls [][]byte) (prev [][]byte, err error) {
	if m.cfg.Dir == "" {
		return nil, errors.New("installing CRLs needs a CRL state directory")
	}
	if !bundleNameOK(bundle) {
		return nil, fmt.Errorf("CRL bundle name %q: 1 to 64 letters, digits, dots, underscores or hyphens", bundle)
	}
	m.mu.Lock()
	trusted := m.trusted
	m.mu.Unlock()
	files := map[string][]byte{}
	for i, b := range crls {
		der, err := Decode(b)
		if err != nil {
			return nil, fmt.Errorf("CRL %d: %w", i, err)
		}
		if _, _, err := ParseVerified(der, trusted); err != nil {
			return nil, fmt.Errorf("CRL %d: %w", i, err)
		}
		sum := sha256.Sum256(der)
		files[hex.EncodeToString(sum[:16])+".crl"] = der
	}
	dir, err := filepath.Abs(filepath.Join(m.cfg.Dir, InstalledDir, bundle))
	if err != nil {
		return nil, err
	}
	old, prev, err := readBundle(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("CRL bundle %s: %w", bundle, err)
	}
	var added []string
	for name, der := range files {
		if _, ok := old[name]; ok {
			continue
		}
		if err := persist.WriteFileAtomic(filepath.Join(dir, name), der, 0o600); err != nil {
			m.removeFiles(dir, added)
			return nil, fmt.Errorf("CRL bundle %s: %w", bundle, err)
		}
		added = append(added, name)
	}
	var removed []string
	for name := range old {
		if _, keep := files[name]; !keep {
			removed = append(removed, name)
		}
	}
	// The sources change as the files do: new URLs are added, the URLs of
	// removed files leave the index when the loop applies the change.
	m.retarget(dir, removed, len(added) == 0) // else Refresh below applies it
	var errs []error
	for _, name := range added {
		if err := m.Refresh(ctx, fileURL(filepath.Join(dir, name))); err != nil {
			errs = append(errs, fmt.Errorf("CRL %s: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		m.removeFiles(dir, added)
		m.retarget(dir, nil, true)
		return nil, fmt.Errorf("CRL bundle %s not installed: %w", bundle, err)
	}
	m.removeFiles(dir, removed)
	if len(files) == 0 {
		os.Remove(dir)
	}
	m.log.Info("CRL bundle installed", "bundle", bundle, "crls", len(files), "added", len(added), "removed", len(removed))
	return prev, nil
}

func bundleNameOK(s string) bool {
	if s == "" || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// readBundle returns the CRL files of a bundle directory and their DER.
func readBundle(dir string) (map[string]bool, [][]byte, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read CRL bundle %s: %w", dir, err)
	}
	names := map[string]bool{}
	var ders [][]byte
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".crl") || !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, nil, fmt.Errorf("read CRL bundle %s: %w", dir, err)
		}
		names[e.Name()] = true
		ders = append(ders, b)
	}
	return names, ders, nil
}

func (m *Manager) removeFiles(dir string, names []string) {
	for _, n := range names {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.log.Error("installed CRL file not removed", "file", filepath.Join(dir, n), "err", err)
		}
	}
	persist.SyncDir(dir)
}

// retarget recomputes the installed sources from the directory, leaving
// out the files of dir named in drop, and hands the loop the new set
// (waking it when wake is set).
func (m *Manager) retarget(dir string, drop []string, wake bool) {
	skip := map[string]bool{}
	for _, n := range drop {
		skip[fileURL(filepath.Join(dir, n))] = true
	}
	root, _ := filepath.Abs(filepath.Join(m.cfg.Dir, InstalledDir))
	prefix := fileURL(root) + "/"
	m.mu.Lock()
	desired := make(map[string]Source, len(m.desired))
	for u, s := range m.desired {
		if !strings.HasPrefix(u, prefix) {
			desired[u] = s
		}
	}
	for _, s := range m.installedSources() {
		if !skip[s.URL] {
			desired[s.URL] = s
		}
	}
	m.desired, m.desiredNew = desired, true
	m.mu.Unlock()
	if wake {
		m.wake()
	}
}

// installedSources lists the sources of every installed bundle.
func (m *Manager) installedSources() []Source {
	if m.cfg.Dir == "" {
		return nil
	}
	root, err := filepath.Abs(filepath.Join(m.cfg.Dir, InstalledDir))
	if err != nil {
		return nil
	}
	paths, err := filepath.Glob(filepath.Join(root, "*", "*.crl"))
	if err != nil {
		m.log.Error("installed CRL bundles not listed", "dir", root, "err", err)
		return nil
	}
	sort.Strings(paths)
	out := make([]Source, 0, len(paths))
	for _, p := range paths {
		out = append(out, Source{URL: fileURL(p)}.withDefaults())
	}
	return out
}

func fileURL(path string) string { return (&url.URL{Scheme: "file", Path: path}).String() }

// cleanTemp removes the temporary files a crash inside a write left in
// the CRL state directory (the master list) and in every installed
// bundle, before the manager writes anything.
func cleanTemp(dir string) error {
	dirs := []string{dir}
	ents, err := os.ReadDir(filepath.Join(dir, InstalledDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("list installed CRL bundles: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(dir, InstalledDir, e.Name()))
		}
	}
	for _, d := range dirs {
		if err := persist.CleanTemp(d); err != nil {
			return fmt.Errorf("CRL state directory: %w", err)
		}
	}
	// Before persist.TempPattern, the master list's temporary file was
	// .master-RANDOM.tmp: remove those an older agent left too.
	old, _ := filepath.Glob(filepath.Join(dir, ".master-*.tmp"))
	for _, p := range old {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("CRL state directory: remove leftover temporary file %s: %w", p, err)
		}
	}
	return nil
}
