package certz_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnsi/certz"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/internal/testpki"
	certzsrv "github.com/pkiagent/pkiagent/northbound/certz"
)

var p256 = &certz.CSRParams{
	CsrSuite:   certz.CSRSuite_CSRSUITE_X509_KEY_TYPE_ECDSA_PRIME256V1_SIGNATURE_ALGORITHM_SHA_2_256,
	CommonName: "localhost", Organization: "pki-agent tests",
	San: &certz.V3ExtensionSAN{Dns: []string{"localhost"}, Ips: []string{"127.0.0.1"}},
}

func csrReq(profile string, p *certz.CSRParams) *certz.RotateCertificateRequest {
	return &certz.RotateCertificateRequest{SslProfileId: profile, RotateRequest: &certz.RotateCertificateRequest_GenerateCsr{GenerateCsr: &certz.GenerateCSRRequest{Params: p}}}
}

func uploadReq(profile string, entities ...*certz.Entity) *certz.RotateCertificateRequest {
	return &certz.RotateCertificateRequest{SslProfileId: profile, RotateRequest: &certz.RotateCertificateRequest_Certificates{Certificates: &certz.UploadRequest{Entities: entities}}}
}

func finalizeReq(profile string) *certz.RotateCertificateRequest {
	return &certz.RotateCertificateRequest{SslProfileId: profile, RotateRequest: &certz.RotateCertificateRequest_FinalizeRotation{FinalizeRotation: &certz.FinalizeRequest{}}}
}

func x509Cert(pemBytes []byte) *certz.Certificate {
	return &certz.Certificate{Type: certz.CertificateType_CERTIFICATE_TYPE_X509, Encoding: certz.CertificateEncoding_CERTIFICATE_ENCODING_PEM,
		CertificateType: &certz.Certificate_RawCertificate{RawCertificate: pemBytes}}
}

func chainEntity(version string, certs ...*x509.Certificate) *certz.Entity {
	return &certz.Entity{Version: version, CreatedOn: uint64(time.Now().Unix()), Entity: &certz.Entity_CertificateChain{CertificateChain: chainOf(certs...)}}
}

func trustEntity(version string, cas ...*testpki.Cert) *certz.Entity {
	var certs []*x509.Certificate
	for _, c := range cas {
		certs = append(certs, c.Cert)
	}
	return &certz.Entity{Version: version, CreatedOn: uint64(time.Now().Unix()), Entity: &certz.Entity_TrustBundle{TrustBundle: chainOf(certs...)}}
}

func chainOf(certs ...*x509.Certificate) *certz.CertificateChain {
	var ch *certz.CertificateChain
	for i := len(certs) - 1; i >= 0; i-- {
		ch = &certz.CertificateChain{Certificate: x509Cert(pemOf(certs[i])), Parent: ch}
	}
	return ch
}

// rotateCSR opens a Rotate of profile and returns the stream and the
// certificate ca issues for the CSR generated on the box.
func rotateCSR(t *testing.T, ctx context.Context, c certz.CertzClient, profile string, ca *testpki.Cert) (certz.Certz_RotateClient, *x509.Certificate) {
	t.Helper()
	st, err := c.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(csrReq(profile, p256)); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatalf("GenerateCSR: %v", err)
	}
	csr := resp.GetGeneratedCsr().GetCertificateSigningRequest()
	if csr.GetEncoding() != certz.CertificateEncoding_CERTIFICATE_ENCODING_PEM || csr.GetType() != certz.CertificateType_CERTIFICATE_TYPE_X509 {
		t.Fatalf("CSR type %v encoding %v", csr.GetType(), csr.GetEncoding())
	}
	return st, signCSR(t, ca, csr.GetCertificateSigningRequest())
}

func upload(t *testing.T, st certz.Certz_RotateClient, req *certz.RotateCertificateRequest) {
	t.Helper()
	if err := st.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	if resp.GetCertificates() == nil {
		t.Fatalf("upload answered %v", resp)
	}
}

