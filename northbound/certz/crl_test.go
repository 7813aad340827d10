package certz_test

import (
	"context"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/openconfig/gnsi/certz"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/testpki"
	certzsrv "github.com/pkiagent/pkiagent/northbound/certz"
)

func crlEntity(ders ...[]byte) *certz.Entity {
	b := &certz.CertificateRevocationListBundle{}
	for _, d := range ders {
		b.CertificateRevocationLists = append(b.CertificateRevocationLists, &certz.CertificateRevocationList{
			Type: certz.CertificateType_CERTIFICATE_TYPE_X509, Encoding: certz.CertificateEncoding_CERTIFICATE_ENCODING_PEM,
			CertificateRevocationList: testpki.CRLPEM(d)})
	}
	return &certz.Entity{Entity: &certz.Entity_CertificateRevocationListBundle{CertificateRevocationListBundle: b}}
}

// waitStatus waits for the status of the managed certificate certName.
func (e *env) waitStatus(t *testing.T, want gen.E_PkiAuthority_CertificateStatus) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := e.store.State()
		got := st.GetCertificates().GetCertificate(certName).GetStatus()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate %s status %v, want %v", certName, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRotateCRLBundle: a CRL bundle revoking the certificate in force is
// live as soon as it is uploaded (the certificate is graded revoked, and a
// certificate it revokes is refused by import check 3), is withdrawn when
// the Rotate ends without finalize, and stays after finalize.
func TestRotateCRLBundle(t *testing.T) {
	e := newEnv(t)
	c := e.dial("admin", adminPW, e.ca).certz()
	const p = certzsrv.ServerProfile
	revokeA := testpki.Must(testpki.CRL(e.ca, []*big.Int{e.certA.SerialNumber}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), 1))
	e.waitStatus(t, gen.PkiAuthority_CertificateStatus_valid)

	// Uploaded, then abandoned: revoked while the Rotate runs, valid after.
	sctx, cancel := context.WithCancel(ctxT(t))
	st, err := c.Rotate(sctx)
	if err != nil {
		t.Fatal(err)
	}
	upload(t, st, uploadReq(p, crlEntity(revokeA)))
	e.waitStatus(t, gen.PkiAuthority_CertificateStatus_revoked)
	cancel()
	st.Recv()
	e.waitStatus(t, gen.PkiAuthority_CertificateStatus_valid)

	// A CRL from an untrusted CA is refused like a fetched one.
	other := testpki.Must(e.gen.Root(testpki.Options{CN: "untrusted CRL issuer"}))
	st, err = c.Rotate(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	st.Send(uploadReq(p, crlEntity(testpki.Must(testpki.CRL(other, nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), 1)))))
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "not a trusted CA") {
		t.Fatalf("untrusted CRL: %v", err)
	}

	// Finalized: it stays, and check 3 refuses the revoked certificate.
	st, err = c.Rotate(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	upload(t, st, uploadReq(p, crlEntity(revokeA)))
	st.Send(uploadReq(p, chainEntity("", e.certA)))
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked certificate: %v", err)
	}
	e.waitStatus(t, gen.PkiAuthority_CertificateStatus_valid) // that Rotate failed: rolled back
	st, _ = c.Rotate(ctxT(t))
	upload(t, st, uploadReq(p, crlEntity(revokeA)))
	st.Send(finalizeReq(p))
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("finalize: %v", err)
	}
	e.waitStatus(t, gen.PkiAuthority_CertificateStatus_revoked)
}
