package cmp

import (
	"context"
	"crypto"
	"testing"

	"github.com/pkiagent/pkiagent/internal/swtpmtest"
	"github.com/pkiagent/pkiagent/pki/keystore"
	"github.com/pkiagent/pkiagent/pki/keystore/tpm"
)

// TestEnrollTPMKey enrolls keys that never leave swtpm: an ir whose proof
// of possession the TPM signs, then a kur to a new TPM key, protected by
// the TPM key of the certificate in force.
func TestEnrollTPMKey(t *testing.T) {
	ctx := context.Background()
	store := tpmStore(t)
	key, err := store.Generate(ctx, "r1", keystore.KeySpec{Algorithm: "ecc", Curve: "secp256r1"})
	if err != nil {
		t.Fatal(err)
	}
	r := newResponder(t)
	c := r.start(t)
	res, err := c.Enroll(ctx, pbmRequest(r, key))
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := store.Generate(ctx, "r1-next", keystore.KeySpec{Algorithm: "rsa", RSABits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := c.Enroll(ctx, Request{Kind: KUR, Key: newKey, Subject: sr, Protection: Signature{Cert: res.Cert, Key: key}})
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeysEqual(renewed.Cert.PublicKey, newKey.Public()) {
		t.Fatal("renewed certificate is not for the new key")
	}
}

// tpmStore is a TPM keystore on a fresh swtpm.
func tpmStore(t *testing.T) *tpm.Store {
	sw := swtpmtest.Start(t, t.TempDir())
	tp, err := tpm.Open(sw.Spec())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	store, err := tpm.New(context.Background(), tp, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// tpmKey is an ECDSA P-256 key in a fresh swtpm.
func tpmKey(t *testing.T) crypto.Signer {
	key, err := tpmStore(t).Generate(context.Background(), "k", keystore.KeySpec{Algorithm: "ecc", Curve: "secp256r1"})
	if err != nil {
		t.Fatal(err)
	}
	return key
}