// serving waits until a new TLS connection verified against roots sees
// want, and fails the test otherwise.
func (e *env) serving(t *testing.T, want *x509.Certificate, roots ...*testpki.Cert) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := e.handshake(roots...)
		if err == nil && got.Equal(want) {
			return
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("fingerprint " + fingerprint(got))
			}
			t.Fatalf("a new connection does not see %s (%s): %v", want.Subject, fingerprint(want), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func keyFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, "keys", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Name()+":"+fingerprintBytes(b))
	}
	return out
}

func fingerprintBytes(b []byte) string {
	return fingerprint(&x509.Certificate{Raw: b})
}

// TestRotateGNxI: the gNMI server's own certificate is rotated with a key
// generated on the box, a certificate from a new CA and that CA as trust
// bundle. Before finalize a new connection already sees the new
// certificate (the client's test step); after it, new connections see it,
// and a connection made before the rotation still works.
func TestRotateGNxI(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	old := e.dial("admin", adminPW, e.ca)
	if _, err := old.certz().GetProfileList(ctx, &certz.GetProfileListRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := <-old.seen; !got.Equal(e.certA) {
		t.Fatalf("before: the server presents %s, want certificate A", got.Subject)
	}
	caB := testpki.Must(e.gen.Root(testpki.Options{CN: "certz test root B"}))
	st, certB := rotateCSR(t, ctx, old.certz(), certzsrv.ServerProfile, caB)
	upload(t, st, uploadReq(certzsrv.ServerProfile, trustEntity("tb-1", caB), chainEntity("cert-1", certB)))

	e.serving(t, certB, caB)
	if _, err := e.handshake(e.ca); err == nil {
		t.Fatal("a new connection still verifies against the old CA: certificate A is in force")
	}
	if err := st.Send(finalizeReq(certzsrv.ServerProfile)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("after finalize: %v, want the stream to end cleanly", err)
	}

	fresh := e.dial("admin", adminPW, caB)
	if _, err := fresh.gnmi().Capabilities(ctx, &gpb.CapabilityRequest{}); err != nil {
		t.Fatalf("new connection: %v", err)
	}
	if got := <-fresh.seen; !got.Equal(certB) {
		t.Fatalf("new connection verified %s, want certificate B", got.Subject)
	}
	if _, err := old.gnmi().Capabilities(ctx, &gpb.CapabilityRequest{}); err != nil {
		t.Fatalf("the connection made before the rotation broke: %v", err)
	}
	if _, err := old.certz().GetProfileList(ctx, &certz.GetProfileListRequest{}); err != nil {
		t.Fatalf("the connection made before the rotation broke: %v", err)
	}
	select {
	case c := <-old.seen:
		t.Fatalf("the old connection handshook again (saw %s)", c.Subject)
	default:
	}

	// The engine and the configuration agree, and no rotation key is left.
	tc, err := e.engine.TLSCertificate(ctx, certName)
	if err != nil || !tc.Leaf.Equal(certB) {
		t.Fatalf("engine certificate %s: %v", certName, err)
	}
	if pub := tc.Leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); pub.Equal(e.certA.PublicKey) {
		t.Fatal("the key was not rotated")
	}
	if got := e.store.Running().GetAuthority().GetTrustedCaCertificate(certzsrv.ServerProfile).GetContent(); got != string(caB.PEM()) {
		t.Fatalf("trusted-ca-certificate %s = %q", certzsrv.ServerProfile, got)
	}
	for _, f := range keyFiles(t, e.dir) {
		if strings.Contains(f, ".certz-") {
			t.Errorf("rotation key left behind: %s", f)
		}
	}
	// The version is in force: uploading it again needs force_overwrite.
	st2, certC := rotateCSR(t, ctx, old.certz(), certzsrv.ServerProfile, caB)
	if err := st2.Send(uploadReq(certzsrv.ServerProfile, chainEntity("cert-1", certC))); err != nil {
		t.Fatal(err)
	}
	if _, err := st2.Recv(); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("same version again: %v, want AlreadyExists", err)
	}
}

