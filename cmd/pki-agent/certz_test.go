package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnsi/certz"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

type passwordCreds struct{}

func (passwordCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"username": "admin", "password": adminPassword}, nil
}
func (passwordCreds) RequireTransportSecurity() bool { return true }

// dialTLS connects to addr trusting roots and reports the certificate the
// server presented on seen.
func dialTLS(t testing.TB, addr string, roots *x509.CertPool, seen chan<- *x509.Certificate) *grpc.ClientConn {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", VerifyConnection: func(cs tls.ConnectionState) error {
		seen <- cs.PeerCertificates[0]
		return nil
	}}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)), grpc.WithPerRPCCredentials(passwordCreds{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestTLSCertNameRotatedWithCertz runs the binary with --tls-cert-name:
// it serves the bootstrapped certificate until the managed one exists; a
// certz Rotate of profile gNxI provisions it (key on the box, CSR, CA
// signs, upload with trust bundle, finalize); new connections verify it,
// the connection made before keeps working, and a restart serves it at
// once.
func TestTLSCertNameRotatedWithCertz(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	p := runAgentBinary(t, state, "--tls-cert-name", "gnmi")
	p.logged(t, "has no certificate yet")
	addr := logAttr(p.logged(t, "gNMI listening"), "addr")
	bootPEM, err := os.ReadFile(filepath.Join(state, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	boot := x509.NewCertPool()
	boot.AppendCertsFromPEM(bootPEM)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	oldSeen := make(chan *x509.Certificate, 4)
	old := dialTLS(t, addr, boot, oldSeen)
	if _, err := gpb.NewGNMIClient(old).Capabilities(ctx, &gpb.CapabilityRequest{}); err != nil {
		t.Fatalf("bootstrapped certificate: %v", err)
	}

	ca := testpki.Must(testpki.New(time.Now()).Root(testpki.Options{CN: "e2e root"}))
	st, err := certz.NewCertzClient(old).Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(r *certz.RotateCertificateRequest) *certz.RotateCertificateResponse {
		t.Helper()
		r.SslProfileId = "gNxI"
		if err := st.Send(r); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil && err != io.EOF {
			t.Fatalf("%T: %v\n%s", r.RotateRequest, err, p.log())
		}
		return resp
	}
	resp := send(&certz.RotateCertificateRequest{RotateRequest: &certz.RotateCertificateRequest_GenerateCsr{GenerateCsr: &certz.GenerateCSRRequest{Params: &certz.CSRParams{
		CsrSuite: certz.CSRSuite_CSRSUITE_X509_KEY_TYPE_ECDSA_PRIME256V1_SIGNATURE_ALGORITHM_SHA_2_256, CommonName: "localhost",
		San: &certz.V3ExtensionSAN{Dns: []string{"localhost"}, Ips: []string{"127.0.0.1"}},
	}}}})
	leaf := issue(t, ca, resp.GetGeneratedCsr().GetCertificateSigningRequest().GetCertificateSigningRequest())
	cert := func(c *x509.Certificate) *certz.Certificate {
		return &certz.Certificate{Type: certz.CertificateType_CERTIFICATE_TYPE_X509, Encoding: certz.CertificateEncoding_CERTIFICATE_ENCODING_DER,
			CertificateType: &certz.Certificate_RawCertificate{RawCertificate: c.Raw}}
	}
	send(&certz.RotateCertificateRequest{RotateRequest: &certz.RotateCertificateRequest_Certificates{Certificates: &certz.UploadRequest{Entities: []*certz.Entity{
		{Version: "1", Entity: &certz.Entity_TrustBundle{TrustBundle: &certz.CertificateChain{Certificate: cert(ca.Cert)}}},
		{Version: "1", Entity: &certz.Entity_CertificateChain{CertificateChain: &certz.CertificateChain{Certificate: cert(leaf)}}},
	}}}})
	send(&certz.RotateCertificateRequest{RotateRequest: &certz.RotateCertificateRequest_FinalizeRotation{FinalizeRotation: &certz.FinalizeRequest{}}})

	newSeen := make(chan *x509.Certificate, 4)
	fresh := dialTLS(t, addr, testpki.Pool(ca), newSeen)
	if _, err := gpb.NewGNMIClient(fresh).Capabilities(ctx, &gpb.CapabilityRequest{}); err != nil {
		t.Fatalf("managed certificate: %v\n%s", err, p.log())
	}
	if got := <-newSeen; !got.Equal(leaf) {
		t.Fatalf("a new connection sees %s, want the rotated certificate", got.Subject)
	}
	if _, err := gpb.NewGNMIClient(old).Capabilities(ctx, &gpb.CapabilityRequest{}); err != nil {
		t.Fatalf("the connection made before the rotation broke: %v", err)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	p = runAgentBinary(t, state, "--tls-cert-name", "gnmi")
	addr = logAttr(p.logged(t, "gNMI listening"), "addr")
	p.logged(t, "serving the managed certificate")
	again := make(chan *x509.Certificate, 4)
	if _, err := gpb.NewGNMIClient(dialTLS(t, addr, testpki.Pool(ca), again)).Capabilities(ctx, &gpb.CapabilityRequest{}); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if got := <-again; !got.Equal(leaf) {
		t.Fatalf("after restart the server presents %s", got.Subject)
	}
}

// issue is the CA signing the CSR the agent generated.
func issue(t *testing.T, ca *testpki.Cert, csrPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := issueCert(ca, csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// issueCert signs a CSR (PEM) with ca for 30 days, as issue does, and
// returns errors instead of failing the test (for worker goroutines).
func issueCert(ca *testpki.Cert, csrPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil {
		return nil, fmt.Errorf("CSR is not PEM: %.80q", csrPEM)
	}
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: req.Subject, DNSNames: req.DNSNames, IPAddresses: req.IPAddresses,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, req.PublicKey, ca.Key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
