package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/testpki"
	"github.com/pkiagent/pkiagent/pki/keystore/file"
	"github.com/pkiagent/pkiagent/pki/keystore/tpm"
	"github.com/pkiagent/pkiagent/telemetry"
)

// TestTPMKeyLifecycleAcrossEngineRestart provisions a certificate whose key
// lives in the TPM simulator, then restarts the engine on the same state
// directory and TPM: the key loads again, still signs, and the certificate
// is still served as tpm-backed.
func TestTPMKeyLifecycleAcrossEngineRestart(t *testing.T) {
	tp, err := tpm.Open(tpm.SpecSim)
	if err != nil && strings.Contains(err.Error(), "CGO") {
		t.Skipf("TPM simulator unavailable in this build: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	ctx := context.Background()
	dir := t.TempDir()
	var closeEngine func()
	newEngine := func() (*Engine, *agent.Store, *tpm.Store) {
		t.Helper()
		fileKeys, err := file.New(filepath.Join(dir, "keys"), nil)
		if err != nil {
			t.Fatal(err)
		}
		tpmKeys, err := tpm.New(ctx, tp, filepath.Join(dir, "tpm"), nil)
		if err != nil {
			t.Fatal(err)
		}
		al, err := audit.Open(filepath.Join(dir, "audit.log"), "r1")
		if err != nil {
			t.Fatal(err)
		}
		bus := telemetry.NewBus()
		store, d, err := agent.OpenStore(filepath.Join(dir, "state"), agent.Config{Bus: bus})
		if err != nil {
			t.Fatal(err)
		}
		closeEngine = func() { store.Close(); d.Close(); al.Close() }
		t.Cleanup(closeEngine)
		e, err := New(ctx, Config{StateDir: dir, Bus: bus, Audit: al,
			Keys: map[string]KeyStore{"file": fileKeys, "tpm": tpmKeys}})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Load(ctx, store.Running()); err != nil {
			t.Fatal(err)
		}
		store.AddValidator(e)
		store.AddApplier(e)
		store.AddStateSource(e)
		return e, store, tpmKeys
	}

	e, store, tpmKeys := newEngine()
	f := &fixture{store: store, engine: e}
	g := testpki.New(time.Now())
	h := testpki.Must(g.Hierarchy(2))
	if err := f.setTrusted(t, "corp", string(testpki.PEM(h[0])), "strict"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.GeneratePrivateKey(ctx, admin, api.GenerateKeyInput{Name: "router", Algorithm: "ecc", ECCCurve: "secp384r1", KeyStorage: "tpm"}); err != nil {
		t.Fatal(err)
	}
	out, err := e.GenerateCSR(ctx, admin, api.GenerateCSRInput{Name: "router", CommonName: "router.example"})
	if err != nil {
		t.Fatal(err)
	}
	req := parseCSR(t, out.CSR)
	key, err := tpmKeys.Signer(ctx, "router")
	if err != nil {
		t.Fatal(err)
	}
	leaf := testpki.Must(g.Issue(h[1], testpki.Options{CN: "router.example", Key: key,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}))
	if _, err := e.ImportCertificate(ctx, admin, api.ImportCertificateInput{Name: "router", Certificate: string(testpki.PEM(leaf, h[1]))}); err != nil {
		t.Fatal(err)
	}
	// The TPM keeps the private part: nothing on disk parses as a private
	// key (the TPM's blob is wrapped), and the file keystore has no key.
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rest, _ := os.ReadFile(path)
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if _, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
				t.Errorf("%s holds a PKCS #8 private key", path)
			}
			if _, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
				t.Errorf("%s holds an EC private key", path)
			}
		}
		return nil
	})
	if names, _ := e.cfg.Keys["file"].Names(); len(names) != 0 {
		t.Fatalf("file keystore has %v", names)
	}
	// A TPM refuses what it does not support, and says so.
	_, err = e.GeneratePrivateKey(ctx, admin, api.GenerateKeyInput{Name: "big", Algorithm: "rsa", RSAKeySize: 2304, KeyStorage: "tpm"})
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "tpm storage cannot hold") {
		t.Fatalf("rsa-2304 on the TPM: %v", err)
	}

	// Restart: a new engine on the same directory and TPM.
	closeEngine()
	e2, store2, _ := newEngine()
	st, err := store2.State()
	if err != nil {
		t.Fatal(err)
	}
	c := st.GetCertificates().GetCertificate("router")
	if c.GetKeyStorage() != gen.PkiAuthority_KeyStorage_tpm || c.GetKeyAlgorithm() != "ecc-secp384r1" || c.GetSerial() == "" {
		t.Fatalf("after restart: storage %v, algorithm %q, serial %q", c.GetKeyStorage(), c.GetKeyAlgorithm(), c.GetSerial())
	}
	out2, err := e2.GenerateCSR(ctx, admin, api.GenerateCSRInput{Name: "router", CommonName: "router.example"})
	if err != nil {
		t.Fatal(err)
	}
	if req2 := parseCSR(t, out2.CSR); !req2.PublicKey.(*ecdsa.PublicKey).Equal(req.PublicKey) {
		t.Fatal("the reloaded key is a different key")
	}
}

func parseCSR(t *testing.T, s string) *x509.CertificateRequest {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		t.Fatalf("no PEM in %q", s)
	}
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.CheckSignature(); err != nil {
		t.Fatalf("CSR signature: %v", err)
	}
	return req
}
