package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// want fails the test unless out holds every one of subs.
func want(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Fatalf("%s: no %q in:\n%s", what, s, out)
		}
	}
}

// TestEveryCommandAgainstAgent drives each pkictl command against the real
// pki-agent binary: the provisioning path, the views (table, json, yaml),
// candidate editing with confirmed commits, peer validation, CRL refresh
// and the live alarm watch.
func TestEveryCommandAgainstAgent(t *testing.T) {
	a := startAgent(t)
	dir := t.TempDir()
	labCA(t, dir)
	f := func(name string) string { return filepath.Join(dir, name) }

	want(t, "show alarms (none)", a.ok(t, "show", "alarms"), "SEVERITY", "CATEGORY")
	want(t, "show stats security", a.ok(t, "show", "stats", "security"), "CSR", "0", "peer certificate")

	// Candidate editing: set, diff, discard, then set --commit.
	caPath := "/authority/trusted-ca-certificate[name=lab-ca]/content"
	a.ok(t, "config", "set", caPath, "@"+f("ca.pem"))
	want(t, "config diff", a.ok(t, "config", "diff"), "+ /authority/trusted-ca-certificate[name=lab-ca]/content = <PEM: 1 certificate(s)")
	want(t, "config show --candidate", a.ok(t, "config", "show", "--candidate"), "trusted-ca-certificate[name=lab-ca]")
	a.ok(t, "config", "discard")
	if d := a.ok(t, "config", "diff"); d != "" {
		t.Fatalf("diff after discard: %q", d)
	}
	want(t, "config set --commit", a.ok(t, "config", "set", caPath, "@"+f("ca.pem"), "--commit"), "+ /authority/trusted-ca-certificate[name=lab-ca]")
	want(t, "show trusted-ca", a.ok(t, "show", "trusted-ca"), "lab-ca", "strict", "valid", "CN=Lab Root CA")

	// Keys and the certificate.
	want(t, "key generate ecc", a.ok(t, "key", "generate", "router", "--curve", "secp384r1"), "ecc-secp384r1")
	want(t, "key generate rsa", a.ok(t, "key", "generate", "big", "--algorithm", "rsa", "--size", "3072"), "rsa-3072")
	csr := a.ok(t, "csr", "router", "--cn", "r1.example.net", "--san", "dns:r1.example.net,ip:192.0.2.1,uri:spiffe://lab/r1", "--org", "Lab", "--country", "NL")
	want(t, "csr", csr, "-----BEGIN CERTIFICATE REQUEST-----")
	os.WriteFile(f("router.csr"), []byte(csr), 0o600)
	want(t, "csr decodes", sh(t, dir, "openssl req -in router.csr -noout -text"), "r1.example.net", "192.0.2.1", "spiffe://lab/r1", "O = Lab")
	sh(t, dir, "openssl x509 -req -in router.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 5 -extfile router.ext -out router.pem 2>/dev/null")
	want(t, "import", a.ok(t, "import", "router", f("router.pem")), "certificate router imported", "expiring-within-week")
	want(t, "show certificate", a.ok(t, "show", "certificate"), "router", "CN=r1.example.net", "CN=Lab Root CA", "big", "no-certificate")
	detail := a.ok(t, "show", "certificate", "router", "--detail")
	want(t, "show certificate --detail", detail, "Subject Alt Names", "DNS:r1.example.net, IP:192.0.2.1", "Digital Signature",
		"TLS Web Server Authentication, TLS Web Client Authentication", "ECDSA P-384", "trusted CA lab-ca", "-----BEGIN CERTIFICATE-----", "expiring-within-week")
	want(t, "show keys", a.ok(t, "show", "keys"), "Key label: router", "ECDSA P-384", "Key label: big", "RSA 3072 bit", "Data")
	want(t, "show alarms", a.ok(t, "show", "alarms"), "major", "certificate-expiring", "expires in 5 days")

	// An Ed25519 key, deleted again; a key a certificate uses is kept
	// unless forced.
	want(t, "key generate ed25519", a.ok(t, "key", "generate", "edkey", "--algorithm", "ed25519"), "edkey", "ed25519")
	want(t, "key delete", a.ok(t, "key", "delete", "edkey"), "key edkey deleted")
	if k := a.ok(t, "show", "keys"); strings.Contains(k, "edkey") {
		t.Fatalf("show keys after key delete lists the key:\n%s", k)
	}
	if r := a.pkictl(t, "", nil, "key", "delete", "router"); r.code != 1 || !strings.Contains(r.stderr, "router") {
		t.Fatalf("key delete of the key the certificate router uses: exit %d\n%s", r.code, r.stderr)
	}
	if r := a.pkictl(t, "", nil, "enroll", "router"); r.code != 1 || r.stderr == "" {
		t.Fatalf("enroll of a certificate without a CA profile: exit %d\n%s", r.code, r.stderr)
	}

	// A CA profile (its CA down) and an enrollment: shown with their
	// state, the secret never.
	prof := "/authority/ca-profile[name=lab]"
	a.ok(t, "config", "set", prof+"/protocol", "cmpv2")
	a.ok(t, "config", "set", prof+"/url", "http://127.0.0.1:9/pkix/")
	a.ok(t, "config", "set", prof+"/trusted-ca", "lab-ca")
	a.ok(t, "config", "set", prof+"/timeout", "2")
	a.ok(t, "config", "set", prof+"/cmpv2/reference", "3078")
	a.ok(t, "config", "set", prof+"/cmpv2/secret", "insta-secret-9")
	enr := "/authority/client-certificate[name=enr]/enrollment"
	a.ok(t, "config", "set", enr+"/subject", "CN=enr.example.net")
	a.ok(t, "config", "set", enr+"/ca-profile", "lab", "--commit")
	want(t, "show ca-profile", a.ok(t, "show", "ca-profile"), "lab", "cmpv2", "http://127.0.0.1:9/pkix/", "lab-ca", "3078")
	want(t, "show enrollment", a.ok(t, "show", "enrollment", "enr"), "enr", "lab", "CN=enr.example.net")
	if r := a.pkictl(t, "", nil, "enroll", "enr"); r.code != 1 || !strings.Contains(r.stdout+r.stderr, "enr") {
		t.Fatalf("enroll against a CA that is down: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"config", "show"}, {"-o", "json", "show", "ca-profile"}, {"show", "enrollment"}} {
		if out := a.ok(t, args...); strings.Contains(out, "insta-secret-9") {
			t.Fatalf("pkictl %v shows the CA profile's secret:\n%s", args, out)
		}
	}
	a.ok(t, "config", "delete", "/authority/client-certificate[name=enr]")
	a.ok(t, "config", "delete", prof, "--commit")
	if al := a.ok(t, "show", "alarms"); strings.Contains(al, "enrollment") {
		t.Fatalf("the enrollment's alarm outlived its configuration:\n%s", al)
	}

	var certs struct {
		Certificate []certificate `json:"certificate"`
	}
	if err := json.Unmarshal([]byte(a.ok(t, "-o", "json", "show", "certificate", "router")), &certs); err != nil || len(certs.Certificate) != 1 || certs.Certificate[0].Status != "expiring-within-week" {
		t.Fatalf("show certificate -o json: %v %+v", err, certs)
	}
	var y map[string]any
	if err := yaml.Unmarshal([]byte(a.ok(t, "show", "stats", "security", "-o", "yaml")), &y); err != nil || y["security"] == nil {
		t.Fatalf("show stats security -o yaml: %v %v", err, y)
	}
	want(t, "stats after", a.ok(t, "-o", "json", "show", "stats", "security"), `"csr": {`, `"success": 1`)

	// Routers and peers through a confirmed commit, confirmed.
	a.ok(t, "config", "set", "/authority/router[name=r1]/peer-validation", "true")
	a.ok(t, "config", "set", "/authority/router[name=r1]/peer[name=p1]/identifier", "r1.example.net")
	want(t, "config commit --confirmed", a.ok(t, "config", "commit", "--confirmed", "60"), "+ /authority/router[name=r1]/peer[name=p1]/identifier = r1.example.net")
	a.ok(t, "config", "confirm")
	want(t, "config show", a.ok(t, "config", "show", "/authority/router"), "/authority/router[name=r1]/peer-validation = true")
	if err := json.Unmarshal([]byte(a.ok(t, "config", "show", "-o", "json")), &y); err != nil {
		t.Fatalf("config show -o json: %v", err)
	}
	want(t, "peer validate", a.ok(t, "peer", "validate", "r1", "p1", f("router.pem")), "peer p1 of router r1: valid")
	want(t, "show peers", a.ok(t, "show", "peers"), "r1", "p1", "r1.example.net", "valid")

	// A delete, committed confirmed and rolled back.
	a.ok(t, "config", "delete", "/authority/router[name=r1]")
	want(t, "delete diff", a.ok(t, "config", "diff"), "- /authority/router[name=r1]")
	a.ok(t, "config", "commit", "--confirmed", "60")
	a.ok(t, "config", "rollback")
	want(t, "after rollback", a.ok(t, "config", "show"), "/authority/router[name=r1]")

	// The revocation, seen live.
	sh(t, dir, "openssl ca -config ca.cnf -revoke router.pem 2>/dev/null && openssl ca -config ca.cnf -gencrl -out ca.crl 2>/dev/null")
	watch := make(chan pkictlResult, 1)
	go func() {
		watch <- a.pkictl(t, "", nil, "watch", "alarms", "--severity", "critical", "--count", "1", "--timeout", "20s", "-o", "json")
	}()
	time.Sleep(500 * time.Millisecond)
	want(t, "crl refresh", a.ok(t, "crl", "refresh"), "file://"+f("ca.crl"), "ok", "1 entries")
	w := <-watch
	if w.code != 0 {
		t.Fatalf("watch alarms: %d %s %s", w.code, w.stdout, w.stderr)
	}
	want(t, "watch alarms", w.stdout, `"severity":"critical"`, `"category":"certificate-revoked"`, `"event":"regraded"`) // from the major expiry alarm of the same id
	want(t, "show certificate crl", a.ok(t, "show", "certificate", "crl"), "file://"+f("ca.crl"), "learned", "CN=Lab Root CA")
	serial := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(sh(t, dir, "openssl x509 -in router.pem -noout -serial")), "serial="))
	want(t, "show certificate crl --revoked", a.ok(t, "show", "certificate", "crl", "file://"+f("ca.crl"), "--revoked"), "CRL Entry", strings.TrimLeft(serial, "0"))
	want(t, "crl refresh one", a.ok(t, "crl", "refresh", "file://"+f("ca.crl")), "ok")
	r := a.pkictl(t, "", nil, "peer", "validate", "r1", "p1", f("router.pem"))
	if r.code != 1 || !strings.Contains(r.stdout, "revoked") {
		t.Fatalf("peer validate of a revoked certificate: %+v", r)
	}

	// The audit log of the state directory.
	want(t, "show audit", a.ok(t, "show", "audit", "--type", "system.generate_csr", "--since", "1h"), "system.generate_csr", "r1.example.net", "Permitted")
	want(t, "show commits", a.ok(t, "show", "commits"), "CHANGES", "admin", "NETCONF commit")
}

