package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"html"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnsi/certz"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

// markerInsideLine is the 11-byte certificate chain FuzzCertificates found:
// an END marker that does not start its line. It made pemx return no block
// and no error, and importcheck and peer indexed the empty chain.
const markerInsideLine = "0-----END 0"

// TestMarkerInsideLineRefusedAndAgentLives is finding 4 over the binary:
// the 11 bytes as a certz Rotate certificate chain (which ended the agent
// with exit code 2) and as the certificate of the NETCONF rpcs
// import-certificate and validate-peer-certificate (which panicked in the
// session) are refused as malformed PEM; the agent answers afterwards and
// logs no panic.
func TestMarkerInsideLineRefusedAndAgentLives(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	p := runAgentBinary(t, state, "--tls-cert-name", "gnmi")
	c := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	must := func(op, want string) string {
		t.Helper()
		got := c.rpc(op)
		if !strings.Contains(got, want) {
			t.Fatalf("%.200s:\n got %.800s\nwant %s\nlog:\n%s", op, got, want, p.log())
		}
		return got
	}
	root := testpki.Must(testpki.New(time.Now()).Root(testpki.Options{CN: "hostile root"}))
	must(`<edit-config><target><candidate/></target><config><authority `+pkaNS+`>`+
		`<trusted-ca-certificate><name>root</name><content>`+html.EscapeString(string(root.PEM()))+`</content></trusted-ca-certificate>`+
		`<router><name>r1</name><peer-validation>true</peer-validation><peer><name>p1</name><identifier>peer.example</identifier></peer></router>`+
		`</authority></config></edit-config>`, "<ok/>")
	must(`<commit/>`, "<ok/>")
	must(`<generate-private-key `+pkaNS+`><name>r1</name></generate-private-key>`, ">r1</name>")

	for _, op := range []string{
		`<import-certificate ` + pkaNS + `><name>r1</name><certificate>` + markerInsideLine + `</certificate></import-certificate>`,
		`<validate-peer-certificate ` + pkaNS + `><router>r1</router><peer>p1</peer><certificate>` + markerInsideLine + `</certificate></validate-peer-certificate>`,
	} {
		// import-certificate refuses it; validate-peer-certificate gives
		// the verdict invalid with the reason.
		got := c.rpc(op)
		refused := strings.Contains(got, "<error-tag>invalid-value</error-tag>") || strings.Contains(got, ">invalid</result>")
		if !refused || !strings.Contains(got, "must start at the beginning of its line") {
			t.Errorf("%.60s: %s", op, got)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	boot := x509.NewCertPool()
	bootPEM, err := os.ReadFile(filepath.Join(state, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	boot.AppendCertsFromPEM(bootPEM)
	cc := dialTLS(t, logAttr(p.logged(t, "gNMI listening"), "addr"), boot, make(chan *x509.Certificate, 16))
	st, err := certz.NewCertzClient(cc).Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&certz.RotateCertificateRequest{SslProfileId: "gNxI", RotateRequest: &certz.RotateCertificateRequest_GenerateCsr{GenerateCsr: &certz.GenerateCSRRequest{Params: &certz.CSRParams{
		CsrSuite: certz.CSRSuite_CSRSUITE_X509_KEY_TYPE_ECDSA_PRIME256V1_SIGNATURE_ALGORITHM_SHA_2_256, CommonName: "localhost",
	}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatalf("GenerateCSR: %v\n%s", err, p.log())
	}
	if err := st.Send(&certz.RotateCertificateRequest{SslProfileId: "gNxI", RotateRequest: &certz.RotateCertificateRequest_Certificates{Certificates: &certz.UploadRequest{Entities: []*certz.Entity{
		{Version: "1", Entity: &certz.Entity_CertificateChain{CertificateChain: &certz.CertificateChain{Certificate: &certz.Certificate{
			Type: certz.CertificateType_CERTIFICATE_TYPE_X509, Encoding: certz.CertificateEncoding_CERTIFICATE_ENCODING_PEM,
			CertificateType: &certz.Certificate_RawCertificate{RawCertificate: []byte(markerInsideLine)},
		}}}},
	}}}}); err != nil {
		t.Fatal(err)
	}
	_, err = st.Recv()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "must start at the beginning of its line") {
		t.Errorf("certz upload of %q: %v", markerInsideLine, err)
	}

	// Still alive: the process runs and both servers answer.
	if _, err := gpb.NewGNMIClient(cc).Capabilities(ctx, &gpb.CapabilityRequest{}); err != nil {
		t.Fatalf("gNMI after the upload: %v\n%s", err, p.log())
	}
	must(`<get-config><source><running/></source></get-config>`, "<name>r1</name>")
	if p.cmd.ProcessState != nil {
		t.Fatalf("the agent exited: %v", p.cmd.ProcessState)
	}
	if strings.Contains(p.log(), "panic") {
		t.Fatalf("the agent logged a panic:\n%s", p.log())
	}
}

// TestHostileValuesOverGNMIAndNETCONF is findings 5 and 12 over the
// binary: empty, null, huge (1 MiB), private-key and wrong-type values at
// several leaves, through gNMI Set and NETCONF edit-config (candidate and
// running), get a precise error naming the leaf and the rule with the
// right code and tag; no reply and no log line carries key bytes or a
// value whole, and nothing is stored (another session's get-config of the
// candidate does not see the key).
func TestHostileValuesOverGNMIAndNETCONF(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	p := runAgentBinary(t, state)
	g := gnmiClient(t, p, state)
	c := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	other := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	key := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
	keyPEM := string(testpki.KeyPEM(key))
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyB64 := base64.StdEncoding.EncodeToString(der)
	huge := strings.Repeat("A", 1<<20+1)
	hasKey := func(s string) bool {
		for i := 0; i+12 <= len(keyB64); i += 4 {
			if strings.Contains(s, keyB64[i:i+12]) {
				return true
			}
		}
		return false
	}
	const (
		tca = "/authority/trusted-ca-certificate[name=t1]"
		crl = "/authority/certificate-revocation-list[url=http://crl.example/a.crl]"
		rtr = "/authority/router[name=r1]"
	)
	type leaf struct {
		path            string
		xmlPre, xmlPost string // the edit-config config around the value
	}
	leaves := map[string]leaf{
		"validation-mode":  {tca + "/validation-mode", `<trusted-ca-certificate><name>t1</name><validation-mode>`, `</validation-mode></trusted-ca-certificate>`},
		"polling-interval": {crl + "/polling-interval", `<certificate-revocation-list><url>http://crl.example/a.crl</url><polling-interval>`, `</polling-interval></certificate-revocation-list>`},
		"peer-validation":  {rtr + "/peer-validation", `<router><name>r1</name><peer-validation>`, `</peer-validation></router>`},
		"content":          {tca + "/content", `<trusted-ca-certificate><name>t1</name><content>`, `</content></trusted-ca-certificate>`},
	}
	tests := []struct {
		desc  string
		leaf  string
		value string // JSON text for gNMI; for NETCONF its string
		xml   string // "" means the JSON value is not sent over NETCONF
		want  string // in the gNMI message and the NETCONF error-message
		where string // the path the error names
	}{
		{desc: "string for boolean", leaf: "peer-validation", value: `"yes"`, xml: "yes", want: `"yes" is not a boolean (true or false)`, where: rtr + "/peer-validation"},
		{desc: "string for integer", leaf: "polling-interval", value: `"abc"`, xml: "abc", want: `"abc"`, where: crl + "/polling-interval"},
		{desc: "empty enum", leaf: "validation-mode", value: `""`, xml: "", want: `"" is not one of strict, warn`, where: tca + "/validation-mode"},
		{desc: "null", leaf: "peer-validation", value: `null`, want: "null", where: rtr + "/peer-validation"},
		{desc: "huge enum", leaf: "validation-mode", value: `"` + huge + `"`, xml: huge, want: `... (1048577 bytes) is not one of strict, warn`, where: tca + "/validation-mode"},
		{desc: "key as validation-mode", leaf: "validation-mode", value: mustJSON(keyPEM), xml: keyPEM, want: "private key material", where: tca + "/validation-mode"},
		{desc: "key as polling-interval", leaf: "polling-interval", value: mustJSON(keyPEM), xml: keyPEM, want: "private key material", where: crl + "/polling-interval"},
		{desc: "key as content", leaf: "content", value: mustJSON(keyPEM), xml: keyPEM, want: "private key material", where: tca + "/content"},
	}
	for _, tc := range tests {
		l := leaves[tc.leaf]
		t.Run("gNMI "+tc.desc, func(t *testing.T) {
			path, err := ygot.StringToStructuredPath(l.path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = g.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{Path: path, Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(tc.value)}}}}})
			msg := status.Convert(err).Message()
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(msg, tc.where+": ") || !strings.Contains(msg, tc.want) {
				t.Errorf("Set %s = %.80s: %v\nwant InvalidArgument naming %s and saying %q", l.path, tc.value, err, tc.where, tc.want)
			}
			checkReply(t, msg, hasKey)
		})
		if tc.value == `null` {
			continue
		}
		for _, ds := range []string{"candidate", "running"} {
			t.Run("NETCONF "+ds+" "+tc.desc, func(t *testing.T) {
				got := c.rpc(`<edit-config><target><` + ds + `/></target><config><authority ` + pkaNS + `>` + l.xmlPre + html.EscapeString(tc.xml) + l.xmlPost + `</authority></config></edit-config>`)
				if !strings.Contains(got, "<error-tag>invalid-value</error-tag>") || !strings.Contains(html.UnescapeString(got), tc.want) || !strings.Contains(got, "<error-path") {
					t.Errorf("edit-config %s %s: %.1500s\nwant invalid-value saying %q", ds, tc.leaf, got, tc.want)
				}
				checkReply(t, got, hasKey)
			})
		}
	}

	t.Run("key as CRL url key leaf", func(t *testing.T) {
		got := c.rpc(`<edit-config><target><candidate/></target><config><authority ` + pkaNS + `><certificate-revocation-list><url>` + html.EscapeString(keyPEM) + `</url></certificate-revocation-list></authority></config></edit-config>`)
		if !strings.Contains(got, "<rpc-error>") || !strings.Contains(got, "private key material") {
			t.Errorf("edit-config: %s", got)
		}
		checkReply(t, got, hasKey)
	})

	t.Run("key in an rpc input", func(t *testing.T) {
		got := c.rpc(`<validate-peer-certificate ` + pkaNS + `><router>r1</router><peer>p1</peer><certificate>` + html.EscapeString(keyPEM) + `</certificate></validate-peer-certificate>`)
		if !strings.Contains(got, "<error-tag>invalid-value</error-tag>") || !strings.Contains(got, "private key material") {
			t.Errorf("validate-peer-certificate: %s", got)
		}
		checkReply(t, got, hasKey)
	})

	// Nothing was stored: the other session reads neither the key nor any
	// of the refused values.
	for _, ds := range []string{"candidate", "running"} {
		got := other.rpc(`<get-config><source><` + ds + `/></source></get-config>`)
		if hasKey(got) || strings.Contains(got, "PRIVATE KEY") || strings.Contains(got, "t1") || strings.Contains(got, "r1") {
			t.Errorf("%s after the refusals: %.2000s", ds, got)
		}
	}
	log := p.log()
	if hasKey(log) || strings.Contains(log, "PRIVATE KEY-----") || strings.Contains(log, strings.Repeat("A", 100)) {
		t.Errorf("the agent log carries key bytes or a value whole:\n%.4000s", log)
	}
	if !strings.Contains(log, "netconf: rpc failed") {
		t.Errorf("failed rpcs were not logged:\n%.2000s", log)
	}
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// checkReply fails if a reply carries key bytes, a value whole, or the
// internals finding 12 saw.
func checkReply(t *testing.T, reply string, hasKey func(string) bool) {
	t.Helper()
	if hasKey(reply) || strings.Contains(reply, "PRIVATE KEY-----") {
		t.Fatalf("the reply carries key material: %.600s", reply)
	}
	if strings.Contains(reply, strings.Repeat("A", 100)) {
		t.Errorf("the reply quotes a huge value whole (%d bytes)", len(reply))
	}
	for _, leak := range []string{"rpc error: code", "struct field", "*gen.", "json_ietf_val", "float64", "file does not exist", "persist-id"} {
		if strings.Contains(reply, leak) {
			t.Errorf("the reply leaks %q: %.600s", leak, reply)
		}
	}
}
