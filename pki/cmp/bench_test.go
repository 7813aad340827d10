package cmp

import (
	"context"
	"flag"
	"os/exec"
	"strings"
	"testing"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

// BenchmarkIR times one ir round trip with PBM (ir/ip, certConf/pkiConf)
// against the openssl cmp mock: this client, and `openssl cmp -cmd ir`
// against the same mock, side by side. The openssl figure includes starting
// its process, which is how an operator or a script would run it.
func BenchmarkIR(b *testing.B) {
	args := []string{"-test.run=^$", "-test.bench=^BenchmarkIR$"}
	for _, name := range []string{"test.benchtime", "test.benchmem", "test.count"} {
		if f := flag.Lookup(name); f != nil {
			args = append(args, "-"+name+"="+f.Value.String())
		}
	}
	if !inNetns(b, args...) {
		return
	}
	p := newOpenSSLPKI(b)
	key := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
	_, rsp := p.issue(b, "bench.pem", key, nil)
	keyFile := p.write(b, "bench.key", testpki.KeyPEM(key))
	url := startMock(b, p.files, rsp)
	ctx := context.Background()
	b.Run("pki-agent", func(b *testing.B) {
		c := p.client(url)
		req := Request{Kind: IR, Key: key, Subject: router1, Protection: PBM{Reference: "3078", Secret: []byte("insta")}}
		for b.Loop() {
			if _, err := c.Enroll(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("openssl-cmp", func(b *testing.B) {
		server := strings.TrimPrefix(url, "http://")
		for b.Loop() {
			out, err := exec.Command("openssl", "cmp", "-config", "", "-server", server, "-cmd", "ir",
				"-ref", "3078", "-secret", "pass:insta", "-recipient", "/CN=Test CMP CA",
				"-newkey", keyFile, "-subject", "/CN=router1", "-out_trusted", p.files.CA,
				"-certout", p.files.Dir+"/bench-out.pem").CombinedOutput()
			if err != nil {
				b.Fatalf("openssl cmp: %v\n%s", err, out)
			}
		}
	})
}
