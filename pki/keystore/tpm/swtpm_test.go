package tpm

import (
	"context"
	"crypto"
	"fmt"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/swtpmtest"
	"github.com/pkiagent/pkiagent/pki/keystore"
	"github.com/pkiagent/pkiagent/pki/keystore/keystoretest"
)

func TestSwtpmContract(t *testing.T) {
	sw := swtpmtest.Start(t, t.TempDir())
	tp := openTPM(t, sw.Spec())
	keystoretest.Run(t, keystoretest.Harness{
		Kind:        "tpm",
		Open:        func(t *testing.T, dir string) keystore.Store { return newStore(t, tp, dir) },
		Specs:       []keystore.KeySpec{p256, p384, p521, r2k},
		Unsupported: []keystore.KeySpec{r4k, r2304},
	})
	if n := transientCount(t, tp); n != 0 {
		t.Errorf("%d transient objects left in swtpm", n)
	}
}

// A key made in swtpm loads and signs again after swtpm itself and the
// store are restarted over the same TPM state.
func TestSwtpmRestart(t *testing.T) {
	state, keys := t.TempDir(), t.TempDir()
	sw := swtpmtest.Start(t, state)
	tp, err := Open(sw.Spec())
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t, tp, keys)
	want := map[string]crypto.PublicKey{}
	for name, spec := range map[string]keystore.KeySpec{"ec": p256, "rsa": r2k} {
		sg, err := s.Generate(context.Background(), name, spec)
		if err != nil {
			t.Fatalf("Generate(%s): %v", spec, err)
		}
		want[name] = sg.Public()
	}
	tp.Close()
	sw.Stop()

	sw = swtpmtest.Start(t, state)
	tp = openTPM(t, sw.Spec())
	s = newStore(t, tp, keys)
	for name, pub := range want {
		sg, err := s.Signer(context.Background(), name)
		if err != nil {
			t.Fatalf("Signer(%s) after restart: %v", name, err)
		}
		if !sg.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
			t.Errorf("%s: public key changed across the restart", name)
		}
		keystoretest.CheckSigner(t, sg)
		keystoretest.CheckCSR(t, sg)
	}
}

// RSA 3072 is a size swtpm implements and the simulator does not.
func TestSwtpmRSA3072(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA 3072 generation in swtpm takes seconds")
	}
	sw := swtpmtest.Start(t, t.TempDir())
	tp := openTPM(t, sw.Spec())
	s := newStore(t, tp, t.TempDir())
	start := time.Now()
	sg, err := s.Generate(context.Background(), "big", r3k)
	if err != nil {
		t.Fatalf("Generate(rsa-3072): %v", err)
	}
	t.Logf("rsa-3072 in swtpm: %v", time.Since(start))
	keystoretest.CheckSigner(t, sg)
}

func BenchmarkSwtpmGenerate(b *testing.B) {
	sw := swtpmtest.Start(b, b.TempDir())
	tp := openTPM(b, sw.Spec())
	for _, spec := range []keystore.KeySpec{p256, r2k} {
		b.Run(spec.String(), func(b *testing.B) {
			s := newStore(b, tp, b.TempDir())
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

func BenchmarkSwtpmSign(b *testing.B) {
	sw := swtpmtest.Start(b, b.TempDir())
	tp := openTPM(b, sw.Spec())
	for _, spec := range []keystore.KeySpec{p256, r2k} {
		b.Run(spec.String(), func(b *testing.B) {
			s := newStore(b, tp, b.TempDir())
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

// When swtpm goes away, operations fail at once with an error; nothing hangs
// and no software key stands in.
func TestSwtpmDies(t *testing.T) {
	sw := swtpmtest.Start(t, t.TempDir())
	tp := openTPM(t, sw.Spec())
	s := newStore(t, tp, t.TempDir())
	sg, err := s.Generate(context.Background(), "k", p256)
	if err != nil {
		t.Fatal(err)
	}
	sw.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Signer(ctx, "k"); err == nil {
		t.Fatal("Signer succeeded with swtpm gone")
	}
	if _, err := sg.Sign(nil, make([]byte, 32), crypto.SHA256); err == nil {
		t.Fatal("Sign succeeded with swtpm gone")
	} else {
		t.Log(err)
	}
	if _, err := s.Generate(ctx, "k2", p256); err == nil {
		t.Fatal("Generate succeeded with swtpm gone")
	}
	if names, _ := s.Names(); len(names) != 1 {
		t.Errorf("Names() = %v, want only the key made before", names)
	}
}