// TestRotateRollsBack: a Rotate that ends before finalize, by a closed
// stream or a cancelled connection, restores the key, the certificate, the
// trust bundle and the certificate in force.
func TestRotateRollsBack(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		abort func(st certz.Certz_RotateClient, cancel context.CancelFunc) error
		code  codes.Code
	}{
		{desc: "stream closed without finalize", abort: func(st certz.Certz_RotateClient, _ context.CancelFunc) error {
			st.CloseSend()
			_, err := st.Recv()
			return err
		}, code: codes.Aborted},
		{desc: "client cancels", abort: func(st certz.Certz_RotateClient, cancel context.CancelFunc) error {
			cancel()
			_, err := st.Recv()
			return err
		}, code: codes.Canceled},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEnv(t)
			keysBefore := keyFiles(t, e.dir)
			c := e.dial("admin", adminPW, e.ca)
			sctx, cancel := context.WithCancel(ctxT(t))
			defer cancel()
			caB := testpki.Must(e.gen.Root(testpki.Options{CN: "certz test root B"}))
			st, certB := rotateCSR(t, sctx, c.certz(), certzsrv.ServerProfile, caB)
			upload(t, st, uploadReq(certzsrv.ServerProfile, trustEntity("", caB), chainEntity("", certB)))
			e.serving(t, certB, caB)

			if err := tc.abort(st, cancel); status.Code(err) != tc.code {
				t.Fatalf("abort: %v, want %v", err, tc.code)
			}
			e.serving(t, e.certA, e.ca)
			deadline := time.Now().Add(5 * time.Second)
			for e.store.Running().GetAuthority().GetTrustedCaCertificate(certzsrv.ServerProfile) != nil {
				if time.Now().After(deadline) {
					t.Fatal("the trust bundle was not rolled back")
				}
				time.Sleep(10 * time.Millisecond)
			}
			waitKeys(t, e.dir, keysBefore)
			tlsc, err := e.engine.TLSCertificate(context.Background(), certName)
			if err != nil || !tlsc.Leaf.Equal(e.certA) {
				t.Fatalf("engine certificate after rollback: %v", err)
			}
			if _, err := os.Stat(filepath.Join(e.dir, "certs", certName+".certz-old.pem")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the set-aside certificate is left: %v", err)
			}
		})
	}
}

