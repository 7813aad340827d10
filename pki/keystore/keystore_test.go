package keystore

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestKeySpecValidate(t *testing.T) {
	for _, c := range []struct {
		desc    string
		spec    KeySpec
		wantErr string // substring; "" means valid
	}{
		{desc: "rsa 2048", spec: KeySpec{Algorithm: "rsa", RSABits: 2048}},
		{desc: "rsa 2304", spec: KeySpec{Algorithm: "rsa", RSABits: 2304}},
		{desc: "rsa 4096", spec: KeySpec{Algorithm: "rsa", RSABits: 4096}},
		{desc: "rsa ignores curve", spec: KeySpec{Algorithm: "rsa", RSABits: 3072, Curve: "bogus"}},
		{desc: "rsa 1024", spec: KeySpec{Algorithm: "rsa", RSABits: 1024}, wantErr: "rsa-key-size 1024: must be 2048 to 4096 in steps of 256"},
		{desc: "rsa 2100", spec: KeySpec{Algorithm: "rsa", RSABits: 2100}, wantErr: "rsa-key-size 2100"},
		{desc: "rsa 4352", spec: KeySpec{Algorithm: "rsa", RSABits: 4352}, wantErr: "rsa-key-size 4352"},
		{desc: "rsa 0", spec: KeySpec{Algorithm: "rsa"}, wantErr: "rsa-key-size 0"},
		{desc: "p256", spec: KeySpec{Algorithm: "ecc", Curve: "secp256r1"}},
		{desc: "p384", spec: KeySpec{Algorithm: "ecc", Curve: "secp384r1"}},
		{desc: "p521 ignores bits", spec: KeySpec{Algorithm: "ecc", Curve: "secp521r1", RSABits: 1}},
		{desc: "ecc no curve", spec: KeySpec{Algorithm: "ecc"}, wantErr: "ecc-curve is required"},
		{desc: "ecc bad curve", spec: KeySpec{Algorithm: "ecc", Curve: "P-256"}, wantErr: `ecc-curve "P-256": must be secp256r1, secp384r1 or secp521r1`},
		{desc: "no algorithm", spec: KeySpec{}, wantErr: "algorithm is required"},
		{desc: "ed25519", spec: KeySpec{Algorithm: "ed25519"}},
		{desc: "bad algorithm", spec: KeySpec{Algorithm: "dsa"}, wantErr: `algorithm "dsa": must be rsa, ecc or ed25519`},
	} {
		t.Run(c.desc, func(t *testing.T) {
			err := c.spec.Validate()
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("Validate() = %v, want ErrInvalidSpec mentioning %q", err, c.wantErr)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	for _, c := range []struct {
		desc string
		name string
		ok   bool
	}{
		{desc: "simple", name: "router-1", ok: true},
		{desc: "all classes", name: "A.z_0-9", ok: true},
		{desc: "dotted", name: "..a", ok: true},
		{desc: "max length", name: strings.Repeat("x", 64), ok: true},
		{desc: "too long", name: strings.Repeat("x", 65)},
		{desc: "empty", name: ""},
		{desc: "dot", name: "."},
		{desc: "dotdot", name: ".."},
		{desc: "traversal", name: "../etc/passwd"},
		{desc: "slash", name: "a/b"},
		{desc: "backslash", name: `a\b`},
		{desc: "space", name: "a b"},
		{desc: "nul", name: "a\x00"},
		{desc: "newline", name: "a\n"},
		{desc: "unicode", name: "clé"},
	} {
		t.Run(c.desc, func(t *testing.T) {
			err := ValidateName(c.name)
			if c.ok != (err == nil) {
				t.Fatalf("ValidateName(%q) = %v, want ok=%t", c.name, err, c.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v does not wrap ErrInvalidName", err)
			}
		})
	}
}

func TestErrorsMatchFS(t *testing.T) {
	if !errors.Is(ErrNotFound, fs.ErrNotExist) {
		t.Error("ErrNotFound does not match fs.ErrNotExist")
	}
	if !errors.Is(ErrExists, fs.ErrExist) {
		t.Error("ErrExists does not match fs.ErrExist")
	}
}

func TestSpecOf(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ec224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	for _, c := range []struct {
		desc string
		pub  any
		want string // "" means ErrUnsupported
	}{
		{desc: "p384", pub: ec.Public(), want: "ecc-secp384r1"},
		{desc: "rsa 2048", pub: rk.Public(), want: "rsa-2048"},
		{desc: "rsa 1024", pub: small.Public()},
		{desc: "p224", pub: ec224.Public()},
		{desc: "ed25519", pub: edPub, want: "ed25519"},
	} {
		t.Run(c.desc, func(t *testing.T) {
			s, err := SpecOf(c.pub)
			if c.want == "" {
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("SpecOf = %v, %v; want ErrUnsupported", s, err)
				}
				return
			}
			if err != nil || s.String() != c.want {
				t.Fatalf("SpecOf = %v, %v; want %s", s, err, c.want)
			}
		})
	}
}
