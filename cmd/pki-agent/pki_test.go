package main

import (
	"encoding/pem"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/swtpmtest"
	"github.com/pkiagent/pkiagent/internal/testpki"
)

const pkaNS = `xmlns="urn:pkiagent:yang:pki-authority"`

var csrElem = regexp.MustCompile(`(?s)<csr[^>]*>(.*?)</csr>`)

// TestProvisionInSwtpmThroughNETCONF is issue 3 end to end, as an operator
// does it: the agent runs with --tpm pointing at a real swtpm; over NETCONF
// the operator trusts a CA, has the key made in the TPM, gets a CSR, has it
// signed and imports the certificate. After a restart of the agent (same
// state directory, same TPM) the certificate is still served from the TPM
// key, which still signs.
func TestProvisionInSwtpmThroughNETCONF(t *testing.T) {
	sw := swtpmtest.Start(t, t.TempDir())
	state := filepath.Join(t.TempDir(), "state")
	p := runAgentBinary(t, state, "--tpm", sw.Spec())
	c := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))

	ca := testpki.Must(testpki.New(time.Now()).Hierarchy(2))
	c.must(`<edit-config><target><candidate/></target><config><authority `+pkaNS+`><trusted-ca-certificate><name>corp</name><content>`+
		html.EscapeString(string(testpki.PEM(ca[0])))+`</content></trusted-ca-certificate><client-certificate><name>router</name></client-certificate></authority></config></edit-config>`, "<ok/>")
	c.must(`<commit/>`, "<ok/>")
	// The configured client certificate has no certificate yet.
	c.must(`<get><filter><alarms `+pkaNS+`/></filter></get>`, "certificate-missing")

	c.must(`<generate-private-key `+pkaNS+`><name>router</name><algorithm>ecc</algorithm><ecc-curve>secp256r1</ecc-curve><key-storage>tpm</key-storage></generate-private-key>`, ">tpm</key-storage>")
	// RSA 4096 is more than swtpm holds: a clear error, not a software key.
	c.must(`<generate-private-key `+pkaNS+`><name>big</name><algorithm>rsa</algorithm><rsa-key-size>4096</rsa-key-size><key-storage>tpm</key-storage></generate-private-key>`, "tpm storage cannot hold")

	reply := c.must(`<generate-csr `+pkaNS+`><name>router</name><common-name>router.example.net</common-name><organization-name>Example</organization-name></generate-csr>`, "BEGIN CERTIFICATE REQUEST")
	m := csrElem.FindStringSubmatch(reply)
	if m == nil {
		t.Fatalf("no csr in %s", reply)
	}
	// issue signs for 30 days: the certificate is valid and expiring within the month.
	leaf := issue(t, ca[1], []byte(html.UnescapeString(m[1])))
	chainPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})) + string(testpki.PEM(ca[1]))
	c.must(`<import-certificate `+pkaNS+`><name>router</name><certificate>`+html.EscapeString(chainPEM)+`</certificate></import-certificate>`, "</fingerprint")

	got := c.must(`<get><filter><certificates `+pkaNS+`/></filter></get>`, ">tpm</key-storage>")
	if !strings.Contains(got, ">expiring-within-month</status>") || !strings.Contains(got, "router.example.net") {
		t.Fatalf("certificate state: %s", got)
	}
	if alarms := c.rpc(`<get><filter><alarms ` + pkaNS + `/></filter></get>`); strings.Contains(alarms, "certificate-missing") {
		t.Fatalf("certificate-missing not cleared: %s", alarms)
	}

	// Restart the agent on the same state directory and TPM.
	if err := p.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.log())
	}
	p = runAgentBinary(t, state, "--tpm", sw.Spec())
	c = dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	got = c.must(`<get><filter><certificates `+pkaNS+`/></filter></get>`, ">tpm</key-storage>")
	if !strings.Contains(got, ">expiring-within-month</status>") {
		t.Fatalf("after restart: %s", got)
	}
	c.must(`<generate-csr `+pkaNS+`><name>router</name><common-name>router.example.net</common-name></generate-csr>`, "BEGIN CERTIFICATE REQUEST")
}

