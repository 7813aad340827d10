package crl

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"testing/iotest"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

// chunkReader returns the data in reads of the given sizes, in turn.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), max(r.sizes[r.i%len(r.sizes)], 1))
	r.i++
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// readers gives the same body in several read patterns.
func readers(data []byte) map[string]func() io.Reader {
	return map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(data) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
		"odd":      func() io.Reader { return &chunkReader{data: data, sizes: []int{3, 1, 700, 2, 65537, 5}} },
		"data+EOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
	}
}

var errorClasses = []error{ErrMalformed, ErrNotCRL, ErrUnhandledExtension, ErrUntrustedIssuer, ErrSignature, ErrTooLarge}

func errorClass(err error) error {
	for _, e := range errorClasses {
		if errors.Is(err, e) {
			return e
		}
	}
	return err
}

// sameAsParseVerified checks ReadVerified reaches ParseVerified's verdict
// on data (after Decode) in every read pattern, with the same fields.
func sameAsParseVerified(t *testing.T, data []byte, trusted []*x509.Certificate) {
	t.Helper()
	var want *CRL
	var wantCA *x509.Certificate
	der, wantErr := Decode(data)
	if wantErr == nil {
		want, wantCA, wantErr = ParseVerified(der, trusted)
	}
	for name, r := range readers(data) {
		for _, chunk := range []int{chunkSize, 4096, 61} {
			if chunk < 4096 && len(data) > 1<<16 && name == "one byte" {
				continue // slow, and "odd" crosses chunks as well
			}
			readOne(t, fmt.Sprintf("%s, %d-octet chunks", name, chunk), r(), chunk, trusted, der, want, wantCA, wantErr)
		}
	}
}

func readOne(t *testing.T, name string, r io.Reader, chunk int, trusted []*x509.Certificate, der []byte, want *CRL, wantCA *x509.Certificate, wantErr error) {
	t.Helper()
	{
		c, ca, d, err := readVerified(r, DefaultMaxSize, trusted, chunk)
		if errorClass(err) != errorClass(wantErr) {
			t.Fatalf("%s: ReadVerified: %v; ParseVerified: %v", name, err, wantErr)
		}
		if err != nil {
			return
		}
		if ca != wantCA {
			t.Fatalf("%s: verified by %v, want %v", name, ca.Subject, wantCA.Subject)
		}
		if d.SHA256 != sha256.Sum256(der) || d.Size != int64(len(der)) {
			t.Fatalf("%s: digest %x/%d, want the DER's", name, d.SHA256, d.Size)
		}
		sameCRL(t, c, want)
	}
}

func sameCRL(t *testing.T, c, want *CRL) {
	t.Helper()
	switch {
	case !bytes.Equal(c.RawIssuer, want.RawIssuer), !c.ThisUpdate.Equal(want.ThisUpdate), !c.NextUpdate.Equal(want.NextUpdate):
		t.Fatal("issuer or dates differ")
	case (c.Number == nil) != (want.Number == nil) || (c.Number != nil && c.Number.Cmp(want.Number) != 0):
		t.Fatalf("CRLNumber %v, want %v", c.Number, want.Number)
	case !bytes.Equal(c.AuthorityKeyID, want.AuthorityKeyID), c.SignatureAlgorithm != want.SignatureAlgorithm, !bytes.Equal(c.Signature, want.Signature):
		t.Fatal("key identifier or signature differ")
	case c.Entries != want.Entries || c.Negative != want.Negative || c.Serials.Len() != want.Serials.Len():
		t.Fatalf("entries %d/%d negative %d/%d serials %d/%d", c.Entries, want.Entries, c.Negative, want.Negative, c.Serials.Len(), want.Serials.Len())
	}
	if a, r := diffCounts(want.Serials, c.Serials); a != 0 || r != 0 {
		t.Fatalf("serials differ: %d added, %d removed", a, r)
	}
}

