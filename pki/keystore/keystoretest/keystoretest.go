// Package keystoretest checks that an implementation keeps the contract of
// keystore.Store; every backend's tests run it.
package keystoretest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/pki/keystore"
)

// Harness describes the backend under test.
type Harness struct {
	// Kind is what Store.Kind must answer.
	Kind string
	// Open returns a store over dir. Called again with the same dir, it
	// stands for a restart of the agent: the keys must still be there.
	Open func(t *testing.T, dir string) keystore.Store
	// Specs the backend must hold; the first, the cheapest, also serves the
	// other subtests.
	Specs []keystore.KeySpec
	// Unsupported are valid specs the backend must refuse with
	// keystore.ErrUnsupported.
	Unsupported []keystore.KeySpec
}

// Run runs the contract tests.
func Run(t *testing.T, h Harness) {
	t.Run("Kind", func(t *testing.T) {
		if got := h.Open(t, t.TempDir()).Kind(); got != h.Kind {
			t.Errorf("Kind() = %q, want %q", got, h.Kind)
		}
	})
	for _, spec := range h.Specs {
		t.Run("GenerateSignReload/"+spec.String(), func(t *testing.T) { testGenerate(t, h, spec) })
	}
	t.Run("Exists", func(t *testing.T) { testExists(t, h) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, h) })
	t.Run("BadNames", func(t *testing.T) { testBadNames(t, h) })
	t.Run("BadSpecs", func(t *testing.T) { testBadSpecs(t, h) })
	t.Run("Unsupported", func(t *testing.T) { testUnsupported(t, h) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, h) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, h) })
	t.Run("Canceled", func(t *testing.T) { testCanceled(t, h) })
}

type equaler interface{ Equal(crypto.PublicKey) bool }

func testGenerate(t *testing.T, h Harness, spec keystore.KeySpec) {
	ctx := context.Background()
	dir := t.TempDir()
	s := h.Open(t, dir)
	sg, err := s.Generate(ctx, "device", spec)
	if err != nil {
		t.Fatalf("Generate(%s): %v", spec, err)
	}
	got, err := keystore.SpecOf(sg.Public())
	if err != nil || got != spec {
		t.Fatalf("SpecOf(generated key) = %v, %v; want %v", got, err, spec)
	}
	CheckSigner(t, sg)
	checkRedacted(t, sg)
	pub, err := s.Public("device")
	if err != nil {
		t.Fatalf("Public: %v", err)
	}
	if !sg.Public().(equaler).Equal(pub) {
		t.Errorf("Public() differs from the generated signer's public key")
	}

	// Restart: a new store over the same directory finds and uses the key.
	s2 := h.Open(t, dir)
	names, err := s2.Names()
	if err != nil || !slices.Equal(names, []string{"device"}) {
		t.Fatalf("Names() after reopen = %v, %v; want [device]", names, err)
	}
	sg2, err := s2.Signer(ctx, "device")
	if err != nil {
		t.Fatalf("Signer after reopen: %v", err)
	}
	if !sg2.Public().(equaler).Equal(pub) {
		t.Errorf("reloaded key has another public key")
	}
	CheckSigner(t, sg2)
	CheckCSR(t, sg2)
}

