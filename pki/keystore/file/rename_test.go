package file

import (
	"context"
	"crypto"
	"errors"
	"testing"

	"github.com/pkiagent/pkiagent/pki/keystore"
)

func TestRename(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	a, err := s.Generate(ctx, "a", p256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Generate(ctx, "b", p256); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename("a", "b"); !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("Rename onto an existing key: %v, want ErrExists", err)
	}
	if err := s.Rename("missing", "c"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Rename of a missing key: %v, want ErrNotFound", err)
	}
	if err := s.Rename("a", "../c"); !errors.Is(err, keystore.ErrInvalidName) {
		t.Fatalf("Rename to a bad name: %v, want ErrInvalidName", err)
	}
	if err := s.Rename("a", "c"); err != nil {
		t.Fatal(err)
	}
	c, err := s.Signer(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(a.Public()) {
		t.Error("the renamed key is not the same key")
	}
	if _, err := s.Signer(ctx, "a"); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("old name after Rename: %v, want ErrNotFound", err)
	}
}
