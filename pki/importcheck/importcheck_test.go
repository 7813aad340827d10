package importcheck

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pkiagent/pkiagent/internal/testpki"
	"github.com/pkiagent/pkiagent/pki/chain"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

var allErrs = map[string]*Error{
	"PrivateKey": ErrPrivateKey, "PKCS12": ErrPKCS12, "Malformed": ErrMalformed,
	"Expired": ErrExpired, "NotYetValid": ErrNotYetValid, "IsCA": ErrIsCA,
	"KeyUsage": ErrKeyUsage, "ExtKeyUsage": ErrExtKeyUsage, "KeyAlgorithm": ErrKeyAlgorithm,
	"CriticalExtension": ErrCriticalExtension, "KeyMismatch": ErrKeyMismatch,
	"UnknownIssuer": ErrUnknownIssuer, "Chain": ErrChain, "Revoked": ErrRevoked,
}

type env struct {
	g          *testpki.Generator
	root, ca   *testpki.Cert // trusted: root -> ca
	otherCA    *testpki.Cert // untrusted
	key        crypto.Signer // the router's key
	trust      *TrustStore
	revocation *MemoryIndex
}

func newEnv(t testing.TB) *env {
	t.Helper()
	g := testpki.New(now)
	cas := testpki.Must(g.Hierarchy(2))
	other := testpki.Must(g.Hierarchy(2))
	trust, err := NewTrustStore([]TrustedCA{
		{Name: "other-unrelated", Certs: []*x509.Certificate{testpki.Must(g.Root(testpki.Options{CN: "unrelated"})).Cert}},
		{Name: "corp", Certs: []*x509.Certificate{cas[1].Cert, cas[0].Cert}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{g: g, root: cas[0], ca: cas[1], otherCA: other[1], key: testpki.Must(testpki.NewKey(testpki.ECDSAP256)), trust: trust, revocation: NewMemoryIndex()}
}

func (e *env) leaf(o testpki.Options) *testpki.Cert {
	if o.Key == nil {
		o.Key = e.key
	}
	if o.CN == "" {
		o.CN = "router1.example"
	}
	return testpki.Must(e.g.Issue(e.ca, o))
}

func (e *env) input(pem []byte) Input {
	return Input{PEM: pem, PublicKey: e.key.Public(), Trust: e.trust, Revocation: e.revocation, Now: now}
}

func TestAccepted(t *testing.T) {
	e := newEnv(t)
	rsaKey := testpki.Must(testpki.NewKey(testpki.RSA2048))
	rootOnly, err := NewTrustStore([]TrustedCA{{Name: "root-only", Certs: []*x509.Certificate{e.root.Cert}}})
	if err != nil {
		t.Fatal(err)
	}
	caOnly, err := NewTrustStore([]TrustedCA{{Name: "ca-only", Certs: []*x509.Certificate{e.ca.Cert}}})
	if err != nil {
		t.Fatal(err)
	}
	ecLeaf := e.leaf(testpki.Options{CRLDistributionPoints: []string{"http://crl.example/ca.crl"}})
	tests := []struct {
		desc    string
		in      Input
		wantAlg string
		wantCA  string
		wantLen int
	}{
		{desc: "ECDSA P-256", in: e.input(ecLeaf.PEM()), wantAlg: "ecdsa-p256", wantCA: "corp", wantLen: 3},
		{desc: "RSA 2048, clientAuth only", in: Input{PEM: e.leaf(testpki.Options{Key: rsaKey, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}).PEM(), PublicKey: rsaKey.Public(), Trust: e.trust, Now: now}, wantAlg: "rsa-2048", wantCA: "corp", wantLen: 3},
		{desc: "intermediate sent with the certificate", in: Input{PEM: testpki.PEM(ecLeaf, e.ca), PublicKey: e.key.Public(), Trust: rootOnly, Now: now}, wantAlg: "ecdsa-p256", wantCA: "root-only", wantLen: 3},
		{desc: "bundle of the issuing CA only", in: Input{PEM: ecLeaf.PEM(), PublicKey: e.key.Public(), Trust: caOnly, Now: now}, wantAlg: "ecdsa-p256", wantCA: "ca-only", wantLen: 2},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r, err := Check(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got := []any{r.KeyAlgorithm, r.TrustedCA, len(r.Chain), r.Info.FingerprintSHA256}
			want := []any{tc.wantAlg, tc.wantCA, tc.wantLen, chain.Fingerprint(r.Certificate)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
	r, _ := Check(e.input(ecLeaf.PEM()))
	if diff := cmp.Diff([]string{"http://crl.example/ca.crl"}, r.Info.CRLDistributionPoints); diff != "" {
		t.Errorf("CRL distribution points (-want +got):\n%s", diff)
	}
}

func fakePFX() []byte {
	type ci struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue `asn1:"explicit,tag:0"`
	}
	inner, _ := asn1.Marshal([]byte("safe"))
	der, _ := asn1.Marshal(struct {
		V int
		A ci
	}{3, ci{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}, asn1.RawValue{FullBytes: inner}}})
	return der
}

func TestRefused(t *testing.T) {
	e := newEnv(t)
	year := 365 * 24 * time.Hour
	good := e.leaf(testpki.Options{})
	keyPEM := testpki.KeyPEM(e.key)
	with := func(pem []byte, f func(*Input)) Input {
		in := e.input(pem)
		f(&in)
		return in
	}
	weak := func(kt testpki.KeyType) Input {
		k := testpki.Must(testpki.NewKey(kt))
		return Input{PEM: e.leaf(testpki.Options{Key: k}).PEM(), PublicKey: k.Public(), Trust: e.trust, Now: now}
	}
	if _, err := Check(weak(testpki.Ed25519)); err != nil {
		t.Errorf("an Ed25519 router certificate is refused: %v", err)
	}
	revokedLeaf := e.leaf(testpki.Options{Serial: big.NewInt(4242)})
	e.revocation.Add(e.ca.Cert.RawSubject, big.NewInt(4242))
	// A trusted chain whose intermediate gets revoked by the root.
	g := e.g
	root2 := testpki.Must(g.Root(testpki.Options{CN: "root2"}))
	ca2 := testpki.Must(g.Issue(root2, testpki.Options{CN: "ca2", IsCA: true}))
	leaf2 := testpki.Must(g.Issue(ca2, testpki.Options{Key: e.key}))
	trust2 := testpki.Must(NewTrustStore([]TrustedCA{{Name: "two", Certs: []*x509.Certificate{root2.Cert, ca2.Cert}}}))
	idx2 := NewMemoryIndex()
	idx2.Replace(root2.Cert.RawSubject, []*big.Int{ca2.Cert.SerialNumber})
	expiredCA := testpki.Must(g.Issue(e.root, testpki.Options{CN: "old ca", IsCA: true, NotBefore: now.Add(-2 * year), NotAfter: now.Add(-time.Hour)}))
	underExpired := testpki.Must(g.Issue(expiredCA, testpki.Options{Key: e.key, NotBefore: now.Add(-3 * year)}))

	tests := []struct {
		desc   string
		in     Input
		want   string
		wantIn string // the error text must say this
	}{
		{desc: "private key appended", in: e.input(append(good.PEM(), keyPEM...)), want: "PrivateKey", wantIn: "never leaves the device"},
		{desc: "private key alone", in: e.input(keyPEM), want: "PrivateKey"},
		{desc: "PKCS#12", in: e.input(fakePFX()), want: "PKCS12"},
		{desc: "garbage", in: e.input([]byte("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")), want: "Malformed", wantIn: "base64"},
		{desc: "DER where PEM expected", in: e.input(good.Cert.Raw), want: "Malformed", wantIn: "DER"},
		// Found by FuzzCertificates: a marker not at a line start gave no
		// block and no error, and Check indexed the empty chain.
		{desc: "END marker inside a line", in: e.input([]byte("0-----END 0")), want: "Malformed", wantIn: "must start at the beginning of its line"},
		{desc: "BEGIN marker inside a line", in: e.input([]byte("x -----BEGIN CERTIFICATE-----\n")), want: "Malformed", wantIn: "character 3"},
		{desc: "10 MB", in: e.input(bytes.Repeat(good.PEM(), 10<<20/len(good.PEM())+1)), want: "Malformed", wantIn: "too large"},
		{desc: "100 certificates", in: e.input(bytes.Repeat(good.PEM(), 100)), want: "Malformed", wantIn: "too many PEM blocks"},
		{desc: "expired", in: e.input(e.leaf(testpki.Options{NotBefore: now.Add(-2 * year), NotAfter: now.Add(-time.Second)}).PEM()), want: "Expired", wantIn: "not after"},
		{desc: "not yet valid", in: e.input(e.leaf(testpki.Options{NotBefore: now.Add(time.Hour)}).PEM()), want: "NotYetValid", wantIn: "not before"},
		{desc: "absurd dates: year 9999", in: e.input(e.leaf(testpki.Options{NotBefore: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}).PEM()), want: "NotYetValid", wantIn: "9999-01-01"},
		{desc: "CA as leaf", in: e.input(e.leaf(testpki.Options{IsCA: true}).PEM()), want: "IsCA"},
		{desc: "keyCertSign on a leaf", in: e.input(e.leaf(testpki.Options{KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}).PEM()), want: "IsCA"},
		{desc: "no digitalSignature", in: e.input(e.leaf(testpki.Options{KeyUsage: x509.KeyUsageKeyEncipherment}).PEM()), want: "KeyUsage", wantIn: "lacks digitalSignature"},
		{desc: "no key usage", in: e.input(e.leaf(testpki.Options{NoKeyUsage: true}).PEM()), want: "KeyUsage", wantIn: "absent"},
		{desc: "wrong EKU", in: e.input(e.leaf(testpki.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}).PEM()), want: "ExtKeyUsage", wantIn: "neither serverAuth nor clientAuth"},
		{desc: "no EKU", in: e.input(e.leaf(testpki.Options{NoExtKeyUsage: true}).PEM()), want: "ExtKeyUsage", wantIn: "absent"},
		{desc: "any EKU only", in: e.input(e.leaf(testpki.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}).PEM()), want: "ExtKeyUsage"},
		{desc: "critical unknown extension", in: e.input(e.leaf(testpki.Options{ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 3}, Critical: true, Value: []byte{5, 0}}}}).PEM()), want: "CriticalExtension", wantIn: "1.3.6.1.4.1.99999.3"},
		{desc: "RSA 1024", in: weak(testpki.RSA1024), want: "KeyAlgorithm", wantIn: "1024 bits"},
		{desc: "ECDSA P-224", in: weak(testpki.ECDSAP224), want: "KeyAlgorithm", wantIn: "P-224"},
		{desc: "mismatched key", in: with(good.PEM(), func(in *Input) { in.PublicKey = testpki.Must(testpki.NewKey(testpki.ECDSAP256)).Public() }), want: "KeyMismatch", wantIn: "another key"},
		{desc: "no key of that name", in: with(good.PEM(), func(in *Input) { in.PublicKey = nil }), want: "KeyMismatch"},
		{desc: "unknown issuer", in: e.input(testpki.Must(e.g.Issue(e.otherCA, testpki.Options{Key: e.key})).PEM()), want: "UnknownIssuer", wantIn: "does not chain"},
		{desc: "no trusted CA configured", in: with(good.PEM(), func(in *Input) { in.Trust = nil }), want: "UnknownIssuer", wantIn: "no trusted-ca-certificate"},
		{desc: "expired intermediate sent along", in: e.input(testpki.PEM(underExpired, expiredCA)), want: "Expired", wantIn: "old ca"},
		{desc: "revoked", in: e.input(revokedLeaf.PEM()), want: "Revoked", wantIn: "serial 1092"},
		{desc: "revoked intermediate", in: Input{PEM: leaf2.PEM(), PublicKey: e.key.Public(), Trust: trust2, Revocation: idx2, Now: now}, want: "Revoked", wantIn: `CA "CN=ca2`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Check(tc.in)
			if err == nil {
				t.Fatal("accepted")
			}
			var matched []string
			for name, target := range allErrs {
				if errors.Is(err, target) {
					matched = append(matched, name)
				}
			}
			if diff := cmp.Diff([]string{tc.want}, matched); diff != "" {
				t.Errorf("errors.Is matches (-want +got):\n%s\nerror: %v", diff, err)
			}
			var ie *Error
			if !errors.As(err, &ie) {
				t.Fatalf("error %T is not *importcheck.Error", err)
			}
			if !strings.Contains(err.Error(), tc.wantIn) {
				t.Errorf("error %q does not say %q", err, tc.wantIn)
			}
			if !strings.HasPrefix(err.Error(), "import check ") || strings.Contains(err.Error(), "check check") {
				t.Errorf("error %q does not start with one \"import check N\"", err)
			}
			if len(err.Error()) > 600 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
			// The router's key never appears in any error.
			der, _ := x509.MarshalPKCS8PrivateKey(e.key)
			b64 := base64.StdEncoding.EncodeToString(der)
			for i := 0; i+12 <= len(b64); i += 4 {
				if strings.Contains(err.Error(), b64[i:i+12]) {
					t.Fatalf("error echoes the private key: %s", err)
				}
			}
		})
	}
}

