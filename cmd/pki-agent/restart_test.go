package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

// TestRestartEquivalence drives the binary: a trusted root, a CRL served
// on 127.0.0.1 that revokes the client certificate the root issued
// (imported, then revoked), a CRL source that fails, a configured
// client-certificate with no certificate, fail-hard and fail-soft routers
// whose peers were validated (one severed, one valid, one expired), a CSR
// made and an import refused. The whole state tree (gNMI Get of /) is the
// same after a SIGTERM and restart; then, with the severed peer lifted by a
// valid certificate and another CSR made, after a kill -9 and restart.
//
// No leaf is left out of the comparison: certificate statuses are graded
// again from the saved chain and CRLs, and alarms (time-raised included),
// peer states, counters and each CRL source's schedule (last-attempt,
// next-attempt, consecutive-failures) are restored, so no CRL is fetched
// because of the restart and no time moves with it.
func TestRestartEquivalence(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	now := time.Now()
	g := testpki.New(now)
	root := testpki.Must(g.Root(testpki.Options{CN: "restart root"}))

	var mu sync.Mutex
	crlDER := testpki.Must(testpki.CRLWith(root, testpki.CRLOptions{Number: 1, ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(7 * 24 * time.Hour)}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/root.crl" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		w.Write(crlDER)
	}))
	defer srv.Close()
	crlURL, deadURL := srv.URL+"/root.crl", srv.URL+"/gone.crl"

	p := runAgentBinary(t, state)
	c := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	peer := func(cn string, o testpki.Options) string {
		o.CN = cn
		return html.EscapeString(string(testpki.PEM(testpki.Must(g.Issue(root, o)))))
	}
	c.must(`<edit-config><target><candidate/></target><config><authority `+pkaNS+`>`+
		`<trusted-ca-certificate><name>corp</name><content>`+html.EscapeString(string(testpki.PEM(root)))+`</content></trusted-ca-certificate>`+
		`<certificate-revocation-list><url>`+html.EscapeString(crlURL)+`</url></certificate-revocation-list>`+
		`<certificate-revocation-list><url>`+html.EscapeString(deadURL)+`</url><backoff-interval>3600</backoff-interval></certificate-revocation-list>`+
		`<client-certificate><name>router</name></client-certificate><client-certificate><name>missing</name></client-certificate>`+
		`<router><name>hard</name><peer-validation>true</peer-validation><certificate-failure-action>fail-hard</certificate-failure-action>`+
		`<peer><name>p1</name><identifier>peer-1</identifier></peer><peer><name>p2</name><identifier>peer-2</identifier></peer></router>`+
		`<router><name>soft</name><peer-validation>true</peer-validation><peer><name>p1</name><identifier>peer-1</identifier></peer></router>`+
		`</authority></config></edit-config>`, "<ok/>")
	c.must(`<commit/>`, "<ok/>")

	c.must(`<generate-private-key `+pkaNS+`><name>router</name><algorithm>ecc</algorithm><ecc-curve>secp256r1</ecc-curve></generate-private-key>`, ">router</name>")
	m := csrElem.FindStringSubmatch(c.must(`<generate-csr `+pkaNS+`><name>router</name><common-name>router.example.net</common-name></generate-csr>`, "BEGIN CERTIFICATE REQUEST"))
	if m == nil {
		t.Fatal("no csr in the reply")
	}
	leaf := issue(t, root, []byte(html.UnescapeString(m[1])))
	leafPEM := html.EscapeString(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})))
	c.must(`<import-certificate `+pkaNS+`><name>router</name><certificate>not a certificate</certificate></import-certificate>`, "rpc-error")
	c.must(`<import-certificate `+pkaNS+`><name>router</name><certificate>`+leafPEM+`</certificate></import-certificate>`, "</fingerprint")

	validate := func(router, peerName, certPEM, want string) {
		t.Helper()
		c.must(`<validate-peer-certificate `+pkaNS+`><router>`+router+`</router><peer>`+peerName+`</peer><certificate>`+certPEM+`</certificate></validate-peer-certificate>`, ">"+want+"</result>")
	}
	validate("hard", "p1", peer("someone-else", testpki.Options{}), "invalid")
	validate("hard", "p2", peer("peer-2", testpki.Options{}), "valid")
	validate("soft", "p1", peer("peer-1", testpki.Options{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)}), "expired")

	// The root revokes the client certificate.
	mu.Lock()
	crlDER = testpki.Must(testpki.CRLWith(root, testpki.CRLOptions{Number: 2, Revoked: []*big.Int{leaf.SerialNumber}, ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(7 * 24 * time.Hour)}))
	mu.Unlock()
	c.must(`<refresh-certificate-revocation-list `+pkaNS+`/>`, "</result>")

	gnmiGet := func(p *agentProcess) map[string]string {
		t.Helper()
		cl := gnmiClient(t, p, state)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		resp, err := cl.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{{}}, Encoding: gpb.Encoding_JSON_IETF})
		if err != nil {
			t.Fatalf("gNMI Get /: %v", err)
		}
		leaves := map[string]string{}
		for _, n := range resp.GetNotification() {
			for _, u := range n.GetUpdate() {
				var v any
				if err := json.Unmarshal(u.GetVal().GetJsonIetfVal(), &v); err != nil {
					t.Fatalf("update %v: %v", u.GetPath(), err)
				}
				flatten(leaves, gnmiPathString(u.GetPath()), v)
			}
		}
		return leaves
	}
	before := gnmiGet(p)
	for _, want := range []struct{ path, value string }{
		{"certificates/certificate[name=router]/status", "revoked"},
		{"certificates/certificate[name=missing]/status", "no-certificate"},
		{"alarms/alarm[id=certificate:router]/severity", "critical"},
		{"alarms/alarm[id=certificate-missing:missing]/category", "certificate-missing"},
		{"alarms/alarm[id=crl-unreachable:" + deadURL + "]/severity", "major"},
		{"alarms/alarm[id=peer-certificate:hard/p1]/severity", "critical"},
		{"authority/router[name=hard]/peer[name=p1]/state/status", "severed"},
		{"authority/router[name=hard]/peer[name=p2]/state/status", "valid"},
		{"authority/router[name=soft]/peer[name=p1]/state/status", "expired"},
		{"stats/security/certificate/revoked", "1"},
		{"stats/security/peer-certificate/invalid", "1"},
		{"stats/security/peer-certificate/expired", "1"},
		{"stats/security/csr/success", "1"},
		{"stats/security/certificate-import/failure", "1"},
		{"system/commit-history/commit[0]/comment", "first start: user admin"},
		{"system/commit-history/commit[1]/comment", "NETCONF commit"},
		{"system/commit-history/commit[1]/rollback-available", "true"},
	} {
		if got, ok := before[want.path]; !ok || got != want.value {
			t.Fatalf("before any restart %s = %q, want %q; state:\n%s", want.path, got, want.value, dump(before))
		}
	}
	if before["stats/security/crl-fetch/failure"] == "0" {
		t.Fatal("no failed CRL fetch counted before the restart")
	}

	t.Logf("%d leaves before the restart", len(before))
	// Times are shown to the second: let one pass, so a time set again at
	// the restart cannot pass for the one before it.
	time.Sleep(1100 * time.Millisecond)
	compare := func(how string, after map[string]string) {
		t.Helper()
		if diff := cmp.Diff(before, after); diff != "" {
			t.Fatalf("state after %s differs (-before +after):\n%s", how, diff)
		}
	}
	if err := p.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.log())
	}
	p = runAgentBinary(t, state)
	compare("SIGTERM and restart", gnmiGet(p))

	// Changes made by the restarted agent survive a crash.
	c = dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	validate("hard", "p1", peer("peer-1", testpki.Options{}), "valid")
	c.must(`<generate-csr `+pkaNS+`><name>router</name><common-name>router.example.net</common-name></generate-csr>`, "BEGIN CERTIFICATE REQUEST")
	before = gnmiGet(p)
	if before["authority/router[name=hard]/peer[name=p1]/state/status"] != "valid" || before["stats/security/csr/success"] != "2" {
		t.Fatalf("after the changes:\n%s", dump(before))
	}
	if _, raised := before["alarms/alarm[id=peer-certificate:hard/p1]/severity"]; raised {
		t.Fatal("the lifted peer's alarm is still raised")
	}
	time.Sleep(1100 * time.Millisecond)
	kill9(t, p)
	p = runAgentBinary(t, state)
	compare("kill -9 and restart", gnmiGet(p))
}

