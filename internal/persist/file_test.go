package persist

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k.key")
	if err := WriteFileAtomic(p, []byte("one"), PrivateFile); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("two"), PrivateFile); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "two" {
		t.Fatalf("content = %q, %v; want two", got, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != PrivateFile {
		t.Errorf("mode %o, want %o", fi.Mode().Perm(), PrivateFile)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries, want 1 (no temporary file left)", len(entries))
	}
}

// Readers racing a writer see one whole version or the other.
func TestWriteFileAtomicNeverTorn(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	a, b := bytes.Repeat([]byte("a"), 64<<10), bytes.Repeat([]byte("b"), 64<<10)
	if err := WriteFileAtomic(p, a, PrivateFile); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			data := a
			if i%2 == 1 {
				data = b
			}
			if err := WriteFileAtomic(p, data, PrivateFile); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 200 {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
			t.Fatalf("read a torn file of %d bytes", len(got))
		}
	}
	close(stop)
	wg.Wait()
}

func TestWriteFileAtomicFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	// The target is a directory: the rename fails after the temp file is
	// written; the temp file must be gone, and the error holds no data.
	p := filepath.Join(dir, "target")
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteFileAtomic(p, []byte("secret"), PrivateFile)
	if err == nil {
		t.Fatal("a write over a non-empty directory succeeded")
	}
	if bytes.Contains([]byte(err.Error()), []byte("secret")) {
		t.Errorf("error %q quotes the data", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries after a failed write, want 1", len(entries))
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "k"), []byte("x"), PrivateFile); err == nil {
		t.Error("a write into a missing directory succeeded")
	}
}

func TestRemoveRenameAndList(t *testing.T) {
	dir := t.TempDir()
	if err := Remove(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove(missing) = %v, want fs.ErrNotExist", err)
	}
	if err := RemoveIfExists(filepath.Join(dir, "none")); err != nil {
		t.Errorf("RemoveIfExists(missing) = %v", err)
	}
	if err := Rename(filepath.Join(dir, "none"), filepath.Join(dir, "b.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Rename(missing) = %v, want fs.ErrNotExist", err)
	}
	for _, n := range []string{"a.key", ".a.key.tmp-1", "c.pem"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := Rename(filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")); err != nil {
		t.Fatal(err)
	}
	if got, err := List(dir, ".key"); err != nil || !slices.Equal(got, []string{"b"}) {
		t.Errorf("List = %v, %v; want [b] (the temporary file left out)", got, err)
	}
	if err := Remove(filepath.Join(dir, "b.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("b.key after Remove: %v", err)
	}
	for name, temp := range map[string]bool{".a.key.tmp-1": true, "a.key": false, ".hidden": false} {
		if IsTemp(name) != temp {
			t.Errorf("IsTemp(%q) = %t", name, !temp)
		}
	}
}

func TestMkdirPrivate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a", "b")
	if err := MkdirPrivate(p); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != PrivateDir {
		t.Errorf("dir mode %o, want %o", fi.Mode().Perm(), PrivateDir)
	}
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := MkdirPrivate(p); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != PrivateDir {
		t.Errorf("an open directory was not tightened: mode %o", fi.Mode().Perm())
	}
	f := filepath.Join(dir, "f")
	os.WriteFile(f, nil, 0o600)
	if err := MkdirPrivate(f); err == nil {
		t.Error("MkdirPrivate over a file succeeded")
	}
}
