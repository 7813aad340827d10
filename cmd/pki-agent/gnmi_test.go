package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"html"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/internal/testpki"
	"github.com/pkiagent/pkiagent/internal/yanglinttest"
)

// TestGNMIJSONIETFValidatesWithYanglint provisions the binary as an
// operator does (a trusted CA, a CRL source, routers with peers, a client
// certificate with its key, CSR and imported certificate), then has libyang's
// yanglint check what a gNMI Get of / returns in JSON_IETF: config alone
// (type CONFIG, with the defaults reported) and config with state (type
// ALL: certificate, CRL and peer state, alarms, counters). List shapes,
// module names and value types are what RFC 7951 and the YANG say.
func TestGNMIJSONIETFValidatesWithYanglint(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	p := runAgentBinary(t, state)
	nc := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	g := gnmiClient(t, p, state)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	ca := testpki.Must(testpki.New(time.Now()).Hierarchy(2))
	caJSON := strings.ReplaceAll(strings.TrimSpace(string(testpki.PEM(ca[0]))), "\n", `\n`)
	// The replace of the whole tree names the users too (without their
	// passwords, which it keeps): a tree without them would remove the
	// last admin, which is refused.
	config := `{"pki-agent-system:system":{"aaa":{"user":[{"name":"admin","role":"admin"}]}},
	  "pki-authority:authority":{
	  "trusted-ca-certificate":[{"name":"corp","content":"` + caJSON + `\n"}],
	  "certificate-revocation-list":[{"url":"http://127.0.0.1:1/corp.crl","polling-interval":1}],
	  "crl-settings":{"discover-from-certificates":false},
	  "client-certificate":[{"name":"router"}],
	  "router":[{"name":"r1","peer-validation":true,"peering-common-name":"r1.example.net","peer":[{"name":"p1","identifier":"p1.example.net"}]},{"name":"r2"}]}}`
	if _, err := g.Set(ctx, &gpb.SetRequest{Replace: []*gpb.Update{{Path: &gpb.Path{}, Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(config)}}}}}); err != nil {
		t.Fatalf("provisioning over gNMI: %v", err)
	}
	nc.must(`<generate-private-key `+pkaNS+`><name>router</name><algorithm>ecc</algorithm></generate-private-key>`, "</key-storage>")
	reply := nc.must(`<generate-csr `+pkaNS+`><name>router</name><common-name>router.example.net</common-name></generate-csr>`, "BEGIN CERTIFICATE REQUEST")
	m := csrElem.FindStringSubmatch(reply)
	if m == nil {
		t.Fatalf("no csr in %s", reply)
	}
	leaf := issue(t, ca[1], []byte(html.UnescapeString(m[1])))
	chainPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})) + string(testpki.PEM(ca[1]))
	nc.must(`<import-certificate `+pkaNS+`><name>router</name><certificate>`+html.EscapeString(chainPEM)+`</certificate></import-certificate>`, "</fingerprint")

	get := func(typ gpb.GetRequest_DataType) []byte {
		t.Helper()
		r, err := g.Get(ctx, &gpb.GetRequest{Encoding: gpb.Encoding_JSON_IETF, Type: typ})
		if err != nil {
			t.Fatalf("Get / %s: %v", typ, err)
		}
		if len(r.GetNotification()) != 1 || len(r.GetNotification()[0].GetUpdate()) != 1 {
			t.Fatalf("Get / %s: %v", typ, r)
		}
		return r.GetNotification()[0].GetUpdate()[0].GetVal().GetJsonIetfVal()
	}
	// Wait for the failed CRL fetch to show in state.
	deadline := time.Now().Add(20 * time.Second)
	all := get(gpb.GetRequest_ALL)
	for !strings.Contains(string(all), `"last-attempt"`) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		all = get(gpb.GetRequest_ALL)
	}
	for _, want := range []string{`"last-attempt"`, `"pki-authority:certificates"`, `"pki-authority:alarms"`, `"pki-authority:stats"`, `"fingerprint-sha256"`, `"validation-mode": "strict"`} {
		if !strings.Contains(string(all), want) {
			t.Errorf("Get / ALL lacks %s:\n%s", want, all)
		}
	}
	cfg := get(gpb.GetRequest_CONFIG)
	for _, want := range []string{`"certificate-failure-action": "fail-soft"`, `"backoff-interval": 60`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("Get / CONFIG lacks the default %s:\n%s", want, cfg)
		}
	}
	yanglinttest.Check(t, yanglinttest.JSON, yanglinttest.Config, cfg)
	yanglinttest.Check(t, yanglinttest.JSON, yanglinttest.Data, all)
}