func waitKeys(t *testing.T, dir string, want []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := keyFiles(t, dir)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys after rollback %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRotateRefusals: bad uploads are refused with the import check's
// error or a precise status, nothing changes, and a private key is never
// echoed.
func TestRotateRefusals(t *testing.T) {
	e := newEnv(t)
	c := e.dial("admin", adminPW, e.ca)
	other := testpki.Must(e.gen.Root(testpki.Options{CN: "untrusted root"}))
	stranger := testpki.Must(e.gen.Issue(e.ca, testpki.Options{CN: "localhost", DNSNames: []string{"localhost"}}))
	keyPEM := string(stranger.KeyPEM())
	keyBody := strings.Split(keyPEM, "\n")[1]
	const gnxi = certzsrv.ServerProfile
	for _, tc := range []struct {
		desc string
		// send runs the stream; it returns the error that ended it.
		send func(t *testing.T, ctx context.Context) error
		code codes.Code
		want string
	}{
		{desc: "private key beside the certificate", code: codes.InvalidArgument, want: "private key was uploaded and refused", send: func(t *testing.T, ctx context.Context) error {
			st, _ := c.certz().Rotate(ctx)
			cert := x509Cert(stranger.PEM())
			cert.PrivateKeyType = &certz.Certificate_RawPrivateKey{RawPrivateKey: []byte(keyPEM)}
			st.Send(uploadReq(gnxi, &certz.Entity{Entity: &certz.Entity_CertificateChain{CertificateChain: &certz.CertificateChain{Certificate: cert}}}))
			_, err := st.Recv()
			return err
		}},
		{desc: "private key inside the certificate PEM", code: codes.InvalidArgument, want: "private key material is not accepted", send: func(t *testing.T, ctx context.Context) error {
			st, _ := c.certz().Rotate(ctx)
			st.Send(uploadReq(gnxi, &certz.Entity{Entity: &certz.Entity_CertificateChain{CertificateChain: &certz.CertificateChain{Certificate: x509Cert(append(stranger.PEM(), keyPEM...))}}}))
			_, err := st.Recv()
			return err
		}},
		{desc: "private key in the trust bundle", code: codes.InvalidArgument, want: "private key material is not accepted", send: func(t *testing.T, ctx context.Context) error {
			st, _ := c.certz().Rotate(ctx)
			st.Send(uploadReq(gnxi, &certz.Entity{Entity: &certz.Entity_TrustBundlePkcs7{TrustBundlePkcs7: &certz.TrustBundle{Pkcs7Block: string(e.ca.PEM()) + keyPEM}}}))
			_, err := st.Recv()
			return err
		}},
		{desc: "chain to an untrusted CA", code: codes.InvalidArgument, want: "unknown issuer", send: func(t *testing.T, ctx context.Context) error {
			st, cert := rotateCSR(t, ctx, c.certz(), gnxi, other)
			st.Send(uploadReq(gnxi, chainEntity("", cert)))
			_, err := st.Recv()
			return err
		}},
		{desc: "certificate for another key", code: codes.InvalidArgument, want: "public key does not match the private key", send: func(t *testing.T, ctx context.Context) error {
			st, _ := rotateCSR(t, ctx, c.certz(), gnxi, e.ca)
			st.Send(uploadReq(gnxi, chainEntity("", stranger.Cert)))
			_, err := st.Recv()
			return err
		}},
		{desc: "certificate for another key, no CSR in the stream", code: codes.InvalidArgument, want: "public key does not match the private key", send: func(t *testing.T, ctx context.Context) error {
			st, _ := c.certz().Rotate(ctx)
			st.Send(uploadReq(gnxi, chainEntity("", stranger.Cert)))
			_, err := st.Recv()
			return err
		}},
		{desc: "unsupported CSR suite", code: codes.InvalidArgument, want: "csr_suite", send: func(t *testing.T, ctx context.Context) error {
			st, _ := c.certz().Rotate(ctx)
			st.Send(csrReq(gnxi, &certz.CSRParams{CsrSuite: certz.CSRSuite_CSRSUITE_X509_KEY_TYPE_EDDSA_ED25519, CommonName: "x"}))
			_, err := st.Recv()
			return err
		}},
		{desc: "two profiles in one stream", code: codes.InvalidArgument, want: "one Rotate handles one profile", send: func(t *testing.T, ctx context.Context) error {
			st, _ := rotateCSR(t, ctx, c.certz(), gnxi, e.ca)
			st.Send(finalizeReq("other"))
			_, err := st.Recv()
			return err
		}},
		{desc: "unknown profile", code: codes.NotFound, want: "AddProfile", send: func(t *testing.T, ctx context.Context) error {
			st, _ := c.certz().Rotate(ctx)
			st.Send(csrReq("nope", p256))
			_, err := st.Recv()
			return err
		}},
		{desc: "empty profile id", code: codes.InvalidArgument, want: "ssl_profile_id is empty", send: func(t *testing.T, ctx context.Context) error {
			st, _ := c.certz().Rotate(ctx)
			st.Send(csrReq("", p256))
			_, err := st.Recv()
			return err
		}},
		{desc: "authentication policy", code: codes.Unimplemented, want: "authentication policies are not supported", send: func(t *testing.T, ctx context.Context) error {
			st, _ := c.certz().Rotate(ctx)
			st.Send(uploadReq(gnxi, &certz.Entity{Entity: &certz.Entity_AuthenticationPolicy{AuthenticationPolicy: &certz.AuthenticationPolicy{}}}))
			_, err := st.Recv()
			return err
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			keysBefore := keyFiles(t, e.dir)
			err := tc.send(t, ctxT(t))
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %v containing %q", err, tc.code, tc.want)
			}
			if strings.Contains(err.Error(), keyBody) || strings.Contains(err.Error(), "BEGIN") {
				t.Fatalf("the error repeats the input: %v", err)
			}
			e.serving(t, e.certA, e.ca)
			waitKeys(t, e.dir, keysBefore)
			if e.store.Running().GetAuthority().GetTrustedCaCertificate(gnxi) != nil {
				t.Fatal("a trust bundle was left")
			}
		})
	}
	audit, err := os.ReadFile(filepath.Join(e.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(audit), keyBody) {
		t.Fatal("the audit log holds the uploaded private key")
	}
}

// TestRoles: viewers read only; a trust bundle (a configuration change)
// needs admin; an operator rotates a certificate.
func TestRoles(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	viewer := e.dial("viewer", viewerPW, e.ca).certz()
	st, err := viewer.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("viewer Rotate: %v", err)
	}
	if _, err := viewer.AddProfile(ctx, &certz.AddProfileRequest{SslProfileId: "web"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("viewer AddProfile: %v", err)
	}
	if _, err := viewer.DeleteProfile(ctx, &certz.DeleteProfileRequest{SslProfileId: "web"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("viewer DeleteProfile: %v", err)
	}
	if _, err := viewer.GetProfileList(ctx, &certz.GetProfileListRequest{}); err != nil {
		t.Fatalf("viewer GetProfileList: %v", err)
	}

	op := e.dial("op", opPW, e.ca).certz()
	st, certB := rotateCSR(t, ctx, op, certzsrv.ServerProfile, e.ca)
	st.Send(uploadReq(certzsrv.ServerProfile, trustEntity("", e.ca)))
	if _, err := st.Recv(); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "needs role admin") {
		t.Fatalf("operator trust bundle: %v", err)
	}
	st, certB = rotateCSR(t, ctx, op, certzsrv.ServerProfile, e.ca)
	upload(t, st, uploadReq(certzsrv.ServerProfile, chainEntity("", certB)))
	st.Send(finalizeReq(certzsrv.ServerProfile))
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("operator finalize: %v", err)
	}
	e.serving(t, certB, e.ca)
}

