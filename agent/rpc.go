package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Roles of users, as SPEC.md defines them.
const (
	RoleAdmin    = "admin"    // everything
	RoleOperator = "operator" // read and the PKI RPCs
	RoleViewer   = "viewer"   // read only
)

// Caller is who invokes an operation.
type Caller struct {
	User string
	Role string
}

// ErrAccessDenied: the caller's role does not allow the operation.
var ErrAccessDenied = errors.New("access denied")

// The inputs and outputs of the pki-authority YANG rpcs, with JSON names as
// in RFC 7951 (unqualified).
type (
	GenerateKeyInput struct {
		Name       string `json:"name"`
		Algorithm  string `json:"algorithm,omitempty"`    // rsa | ecc (default ecc)
		RSAKeySize uint16 `json:"rsa-key-size,omitempty"` // default 2048
		ECCCurve   string `json:"ecc-curve,omitempty"`    // default secp256r1
		KeyStorage string `json:"key-storage,omitempty"`  // file | tpm (default file)
	}
	GenerateKeyOutput struct {
		Name         string `json:"name"`
		KeyAlgorithm string `json:"key-algorithm"`
		KeyStorage   string `json:"key-storage"`
	}
	SubjectAltName struct {
		DNS []string `json:"dns,omitempty"`
		IP  []string `json:"ip,omitempty"`
		URI []string `json:"uri,omitempty"`
	}
	GenerateCSRInput struct {
		Name                   string          `json:"name"`
		CommonName             string          `json:"common-name"`
		CountryName            string          `json:"country-name,omitempty"`
		StateProvinceName      string          `json:"state-province-name,omitempty"`
		LocalityName           string          `json:"locality-name,omitempty"`
		OrganizationName       string          `json:"organization-name,omitempty"`
		OrganizationalUnitName string          `json:"organizational-unit-name,omitempty"`
		EmailAddress           string          `json:"email-address,omitempty"`
		SubjectAltName         *SubjectAltName `json:"subject-alt-name,omitempty"`
		ValidityPeriod         uint16          `json:"validity-period,omitempty"` // days, default 365
	}
	GenerateCSROutput struct {
		CSR string `json:"csr"`
	}
	ImportCertificateInput struct {
		Name        string `json:"name"`
		Certificate string `json:"certificate"`
	}
	ImportCertificateOutput struct {
		FingerprintSHA256 string `json:"fingerprint-sha256"`
		Status            string `json:"status"`
	}
	RefreshCRLInput struct {
		URL string `json:"url,omitempty"`
	}
	RefreshCRLResult struct {
		URL     string `json:"url"`
		Success bool   `json:"success"`
		Message string `json:"message,omitempty"`
	}
	RefreshCRLOutput struct {
		Result []RefreshCRLResult `json:"result,omitempty"`
	}
	ValidatePeerInput struct {
		Router      string `json:"router"`
		Peer        string `json:"peer"`
		Certificate string `json:"certificate"`
	}
	ValidatePeerOutput struct {
		Result string `json:"result"` // valid | expired | revoked | invalid
		Reason string `json:"reason,omitempty"`
	}
)

// PKI is the engine behind the rpcs. Errors are in operator words and never
// carry private key material; errors wrapping ErrInvalid are the caller's
// fault (bad input), others are operation failures.
type PKI interface {
	GeneratePrivateKey(ctx context.Context, c Caller, in GenerateKeyInput) (GenerateKeyOutput, error)
	GenerateCSR(ctx context.Context, c Caller, in GenerateCSRInput) (GenerateCSROutput, error)
	ImportCertificate(ctx context.Context, c Caller, in ImportCertificateInput) (ImportCertificateOutput, error)
	RefreshCRL(ctx context.Context, c Caller, in RefreshCRLInput) (RefreshCRLOutput, error)
	ValidatePeerCertificate(ctx context.Context, c Caller, in ValidatePeerInput) (ValidatePeerOutput, error)
}

// RPCNames lists the rpcs of module pki-authority.
var RPCNames = []string{
	"generate-private-key", "generate-csr", "import-certificate",
	"refresh-certificate-revocation-list", "validate-peer-certificate",
}

// MaxRPCInput bounds the JSON input of one rpc.
const MaxRPCInput = 2 << 20

// InvokeRPC decodes input (a JSON object of the rpc's input leaves), checks
// the caller's role, applies the YANG defaults, runs the rpc on p and
// returns its output as a JSON object. Northbound servers convert to and
// from their own encodings.
func InvokeRPC(ctx context.Context, p PKI, c Caller, name string, input []byte) ([]byte, error) {
	if c.Role != RoleAdmin && c.Role != RoleOperator {
		return nil, fmt.Errorf("%w: rpc %s needs role admin or operator; user %q has role %q", ErrAccessDenied, name, c.User, c.Role)
	}
	if p == nil {
		return nil, fmt.Errorf("rpc %s: the PKI engine is not running", name)
	}
	if len(input) > MaxRPCInput {
		return nil, fmt.Errorf("%w: rpc %s input is %d bytes, the limit is %d", ErrInvalid, name, len(input), MaxRPCInput)
	}
	if len(strings.TrimSpace(string(input))) == 0 {
		input = []byte("{}")
	}
	decode := func(v any) error {
		d := json.NewDecoder(strings.NewReader(string(input)))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			return fmt.Errorf("%w: rpc %s input: %v", ErrInvalid, name, err)
		}
		return nil
	}
	var out any
	var err error
	switch name {
	case "generate-private-key":
		var in GenerateKeyInput
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
		var in GenerateCSRInput
		if err = decode(&in); err != nil {
			return nil, err
		}
		if in.ValidityPeriod == 0 {
			in.ValidityPeriod = 365
		}
		out, err = p.GenerateCSR(ctx, c, in)
	case "import-certificate":
		var in ImportCertificateInput
		if err = decode(&in); err != nil {
			return nil, err
		}
		out, err = p.ImportCertificate(ctx, c, in)
	case "refresh-certificate-revocation-list":
		var in RefreshCRLInput
		if err = decode(&in); err != nil {
			return nil, err
		}
		out, err = p.RefreshCRL(ctx, c, in)
	case "validate-peer-certificate":
		var in ValidatePeerInput
		if err = decode(&in); err != nil {
			return nil, err
		}
		out, err = p.ValidatePeerCertificate(ctx, c, in)
	default:
		return nil, fmt.Errorf("%w: no rpc %q in module pki-authority", ErrUnknownPath, name)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}
