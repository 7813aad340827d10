package certz_test

import (
	"context"
	"io"
	"testing"
	"time"

	certzsrv "github.com/pkiagent/pkiagent/northbound/certz"
)

// BenchmarkRotate is one full Rotate of the gNxI profile over loopback
// TLS: an ECDSA P-256 key generated on the box and its CSR, the CA signs,
// upload of the certificate (three import checks, key swap, certificate
// saved, TLS reload), finalize.
func BenchmarkRotate(b *testing.B) {
	e := newEnv(b)
	c := e.dial("admin", adminPW, e.ca).certz()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const p = certzsrv.ServerProfile
	for b.Loop() {
		st, err := c.Rotate(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Send(csrReq(p, p256)); err != nil {
			b.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			b.Fatal(err)
		}
		cert := signCSR(b, e.ca, resp.GetGeneratedCsr().GetCertificateSigningRequest().GetCertificateSigningRequest())
		if err := st.Send(uploadReq(p, chainEntity("", cert))); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			b.Fatal(err)
		}
		if err := st.Send(finalizeReq(p)); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Recv(); err != io.EOF {
			b.Fatal(err)
		}
	}
}
