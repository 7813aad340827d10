package atomicfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k.key")
	if err := Write(p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("two")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "two" {
		t.Fatalf("content = %q, %v; want two", got, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != FileMode {
		t.Errorf("mode %o, want %o", fi.Mode().Perm(), FileMode)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries, want 1 (no temporary file left)", len(entries))
	}
}

// Readers racing a writer see one whole version or the other.
func TestWriteNeverTorn(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	a, b := bytes.Repeat([]byte("a"), 64<<10), bytes.Repeat([]byte("b"), 64<<10)
	if err := Write(p, a); err != nil {
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
			if err := Write(p, data); err != nil {
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

func TestWriteFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	// The target is a directory: the rename fails after the temp file is
	// written; the temp file must be gone.
	p := filepath.Join(dir, "target")
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("secret")); err == nil {
		t.Fatal("Write over a non-empty directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries after a failed write, want 1", len(entries))
	}
	if err := Write(filepath.Join(dir, "missing", "k"), []byte("x")); err == nil {
		t.Error("Write into a missing directory succeeded")
	}
}

func TestRemoveAndTemp(t *testing.T) {
	dir := t.TempDir()
	if err := Remove(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove(missing) = %v, want fs.ErrNotExist", err)
	}
	for name, temp := range map[string]bool{".a.key.tmp-1": true, "a.key": false, ".hidden": false} {
		if IsTemp(name) != temp {
			t.Errorf("IsTemp(%q) = %t", name, !temp)
		}
	}
	if err := MkdirAll(filepath.Join(dir, "a", "b")); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "a", "b"))
	if fi.Mode().Perm() != DirMode {
		t.Errorf("dir mode %o", fi.Mode().Perm())
	}
}
