package cmp

import (
	"context"
	"crypto"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

// opensslPKI is the material of the interop tests, generated at test time.
type opensslPKI struct {
	gen   *testpki.Generator
	ca    *testpki.Cert
	files mockFiles
}

func newOpenSSLPKI(t testing.TB) *opensslPKI {
	t.Helper()
	dir := t.TempDir()
	gen := testpki.New(time.Now())
	ca := testpki.Must(gen.Root(testpki.Options{Subject: &pkix.Name{CommonName: "Test CMP CA"}}))
	srv := testpki.Must(gen.Issue(ca, testpki.Options{CN: "Test CMP Server", NoExtKeyUsage: true}))
	p := &opensslPKI{gen: gen, ca: ca, files: mockFiles{Dir: dir,
		CA: filepath.Join(dir, "ca.pem"), SrvCert: filepath.Join(dir, "srv.pem"), SrvKey: filepath.Join(dir, "srv.key")}}
	p.write(t, "ca.pem", ca.PEM())
	p.write(t, "srv.pem", srv.PEM())
	p.write(t, "srv.key", srv.KeyPEM())
	return p
}

func (p *opensslPKI) write(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(p.files.Dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue has the test CA certify key for /CN=router1 and writes it to name.
func (p *opensslPKI) issue(t testing.TB, name string, key crypto.Signer, serial *big.Int) (*testpki.Cert, string) {
	t.Helper()
	c := testpki.Must(p.gen.Issue(p.ca, testpki.Options{Subject: &router1, Key: key, Serial: serial,
		DNSNames: []string{"router1.example.net"}}))
	return c, p.write(t, name, c.PEM())
}

func (p *opensslPKI) client(url string) *Client {
	return &Client{URL: url, Trusted: testpki.Pool(p.ca), Recipient: pkix.Name{CommonName: "Test CMP CA"}, Timeout: 20 * time.Second}
}

var router1 = pkix.Name{CommonName: "router1"}

// TestOpenSSL enrolls against the real `openssl cmp` mock server: ir with
// PBM (and a wrong secret), cr with signature protection, kur with a new
// key through two waiting answers, and the refusal of a certificate for
// another key.
func TestOpenSSL(t *testing.T) {
	if !inNetns(t, "-test.run=^TestOpenSSL$") {
		return
	}
	p := newOpenSSLPKI(t)
	ctx := context.Background()
	pbm := PBM{Reference: "3078", Secret: []byte("insta")}

	for _, kt := range []testpki.KeyType{testpki.ECDSAP256, testpki.RSA2048, testpki.Ed25519} {
		t.Run("ir PBM "+kt.String(), func(t *testing.T) {
			key := testpki.Must(testpki.NewKey(kt))
			want, rsp := p.issue(t, "ir-"+kt.String()+".pem", key, nil)
			url := startMock(t, p.files, rsp)
			res, err := p.client(url).Enroll(ctx, Request{Kind: IR, Key: key, Subject: router1,
				DNSNames: []string{"router1.example.net"}, Protection: pbm})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Cert.Equal(want.Cert) || len(res.Chain) != 2 || !res.Chain[1].Equal(p.ca.Cert) {
				t.Fatalf("got cert %v chain %d", res.Cert.Subject, len(res.Chain))
			}
			if len(res.CAPubs) != 1 || !res.CAPubs[0].Equal(p.ca.Cert) || len(res.TransactionID) != 16 {
				t.Fatalf("caPubs %d, transaction ID %x", len(res.CAPubs), res.TransactionID)
			}
		})
	}

	t.Run("ir PBM TPM key", func(t *testing.T) {
		key := tpmKey(t)
		want, rsp := p.issue(t, "ir-tpm.pem", key, nil)
		url := startMock(t, p.files, rsp)
		res, err := p.client(url).Enroll(ctx, Request{Kind: IR, Key: key, Subject: router1, Protection: pbm})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Cert.Equal(want.Cert) {
			t.Fatal("another certificate returned")
		}
	})

	t.Run("ir wrong secret", func(t *testing.T) {
		key := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
		_, rsp := p.issue(t, "ir-wrong.pem", key, nil)
		url := startMock(t, p.files, rsp)
		_, err := p.client(url).Enroll(ctx, Request{Kind: IR, Key: key, Subject: router1,
			Protection: PBM{Reference: "3078", Secret: []byte("not-the-secret")}})
		t.Logf("error: %v", err)
		if err == nil || !strings.Contains(err.Error(), "secret") {
			t.Fatalf("want an error that names the secret, got %v", err)
		}
		if strings.Contains(err.Error(), "not-the-secret") || strings.Contains(err.Error(), "insta") {
			t.Fatalf("the error quotes a secret: %v", err)
		}
	})

	t.Run("ir implicit confirm", func(t *testing.T) {
		key := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
		_, rsp := p.issue(t, "ir-implicit.pem", key, nil)
		url := startMock(t, p.files, rsp, "-grant_implicitconf")
		res, err := p.client(url).Enroll(ctx, Request{Kind: IR, Key: key, Subject: router1, Protection: pbm, ImplicitConfirm: true})
		if err != nil || !res.ImplicitConfirm {
			t.Fatalf("implicit confirm not granted: %v", err)
		}
	})

	t.Run("ir wrong secret, unprotected error accepted", func(t *testing.T) {
		key := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
		_, rsp := p.issue(t, "ir-unprot.pem", key, nil)
		url := startMock(t, p.files, rsp, "-send_unprot_err")
		c := p.client(url)
		c.AcceptUnprotectedErrors = true
		_, err := c.Enroll(ctx, Request{Kind: IR, Key: key, Subject: router1,
			Protection: PBM{Reference: "3078", Secret: []byte("not-the-secret")}})
		t.Logf("error: %v", err)
		if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "wrong pbm value") {
			t.Fatalf("want the CA's refusal, got %v", err)
		}
	})

	t.Run("cr signature", func(t *testing.T) {
		oldKey := testpki.Must(testpki.NewKey(testpki.RSA2048))
		old, _ := p.issue(t, "cr-old.pem", oldKey, nil)
		key := testpki.Must(testpki.NewKey(testpki.ECDSAP384))
		want, rsp := p.issue(t, "cr.pem", key, nil)
		url := startMock(t, p.files, rsp)
		res, err := p.client(url).Enroll(ctx, Request{Kind: CR, Key: key, Subject: router1,
			Protection: Signature{Cert: old.Cert, Key: oldKey}})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Cert.Equal(want.Cert) {
			t.Fatal("another certificate returned")
		}
	})

	t.Run("kur new key after waiting twice", func(t *testing.T) {
		oldKey := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
		serial := big.NewInt(0x4242)
		old, _ := p.issue(t, "kur-old.pem", oldKey, serial)
		newKey := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
		want, rsp := p.issue(t, "kur.pem", newKey, serial)
		url := startMock(t, p.files, rsp, "-poll_count", "2", "-check_after", "1")
		start := time.Now()
		res, err := p.client(url).Enroll(ctx, Request{Kind: KUR, Key: newKey, Subject: router1,
			Protection: Signature{Cert: old.Cert, Key: oldKey}})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Cert.Equal(want.Cert) || res.Polls < 2 {
			t.Fatalf("polls %d", res.Polls)
		}
		if d := time.Since(start); d < time.Second {
			t.Fatalf("did not honour checkAfter: done in %v", d)
		}
	})

	t.Run("certificate for another key", func(t *testing.T) {
		other := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
		_, rsp := p.issue(t, "other.pem", other, nil)
		url := startMock(t, p.files, rsp)
		key := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
		_, err := p.client(url).Enroll(ctx, Request{Kind: IR, Key: key, Subject: router1, Protection: pbm})
		t.Logf("error: %v", err)
		if !errors.Is(err, ErrWrongKey) {
			t.Fatalf("want ErrWrongKey, got %v", err)
		}
	})
}
