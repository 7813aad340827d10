package pki

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/internal/clock"
)

// TestKeysState: /keys lists each generated key with its public half (the
// signer's), before any certificate, and again after a restart.
func TestKeysState(t *testing.T) {
	dir := t.TempDir()
	f := newFixtureIn(t, dir, clock.NewFake(t0))
	for _, in := range []string{`{"name":"r1","algorithm":"ecc","ecc-curve":"secp384r1"}`, `{"name":"r2","algorithm":"rsa","rsa-key-size":2048}`} {
		if _, err := agent.InvokeRPC(context.Background(), f.engine, admin, "generate-private-key", []byte(in)); err != nil {
			t.Fatal(err)
		}
	}
	created := map[string]string{}
	check := func(when string) {
		st, _ := f.store.State()
		want := map[string]struct {
			alg, curve string
			size       uint16
		}{"r1": {"ecc", "secp384r1", 384}, "r2": {"rsa", "", 2048}}
		for name, w := range want {
			k := st.GetKeys().GetKey(name)
			if k.GetAlgorithm() != w.alg || k.GetCurve() != w.curve || k.GetSize() != w.size || k.GetKeyStorage().String() != "file" {
				t.Fatalf("%s: key %s: %v %v %v %v", when, name, k.GetAlgorithm(), k.GetCurve(), k.GetSize(), k.GetKeyStorage())
			}
			b, _ := pem.Decode([]byte(k.GetPublicKey()))
			signer, err := f.keys.Signer(context.Background(), name)
			if err != nil || b == nil {
				t.Fatalf("%s: %s: %v %q", when, name, err, k.GetPublicKey())
			}
			der, _ := x509.MarshalPKIXPublicKey(signer.Public())
			if string(der) != string(b.Bytes) {
				t.Fatalf("%s: %s: the public key is not the signer's", when, name)
			}
			// created: when the key was written, the same after a restart.
			c, err := time.Parse(time.RFC3339, k.GetCreated())
			if err != nil || time.Since(c) > time.Minute || time.Since(c) < -time.Second {
				t.Fatalf("%s: %s: created %q: %v", when, name, k.GetCreated(), err)
			}
			if prev, ok := created[name]; ok && prev != k.GetCreated() {
				t.Fatalf("%s: %s: created %s, before %s", when, name, k.GetCreated(), prev)
			}
			created[name] = k.GetCreated()
		}
	}
	check("after generate")
	f.close()
	f = newFixtureIn(t, dir, clock.NewFake(t0))
	check("after a restart")
}
