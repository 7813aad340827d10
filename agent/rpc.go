package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent/api"
)

// ErrAccessDenied: the caller's role does not allow the operation.
var ErrAccessDenied = errors.New("access denied")

// RPCNames lists the rpcs of module pki-authority.
var RPCNames = []string{
	"generate-private-key", "generate-csr", "import-certificate",
	"refresh-certificate-revocation-list", "validate-peer-certificate",
	"enroll-certificate", "delete-private-key",
}

// MaxRPCInput bounds the JSON input of one rpc.
const MaxRPCInput = 2 << 20

// InvokeRPC decodes input (a JSON object of the rpc's input leaves), checks
// the caller's role, applies the YANG defaults, runs the rpc on p and
// returns its output as a JSON object. Northbound servers convert to and
// from their own encodings.
func InvokeRPC(ctx context.Context, p api.PKI, c api.Caller, name string, input []byte) ([]byte, error) {
	if c.Role != api.RoleAdmin && c.Role != api.RoleOperator {
		return nil, fmt.Errorf("%w: rpc %s needs role admin or operator; user %q has role %q", ErrAccessDenied, name, c.User, c.Role)
	}
	if p == nil {
		return nil, fmt.Errorf("rpc %s: the PKI engine is not running", name)
	}
	if len(input) > MaxRPCInput {
		return nil, fmt.Errorf("%w: rpc %s input is %d bytes, the limit is %d", api.ErrInvalid, name, len(input), MaxRPCInput)
	}
	if len(strings.TrimSpace(string(input))) == 0 {
		input = []byte("{}")
	}
	// The one screening for key material, before any rpc sees the input.
	if at, found := keyMaterialInJSON([]*gnmi.PathElem{{Name: name}}, input); found {
		leaf := strings.TrimPrefix(strings.TrimPrefix(at, "/"+name), "/")
		if leaf == "" {
			leaf = "(the whole input)"
		}
		return nil, keyMaterialRefused(fmt.Sprintf("rpc %s: input %s", name, leaf))
	}
	decode := func(v any) error {
		d := json.NewDecoder(strings.NewReader(string(input)))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			return fmt.Errorf("%w: rpc %s input: %v", api.ErrInvalid, name, err)
		}
		return nil
	}
	var out any
	var err error
	switch name {
	case "generate-private-key":
		var in api.GenerateKeyInput
		if err = decode(&in); err != nil {
			return nil, err
		}
		if in.Algorithm == "" {
			in.Algorithm = "ecc"
		}
		if in.RSAKeySize == 0 {
			in.RSAKeySize = 2048
		}
		if in.ECCCurve == "" {
			in.ECCCurve = "secp256r1"
		}
		if in.KeyStorage == "" {
			in.KeyStorage = "file"
		}
		out, err = p.GeneratePrivateKey(ctx, c, in)
	case "generate-csr":
		var in api.GenerateCSRInput
		if err = decode(&in); err != nil {
			return nil, err
		}
		if in.ValidityPeriod == 0 {
			in.ValidityPeriod = 365
		}
		out, err = p.GenerateCSR(ctx, c, in)
	case "import-certificate":
		var in api.ImportCertificateInput
		if err = decode(&in); err != nil {
			return nil, err
		}
		out, err = p.ImportCertificate(ctx, c, in)
	case "refresh-certificate-revocation-list":
		var in api.RefreshCRLInput
		if err = decode(&in); err != nil {
			return nil, err
		}
		out, err = p.RefreshCRL(ctx, c, in)
	case "validate-peer-certificate":
		var in api.ValidatePeerInput
		if err = decode(&in); err != nil {
			return nil, err
		}
		out, err = p.ValidatePeerCertificate(ctx, c, in)
	case "enroll-certificate":
		var in api.EnrollCertificateInput
		if err = decode(&in); err != nil {
			return nil, err
		}
		out, err = p.EnrollCertificate(ctx, c, in)
	case "delete-private-key":
		var in api.DeletePrivateKeyInput
		if err = decode(&in); err != nil {
			return nil, err
		}
		out, err = struct{}{}, p.DeletePrivateKey(ctx, c, in)
	default:
		return nil, fmt.Errorf("%w: no rpc %q in module pki-authority", ErrUnknownPath, name)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}