func dump(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k+" = "+m[k])
	}
	sort.Strings(keys)
	return strings.Join(keys, "\n")
}

func gnmiPathString(p *gpb.Path) string {
	var b strings.Builder
	for i, e := range p.GetElem() {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(e.GetName())
		keys := make([]string, 0, len(e.GetKey()))
		for k := range e.GetKey() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "[%s=%s]", k, e.GetKey()[k])
		}
	}
	return b.String()
}

// listKeys are the key leaves of the lists of the pki-authority module,
// by list name, so flattened paths name entries as gNMI paths do.
var listKeys = map[string]string{
	"certificate-revocation-list": "url", "learned-source": "url", "trusted-ca-certificate": "name",
	"client-certificate": "name", "router": "name", "peer": "name", "certificate": "name",
	"alarm": "id",
}

// flatten adds every leaf of the JSON IETF value v at prefix to out, as
// PATH = VALUE; list entries are named by their key.
func flatten(out map[string]string, prefix string, v any) {
	join := func(a, b string) string {
		if a == "" {
			return b
		}
		return a + "/" + b
	}
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if _, mod, ok := strings.Cut(k, ":"); ok {
				k = mod // module-qualified top-level member
			}
			if list, ok := child.([]any); ok && len(list) > 0 {
				if _, isObj := list[0].(map[string]any); isObj {
					for i, e := range list {
						entry := e.(map[string]any)
						key := listKeys[k]
						if k == "certificate" && entry["name"] == nil {
							key = "fingerprint-sha256" // trusted CA state/certificate
						}
						name := fmt.Sprintf("%s[%d]", k, i)
						if kv, ok := entry[key]; ok {
							name = fmt.Sprintf("%s[%s=%v]", k, key, kv)
						}
						flatten(out, join(prefix, name), entry)
					}
					continue
				}
			}
			flatten(out, join(prefix, k), child)
		}
	case []any: // a leaf-list
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = fmt.Sprint(e)
		}
		out[prefix] = "[" + strings.Join(parts, ", ") + "]"
	default:
		out[prefix] = fmt.Sprint(v)
	}
}

// TestDamagedPKIStateIsAStartupErrorNamingTheFile: a pki-state.json that
// does not decode stops the start naming it, as running.json does.
func TestDamagedPKIStateIsAStartupErrorNamingTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pki-state.json")
	os.WriteFile(path, []byte(`{"peers": [{"router": "r", "peer": "p", "path": ["not base64!"]}]}`), 0o600)
	err := run([]string{"--state-dir", dir, "--gnmi-addr", "127.0.0.1:0", "--netconf-addr", "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v", err)
	}
}