// A PKI check that fails at validate or commit names the offending node in
// error-path, as the YANG checks do.
func TestPKIValidationErrorPath(t *testing.T) {
	p := runAgentBinary(t, filepath.Join(t.TempDir(), "state"))
	c := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	if got := c.rpc(`<edit-config><target><candidate/></target><config><authority ` + pkaNS + `><trusted-ca-certificate><name>bad</name><content>not a pem</content></trusted-ca-certificate></authority></config></edit-config>`); !strings.Contains(got, "<ok/>") {
		t.Fatal(got)
	}
	for _, op := range []string{`<validate><source><candidate/></source></validate>`, `<commit/>`} {
		got := c.rpc(op)
		if !strings.Contains(got, "<error-tag>invalid-value</error-tag>") ||
			!strings.Contains(got, "/pka:authority/pka:trusted-ca-certificate[pka:name=&apos;bad&apos;]/pka:content</error-path>") {
			t.Fatalf("%s:\n%s", op, got)
		}
	}
}

// TestOpenSSLCAEndToEnd is what an operator with only openssl does: a root
// made with "openssl req -x509" (OpenSSL 3 gives it no key usage
// extension) is trusted in strict mode, and a CSR of the agent signed with
// "openssl x509 -req" imports.
func TestOpenSSLCAEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed (apt-get install -y openssl)")
	}
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "ca.key", "-out", "ca.pem", "-subj", "/O=Lab/CN=Lab Root", "-days", "365")
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}

	p := runAgentBinary(t, filepath.Join(t.TempDir(), "state"))
	c := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	c.must(`<edit-config><target><candidate/></target><config><authority `+pkaNS+`><trusted-ca-certificate><name>lab</name><content>`+
		html.EscapeString(string(caPEM))+`</content><validation-mode>strict</validation-mode></trusted-ca-certificate></authority></config></edit-config>`, "<ok/>")
	c.must(`<commit/>`, "<ok/>")
	c.must(`<get><filter><authority `+pkaNS+`><trusted-ca-certificate><name>lab</name><state><status/></state></trusted-ca-certificate></authority></filter></get>`, ">valid</status>")

	c.must(`<generate-private-key `+pkaNS+`><name>r1</name><algorithm>rsa</algorithm><rsa-key-size>2048</rsa-key-size></generate-private-key>`, ">r1</name>")
	reply := c.must(`<generate-csr `+pkaNS+`><name>r1</name><common-name>r1.lab.example</common-name><subject-alt-name><dns>r1.lab.example</dns></subject-alt-name></generate-csr>`, "BEGIN CERTIFICATE REQUEST")
	m := csrElem.FindStringSubmatch(reply)
	if m == nil {
		t.Fatalf("no csr in %s", reply)
	}
	os.WriteFile(filepath.Join(dir, "r1.csr"), []byte(html.UnescapeString(m[1])), 0o600)
	os.WriteFile(filepath.Join(dir, "ext.cnf"), []byte("keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:r1.lab.example\n"), 0o600)
	run("x509", "-req", "-in", "r1.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "200", "-extfile", "ext.cnf", "-out", "r1.pem")
	leafPEM, err := os.ReadFile(filepath.Join(dir, "r1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	c.must(`<import-certificate `+pkaNS+`><name>r1</name><certificate>`+html.EscapeString(string(leafPEM))+`</certificate></import-certificate>`, "</fingerprint")
	got := c.must(`<get><filter><certificates `+pkaNS+`/></filter></get>`, ">valid</status>")
	if !strings.Contains(got, "rsa-2048") || !strings.Contains(got, "CN=Lab Root,O=Lab") {
		t.Fatalf("certificate state: %s", got)
	}
}