func TestProfilesAndCanGenerateCSR(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.dial("admin", adminPW, e.ca).certz()
	list := func() []string {
		r, err := c.GetProfileList(ctx, &certz.GetProfileListRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetSslProfileIds()
	}
	if got := list(); !slices.Equal(got, []string{"gNxI"}) {
		t.Fatalf("profiles %v", got)
	}
	if _, err := c.AddProfile(ctx, &certz.AddProfileRequest{SslProfileId: "web"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc string
		err  error
		code codes.Code
	}{
		{"add again", func() error { _, err := c.AddProfile(ctx, &certz.AddProfileRequest{SslProfileId: "web"}); return err }(), codes.AlreadyExists},
		{"add a bad id", func() error { _, err := c.AddProfile(ctx, &certz.AddProfileRequest{SslProfileId: "a/b"}); return err }(), codes.InvalidArgument},
		{"delete gNxI", func() error {
			_, err := c.DeleteProfile(ctx, &certz.DeleteProfileRequest{SslProfileId: "gNxI"})
			return err
		}(), codes.FailedPrecondition},
		{"delete a missing profile", func() error {
			_, err := c.DeleteProfile(ctx, &certz.DeleteProfileRequest{SslProfileId: "x"})
			return err
		}(), codes.NotFound},
		{"integrity manifest", func() error { _, err := c.GetIntegrityManifest(ctx, &certz.GetIntegrityManifestRequest{}); return err }(), codes.Unimplemented},
	} {
		if status.Code(tc.err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.desc, tc.err, tc.code)
		}
	}
	if got := list(); !slices.Equal(got, []string{"gNxI", "web"}) {
		t.Fatalf("profiles %v", got)
	}
	// A new profile rotates the managed certificate of its name, from
	// nothing: the key is generated on the box, the certificate installed.
	st, cert := rotateCSR(t, ctx, c, "web", e.ca)
	upload(t, st, uploadReq("web", chainEntity("", cert)))
	st.Send(finalizeReq("web"))
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("finalize: %v", err)
	}
	if state, _ := e.store.State(); state.GetCertificates().GetCertificate("web").GetFingerprintSha256() != fingerprint(cert) {
		t.Fatalf("certificate web state: %v", state.GetCertificates().GetCertificate("web"))
	}
	if _, err := c.DeleteProfile(ctx, &certz.DeleteProfileRequest{SslProfileId: "web"}); err != nil {
		t.Fatal(err)
	}
	if got := list(); !slices.Equal(got, []string{"gNxI"}) {
		t.Fatalf("profiles after delete %v", got)
	}

	for _, tc := range []struct {
		suite certz.CSRSuite
		want  bool
	}{
		{certz.CSRSuite_CSRSUITE_X509_KEY_TYPE_ECDSA_PRIME256V1_SIGNATURE_ALGORITHM_SHA_2_256, true},
		{certz.CSRSuite_CSRSUITE_X509_KEY_TYPE_ECDSA_SECP384R1_SIGNATURE_ALGORITHM_SHA_2_384, true},
		{certz.CSRSuite_CSRSUITE_X509_KEY_TYPE_RSA_3072_SIGNATURE_ALGORITHM_SHA_2_256, true},
		{certz.CSRSuite_CSRSUITE_X509_KEY_TYPE_RSA_2048_SIGNATURE_ALGORITHM_SHA_2_512, false},
		{certz.CSRSuite_CSRSUITE_X509_KEY_TYPE_EDDSA_ED25519, false},
	} {
		r, err := c.CanGenerateCSR(ctx, &certz.CanGenerateCSRRequest{Params: &certz.CSRParams{CsrSuite: tc.suite, CommonName: "r1"}})
		if err != nil || r.GetCanGenerate() != tc.want {
			t.Errorf("CanGenerateCSR %s = %v, %v; want %v", tc.suite, r.GetCanGenerate(), err, tc.want)
		}
	}
	if _, err := c.CanGenerateCSR(ctx, &certz.CanGenerateCSRRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("CanGenerateCSR without params: %v", err)
	}
}

// TestReimportHotSwaps: import-certificate (as over NETCONF) of a new
// certificate for the served name swaps it in through the event bus.
func TestReimportHotSwaps(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	old := e.dial("admin", adminPW, e.ca)
	if _, err := old.gnmi().Capabilities(ctx, &gpb.CapabilityRequest{}); err != nil {
		t.Fatal(err)
	}
	admin := api.Caller{User: "admin", Role: api.RoleAdmin}
	out, err := e.engine.GenerateCSR(ctx, admin, api.GenerateCSRInput{Name: certName, CommonName: "localhost", SubjectAltName: &api.SubjectAltName{DNS: []string{"localhost"}}})
	if err != nil {
		t.Fatal(err)
	}
	certB := signCSR(t, e.ca, []byte(out.CSR))
	if _, err := e.engine.ImportCertificate(ctx, admin, api.ImportCertificateInput{Name: certName, Certificate: string(pemOf(certB))}); err != nil {
		t.Fatal(err)
	}
	e.serving(t, certB, e.ca)
	if _, err := old.gnmi().Capabilities(ctx, &gpb.CapabilityRequest{}); err != nil {
		t.Fatalf("the connection made before the import broke: %v", err)
	}
}
