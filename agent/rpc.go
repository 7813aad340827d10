package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"

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
	if !api.CanRunRPC(c.Role) {
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
		words, leaf := "(the whole input)", ""
		if len(at) > 1 {
			words, leaf = strings.TrimPrefix(prefixString(at[1:]), "/"), at[1].Name
		}
		return nil, &api.InputError{RPC: name, Leaf: leaf, Err: keyMaterialRefused(fmt.Sprintf("rpc %s: input %s", name, words))}
	}
	input, err := withDefaults(name, input)
	if err != nil {
		return nil, err
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
	switch name {
	case "generate-private-key":
		var in api.GenerateKeyInput
		if err = decode(&in); err != nil {
			return nil, err
		}
		out, err = p.GeneratePrivateKey(ctx, c, in)
	case "generate-csr":
		var in api.GenerateCSRInput
		if err = decode(&in); err != nil {
			return nil, err
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

// withDefaults adds to input, a JSON object, the YANG default of every
// input leaf of rpc name that it does not give. Input that is no JSON
// object is returned as it is, for the decoder to refuse.
func withDefaults(name string, input []byte) ([]byte, error) {
	m, err := Module()
	if err != nil {
		return nil, err
	}
	rpc := m.Dir[name]
	if rpc == nil || rpc.RPC == nil || rpc.RPC.Input == nil {
		return input, nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(input, &obj) != nil || obj == nil {
		return input, nil
	}
	added := false
	for leaf, e := range rpc.RPC.Input.Dir {
		def, ok := e.SingleDefaultValue()
		if _, given := obj[leaf]; given || !ok {
			continue
		}
		v, err := json.Marshal(def)
		if isInt(e.Type) || e.Type != nil && e.Type.Kind == yang.Ybool { // JSON numbers and booleans are bare
			v, err = []byte(def), nil
		}
		if err != nil {
			return nil, err
		}
		obj[leaf], added = v, true
	}
	if !added {
		return input, nil
	}
	return json.Marshal(obj)
}