// CheckSigner signs with every hash and padding the contract promises and
// verifies each signature.
func CheckSigner(t *testing.T, sg crypto.Signer) {
	t.Helper()
	msg := []byte("pki-agent keystore contract")
	for _, hf := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		hh := hf.New()
		hh.Write(msg)
		digest := hh.Sum(nil)
		switch pub := sg.Public().(type) {
		case *ecdsa.PublicKey:
			sig, err := sg.Sign(rand.Reader, digest, hf)
			if err != nil {
				t.Fatalf("ECDSA sign %v: %v", hf, err)
			}
			if !ecdsa.VerifyASN1(pub, digest, sig) {
				t.Errorf("ECDSA %v signature does not verify", hf)
			}
		case *rsa.PublicKey:
			sig, err := sg.Sign(rand.Reader, digest, hf)
			if err != nil {
				t.Fatalf("RSA PKCS1v15 sign %v: %v", hf, err)
			}
			if err := rsa.VerifyPKCS1v15(pub, hf, digest, sig); err != nil {
				t.Errorf("RSA PKCS1v15 %v signature: %v", hf, err)
			}
			opts := &rsa.PSSOptions{Hash: hf, SaltLength: rsa.PSSSaltLengthEqualsHash}
			sig, err = sg.Sign(rand.Reader, digest, opts)
			if err != nil {
				t.Fatalf("RSA PSS sign %v: %v", hf, err)
			}
			if err := rsa.VerifyPSS(pub, hf, digest, sig, opts); err != nil {
				t.Errorf("RSA PSS %v signature: %v", hf, err)
			}
		default:
			t.Fatalf("Public() is %T", pub)
		}
	}
}

// CheckCSR signs a PKCS #10 request and a self-signed certificate (PSS for
// RSA) with sg and verifies both.
func CheckCSR(t *testing.T, sg crypto.Signer) {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "router-1", Organization: []string{"pki-agent"}},
		DNSNames: []string{"router-1.example.net"},
	}, sg)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatalf("ParseCertificateRequest: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("CSR signature: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "self"},
		NotBefore:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	if _, ok := sg.Public().(*rsa.PublicKey); ok {
		tmpl.SignatureAlgorithm = x509.SHA256WithRSAPSS
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, sg.Public(), sg)
	if err != nil {
		t.Fatalf("CreateCertificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("certificate signature: %v", err)
	}
}

// checkRedacted: printing a signer must not dump key material.
func checkRedacted(t *testing.T, sg crypto.Signer) {
	t.Helper()
	out := fmt.Sprintf("%v|%+v|%#v|%s", sg, sg, sg, sg)
	if len(out) > 400 {
		t.Errorf("printing the signer gives %d bytes; it should describe the key, not dump it", len(out))
	}
	if _, err := x509.MarshalPKCS8PrivateKey(sg); err == nil {
		t.Errorf("the signer marshals as a PKCS #8 private key: the private key is reachable")
	}
}

func testExists(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Open(t, t.TempDir())
	sg, err := s.Generate(ctx, "dup", h.Specs[0])
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Generate(ctx, "dup", h.Specs[0])
	if !errors.Is(err, keystore.ErrExists) || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Generate = %v, want ErrExists", err)
	}
	pub, err := s.Public("dup")
	if err != nil || !sg.Public().(equaler).Equal(pub) {
		t.Fatalf("the first key was replaced or lost: %v", err)
	}
}

func testNotFound(t *testing.T, h Harness) {
	s := h.Open(t, t.TempDir())
	_, err1 := s.Signer(context.Background(), "missing")
	_, err2 := s.Public("missing")
	err3 := s.Delete("missing")
	for i, err := range []error{err1, err2, err3} {
		if !errors.Is(err, keystore.ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("call %d on a missing key = %v, want ErrNotFound (fs.ErrNotExist)", i, err)
		}
	}
}

// BadNames are names every store must refuse.
var BadNames = []string{
	"", ".", "..", "../x", "a/b", `a\b`, "/etc/passwd", "a b", "a\x00b", "é", "a:b", "*",
	strings.Repeat("a", keystore.MaxNameLen+1),
}

func testBadNames(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Open(t, t.TempDir())
	for _, name := range BadNames {
		_, err1 := s.Generate(ctx, name, h.Specs[0])
		_, err2 := s.Signer(ctx, name)
		_, err3 := s.Public(name)
		err4 := s.Delete(name)
		for i, err := range []error{err1, err2, err3, err4} {
			if !errors.Is(err, keystore.ErrInvalidName) {
				t.Errorf("name %q, call %d = %v, want ErrInvalidName", name, i, err)
			}
		}
	}
	if names, err := s.Names(); err != nil || len(names) != 0 {
		t.Errorf("Names() = %v, %v after bad names; want none", names, err)
	}
	if _, err := s.Generate(ctx, strings.Repeat("a", keystore.MaxNameLen), h.Specs[0]); err != nil {
		t.Errorf("a %d-character name: %v", keystore.MaxNameLen, err)
	}
}

