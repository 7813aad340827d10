package api

import "context"

// Roles of users, as SPEC.md defines them.
const (
	RoleAdmin    = "admin"    // everything
	RoleOperator = "operator" // read and the PKI RPCs
	RoleViewer   = "viewer"   // read only
)

// The role rules, the one place every protocol asks.

// ValidRole reports whether role is admin, operator or viewer.
func ValidRole(role string) bool {
	switch role {
	case RoleAdmin, RoleOperator, RoleViewer:
		return true
	}
	return false
}

// CanRead reports whether role may read config and state and subscribe.
func CanRead(role string) bool { return ValidRole(role) }

// CanWrite reports whether role may change the configuration (and lock it,
// commit, kill sessions).
func CanWrite(role string) bool { return role == RoleAdmin }

// CanRunRPC reports whether role may run the PKI rpcs (key, CSR, import,
// CRL refresh, peer validation, certz).
func CanRunRPC(role string) bool { return role == RoleAdmin || role == RoleOperator }

// Caller is who invokes an operation.
type Caller struct {
	User string
	Role string
}

// The inputs and outputs of the pki-authority YANG rpcs, with JSON names as
// in RFC 7951 (unqualified).
type (
	GenerateKeyInput struct {
		Name       string `json:"name"`
		Algorithm  string `json:"algorithm,omitempty"`    // rsa | ecc | ed25519 (default ecc)
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
	EnrollCertificateInput struct {
		Name  string `json:"name"`
		Force bool   `json:"force,omitempty"`
	}
	EnrollCertificateOutput struct {
		Result            string `json:"result"` // enrolled | renewed | waiting | failed
		FingerprintSHA256 string `json:"fingerprint-sha256,omitempty"`
		NotAfter          string `json:"not-after,omitempty"`
		Message           string `json:"message,omitempty"`
	}
	DeletePrivateKeyInput struct {
		Name  string `json:"name"`
		Force bool   `json:"force,omitempty"`
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
	EnrollCertificate(ctx context.Context, c Caller, in EnrollCertificateInput) (EnrollCertificateOutput, error)
	DeletePrivateKey(ctx context.Context, c Caller, in DeletePrivateKeyInput) error
}
