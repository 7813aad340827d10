package csr

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pkiagent/pkiagent/internal/testpki"
)

func parse(t *testing.T, p []byte) *x509.CertificateRequest {
	t.Helper()
	b, rest := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE REQUEST" || len(rest) != 0 {
		t.Fatalf("not one CERTIFICATE REQUEST block: %q", p)
	}
	c, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCreate(t *testing.T) {
	full := Request{
		Subject: Subject{CommonName: "router1.example.net", CountryName: "US", StateProvinceName: "Massachusetts", LocalityName: "Westford", OrganizationName: "Example", OrganizationalUnitName: "NOC", EmailAddress: "noc@example.net"},
		SANs:    []SAN{{DNS, "router1.example.net"}, {DNS, "*.pop1.example.net"}, {IP, "192.0.2.1"}, {IP, "2001:db8::1"}, {URI, "spiffe://example.net/router1"}},
	}
	tests := []struct {
		desc    string
		kt      testpki.KeyType
		req     Request
		wantAlg x509.SignatureAlgorithm
	}{
		{desc: "ECDSA P-256, all fields", kt: testpki.ECDSAP256, req: full, wantAlg: x509.ECDSAWithSHA256},
		{desc: "ECDSA P-384", kt: testpki.ECDSAP384, req: Request{Subject: Subject{CommonName: "r1"}}, wantAlg: x509.ECDSAWithSHA384},
		{desc: "ECDSA P-521", kt: testpki.ECDSAP521, req: Request{Subject: Subject{CommonName: "r1"}}, wantAlg: x509.ECDSAWithSHA512},
		{desc: "RSA 2048", kt: testpki.RSA2048, req: full, wantAlg: x509.SHA256WithRSA},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			key := testpki.Must(testpki.NewKey(tc.kt))
			out, err := Create(tc.req, key)
			if err != nil {
				t.Fatal(err)
			}
			c := parse(t, out)
			if c.SignatureAlgorithm != tc.wantAlg {
				t.Errorf("signature algorithm %v, want %v", c.SignatureAlgorithm, tc.wantAlg)
			}
			if !c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Error("CSR public key is not the signer's")
			}
			if tc.req.Subject.CommonName != full.Subject.CommonName {
				return
			}
			got := []any{c.Subject.String(), c.DNSNames, len(c.IPAddresses), c.URIs[0].String()}
			want := []any{"CN=router1.example.net,OU=NOC,O=Example,L=Westford,ST=Massachusetts,C=US,1.2.840.113549.1.9.1=#0c0f6e6f63406578616d706c652e6e6574", []string{"router1.example.net", "*.pop1.example.net"}, 2, "spiffe://example.net/router1"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("CSR content (-want +got):\n%s", diff)
			}
			// Go re-renders the attribute as UTF8String; the wire has IA5String.
			if !bytes.Contains(c.RawSubject, append([]byte{asn1.TagIA5String, 15}, "noc@example.net"...)) {
				t.Error("emailAddress is not an IA5String in the subject")
			}
			if !c.IPAddresses[1].Equal(net.ParseIP("2001:db8::1")) {
				t.Errorf("IPs = %v", c.IPAddresses)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	key := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
	ok := Subject{CommonName: "r1"}
	tests := []struct {
		desc      string
		req       Request
		wantField string
	}{
		{desc: "no common name", req: Request{}, wantField: "common-name"},
		{desc: "common name too long", req: Request{Subject: Subject{CommonName: strings.Repeat("a", 65)}}, wantField: "common-name"},
		{desc: "control character", req: Request{Subject: Subject{CommonName: "r1\n"}}, wantField: "common-name"},
		{desc: "invalid UTF-8", req: Request{Subject: Subject{CommonName: "r\xff"}}, wantField: "common-name"},
		{desc: "country of three letters", req: Request{Subject: Subject{CommonName: "r1", CountryName: "USA"}}, wantField: "country-name"},
		{desc: "country lower case", req: Request{Subject: Subject{CommonName: "r1", CountryName: "us"}}, wantField: "country-name"},
		{desc: "state too long", req: Request{Subject: Subject{CommonName: "r1", StateProvinceName: strings.Repeat("s", 129)}}, wantField: "state-province-name"},
		{desc: "OU padded", req: Request{Subject: Subject{CommonName: "r1", OrganizationalUnitName: " NOC"}}, wantField: "organizational-unit-name"},
		{desc: "email with display name", req: Request{Subject: Subject{CommonName: "r1", EmailAddress: "NOC <noc@example.net>"}}, wantField: "email-address"},
		{desc: "email not an address", req: Request{Subject: Subject{CommonName: "r1", EmailAddress: "noc"}}, wantField: "email-address"},
		{desc: "DNS with underscore", req: Request{Subject: ok, SANs: []SAN{{DNS, "bad_name.example"}}}, wantField: "subject-alt-name[1]"},
		{desc: "DNS empty label", req: Request{Subject: ok, SANs: []SAN{{DNS, "a..example"}}}, wantField: "subject-alt-name[1]"},
		{desc: "DNS wildcard not leftmost", req: Request{Subject: ok, SANs: []SAN{{DNS, "a.*.example"}}}, wantField: "subject-alt-name[1]"},
		{desc: "DNS label with hyphen at end", req: Request{Subject: ok, SANs: []SAN{{DNS, "ok.example"}, {DNS, "r1-.example"}}}, wantField: "subject-alt-name[2]"},
		{desc: "IP out of range", req: Request{Subject: ok, SANs: []SAN{{IP, "300.1.1.1"}}}, wantField: "subject-alt-name[1]"},
		{desc: "IP with zone", req: Request{Subject: ok, SANs: []SAN{{IP, "fe80::1%eth0"}}}, wantField: "subject-alt-name[1]"},
		{desc: "URI relative", req: Request{Subject: ok, SANs: []SAN{{URI, "router1"}}}, wantField: "subject-alt-name[1]"},
		{desc: "URI with space", req: Request{Subject: ok, SANs: []SAN{{URI, "https://a b"}}}, wantField: "subject-alt-name[1]"},
		{desc: "unknown SAN type", req: Request{Subject: ok, SANs: []SAN{{"email", "a@b"}}}, wantField: "subject-alt-name[1]"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Create(tc.req, key)
			var fe *FieldError
			if !errors.Is(err, ErrInvalidField) || !errors.As(err, &fe) {
				t.Fatalf("error = %v, want a FieldError", err)
			}
			if fe.Field != tc.wantField {
				t.Errorf("field = %q, want %q (%v)", fe.Field, tc.wantField, err)
			}
		})
	}
}

