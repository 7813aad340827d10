package main

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"html"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/internal/netnstest"
	"github.com/pkiagent/pkiagent/internal/swtpmtest"
	"github.com/pkiagent/pkiagent/internal/testpki"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
)

// publicOnly lets testpki certify a public key whose private half stays
// in the agent.
type publicOnly struct{ pub crypto.PublicKey }

func (p publicOnly) Public() crypto.PublicKey { return p.pub }
func (p publicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("public key only")
}

var publicKeyElem = regexp.MustCompile(`(?s)<public-key>(.*?)</public-key>`)

// TestEnrollAgainstOpenSSLCMP is issue 13 end to end through the binary,
// against `openssl cmp` as the CA (in a private network namespace: it
// binds all interfaces). The agent makes its key; the test CA certifies
// that public key and the mock is started with the certificate. Over gNMI
// the operator configures the trusted CA, a CA profile (with a wrong
// secret first) and the client certificate's enrollment; the agent's first
// ir is refused (wrong pbm value) with a clear last-error and alarm; with
// the right secret, enroll-certificate over NETCONF enrolls, the state
// shows the certificate valid and the gNMI port serves it to a new TLS
// client (--tls-cert-name) while the connection made before keeps working.
// A kur (rekey false) through a CA answering waiting twice renews it; a
// kur with a new key gets a certificate for the old key, which is refused,
// the certificate in force untouched.
func TestEnrollAgainstOpenSSLCMP(t *testing.T) {
	if !netnstest.InNetns(t, "-test.run=^TestEnrollAgainstOpenSSLCMP$") {
		return
	}
	g, ca, write, files := cmpMockPKI(t)

	state := filepath.Join(t.TempDir(), "state")
	p := runAgentBinary(t, state, "--tls-cert-name", "r1")
	addr := logAttr(p.logged(t, "gNMI listening"), "addr")
	nc := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	gc := gnmiClient(t, p, state) // over the bootstrapped certificate

	// The agent's key, certified by the test CA for the mock to return.
	nc.must(`<generate-private-key `+pkaNS+`><name>r1</name></generate-private-key>`, ">r1</name>")
	keys := nc.must(`<get><filter><keys `+pkaNS+`/></filter></get>`, "BEGIN PUBLIC KEY")
	m := publicKeyElem.FindStringSubmatch(keys)
	block, _ := pem.Decode([]byte(html.UnescapeString(m[1])))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	serial := big.NewInt(0x5151)
	issued := testpki.Must(g.Issue(ca, testpki.Options{Subject: &pkix.Name{CommonName: "router1"}, Key: publicOnly{pub}, Serial: serial, DNSNames: []string{"localhost"}}))
	url := netnstest.StartCMPMock(t, files, write("issued.pem", issued.PEM()))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	set := func(json string) {
		t.Helper()
		if _, err := gc.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{Path: &gpb.Path{Elem: []*gpb.PathElem{{Name: "authority"}}},
			Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(json)}}}}}); err != nil {
			t.Fatalf("gNMI Set: %v", err)
		}
	}
	caJSON := fmt.Sprintf("%q", string(ca.PEM()))
	set(`{"pki-authority:trusted-ca-certificate": [{"name": "ca", "content": ` + caJSON + `}],
	      "pki-authority:ca-profile": [{"name": "lab", "url": "` + url + `", "trusted-ca": "ca", "timeout": 20,
	          "cmpv2": {"reference": "3078", "secret": "wrong-secret", "recipient": "CN=Test CMP CA"}}],
	      "pki-authority:client-certificate": [{"name": "r1", "enrollment": {"ca-profile": "lab", "subject": "CN=router1",
	          "subject-alt-name": {"dns": ["localhost"]}, "retry-interval": 3600}}]}`)

	// The first ir goes at once, with the wrong secret: refused.
	stateFilter := `<get><filter><authority ` + pkaNS + `><client-certificate><name>r1</name><state/></client-certificate></authority></filter></get>`
	var got string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if got = nc.rpc(stateFilter); strings.Contains(got, ">failed</enrollment-status>") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed first enrollment: %s", got)
		}
	}
	if !strings.Contains(got, "wrong pbm value") {
		t.Errorf("last-error does not say the secret is wrong: %s", got)
	}
	nc.must(`<get><filter><alarms `+pkaNS+`/></filter></get>`, "certificate-enrollment-failed")

	// Reads never show the secret: gNMI Get (config and all), NETCONF
	// get-config and get.
	for _, typ := range []gpb.GetRequest_DataType{gpb.GetRequest_CONFIG, gpb.GetRequest_ALL} {
		r, err := gc.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{{Elem: []*gpb.PathElem{{Name: "authority"}}}}, Type: typ, Encoding: gpb.Encoding_JSON_IETF})
		if err != nil {
			t.Fatal(err)
		}
		if js := fmt.Sprint(r); strings.Contains(js, "wrong-secret") || !strings.Contains(js, "3078") {
			t.Errorf("gNMI Get %s shows the secret or lost the profile: %.2000s", typ, js)
		}
	}
	for _, op := range []string{`<get-config><source><running/></source></get-config>`, `<get/>`,
		`<get-config><source><running/></source><with-defaults xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">report-all</with-defaults></get-config>`} {
		if got := nc.must(op, "<reference>3078</reference>"); strings.Contains(got, "wrong-secret") || strings.Contains(got, "<secret>") {
			t.Errorf("%s shows the secret: %.2000s", op, got)
		}
	}

	// The right secret; enroll-certificate over NETCONF enrolls.
	set(`{"pki-authority:ca-profile": [{"name": "lab", "cmpv2": {"secret": "insta"}}]}`)
	reply := nc.must(`<enroll-certificate `+pkaNS+`><name>r1</name></enroll-certificate>`, ">enrolled</result>")
	fp := fmt.Sprintf("%x", sha256.Sum256(issued.Cert.Raw))
	if !strings.Contains(reply, fp) {
		t.Fatalf("enroll-certificate: %s; want fingerprint %s", reply, fp)
	}
	nc.must(`<get><filter><certificates `+pkaNS+`/></filter></get>`, ">valid</status>")
	got = nc.must(stateFilter, ">idle</enrollment-status>")
	if strings.Contains(got, "<last-error>") {
		t.Errorf("last-error after a success: %s", got)
	}
	if alarms := nc.rpc(`<get><filter><alarms ` + pkaNS + `/></filter></get>`); strings.Contains(alarms, "certificate-enrollment-failed") {
		t.Errorf("alarm not cleared: %s", alarms)
	}
	// The gNMI port serves the enrolled certificate to a new client.
	servedFP := func() string {
		t.Helper()
		var fp string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: testpki.Pool(ca), ServerName: "localhost", NextProtos: []string{"h2"}})
			if err == nil {
				fp = hex.EncodeToString(sha256Of(conn.ConnectionState().PeerCertificates[0].Raw))
				conn.Close()
				return fp
			}
		}
		return fp
	}
	if served := servedFP(); served != fp {
		t.Fatalf("gNMI serves %q; want the enrolled %s", served, fp)
	}
	// The connection made before keeps working.
	if _, err := gc.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{{Elem: []*gpb.PathElem{{Name: "stats"}}}}, Encoding: gpb.Encoding_JSON_IETF}); err != nil {
		t.Fatalf("the connection made before the renewal: %v", err)
	}

	// kur with a new key: the mock returns the certificate of the old key,
	// refused; the certificate in force stays.
	reply = nc.must(`<enroll-certificate `+pkaNS+`><name>r1</name><force>true</force></enroll-certificate>`, ">failed</result>")
	if !strings.Contains(reply, "for another public key") {
		t.Errorf("kur with a new key answered with the old key's certificate: %s", reply)
	}
	if served := servedFP(); served != fp {
		t.Fatalf("after a refused renewal gNMI serves %q; want %s", served, fp)
	}

	// kur keeping the key, through two waiting answers: renewed. The
	// mock wants oldCertID = its certificate's issuer and serial.
	renewed := testpki.Must(g.Issue(ca, testpki.Options{Subject: &pkix.Name{CommonName: "router1"}, Key: publicOnly{pub}, Serial: serial, DNSNames: []string{"localhost"},
		NotAfter: time.Now().Add(400 * 24 * time.Hour)}))
	url2 := netnstest.StartCMPMock(t, files, write("renewed.pem", renewed.PEM()), "-poll_count", "2", "-check_after", "1")
	set(`{"pki-authority:ca-profile": [{"name": "lab", "url": "` + url2 + `"}],
	      "pki-authority:client-certificate": [{"name": "r1", "enrollment": {"rekey": false}}]}`)
	reply = nc.must(`<enroll-certificate `+pkaNS+`><name>r1</name><force>true</force></enroll-certificate>`, ">renewed</result>")
	fp2 := fmt.Sprintf("%x", sha256.Sum256(renewed.Cert.Raw))
	if !strings.Contains(reply, fp2) {
		t.Fatalf("renewal: %s; want fingerprint %s", reply, fp2)
	}
	if served := servedFP(); served != fp2 {
		t.Fatalf("after the renewal gNMI serves %q; want %s", served, fp2)
	}
	stats := nc.must(`<get><filter><stats `+pkaNS+`><security><enrollment/></security></stats></filter></get>`, "<enrollment>")
	if !strings.Contains(stats, "<success>2</success>") || !strings.Contains(stats, "<failure>2</failure>") {
		t.Errorf("enrollment counters: %s; want 2 successes and 2 failures", stats)
	}

	// kill -9 while a renewal with a new key waits on the CA: the restart
	// has the pair in force before it, and serves it at once.
	url3 := netnstest.StartCMPMock(t, files, write("renewed.pem", renewed.PEM()), "-poll_count", "1000", "-check_after", "5")
	set(`{"pki-authority:ca-profile": [{"name": "lab", "url": "` + url3 + `"}],
	      "pki-authority:client-certificate": [{"name": "r1", "enrollment": {"rekey": true}}]}`)
	// Sent, and never answered: the agent dies first.
	if err := nc.fw.WriteMessage([]byte(`<rpc xmlns="` + ncxml.BaseNS + `" message-id="999"><enroll-certificate ` + pkaNS + `><name>r1</name><force>true</force></enroll-certificate></rpc>`)); err != nil {
		t.Fatal(err)
	}
	poll := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if got = poll.rpc(stateFilter); strings.Contains(got, ">waiting</enrollment-status>") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the renewal never waited: %s", got)
		}
	}
	if keys, _ := os.ReadDir(filepath.Join(state, "keys")); len(keys) != 2 {
		t.Errorf("while waiting, %d keys; want the one in force and the new one", len(keys))
	}
	logBefore := p.log()
	kill9(t, p)
	p = runAgentBinary(t, state, "--tls-cert-name", "r1")
	addr = logAttr(p.logged(t, "gNMI listening"), "addr")
	nc = dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	if got := nc.must(`<get><filter><certificates `+pkaNS+`/></filter></get>`, ">valid</status>"); !strings.Contains(got, fp2) {
		t.Fatalf("after kill -9 during a renewal: %s; want %s in force", got, fp2)
	}
	if served := servedFP(); served != fp2 {
		t.Fatalf("after kill -9 gNMI serves %q; want %s", served, fp2)
	}
	if keys, _ := os.ReadDir(filepath.Join(state, "keys")); len(keys) != 1 {
		t.Errorf("after the restart %d keys; want the one in force", len(keys))
	}

	// The secrets appear in no log or audit record.
	audit, _ := os.ReadFile(filepath.Join(state, "audit.log"))
	for what, text := range map[string]string{"log": logBefore + p.log(), "audit log": string(audit)} {
		for _, secret := range []string{"wrong-secret", "insta\""} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s holds the secret %q", what, secret)
			}
		}
	}
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// TestEnrollTPMKeyAgainstOpenSSLCMP: the same enrollment with the key in a
// real TPM (swtpm): generate-private-key in the TPM, ir against openssl
// cmp certifying it, then a kur keeping the key, its request signed by the
// TPM; the gNMI port serves the certificate with the TPM key.
func TestEnrollTPMKeyAgainstOpenSSLCMP(t *testing.T) {
	if !netnstest.InNetns(t, "-test.run=^TestEnrollTPMKeyAgainstOpenSSLCMP$") {
		return
	}
	g, ca, write, files := cmpMockPKI(t)
	sw := swtpmtest.Start(t, t.TempDir())
	state := filepath.Join(t.TempDir(), "state")
	p := runAgentBinary(t, state, "--tpm", sw.Spec(), "--tls-cert-name", "r1")
	addr := logAttr(p.logged(t, "gNMI listening"), "addr")
	nc := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))

	nc.must(`<generate-private-key `+pkaNS+`><name>r1</name><key-storage>tpm</key-storage></generate-private-key>`, ">tpm</key-storage>")
	nc.must(`<generate-private-key `+pkaNS+`><name>ed</name><algorithm>ed25519</algorithm><key-storage>tpm</key-storage></generate-private-key>`, "cannot hold Ed25519")
	m := publicKeyElem.FindStringSubmatch(nc.must(`<get><filter><keys `+pkaNS+`/></filter></get>`, "BEGIN PUBLIC KEY"))
	block, _ := pem.Decode([]byte(html.UnescapeString(m[1])))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	serial := big.NewInt(0x7171)
	issued := testpki.Must(g.Issue(ca, testpki.Options{Subject: &pkix.Name{CommonName: "router1"}, Key: publicOnly{pub}, Serial: serial, DNSNames: []string{"localhost"}}))
	url := netnstest.StartCMPMock(t, files, write("issued.pem", issued.PEM()))
	cfg := `<edit-config><target><candidate/></target><config><authority ` + pkaNS + `>
	  <trusted-ca-certificate><name>ca</name><content>` + html.EscapeString(string(ca.PEM())) + `</content></trusted-ca-certificate>
	  <ca-profile><name>lab</name><url>` + url + `</url><trusted-ca>ca</trusted-ca><cmpv2><reference>3078</reference><secret>insta</secret></cmpv2></ca-profile>
	  <client-certificate><name>r1</name><enrollment><ca-profile>lab</ca-profile><subject>CN=router1</subject>
	    <subject-alt-name><dns>localhost</dns></subject-alt-name><key-storage>tpm</key-storage><rekey>false</rekey></enrollment></client-certificate>
	</authority></config></edit-config>`
	nc.must(cfg, "<ok/>")
	nc.must(`<commit/>`, "<ok/>")
	fp := fmt.Sprintf("%x", sha256.Sum256(issued.Cert.Raw))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if got := nc.rpc(`<get><filter><certificates ` + pkaNS + `/></filter></get>`); strings.Contains(got, fp) {
			if !strings.Contains(got, ">tpm</key-storage>") {
				t.Fatalf("the enrolled certificate's key is not in the TPM: %s", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent did not enroll its TPM key")
		}
	}
	renewed := testpki.Must(g.Issue(ca, testpki.Options{Subject: &pkix.Name{CommonName: "router1"}, Key: publicOnly{pub}, Serial: serial, DNSNames: []string{"localhost"},
		NotAfter: time.Now().Add(400 * 24 * time.Hour)}))
	url2 := netnstest.StartCMPMock(t, files, write("renewed.pem", renewed.PEM()))
	nc.must(`<edit-config><target><candidate/></target><config><authority `+pkaNS+`><ca-profile><name>lab</name><url>`+url2+`</url></ca-profile></authority></config></edit-config>`, "<ok/>")
	nc.must(`<commit/>`, "<ok/>")
	fp2 := fmt.Sprintf("%x", sha256.Sum256(renewed.Cert.Raw))
	if reply := nc.must(`<enroll-certificate `+pkaNS+`><name>r1</name><force>true</force></enroll-certificate>`, ">renewed</result>"); !strings.Contains(reply, fp2) {
		t.Fatalf("kur signed by the TPM key: %s", reply)
	}
	var served string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && served != fp2; time.Sleep(50 * time.Millisecond) {
		if conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: testpki.Pool(ca), ServerName: "localhost", NextProtos: []string{"h2"}}); err == nil {
			served = hex.EncodeToString(sha256Of(conn.ConnectionState().PeerCertificates[0].Raw))
			conn.Close()
		}
	}
	if served != fp2 {
		t.Fatalf("gNMI serves %q; want the renewed %s (its key in the TPM)", served, fp2)
	}
}

// cmpMockPKI makes the test CA and the openssl cmp mock's own certificate
// in a temporary directory, with a writer of further files there.
func cmpMockPKI(t *testing.T) (*testpki.Generator, *testpki.Cert, func(string, []byte) string, netnstest.MockFiles) {
	t.Helper()
	dir := t.TempDir()
	g := testpki.New(time.Now())
	ca := testpki.Must(g.Root(testpki.Options{Subject: &pkix.Name{CommonName: "Test CMP CA"}}))
	srv := testpki.Must(g.Issue(ca, testpki.Options{CN: "Test CMP Server", NoExtKeyUsage: true}))
	write := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := netnstest.MockFiles{Dir: dir, CA: write("ca.pem", ca.PEM()), SrvCert: write("srv.pem", srv.PEM()), SrvKey: write("srv.key", srv.KeyPEM())}
	return g, ca, write, files
}
