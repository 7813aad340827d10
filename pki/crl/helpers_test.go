package crl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/testpki"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testCA returns a CA with cRLSign (testpki's default CA key usage).
func testCA(t testing.TB, g *testpki.Generator, cn string) *testpki.Cert {
	t.Helper()
	ca, err := g.Root(testpki.Options{CN: cn})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func serials(ns ...int64) []*big.Int {
	out := make([]*big.Int, len(ns))
	for i, n := range ns {
		out[i] = big.NewInt(n)
	}
	return out
}

func mustCRL(t testing.TB, ca *testpki.Cert, o testpki.CRLOptions) []byte {
	t.Helper()
	if o.ThisUpdate.IsZero() {
		o.ThisUpdate = t0.Add(-time.Hour)
	}
	if o.NextUpdate.IsZero() {
		o.NextUpdate = t0.Add(7 * 24 * time.Hour)
	}
	der, err := testpki.CRLWith(ca, o)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// bigCRLOptions describe a CRL for buildCRL, which writes the DER
// directly (x509.CreateRevocationList is far too slow and memory hungry
// for a million entries).
type bigCRLOptions struct {
	N          int
	SerialLen  int  // octets of each random serial (default 16)
	Sequential bool // serials 1..N instead of random
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	ReasonCode bool // add a reasonCode extension to every entry
}

// buildCRL returns a DER CRL signed by ca with o.N entries.
func buildCRL(t testing.TB, ca *testpki.Cert, o bigCRLOptions) []byte {
	t.Helper()
	if o.SerialLen == 0 {
		o.SerialLen = 16
	}
	if o.ThisUpdate.IsZero() {
		o.ThisUpdate = t0.Add(-time.Hour)
	}
	if o.NextUpdate.IsZero() {
		o.NextUpdate = t0.Add(7 * 24 * time.Hour)
	}
	var algOID asn1.ObjectIdentifier
	var hash crypto.Hash = crypto.SHA256
	switch ca.Key.(type) {
	case *ecdsa.PrivateKey:
		algOID = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	case *rsa.PrivateKey:
		algOID = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	default:
		t.Fatalf("unsupported CA key %T", ca.Key)
	}
	alg := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(algOID)
			if _, ok := ca.Key.(*rsa.PrivateKey); ok {
				b.AddASN1NULL()
			}
		})
	}
	revTime := o.ThisUpdate.Add(-time.Minute)
	reason, _ := asn1.Marshal(asn1.Enumerated(1))
	serial := make([]byte, o.SerialLen+1)
	rng := newXorshift(uint64(o.N)*7919 + uint64(o.SerialLen))
	tbs := cryptobyte.NewBuilder(make([]byte, 0, o.N*(o.SerialLen+24)+4096))
	tbs.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		alg(b)
		b.AddBytes(ca.Cert.RawSubject)
		b.AddASN1UTCTime(o.ThisUpdate)
		b.AddASN1UTCTime(o.NextUpdate)
		if o.N > 0 {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for i := 0; i < o.N; i++ {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						if o.Sequential {
							b.AddASN1BigInt(big.NewInt(int64(i + 1)))
						} else {
							rng.fill(serial[1:])
							serial[1] |= 0x01 // never all-zero leading octet: fixed length
							serial[1] &= 0x7f // positive
							b.AddASN1(cbasn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(serial[1:]) })
						}
						b.AddASN1UTCTime(revTime)
						if o.ReasonCode {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
									b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{2, 5, 29, 21})
									b.AddASN1OctetString(reason)
								})
							})
						}
					})
				}
			})
		}
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{2, 5, 29, 35})
					b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ca.Cert.SubjectKeyId) })
						})
					})
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{2, 5, 29, 20})
					b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) { b.AddASN1Int64(o.Number) })
				})
			})
		})
	})
	tbsDER, err := tbs.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(tbsDER)
	sig, err := ca.Key.Sign(rand.Reader, digest[:], hash)
	if err != nil {
		t.Fatal(err)
	}
	out := cryptobyte.NewBuilder(make([]byte, 0, len(tbsDER)+len(sig)+64))
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbsDER)
		alg(b)
		b.AddASN1BitString(sig)
	})
	der, err := out.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// xorshift is a fast deterministic generator for test serials.
type xorshift struct{ s uint64 }

func newXorshift(seed uint64) *xorshift { return &xorshift{s: seed*0x9E3779B97F4A7C15 + 1} }

func (x *xorshift) next() uint64 {
	x.s ^= x.s << 13
	x.s ^= x.s >> 7
	x.s ^= x.s << 17
	return x.s
}

func (x *xorshift) fill(b []byte) {
	var w [8]byte
	for len(b) > 0 {
		binary.LittleEndian.PutUint64(w[:], x.next())
		b = b[copy(b, w[:]):]
	}
}

// ext builds a pkix.Extension for tests.
func ext(oid asn1.ObjectIdentifier, critical bool, value []byte) pkix.Extension {
	return pkix.Extension{Id: oid, Critical: critical, Value: value}
}

func caPool(cas ...*testpki.Cert) []*x509.Certificate {
	out := make([]*x509.Certificate, len(cas))
	for i, c := range cas {
		out[i] = c.Cert
	}
	return out
}

type pkixExt = pkix.Extension

type randReader struct{}

func (randReader) Read(p []byte) (int, error) { return rand.Read(p) }

func readFile(dir string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, MasterFile)) }
