package pemx

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pkiagent/pkiagent/internal/testpki"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

type fixture struct {
	chain  []*testpki.Cert // root, intermediate, leaf
	ecKey  *ecdsa.PrivateKey
	rsaKey *rsa.PrivateKey
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	g := testpki.New(now)
	cas := testpki.Must(g.Hierarchy(2))
	leaf := testpki.Must(g.Issue(cas[1], testpki.Options{CN: "r1"}))
	rk := testpki.Must(testpki.NewKey(testpki.RSA2048)).(*rsa.PrivateKey)
	return fixture{chain: append(cas, leaf), ecKey: leaf.Key.(*ecdsa.PrivateKey), rsaKey: rk}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// fakePFX is the outer shape of a PKCS#12 file: version 3 and a pkcs7-data
// ContentInfo. The standard library cannot write a real one.
func fakePFX(t testing.TB) []byte {
	type contentInfo struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue `asn1:"explicit,tag:0"`
	}
	type pfx struct {
		Version  int
		AuthSafe contentInfo
	}
	inner, _ := asn1.Marshal([]byte("not really a safe"))
	der, err := asn1.Marshal(pfx{Version: 3, AuthSafe: contentInfo{Type: oidPKCS7Data, Content: asn1.RawValue{FullBytes: inner}}})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCertificatesOK(t *testing.T) {
	f := newFixture(t)
	chain := testpki.PEM(f.chain...)
	tests := []struct {
		desc string
		in   []byte
	}{
		{desc: "three certificates", in: chain},
		{desc: "CRLF line endings", in: bytes.ReplaceAll(chain, []byte("\n"), []byte("\r\n"))},
		{desc: "blank lines and indentation", in: append([]byte("\n\n  "), bytes.ReplaceAll(chain, []byte("-----\n-----"), []byte("-----\n\n\n-----"))...)},
		{desc: "no final newline", in: bytes.TrimRight(chain, "\n")},
		// RFC 7468 section 5.2 explanatory text, as "openssl ca" (without
		// -notext), "openssl x509 -text" and PKCS#12 exports print it.
		{desc: "openssl text dump before each block", in: opensslTextDump(f)},
		{desc: "subject= and Bag Attributes lines", in: bytes.ReplaceAll(chain, []byte("-----BEGIN"),
			[]byte("Bag Attributes\n    localKeyID: 01 00 00 00\nsubject=CN = r1.example.net\nissuer=CN = Corp CA\n-----BEGIN"))},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			certs, err := Certificates(tc.in, DefaultLimits)
			if err != nil {
				t.Fatalf("Certificates: %v", err)
			}
			var got, want []string
			for i, c := range certs {
				got = append(got, c.Subject.CommonName)
				want = append(want, f.chain[i].Cert.Subject.CommonName)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("subjects (-want +got):\n%s", diff)
			}
		})
	}
}

// opensslTextDump is the chain as "openssl ca" writes a certificate it
// issues: a text dump of the certificate ahead of each PEM block.
func opensslTextDump(f fixture) []byte {
	var b bytes.Buffer
	for _, c := range f.chain {
		fmt.Fprintf(&b, "Certificate:\n    Data:\n        Version: 3 (0x2)\n        Serial Number: %s\n", c.Cert.SerialNumber)
		fmt.Fprintf(&b, "        Issuer: CN = %s\n        Subject: CN = %s\n", c.Cert.Issuer.CommonName, c.Cert.Subject.CommonName)
		b.WriteString("        Subject Public Key Info:\n            Modulus:\n                00:c3:5e:9a:77:0b:21\n")
		b.WriteString("    Signature Value:\n        30:45:02:20:1c:4e:9a:77:0b:21:5d:e3:8f:61:2a:90:cc:17:\n")
		b.Write(c.PEM())
	}
	return b.Bytes()
}