func TestReadVerifiedMatchesParseVerified(t *testing.T) {
	g := testpki.New(t0)
	ca := testCA(t, g, "stream CA")
	impostor := testCA(t, g, "stream CA")
	rsaCA := testpki.Must(g.Root(testpki.Options{CN: "stream rsa CA", KeyType: testpki.RSA2048}))
	edCA := testpki.Must(g.Root(testpki.Options{CN: "stream ed25519 CA", KeyType: testpki.Ed25519}))
	noCRLSign := testpki.Must(g.Root(testpki.Options{CN: "stream no crlsign CA", KeyUsage: x509.KeyUsageCertSign}))
	trusted := caPool(ca, rsaCA, edCA, noCRLSign)
	good := mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(1, 2), Number: 1})
	bodies := map[string][]byte{
		"empty list":                 mustCRL(t, ca, testpki.CRLOptions{Number: 1}),
		"unsorted, zero, duplicates": mustCRL(t, ca, testpki.CRLOptions{Revoked: serials(9, 0, 3, 1<<40, 3, 2, 1<<20, 9), Number: 2}),
		"big random":                 buildCRL(t, ca, bigCRLOptions{N: 20_000, Number: 3, ReasonCode: true}),
		"big sequential":             buildCRL(t, ca, bigCRLOptions{N: 20_000, Number: 3, Sequential: true}),
		"RSA":                        buildCRL(t, rsaCA, bigCRLOptions{N: 300, Number: 3}),
		"PEM":                        testpki.CRLPEM(good),
		"wrong signer":               mustCRL(t, impostor, testpki.CRLOptions{Revoked: serials(1), Number: 1}),
		"no cRLSign":                 buildCRL(t, noCRLSign, bigCRLOptions{N: 3, Number: 1}),
		"trailing data":              append(slices.Clone(good), 0),
		"truncated":                  good[:len(good)-3],
		"empty body":                 nil,
		"garbage":                    []byte("0hello"),
		"html":                       []byte("<html>"),
	}
	flipped := slices.Clone(good)
	flipped[len(flipped)-5] ^= 1
	bodies["flipped signature bit"] = flipped
	for _, alg := range []x509.SignatureAlgorithm{x509.SHA384WithRSA, x509.SHA512WithRSA, x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS} {
		bodies[alg.String()] = createCRL(t, rsaCA, alg)
	}
	for _, alg := range []x509.SignatureAlgorithm{x509.ECDSAWithSHA384, x509.ECDSAWithSHA512} {
		bodies[alg.String()] = createCRL(t, ca, alg)
	}
	bodies["Ed25519"] = createCRL(t, edCA, x509.PureEd25519)
	for name, data := range bodies {
		t.Run(name, func(t *testing.T) { sameAsParseVerified(t, data, trusted) })
	}
}

func createCRL(t *testing.T, ca *testpki.Cert, alg x509.SignatureAlgorithm) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: t0, NextUpdate: t0.AddDate(0, 0, 1), SignatureAlgorithm: alg,
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(77), RevocationTime: t0}},
	}
	der, err := x509.CreateRevocationList(randReader{}, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ParseVerified(der, caPool(ca)); err != nil {
		t.Fatalf("%v: %v", alg, err)
	}
	return der
}

func TestReadVerifiedReadErrors(t *testing.T) {
	ca := testCA(t, testpki.New(t0), "read error CA")
	der := buildCRL(t, ca, bigCRLOptions{N: 1000, Number: 1})
	boom := errors.New("connection reset")
	_, _, _, err := ReadVerified(io.MultiReader(bytes.NewReader(der[:len(der)/2]), iotest.ErrReader(boom)), DefaultMaxSize, caPool(ca))
	var re *ReadError
	if !errors.As(err, &re) || !errors.Is(err, boom) {
		t.Fatalf("a failing body: %v, want a ReadError", err)
	}
	_, _, _, err = ReadVerified(bytes.NewReader(der), int64(len(der)-1), caPool(ca))
	if !errors.As(err, &re) || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a body over the limit: %v, want a ReadError with ErrTooLarge", err)
	}
	if _, _, _, err := ReadVerified(bytes.NewReader(der), int64(len(der)), caPool(ca)); err != nil {
		t.Fatalf("a body at the limit: %v", err)
	}
}

// TestReadVerifiedStreams checks a large CRL read from a file allocates
// about its index, not its DER.
func TestReadVerifiedStreams(t *testing.T) {
	ca := testCA(t, testpki.New(t0), "streaming CA")
	der := buildCRL(t, ca, bigCRLOptions{N: 200_000, Number: 1, ReasonCode: true})
	file := filepath.Join(t.TempDir(), "big.crl")
	if err := os.WriteFile(file, der, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c, _, _, err := ReadVerified(f, DefaultMaxSize, caPool(ca))
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	index := uint64(c.Serials.Bytes())
	t.Logf("%d-octet DER: %d octets allocated, index %d", len(der), alloc, index)
	if limit := index + 2<<20; alloc > limit {
		t.Fatalf("allocated %d octets to read a %d-octet CRL, want at most the %d-octet index + 2 MiB", alloc, len(der), index)
	}
}