// TestGNMIEncodingsOverTheBinary is finding 11 of issue 10 against the
// binary, with a client that compresses with gzip as gnmic --gzip does:
// what a Get with gnmic's default encoding (JSON) returns is Set back as it
// is; a leaf left at its default is reported; Subscribe answers in JSON; a
// null value is refused.
func TestGNMIEncodingsOverTheBinary(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	p := runAgentBinary(t, state)
	caPEM, err := os.ReadFile(filepath.Join(state, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cc, err := grpc.NewClient(logAttr(p.logged(t, "gNMI listening"), "addr"),
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost"})),
		grpc.WithPerRPCCredentials(passwordCreds{}), grpc.WithDefaultCallOptions(grpc.UseCompressor(gzip.Name)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	g := gpb.NewGNMIClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := func(s string) *gpb.Path {
		t.Helper()
		p, err := ygot.StringToStructuredPath(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	jsonVal := func(s string) *gpb.TypedValue {
		return &gpb.TypedValue{Value: &gpb.TypedValue_JsonVal{JsonVal: []byte(s)}}
	}
	if _, err := g.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{
		{Path: path("/authority/router[name=r1]"), Val: jsonVal(`{"name":"r1","peer-validation":true,"peer":[{"name":"p1","identifier":"p1.example.net"}]}`)},
		{Path: path("/authority/client-certificate[name=router]"), Val: jsonVal(`{"name":"router"}`)},
	}}); err != nil {
		t.Fatalf("Set over gzip: %v", err)
	}
	getRoot := func() []byte {
		t.Helper()
		r, err := g.Get(ctx, &gpb.GetRequest{Encoding: gpb.Encoding_JSON, Type: gpb.GetRequest_CONFIG})
		if err != nil {
			t.Fatalf("Get / JSON: %v", err)
		}
		return r.GetNotification()[0].GetUpdate()[0].GetVal().GetJsonVal()
	}
	root := getRoot()
	if !strings.Contains(string(root), `"peer": [`) || !strings.Contains(string(root), `"validation-mode": "strict"`) {
		t.Errorf("Get / JSON: lists not arrays or defaults missing:\n%s", root)
	}
	if _, err := g.Set(ctx, &gpb.SetRequest{Replace: []*gpb.Update{{Path: &gpb.Path{}, Val: jsonVal(string(root))}}}); err != nil {
		t.Fatalf("Set back what Get / returned: %v", err)
	}
	if again := getRoot(); string(again) != string(root) {
		t.Errorf("running changed by the round trip:\n%s\nthen\n%s", root, again)
	}
	r, err := g.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{path("/authority/client-certificate[name=router]/validation-mode")}, Encoding: gpb.Encoding_JSON})
	if err != nil || string(r.GetNotification()[0].GetUpdate()[0].GetVal().GetJsonVal()) != `"strict"` {
		t.Errorf("Get of a defaulted leaf: %v %v", r, err)
	}
	_, err = g.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{Path: path("/authority/router[name=r2]"), Val: jsonVal(`null`)}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "/authority/router[name=r2]") || !strings.Contains(err.Error(), "to delete use delete") {
		t.Errorf("null value: %v", err)
	}
	sub, err := g.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_ONCE, Encoding: gpb.Encoding_JSON, Subscription: []*gpb.Subscription{{Path: path("/authority/router[name=r1]/peer-validation")}}}}}); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if u := msg.GetUpdate().GetUpdate(); len(u) != 1 || string(u[0].GetVal().GetJsonVal()) != "true" {
		t.Errorf("Subscribe ONCE JSON: %v", msg)
	}
}
