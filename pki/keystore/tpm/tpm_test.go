package tpm

import (
	"context"
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/pkiagent/pkiagent/pki/keystore"
	"github.com/pkiagent/pkiagent/pki/keystore/keystoretest"
)

var (
	p256  = keystore.KeySpec{Algorithm: "ecc", Curve: "secp256r1"}
	p384  = keystore.KeySpec{Algorithm: "ecc", Curve: "secp384r1"}
	p521  = keystore.KeySpec{Algorithm: "ecc", Curve: "secp521r1"}
	r2k   = keystore.KeySpec{Algorithm: "rsa", RSABits: 2048}
	r3k   = keystore.KeySpec{Algorithm: "rsa", RSABits: 3072}
	r4k   = keystore.KeySpec{Algorithm: "rsa", RSABits: 4096}
	r2304 = keystore.KeySpec{Algorithm: "rsa", RSABits: 2304}
)

// openTPM opens spec for the length of the test.
func openTPM(t testing.TB, spec string) transport.TPMCloser {
	t.Helper()
	tp, err := Open(spec)
	if err != nil && spec == SpecSim && strings.Contains(err.Error(), "CGO") {
		t.Skipf("TPM simulator unavailable in this build: %v", err)
	}
	if err != nil {
		t.Fatalf("Open(%q): %v", spec, err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

func newStore(t testing.TB, tp transport.TPM, dir string) *Store {
	t.Helper()
	s, err := New(context.Background(), tp, dir, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// transientCount counts the transient objects loaded in the TPM.
func transientCount(t testing.TB, tp transport.TPM) int {
	t.Helper()
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(tpm2.TPMHTTransient) << 24, PropertyCount: 64}.Execute(tp)
	if err != nil {
		t.Fatal(err)
	}
	l, err := rsp.CapabilityData.Data.Handles()
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Handle)
}

func TestSimContract(t *testing.T) {
	tp := openTPM(t, SpecSim)
	keystoretest.Run(t, keystoretest.Harness{
		Kind:        "tpm",
		Open:        func(t *testing.T, dir string) keystore.Store { return newStore(t, tp, dir) },
		Specs:       []keystore.KeySpec{p256, p384, p521, r2k},
		Unsupported: []keystore.KeySpec{r3k, r4k, r2304},
	})
	if n := transientCount(t, tp); n != 0 {
		t.Errorf("%d transient objects left in the TPM", n)
	}
}

// Keys survive a full restart of the agent: the simulator is stopped and
// started again (fixed seeds), the store rebuilt from the directory.
func TestSimRestart(t *testing.T) {
	dir := t.TempDir()
	tp := openTPM(t, SpecSim) // closed below, and again (harmlessly) at cleanup
	s := newStore(t, tp, dir)
	sg, err := s.Generate(context.Background(), "device", p256)
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	tp = openTPM(t, SpecSim)
	s = newStore(t, tp, dir)
	sg2, err := s.Signer(context.Background(), "device")
	if err != nil {
		t.Fatalf("Signer after restart: %v", err)
	}
	if !sg2.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(sg.Public()) {
		t.Fatal("public key changed across the restart")
	}
	keystoretest.CheckSigner(t, sg2)
	keystoretest.CheckCSR(t, sg2)
}

// The private part can be neither read nor moved: the TPM made it
// (sensitiveDataOrigin), it is bound to this TPM and this parent (fixedTPM,
// fixedParent); TPM2_Duplicate, the one command that exports a key, is
// refused; the signer exposes no key; the blob on disk is the TPM's
// encrypted wrapping.
func TestPrivatePartUnreadable(t *testing.T) {
	tp := openTPM(t, SpecSim)
	dir := t.TempDir()
	s := newStore(t, tp, dir)
	sg, err := s.Generate(context.Background(), "device", p256)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.readBlob("device")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := b.public.Contents()
	if err != nil {
		t.Fatal(err)
	}
	a := pub.ObjectAttributes
	if !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || a.Decrypt {
		t.Errorf("attributes %+v: want fixedTPM, fixedParent, sensitiveDataOrigin, no decrypt", a)
	}
	if err := s.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	err = s.withKey(b, func(kh tpm2.NamedHandle) error {
		_, err := tpm2.Duplicate{
			ObjectHandle:    tpm2.AuthHandle{Handle: kh.Handle, Name: kh.Name, Auth: tpm2.PasswordAuth(nil)},
			NewParentHandle: tpm2.TPMRHNull,
			Symmetric:       tpm2.TPMTSymDef{Algorithm: tpm2.TPMAlgNull},
		}.Execute(tp)
		return err
	})
	s.release()
	if err == nil {
		t.Fatal("TPM2_Duplicate of the key succeeded: the key can leave the TPM")
	}
	t.Logf("TPM2_Duplicate refused: %v", err)
	if fmt.Sprintf("%#v", sg) != "tpm key device (ecc-secp256r1)" {
		t.Errorf("%%#v of the signer = %q", fmt.Sprintf("%#v", sg))
	}
	data, err := os.ReadFile(filepath.Join(dir, "device"+Ext))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "-----BEGIN TSS2 PRIVATE KEY-----") {
		t.Errorf("blob file does not start with the TSS2 PEM header")
	}
	fi, _ := os.Stat(filepath.Join(dir, "device"+Ext))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("blob mode %o, want 600", fi.Mode().Perm())
	}
}

// Leftover transient objects of a crashed run are flushed by New.
func TestFlushLeftoversAtStart(t *testing.T) {
	tp := openTPM(t, SpecSim)
	for range 2 {
		if _, err := (tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tpm2.ECCSRKTemplate)}).Execute(tp); err != nil {
			t.Fatal(err)
		}
	}
	if n := transientCount(t, tp); n != 2 {
		t.Fatalf("%d transient objects before New, want 2", n)
	}
	newStore(t, tp, t.TempDir())
	if n := transientCount(t, tp); n != 0 {
		t.Errorf("%d transient objects after New, want 0", n)
	}
}