// TestUserCommands drives user add|passwd|list|delete against the agent's
// /system/aaa (module pki-agent-system).
func TestUserCommands(t *testing.T) {
	a := startAgent(t)
	probe := a.pkictl(t, "", nil, "user", "list")
	if probe.code != 0 && strings.Contains(probe.stderr, "system") {
		t.Skip("the agent does not serve /system/aaa/user yet (module pki-agent-system comes with the users-as-configuration branch): " + strings.TrimSpace(probe.stderr))
	}
	env := map[string]string{"PKICTL_NEW_PASSWORD": "operator-pass-1"}
	if r := a.pkictl(t, "", env, "user", "add", "alice", "--role", "operator"); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	want(t, "user list", a.ok(t, "user", "list"), "alice", "operator")
	login := a.pkictl(t, "", map[string]string{"PKICTL_USERNAME": "alice", "PKICTL_PASSWORD": "operator-pass-1"}, "show", "alarms")
	if login.code != 0 {
		t.Fatalf("alice cannot log in: %+v", login)
	}
	if r := a.pkictl(t, "new-password-22\n", nil, "user", "passwd", "alice"); r.code != 0 {
		t.Fatalf("user passwd: %+v", r)
	}
	a.ok(t, "user", "delete", "alice")
	if strings.Contains(a.ok(t, "user", "list"), "alice") {
		t.Fatal("alice still listed after user delete")
	}
}
