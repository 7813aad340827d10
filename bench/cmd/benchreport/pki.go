package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// material is the PKI the benchmark generates at run time in its work
// directory: a CA, a leaf it issued, and CRLs of several sizes.
type material struct {
	dir     string
	caKey   *ecdsa.PrivateKey
	ca      *x509.Certificate
	caPEM   string // file
	leafPEM string // file: the leaf certificate
	leafCN  string
}

func newMaterial(dir string, now time.Time) (*material, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "benchreport CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:     x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId: []byte{1, 2, 3, 4, 5, 6, 7, 8},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(der)
	m := &material{dir: dir, caKey: key, ca: ca, caPEM: filepath.Join(dir, "ca.pem"), leafPEM: filepath.Join(dir, "leaf.pem"), leafCN: "peer.bench.example"}
	if err := os.WriteFile(m.caPEM, pemOf("CERTIFICATE", der), 0o600); err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: new(big.Int).Lsh(big.NewInt(1), 100), Subject: pkix.Name{CommonName: m.leafCN},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(12 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames: []string{m.leafCN},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, leafKey.Public(), key)
	if err != nil {
		return nil, err
	}
	return m, os.WriteFile(m.leafPEM, pemOf("CERTIFICATE", leafDER), 0o600)
}

func (m *material) crlPath(n int) string { return filepath.Join(m.dir, fmt.Sprintf("crl-%d.der", n)) }

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// crl writes a DER CRL with n random 16-octet serials in issue order (as
// a CA's database lists them: unsorted), each with a reasonCode, and
// returns its path. The CRL is built directly (x509.CreateRevocationList
// is far too slow for a million entries).
func (m *material) crl(n int, now time.Time, number int64) (string, error) {
	path := m.crlPath(n)
	alg := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2})
		})
	}
	reason, _ := asn1.Marshal(asn1.Enumerated(1))
	var serial [16]byte
	s := uint64(n)*0x9E3779B97F4A7C15 + 1
	next := func() uint64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
	tbs := cryptobyte.NewBuilder(make([]byte, 0, n*42+4096))
	tbs.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		alg(b)
		b.AddBytes(m.ca.RawSubject)
		b.AddASN1UTCTime(now.Add(-time.Hour).UTC().Truncate(time.Second))
		b.AddASN1UTCTime(now.Add(7 * 24 * time.Hour).UTC().Truncate(time.Second))
		if n > 0 {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for range n {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						binary.LittleEndian.PutUint64(serial[:8], next())
						binary.LittleEndian.PutUint64(serial[8:], next())
						serial[0] = serial[0]&0x7f | 0x01 // positive, 16 octets
						b.AddASN1(cbasn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(serial[:]) })
						b.AddASN1UTCTime(now.Add(-2 * time.Hour).UTC().Truncate(time.Second))
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{2, 5, 29, 21})
								b.AddASN1OctetString(reason)
							})
						})
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
							b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(m.ca.SubjectKeyId) })
						})
					})
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{2, 5, 29, 20})
					b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) { b.AddASN1Int64(number) })
				})
			})
		})
	})
	tbsDER, err := tbs.Bytes()
	if err != nil {
		return "", err
	}
	digest := sha256.Sum256(tbsDER)
	sig, err := m.caKey.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return "", err
	}
	out := cryptobyte.NewBuilder(make([]byte, 0, len(tbsDER)+len(sig)+64))
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbsDER)
		alg(b)
		b.AddASN1BitString(sig)
	})
	der, err := out.Bytes()
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, der, 0o600)
}