// A blob that does not load (another TPM, a cleared TPM, a damaged file)
// is a clear error, not a silent fallback.
func TestForeignBlob(t *testing.T) {
	tp := openTPM(t, SpecSim)
	dir := t.TempDir()
	s := newStore(t, tp, dir)
	if _, err := s.Generate(context.Background(), "device", p256); err != nil {
		t.Fatal(err)
	}
	b, err := s.readBlob("device")
	if err != nil {
		t.Fatal(err)
	}
	b.private.Buffer[len(b.private.Buffer)-1] ^= 0xff
	data, err := b.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "device"+Ext), data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = s.Signer(context.Background(), "device")
	if err == nil || !strings.Contains(err.Error(), "another TPM") {
		t.Fatalf("Signer of a damaged blob = %v, want a load error naming the cause", err)
	}
	t.Log(err)
	if err := os.WriteFile(filepath.Join(dir, "junk"+Ext), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Public("junk"); err == nil {
		t.Fatal("Public of a junk file succeeded")
	}
}

func TestSignOptions(t *testing.T) {
	tp := openTPM(t, SpecSim)
	s := newStore(t, tp, t.TempDir())
	ec, err := s.Generate(context.Background(), "ec", p256)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		desc   string
		digest []byte
		opts   crypto.SignerOpts
	}{
		{desc: "SHA-1", digest: make([]byte, 20), opts: crypto.SHA1},
		{desc: "length mismatch", digest: make([]byte, 20), opts: crypto.SHA256},
		{desc: "raw unknown length", digest: make([]byte, 20), opts: crypto.Hash(0)},
	} {
		t.Run(c.desc, func(t *testing.T) {
			if _, err := ec.Sign(nil, c.digest, c.opts); err == nil {
				t.Error("Sign succeeded")
			}
		})
	}
	// ECDSA with the hash left 0 takes it from the digest length.
	if _, err := ec.Sign(nil, make([]byte, 48), crypto.Hash(0)); err != nil {
		t.Errorf("ECDSA sign of a 48-byte digest without a hash: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, spec := range []string{"", "none", "tpm0", "tcp://nohostport", "tcp://127.0.0.1:0", "/nonexistent/tpmrm0"} {
		if tp, err := Open(spec); err == nil {
			tp.Close()
			t.Errorf("Open(%q) succeeded", spec)
		}
	}
}

func TestSimShared(t *testing.T) {
	a := openTPM(t, SpecSim)
	b, err := Open(SpecSim)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (tpm2.GetRandom{BytesRequested: 8}).Execute(b); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := (tpm2.GetRandom{BytesRequested: 8}).Execute(b); err == nil {
		t.Error("a closed handle still works")
	}
	if _, err := (tpm2.GetRandom{BytesRequested: 8}).Execute(a); err != nil {
		t.Errorf("closing one handle broke the other: %v", err)
	}
}

func BenchmarkSimGenerate(b *testing.B) {
	tp := openTPM(b, SpecSim)
	for _, spec := range []keystore.KeySpec{p256, r2k} {
		b.Run(spec.String(), func(b *testing.B) {
			s := newStore(b, tp, b.TempDir())
			i := 0
			for b.Loop() {
				if _, err := s.Generate(context.Background(), fmt.Sprintf("k%d", i), spec); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkSimSign(b *testing.B) {
	tp := openTPM(b, SpecSim)
	for _, spec := range []keystore.KeySpec{p256, r2k} {
		b.Run(spec.String(), func(b *testing.B) {
			s := newStore(b, tp, b.TempDir())
			sg, err := s.Generate(context.Background(), "k", spec)
			if err != nil {
				b.Fatal(err)
			}
			d := make([]byte, 32)
			for b.Loop() {
				if _, err := sg.Sign(nil, d, crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
