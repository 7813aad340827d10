package main

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openconfig/gnsi/certz"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var errorPathRE = regexp.MustCompile(`<error-path[^>]*>([^<]*)</error-path>`)

// TestRPCErrorsNameTheirLeaf runs the binary: the one object-name rule
// answers generate-private-key name=.. with invalid-value at
// /pka:generate-private-key/pka:name over NETCONF, and certz AddProfile
// with the same name with InvalidArgument; a generate-csr
// field the model or the CSR builder refuses (country-name, a
// subject-alt-name uri) is reported at that leaf, not at another leaf whose
// name its message happens to contain.
func TestRPCErrorsNameTheirLeaf(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	p := runAgentBinary(t, state)
	c := dialNETCONF(t, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	refused := func(op, wantPath string) {
		t.Helper()
		got := c.rpc(op)
		m := errorPathRE.FindStringSubmatch(got)
		if !strings.Contains(got, "<error-tag>invalid-value</error-tag>") || m == nil || m[1] != wantPath {
			t.Errorf("%s:\n%s\nwant invalid-value at %s", op, got, wantPath)
		}
	}
	for _, name := range []string{"..", "."} {
		refused(`<generate-private-key `+pkaNS+`><name>`+name+`</name></generate-private-key>`, "/pka:generate-private-key/pka:name")
	}
	if got := c.rpc(`<generate-private-key ` + pkaNS + `><name>k1</name></generate-private-key>`); !strings.Contains(got, "<key-algorithm") {
		t.Fatalf("generate-private-key k1: %s", got)
	}
	refused(`<generate-csr `+pkaNS+`><name>k1</name><common-name>r1.example</common-name><country-name>USA</country-name></generate-csr>`,
		"/pka:generate-csr/pka:country-name")
	// The model lets this uri through and the CSR builder refuses it; its
	// message names subject-alt-name[0], which holds the leaf name "name".
	refused(`<generate-csr `+pkaNS+`><name>k1</name><common-name>r1.example</common-name><subject-alt-name><uri>not-a-uri</uri></subject-alt-name></generate-csr>`,
		"/pka:generate-csr/pka:subject-alt-name")

	caPEM, err := os.ReadFile(filepath.Join(state, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	seen := make(chan *x509.Certificate, 4)
	cc := dialTLS(t, logAttr(p.logged(t, "gNMI listening"), "addr"), roots, seen)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range []string{"..", "."} {
		_, err := certz.NewCertzClient(cc).AddProfile(ctx, &certz.AddProfileRequest{SslProfileId: id})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("certz AddProfile %q: %v, want InvalidArgument", id, err)
		}
	}
}
