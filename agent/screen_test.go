package agent

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/testpki"
)

// assertNoKey fails if text carries any 12-character run of the key's
// base64.
func assertNoKey(t *testing.T, text string, der []byte) {
	t.Helper()
	b64 := base64.StdEncoding.EncodeToString(der)
	for i := 0; i+12 <= len(b64); i += 4 {
		if strings.Contains(text, b64[i:i+12]) {
			t.Fatalf("text carries key bytes: %.300s", text)
		}
	}
}

// TestPrivateKeyValuesRefusedBeforeStored: a value holding private key
// material is refused at every entry point of the datastore (any edit
// value, whole-tree replace, candidate edits, copy-config, rpc input),
// naming the node and never quoting the value; nothing is stored.
func TestPrivateKeyValuesRefusedBeforeStored(t *testing.T) {
	key := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := string(testpki.KeyPEM(key))
	rsaPEM := "-----BEGIN RSA PRIVATE KEY-----\n" + base64.StdEncoding.EncodeToString(der) + "\n-----END RSA PRIVATE KEY-----\n"
	js := func(v any) []byte { b, _ := json.Marshal(v); return b }
	str := func(s string) *gnmi.TypedValue {
		return &gnmi.TypedValue{Value: &gnmi.TypedValue_StringVal{StringVal: s}}
	}
	ietf := func(b []byte) *gnmi.TypedValue {
		return &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: b}}
	}

	tests := []struct {
		desc     string
		edit     func(t *testing.T) Edit
		wantPath string
	}{
		{desc: "validation-mode string", wantPath: "/authority/trusted-ca-certificate[name=r]/validation-mode",
			edit: func(t *testing.T) Edit {
				return Edit{Op: OpMerge, Path: mustPath(t, "/authority/trusted-ca-certificate[name=r]/validation-mode"), Value: str(keyPEM)}
			}},
		{desc: "polling-interval JSON", wantPath: crlPath("http://x/a.crl") + "/polling-interval",
			edit: func(t *testing.T) Edit {
				return Edit{Op: OpMerge, Path: mustPath(t, crlPath("http://x/a.crl")+"/polling-interval"), Value: ietf(js(keyPEM))}
			}},
		{desc: "trusted-ca content in an entry", wantPath: "/authority/trusted-ca-certificate[name=r]/content",
			edit: func(t *testing.T) Edit {
				return Edit{Op: OpReplace, Path: mustPath(t, "/authority/trusted-ca-certificate[name=r]"), Value: ietf(js(map[string]string{"name": "r", "content": rsaPEM}))}
			}},
		{desc: "CRL url in a list array at the root", wantPath: "/authority/certificate-revocation-list[url=http://x/b.crl]/http-proxy",
			edit: func(t *testing.T) Edit {
				return Edit{Op: OpMerge, Path: &gnmi.Path{}, Value: ietf(js(map[string]any{"pki-authority:authority": map[string]any{
					"certificate-revocation-list": []any{map[string]any{"url": "http://x/b.crl", "http-proxy": keyPEM}}}}))}
			}},
		{desc: "bare base64 DER key", wantPath: "/authority/router[name=a]/peering-common-name",
			edit: func(t *testing.T) Edit {
				return Edit{Op: OpMerge, Path: mustPath(t, "/authority/router[name=a]/peering-common-name"), Value: str(base64.StdEncoding.EncodeToString(der))}
			}},
		{desc: "leaf-list element", wantPath: "/authority/router[name=a]/peering-common-name",
			edit: func(t *testing.T) Edit {
				return Edit{Op: OpMerge, Path: mustPath(t, "/authority/router[name=a]/peering-common-name"), Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_LeaflistVal{
					LeaflistVal: &gnmi.ScalarArray{Element: []*gnmi.TypedValue{str("ok"), str(keyPEM)}}}}}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s, _ := newTestStore(t, Config{})
			for _, ds := range []Datastore{Running, Candidate} {
				var err error
				if ds == Running {
					_, err = commitEdits(t, s, tc.edit(t))
				} else {
					err = s.EditCandidate(api.Owner{Name: "session 1"}, tc.edit(t))
				}
				if !errors.Is(err, ErrKeyMaterial) || !errors.Is(err, api.ErrInvalid) {
					t.Fatalf("%s: err = %v, want ErrKeyMaterial and ErrInvalid", ds, err)
				}
				var pe *api.PathError
				if !errors.As(err, &pe) || api.PathString(pe.Path) != tc.wantPath {
					t.Errorf("%s: error path %q, want %q (%v)", ds, api.PathString(pe.Path), tc.wantPath, err)
				}
				assertNoKey(t, err.Error(), der)
			}
			for _, ds := range []Datastore{Running, Candidate} {
				js, _ := EmitJSON(s.Get(ds))
				if string(js) != "{}" {
					t.Errorf("%s holds %s after the refusal", ds, js)
				}
			}
		})
	}

	t.Run("copy-config of a tree to candidate", func(t *testing.T) {
		s, _ := newTestStore(t, Config{})
		root := &gen.Device{}
		r := root.GetOrCreateAuthority().GetOrCreateTrustedCaCertificate("r")
		r.Content = &keyPEM
		err := s.ReplaceCandidate(api.Owner{Name: "session 1"}, root)
		if !errors.Is(err, ErrKeyMaterial) || !strings.Contains(err.Error(), "/authority/trusted-ca-certificate[name=r]/content") {
			t.Fatalf("err = %v", err)
		}
		assertNoKey(t, err.Error(), der)
		if s.Candidate().GetAuthority() != nil {
			t.Error("the candidate took the tree")
		}
	})

	t.Run("rpc input", func(t *testing.T) {
		in := js(map[string]string{"router": "r1", "peer": "p1", "certificate": keyPEM})
		_, err := InvokeRPC(context.Background(), panicPKI{}, api.Caller{User: "admin", Role: api.RoleAdmin}, "validate-peer-certificate", in)
		if !errors.Is(err, ErrKeyMaterial) || !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "rpc validate-peer-certificate: input certificate holds a private key") {
			t.Fatalf("err = %v", err)
		}
		assertNoKey(t, err.Error(), der)
	})
}

// panicPKI is an engine that must never be reached.
type panicPKI struct{ api.PKI }