func testBadSpecs(t *testing.T, h Harness) {
	s := h.Open(t, t.TempDir())
	for _, spec := range []keystore.KeySpec{
		{}, {Algorithm: "dsa"}, {Algorithm: "rsa", RSABits: 1024}, {Algorithm: "rsa", RSABits: 2049},
		{Algorithm: "rsa", RSABits: 8192}, {Algorithm: "ecc"}, {Algorithm: "ecc", Curve: "secp256k1"},
	} {
		if _, err := s.Generate(context.Background(), "k", spec); !errors.Is(err, keystore.ErrInvalidSpec) {
			t.Errorf("Generate(%+v) = %v, want ErrInvalidSpec", spec, err)
		}
	}
}

func testUnsupported(t *testing.T, h Harness) {
	s := h.Open(t, t.TempDir())
	for _, spec := range h.Unsupported {
		_, err := s.Generate(context.Background(), "k", spec)
		if !errors.Is(err, keystore.ErrUnsupported) {
			t.Errorf("Generate(%s) = %v, want ErrUnsupported", spec, err)
		} else {
			t.Logf("Generate(%s): %v", spec, err)
		}
	}
	if names, err := s.Names(); err != nil || len(names) != 0 {
		t.Errorf("Names() = %v, %v after refused specs; want none", names, err)
	}
}

func testDelete(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Open(t, t.TempDir())
	sg, err := s.Generate(ctx, "gone", h.Specs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("gone"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if names, _ := s.Names(); len(names) != 0 {
		t.Errorf("Names() after Delete = %v", names)
	}
	if _, err := s.Signer(ctx, "gone"); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Signer after Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete("gone"); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	CheckSigner(t, sg) // a handle outlives the deletion
	if _, err := s.Generate(ctx, "gone", h.Specs[0]); err != nil {
		t.Errorf("Generate after Delete: %v", err)
	}
}

func testConcurrent(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Open(t, t.TempDir())
	const distinct, racers = 6, 4
	var wg sync.WaitGroup
	errs := make(chan error, distinct+racers)
	for i := range distinct {
		wg.Go(func() {
			name := fmt.Sprintf("k-%d", i)
			if _, err := s.Generate(ctx, name, h.Specs[0]); err != nil {
				errs <- err
				return
			}
			sg, err := s.Signer(ctx, name)
			if err != nil {
				errs <- err
				return
			}
			d := make([]byte, 32)
			for range 3 {
				if _, err := sg.Sign(rand.Reader, d, crypto.SHA256); err != nil {
					errs <- err
					return
				}
			}
			if _, err := s.Names(); err != nil {
				errs <- err
			}
		})
	}
	var won sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range racers {
		won.Go(func() {
			_, err := s.Generate(ctx, "same", h.Specs[0])
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, keystore.ErrExists):
				errs <- err
			}
		})
	}
	wg.Wait()
	won.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if wins != 1 {
		t.Errorf("%d concurrent Generate of one name succeeded, want 1", wins)
	}
	names, err := s.Names()
	if err != nil || len(names) != distinct+1 {
		t.Errorf("Names() = %v, %v; want %d keys", names, err, distinct+1)
	}
}

func testCanceled(t *testing.T, h Harness) {
	s := h.Open(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Generate(ctx, "k", h.Specs[0]); !errors.Is(err, context.Canceled) {
		t.Errorf("Generate with a canceled ctx = %v, want context.Canceled", err)
	}
	if names, _ := s.Names(); len(names) != 0 {
		t.Errorf("Names() = %v after a canceled Generate", names)
	}
}