func TestPrivateKeysRefusedAndNeverEchoed(t *testing.T) {
	f := newFixture(t)
	chain := testpki.PEM(f.chain...)
	pkcs8EC, _ := x509.MarshalPKCS8PrivateKey(f.ecKey)
	sec1, _ := x509.MarshalECPrivateKey(f.ecKey)
	pkcs1 := x509.MarshalPKCS1PrivateKey(f.rsaKey)
	// EncryptedPrivateKeyInfo shape: AlgorithmIdentifier + OCTET STRING.
	enc, _ := asn1.Marshal(struct {
		Alg  struct{ OID asn1.ObjectIdentifier }
		Data []byte
	}{struct{ OID asn1.ObjectIdentifier }{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}}, pkcs8EC[:40]})
	pfx := fakePFX(t)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	tests := []struct {
		desc   string
		in     []byte
		secret []byte // DER whose base64 must not appear in the error
		want   error
	}{
		{desc: "PKCS#8 appended to chain", in: cat(chain, pemBlock("PRIVATE KEY", pkcs8EC)), secret: pkcs8EC, want: ErrPrivateKey},
		{desc: "EC PRIVATE KEY first", in: cat(pemBlock("EC PRIVATE KEY", sec1), chain), secret: sec1, want: ErrPrivateKey},
		{desc: "RSA PRIVATE KEY in the middle", in: cat(f.chain[0].PEM(), pemBlock("RSA PRIVATE KEY", pkcs1), f.chain[1].PEM()), secret: pkcs1, want: ErrPrivateKey},
		{desc: "ENCRYPTED PRIVATE KEY", in: cat(chain, pemBlock("ENCRYPTED PRIVATE KEY", enc)), secret: enc, want: ErrPrivateKey},
		{desc: "OPENSSH PRIVATE KEY", in: cat(chain, pemBlock("OPENSSH PRIVATE KEY", append([]byte("openssh-key-v1\x00"), pkcs8EC...))), secret: pkcs8EC, want: ErrPrivateKey},
		{desc: "lower-case label", in: cat(chain, pemBlock("private key", pkcs8EC)), secret: pkcs8EC, want: ErrPrivateKey},
		{desc: "truncated key block", in: cat(chain, pemBlock("PRIVATE KEY", pkcs8EC)[:200]), secret: pkcs8EC, want: ErrPrivateKey},
		{desc: "key DER under a CERTIFICATE label", in: cat(chain, pemBlock("CERTIFICATE", pkcs8EC)), secret: pkcs8EC, want: ErrPrivateKey},
		{desc: "PKCS#1 DER under a CERTIFICATE label", in: cat(pemBlock("CERTIFICATE", pkcs1)), secret: pkcs1, want: ErrPrivateKey},
		{desc: "SEC 1 DER under a CERTIFICATE label", in: cat(pemBlock("CERTIFICATE", sec1)), secret: sec1, want: ErrPrivateKey},
		{desc: "bare DER private key", in: pkcs8EC, secret: pkcs8EC, want: ErrPrivateKey},
		{desc: "bare base64 private key", in: []byte(base64.StdEncoding.EncodeToString(pkcs1)), secret: pkcs1, want: ErrPrivateKey},
		{desc: "key inside otherwise broken PEM", in: cat([]byte("junk\n"), pemBlock("PRIVATE KEY", pkcs8EC), []byte("-----BEGIN CERTIFICATE-----\n!!!")), secret: pkcs8EC, want: ErrPrivateKey},
		{desc: "DER PKCS#12", in: pfx, secret: pfx, want: ErrPKCS12},
		{desc: "PKCS12 label", in: cat(chain, pemBlock("PKCS12", pfx)), secret: pfx, want: ErrPKCS12},
		{desc: "PKCS#12 DER under CERTIFICATE label", in: cat(chain, pemBlock("CERTIFICATE", pfx)), secret: pfx, want: ErrPKCS12},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Certificates(tc.in, DefaultLimits)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Certificates error = %v, want %v", err, tc.want)
			}
			assertNotEchoed(t, err, tc.secret)
			// Check 1 alone gives the same answer.
			if err := CheckNoPrivateKey(tc.in, DefaultLimits); !errors.Is(err, tc.want) {
				t.Errorf("CheckNoPrivateKey error = %v, want %v", err, tc.want)
			}
		})
	}
}

