package redact

import (
	"crypto/x509"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

func TestValue(t *testing.T) {
	key := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
	keyPEM := string(testpki.KeyPEM(key))
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	tests := []struct {
		desc, in, want string
	}{
		{desc: "short", in: "yes", want: `"yes"`},
		{desc: "empty", in: "", want: `""`},
		{desc: "64 characters", in: strings.Repeat("a", 64), want: `"` + strings.Repeat("a", 64) + `"`},
		{desc: "65 characters", in: strings.Repeat("a", 65), want: `"` + strings.Repeat("a", 64) + `"... (65 bytes)`},
		{desc: "1 MiB", in: strings.Repeat("é", 1<<19), want: `"` + strings.Repeat("é", 64) + `"... (1048576 bytes)`},
		{desc: "PEM private key", in: keyPEM, want: KeyMaterial + " (" + itoa(len(keyPEM)) + " bytes)"},
		{desc: "base64 DER private key", in: base64.StdEncoding.EncodeToString(der), want: KeyMaterial + " (" + itoa(len(base64.StdEncoding.EncodeToString(der))) + " bytes)"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := Value(tc.in); got != tc.want {
				t.Errorf("Value = %.200s, want %.200s", got, tc.want)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestMessageNeverCarriesKeyBytes(t *testing.T) {
	key := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
	keyPEM := string(testpki.KeyPEM(key))
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	b64 := base64.StdEncoding.EncodeToString(der)
	escaped := strings.ReplaceAll(keyPEM, "\n", `\n`)
	for _, msg := range []string{
		"value " + keyPEM + " is not a boolean",
		`json_ietf_val:"\"` + escaped + `\""`,
		"cut " + keyPEM[:len(keyPEM)/2],
		"bare " + b64 + " here",
		"lower " + strings.ToLower(keyPEM),
	} {
		got := Message(msg)
		for i := 0; i+12 <= len(b64); i += 4 {
			if strings.Contains(got, b64[i:i+12]) {
				t.Fatalf("Message(%.40q...) = %q carries key base64", msg, got)
			}
		}
		if !strings.Contains(got, KeyMaterial) {
			t.Errorf("Message(%.40q...) = %q does not say key material was removed", msg, got)
		}
	}
	long := Message(strings.Repeat("no such leaf ", 1000))
	if len(long) > MaxMessage+32 || !strings.HasSuffix(long, "(13000 bytes)") {
		t.Errorf("10000-byte message rendered as %d bytes ending %q", len(long), long[len(long)-20:])
	}
	for _, plain := range []string{
		"plain error at /authority/router[name=r1]",
		"certificate " + strings.Repeat("ab12", 16) + " is installed", // a SHA-256 fingerprint
		"router " + strings.Repeat("Abc", 21) + "x is not configured", // a 64-character name
	} {
		if got := Message(plain); got != plain {
			t.Errorf("plain message changed: %q -> %q", plain, got)
		}
	}
	if got := Message("blob " + strings.Repeat("QUJD", 40) + " here"); got != "blob QUJDQUJDQUJDQUJD... (160 characters of base64) here" {
		t.Errorf("long base64 rendered as %q", got)
	}
}
