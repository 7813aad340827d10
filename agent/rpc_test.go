package agent

import (
	"encoding/json"
	"testing"

	"github.com/pkiagent/pkiagent/agent/api"
)

// TestRPCDefaultsFromSchema: the inputs an rpc leaves out take the
// defaults of module pki-authority, and the ones it gives are kept.
func TestRPCDefaultsFromSchema(t *testing.T) {
	var key api.GenerateKeyInput
	b, err := withDefaults("generate-private-key", []byte(`{"name":"k","rsa-key-size":3072}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &key); err != nil {
		t.Fatal(err)
	}
	if want := (api.GenerateKeyInput{Name: "k", Algorithm: "ecc", RSAKeySize: 3072, ECCCurve: "secp256r1", KeyStorage: "file"}); key != want {
		t.Errorf("generate-private-key input %+v, want %+v", key, want)
	}
	var csr api.GenerateCSRInput
	if b, err = withDefaults("generate-csr", []byte(`{"name":"k","common-name":"r1"}`)); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &csr); err != nil {
		t.Fatal(err)
	}
	if csr.ValidityPeriod != 365 {
		t.Errorf("generate-csr validity-period %d, want the default 365", csr.ValidityPeriod)
	}
	var enroll api.EnrollCertificateInput
	if b, err = withDefaults("enroll-certificate", []byte(`{"name":"k"}`)); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &enroll); err != nil || enroll.Force {
		t.Errorf("enroll-certificate input %s: %v; want force false, a JSON boolean", b, err)
	}
	if b, err := withDefaults("generate-csr", []byte(`[1]`)); err != nil || string(b) != `[1]` {
		t.Errorf("input that is no object: %s, %v; want it as it is", b, err)
	}
}