func TestCheckOrder(t *testing.T) {
	// A certificate that is both expired and followed by a key fails check 1.
	e := newEnv(t)
	expired := e.leaf(testpki.Options{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour), Serial: big.NewInt(99)})
	e.revocation.Add(e.ca.Cert.RawSubject, big.NewInt(99))
	tests := []struct {
		desc string
		pem  []byte
		want *Error
	}{
		{desc: "key beats everything", pem: append(expired.PEM(), testpki.KeyPEM(e.key)...), want: ErrCategoryPrivateKey},
		{desc: "dates before revocation", pem: expired.PEM(), want: ErrCategoryCertificate},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Check(e.input(tc.pem))
			if !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want category %v", err, tc.want.Category)
			}
		})
	}
}

func TestMemoryIndex(t *testing.T) {
	m := NewMemoryIndex()
	a, b := []byte("issuer-a"), []byte("issuer-b")
	m.Add(a, big.NewInt(1), big.NewInt(2))
	m.Add(b, big.NewInt(-3))
	m.Replace(a, []*big.Int{big.NewInt(2)})
	tests := []struct {
		desc   string
		issuer []byte
		serial *big.Int
		want   bool
	}{
		{desc: "replaced away", issuer: a, serial: big.NewInt(1), want: false},
		{desc: "kept", issuer: a, serial: big.NewInt(2), want: true},
		{desc: "other issuer", issuer: b, serial: big.NewInt(2), want: false},
		{desc: "negative serial", issuer: b, serial: big.NewInt(-3), want: true},
		{desc: "positive twin of a negative serial", issuer: b, serial: big.NewInt(3), want: false},
		{desc: "nil serial", issuer: a, serial: nil, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := m.IsRevoked(tc.issuer, tc.serial); got != tc.want {
				t.Errorf("IsRevoked = %v, want %v", got, tc.want)
			}
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	e := newEnv(b)
	in := e.input(e.leaf(testpki.Options{}).PEM())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Check(in); err != nil {
			b.Fatal(err)
		}
	}
}
