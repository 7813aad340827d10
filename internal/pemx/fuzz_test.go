package pemx

import (
	"bytes"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

// FuzzCertificates checks that no input crashes the parser, that every
// failure is a *pemx.Error with a short message, that input mentioning a
// private key is always refused as one, and that accepted blocks re-encode
// to the same blocks.
func FuzzCertificates(f *testing.F) {
	fx := newFixture(f)
	chain := testpki.PEM(fx.chain...)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(fx.ecKey)
	seeds := [][]byte{
		chain,
		fx.chain[0].PEM(),
		fx.chain[0].Cert.Raw,
		append(append([]byte{}, chain...), pemBlock("PRIVATE KEY", pkcs8)...),
		pemBlock("CERTIFICATE", pkcs8),
		fakePFX(f),
		chain[:len(chain)/2],
		[]byte("-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END CERTIFICATE-----\n"),
		[]byte("-----BEGIN X-----\n-----BEGIN Y-----\n-----END Y-----\n"),
		[]byte("\r\n\r\n"),
		[]byte("MIIB"),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		blocks, err := Decode(data, DefaultLimits)
		certs, cerr := Certificates(data, DefaultLimits)
		for _, e := range []error{err, cerr} {
			if e == nil {
				continue
			}
			var pe *Error
			if !errors.As(e, &pe) {
				t.Fatalf("error %T %v is not *pemx.Error", e, e)
			}
			if n := len(e.Error()); n > 600 {
				t.Fatalf("error message is %d bytes", n)
			}
		}
		if containsFold(data, "PRIVATE KEY") && !errors.Is(err, ErrPrivateKey) {
			t.Fatalf("input mentions a private key but error = %v", err)
		}
		if err != nil {
			if cerr == nil {
				t.Fatalf("Decode failed (%v) but Certificates succeeded", err)
			}
			return
		}
		if len(blocks) == 0 || len(blocks) > DefaultLimits.MaxBlocks {
			t.Fatalf("Decode returned %d blocks", len(blocks))
		}
		total := 0
		var re []byte
		for _, b := range blocks {
			if len(b.Bytes) == 0 {
				t.Fatal("empty block accepted")
			}
			total += len(b.Bytes)
			re = append(re, encode(b)...)
		}
		if total > len(data) {
			t.Fatalf("decoded %d bytes from %d bytes of input", total, len(data))
		}
		again, err := Decode(re, DefaultLimits)
		if err != nil {
			t.Fatalf("re-encoded blocks do not decode: %v", err)
		}
		for i := range again {
			if again[i].Type != blocks[i].Type || !bytes.Equal(again[i].Bytes, blocks[i].Bytes) {
				t.Fatalf("block %d changed after re-encoding", i+1)
			}
		}
		if cerr == nil && len(certs) != len(blocks) {
			t.Fatalf("%d certificates from %d blocks", len(certs), len(blocks))
		}
	})
}

func encode(b Block) []byte {
	return pemBlock(b.Type, b.Bytes)
}
