package crl

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

func fuzzSeeds(f *testing.F) [][]byte {
	seeds, _ := fuzzSeedsCA(f)
	return seeds
}

// fuzzSeedsCA returns the seeds and the CA that signed them.
func fuzzSeedsCA(f *testing.F) ([][]byte, *testpki.Cert) {
	g := testpki.New(t0)
	ca := testpki.Must(g.Root(testpki.Options{CN: "fuzz CA"}))
	var out [][]byte
	add := func(o testpki.CRLOptions) {
		o.ThisUpdate, o.NextUpdate = t0, t0.Add(time.Hour)
		out = append(out, testpki.Must(testpki.CRLWith(ca, o)))
	}
	add(testpki.CRLOptions{Number: 1})
	add(testpki.CRLOptions{Number: 2, Revoked: serials(0, 1, 127, 128, 255, 256, 1<<40)})
	add(testpki.CRLOptions{Number: 3, Revoked: serials(5), ExtraExtensions: []pkixExt{ext([]int{2, 5, 29, 28}, false, []byte{0x30, 0})}})
	add(testpki.CRLOptions{Number: 4, ExtraExtensions: []pkixExt{ext([]int{2, 5, 29, 27}, true, []byte{2, 1, 1})}})
	out = append(out, buildCRL(f, ca, bigCRLOptions{N: 20, Number: 5, ReasonCode: true}))
	return out, ca
}

// FuzzReadVerified checks the streaming parser never panics and reaches
// ParseVerified's verdict (and fields) whatever the read sizes.
func FuzzReadVerified(f *testing.F) {
	seeds, ca := fuzzSeedsCA(f)
	for i, s := range seeds {
		f.Add(s, uint32(i*7919))
		f.Add(testpki.CRLPEM(s), uint32(i))
	}
	trusted := caPool(ca)
	f.Fuzz(func(t *testing.T, data []byte, split uint32) {
		sizes := []int{int(split & 0xff), int(split >> 8 & 0xfff), int(split >> 20)}
		var want *CRL
		der, wantErr := Decode(data)
		if wantErr == nil {
			want, _, wantErr = ParseVerified(der, trusted)
		}
		chunk := chunkSize
		if split&1 == 1 {
			chunk = 1 + int(split>>1%97) // every element crosses chunks somewhere
		}
		c, _, d, err := readVerified(&chunkReader{data: data, sizes: sizes}, DefaultMaxSize, trusted, chunk)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("ReadVerified: %v; ParseVerified: %v", err, wantErr)
		}
		if err != nil {
			return
		}
		if d.Size != int64(len(der)) {
			t.Fatalf("size %d, DER %d", d.Size, len(der))
		}
		sameCRL(t, c, want)
	})
}

// FuzzParse checks that Parse never panics and, when crypto/x509 accepts
// the same input, that both see the same fields and serials.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		if c.Serials.Len() > c.Entries {
			t.Fatalf("%d distinct serials from %d entries", c.Serials.Len(), c.Entries)
		}
		rl, err := x509.ParseRevocationList(data)
		if err != nil {
			return // we are lenient on entry revocation dates only
		}
		if len(rl.RevokedCertificateEntries) != c.Entries {
			t.Fatalf("entries: ours %d, x509 %d", c.Entries, len(rl.RevokedCertificateEntries))
		}
		if !bytes.Equal(rl.RawIssuer, c.RawIssuer) || !rl.ThisUpdate.Equal(c.ThisUpdate) || !rl.NextUpdate.Equal(c.NextUpdate) {
			t.Fatal("issuer or dates differ from crypto/x509")
		}
		if (rl.Number == nil) != (c.Number == nil) || (c.Number != nil && rl.Number.Cmp(c.Number) != 0) {
			t.Fatalf("CRLNumber: ours %v, x509 %v", c.Number, rl.Number)
		}
		for _, e := range rl.RevokedCertificateEntries {
			if e.SerialNumber.Sign() >= 0 && !c.Serials.Contains(e.SerialNumber) {
				t.Fatalf("serial %v missing from the index", e.SerialNumber)
			}
		}
		if !c.Serials.Contains(big.NewInt(0)) && c.Serials.zero {
			t.Fatal("zero flag inconsistent")
		}
	})
}

// FuzzDecode checks PEM/DER detection never panics and only returns DER
// that starts with a SEQUENCE.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
		f.Add(testpki.CRLPEM(s))
	}
	f.Add([]byte("-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n"))
	f.Add([]byte("<html>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		der, err := Decode(data)
		if err == nil && (len(der) == 0 || der[0] != 0x30) {
			t.Fatalf("Decode returned %x", der)
		}
		if err == nil {
			Parse(der)
		}
	})
}

// FuzzMasterFile checks a damaged master list is refused, never a panic.
func FuzzMasterFile(f *testing.F) {
	g := testpki.New(t0)
	ca := testpki.Must(g.Root(testpki.Options{CN: "fuzz master CA"}))
	c, err := Parse(buildCRL(f, ca, bigCRLOptions{N: 5, Number: 1}))
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	if err := writeMaster(dir, t0, []storedList{{url: "http://x/y", h: &held{rawIssuer: c.RawIssuer, serials: c.Serials, number: big.NewInt(1)}}}); err != nil {
		f.Fatal(err)
	}
	data, _ := readFile(dir)
	f.Add(data)
	raw, _ := asn1.Marshal(1)
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		lists, err := decodeMaster(data)
		if err != nil {
			return
		}
		for _, l := range lists {
			l.h.serials.Contains(big.NewInt(1))
		}
	})
}
