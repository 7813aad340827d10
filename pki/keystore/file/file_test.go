package file

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkiagent/pkiagent/pki/keystore"
	"github.com/pkiagent/pkiagent/pki/keystore/keystoretest"
)

var (
	p256 = keystore.KeySpec{Algorithm: "ecc", Curve: "secp256r1"}
	p384 = keystore.KeySpec{Algorithm: "ecc", Curve: "secp384r1"}
	p521 = keystore.KeySpec{Algorithm: "ecc", Curve: "secp521r1"}
	r2k  = keystore.KeySpec{Algorithm: "rsa", RSABits: 2048}
	r3k  = keystore.KeySpec{Algorithm: "rsa", RSABits: 3072}
)

func open(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := New(dir, nil)
	if err != nil {
		t.Fatalf("New(%s): %v", dir, err)
	}
	return s
}

func TestContract(t *testing.T) {
	keystoretest.Run(t, keystoretest.Harness{
		Kind:  "file",
		Open:  func(t *testing.T, dir string) keystore.Store { return open(t, dir) },
		Specs: []keystore.KeySpec{p256, p384, p521, r2k},
	})
}

func TestPermissionsAndFormat(t *testing.T) {
	root := filepath.Join(t.TempDir(), "state", "keys")
	s := open(t, root)
	sg, err := s.Generate(context.Background(), "router", p256)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		desc string
		path string
		want os.FileMode
	}{
		{desc: "key directory", path: root, want: 0o700},
		{desc: "key file", path: filepath.Join(root, "router.key"), want: 0o600},
	} {
		t.Run(c.desc, func(t *testing.T) {
			fi, err := os.Stat(c.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != c.want {
				t.Errorf("mode of %s = %o, want %o", c.path, got, c.want)
			}
		})
	}
	data, err := os.ReadFile(filepath.Join(root, "router.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("key file is not a PKCS #8 PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !k.(*ecdsa.PrivateKey).PublicKey.Equal(sg.Public()) {
		t.Errorf("file holds another key than the signer")
	}
	// Printing the handle must not reveal the private scalar.
	d := k.(*ecdsa.PrivateKey).D
	out := fmt.Sprintf("%v %+v %#v %s", sg, sg, sg, sg)
	for _, secret := range []string{d.String(), d.Text(16)} {
		if strings.Contains(out, secret) {
			t.Fatalf("printing the signer reveals the private key")
		}
	}
	if out := fmt.Sprint(sg); out != "file key router (ecc-secp256r1)" {
		t.Errorf("String() = %q", out)
	}
}

func TestTightensLooseDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	open(t, dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("mode = %o, want 700", fi.Mode().Perm())
	}
}

// A crash between writing the temporary file and the rename leaves a
// dot-file: it is never listed and is removed at the next open.
func TestCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := s.Generate(context.Background(), "ok", p256); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, ".torn.key.tmp-12345")
	if err := os.WriteFile(leftover, []byte("-----BEGIN PRIV"), 0o600); err != nil {
		t.Fatal(err)
	}
	if names, _ := s.Names(); len(names) != 1 || names[0] != "ok" {
		t.Errorf("Names() = %v, want [ok]", names)
	}
	open(t, dir)
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover temporary file survived a reopen: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only ok.key", len(entries))
	}
}

func TestCorruptAndForeignFiles(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	secret := "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"
	for _, c := range []struct {
		desc string
		name string
		data string
	}{
		{desc: "truncated PEM", name: "trunc", data: "-----BEGIN PRIVATE KEY-----\n" + secret},
		{desc: "garbage body", name: "garbage", data: "-----BEGIN PRIVATE KEY-----\n" + secret + "\n-----END PRIVATE KEY-----\n"},
		{desc: "wrong block type", name: "cert", data: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
		{desc: "empty", name: "empty", data: ""},
	} {
		t.Run(c.desc, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, c.name+".key"), []byte(c.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.Signer(context.Background(), c.name)
			if err == nil {
				t.Fatal("Signer accepted a corrupt key file")
			}
			if strings.Contains(err.Error(), secret[8:]) {
				t.Errorf("error echoes the file content: %v", err)
			}
		})
	}
	t.Run("symlink", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "elsewhere.key")
		if _, err := open(t, filepath.Dir(target)).Generate(context.Background(), "elsewhere", p256); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, "link.key")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Signer(context.Background(), "link"); err == nil {
			t.Error("Signer followed a symlink out of the key directory")
		}
	})
	t.Run("oversized", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "big.key"), make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Signer(context.Background(), "big"); err == nil {
			t.Error("Signer read a 1 MiB key file")
		}
	})
}

func TestNewRefusesFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "notadir")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(f, nil); err == nil {
		t.Error("New accepted a regular file as its directory")
	}
}

func BenchmarkGenerate(b *testing.B) {
	for _, spec := range []keystore.KeySpec{r2k, r3k, p256, p384, p521} {
		b.Run(spec.String(), func(b *testing.B) {
			s := open(b, b.TempDir())
			i := 0
			for b.Loop() {
				if _, err := s.Generate(context.Background(), fmt.Sprintf("k%d", i), spec); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkSign(b *testing.B) {
	for _, spec := range []keystore.KeySpec{p256, r2k} {
		b.Run(spec.String(), func(b *testing.B) {
			s := open(b, b.TempDir())
			sg, err := s.Generate(context.Background(), "k", spec)
			if err != nil {
				b.Fatal(err)
			}
			d := make([]byte, 32)
			for b.Loop() {
				if _, err := sg.Sign(nil, d, crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