// assertNotEchoed fails if any 12-character run of the secret's base64 (or
// 8 raw bytes of it) appears in the error text.
func assertNotEchoed(t *testing.T, err error, secret []byte) {
	t.Helper()
	msg := err.Error()
	b64 := base64.StdEncoding.EncodeToString(secret)
	for i := 0; i+12 <= len(b64); i += 4 {
		if strings.Contains(msg, b64[i:i+12]) {
			t.Fatalf("error text echoes key base64 %q: %s", b64[i:i+12], msg)
		}
	}
	for i := 0; i+8 <= len(secret); i++ {
		if strings.Contains(msg, string(secret[i:i+8])) {
			t.Fatalf("error text echoes raw key bytes: %q", msg)
		}
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t)
	one := f.chain[2].PEM()
	one = one[:len(one):len(one)] // appends below must copy
	b64 := one[len("-----BEGIN CERTIFICATE-----\n") : len(one)-len("-----END CERTIFICATE-----\n")]
	half := bytes.IndexByte(one[len(one)/2:], '\n') + len(one)/2 + 1 // a line boundary
	hundred := bytes.Repeat(one, 100)
	huge := bytes.Repeat(one, 10<<20/len(one)+1)
	csr := pemBlock("CERTIFICATE REQUEST", f.chain[2].Cert.RawTBSCertificate)
	badDER := pemBlock("CERTIFICATE", f.chain[2].Cert.Raw[:len(f.chain[2].Cert.Raw)-20])
	garbage := append([]byte("-----BEGIN CERTIFICATE-----\n"), b64...)
	garbage[60] = '!'
	garbage = append(garbage, "-----END CERTIFICATE-----\n"...)

	tests := []struct {
		desc     string
		in       []byte
		want     error
		wantText string
	}{
		{desc: "empty", in: nil, want: ErrEmpty, wantText: "input is empty"},
		{desc: "whitespace", in: []byte(" \n\t\n"), want: ErrEmpty},
		{desc: "plain text", in: []byte("hello router\n"), want: ErrEmpty, wantText: "no -----BEGIN line"},
		{desc: "truncated", in: one[:len(one)/2], want: ErrTruncated, wantText: "has no END line"},
		{desc: "truncated before next block", in: append(one[:half:half], one...), want: ErrTruncated, wantText: "before the next BEGIN line"},
		{desc: "garbage base64", in: garbage, want: ErrBase64, wantText: "line 2"},
		{desc: "bad base64 padding", in: append(append([]byte("-----BEGIN CERTIFICATE-----\n"), b64[:len(b64)-3]...), "\n-----END CERTIFICATE-----\n"...), want: ErrBase64},
		{desc: "base64 after a block", in: append(append([]byte{}, one...), b64[:64]...), want: ErrJunk, wantText: "after PEM block 1"},
		{desc: "base64 before a block", in: append(append([]byte{}, b64[:65]...), one...), want: ErrJunk, wantText: "before the first PEM block"},
		{desc: "binary bytes before a block", in: append([]byte("note\x01\x02 here\n"), one...), want: ErrJunk, wantText: "binary bytes"},
		{desc: "END label mismatch", in: bytes.Replace(one, []byte("END CERTIFICATE"), []byte("END X509 CRL"), 1), want: ErrMalformed, wantText: "does not match"},
		{desc: "END without BEGIN", in: []byte("-----END CERTIFICATE-----\n"), want: ErrMalformed},
		// Found by FuzzCertificates: Decode returned no block and no error.
		{desc: "END marker inside a line", in: []byte("0-----END 0"), want: ErrMalformed, wantText: "line 1"},
		{desc: "BEGIN marker inside a line, then text", in: []byte("see -----BEGIN CERTIFICATE----- below\nthanks\n"), want: ErrMalformed, wantText: "character 5"},
		{desc: "a dash line only", in: []byte("-----END\n"), want: ErrEmpty},
		{desc: "10 MB PEM", in: huge, want: ErrTooLarge, wantText: "limit is 1048576 bytes"},
		{desc: "100 certificates", in: hundred, want: ErrTooManyBlocks, wantText: "limit is 16 blocks"},
		{desc: "DER where PEM expected", in: f.chain[2].Cert.Raw, want: ErrDER, wantText: "openssl x509 -inform der"},
		{desc: "base64 without armor", in: b64, want: ErrNoArmor},
		{desc: "CSR instead of certificate", in: csr, want: ErrWrongType, wantText: "this is a CSR"},
		{desc: "certificate DER cut short", in: badDER, want: ErrCertificate, wantText: "block 1"},
		{desc: "empty block", in: []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), want: ErrMalformed, wantText: "empty"},
		{desc: "unreadable label", in: []byte("-----BEGIN \x01\x02-----\nAAAA\n-----END \x01\x02-----\n"), want: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Certificates(tc.in, DefaultLimits)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not *pemx.Error", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not say %q", err, tc.wantText)
			}
			if len(err.Error()) > 400 {
				t.Errorf("error text is %d bytes long; it should name the problem, not echo input", len(err.Error()))
			}
		})
	}
}

func TestHeadersKept(t *testing.T) {
	f := newFixture(t)
	in := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Headers: map[string]string{"Comment": "r1"}, Bytes: f.chain[0].Cert.Raw})
	blocks, err := Decode(in, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"Comment": "r1"}, blocks[0].Headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if !bytes.Equal(blocks[0].Bytes, f.chain[0].Cert.Raw) {
		t.Errorf("bytes differ")
	}
}

func TestBoundedMemory(t *testing.T) {
	f := newFixture(t)
	one := f.chain[2].PEM()
	tests := []struct {
		desc string
		in   []byte
		max  uint64
	}{
		{desc: "10 MB refused without scanning", in: bytes.Repeat(one, 10<<20/len(one)+1), max: 64 << 10},
		{desc: "1 MiB of PEM blocks stops at the block limit", in: bytes.Repeat(one, (1<<20)/len(one)), max: 256 << 10},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Certificates(tc.in, DefaultLimits)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("want an error")
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > tc.max {
				t.Errorf("allocated %d bytes, want <= %d", got, tc.max)
			}
		})
	}
}

func TestLimitsConfigurable(t *testing.T) {
	f := newFixture(t)
	in := testpki.PEM(f.chain...)
	if _, err := Certificates(in, Limits{MaxBytes: 100, MaxBlocks: 16}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxBytes 100: error = %v, want ErrTooLarge", err)
	}
	if _, err := Certificates(in, Limits{MaxBytes: 1 << 20, MaxBlocks: 2}); !errors.Is(err, ErrTooManyBlocks) {
		t.Errorf("MaxBlocks 2: error = %v, want ErrTooManyBlocks", err)
	}
}