type brokenSigner struct{ crypto.Signer }

func (b brokenSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	sig, err := b.Signer.Sign(r, d, o)
	if err == nil {
		sig[len(sig)-1] ^= 1
	}
	return sig, err
}

// An Ed25519 key signs its CSR (PureEd25519, RFC 8410).
func TestEd25519CSR(t *testing.T) {
	p, err := Create(Request{Subject: Subject{CommonName: "r1"}}, testpki.Must(testpki.NewKey(testpki.Ed25519)))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(p)
	c, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil || c.SignatureAlgorithm != x509.PureEd25519 || c.CheckSignature() != nil {
		t.Fatalf("CSR: %v, %v", c.SignatureAlgorithm, err)
	}
}

func TestSignerProblems(t *testing.T) {
	req := Request{Subject: Subject{CommonName: "r1"}}
	tests := []struct {
		desc   string
		signer crypto.Signer
		want   error
	}{
		{desc: "P-224", signer: testpki.Must(testpki.NewKey(testpki.ECDSAP224)), want: ErrUnsupportedKey},
		{desc: "RSA 1024", signer: testpki.Must(testpki.NewKey(testpki.RSA1024)), want: ErrUnsupportedKey},
		{desc: "signer producing a bad signature", signer: brokenSigner{testpki.Must(testpki.NewKey(testpki.ECDSAP256))}, want: ErrSign},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if _, err := Create(req, tc.signer); !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
		})
	}
}
